// kernels/cpu/elementwise.cpp — CPU reference of the small helpers: fill, copy, scale, bias add and
// the global L2 norm ‖x‖₂ = √(Σ_i x_i²) used for gradient clipping. Plain loops; the double
// instance is the oracle and the float instance is the CPU path.
//
// l2_norm accumulates in double for both instances, in index order: deterministic, and Σ x² of
// float gradients cannot overflow or lose small terms the way a float accumulator would.
#include "kernels/elementwise.h"

#include <cmath>

namespace kiln::cpu {

template <typename T>
void fill(T* x, int64_t n, T value) {
  for (int64_t i = 0; i < n; ++i) x[i] = value;
}

template <typename T>
void copy(T* dst, const T* src, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = src[i];
}

template <typename T>
void scale(T* x, int64_t n, T alpha) {
  for (int64_t i = 0; i < n; ++i) x[i] *= alpha;
}

template <typename T>
void bias_add(T* y, const T* b, int64_t m, int c) {
  for (int64_t r = 0; r < m; ++r) {
    T* row = y + r * c;  // [C]
    for (int j = 0; j < c; ++j) row[j] += b[j];
  }
}

template <typename T>
void l2_norm(T* out, const T* x, int64_t n) {
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(x[i]) * static_cast<double>(x[i]);
  *out = static_cast<T>(std::sqrt(sum));
}

#define KILN_INSTANTIATE_ELEMENTWISE(T)                  \
  template void fill<T>(T*, int64_t, T);                 \
  template void copy<T>(T*, const T*, int64_t);          \
  template void scale<T>(T*, int64_t, T);                \
  template void bias_add<T>(T*, const T*, int64_t, int); \
  template void l2_norm<T>(T*, const T*, int64_t);
KILN_INSTANTIATE_ELEMENTWISE(float)
KILN_INSTANTIATE_ELEMENTWISE(double)
#undef KILN_INSTANTIATE_ELEMENTWISE

}  // namespace kiln::cpu
