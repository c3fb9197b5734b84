// kernels/optimizer.h — fused parameter updates over one flat buffer (PyTorch's semantics).
//
// SGD:  g = grad + wd·p; buf = step == 1 ? g : momentum·buf + (1 − dampening)·g;
//       g = nesterov ? g + momentum·buf : buf (if momentum != 0);  p -= lr·g.
// Adam: g = grad + wd·p (Adam) or p *= 1 − lr·wd (AdamW); m = β1 m + (1−β1) g; v = β2 v + (1−β2) g²;
//       p -= lr/(1−β1^t) · m / (sqrt(v)/sqrt(1−β2^t) + eps).    t = step, starting at 1.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

// device_coefficients (CUDA only; nullptr: unused): device memory holding the update's
// coefficients — lr and step folded in, as cuda::sgd_coefficients / adam_coefficients write them —
// which the kernel then reads instead of the lr and step given here (the other fields still choose
// the kernel). A step captured into a CUDA graph uses this, so that one graph serves every step.
struct SgdParams {
  float lr = 0.01f, momentum = 0.f, dampening = 0.f, weight_decay = 0.f;
  bool nesterov = false;
  int64_t step = 1;
  const void* device_coefficients = nullptr;
};

struct AdamParams {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
  bool decoupled_weight_decay = false;  // true: AdamW
  int64_t step = 1;
  const void* device_coefficients = nullptr;  // as SgdParams'
};

namespace cpu {
template <typename T>
void sgd_update(T* param, T* momentum_buf /* nullable if momentum == 0 */, const T* grad, int64_t n,
                const SgdParams& p);
template <typename T>
void adam_update(T* param, T* m, T* v, const T* grad, int64_t n, const AdamParams& p);
}  // namespace cpu

namespace cuda {
void sgd_update(float* param, float* momentum_buf, const float* grad, int64_t n, const SgdParams& p,
                Stream stream);
void adam_update(float* param, float* m, float* v, const float* grad, int64_t n,
                 const AdamParams& p, Stream stream);
// The coefficients a kernel reads through device_coefficients: their size, and the host bytes for
// `p` (copy them to device memory before the update runs). The same arithmetic as an update given
// `p` directly, so both give the same bits.
size_t sgd_coefficient_bytes();
void sgd_coefficients(const SgdParams& p, void* out);
size_t adam_coefficient_bytes();
void adam_coefficients(const AdamParams& p, void* out);
}  // namespace cuda

void sgd_update(Tensor& param, Tensor* momentum_buf, const Tensor& grad, const SgdParams& p);
void adam_update(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamParams& p);

}  // namespace kiln
