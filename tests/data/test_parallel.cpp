// tests/data/test_parallel.cpp — data/'s one parallel loop: every item once, and the error of the
// smallest failing index, for any number of threads.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/parallel.h"

using kiln::data::detail::parallel_for;

namespace {

// Waits until `flag` is set (at most 20 s, so that a broken loop fails instead of hanging).
void wait_for(const std::atomic<bool>& flag) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!flag && std::chrono::steady_clock::now() < until)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

// Runs items 0..n-1 on `threads` threads where items `a` and `b` fail, `first_to_fail` of them
// throwing only once the other has started; returns the message parallel_for rethrew.
std::string race(int threads, size_t a, size_t b, size_t first_to_fail) {
  const size_t second = first_to_fail == a ? b : a;
  std::atomic<bool> second_started{false}, first_thrown{false};
  try {
    parallel_for(
        3000,
        [&](size_t i) {
          if (i == second) {
            second_started = true;
            wait_for(first_thrown);
            KILN_FAIL("item ", i);
          }
          if (i == first_to_fail) {
            wait_for(second_started);
            first_thrown = true;
            KILN_FAIL("item ", i);
          }
        },
        threads);
  } catch (const kiln::Error& e) {
    return e.what();
  }
  return "no exception";
}

}  // namespace

TEST_CASE("parallel_for: every item runs exactly once, for 1 to 8 threads", "[cpu][data]") {
  for (int threads : {1, 2, 3, 8}) {
    INFO(threads << " threads");
    const size_t n = 1000;
    std::vector<std::atomic<int>> runs(n);
    std::vector<size_t> value(n, 0);
    parallel_for(
        n,
        [&](size_t i) {
          ++runs[i];
          value[i] = i * i;
        },
        threads);
    for (size_t i = 0; i < n; ++i) {
      INFO("item " << i);
      REQUIRE(runs[i] == 1);
      REQUIRE(value[i] == i * i);
    }
  }
  int calls = 0;
  parallel_for(0, [&](size_t) { ++calls; });
  CHECK(calls == 0);
}

TEST_CASE("parallel_for: the exception of the smallest failing index is rethrown", "[cpu][data]") {
  for (int threads : {0, 1, 3, 8}) {
    INFO(threads << " threads");
    const size_t n = 2000;
    std::vector<std::atomic<int>> runs(n);
    try {
      parallel_for(
          n,
          [&](size_t i) {
            ++runs[i];
            if (i == 1700) throw std::runtime_error("item 1700");
            if (i == 611) KILN_FAIL("item ", i);
            if (i == 1200) throw 42;  // not even an exception class
          },
          threads);
      FAIL("no exception");
    } catch (const kiln::Error& e) {  // the type is kept, not only the message
      CHECK(std::string(e.what()) == "item 611");
    }
    // Everything before the first failure ran, once; nothing ran twice.
    for (size_t i = 0; i <= 611; ++i) REQUIRE(runs[i] == 1);
    for (size_t i = 612; i < n; ++i) REQUIRE(runs[i] <= 1);
  }
}

TEST_CASE("parallel_for: the smallest index wins whichever item fails first", "[cpu][data]") {
  // Two items fail at the same time on different threads: the earlier one in the data set's order
  // is reported, whether it threw first or last.
  for (int threads : {2, 3, 8}) {
    INFO(threads << " threads");
    CHECK(race(threads, 611, 1700, /*first_to_fail=*/1700) == "item 611");
    CHECK(race(threads, 611, 1700, /*first_to_fail=*/611) == "item 611");
  }
}
