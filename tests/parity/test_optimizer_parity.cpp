// tests/parity/test_optimizer_parity.cpp — kiln::cuda SGD (momentum, dampening, Nesterov, weight
// decay) and Adam/AdamW against the double oracle (kiln::cpu::*_update<double>) over several steps
// with fresh gradients each step (the momentum buffer's first-step rule included); every emulator
// thread order (or three repeated runs on a GPU), aligned and misaligned, guard sentinels.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/optimizer.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

constexpr int kSteps = 5;
const std::vector<int64_t> kSizes = {1, 5, 4099};

// Error bound after S steps: each step rounds a handful of times in float (and the oracle's inputs
// are the GPU's own float gradients), so |err| <= 8·S·u·max|ref| for parameters and state.
double bound(const std::vector<double>& ref) {
  return 8.0 * kSteps * kU * kiln::test::max_abs(ref);
}

}  // namespace

TEST_CASE("cuda::sgd_update matches the oracle over several steps", PARITY_TAG) {
  struct Config {
    const char* name;
    kiln::SgdParams p;
  };
  std::vector<Config> configs(5);
  configs[0] = {"plain", {}};
  configs[0].p.lr = 0.1f;
  configs[1] = {"momentum", {}};
  configs[1].p.momentum = 0.9f;
  configs[2] = {"momentum+dampening+wd", {}};
  configs[2].p.momentum = 0.8f;
  configs[2].p.dampening = 0.1f;
  configs[2].p.weight_decay = 5e-4f;
  configs[3] = {"nesterov+wd", {}};
  configs[3].p.momentum = 0.9f;
  configs[3].p.nesterov = true;
  configs[3].p.weight_decay = 1e-2f;
  configs[4] = {"wd only", {}};
  configs[4].p.weight_decay = 0.1f;
  for (const Config& cfg : configs)
    for (int64_t n : kSizes)
      for (bool misalign : {false, true}) {
        INFO(cfg.name << " n=" << n << " misaligned=" << misalign);
        const bool mom = cfg.p.momentum != 0.f;
        const std::vector<float> p0 = uniform_floats(n, 41);
        std::vector<std::vector<float>> grads;
        for (int s = 0; s < kSteps; ++s) grads.push_back(uniform_floats(n, 42 + s));
        auto runs = run_in_every_order([&] {
          // The buffer starts as NaN: step 1 must not read it.
          Guarded p(p0, misalign),
              buf(std::vector<float>(static_cast<size_t>(n), std::nanf("")), misalign);
          kiln::SgdParams sp = cfg.p;
          for (int s = 0; s < kSteps; ++s) {
            Guarded g(grads[static_cast<size_t>(s)], misalign);
            sp.step = s + 1;
            kiln::cuda::sgd_update(p.data(), mom ? buf.data() : nullptr, g.data(), n, sp, nullptr);
          }
          std::vector<float> out = p.payload(), b = buf.payload();
          out.insert(out.end(), b.begin(), b.end());
          return out;
        });
        REQUIRE(first_difference(runs) == "");
        std::vector<double> p = to_double(p0), buf(static_cast<size_t>(n), std::nan(""));
        kiln::SgdParams sp = cfg.p;
        for (int s = 0; s < kSteps; ++s) {
          const std::vector<double> g = to_double(grads[static_cast<size_t>(s)]);
          sp.step = s + 1;
          kiln::cpu::sgd_update<double>(p.data(), mom ? buf.data() : nullptr, g.data(), n, sp);
        }
        kiln::test::expect_close("param", runs.results[0].data(), p.data(), n, bound(p), 0);
        if (mom) {
          kiln::test::expect_close("momentum_buf", runs.results[0].data() + n, buf.data(), n,
                                   bound(buf), 0);
        } else {
          // Without momentum the buffer is not touched (still NaN).
          CHECK(std::isnan(runs.results[0][static_cast<size_t>(n)]));
        }
      }
}

TEST_CASE("cuda::adam_update (Adam, Adam + L2, AdamW) matches the oracle over several steps",
          PARITY_TAG) {
  struct Config {
    const char* name;
    kiln::AdamParams p;
  };
  std::vector<Config> configs(3);
  configs[0] = {"adam", {}};
  configs[1] = {"adam+wd", {}};
  configs[1].p.weight_decay = 1e-2f;
  configs[2] = {"adamw", {}};
  configs[2].p.weight_decay = 1e-2f;
  configs[2].p.decoupled_weight_decay = true;
  configs[2].p.lr = 3e-3f;
  for (const Config& cfg : configs)
    for (int64_t n : kSizes)
      for (bool misalign : {false, true}) {
        INFO(cfg.name << " n=" << n << " misaligned=" << misalign);
        const std::vector<float> p0 = uniform_floats(n, 51);
        std::vector<std::vector<float>> grads;
        for (int s = 0; s < kSteps; ++s) grads.push_back(uniform_floats(n, 52 + s, -0.1f, 0.1f));
        const std::vector<float> zeros(static_cast<size_t>(n), 0.f);
        auto runs = run_in_every_order([&] {
          Guarded p(p0, misalign), m(zeros, misalign), v(zeros, misalign);
          kiln::AdamParams ap = cfg.p;
          for (int s = 0; s < kSteps; ++s) {
            Guarded g(grads[static_cast<size_t>(s)], misalign);
            ap.step = s + 1;
            kiln::cuda::adam_update(p.data(), m.data(), v.data(), g.data(), n, ap, nullptr);
          }
          std::vector<float> out = p.payload(), mm = m.payload(), vv = v.payload();
          out.insert(out.end(), mm.begin(), mm.end());
          out.insert(out.end(), vv.begin(), vv.end());
          return out;
        });
        REQUIRE(first_difference(runs) == "");
        std::vector<double> p = to_double(p0), m(static_cast<size_t>(n), 0.0),
                            v(static_cast<size_t>(n), 0.0);
        kiln::AdamParams ap = cfg.p;
        for (int s = 0; s < kSteps; ++s) {
          const std::vector<double> g = to_double(grads[static_cast<size_t>(s)]);
          ap.step = s + 1;
          kiln::cpu::adam_update<double>(p.data(), m.data(), v.data(), g.data(), n, ap);
        }
        const float* got = runs.results[0].data();
        kiln::test::expect_close("param", got, p.data(), n, bound(p), 0);
        kiln::test::expect_close("m", got + n, m.data(), n, bound(m), 0);
        kiln::test::expect_close("v", got + 2 * n, v.data(), n, bound(v), 0);
      }
}
