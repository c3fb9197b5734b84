// kernels/optimizer.cu — fused SGD and Adam/AdamW updates over one flat parameter buffer.
//
// One launch per step updates every parameter: a grid-stride loop that moves float4 through the
// parameter, gradient and state buffers when all are 16-byte aligned (scalar tail for n % 4).
// The arithmetic follows PyTorch's single-tensor implementations (torch/optim/sgd.py, adam.py,
// adamw.py), as kernels/optimizer.h states; step-dependent scalars (bias corrections) are computed
// once on the host in double and passed in. Error bound and resources: docs/kernels-elementwise.md.
#include "core/device_code.h"

#include <cmath>
#include <cstdint>
#include <cstring>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/optimizer.h"

namespace kiln::cuda {
namespace {

struct SgdCoef {
  float lr, momentum, one_minus_dampening, weight_decay;
  bool nesterov, first_step;
};

struct AdamCoef {
  float weight_decay;  // added to the gradient (Adam); 0 for AdamW
  float decay;         // parameter multiplier 1 − lr·wd (AdamW); 1 for Adam
  float beta1, one_minus_beta1, beta2, one_minus_beta2;
  float step_size;  // lr / (1 − β1^t)
  float bc2_sqrt;   // sqrt(1 − β2^t)
  float eps;
};

template <bool kMomentum>
__device__ __forceinline__ void sgd_element(float& p, float& buf, float g, const SgdCoef& c) {
  if (c.weight_decay != 0.f) g = fmaf(c.weight_decay, p, g);
  if constexpr (kMomentum) {
    buf = c.first_step ? g : fmaf(c.momentum, buf, c.one_minus_dampening * g);
    g = c.nesterov ? fmaf(c.momentum, buf, g) : buf;
  }
  p = fmaf(-c.lr, g, p);
}

__device__ __forceinline__ void adam_element(float& p, float& m, float& v, float g,
                                             const AdamCoef& c) {
  if (c.weight_decay != 0.f) g = fmaf(c.weight_decay, p, g);
  p *= c.decay;
  m = fmaf(c.beta1, m, c.one_minus_beta1 * g);
  v = fmaf(c.beta2, v, c.one_minus_beta2 * g * g);
  const float denom = sqrtf(v) / c.bc2_sqrt + c.eps;
  p -= c.step_size * (m / denom);
}

// kVec: every pointer 16-byte aligned. kMomentum: buf is used (momentum != 0).
template <bool kVec, bool kMomentum>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    sgd_update_kernel(float* __restrict__ param, float* __restrict__ buf,
                      const float* __restrict__ grad, int64_t n, SgdCoef c,
                      const SgdCoef* __restrict__ from) {
  if (from != nullptr) c = *from;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  float unused = 0.f;
  if constexpr (kVec) {
    float4* p4 = reinterpret_cast<float4*>(param);
    float4* b4 = reinterpret_cast<float4*>(buf);
    const float4* g4 = reinterpret_cast<const float4*>(grad);
    for (int64_t j = i; j < n / 4; j += stride) {
      float4 p = p4[j];
      const float4 g = g4[j];
      float4 b = make_float4(0.f, 0.f, 0.f, 0.f);
      if constexpr (kMomentum) {
        if (!c.first_step) b = b4[j];
      }
      sgd_element<kMomentum>(p.x, b.x, g.x, c);
      sgd_element<kMomentum>(p.y, b.y, g.y, c);
      sgd_element<kMomentum>(p.z, b.z, g.z, c);
      sgd_element<kMomentum>(p.w, b.w, g.w, c);
      p4[j] = p;
      if constexpr (kMomentum) b4[j] = b;
    }
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) {
    float& b = kMomentum ? buf[i] : unused;
    sgd_element<kMomentum>(param[i], b, grad[i], c);
  }
}

// kVec: every pointer 16-byte aligned.
template <bool kVec>
__global__ void KILN_LAUNCH_BOUNDS(kStreamBlock)
    adam_update_kernel(float* __restrict__ param, float* __restrict__ m, float* __restrict__ v,
                       const float* __restrict__ grad, int64_t n, AdamCoef c,
                       const AdamCoef* __restrict__ from) {
  if (from != nullptr) c = *from;
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  if constexpr (kVec) {
    float4* p4 = reinterpret_cast<float4*>(param);
    float4* m4 = reinterpret_cast<float4*>(m);
    float4* v4 = reinterpret_cast<float4*>(v);
    const float4* g4 = reinterpret_cast<const float4*>(grad);
    for (int64_t j = i; j < n / 4; j += stride) {
      float4 p = p4[j], mm = m4[j], vv = v4[j];
      const float4 g = g4[j];
      adam_element(p.x, mm.x, vv.x, g.x, c);
      adam_element(p.y, mm.y, vv.y, g.y, c);
      adam_element(p.z, mm.z, vv.z, g.z, c);
      adam_element(p.w, mm.w, vv.w, g.w, c);
      p4[j] = p;
      m4[j] = mm;
      v4[j] = vv;
    }
    i += n / 4 * 4;
  }
  for (; i < n; i += stride) adam_element(param[i], m[i], v[i], grad[i], c);
}

SgdCoef sgd_coef(const SgdParams& p) {
  return {p.lr, p.momentum, 1.f - p.dampening, p.weight_decay, p.nesterov, p.step == 1};
}

AdamCoef adam_coef(const AdamParams& p) {
  const double t = static_cast<double>(p.step);
  const double bc1 = 1.0 - std::pow(static_cast<double>(p.beta1), t);
  const double bc2 = 1.0 - std::pow(static_cast<double>(p.beta2), t);
  const bool decoupled = p.decoupled_weight_decay;
  return {decoupled ? 0.f : p.weight_decay,
          decoupled ? static_cast<float>(1.0 - static_cast<double>(p.lr) * p.weight_decay) : 1.f,
          p.beta1,
          1.f - p.beta1,
          p.beta2,
          1.f - p.beta2,
          static_cast<float>(static_cast<double>(p.lr) / bc1),
          static_cast<float>(std::sqrt(bc2)),
          p.eps};
}

}  // namespace

size_t sgd_coefficient_bytes() {
  return sizeof(SgdCoef);
}
void sgd_coefficients(const SgdParams& p, void* out) {
  const SgdCoef c = sgd_coef(p);
  std::memcpy(out, &c, sizeof c);
}
size_t adam_coefficient_bytes() {
  return sizeof(AdamCoef);
}
void adam_coefficients(const AdamParams& p, void* out) {
  const AdamCoef c = adam_coef(p);
  std::memcpy(out, &c, sizeof c);
}

void sgd_update(float* param, float* momentum_buf, const float* grad, int64_t n, const SgdParams& p,
                Stream stream) {
  KILN_CHECK(n >= 0, "cuda::sgd_update: negative size ", n);
  KILN_CHECK(p.step >= 1, "cuda::sgd_update: step counts from 1, got ", p.step);
  KILN_CHECK(!p.nesterov || (p.momentum > 0.f && p.dampening == 0.f),
             "cuda::sgd_update: Nesterov momentum requires a momentum and zero dampening");
  if (n == 0) return;
  const bool has_momentum = p.momentum != 0.f;
  KILN_CHECK(param != nullptr && grad != nullptr && (!has_momentum || momentum_buf != nullptr),
             "cuda::sgd_update: null pointer");
  const SgdCoef c = sgd_coef(p);
  const auto* from = static_cast<const SgdCoef*>(p.device_coefficients);
  const bool vec =
      aligned16(param) && aligned16(grad) && (!has_momentum || aligned16(momentum_buf));
  const LaunchConfig cfg{stream_grid(vec ? n / 4 + 1 : n), kStreamBlock, 0, stream};
  cost::simt("sgd_update", 4 * n, cost::f32((has_momentum ? 5 : 3) * n));
  if (has_momentum) {
    if (vec) {
      launch(cfg, sgd_update_kernel<true, true>, param, momentum_buf, grad, n, c, from);
    } else {
      launch(cfg, sgd_update_kernel<false, true>, param, momentum_buf, grad, n, c, from);
    }
  } else {
    float* none = nullptr;
    if (vec) {
      launch(cfg, sgd_update_kernel<true, false>, param, none, grad, n, c, from);
    } else {
      launch(cfg, sgd_update_kernel<false, false>, param, none, grad, n, c, from);
    }
  }
}

void adam_update(float* param, float* m, float* v, const float* grad, int64_t n,
                 const AdamParams& p, Stream stream) {
  KILN_CHECK(n >= 0, "cuda::adam_update: negative size ", n);
  KILN_CHECK(p.step >= 1, "cuda::adam_update: step counts from 1, got ", p.step);
  if (n == 0) return;
  KILN_CHECK(param != nullptr && m != nullptr && v != nullptr && grad != nullptr,
             "cuda::adam_update: null pointer");
  const AdamCoef c = adam_coef(p);
  const auto* from = static_cast<const AdamCoef*>(p.device_coefficients);
  const bool vec = aligned16(param) && aligned16(m) && aligned16(v) && aligned16(grad);
  const LaunchConfig cfg{stream_grid(vec ? n / 4 + 1 : n), kStreamBlock, 0, stream};
  cost::simt("adam_update", 12 * n, cost::f32(7 * n));  // param, m, v read and written; grad read
  if (vec) {
    launch(cfg, adam_update_kernel<true>, param, m, v, grad, n, c, from);
  } else {
    launch(cfg, adam_update_kernel<false>, param, m, v, grad, n, c, from);
  }
}

}  // namespace kiln::cuda
