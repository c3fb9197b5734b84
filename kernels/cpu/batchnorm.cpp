// kernels/cpu/batchnorm.cpp — CPU reference of batch normalisation over the channels of an NHWC
// activation, seen as x [M][C] with M = N·H·W. Plain loops templated on float and double (the
// double instance is the oracle; the float instance is also the CPU training path, hence
// the OpenMP).
//
//   training forward   μ = (1/M) Σ x,  σ² = (1/M) Σ (x − μ)²  (biased, used to normalise),
//                      x̂ = (x − μ)·invstd with invstd = 1/√(σ² + ε),  y = γ x̂ + β;
//                      running_mean ← (1 − momentum)·running_mean + momentum·μ,
//                      running_var  ← (1 − momentum)·running_var  + momentum·σ²·M/(M − 1)
//                      (unbiased, as PyTorch; docs/math.md §4). Requires M ≥ 2.
//   eval forward       y = γ (x − running_mean)/√(running_var + ε) + β
//   backward           docs/math.md §2, the one-pass form of the Ioffe–Szegedy derivation:
//                      dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂));  dγ += Σ dy·x̂;  dβ += Σ dy
//   backward (eval)    dx = dy·γ/√(running_var + ε)
//
// Per-channel sums are taken in double over fixed blocks of rows, the blocks summed in order, so
// the result is the same for any number of threads (docs/design.md §3: deterministic reductions).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/batchnorm.h"

namespace kiln::cpu {
namespace {

constexpr int64_t kRowBlock = 256;
constexpr int64_t kParallelMin = 1 << 14;  // fewer elements than this: one thread is faster

// sum[c] = Σ_m f(m, c) in double, in a fixed order.
template <typename F>
std::vector<double> channel_sums(const BatchNormShape& s, F f) {
  const int64_t blocks = (s.m + kRowBlock - 1) / kRowBlock;
  std::vector<double> partial(static_cast<size_t>(blocks * s.c), 0.0);
#pragma omp parallel for schedule(static) if (s.m * s.c >= kParallelMin)
  for (int64_t bk = 0; bk < blocks; ++bk) {
    double* p = &partial[static_cast<size_t>(bk * s.c)];
    const int64_t end = std::min(s.m, (bk + 1) * kRowBlock);
    for (int64_t m = bk * kRowBlock; m < end; ++m)
      for (int c = 0; c < s.c; ++c) p[c] += f(m, c);
  }
  std::vector<double> sum(static_cast<size_t>(s.c), 0.0);
  for (int64_t bk = 0; bk < blocks; ++bk)
    for (int c = 0; c < s.c; ++c) sum[c] += partial[static_cast<size_t>(bk * s.c + c)];
  return sum;
}

}  // namespace

template <typename T>
void batchnorm_batch_stats(T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                           double* scale, double* shift, const T* x, const T* gamma, const T* beta,
                           const BatchNormShape& s, double eps, double momentum) {
  const int64_t M = s.m;
  const int C = s.c;
  std::vector<double> mean =
      channel_sums(s, [&](int64_t m, int c) { return double(x[m * C + c]); });
  for (double& v : mean) v /= static_cast<double>(M);
  // Two passes (mean, then squared deviations): no cancellation as in E[x²] − E[x]².
  std::vector<double> var = channel_sums(s, [&](int64_t m, int c) {
    const double d = double(x[m * C + c]) - mean[c];
    return d * d;
  });
  for (double& v : var) v /= static_cast<double>(M);
  for (int c = 0; c < C; ++c) {  // y = x·scale + shift
    const double invstd = 1.0 / std::sqrt(var[c] + eps);
    scale[c] = double(gamma[c]) * invstd;
    shift[c] = double(beta[c]) - mean[c] * scale[c];
    save_mean[c] = static_cast<T>(mean[c]);
    save_invstd[c] = static_cast<T>(invstd);
    const double unbiased = M > 1 ? var[c] * double(M) / double(M - 1) : var[c];
    running_mean[c] =
        static_cast<T>((1.0 - momentum) * double(running_mean[c]) + momentum * mean[c]);
    running_var[c] =
        static_cast<T>((1.0 - momentum) * double(running_var[c]) + momentum * unbiased);
  }
}

template <typename T>
void batchnorm_forward_train(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, const BatchNormShape& s,
                             double eps, double momentum) {
  const int64_t M = s.m;
  const int C = s.c;
  std::vector<double> scale(C), shift(C);
  batchnorm_batch_stats(save_mean, save_invstd, running_mean, running_var, scale.data(),
                        shift.data(), x, gamma, beta, s, eps, momentum);
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t m = 0; m < M; ++m)
    for (int c = 0; c < C; ++c)
      y[m * C + c] = static_cast<T>(double(x[m * C + c]) * scale[c] + shift[c]);
}

