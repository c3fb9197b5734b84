// kernels/precision.cpp — see precision.h.
#include "kernels/precision.h"

#include <vector>

namespace kiln {

// The tensor-core kernels are not wired in yet: this is the one place that changes when they are.
bool cuda_supports_precision(Precision p) {
  return p == Precision::fp32;
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

void check_cuda_precision(const char* op, Precision p) {
  KILN_CHECK(cuda_supports_precision(p), op, ": precision ", precision_name(p),
             " on CUDA tensors needs the tensor-core kernels, which this build does not have yet; "
             "use precision fp32 on CUDA, or run on the CPU (which computes ",
             precision_name(p), " as the tensor cores do)");
}

}  // namespace detail
}  // namespace kiln
