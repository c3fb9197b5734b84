// tests/simt/kernel_error.h — the message of a kernel's failure under the SIMT emulator.
#pragma once

#include <cuda_runtime.h>

#include <functional>
#include <string>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/simt/schedule.h"

namespace kiln::simt_test {

// Runs `launch`, then synchronises the device, and returns the message of the kiln::Error either
// threw ("" when none). A kernel's failure is sticky and surfaces at the synchronisation (in the
// synchronous stream mode at the launch); it is cleared afterwards, so the next test starts clean.
inline std::string kernel_error_of(const std::function<void()>& launch) {
  std::string msg;
  try {
    launch();
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
  } catch (const kiln::Error& e) {
    msg = e.what();
  }
  kiln::simt::clear_device_error();
  return msg;
}

}  // namespace kiln::simt_test
