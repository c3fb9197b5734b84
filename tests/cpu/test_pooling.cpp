// tests/cpu/test_pooling.cpp — max pooling: hand-computed argmax (ties, padding that must never
// win), the finite-difference gradient check of the double oracle with kinks skipped, the float
// path against the oracle, and dx overwritten (sentinels).
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "kernels/pooling.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"

using kiln::DType;
using kiln::Pool2dParams;
using kiln::Pool2dShape;
using kiln::Tensor;
using namespace kiln::test;

namespace {

struct Case {
  int n, h, w, c, kh, kw, stride_h, stride_w, pad_h, pad_w;
};

Pool2dShape shape_of(const Case& c) {
  Pool2dShape s;
  s.n = c.n, s.h = c.h, s.w = c.w, s.c = c.c, s.kh = c.kh, s.kw = c.kw;
  s.stride_h = c.stride_h, s.stride_w = c.stride_w, s.pad_h = c.pad_h, s.pad_w = c.pad_w;
  return s;
}
Pool2dParams params_of(const Case& c) {
  return {c.kh, c.kw, c.stride_h, c.stride_w, c.pad_h, c.pad_w};
}
int64_t out_numel(const Pool2dShape& s) {
  return int64_t(s.n) * s.out_h() * s.out_w() * s.c;
}

std::string describe(const Case& c) {
  std::ostringstream os;
  os << "n" << c.n << " " << c.h << "x" << c.w << " c " << c.c << " k " << c.kh << "x" << c.kw
     << " stride " << c.stride_h << "x" << c.stride_w << " pad " << c.pad_h << "x" << c.pad_w;
  return os.str();
}

// x coordinates inside a window whose two largest values are within `gap`: there max is not
// differentiable at the finite-difference scale, so the gradient check skips them.
std::vector<bool> near_kinks(const std::vector<double>& x, const Pool2dShape& s, double gap) {
  std::vector<bool> skip(x.size(), false);
  for (int n = 0; n < s.n; ++n)
    for (int oh = 0; oh < s.out_h(); ++oh)
      for (int ow = 0; ow < s.out_w(); ++ow)
        for (int c = 0; c < s.c; ++c) {
          std::vector<std::pair<double, int64_t>> window;
          for (int i = 0; i < s.kh; ++i)
            for (int j = 0; j < s.kw; ++j) {
              const int ih = oh * s.stride_h - s.pad_h + i, iw = ow * s.stride_w - s.pad_w + j;
              if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w) continue;
              const int64_t k = ((int64_t(n) * s.h + ih) * s.w + iw) * s.c + c;
              window.push_back({x[k], k});
            }
          std::sort(window.begin(), window.end(), std::greater<>());
          if (window.size() > 1 && window[0].first - window[1].first < gap)
            for (auto& [v, k] : window) skip[k] = true;
        }
  return skip;
}

}  // namespace

TEST_CASE("maxpool argmax on hand cases: row-major position, first max wins, padding never wins",
          "[cpu]") {
  // 2x2 windows, stride 2, over
  //   1 3 | 2 0
  //   4 2 | 1 5 ----+----
  //   0 7 | 7 1
  //   6 2 | 3 3
  Tensor x =
      Tensor::from_vector<double>({1, 4, 4, 1}, {1, 3, 2, 0, 4, 2, 1, 5, 0, 7, 7, 1, 6, 2, 3, 3});
  Tensor y = Tensor::full({1, 2, 2, 1}, NAN, DType::f64);
  Tensor argmax = Tensor::full({1, 2, 2, 1}, 99, DType::u8);
  kiln::maxpool2d_forward(y, argmax, x, {});
  CHECK(y.to_vector<double>() == std::vector<double>{4, 5, 7, 7});
  CHECK(argmax.to_vector<uint8_t>() == std::vector<uint8_t>{2, 3, 1, 0});
  // Backward routes dy to the winners only.
  Tensor dy = Tensor::from_vector<double>({1, 2, 2, 1}, {1, 2, 3, 4});
  Tensor dx = Tensor::full({1, 4, 4, 1}, NAN, DType::f64);
  kiln::maxpool2d_backward(dx, dy, argmax, {});
  CHECK(dx.to_vector<double>() ==
        std::vector<double>{0, 0, 0, 0, 1, 0, 0, 2, 0, 3, 4, 0, 0, 0, 0, 0});

  // Ties: every value equal, so the first position of each window wins.
  Tensor flat = Tensor::full({1, 4, 4, 2}, 1.5, DType::f32);
  Tensor yf = Tensor::full({1, 2, 2, 2}, NAN, DType::f32);
  Tensor af = Tensor::full({1, 2, 2, 2}, 99, DType::u8);
  kiln::maxpool2d_forward(yf, af, flat, {});
  CHECK(af.to_vector<uint8_t>() == std::vector<uint8_t>(8, 0));

  // 3x3 windows, stride 1, padding 1 over an all-negative 2x2 image: a zero from the padding would
  // win if it were a candidate; the real maximum -1 (x[0][0]) wins in every window instead, at
  // window positions (1,1)=4, (1,0)=3, (0,1)=1, (0,0)=0. All four dy values land on x[0][0].
  for (DType dtype : {DType::f64, DType::f32}) {
    Tensor xn = Tensor::full({1, 2, 2, 1}, 0.0, dtype);
    const std::vector<double> v = {-1, -2, -3, -4};
    for (int i = 0; i < 4; ++i) {
      if (dtype == DType::f64)
        xn.data<double>()[i] = v[i];
      else
        xn.data<float>()[i] = float(v[i]);
    }
    Tensor yn = Tensor::full({1, 2, 2, 1}, NAN, dtype);
    Tensor an = Tensor::full({1, 2, 2, 1}, 99, DType::u8);
    kiln::maxpool2d_forward(yn, an, xn, {3, 3, 1, 1, 1, 1});
    CHECK(an.to_vector<uint8_t>() == std::vector<uint8_t>{4, 3, 1, 0});
    Tensor dyn = Tensor::full({1, 2, 2, 1}, 0.0, dtype);
    Tensor dxn = Tensor::full({1, 2, 2, 1}, 1e30, dtype);
    for (int i = 0; i < 4; ++i) {
      if (dtype == DType::f64)
        dyn.data<double>()[i] = i + 1;
      else
        dyn.data<float>()[i] = float(i + 1);
    }
    kiln::maxpool2d_backward(dxn, dyn, an, {3, 3, 1, 1, 1, 1});
    if (dtype == DType::f64) {
      CHECK(yn.to_vector<double>() == std::vector<double>(4, -1));
      CHECK(dxn.to_vector<double>() == std::vector<double>{10, 0, 0, 0});
    } else {
      CHECK(yn.to_vector<float>() == std::vector<float>(4, -1));
      CHECK(dxn.to_vector<float>() == std::vector<float>{10, 0, 0, 0});
    }
  }
}

