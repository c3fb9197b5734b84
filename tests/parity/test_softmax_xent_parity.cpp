// tests/parity/test_softmax_xent_parity.cpp — kiln::cuda fused softmax-cross-entropy against the
// double oracle (kiln::cpu::softmax_cross_entropy<double>): mean loss, dlogits = (ŷ − y)/N and the
// per-sample `correct` flags, for the flagship's 7 classes at batch 1-300 (more samples than
// threads in the block), other class counts, and logits of ±1e4 (stability); every emulator thread
// order (or three runs on a GPU); guard sentinels around every output.
#include <catch2/catch.hpp>

#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "core/tensor.h"
#include "kernels/softmax_xent.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

struct XentCase {
  int n, k;
  float scale;  // logits ~ scale·U(-1, 1)
};

struct XentOut {
  float loss;
  std::vector<float> dlogits;
  std::vector<int32_t> correct;
};

// Runs the kernel with sentinel-filled outputs; returns loss, dlogits, correct flattened as floats.
std::vector<float> run_xent(const XentCase& xc, const std::vector<float>& logits,
                            const std::vector<int32_t>& labels, bool with_grad, bool with_correct) {
  const int64_t nk = static_cast<int64_t>(xc.n) * xc.k;
  Guarded z(logits, false), loss({std::nanf("")}, false),
      dz(std::vector<float>(static_cast<size_t>(nk), std::nanf("")), false);
  Tensor lab = Tensor::from_vector<int32_t>({xc.n}, labels, Device::cuda);
  Tensor cor =
      Tensor::from_vector<int32_t>({xc.n + 2}, std::vector<int32_t>(xc.n + 2, 7), Device::cuda);
  kiln::cuda::softmax_cross_entropy(loss.data(), with_grad ? dz.data() : nullptr,
                                    with_correct ? cor.data<int32_t>() + 1 : nullptr, z.data(),
                                    lab.data<int32_t>(), kiln::SoftmaxXentShape{xc.n, xc.k},
                                    nullptr);
  std::vector<float> out = loss.payload();
  const std::vector<float> g = dz.payload();
  out.insert(out.end(), g.begin(), g.end());
  for (int32_t c : cor.to_vector<int32_t>()) out.push_back(static_cast<float>(c));
  return out;
}

}  // namespace

// Error bounds (docs/kernels-elementwise.md): per sample the float path rounds z − max, K expf,
// a K-term sum and a log, so |loss err| <= (K + 4)·u·(|loss| + max|z − max|) and
// |dlogits err| <= (K + 4)·u/N.
TEST_CASE("cuda::softmax_cross_entropy matches the oracle (loss, dlogits, correct)", PARITY_TAG) {
  const std::vector<XentCase> cases = {{1, 7, 3.f}, {3, 7, 3.f},   {256, 7, 5.f}, {300, 7, 2.f},
                                       {5, 1, 1.f}, {17, 10, 4.f}, {64, 7, 1e4f}, {9, 3, 1e-3f}};
  for (const XentCase& xc : cases) {
    INFO("n=" << xc.n << " classes=" << xc.k << " logit scale=" << xc.scale);
    const int64_t nk = static_cast<int64_t>(xc.n) * xc.k;
    std::vector<float> logits = uniform_floats(nk, 71, -xc.scale, xc.scale);
    std::mt19937 gen(72);
    std::uniform_int_distribution<int> pick(0, xc.k - 1);
    std::vector<int32_t> labels(static_cast<size_t>(xc.n));
    for (int32_t& l : labels) l = pick(gen);
    // A few samples whose label is the argmax, so `correct` is not all zero.
    for (int s = 0; s < xc.n; s += 3)
      logits[static_cast<size_t>(s * xc.k + labels[s])] = 2 * xc.scale;
    auto runs = run_in_every_order([&] { return run_xent(xc, logits, labels, true, true); });
    REQUIRE(first_difference(runs) == "");
    const std::vector<float>& got = runs.results[0];

    const std::vector<double> zd = to_double(logits);
    double loss = std::nan("");
    std::vector<double> dz(static_cast<size_t>(nk), std::nan(""));
    std::vector<int32_t> correct(static_cast<size_t>(xc.n), -1);
    kiln::cpu::softmax_cross_entropy<double>(&loss, dz.data(), correct.data(), zd.data(),
                                             labels.data(), kiln::SoftmaxXentShape{xc.n, xc.k});
    double zrange = 0;
    for (int s = 0; s < xc.n; ++s) {
      double lo = zd[static_cast<size_t>(s * xc.k)], hi = lo;
      for (int j = 0; j < xc.k; ++j) {
        lo = std::fmin(lo, zd[static_cast<size_t>(s * xc.k + j)]);
        hi = std::fmax(hi, zd[static_cast<size_t>(s * xc.k + j)]);
      }
      zrange = std::fmax(zrange, hi - lo);
    }
    const double kk = xc.k + 4;
    kiln::test::expect_close("loss", got.data(), &loss, 1, kk * kU * (std::fabs(loss) + zrange), 0);
    kiln::test::expect_close("dlogits", got.data() + 1, dz.data(), nk, kk * kU / xc.n, 0);
    std::vector<double> flags(correct.begin(), correct.end());
    flags.insert(flags.begin(), 7.0);  // guard before
    flags.push_back(7.0);              // guard after
    kiln::test::expect_close("correct (with guards)", got.data() + 1 + nk, flags.data(), xc.n + 2,
                             0, 0);
    CHECK(std::isfinite(got[0]));
  }
}

TEST_CASE("cuda::softmax_cross_entropy without dlogits and correct", PARITY_TAG) {
  const XentCase xc{33, 7, 2.f};
  const std::vector<float> logits = uniform_floats(33 * 7, 73, -2.f, 2.f);
  std::vector<int32_t> labels(33);
  for (int s = 0; s < 33; ++s) labels[static_cast<size_t>(s)] = s % 7;
  const std::vector<float> got = run_xent(xc, logits, labels, false, false);
  const std::vector<double> zd = to_double(logits);
  double loss = 0;
  kiln::cpu::softmax_cross_entropy<double>(&loss, nullptr, nullptr, zd.data(), labels.data(),
                                           kiln::SoftmaxXentShape{33, 7});
  kiln::test::expect_close("loss", got.data(), &loss, 1, 11 * kU * (loss + 4), 0);
  for (int i = 0; i < 33 * 7; ++i) CHECK(std::isnan(got[static_cast<size_t>(1 + i)]));  // untouched
  for (int i = 0; i < 35; ++i) CHECK(got[static_cast<size_t>(1 + 33 * 7 + i)] == 7.f);
}

TEST_CASE("cuda::softmax_cross_entropy: a label outside 0..K-1 gives a NaN loss", PARITY_TAG) {
  const XentCase xc{4, 7, 1.f};
  const std::vector<float> logits = uniform_floats(28, 74);
  const std::vector<float> got = run_xent(xc, logits, {0, 7, 2, 3}, true, true);
  CHECK(std::isnan(got[0]));
  CHECK(got[1 + 28 + 1 + 1] == 0.f);  // the bad sample is not "correct"
}
