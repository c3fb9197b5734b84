// kernels/softmax_xent.h — fused softmax + cross-entropy (docs/math.md §3).
// logits [N][K], labels [N] (int32 in [0, K)). Outputs: loss [1] = mean over the batch of
// -log softmax(z)_label, computed stably (max subtracted, log-sum-exp); dlogits [N][K] = (ŷ − y)/N
// (overwritten; nullable); correct [N] = 1 where argmax(z) == label else 0 (nullable).
#pragma once

#include <cstdint>

#include "core/stream.h"
#include "core/tensor.h"

namespace kiln {

struct SoftmaxXentShape {
  int n = 1, classes = 1;
};

namespace cpu {
template <typename T>
void softmax_cross_entropy(T* loss, T* dlogits, int32_t* correct, const T* logits,
                           const int32_t* labels, const SoftmaxXentShape& s);
}  // namespace cpu

namespace cuda {
void softmax_cross_entropy(float* loss, float* dlogits, int32_t* correct, const float* logits,
                           const int32_t* labels, const SoftmaxXentShape& s, Stream stream);
}  // namespace cuda

// loss: [1] tensor of the logits' dtype and device; dlogits and correct optional (nullptr).
void softmax_cross_entropy(Tensor& loss, Tensor* dlogits, Tensor* correct, const Tensor& logits,
                           const Tensor& labels);

}  // namespace kiln
