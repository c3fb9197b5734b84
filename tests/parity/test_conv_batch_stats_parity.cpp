// tests/parity/test_conv_batch_stats_parity.cpp — batchnorm's batch statistics gathered in the
// convolution's epilogue (cuda::conv2d_forward_batch_stats, kernels/conv_batch_stats.cuh) against
// the unfused path it replaces: cuda::conv2d_forward, then cuda::batchnorm_batch_stats.
//
// y must be equal bit for bit (the same convolution). The statistics are summed differently — per
// tile Welford in float, merged with Chan's formula in double, against the shifted sums of
// batchnorm_stats_partial_kernel — so they are compared with a derived tolerance, per channel, with
// u = 2⁻²⁴, R = max|y| over the channel, n_t = 128 (the most rows of a tile) and 24 (the most
// float additions of one value in the separate pass: 8 rows per thread, an 8-level tree, slack):
//   |Δmean| <= (n_t + 24)·u·R           (each path's float sums err by at most its additions·u·R)
//   |Δvar|  <= 4·(n_t + 24)·u·R²        (M2 and Σ(x − K)² likewise, K and the means within 2R)
// Chan's merges run in double, (32 + groups)·2⁻⁵³ relative: nothing at float precision. save_invstd
// follows from var (|Δinvstd| <= ½·invstd·|Δvar|/(var + eps) + 2u·invstd), running_var from the
// unbiased var. Every emulator order (or three runs on a GPU) must give the same bits: the merge
// order is the tile index, not which block arrives last. Shapes: the first-layer direct kernel
// (C_in 1 and 3, edge tiles, several merge groups), the implicit GEMM with vector and scalar loads,
// a stride, several channel tiles and a split-K product (the last split's block gathers them).
#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <sstream>
#include <string>
#include <vector>

#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/conv2d_tc.h"
#include "kernels/fused_block.h"
#include "tests/support/parity.h"