template <typename T>
void batchnorm_forward_eval(T* y, const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, const BatchNormShape& s, double eps) {
  const int C = s.c;
  std::vector<double> scale(C), shift(C);
  for (int c = 0; c < C; ++c) {
    scale[c] = double(gamma[c]) / std::sqrt(double(running_var[c]) + eps);
    shift[c] = double(beta[c]) - double(running_mean[c]) * scale[c];
  }
#pragma omp parallel for schedule(static) if (s.m * C >= kParallelMin)
  for (int64_t m = 0; m < s.m; ++m)
    for (int c = 0; c < C; ++c)
      y[m * C + c] = static_cast<T>(double(x[m * C + c]) * scale[c] + shift[c]);
}

template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                        const T* save_mean, const T* save_invstd, const BatchNormShape& s) {
  const int64_t M = s.m;
  const int C = s.c;
  auto xhat = [&](int64_t m, int c) {
    return (double(x[m * C + c]) - double(save_mean[c])) * double(save_invstd[c]);
  };
  const std::vector<double> sum_dy =
      channel_sums(s, [&](int64_t m, int c) { return double(dy[m * C + c]); });
  const std::vector<double> sum_dy_xhat =
      channel_sums(s, [&](int64_t m, int c) { return double(dy[m * C + c]) * xhat(m, c); });
  std::vector<double> k(C);  // γ·invstd/M
  for (int c = 0; c < C; ++c) {
    k[c] = double(gamma[c]) * double(save_invstd[c]) / double(M);
    dgamma[c] = static_cast<T>(double(dgamma[c]) + sum_dy_xhat[c]);
    dbeta[c] = static_cast<T>(double(dbeta[c]) + sum_dy[c]);
  }
  // docs/math.md §2, one-pass form: dx = γ·invstd/M · (M·dy − Σdy − x̂·Σ(dy·x̂)).
#pragma omp parallel for schedule(static) if (M * C >= kParallelMin)
  for (int64_t m = 0; m < M; ++m)
    for (int c = 0; c < C; ++c)
      dx[m * C + c] = static_cast<T>(
          k[c] * (double(M) * double(dy[m * C + c]) - sum_dy[c] - xhat(m, c) * sum_dy_xhat[c]));
}

template <typename T>
void batchnorm_backward_eval(T* dx, const T* dy, const T* gamma, const T* running_var,
                             const BatchNormShape& s, double eps) {
  const int C = s.c;
  std::vector<double> scale(C);
  for (int c = 0; c < C; ++c) scale[c] = double(gamma[c]) / std::sqrt(double(running_var[c]) + eps);
#pragma omp parallel for schedule(static) if (s.m * C >= kParallelMin)
  for (int64_t m = 0; m < s.m; ++m)
    for (int c = 0; c < C; ++c) dx[m * C + c] = static_cast<T>(double(dy[m * C + c]) * scale[c]);
}

#define KILN_INSTANTIATE_BATCHNORM(T)                                                           \
  template void batchnorm_batch_stats<T>(T*, T*, T*, T*, double*, double*, const T*, const T*,  \
                                         const T*, const BatchNormShape&, double, double);      \
  template void batchnorm_forward_train<T>(T*, T*, T*, T*, T*, const T*, const T*, const T*,    \
                                           const BatchNormShape&, double, double);              \
  template void batchnorm_forward_eval<T>(T*, const T*, const T*, const T*, const T*, const T*, \
                                          const BatchNormShape&, double);                       \
  template void batchnorm_backward<T>(T*, T*, T*, const T*, const T*, const T*, const T*,       \
                                      const T*, const BatchNormShape&);                         \
  template void batchnorm_backward_eval<T>(T*, const T*, const T*, const T*,                    \
                                           const BatchNormShape&, double);
KILN_INSTANTIATE_BATCHNORM(float)
KILN_INSTANTIATE_BATCHNORM(double)
#undef KILN_INSTANTIATE_BATCHNORM

}  // namespace kiln::cpu
