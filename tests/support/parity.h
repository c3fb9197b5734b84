// tests/support/parity.h — what every CUDA-kernel parity test
// (tests/parity/test_*_parity.cpp) shares.
//
// Each parity file is built twice (tests/parity/CMakeLists.txt, tests/gpu_native/CMakeLists.txt):
//  - under the SIMT emulator (tag [simt]): run_in_every_order runs the work in the three thread
//    orders of tests/support/every_order.h and the results must be bitwise identical;
//  - natively on a GPU (KILN_TEST_GPU, tag [gpu]): there are no thread orders to choose, so the
//    same call runs the work three times and checks repeated-run determinism instead.
// Around that: device buffers with sentinel guards (Guarded). It brings what every parity file
// uses besides: random inputs (random.h), misaligned device buffers (device_buffer.h), and the
// comparisons and dot-product error bound of docs/kernels.md (compare.h).
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cstdint>
#include <cstring>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/support/compare.h"
#include "tests/support/device_buffer.h"
#include "tests/support/random.h"

#if defined(KILN_TEST_GPU)
#define PARITY_TAG "[gpu]"
namespace kiln::test {
template <typename R>
struct EveryOrder {
  std::array<std::string, 3> names{"run 1", "run 2", "run 3"};
  std::array<R, 3> results;
};
template <typename F>
auto run_in_every_order(F&& f) -> EveryOrder<std::decay_t<std::invoke_result_t<F&>>> {
  EveryOrder<std::decay_t<std::invoke_result_t<F&>>> out;
  for (auto& r : out.results) r = f();
  return out;
}
template <typename T>
std::string first_difference(const EveryOrder<std::vector<T>>& runs) {
  for (int o = 1; o < 3; ++o)
    if (runs.results[o].size() != runs.results[0].size() ||
        std::memcmp(runs.results[o].data(), runs.results[0].data(),
                    runs.results[0].size() * sizeof(T)) != 0)
      return runs.names[o] + " differs from " + runs.names[0];
  return "";
}
}  // namespace kiln::test
#else
#define PARITY_TAG "[simt]"
#include "tests/support/every_order.h"
#endif

namespace kiln::test {

inline constexpr int kGuard = 5;            // sentinel elements on each side of a Guarded output
inline constexpr float kSentinel = -7.25f;  // a value no kernel here produces by accident

// A device buffer holding kGuard sentinels, then `v`, then kGuard sentinels; `misalign` shifts
// the payload by one more float (breaking 16-byte alignment).
struct Guarded {
  int64_t offset, n;
  DeviceBuffer<float> storage;
  Guarded(const std::vector<float>& v, bool misalign)
      : offset(kGuard + (misalign ? 1 : 0)),
        n(static_cast<int64_t>(v.size())),
        storage(static_cast<size_t>(offset + n + kGuard)) {
    std::vector<float> all(storage.size(), kSentinel);
    std::copy(v.begin(), v.end(), all.begin() + offset);
    storage.upload(all);
  }
  float* data() { return storage.get() + offset; }
  // The payload; CHECKs that every guard still holds the sentinel.
  std::vector<float> payload() const {
    const std::vector<float> all = storage.download();
    int64_t bad = 0;
    for (int64_t i = 0; i < static_cast<int64_t>(all.size()); ++i)
      if ((i < offset || i >= offset + n) && all[static_cast<size_t>(i)] != kSentinel) ++bad;
    CHECK(bad == 0);
    return {all.begin() + offset, all.begin() + offset + n};
  }
};

// Runs `run` in every order, REQUIREs the three results bitwise equal, returns one of them.
template <typename F>
std::vector<float> same_in_every_order(const std::string& what, F&& run) {
  auto runs = run_in_every_order(run);
  INFO(what);
  REQUIRE(first_difference(runs) == "");
  return runs.results[0];
}

}  // namespace kiln::test
