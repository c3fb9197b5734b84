// tests/support/fused_block.h — runs batchnorm (training) → LeakyReLU → max pooling → dropout,
// forward and backward, either as the four unfused functional ops or as the fused op
// (kernels/fused_block.h), on one device and dtype, and returns every result on the host, so a test
// can require the two to be equal bit for bit.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/dropout.h"
#include "kernels/fused_block.h"
#include "kernels/pooling.h"
#include "tests/support/random.h"

namespace kiln::test {

struct FusedCase {
  int n, h, w, c;
  Pool2dParams pool;
  float p;
};

// Everything either path produces, widened to double (argmax as bytes).
struct FusedResults {
  std::vector<double> y, save_mean, save_invstd, running_mean, running_var, dx, dgamma, dbeta;
  std::vector<uint8_t> argmax;
  bool operator==(const FusedResults&) const = default;
};

template <typename T>
std::vector<double> host_doubles(const Tensor& t) {
  const std::vector<T> v = t.to_vector<T>();
  return std::vector<double>(v.begin(), v.end());
}

// Inputs drawn from fixed seeds: x with a channel offset (|mean| > std, as a convolution's output
// can be), gamma and beta around 1 and 0, running stats, dy; dgamma/dbeta pre-filled with 0.5
// (they accumulate) and dx with a sentinel (overwritten).
template <typename T>
FusedResults run_fused_case(const FusedCase& k, Device device, bool fused, uint64_t seed = 3) {
  const Shape xs{k.n, k.h, k.w, k.c};
  const Shape ys{k.n, (k.h + 2 * k.pool.pad_h - k.pool.kh) / k.pool.stride_h + 1,
                 (k.w + 2 * k.pool.pad_w - k.pool.kw) / k.pool.stride_w + 1, k.c};
  const DType dt = dtype_of<T>();
  Tensor x = random_tensor<T>(xs, seed, device, 0.5, 2.5);
  Tensor gamma = random_tensor<T>({k.c}, seed + 1, device, 0.5, 1.5);
  Tensor beta = random_tensor<T>({k.c}, seed + 2, device, -0.5, 0.5);
  Tensor rmean = random_tensor<T>({k.c}, seed + 3, device, -0.1, 0.1);
  Tensor rvar = random_tensor<T>({k.c}, seed + 4, device, 0.5, 1.5);
  Tensor dy = random_tensor<T>(ys, seed + 5, device);
  Tensor smean({k.c}, dt, device), sinv({k.c}, dt, device);
  Tensor y(ys, dt, device), argmax(ys, DType::u8, device);
  Tensor dx = Tensor::full(xs, -7.25, dt, device);
  Tensor dgamma = Tensor::full({k.c}, 0.5, dt, device),
         dbeta = Tensor::full({k.c}, 0.5, dt, device);
  const double eps = 1e-5, momentum = 0.1, slope = 0.01;
  const uint64_t dseed = 0x1234567890ull, offset = 7;
  if (fused) {
    const FusedBlockParams p{eps, momentum, slope, k.pool, k.p, dseed, offset};
    fused_block_forward(y, argmax, smean, sinv, rmean, rvar, x, gamma, beta, p);
    fused_block_backward(dx, dgamma, dbeta, dy, argmax, x, gamma, beta, smean, sinv, p);
  } else {
    Tensor bn(xs, dt, device), act(xs, dt, device), pooled(ys, dt, device);
    batchnorm_forward_train(bn, smean, sinv, rmean, rvar, x, gamma, beta, eps, momentum);
    leaky_relu_forward(act, bn, slope);
    maxpool2d_forward(pooled, argmax, act, k.pool);
    dropout_forward(y, pooled, k.p, dseed, offset);
    Tensor dpooled(ys, dt, device), dact(xs, dt, device), dbn(xs, dt, device);
    dropout_backward(dpooled, dy, k.p, dseed, offset);
    maxpool2d_backward(dact, dpooled, argmax, k.pool);
    leaky_relu_backward(dbn, dact, bn, slope);
    batchnorm_backward(dx, dgamma, dbeta, dbn, x, gamma, smean, sinv);
  }
  FusedResults r;
  r.y = host_doubles<T>(y);
  r.save_mean = host_doubles<T>(smean);
  r.save_invstd = host_doubles<T>(sinv);
  r.running_mean = host_doubles<T>(rmean);
  r.running_var = host_doubles<T>(rvar);
  r.dx = host_doubles<T>(dx);
  r.dgamma = host_doubles<T>(dgamma);
  r.dbeta = host_doubles<T>(dbeta);
  r.argmax = argmax.to_vector<uint8_t>();
  return r;
}

// CHECKs every forward result of `got` equal to `ref` bit for bit, and the backward ones too when
// `backward` is true.
inline void check_bitwise(const FusedResults& got, const FusedResults& ref, bool backward = true) {
  CHECK(got.y == ref.y);
  CHECK(got.argmax == ref.argmax);
  CHECK(got.save_mean == ref.save_mean);
  CHECK(got.save_invstd == ref.save_invstd);
  CHECK(got.running_mean == ref.running_mean);
  CHECK(got.running_var == ref.running_var);
  if (!backward) return;
  CHECK(got.dx == ref.dx);
  CHECK(got.dgamma == ref.dgamma);
  CHECK(got.dbeta == ref.dbeta);
}

// The shapes both tests use: the flagship's blocks (2x2 stride 2, C % 4 == 0: the vector path),
// odd channel counts and odd images (scalar path, a dropped last row/column), batch 1,
// overlapping padded windows (an input in several windows), an anisotropic window, p = 0.
inline std::vector<FusedCase> fused_cases() {
  return {{2, 12, 12, 8, {2, 2, 2, 2, 0, 0}, 0.5f}, {1, 6, 6, 16, {2, 2, 2, 2, 0, 0}, 0.25f},
          {3, 7, 5, 3, {2, 2, 2, 2, 0, 0}, 0.5f},   {2, 9, 7, 5, {3, 3, 2, 2, 1, 1}, 0.3f},
          {1, 8, 8, 4, {3, 3, 1, 1, 1, 1}, 0.5f},   {1, 6, 10, 4, {2, 3, 1, 2, 0, 1}, 0.1f},
          {2, 4, 4, 12, {2, 2, 2, 2, 0, 0}, 0.f},   {1, 2, 2, 1, {2, 2, 2, 2, 0, 0}, 0.5f}};
}

}  // namespace kiln::test
