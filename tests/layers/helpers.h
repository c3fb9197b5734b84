// tests/layers/helpers.h — small helpers shared by the layer tests.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "tests/support/gradcheck.h"

namespace kiln::test {

template <typename T>
inline Tensor random_tensor(Shape shape, uint64_t seed, Device device = Device::cpu,
                            double lo = -1.0, double hi = 1.0) {
  return Tensor::from_vector(shape, random_vector<T>(shape.numel(), seed, lo, hi), device);
}

// Host copy of a float tensor as doubles (f32 or f64, any device).
inline std::vector<double> values(const Tensor& t) {
  if (t.dtype() == DType::f64) return t.to_vector<double>();
  std::vector<float> f = t.to_vector<float>();
  return {f.begin(), f.end()};
}

}  // namespace kiln::test
