// kernels/cpu/optimizer.cpp — CPU reference of the fused optimizer updates, exactly PyTorch's
// torch.optim.SGD / Adam / AdamW (docs/math.md §5; the formulas are in kernels/optimizer.h).
// Plain loops over one flat buffer; the double instance is the oracle, the float instance is also
// the CPU fast path (OpenMP: every element is independent).
//
// The step-dependent scalars (bias corrections) are computed once in double, as PyTorch computes
// them in Python floats, then rounded to T.
#include "kernels/optimizer.h"

#include <cmath>

namespace kiln::cpu {

// SGD (torch.optim.SGD, foreach=False):
//   g = grad + wd·p
//   if momentum ≠ 0:  buf = (step == 1) ? g : momentum·buf + (1 − dampening)·g
//                     g   = nesterov ? g + momentum·buf : buf
//   p = p − lr·g
template <typename T>
void sgd_update(T* param, T* momentum_buf, const T* grad, int64_t n, const SgdParams& p) {
  const T lr = p.lr, momentum = p.momentum, wd = p.weight_decay;
  const T one_minus_dampening = T(1) - static_cast<T>(p.dampening);
  const bool use_momentum = p.momentum != 0.f;
  const bool first = p.step == 1;
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    if (wd != T(0)) g += wd * param[i];
    if (use_momentum) {
      // On the first step the buffer is not read: PyTorch initialises it to a copy of g.
      const T buf = first ? g : momentum * momentum_buf[i] + one_minus_dampening * g;
      momentum_buf[i] = buf;
      g = p.nesterov ? g + momentum * buf : buf;
    }
    param[i] -= lr * g;
  }
}

// Adam / AdamW (torch.optim.Adam / AdamW, foreach=False, amsgrad=False), t = step ≥ 1:
//   Adam:  g = grad + wd·p          AdamW: p = p·(1 − lr·wd), g = grad
//   m = β1·m + (1 − β1)·g;   v = β2·v + (1 − β2)·g²
//   p = p − lr/(1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
template <typename T>
void adam_update(T* param, T* m, T* v, const T* grad, int64_t n, const AdamParams& p) {
  const double t = static_cast<double>(p.step);
  const T beta1 = p.beta1, beta2 = p.beta2, eps = p.eps, wd = p.weight_decay;
  const T one_minus_beta1 = T(1) - beta1, one_minus_beta2 = T(1) - beta2;
  const T step_size =
      static_cast<T>(static_cast<double>(p.lr) / (1.0 - std::pow(double(p.beta1), t)));
  const T bias_correction2_sqrt = static_cast<T>(std::sqrt(1.0 - std::pow(double(p.beta2), t)));
  const T decay = static_cast<T>(1.0 - static_cast<double>(p.lr) * p.weight_decay);
  const bool decoupled = p.decoupled_weight_decay;
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 16))
  for (int64_t i = 0; i < n; ++i) {
    T g = grad[i];
    T w = param[i];
    if (decoupled) {
      w *= decay;
    } else if (wd != T(0)) {
      g += wd * w;
    }
    const T mi = beta1 * m[i] + one_minus_beta1 * g;
    const T vi = beta2 * v[i] + one_minus_beta2 * (g * g);
    m[i] = mi;
    v[i] = vi;
    // PyTorch's order of operations: denom = √v / √(1 − β2^t) + eps; p += −step_size · (m / denom).
    const T denom = std::sqrt(vi) / bias_correction2_sqrt + eps;
    param[i] = w - step_size * (mi / denom);
  }
}

template void sgd_update<float>(float*, float*, const float*, int64_t, const SgdParams&);
template void sgd_update<double>(double*, double*, const double*, int64_t, const SgdParams&);
template void adam_update<float>(float*, float*, float*, const float*, int64_t, const AdamParams&);
template void adam_update<double>(double*, double*, double*, const double*, int64_t,
                                  const AdamParams&);

}  // namespace kiln::cpu
