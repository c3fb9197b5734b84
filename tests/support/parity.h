// tests/support/parity.h — what every CUDA-kernel parity test
// (tests/parity/test_*_parity.cpp) shares.
//
// Each parity file is built twice (tests/parity/CMakeLists.txt, tests/gpu_native/CMakeLists.txt):
//  - under the SIMT emulator (tag [simt]): run_in_every_order runs the work in the three thread
//    orders of tests/support/every_order.h and the results must be bitwise identical;
//  - natively on a GPU (KILN_TEST_GPU, tag [gpu]): there are no thread orders to choose, so the
//    same call runs the work three times and checks repeated-run determinism instead.
// Around that: random inputs, device buffers with sentinel guards (Guarded) or a deliberate
// misalignment (tests/support/device_buffer.h), and the dot-product error bound of docs/kernels.md.
#pragma once

#include <catch2/catch.hpp>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "tests/support/compare.h"
#include "tests/support/device_buffer.h"

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
inline const double kU = std::ldexp(1.0, -24);  // float unit roundoff

// n floats uniform in [lo, hi) from a seeded mt19937 (the same values on every platform).
inline std::vector<float> uniform_floats(int64_t n, uint32_t seed, float lo = -2.f,
                                         float hi = 2.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// v widened to double (|v| when `absolute`: the oracle run on |inputs| bounds the rounding error).
inline std::vector<double> to_double(const std::vector<float>& v, bool absolute = false) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = absolute ? std::fabs(v[i]) : v[i];
  return d;
}

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

// Checks got ≈ sentinel + ref for outputs that are dot products of length k:
// |got − ref| <= (k + 8)·u·max|ref_abs| (+ 2u·|ref| when the output accumulates onto `sentinel`).
inline void check_dot(const std::string& what, const std::vector<float>& got,
                      const std::vector<double>& ref, const std::vector<double>& ref_abs, int64_t k,
                      double sentinel = 0.0) {
  std::vector<double> expected(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) expected[i] = sentinel + ref[i];
  const double atol = (static_cast<double>(k) + 8.0) * kU * max_abs(ref_abs);
  expect_close(what, got, expected, atol, sentinel != 0.0 ? 2 * kU : 0.0);
}

}  // namespace kiln::test
