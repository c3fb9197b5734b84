// tests/support/compare.h — comparing a result with the double oracle.
//
// expect_close(name, got, ref, n, atol, rtol) passes when |got - ref| <= atol + rtol * |ref| for
// every element and no value is NaN where the reference is finite; on failure it reports the count
// and the first mismatching indices with both values (docs/conventions.md rule 12).
// Below it, the tolerances: bounds relative to the reference's magnitude (max_abs, expect_rel) and
// the dot-product bound of docs/kernels.md (dot_bound, check_dot).
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <sstream>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace kiln::test {

inline const double kU = std::ldexp(1.0, -24);  // float unit roundoff

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

// |got − ref| <= rel · max|ref| element by element (float tensors, any device).
inline void expect_rel(const std::string& name, const Tensor& got, const Tensor& ref, double rel) {
  const std::vector<float> g = got.to_vector<float>(), r = ref.to_vector<float>();
  expect_close(name, g, r, rel * max_abs(r), 0);
}

// v widened to double (|v| when `absolute`: the oracle run on |inputs| bounds the rounding error).
inline std::vector<double> to_double(const std::vector<float>& v, bool absolute = false) {
  std::vector<double> d(v.size());
  for (size_t i = 0; i < v.size(); ++i) d[i] = absolute ? std::fabs(v[i]) : v[i];
  return d;
}

// |v| element by element, in float (for a magnitude run on the device).
inline std::vector<float> abs_of(std::vector<float> v) {
  for (float& x : v) x = std::fabs(x);
  return v;
}

// The error bound of an fp32 dot product of length k accumulated with one rounding per term:
// (k + 8)·u·max|ref_abs|, where ref_abs is the same computation on |inputs| (docs/kernels.md).
template <typename B>
double dot_bound(int64_t k, const std::vector<B>& ref_abs) {
  return (static_cast<double>(k) + 8.0) * kU * max_abs(ref_abs);
}

// Checks got ≈ sentinel + ref for outputs that are dot products of length k: within dot_bound
// (+ 2u·|ref| when the output accumulates onto `sentinel`).
inline void check_dot(const std::string& what, const std::vector<float>& got,
                      const std::vector<double>& ref, const std::vector<double>& ref_abs, int64_t k,
                      double sentinel = 0.0) {
  std::vector<double> expected(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) expected[i] = sentinel + ref[i];
  expect_close(what, got, expected, dot_bound(k, ref_abs), sentinel != 0.0 ? 2 * kU : 0.0);
}

}  // namespace kiln::test
