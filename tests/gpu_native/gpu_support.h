// tests/gpu_native/gpu_support.h — what the [gpu] comparisons with cuDNN and cuBLAS share: random
// device tensors, a tolerance relative to the reference's magnitude, and RAII cuDNN handles whose
// every call is REQUIREd to succeed (naming the call and cuDNN's message when it does not).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

#if defined(KILN_HAVE_CUDNN)
#include <cudnn.h>
#endif

namespace kiln::test {

inline Tensor to_device(const std::vector<float>& v) {
  return Tensor::from_vector<float>({static_cast<int64_t>(v.size())}, v, Device::cuda);
}

// n floats uniform in [lo, hi), on the device.
inline Tensor device_random(int64_t n, uint32_t seed, float lo, float hi) {
  return to_device(uniform_floats(n, seed, lo, hi));
}

inline std::vector<float> abs_of(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// |got − ref| <= rel · max|ref| element by element.
inline void expect_rel(const char* name, const Tensor& got, const Tensor& ref, double rel) {
  const std::vector<float> g = got.to_vector<float>(), r = ref.to_vector<float>();
  expect_close(name, g, r, rel * max_abs(r), 0);
}

}  // namespace kiln::test

#if defined(KILN_HAVE_CUDNN)
#define CUDNN_OK(expr)                               \
  do {                                               \
    cudnnStatus_t st_ = (expr);                      \
    INFO(#expr << ": " << cudnnGetErrorString(st_)); \
    REQUIRE(st_ == CUDNN_STATUS_SUCCESS);            \
  } while (0)

namespace kiln::test {

struct CudnnHandle {
  cudnnHandle_t handle = nullptr;
  CudnnHandle() { CUDNN_OK(cudnnCreate(&handle)); }
  ~CudnnHandle() { cudnnDestroy(handle); }
  CudnnHandle(const CudnnHandle&) = delete;
  CudnnHandle& operator=(const CudnnHandle&) = delete;
};

struct TensorDesc {
  cudnnTensorDescriptor_t d = nullptr;
  TensorDesc() { CUDNN_OK(cudnnCreateTensorDescriptor(&d)); }
  ~TensorDesc() { cudnnDestroyTensorDescriptor(d); }
  TensorDesc(const TensorDesc&) = delete;
  TensorDesc& operator=(const TensorDesc&) = delete;
};

}  // namespace kiln::test
#endif  // KILN_HAVE_CUDNN
