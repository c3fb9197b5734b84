// kernels/softmax_xent.cu — fused softmax + cross-entropy on the CUDA device (docs/math.md §3).
//
// One launch, one block: each thread takes samples n = t, t + blockDim, ... in turn; per sample
// it finds the maximum logit (and its first index, for `correct`), sums exp(z − max), and writes
// dlogits = (softmax − onehot)/N; its losses −log softmax(z)_label = (max − z_label) + log Σ exp(z −
// max) — stable for logits of any size — are summed in double in that fixed order, then a CUB block
// reduction (a fixed tree) sums the threads: the mean loss is deterministic, with no second launch
// and no atomics. With the flagship's batch (N ≤ a few hundred, K = 7) every thread handles at most
// one sample and the whole kernel is a few microseconds; a label outside [0, K) makes the loss NaN
// instead of reading out of bounds.
// Error bound: docs/kernels-elementwise.md.
#include "core/device_code.h"

#include <cub/block/block_reduce.cuh>

#include <cstdint>

#include "core/error.h"
#include "core/launch.h"
#include "kernels/softmax_xent.h"

namespace kiln::cuda {
namespace {

constexpr int kBlock = 256;

__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    softmax_cross_entropy_kernel(float* __restrict__ loss, float* __restrict__ dlogits,
                                 int32_t* __restrict__ correct, const float* __restrict__ logits,
                                 const int32_t* __restrict__ labels, int n, int k) {
  using BlockReduce = cub::BlockReduce<double, kBlock>;
  KILN_SHARED(typename BlockReduce::TempStorage, temp, [1]);
  const float inv_n = 1.f / static_cast<float>(n);
  double local = 0.0;
  for (int s = threadIdx.x; s < n; s += kBlock) {
    const float* z = logits + static_cast<int64_t>(s) * k;
    float zmax = z[0];
    int amax = 0;
    for (int j = 1; j < k; ++j) {
      if (z[j] > zmax) {
        zmax = z[j];
        amax = j;
      }
    }
    float sum = 0.f;
    for (int j = 0; j < k; ++j) sum += expf(z[j] - zmax);
    const int label = labels[s];
    const bool valid = label >= 0 && label < k;
    local += valid ? static_cast<double>(zmax - z[label]) + log(static_cast<double>(sum))
                   : static_cast<double>(NAN);
    if (dlogits != nullptr) {
      float* g = dlogits + static_cast<int64_t>(s) * k;
      const float inv_sum = 1.f / sum;
      for (int j = 0; j < k; ++j) {
        const float p = expf(z[j] - zmax) * inv_sum;
        g[j] = ((j == label) ? p - 1.f : p) * inv_n;
      }
    }
    if (correct != nullptr) correct[s] = (valid && amax == label) ? 1 : 0;
  }
  const double total = BlockReduce(temp[0]).Sum(local);
  if (threadIdx.x == 0) loss[0] = static_cast<float>(total / n);
}

// One block: the batch's correct flags summed by a CUB block reduction (integers: exact in any
// order), then thread 0 updates the three sums with the arithmetic of the CPU version.
__global__ void KILN_LAUNCH_BOUNDS(kBlock)
    accumulate_metrics_kernel(double* __restrict__ sums, const float* __restrict__ loss,
                              const int32_t* __restrict__ correct, int n,
                              const int32_t* __restrict__ grad_not_finite, bool first) {
  using BlockReduce = cub::BlockReduce<int, kBlock>;
  KILN_SHARED(typename BlockReduce::TempStorage, temp, [1]);
  int local = 0;
  for (int i = threadIdx.x; i < n; i += kBlock) local += correct[i];
  const int right = BlockReduce(temp[0]).Sum(local);
  if (threadIdx.x != 0) return;
  const int flags = grad_not_finite != nullptr && grad_not_finite[0] != 0 ? 2 : 0;
  add_metric_sums(sums, static_cast<double>(loss[0]), n, right, flags, first);
}

}  // namespace

void accumulate_metrics(double* sums, const float* loss, const int32_t* correct, int n,
                        const int32_t* grad_not_finite, bool first, Stream stream) {
  KILN_CHECK(n >= 1, "cuda::accumulate_metrics: bad batch size ", n);
  KILN_CHECK(sums != nullptr && loss != nullptr && correct != nullptr,
             "cuda::accumulate_metrics: null pointer");
  cost::simt("accumulate_metrics", n, cost::f32(1 + int64_t{n}) + 8 * 8);  // 4 double sums, r+w
  launch({1, kBlock, 0, stream}, accumulate_metrics_kernel, sums, loss, correct, n, grad_not_finite,
         first);
}

void softmax_cross_entropy(float* loss, float* dlogits, int32_t* correct, const float* logits,
                           const int32_t* labels, const SoftmaxXentShape& s, Stream stream) {
  KILN_CHECK(s.n >= 1 && s.classes >= 1, "cuda::softmax_cross_entropy: bad shape n=", s.n,
             " classes=", s.classes);
  KILN_CHECK(loss != nullptr && logits != nullptr && labels != nullptr,
             "cuda::softmax_cross_entropy: null pointer");
  cost::simt("softmax_cross_entropy", 5 * s.n * s.classes,
             cost::f32(2 * s.n * s.classes + 2 * s.n + 1));
  launch({1, kBlock, 0, stream}, softmax_cross_entropy_kernel, loss, dlogits, correct, logits,
         labels, s.n, s.classes);
}

}  // namespace kiln::cuda
