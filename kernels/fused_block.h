// kernels/fused_block.h — batchnorm (training) → LeakyReLU → max pooling → dropout as one op, the
// part of a convolution block that follows the convolution (docs/kernels.md, "Fused block").
//
// x [N][H][W][C] is the convolution's output; y and argmax [N][OH][OW][C] are the pooled,
// dropped-out output and the pooling argmax. Only y and argmax are written: the full-resolution
// batchnorm output and activation are never stored.
//
//   forward   mean, invstd, running stats exactly as batchnorm_forward_train; then per output
//             element the window maximum of a = leaky(bn(x)) (ties and argmax as
//             maxpool2d_forward), times dropout's keep/(1 − p) drawn from Philox (seed, offset,
//             flat index of y) as dropout_forward.
//   backward  the chain of dropout_backward → maxpool2d_backward → leaky_relu_backward →
//             batchnorm_backward, with LeakyReLU's sign recomputed from x, save_mean and
//             save_invstd (bn(x) is recomputed bit for bit as the forward computed it) and
//             batchnorm's two per-channel reductions (Σg, Σg·(x − mean)) taken in the pass that
//             routes dy. dx overwritten; dgamma, dbeta accumulate (+=).
//
// Every element is computed with the roundings of the unfused ops, in the same order, so the fused
// op equals the four unfused ops bit for bit on the CPU (float and double) and on the CUDA device
// (the reductions use the same tiles and trees as kernels/batchnorm.cu).
#pragma once

#include <cstdint>

#include "core/philox.h"
#include "core/stream.h"
#include "core/tensor.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/pooling.h"

namespace kiln {

// The four ops' parameters. pool: the input extents (n, h, w, c) and the window.
struct FusedBlockShape {
  Pool2dShape pool;
  double eps = 1e-5, momentum = 0.1;  // batchnorm
  double slope = 0.01;                // LeakyReLU
  float p = 0.f;                      // dropout, in [0, 1)
  uint64_t seed = 0;                  // dropout's Philox stream of this forward: seed and
  PhiloxOffset offset;                // offset (a number, or on CUDA a device address)
  // Forward: save_mean, save_invstd and the running statistics were already written by the
  // convolution's epilogue (conv2d_forward_batch_stats); only the fused pass runs.
  bool stats_ready = false;
};

namespace cpu {
template <typename T>
void fused_block_forward(T* y, uint8_t* argmax, T* save_mean, T* save_invstd, T* running_mean,
                         T* running_var, const T* x, const T* gamma, const T* beta,
                         const FusedBlockShape& s);
template <typename T>
void fused_block_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const uint8_t* argmax,
                          const T* x, const T* gamma, const T* beta, const T* save_mean,
                          const T* save_invstd, const FusedBlockShape& s);
}  // namespace cpu

namespace cuda {
void fused_block_forward(float* y, uint8_t* argmax, float* save_mean, float* save_invstd,
                         float* running_mean, float* running_var, const float* x,
                         const float* gamma, const float* beta, const FusedBlockShape& s,
                         Stream stream);
void fused_block_backward(float* dx, float* dgamma, float* dbeta, const float* dy,
                          const uint8_t* argmax, const float* x, const float* gamma,
                          const float* beta, const float* save_mean, const float* save_invstd,
                          const FusedBlockShape& s, Stream stream);
// The convolution before a block, with the block's batchnorm statistics gathered in its epilogue
// (kernels/conv2d.cu; docs/kernels.md, "Batch statistics in the convolution's epilogue"): y as
// conv2d_forward writes it; save_mean, save_invstd, running_mean and running_var as
// batchnorm_batch_stats would from y, within the tolerance derived there (a different summation,
// not the same bits). One launch instead of the convolution's and batchnorm_batch_stats' three.
void conv2d_forward_batch_stats(float* y, float* save_mean, float* save_invstd, float* running_mean,
                                float* running_var, const float* x, const float* w, const float* b,
                                const Conv2dShape& s, double eps, double momentum, Stream stream);
}  // namespace cuda

// Functional API. x [N, H, W, C]; y, argmax (u8) [N, OH, OW, C]; every per-channel tensor [C].
struct FusedBlockParams {
  double eps = 1e-5, momentum = 0.1, slope = 0.01;
  Pool2dParams pool;
  float p = 0.f;
  uint64_t seed = 0;
  PhiloxOffset offset;       // a device address (PhiloxOffset::device) only for CUDA tensors
  bool stats_ready = false;  // as FusedBlockShape::stats_ready (CUDA only)
};
void fused_block_forward(Tensor& y, Tensor& argmax, Tensor& save_mean, Tensor& save_invstd,
                         Tensor& running_mean, Tensor& running_var, const Tensor& x,
                         const Tensor& gamma, const Tensor& beta, const FusedBlockParams& p);
void fused_block_backward(Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& dy,
                          const Tensor& argmax, const Tensor& x, const Tensor& gamma,
                          const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd,
                          const FusedBlockParams& p);
// The convolution y = conv(x, w, b) and, on the CUDA device in fp32 or tf32, the statistics of the
// batchnorm that follows it in the same launch (cuda::conv2d_forward_batch_stats, or
// cuda::conv2d_forward_tf32_batch_stats; the tf32 first layer as conv2d_forward runs it: the fp32
// kernel on rounded operands); returns false, having done nothing, where that path does not exist
// (the CPU, bf16), so the caller
// runs conv2d_forward and lets fused_block_forward take the statistics. Tensors as
// conv2d_forward and fused_block_forward.
bool conv2d_forward_batch_stats(Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                Tensor& running_mean, Tensor& running_var, const Tensor& x,
                                const Tensor& w, const Tensor* b, const Conv2dParams& p, double eps,
                                double momentum);

}  // namespace kiln
