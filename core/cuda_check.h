// core/cuda_check.h — checking CUDA runtime calls (real or emulated runtime alike).
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "core/error.h"

// Provided by the SIMT emulator's runtime (core/simt/device_queue.cpp) and absent from the real
// one: the original message of the device's sticky error (a kernel's failed check, a barrier no
// thread can pass, ...) when `error` is that error, else nullptr. Weak, so that code linked against
// libcudart needs no definition.
extern "C" const char* kiln_simt_error_message(cudaError_t error) __attribute__((weak));

namespace kiln::detail {
// "CUDA error <name>: <description>", plus the emulator's original message of a kernel's failure.
inline std::string cuda_error_text(cudaError_t error) {
  std::string text =
      concat("CUDA error ", cudaGetErrorName(error), ": ", cudaGetErrorString(error));
  if (kiln_simt_error_message != nullptr)
    if (const char* m = kiln_simt_error_message(error); m != nullptr && *m != '\0')
      text += concat(": ", m);
  return text;
}
}  // namespace kiln::detail

#define KILN_CUDA_CHECK(expr)                                                                     \
  do {                                                                                            \
    cudaError_t kiln_err_ = (expr);                                                               \
    if (kiln_err_ != cudaSuccess)                                                                 \
      throw ::kiln::Error(#expr, __FILE__, __LINE__, ::kiln::detail::cuda_error_text(kiln_err_)); \
  } while (0)
