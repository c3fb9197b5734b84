// tests/support/random.h — seeded random test inputs: the same values on every run, whatever the
// CPU model or thread count (drawn on one thread from fixed-seed standard engines).
//
// Two generators, kept apart because the tests' expected values were drawn from them:
//   random_vector<T> / random_tensor<T>  draws in double from mt19937_64 (the CPU, layer and
//                                        gradient tests: any T, the f64 oracle included);
//   uniform_floats / uniform_tensor      draws floats from mt19937 (the parity, GPU and stream
//                                        tests: float inputs for CUDA kernels).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

#include "core/tensor.h"

namespace kiln::test {

// n values uniform in [lo, hi), drawn in double and converted to T.
template <typename T>
std::vector<T> random_vector(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<T> v(n);
  for (auto& e : v) e = static_cast<T>(dist(rng));
  return v;
}

// A tensor of T holding random_vector<T>(shape.numel(), seed, lo, hi), on `device`.
template <typename T>
Tensor random_tensor(Shape shape, uint64_t seed, Device device = Device::cpu, double lo = -1.0,
                     double hi = 1.0) {
  return Tensor::from_vector(shape, random_vector<T>(shape.numel(), seed, lo, hi), device);
}

// n floats uniform in [lo, hi) from a seeded mt19937.
inline std::vector<float> uniform_floats(int64_t n, uint32_t seed, float lo = -2.f,
                                         float hi = 2.f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = dist(gen);
  return v;
}

// A float tensor holding uniform_floats(shape.numel(), seed, lo, hi), on `device`: the same values
// whichever device it is on.
inline Tensor uniform_tensor(Shape shape, uint32_t seed, Device device, float lo = -1.f,
                             float hi = 1.f) {
  return Tensor::from_vector<float>(shape, uniform_floats(shape.numel(), seed, lo, hi), device);
}

}  // namespace kiln::test
