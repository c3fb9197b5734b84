// kernels/cpu/dropout.cpp — CPU reference of inverted dropout (docs/math.md §6; docs/design.md §4).
//
//   keep_i = philox_uniform(seed, offset, i) ≥ p;   y_i = keep_i ? x_i / (1 − p) : 0
//   backward: dx_i = keep_i ? dy_i / (1 − p) : 0   (dx overwritten; the same mask, regenerated)
//
// The mask comes from the same __host__ __device__ Philox the CUDA kernel uses, so both devices
// drop the same elements for the same (seed, offset). The float instance is also the CPU fast path:
// OpenMP over blocks of four elements (one Philox call yields four uniforms).
#include "kernels/dropout.h"

#include "core/philox.h"

namespace kiln::cpu {
namespace {

// out_i = keep_i ? in_i · scale : 0 — forward and backward are the same map.
template <typename T>
void apply_dropout_mask(T* out, const T* in, int64_t n, float p, uint64_t seed, uint64_t offset,
                        const DropoutSamples& samples) {
  const T scale = T(1) / (T(1) - static_cast<T>(p));
  if (!samples.identity()) {  // placed in a larger batch: element i draws mask index m(i)
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 16))
    for (int64_t i = 0; i < n; ++i) {
      const bool keep = philox_uniform(seed, offset, uint64_t(dropout_mask_index(samples, i))) >= p;
      out[i] = keep ? in[i] * scale : T(0);
    }
    return;
  }
  const int64_t blocks = (n + 3) / 4;
#pragma omp parallel for schedule(static) if (n >= (int64_t{1} << 16))
  for (int64_t blk = 0; blk < blocks; ++blk) {
    const Philox4 r = philox_block(seed, offset, static_cast<uint64_t>(blk));
    for (int j = 0; j < 4; ++j) {
      const int64_t i = blk * 4 + j;
      if (i >= n) break;
      const bool keep = philox_word_to_uniform(r.v[j]) >= p;
      out[i] = keep ? in[i] * scale : T(0);
    }
  }
}

}  // namespace

template <typename T>
void dropout_forward(T* y, const T* x, int64_t n, float p, uint64_t seed, uint64_t offset,
                     const DropoutSamples& samples) {
  apply_dropout_mask(y, x, n, p, seed, offset, samples);
}

template <typename T>
void dropout_backward(T* dx, const T* dy, int64_t n, float p, uint64_t seed, uint64_t offset,
                      const DropoutSamples& samples) {
  apply_dropout_mask(dx, dy, n, p, seed, offset, samples);
}

template void dropout_forward<float>(float*, const float*, int64_t, float, uint64_t, uint64_t,
                                     const DropoutSamples&);
template void dropout_forward<double>(double*, const double*, int64_t, float, uint64_t, uint64_t,
                                      const DropoutSamples&);
template void dropout_backward<float>(float*, const float*, int64_t, float, uint64_t, uint64_t,
                                      const DropoutSamples&);
template void dropout_backward<double>(double*, const double*, int64_t, float, uint64_t, uint64_t,
                                       const DropoutSamples&);

}  // namespace kiln::cpu
