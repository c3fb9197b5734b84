// kernels/batchnorm.h — batch normalisation over the channels of an NHWC activation.
//
// x, y [M][C] with M = N*H*W; gamma, beta, running_mean, running_var, save_mean, save_invstd [C].
// Training forward: batch mean and biased variance per channel; running stats updated with momentum,
// using the UNBIASED variance (M/(M-1)) as PyTorch does. Backward: docs/math.md §2.
// Gradient semantics: dx overwritten; dgamma, dbeta accumulate.
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct BatchNormShape {
  int64_t m = 1;  // N*H*W
  int c = 1;
};

namespace cpu {
template <typename T>
void batchnorm_forward_train(T* y, T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                             const T* x, const T* gamma, const T* beta, const BatchNormShape& s,
                             double eps, double momentum);
// The statistics half of batchnorm_forward_train: save_mean, save_invstd and the running stats,
// and the affine map y = x·scale[c] + shift[c] (in double) that the forward applies, so a fused
// op (kernels/fused_block.h) applies exactly the same map.
template <typename T>
void batchnorm_batch_stats(T* save_mean, T* save_invstd, T* running_mean, T* running_var,
                           double* scale, double* shift, const T* x, const T* gamma, const T* beta,
                           const BatchNormShape& s, double eps, double momentum);
template <typename T>
void batchnorm_forward_eval(T* y, const T* x, const T* gamma, const T* beta, const T* running_mean,
                            const T* running_var, const BatchNormShape& s, double eps);
template <typename T>
void batchnorm_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const T* x, const T* gamma,
                        const T* save_mean, const T* save_invstd, const BatchNormShape& s);
// Backward through eval mode (statistics are constants): dx = dy * gamma / sqrt(running_var + eps).
// Only dx (analysis: saliency, filter visualisation); parameter gradients are not touched.
template <typename T>
void batchnorm_backward_eval(T* dx, const T* dy, const T* gamma, const T* running_var,
                             const BatchNormShape& s, double eps);
}  // namespace cpu

namespace cuda {
void batchnorm_forward_train(float* y, float* save_mean, float* save_invstd, float* running_mean,
                             float* running_var, const float* x, const float* gamma,
                             const float* beta, const BatchNormShape& s, double eps,
                             double momentum, Stream stream);
void batchnorm_forward_eval(float* y, const float* x, const float* gamma, const float* beta,
                            const float* running_mean, const float* running_var,
                            const BatchNormShape& s, double eps, Stream stream);
// The statistics half of batchnorm_forward_train (save_mean, save_invstd, running stats; no y):
// two launches, for kernels that apply the normalisation themselves (kernels/fused_block.h).
void batchnorm_batch_stats(float* save_mean, float* save_invstd, float* running_mean,
                           float* running_var, const float* x, const BatchNormShape& s, double eps,
                           double momentum, Stream stream);
void batchnorm_backward(float* dx, float* dgamma, float* dbeta, const float* dy, const float* x,
                        const float* gamma, const float* save_mean, const float* save_invstd,
                        const BatchNormShape& s, Stream stream);
void batchnorm_backward_eval(float* dx, const float* dy, const float* gamma,
                             const float* running_var, const BatchNormShape& s, double eps,
                             Stream stream);
// The device halves of a synchronised batchnorm (layers/batchnorm.h merges the ranks' values on
// the host, [C] at a time). moments [2][C] f64: this batch's mean and M2 = Σ (x − mean)² per
// channel, from the same shifted sums as the statistics above.
void batchnorm_moments(double* moments, const float* x, const BatchNormShape& s, Stream stream);
// y = (x − mean)·(γ·invstd) + β with the given (global) mean and invstd.
void batchnorm_normalize(float* y, const float* x, const float* gamma, const float* beta,
                         const float* mean, const float* invstd, const BatchNormShape& s,
                         Stream stream);
// dgamma += Σ dy·x̂, dbeta += Σ dy over this batch, and sums [2][C] f64 = (Σ dy, Σ dy·x̂),
// x̂ = (x − mean)·invstd.
void batchnorm_grad_sums(float* dgamma, float* dbeta, double* sums, const float* dy, const float* x,
                         const float* mean, const float* invstd, const BatchNormShape& s,
                         Stream stream);
// dx = γ·invstd·(dy − coef[0][c] − x̂·coef[1][c]) (coef [2][C]: the global mean of dy and of
// dy·x̂), overwritten.
void batchnorm_backward_dx(float* dx, const float* dy, const float* x, const float* gamma,
                           const float* mean, const float* invstd, const float* coef,
                           const BatchNormShape& s, Stream stream);
}  // namespace cuda

// Functional API (x: any rank >= 2 with channels last; every [C] tensor has C elements).
void batchnorm_forward_train(Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                             Tensor& running_mean, Tensor& running_var, const Tensor& x,
                             const Tensor& gamma, const Tensor& beta, double eps = 1e-5,
                             double momentum = 0.1);
void batchnorm_forward_eval(Tensor& y, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var,
                            double eps = 1e-5);
void batchnorm_backward(Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& dy,
                        const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                        const Tensor& save_invstd);
void batchnorm_backward_eval(Tensor& dx, const Tensor& dy, const Tensor& gamma,
                             const Tensor& running_var, double eps = 1e-5);
// The device halves of a synchronised batchnorm (CUDA f32 only: on the CPU, BatchNorm2d computes
// them in its own host loops). moments, sums: [2][C] f64 on x's device; coef [2][C] f32.
void batchnorm_moments(Tensor& moments, const Tensor& x);
void batchnorm_normalize(Tensor& y, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                         const Tensor& mean, const Tensor& invstd);
void batchnorm_grad_sums(Tensor& dgamma, Tensor& dbeta, Tensor& sums, const Tensor& dy,
                         const Tensor& x, const Tensor& mean, const Tensor& invstd);
void batchnorm_backward_dx(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& gamma,
                           const Tensor& mean, const Tensor& invstd, const Tensor& coef);

}  // namespace kiln
