// tests/analysis/test_saliency.cpp — saliency maps against central finite differences (double).
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <sstream>

#include "analysis/saliency.h"
#include "tests/support/png.h"
#include "tests/support/models.h"

using namespace kiln;
using namespace kiln::analysis;

TEST_CASE("saliency equals max over channels of |d logit_c / d x| by finite differences",
          "[cpu][gradcheck]") {
  const int n = 2, h = 8, w = 8, c = 2;
  auto net = test::small_cnn(c, h, w, DType::f64, 7);
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> x(size_t(n * h * w * c));
  for (double& v : x) v = u(rng);
  const std::vector<int> classes = {2, 0};

  const Tensor xt = Tensor::from_vector<double>({n, h, w, c}, x);
  const SaliencyResult s = saliency_maps(*net, xt, classes);
  REQUIRE(s.maps.size() == size_t(n * h * w));
  REQUIRE(s.classes == 3);

  // Logit c_i of image i at input x, eval mode.
  auto logit = [&](int i) {
    const Tensor t = Tensor::from_vector<double>({n, h, w, c}, x);
    const std::vector<double> z = net->forward(t, Mode::eval).to_vector<double>();
    return z[size_t(i * 3 + classes[size_t(i)])];
  };
  const double eps = 1e-6;
  int bad = 0;
  double largest = 0;
  std::ostringstream os;
  for (int i = 0; i < n; ++i)
    for (int p = 0; p < h * w; ++p) {
      double fd = 0;
      for (int ch = 0; ch < c; ++ch) {
        double& xi = x[size_t((i * h * w + p) * c + ch)];
        const double saved = xi;
        xi = saved + eps;
        const double plus = logit(i);
        xi = saved - eps;
        const double minus = logit(i);
        xi = saved;
        fd = std::max(fd, std::abs((plus - minus) / (2 * eps)));
      }
      const double got = s.maps[size_t(i * h * w + p)];
      largest = std::max(largest, fd);
      // maps are stored as float: relative 1e-5 plus the finite difference's own error.
      if (std::abs(got - fd) > 1e-6 + 1e-5 * fd) {
        if (bad < 8)
          os << "  image " << i << " pixel " << p << ": saliency " << got << " fd " << fd << "\n";
        ++bad;
      }
    }
  INFO(os.str());
  CHECK(bad == 0);
  CHECK(largest > 1e-3);  // the check compared real gradients, not zeros
  // The probabilities are a softmax: they sum to 1 per image.
  for (int i = 0; i < n; ++i) {
    double sum = 0;
    for (int k = 0; k < 3; ++k) sum += s.probs[size_t(i * 3 + k)];
    CHECK(sum == Approx(1.0).epsilon(1e-6));
  }
}

TEST_CASE("saliency leaves parameter gradients untouched and is batch-independent", "[cpu]") {
  const int h = 8, w = 8, c = 1;
  auto net = test::small_cnn(c, h, w, DType::f32, 11);
  net->zero_grad();
  std::vector<float> x(size_t(3 * h * w));
  std::mt19937 rng(5);
  for (float& v : x) v = float(rng() % 1000) / 1000.0f;
  const SaliencyResult all =
      saliency_maps(*net, Tensor::from_vector<float>({3, h, w, c}, x), {0, 1, 2});
  const SaliencyResult one =
      saliency_maps(*net,
                    Tensor::from_vector<float>(
                        {1, h, w, c}, std::vector<float>(x.begin() + h * w, x.begin() + 2 * h * w)),
                    {1});
  for (int p = 0; p < h * w; ++p)
    CHECK(one.maps[size_t(p)] == Approx(all.maps[size_t(h * w + p)]).epsilon(1e-5));
  for (float g : net->flat_grads().to_vector<float>()) REQUIRE(g == 0.0f);
}

TEST_CASE("saliency grid PNG: rows x (input, map, overlay), not uniform", "[cpu]") {
  const int h = 8, w = 8, c = 1, n = 3;
  auto net = test::small_cnn(c, h, w, DType::f32, 13);
  std::vector<float> x(size_t(n * h * w));
  for (size_t i = 0; i < x.size(); ++i) x[i] = float((i * 37) % 101) / 100.0f;
  const SaliencyResult s =
      saliency_maps(*net, Tensor::from_vector<float>({n, h, w, c}, x), {0, 1, 2});
  SaliencyFigure f{.inputs = x.data(),
                   .channels = 1,
                   .labels = {0, 1, 2},
                   .class_names = {"a", "b", "c"},
                   .row_labels = {"a", "b", "c"},
                   .cell_px = 64};
  const Image img = saliency_grid_png(s, f);
  CHECK(img.width() >= 3 * 64);
  CHECK(img.height() >= 3 * 64);
  const auto d = test::decode_png(encode_png(img));
  REQUIRE(d.width == img.width());
  CHECK(d.stddev() > 30);
}
