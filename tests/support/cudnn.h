// tests/support/cudnn.h — cuDNN for the [gpu] comparisons (tests/gpu_native): every call is
// REQUIREd to succeed (CUDNN_OK names the call and cuDNN's message when it does not), and handles
// and descriptors are RAII. Empty unless the build found cuDNN (KILN_HAVE_CUDNN).
#pragma once

#if defined(KILN_HAVE_CUDNN)
#include <catch2/catch.hpp>

#include <cudnn.h>

#define CUDNN_OK(expr)                               \
  do {                                               \
    cudnnStatus_t st_ = (expr);                      \
    INFO(#expr << ": " << cudnnGetErrorString(st_)); \
    REQUIRE(st_ == CUDNN_STATUS_SUCCESS);            \
  } while (0)

namespace kiln::test {

// A cuDNN object created by `create` and destroyed by `destroy` (a handle or a descriptor).
template <typename T, cudnnStatus_t (*create)(T*), cudnnStatus_t (*destroy)(T)>
struct CudnnObject {
  T d = nullptr;
  CudnnObject() { CUDNN_OK(create(&d)); }
  ~CudnnObject() { destroy(d); }
  CudnnObject(const CudnnObject&) = delete;
  CudnnObject& operator=(const CudnnObject&) = delete;
};

using CudnnHandle = CudnnObject<cudnnHandle_t, cudnnCreate, cudnnDestroy>;
using TensorDesc =
    CudnnObject<cudnnTensorDescriptor_t, cudnnCreateTensorDescriptor, cudnnDestroyTensorDescriptor>;
using PoolDesc = CudnnObject<cudnnPoolingDescriptor_t, cudnnCreatePoolingDescriptor,
                             cudnnDestroyPoolingDescriptor>;

}  // namespace kiln::test
#endif  // KILN_HAVE_CUDNN
