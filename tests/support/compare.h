// tests/support/compare.h — comparing a result with the double oracle.
//
// expect_close(name, got, ref, n, atol, rtol) passes when |got - ref| <= atol + rtol * |ref| for
// every element and no value is NaN where the reference is finite; on failure it reports the count
// and the first mismatching indices with both values (docs/conventions.md rule 12).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::test {

template <typename A, typename B>
std::string first_mismatches(const A* got, const B* ref, int64_t n, double atol, double rtol,
                             int64_t* count_out) {
  std::ostringstream os;
  int64_t count = 0;
  for (int64_t i = 0; i < n; ++i) {
    double g = static_cast<double>(got[i]), r = static_cast<double>(ref[i]);
    bool ok = std::fabs(g - r) <= atol + rtol * std::fabs(r);
    if (std::isnan(r)) ok = std::isnan(g);
    if (!ok) {
      if (count < 8) os << "  [" << i << "] got " << g << " expected " << r << "\n";
      ++count;
    }
  }
  *count_out = count;
  return os.str();
}

template <typename A, typename B>
void expect_close(const std::string& name, const A* got, const B* ref, int64_t n, double atol,
                  double rtol) {
  int64_t count = 0;
  std::string detail = first_mismatches(got, ref, n, atol, rtol, &count);
  INFO(name << ": " << count << " of " << n << " elements outside atol " << atol << " + rtol "
            << rtol << " * |ref|\n"
            << detail);
  CHECK(count == 0);
}

template <typename A, typename B>
void expect_close(const std::string& name, const std::vector<A>& got, const std::vector<B>& ref,
                  double atol, double rtol) {
  REQUIRE(got.size() == ref.size());
  expect_close(name, got.data(), ref.data(), static_cast<int64_t>(got.size()), atol, rtol);
}

// max |ref| — error bounds are stated relative to the reference's magnitude.
template <typename B>
double max_abs(const std::vector<B>& ref) {
  double m = 0;
  for (const B& r : ref) m = std::fmax(m, std::fabs(static_cast<double>(r)));
  return m;
}

}  // namespace kiln::test
