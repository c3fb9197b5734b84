// tests/support/have_cuda.h — for tests with a CUDA half: whether the device (the SIMT emulator in
// tests) is there, saying so in the test's output when it is not.
#pragma once

#include <catch2/catch.hpp>

#include "core/memory.h"

namespace kiln::test {

// True when the CUDA device is available; else a warning that the test (or its device half) did
// not run, with the reason.
inline bool have_cuda() {
  if (kiln::cuda_available()) return true;
  WARN("CUDA device not available (" << kiln::cuda_unavailable_reason() << "): test not run");
  return false;
}

}  // namespace kiln::test
