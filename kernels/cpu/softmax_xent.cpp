// kernels/cpu/softmax_xent.cpp — CPU reference of the fused softmax + cross-entropy (plain loops;
// the double instance is the oracle). Implements docs/math.md §3: ŷ = softmax(z),
// L = −Σ_t y_t log ŷ_t with y the one-hot label, ∂L/∂z_t = ŷ_t − y_t; averaged over the batch, so
// dlogits = (ŷ − y)/N and loss = (1/N) Σ_n L_n.
//
// Stability for logits of any magnitude: with m = max_k z_k,
//   log Σ_k exp(z_k) = m + log s,  s = Σ_k exp(z_k − m);
// every exponent is ≤ 0 and the largest term is exactly 1, so nothing overflows and s ≥ 1 keeps
// the log away from 0. L_n = log s − (z_label − m) and ŷ_k = exp(z_k − m) / s.
#include "kernels/softmax_xent.h"

#include <cmath>

namespace kiln::cpu {

template <typename T>
void softmax_cross_entropy(T* loss, T* dlogits, int32_t* correct, const T* logits,
                           const int32_t* labels, const SoftmaxXentShape& s) {
  const int k_count = s.classes;
  // The batch mean is accumulated in double for both instances: N terms of similar size.
  double total = 0;
  for (int n = 0; n < s.n; ++n) {
    const T* z = logits + static_cast<int64_t>(n) * k_count;  // [K]
    const int label = labels[n];
    int argmax = 0;  // the first maximum, as torch.argmax
    for (int k = 1; k < k_count; ++k)
      if (z[k] > z[argmax]) argmax = k;
    const T m = z[argmax];
    T sum = 0;
    for (int k = 0; k < k_count; ++k) sum += std::exp(z[k] - m);
    const T log_sum = std::log(sum);
    // log s − (z_label − m) rather than (m + log s) − z_label: the first keeps the loss's relative
    // precision when |m| is huge and the loss is small.
    total += static_cast<double>(log_sum - (z[label] - m));
    if (dlogits != nullptr) {
      T* dz = dlogits + static_cast<int64_t>(n) * k_count;  // [K]
      const T inv_n = T(1) / static_cast<T>(s.n);
      for (int k = 0; k < k_count; ++k) {
        const T p = std::exp(z[k] - m) / sum;
        dz[k] = (p - (k == label ? T(1) : T(0))) * inv_n;
      }
    }
    if (correct != nullptr) correct[n] = argmax == label ? 1 : 0;
  }
  *loss = static_cast<T>(total / s.n);
}

template <typename T>
void accumulate_metrics(double* sums, const T* loss, const int32_t* correct, int n,
                        const int32_t* grad_not_finite, bool first) {
  int64_t right = 0;
  for (int i = 0; i < n; ++i) right += correct[i];
  const int flags = grad_not_finite != nullptr && *grad_not_finite != 0 ? 2 : 0;
  add_metric_sums(sums, static_cast<double>(*loss), n, right, flags, first);
}

template void accumulate_metrics<float>(double*, const float*, const int32_t*, int, const int32_t*,
                                        bool);
template void accumulate_metrics<double>(double*, const double*, const int32_t*, int,
                                         const int32_t*, bool);
template void softmax_cross_entropy<float>(float*, float*, int32_t*, const float*, const int32_t*,
                                           const SoftmaxXentShape&);
template void softmax_cross_entropy<double>(double*, double*, int32_t*, const double*,
                                            const int32_t*, const SoftmaxXentShape&);

}  // namespace kiln::cpu
