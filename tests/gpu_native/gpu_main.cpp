// Main of the [gpu] tests: without a usable GPU, say why and exit 77 so CTest reports SKIPPED
// (docs/design.md §8) — never passed.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>
#include <cstring>

#include "core/memory.h"

// Shared by every [gpu] test executable (tests/gpu_native, tests/dist).
int main(int argc, char** argv) {
  const char* slash = argc > 0 ? std::strrchr(argv[0], '/') : nullptr;
  const char* name = slash != nullptr ? slash + 1 : argc > 0 ? argv[0] : "kiln [gpu] tests";
  if (!kiln::cuda_available()) {
    std::fprintf(stderr, "%s: SKIPPED: %s\n", name, kiln::cuda_unavailable_reason().c_str());
    return 77;
  }
  std::fprintf(stderr, "%s: running on %s\n", name, kiln::cuda_device_name().c_str());
  return Catch::Session().run(argc, argv);
}
