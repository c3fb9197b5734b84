// tests/cpu/test_softmax_xent.cpp — fused softmax + cross-entropy (docs/math.md §3): ŷ − y by hand,
// finite and exact losses for huge logits, the double reference against central differences, the
// float path against the double oracle, sentinels, and argument checks of the functional API.
//
// Float-path error bound against the double oracle (logits in [−10, 10]):
//   loss:    |Δ| ≤ 1e-6 · (1 + |L|)                (measured worst 1.3e-7)
//   dlogits: |Δ| ≤ (1e-6 + 1e-5 · N·|ref|) / N     (measured worst N·|Δ| 1.7e-7; ŷ − y is at most 1
//                                                   per element before the 1/N)
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/softmax_xent.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::DType;
using kiln::SoftmaxXentShape;
using kiln::Tensor;
using namespace kiln::test;

namespace {

struct Result {
  double loss;
  std::vector<double> dlogits;
  std::vector<int32_t> correct;
};

// Runs the functional API with the outputs pre-filled with sentinels (NaN, -7).
Result run(const std::vector<double>& logits, const std::vector<int32_t>& labels, int classes,
           DType dtype) {
  const int64_t n = static_cast<int64_t>(labels.size());
  const Tensor z = make_tensor({n, classes}, logits, dtype);
  const Tensor y = Tensor::from_vector<int32_t>({n}, labels);
  Tensor loss = Tensor::full({1}, NAN, dtype), dz = Tensor::full({n, classes}, NAN, dtype);
  Tensor correct = Tensor::full({n}, -7, DType::i32);
  kiln::softmax_cross_entropy(loss, &dz, &correct, z, y);
  return {values(loss)[0], values(dz), correct.to_vector<int32_t>()};
}

}  // namespace

TEST_CASE("softmax_xent: y_hat - y on hand-computed cases", "[cpu]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    const double tol = dtype == DType::f64 ? 1e-15 : 1e-6;
    // z = [1, 2, 3], label 2: ŷ = softmax(z), L = −log ŷ₂, dz = ŷ − [0, 0, 1].
    const Result one = run({1, 2, 3}, {2}, 3, dtype);
    CHECK(one.loss == Approx(0.4076059644443804).epsilon(tol));
    kiln::test::expect_close(
        "dz", one.dlogits,
        std::vector<double>{0.09003057317038046, 0.24472847105479764, 0.6652409557748218 - 1}, tol,
        tol);
    CHECK(one.correct == std::vector<int32_t>{1});
    // A batch of two adds row [0.5, −1, 2] with label 0: the loss is the mean, dz is divided by 2.
    const Result two = run({1, 2, 3, 0.5, -1, 2}, {2, 0}, 3, dtype);
    CHECK(two.loss == Approx((0.4076059644443804 + 1.7413112966571571) / 2).epsilon(tol));
    kiln::test::expect_close(
        "dz (batch of 2)", two.dlogits,
        std::vector<double>{0.09003057317038046 / 2, 0.24472847105479764 / 2,
                            (0.6652409557748218 - 1) / 2, (0.1752903921400367 - 1) / 2,
                            0.039112573270687456 / 2, 0.7855970345892759 / 2},
        tol, tol);
    CHECK(two.correct == std::vector<int32_t>{1, 0});
  }
}

