// tests/data/test_synthetic.cpp — the built-in synthetic expression set: determinism, balance,
// shapes, and the proof that it is a real task (a linear model on raw pixels stays below 60%).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/error.h"
#include "data/synthetic.h"

using kiln::data::Dataset;
using kiln::data::ImageSpec;
using kiln::data::make_synthetic;
using kiln::data::Splits;
using kiln::data::SyntheticOptions;

namespace {

// The default set (7x1000 / 7x200 / 7x200, 1x48x48, seed 1), generated once for the whole file.
const Splits& default_set() {
  static const Splits s = make_synthetic(SyntheticOptions{});
  return s;
}

// Softmax regression on raw pixels (x / 255 minus the training mean), trained by plain per-image
// SGD; returns the validation accuracy.
double logistic_regression_val_accuracy(const Dataset& train, const Dataset& val, int epochs,
                                        float lr) {
  const size_t D = train.image_bytes(), N = train.size();
  const int K = train.num_classes();
  const size_t k_count = size_t(K);
  std::vector<float> mean(D, 0.0f);
  for (size_t i = 0; i < N; ++i)
    for (size_t j = 0; j < D; ++j) mean[j] += float(train.image(i)[j]) / 255.0f / float(N);
  std::vector<float> W(k_count * D, 0.0f), b(k_count, 0.0f), x(D), z(k_count);
  auto features = [&](const Dataset& d, size_t i) {
    for (size_t j = 0; j < D; ++j) x[j] = float(d.image(i)[j]) / 255.0f - mean[j];
  };
  auto logits = [&] {
    for (int k = 0; k < K; ++k) {
      float acc = b[size_t(k)];
      const float* w = &W[size_t(k) * D];
      for (size_t j = 0; j < D; ++j) acc += w[j] * x[j];
      z[size_t(k)] = acc;
    }
  };
  // A fixed stride permutation visits the interleaved classes in mixed order.
  for (int e = 0; e < epochs; ++e) {
    const float step = lr / float(1 + e);
    for (size_t t = 0; t < N; ++t) {
      size_t i = (t * 7919 + size_t(e) * 104729) % N;
      features(train, i);
      logits();
      float m = *std::max_element(z.begin(), z.end()), sum = 0;
      for (float& v : z) sum += (v = std::exp(v - m));
      for (int k = 0; k < K; ++k) {
        float g = z[size_t(k)] / sum - (k == train.labels[i] ? 1.0f : 0.0f);
        b[size_t(k)] -= step * g;
        float* w = &W[size_t(k) * D];
        for (size_t j = 0; j < D; ++j) w[j] -= step * g * x[j];
      }
    }
  }
  size_t correct = 0;
  for (size_t i = 0; i < val.size(); ++i) {
    features(val, i);
    logits();
    correct += size_t(std::max_element(z.begin(), z.end()) - z.begin()) == size_t(val.labels[i]);
  }
  return double(correct) / double(val.size());
}

}  // namespace

TEST_CASE("synthetic: default sizes, exact class balance, FER's class names", "[cpu][data]") {
  const Splits& s = default_set();
  CHECK(s.train.size() == 7000);
  CHECK(s.val.size() == 1400);
  CHECK(s.test.size() == 1400);
  CHECK(s.train.spec() == ImageSpec{1, 48, 48});
  CHECK(s.train.class_names == kiln::data::fer_class_names());
  for (size_t c : s.train.class_counts()) CHECK(c == 1000);
  for (size_t c : s.val.class_counts()) CHECK(c == 200);
  for (size_t c : s.test.class_counts()) CHECK(c == 200);
  CHECK(s.train.pixels.size() == 7000u * 48 * 48);
  // Images are not blank and differ from one another.
  CHECK(s.train.pixels != std::vector<uint8_t>(s.train.pixels.size(), s.train.pixels[0]));
  CHECK(!std::equal(s.train.image(0), s.train.image(0) + 2304, s.train.image(7)));
}

TEST_CASE("synthetic: deterministic from the seed, whatever the thread count", "[cpu][data]") {
  SyntheticOptions o;
  o.train_per_class = 30;
  o.val_per_class = 5;
  o.test_per_class = 5;
  o.threads = 1;
  Splits a = make_synthetic(o);
  o.threads = 3;
  Splits b = make_synthetic(o);
  CHECK(a.train.pixels == b.train.pixels);
  CHECK(a.val.pixels == b.val.pixels);
  CHECK(a.test.pixels == b.test.pixels);
  CHECK(a.train.labels == b.train.labels);
  // The same images as the default-size set (image i depends on (seed, split, i) only).
  CHECK(
      std::equal(a.train.pixels.begin(), a.train.pixels.end(), default_set().train.pixels.begin()));
  // Splits are different streams, and another seed gives other faces.
  CHECK(!std::equal(a.val.pixels.begin(), a.val.pixels.end(), a.train.pixels.begin()));
  o.seed = 2;
  Splits c = make_synthetic(o);
  CHECK(c.train.pixels != a.train.pixels);
}

TEST_CASE("synthetic: any size and RGB", "[cpu][data]") {
  SyntheticOptions o;
  o.spec = ImageSpec{3, 64, 80};
  o.train_per_class = 2;
  o.val_per_class = 1;
  o.test_per_class = 0;
  Splits s = make_synthetic(o);
  REQUIRE(s.train.spec() == (ImageSpec{3, 64, 80}));
  CHECK(s.train.size() == 14);
  CHECK(s.test.empty());
  // Colour: channels are not all equal.
  size_t differing = 0;
  for (size_t p = 0; p < 64 * 80; ++p)
    differing += s.train.image(0)[p * 3] != s.train.image(0)[p * 3 + 2];
  CHECK(differing > 100);
  o.spec = ImageSpec{2, 48, 48};
  CHECK_THROWS_AS(make_synthetic(o), kiln::Error);
}

TEST_CASE("synthetic: a real task - logistic regression on raw pixels stays below 60%",
          "[cpu][data]") {
  const Splits& s = default_set();
  double acc = logistic_regression_val_accuracy(s.train, s.val, 6, 0.003f);
  INFO("logistic regression validation accuracy: " << acc);
  WARN("logistic regression (6 epochs SGD) validation accuracy on synthetic: " << acc);
  CHECK(acc > 0.20);  // clearly above chance (1/7): the baseline learns something
  CHECK(acc < 0.60);  // ... but a CNN (>= 95% in 2-3 epochs, docs/data.md) is needed
}
