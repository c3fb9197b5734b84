// tests/support/tensors.h — CPU tensors from and to double, for tests that run one case in float
// and in double (the oracle) from the same values.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace kiln::test {

// A CPU tensor of `dtype` (f32 or f64) holding `values`, given in double.
inline Tensor make_tensor(Shape shape, const std::vector<double>& values, DType dtype) {
  if (dtype == DType::f64) return Tensor::from_vector<double>(shape, values);
  return Tensor::from_vector<float>(shape, std::vector<float>(values.begin(), values.end()));
}

// A CPU tensor's contents (f32 or f64) as double.
inline std::vector<double> read_doubles(const Tensor& t) {
  if (t.dtype() == DType::f64) return t.to_vector<double>();
  const std::vector<float> v = t.to_vector<float>();
  return {v.begin(), v.end()};
}

}  // namespace kiln::test