namespace {

using kiln::Conv2dShape;
using kiln::Device;
using kiln::Tensor;
using kiln::test::kU;

struct Case {
  const char* name;
  Conv2dShape s;
};

// n, h, w, c_in, c_out, k, stride, pad: a square kernel, the same stride and padding both ways.
Conv2dShape shape(std::array<int, 8> v) {
  return {v[0], v[1], v[2], v[3], v[4], v[5], v[5], v[6], v[6], v[7], v[7]};
}

std::vector<Case> cases() {
  return {
      {"direct, C_in 1, 36 tiles (2 groups), edge tiles", shape({4, 23, 37, 1, 8, 3, 1, 1})},
      {"direct, C_in 3, 5 channels", shape({2, 9, 17, 3, 5, 3, 1, 1})},
      {"implicit GEMM, vector loads, 45 tiles (2 groups)", shape({5, 24, 24, 8, 16, 3, 1, 1})},
      {"implicit GEMM, scalar loads, stride 2, 6 channels", shape({4, 15, 15, 5, 6, 3, 2, 0})},
      {"implicit GEMM, split-K, 2 channel tiles", shape({1, 6, 6, 64, 72, 3, 1, 1})},
  };
}

struct Stats {
  std::vector<float> y, mean, invstd, running_mean, running_var;
  std::vector<float> all() const {
    std::vector<float> v = y;
    for (const auto* p : {&mean, &invstd, &running_mean, &running_var})
      v.insert(v.end(), p->begin(), p->end());
    return v;
  }
};

constexpr double kEps = 1e-5, kMomentum = 0.1;

// Inputs with a mean far from zero (|mean| ≈ 3·std), where unshifted sums would lose digits.
// tf32: the tensor-core forward (conv2d_forward_tf32 and its statistics epilogue).
Stats run(const Conv2dShape& s, bool fused, bool tf32 = false) {
  const Tensor x = kiln::test::uniform_tensor({s.n, s.h, s.w, s.c_in}, 1, Device::cuda, 2.f, 4.f);
  const Tensor w =
      kiln::test::uniform_tensor({s.c_out, s.kh, s.kw, s.c_in}, 2, Device::cuda, 0.f, 0.5f);
  const Tensor b = kiln::test::uniform_tensor({s.c_out}, 3, Device::cuda);
  Tensor y({s.n, s.out_h(), s.out_w(), s.c_out}, kiln::DType::f32, Device::cuda);
  Tensor mean({s.c_out}, kiln::DType::f32, Device::cuda);
  Tensor invstd({s.c_out}, kiln::DType::f32, Device::cuda);
  Tensor rmean = kiln::test::uniform_tensor({s.c_out}, 4, Device::cuda);
  Tensor rvar = kiln::test::uniform_tensor({s.c_out}, 5, Device::cuda, 0.5f, 2.f);
  const kiln::Stream st = kiln::current_stream();
  if (fused && tf32) {
    kiln::cuda::conv2d_forward_tf32_batch_stats(
        y.data<float>(), mean.data<float>(), invstd.data<float>(), rmean.data<float>(),
        rvar.data<float>(), x.data<float>(), w.data<float>(), b.data<float>(), s, kEps, kMomentum,
        st);
  } else if (tf32) {
    kiln::cuda::conv2d_forward_tf32(y.data<float>(), x.data<float>(), w.data<float>(),
                                    b.data<float>(), s, st);
    kiln::cuda::batchnorm_batch_stats(
        mean.data<float>(), invstd.data<float>(), rmean.data<float>(), rvar.data<float>(),
        y.data<float>(), {int64_t{s.n} * s.out_h() * s.out_w(), s.c_out}, kEps, kMomentum, st);
  } else if (fused) {
    kiln::cuda::conv2d_forward_batch_stats(y.data<float>(), mean.data<float>(),
                                           invstd.data<float>(), rmean.data<float>(),
                                           rvar.data<float>(), x.data<float>(), w.data<float>(),
                                           b.data<float>(), s, kEps, kMomentum, st);
  } else {
    kiln::cuda::conv2d_forward(y.data<float>(), x.data<float>(), w.data<float>(), b.data<float>(),
                               s, st);
    kiln::cuda::batchnorm_batch_stats(
        mean.data<float>(), invstd.data<float>(), rmean.data<float>(), rvar.data<float>(),
        y.data<float>(), {int64_t{s.n} * s.out_h() * s.out_w(), s.c_out}, kEps, kMomentum, st);
  }
  return {y.to_vector<float>(), mean.to_vector<float>(), invstd.to_vector<float>(),
          rmean.to_vector<float>(), rvar.to_vector<float>()};
}

void check_case(const Conv2dShape& s, bool tf32) {
  const Stats ref = run(s, false, tf32);
  auto runs = kiln::test::run_in_every_order([&] { return run(s, true, tf32).all(); });
  REQUIRE(kiln::test::first_difference(runs) == "");
  const Stats got = run(s, true, tf32);  // again: the counters were left zero
  REQUIRE(got.all() == runs.results[0]);
  CHECK(got.y == ref.y);
  const int c = s.c_out;
  const int64_t m = int64_t{s.n} * s.out_h() * s.out_w();
  const double terms = 128 + 24;
  for (int ch = 0; ch < c; ++ch) {
    INFO("channel " << ch);
    double r = 0, dev = 0;
    for (int64_t i = 0; i < m; ++i) {
      r = std::max(r, std::fabs(double(ref.y[i * c + ch])));
      dev = std::max(dev, std::fabs(double(ref.y[i * c + ch]) - ref.mean[ch]));
    }
    const double tol_mean = terms * kU * r, tol_var = 4 * terms * kU * r * dev;
    CHECK(std::fabs(got.mean[ch] - ref.mean[ch]) <= tol_mean);
    const double istd = ref.invstd[ch];
    const double var = 1.0 / (istd * istd) - kEps;
    CHECK(std::fabs(got.invstd[ch] - istd) <= 0.5 * istd * tol_var / (var + kEps) + 2 * kU * istd);
    CHECK(std::fabs(got.running_mean[ch] - ref.running_mean[ch]) <=
          kMomentum * tol_mean + 2 * kU * std::fabs(ref.running_mean[ch]));
    CHECK(std::fabs(got.running_var[ch] - ref.running_var[ch]) <=
          kMomentum * tol_var * m / (m - 1.0) + 2 * kU * std::fabs(ref.running_var[ch]));
  }
}

TEST_CASE("conv2d_forward_batch_stats: the unfused statistics within Chan's bound, every order",
          PARITY_TAG) {
  for (const Case& k : cases()) {
    INFO(k.name);
    check_case(k.s, false);
  }
}

// The tensor-core forward's epilogue (64×64 tiles, no split-K): the shapes the fp32 implicit GEMM
// takes (the first layer keeps the fp32 direct kernel in every precision).
TEST_CASE("conv2d_forward_tf32_batch_stats: the unfused tf32 statistics within the same bound",
          PARITY_TAG) {
  for (const Case& k : cases()) {
    if (k.s.c_in <= 3) continue;
    INFO(k.name);
    check_case(k.s, true);
  }
}

TEST_CASE("conv2d_forward_batch_stats: runs only where the epilogue exists, and checks its tensors",
          PARITY_TAG) {
  const Tensor x = kiln::test::uniform_tensor({2, 6, 6, 4}, 1, Device::cuda);
  const Tensor w = kiln::test::uniform_tensor({8, 3, 3, 4}, 2, Device::cuda);
  Tensor y({2, 6, 6, 8}, kiln::DType::f32, Device::cuda);
  Tensor a({8}, kiln::DType::f32, Device::cuda), b({8}, kiln::DType::f32, Device::cuda);
  Tensor rm({8}, kiln::DType::f32, Device::cuda), rv({8}, kiln::DType::f32, Device::cuda);
  const kiln::Conv2dParams p{1, 1, 1, 1, kiln::Precision::fp32};
  CHECK(kiln::conv2d_forward_batch_stats(y, a, b, rm, rv, x, w, nullptr, p, kEps, kMomentum));
  // tf32 takes the tensor-core epilogue; bf16 (whose convolution writes through a conversion)
  // has none: false, nothing done.
  kiln::Conv2dParams tf32 = p, bf16 = p;
  tf32.precision = kiln::Precision::tf32;
  bf16.precision = kiln::Precision::bf16;
  CHECK(kiln::conv2d_forward_batch_stats(y, a, b, rm, rv, x, w, nullptr, tf32, kEps, 0.1));
  CHECK_FALSE(kiln::conv2d_forward_batch_stats(y, a, b, rm, rv, x, w, nullptr, bf16, kEps, 0.1));
  Tensor short_stats({7}, kiln::DType::f32, Device::cuda);
  CHECK_THROWS_WITH(
      kiln::conv2d_forward_batch_stats(y, a, b, short_stats, rv, x, w, nullptr, p, kEps, 0.1),
      Catch::Contains("conv2d_forward_batch_stats") && Catch::Contains("f32 [8]"));
  Tensor wrong_y({2, 5, 5, 8}, kiln::DType::f32, Device::cuda);
  CHECK_THROWS_WITH(
      kiln::conv2d_forward_batch_stats(wrong_y, a, b, rm, rv, x, w, nullptr, p, kEps, 0.1),
      Catch::Contains("must have shape [2, 6, 6, 8]"));
}

}  // namespace
