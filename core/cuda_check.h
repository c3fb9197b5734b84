// core/cuda_check.h — checking CUDA runtime calls (real or emulated runtime alike).
#pragma once

#include <cuda_runtime.h>

#include "core/error.h"

#define KILN_CUDA_CHECK(expr)                                                                      \
  do {                                                                                             \
    cudaError_t kiln_err_ = (expr);                                                                \
    if (kiln_err_ != cudaSuccess)                                                                  \
      throw ::kiln::Error(#expr, __FILE__, __LINE__,                                               \
                          ::kiln::detail::concat("CUDA error ", cudaGetErrorName(kiln_err_), ": ", \
                                                 cudaGetErrorString(kiln_err_)));                  \
  } while (0)