TEST_CASE("softmax_xent: huge logits give finite, exact losses", "[cpu]") {
  struct Case {
    std::vector<double> z;
    int32_t label;
    double loss;
    std::vector<double> dz;
    int32_t correct;
  };
  const double e1 = std::exp(-1.0), s = 1 + 2 * e1;
  const std::vector<Case> cases{
      {{1e4, -1e4, 0}, 0, 0.0, {0, 0, 0}, 1},
      {{1e4, -1e4, 0}, 1, 2e4, {1, -1, 0}, 0},
      {{-1e4, -1e4 + 1, -1e4}, 0, 1.551444713932051, {e1 / s - 1, 1 / s, e1 / s}, 0},
      {{1e4, 1e4, -1e4}, 1, 0.6931471805599453, {0.5, -0.5, 0}, 0},  // tie: argmax is the first
      {{-1e4, -1e4, -1e4}, 2, 1.0986122886681098, {1.0 / 3, 1.0 / 3, 1.0 / 3 - 1}, 0},
  };
  for (DType dtype : {DType::f64, DType::f32}) {
    for (size_t c = 0; c < cases.size(); ++c) {
      INFO("dtype " << kiln::dtype_name(dtype) << ", case " << c);
      const Result r = run(cases[c].z, {cases[c].label}, 3, dtype);
      REQUIRE(std::isfinite(r.loss));
      CHECK(r.loss == Approx(cases[c].loss).epsilon(1e-6).margin(1e-7));
      kiln::test::expect_close("dz", r.dlogits, cases[c].dz, 1e-7, 1e-6);
      CHECK(r.correct[0] == cases[c].correct);
    }
  }
}

TEST_CASE("softmax_xent: the double reference's dlogits is the gradient of its loss",
          "[cpu][gradcheck]") {
  const SoftmaxXentShape s{4, 5};
  std::vector<double> z = random_vector<double>(s.n * s.classes, 21, -3, 3);
  const std::vector<int32_t> labels{0, 4, 2, 2};
  double loss = 0;
  std::vector<double> dz(z.size());
  kiln::cpu::softmax_cross_entropy(&loss, dz.data(), nullptr, z.data(), labels.data(), s);
  // The objective is the loss itself, evaluated without the gradient output.
  auto objective = [&] {
    double l = 0;
    kiln::cpu::softmax_cross_entropy<double>(&l, nullptr, nullptr, z.data(), labels.data(), s);
    return l;
  };
  kiln::test::expect_gradient_close("logits", z.data(), z.size(), dz.data(), objective, 1e-7);
  // Each row of ŷ − y sums to 0.
  for (int n = 0; n < s.n; ++n) {
    double row = 0;
    for (int k = 0; k < s.classes; ++k) row += dz[n * s.classes + k];
    CHECK(std::fabs(row) < 1e-15);
  }
}

TEST_CASE("softmax_xent: correct marks argmax == label", "[cpu]") {
  const int n = 64, k = 7;
  const std::vector<double> z = random_vector<double>(n * k, 31, -2, 2);
  std::vector<int32_t> labels(n);
  for (int i = 0; i < n; ++i) labels[i] = (i * 5 + 3) % k;
  const Result r = run(z, labels, k, DType::f64);
  int hits = 0;
  for (int i = 0; i < n; ++i) {
    int argmax = 0;
    for (int j = 1; j < k; ++j)
      if (z[i * k + j] > z[i * k + argmax]) argmax = j;
    CHECK(r.correct[i] == (argmax == labels[i] ? 1 : 0));
    hits += r.correct[i];
  }
  CHECK(hits > 0);  // the case exercises both values
  CHECK(hits < n);
}

TEST_CASE("softmax_xent: the outputs are optional", "[cpu]") {
  const Tensor z = make_tensor({2, 3}, {1, 2, 3, 0.5, -1, 2}, DType::f64);
  const Tensor y = Tensor::from_vector<int32_t>({2}, {2, 0});
  Tensor loss = Tensor::full({1}, NAN, DType::f64);
  kiln::softmax_cross_entropy(loss, nullptr, nullptr, z, y);
  CHECK(loss.to_vector<double>()[0] == Approx((0.4076059644443804 + 1.7413112966571571) / 2));
}

