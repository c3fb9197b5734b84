// tests/support/gradcheck.h — finite-difference gradient checking in double (docs/design.md §8).
//
// numeric_gradient(x, loss) returns d loss / d x[i] by central differences (x restored after each
// probe); callers reseed any randomness inside `loss` (dropout) so every evaluation is the same
// function. expect_gradient_close compares an analytic gradient with it, tolerance scaled by
// max(|analytic|, |numeric|, 1) as Caffe's checker does; `skip` marks coordinates at a kink.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <algorithm>
#include <functional>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace kiln::test {

inline double numeric_partial(double* x, const std::function<double()>& loss, double h = 1e-6) {
  const double saved = *x;
  *x = saved + h;
  const double plus = loss();
  *x = saved - h;
  const double minus = loss();
  *x = saved;
  return (plus - minus) / (2 * h);
}

// Checks `analytic[i]` against the numeric partial for each i in `indices` (all when empty).
// `skip(i)` may exclude coordinates next to a kink.
inline void expect_gradient_close(const std::string& name, double* x, int64_t n,
                                  const double* analytic, const std::function<double()>& loss,
                                  double tol = 1e-6, std::vector<int64_t> indices = {},
                                  const std::function<bool(int64_t)>& skip = nullptr) {
  if (indices.empty())
    for (int64_t i = 0; i < n; ++i) indices.push_back(i);
  int64_t bad = 0, checked = 0;
  std::ostringstream os;
  for (int64_t i : indices) {
    if (skip && skip(i)) continue;
    const double num = numeric_partial(x + i, loss);
    const double scale = std::fmax(1.0, std::fmax(std::fabs(num), std::fabs(analytic[i])));
    ++checked;
    if (std::fabs(num - analytic[i]) > tol * scale) {
      if (bad < 8) os << "  [" << i << "] analytic " << analytic[i] << " numeric " << num << "\n";
      ++bad;
    }
  }
  INFO("gradient of " << name << ": " << bad << " of " << checked << " coordinates off\n"
                      << os.str());
  CHECK(checked > 0);
  CHECK(bad == 0);
}

// The probe loss L = Σ r·y + ½Σy² of a gradient check: r a fixed random projection, the square
// making L nonlinear in y (so a wrong scale of dy cannot cancel out). probe_loss_grad is dL/dy.
inline double probe_loss(const std::vector<double>& y, const std::vector<double>& r) {
  double l = 0;
  for (size_t i = 0; i < y.size(); ++i) l += r[i] * y[i] + 0.5 * y[i] * y[i];
  return l;
}
inline std::vector<double> probe_loss_grad(const std::vector<double>& y,
                                           const std::vector<double>& r) {
  std::vector<double> dy(y.size());
  for (size_t i = 0; i < y.size(); ++i) dy[i] = r[i] + y[i];
  return dy;
}

// n indices sampled without replacement from [0, size) (all of them when size <= n).
inline std::vector<int64_t> sample_indices(int64_t size, int64_t n, uint64_t seed) {
  std::vector<int64_t> all(size);
  for (int64_t i = 0; i < size; ++i) all[i] = i;
  if (size <= n) return all;
  std::mt19937_64 rng(seed);
  std::shuffle(all.begin(), all.end(), rng);
  all.resize(n);
  return all;
}

}  // namespace kiln::test
