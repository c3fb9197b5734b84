// kernels/cpu/activation.cpp — CPU reference of LeakyReLU: plain loops templated on float and
// double (the double instance is the oracle; the float instance is also the CPU training path).
//   y = x > 0 ? x : slope·x;   dx = dy · (x > 0 ? 1 : slope)
// (the derivative at the kink x = 0 is taken as slope, as PyTorch does). Element-wise, so y == x
// (and dx == dy) in place is fine.
#include <cstdint>

#include "kernels/activation.h"

namespace kiln::cpu {

constexpr int64_t kParallelMin = 1 << 15;

// `omp simd` and -fno-trapping-math (CMakeLists.txt) make the select a SIMD compare-and-blend:
// as a scalar branch per element it mispredicted on activations of random sign and ran ~4x
// slower than memory allows. In place is safe: each element is read before it is written.
template <typename T>
void leaky_relu_forward(T* y, const T* x, int64_t n, double slope) {
  const T a = static_cast<T>(slope);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] > T(0) ? x[i] : a * x[i];
}

template <typename T>
void leaky_relu_backward(T* dx, const T* dy, const T* x, int64_t n, double slope) {
  const T a = static_cast<T>(slope);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) dx[i] = x[i] > T(0) ? dy[i] : a * dy[i];
}

template void leaky_relu_forward<float>(float*, const float*, int64_t, double);
template void leaky_relu_forward<double>(double*, const double*, int64_t, double);
template void leaky_relu_backward<float>(float*, const float*, const float*, int64_t, double);
template void leaky_relu_backward<double>(double*, const double*, const double*, int64_t, double);

}  // namespace kiln::cpu
