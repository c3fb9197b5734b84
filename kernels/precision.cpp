// kernels/precision.cpp — see precision.h.
#include "kernels/precision.h"

#include <vector>

namespace kiln {

// fp32 on the CUDA cores' kernels, tf32 and bf16 on the tensor-core kernels (precision.h).
bool cuda_supports_precision(Precision p) {
  return p == Precision::fp32 || p == Precision::tf32 || p == Precision::bf16;
}

namespace detail {

template <typename T>
const T* rounded_operand(Precision p, const T* src, int64_t n, int slot) {
  if (p == Precision::fp32 || src == nullptr) return src;
  thread_local std::vector<T> buffers[3];
  KILN_CHECK(slot >= 0 && slot < 3, "rounded_operand: slot ", slot, " is not 0, 1 or 2");
  std::vector<T>& buffer = buffers[slot];
  if (static_cast<int64_t>(buffer.size()) < n) buffer.resize(static_cast<size_t>(n));
  T* dst = buffer.data();
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) dst[i] = round_to(p, src[i]);
  return dst;
}

template <typename T>
void round_output(Precision p, T* data, int64_t n) {
  if (!rounds_output(p)) return;
#pragma omp parallel for schedule(static) if (n >= (1 << 16))
  for (int64_t i = 0; i < n; ++i) data[i] = round_to(p, data[i]);
}

template const float* rounded_operand(Precision, const float*, int64_t, int);
template const double* rounded_operand(Precision, const double*, int64_t, int);
template void round_output(Precision, float*, int64_t);
template void round_output(Precision, double*, int64_t);

}  // namespace detail
}  // namespace kiln