TEST_CASE("softmax_xent: the float path matches the double oracle", "[cpu]") {
  uint64_t seed = 200;
  for (int n : {1, 3, 17, 64}) {
    for (int k : {1, 2, 7, 10, 1000}) {
      INFO("n " << n << " classes " << k);
      const std::vector<float> zf = random_vector<float>(int64_t(n) * k, ++seed, -10, 10);
      const std::vector<double> z(zf.begin(), zf.end());
      std::vector<int32_t> labels(n);
      for (int i = 0; i < n; ++i) labels[i] = static_cast<int32_t>((seed + 7 * i) % k);
      double loss = 0;
      std::vector<double> dz(z.size());
      std::vector<int32_t> correct(n);
      kiln::cpu::softmax_cross_entropy(&loss, dz.data(), correct.data(), z.data(), labels.data(),
                                       SoftmaxXentShape{n, k});
      const Result got = run(z, labels, k, DType::f32);
      CHECK(std::fabs(got.loss - loss) <= 1e-6 * (1 + std::fabs(loss)));
      std::vector<double> dz_scaled(dz.size()), got_scaled(dz.size());
      for (size_t i = 0; i < dz.size(); ++i) {
        dz_scaled[i] = dz[i] * n;
        got_scaled[i] = got.dlogits[i] * n;
      }
      kiln::test::expect_close("N·dlogits", got_scaled, dz_scaled, 1e-6, 1e-5);
      CHECK(got.correct == correct);
    }
  }
}

TEST_CASE("softmax_xent: the functional API rejects bad arguments", "[cpu]") {
  using Catch::Contains;
  const Tensor z = Tensor::zeros({2, 3});
  Tensor loss = Tensor::zeros({1}), dz = Tensor::zeros({2, 3}),
         correct = Tensor::zeros({2}, DType::i32);
  const Tensor labels = Tensor::from_vector<int32_t>({2}, {0, 1});
  const Tensor big = Tensor::from_vector<int32_t>({2}, {0, 3});
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss, &dz, &correct, z, big),
                    Contains("softmax_cross_entropy") && Contains("label 3 at index 1") &&
                        Contains("[0, 3)") && Contains("[2, 3]"));
  const Tensor negative = Tensor::from_vector<int32_t>({2}, {-1, 0});
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss, nullptr, nullptr, z, negative),
                    Contains("label -1 at index 0"));
  const Tensor labels_f32 = Tensor::zeros({2});
  CHECK_THROWS_WITH(
      kiln::softmax_cross_entropy(loss, &dz, nullptr, z, labels_f32),
      Contains("softmax_cross_entropy") && Contains("labels [2] f32") && Contains("i32"));
  const Tensor labels_3 = Tensor::from_vector<int32_t>({3}, {0, 1, 2});
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss, &dz, nullptr, z, labels_3),
                    Contains("softmax_cross_entropy") && Contains("labels [3]") && Contains("[2]"));
  const Tensor z_rank1 = Tensor::zeros({3});
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss, nullptr, nullptr, z_rank1, labels),
                    Contains("softmax_cross_entropy") && Contains("logits [3]"));
  Tensor loss_2 = Tensor::zeros({2});
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss_2, &dz, nullptr, z, labels),
                    Contains("softmax_cross_entropy") && Contains("loss [2]"));
  Tensor dz_bad = Tensor::zeros({2, 4});
  CHECK_THROWS_WITH(
      kiln::softmax_cross_entropy(loss, &dz_bad, nullptr, z, labels),
      Contains("softmax_cross_entropy") && Contains("dlogits [2, 4]") && Contains("[2, 3]"));
  Tensor loss_f64 = Tensor::zeros({1}, DType::f64);
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss_f64, &dz, nullptr, z, labels),
                    Contains("softmax_cross_entropy") && Contains("f64") && Contains("f32"));
  Tensor correct_f32 = Tensor::zeros({2});
  CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss, &dz, &correct_f32, z, labels),
                    Contains("softmax_cross_entropy") && Contains("correct [2] f32"));
  if (kiln::cuda_available()) {
    const Tensor labels_cuda = labels.to(kiln::Device::cuda);
    CHECK_THROWS_WITH(kiln::softmax_cross_entropy(loss, &dz, nullptr, z, labels_cuda),
                      Contains("softmax_cross_entropy") && Contains("cuda") && Contains("cpu"));
  }
}
