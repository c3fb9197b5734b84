// kernels/softmax_xent.h — fused softmax + cross-entropy (docs/math.md §3).
// logits [N][K], labels [N] (int32 in [0, K)). Outputs: loss [1] = mean over the batch of
// -log softmax(z)_label, computed stably (max subtracted, log-sum-exp); dlogits [N][K] = (ŷ − y)/N
// (overwritten; nullable); correct [N] = 1 where argmax(z) == label else 0 (nullable).
#pragma once

#include <cstdint>

#include "core/host_device.h"
#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct SoftmaxXentShape {
  int n = 1, classes = 1;
};

// The running sums of a training epoch's metrics, [3] f64: Σ mean_loss·n (the batch's mean loss
// widened to double, times its size), Σ correct, and flags (bit 0: a batch's loss was not finite;
// bit 1: a batch's gradient norm was not finite).
constexpr int kMetricSums = 3;

// The update of the sums by one batch (mean loss, correct count, flags), shared by the CPU loop and
// the CUDA kernel so both do the same arithmetic. `first` overwrites instead of adding.
KILN_HD inline void add_metric_sums(double* sums, double mean, int n, int64_t right, int flags,
                                    bool first) {
  if (mean - mean != 0.0) flags |= 1;  // NaN or ±Inf (no fast-math here)
  const double loss = mean * n;
  if (first) {
    sums[0] = loss;
    sums[1] = static_cast<double>(right);
    sums[2] = flags;
    return;
  }
  sums[0] += loss;
  sums[1] += static_cast<double>(right);
  sums[2] = static_cast<int>(sums[2]) | flags;
}

namespace cpu {
template <typename T>
void accumulate_metrics(double* sums, const T* loss, const int32_t* correct, int n,
                        const int32_t* grad_not_finite, bool first);
template <typename T>
void softmax_cross_entropy(T* loss, T* dlogits, int32_t* correct, const T* logits,
                           const int32_t* labels, const SoftmaxXentShape& s);
}  // namespace cpu

namespace cuda {
void softmax_cross_entropy(float* loss, float* dlogits, int32_t* correct, const float* logits,
                           const int32_t* labels, const SoftmaxXentShape& s, Stream stream);
void accumulate_metrics(double* sums, const float* loss, const int32_t* correct, int n,
                        const int32_t* grad_not_finite, bool first, Stream stream);
}  // namespace cuda

// loss: [1] tensor of the logits' dtype and device; dlogits and correct optional (nullptr).
void softmax_cross_entropy(Tensor& loss, Tensor* dlogits, Tensor* correct, const Tensor& logits,
                           const Tensor& labels);

// Adds one batch to the metric sums (on the device, in stream order: nothing is read back).
// sums [kMetricSums] f64, loss [1] and correct [n] i32 as softmax_cross_entropy wrote them,
// grad_not_finite: i32 [1] (nonzero: the batch's gradient norm was not finite) or nullptr, all on
// one device. first: overwrite the sums instead of adding (the first batch after a reset).
void accumulate_metrics(Tensor& sums, const Tensor& loss, const Tensor& correct,
                        const Tensor* grad_not_finite, bool first);

}  // namespace kiln
