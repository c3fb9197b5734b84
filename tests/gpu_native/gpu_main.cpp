// Main of the [gpu] tests: without a usable GPU, say why and exit 77 so CTest reports SKIPPED
// (docs/design.md §8) — never passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "core/memory.h"

int main(int argc, char** argv) {
  if (!kiln::cuda_available()) {
    std::fprintf(stderr, "kiln_tests_gpu_native: SKIPPED: %s\n",
                 kiln::cuda_unavailable_reason().c_str());
    return 77;
  }
  std::fprintf(stderr, "kiln_tests_gpu_native: running on %s\n", kiln::cuda_device_name().c_str());
  return Catch::Session().run(argc, argv);
}
