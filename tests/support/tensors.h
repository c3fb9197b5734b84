// tests/support/tensors.h — tensors from and to host values: one case run in float and in double
// (the oracle) from the same values, device tensors from host vectors, any tensor read as double.
#pragma once

#include <cstdint>
#include <vector>

#include "core/tensor.h"

namespace kiln::test {

// A CPU tensor of `dtype` (f32 or f64) holding `values`, given in double.
inline Tensor make_tensor(Shape shape, const std::vector<double>& values, DType dtype) {
  if (dtype == DType::f64) return Tensor::from_vector<double>(shape, values);
  return Tensor::from_vector<float>(shape, std::vector<float>(values.begin(), values.end()));
}

// A 1-D float tensor on the CUDA device holding `v`.
inline Tensor device_tensor(const std::vector<float>& v) {
  return Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v, Device::cuda);
}

// A tensor's values as doubles, whatever its dtype and device.
inline std::vector<double> values(const Tensor& t) {
  auto widen = [](const auto& v) { return std::vector<double>(v.begin(), v.end()); };
  switch (t.dtype()) {
    case DType::f32:
      return widen(t.to_vector<float>());
    case DType::f64:
      return t.to_vector<double>();
    case DType::i32:
      return widen(t.to_vector<int32_t>());
    case DType::u8:
      return widen(t.to_vector<uint8_t>());
  }
  return {};  // not reached: every DType is handled above
}

}  // namespace kiln::test
