// tests/support/every_order.h — run a piece of emulated CUDA work in "every order" and compare.
//
// "Every order" (docs/design.md §1) is three runs under the SIMT emulator:
//   forward:  threads forward between barriers;
//   reverse:  threads reversed;
//   random:   threads in seeded-random order, blocks reversed.
// A kernel with a missing __syncthreads (or another race between threads of a block) gives
// different results in different orders, so every parity test runs its kernel this way and requires
// the three results to be bitwise identical (and to match the oracle).
//
//   auto runs = kiln::test::run_in_every_order([&] {
//     launch_my_kernel(...);                 // fill inputs/outputs afresh inside the lambda
//     return copy_to_host_vector(output);    // any std::vector<T> (or other value) works });
//   REQUIRE(kiln::test::first_difference(runs) == "");   // "" when all three are identical
//   compare(runs.results[0], reference);                  // then check one against the oracle
//
// first_difference() names the first order that differs from the forward run and the first index
// and the two values. Catch2-independent: plain C++, usable from any test.
#pragma once

#include <array>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/simt/schedule.h"

namespace kiln::test {

template <typename R>
struct EveryOrder {
  std::array<std::string, 3> names;  // kiln::simt::to_string of each schedule
  std::array<R, 3> results;          // f()'s result under forward, reverse, random+reversed blocks
};

// Calls f() three times, once under each every-order schedule (the previous schedule is restored
// afterwards, also when f throws). `seed` picks the random interleaving.
template <typename F>
auto run_in_every_order(F&& f, std::uint64_t seed = 0x5eed)
    -> EveryOrder<std::decay_t<std::invoke_result_t<F&>>> {
  EveryOrder<std::decay_t<std::invoke_result_t<F&>>> out;
  const auto schedules = kiln::simt::every_order(seed);
#if defined(KILN_SIMT_TSAN)
  // The race-detector build (docs/simt.md) reports a race whichever order runs, so one forward run
  // covers every kernel at a third of the cost; the three results are that one run's.
  {
    kiln::simt::ScopedSchedule scope(schedules[0]);
    out.results[0] = f();
  }
  for (std::size_t i = 0; i < schedules.size(); ++i) {
    out.names[i] = kiln::simt::to_string(schedules[0]) + " (race detector: one order)";
    out.results[i] = out.results[0];
  }
  return out;
#endif
  for (std::size_t i = 0; i < schedules.size(); ++i) {
    kiln::simt::ScopedSchedule scope(schedules[i]);
    out.names[i] = kiln::simt::to_string(schedules[i]);
    out.results[i] = f();
  }
  return out;
}

// "" when results[1] and results[2] are bitwise identical to results[0] (NaNs compare by bits),
// else a message naming the differing order, the first differing index and both values.
template <typename T>
std::string first_difference(const EveryOrder<std::vector<T>>& runs) {
  static_assert(std::is_trivially_copyable_v<T>, "compares elements bitwise");
  const auto& base = runs.results[0];
  for (std::size_t o = 1; o < 3; ++o) {
    const auto& other = runs.results[o];
    std::ostringstream msg;
    if (other.size() != base.size()) {
      msg << "order " << runs.names[o] << " returned " << other.size() << " elements, order "
          << runs.names[0] << " returned " << base.size();
      return msg.str();
    }
    for (std::size_t i = 0; i < base.size(); ++i) {
      if (std::memcmp(&base[i], &other[i], sizeof(T)) != 0) {
        msg << "order " << runs.names[o] << " differs from order " << runs.names[0] << " at index "
            << i << ": " << +other[i] << " vs " << +base[i];
        return msg.str();
      }
    }
  }
  return "";
}

// For a single value per run (a scalar result).
template <typename T>
requires std::is_arithmetic_v<T> std::string first_difference(const EveryOrder<T>& runs) {
  for (std::size_t o = 1; o < 3; ++o)
    if (std::memcmp(&runs.results[0], &runs.results[o], sizeof(T)) != 0) {
      std::ostringstream msg;
      msg << "order " << runs.names[o] << " gives " << +runs.results[o] << ", order "
          << runs.names[0] << " gives " << +runs.results[0];
      return msg.str();
    }
  return "";
}

}  // namespace kiln::test