TEST_CASE("maxpool gradient check of the double oracle (kinks skipped)", "[cpu][gradcheck]") {
  const std::vector<Case> cases = {
      {2, 5, 6, 3, 2, 2, 2, 2, 0, 0},  // the flagship's 2x2/2, odd size drops a row
      {1, 7, 7, 2, 3, 3, 2, 2, 1, 1},  // padding
      {1, 6, 5, 2, 3, 3, 1, 1, 1, 1},  // overlapping windows: dx sums several dy
      {2, 5, 5, 1, 2, 3, 1, 2, 1, 1},  // non-square window, mixed strides
  };
  uint64_t seed = 60;
  for (const Case& c : cases) {
    INFO(describe(c));
    const Pool2dShape s = shape_of(c);
    const int64_t nx = int64_t(c.n) * c.h * c.w * c.c, ny = out_numel(s);
    std::vector<double> x = random_vector<double>(nx, seed++);
    const std::vector<double> r = random_vector<double>(ny, seed++);
    std::vector<double> y(ny);
    std::vector<uint8_t> argmax(ny);
    auto loss = [&] {  // L = Σ r·y + ½Σy²
      kiln::cpu::maxpool2d_forward(y.data(), argmax.data(), x.data(), s);
      return probe_loss(y, r);
    };
    loss();
    const std::vector<double> dy = probe_loss_grad(y, r);
    std::vector<double> dx(nx);
    kiln::cpu::maxpool2d_backward(dx.data(), dy.data(), argmax.data(), s);
    const std::vector<bool> skip = near_kinks(x, s, 1e-4);
    kiln::test::expect_gradient_close("x", x.data(), nx, dx.data(), loss, 1e-6, {},
                                      [&](int64_t i) { return bool(skip[i]); });
  }
}

// Error bound of the float path against the oracle: forward exact (a max is one of the inputs) with
// identical argmax; backward |got − ref| ≤ 1e-6·max|ref| + 1e-6·|ref| (float sums of
// overlapping dy).
TEST_CASE("maxpool float path matches the double oracle", "[cpu]") {
  const std::vector<Case> cases = {
      {1, 5, 7, 1, 2, 2, 2, 2, 0, 0},     {2, 9, 6, 3, 3, 3, 2, 2, 1, 1},
      {3, 11, 11, 3, 3, 3, 1, 1, 1, 1},   {1, 8, 8, 16, 2, 2, 2, 2, 0, 0},
      {2, 7, 9, 5, 5, 5, 2, 2, 2, 2},     {4, 48, 48, 16, 2, 2, 2, 2, 0, 0},
      {1, 32, 32, 2, 16, 16, 4, 4, 0, 0},  // a window of 256 elements: argmax up to 255
  };
  uint64_t seed = 70;
  for (const Case& c : cases) {
    INFO(describe(c));
    const Pool2dShape s = shape_of(c);
    const int64_t nx = int64_t(c.n) * c.h * c.w * c.c, ny = out_numel(s);
    const std::vector<float> xf = random_vector<float>(nx, seed++),
                             dyf = random_vector<float>(ny, seed++);
    const std::vector<double> x(xf.begin(), xf.end()), dy(dyf.begin(), dyf.end());
    std::vector<double> y(ny), dx(nx);
    std::vector<uint8_t> argmax(ny);
    kiln::cpu::maxpool2d_forward(y.data(), argmax.data(), x.data(), s);
    kiln::cpu::maxpool2d_backward(dx.data(), dy.data(), argmax.data(), s);

    Tensor xt = Tensor::from_vector<float>({c.n, c.h, c.w, c.c}, xf);
    Tensor dyt = Tensor::from_vector<float>({c.n, s.out_h(), s.out_w(), c.c}, dyf);
    Tensor yt = Tensor::full(dyt.shape(), NAN), at = Tensor::full(dyt.shape(), 77, DType::u8);
    Tensor dxt = Tensor::full(xt.shape(), NAN);
    kiln::maxpool2d_forward(yt, at, xt, params_of(c));
    kiln::maxpool2d_backward(dxt, dyt, at, params_of(c));
    expect_close("y", yt.to_vector<float>(), y, 0, 0);
    expect_close("argmax", at.to_vector<uint8_t>(), argmax, 0, 0);
    expect_close("dx", dxt.to_vector<float>(), dx, 1e-6 * max_abs(dx), 1e-6);
  }
}
