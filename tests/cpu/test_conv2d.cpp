// tests/cpu/test_conv2d.cpp — conv2d: the output-shape formula and hand-computed answers, the
// finite-difference gradient check of the double oracle (x, w, b), the float paths (fast: im2col +
// sgemm; plain loops in float) against the oracle on awkward shapes, and the gradient semantics
// (dx overwritten, dw/db accumulated) proven with sentinels. Bit-for-bit repetition for any number of
// threads: tests/cpu/test_determinism.cpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"
#include "kernels/conv2d.h"
#include "tests/support/compare.h"
#include "tests/support/gradcheck.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

using kiln::Conv2dParams;
using kiln::Conv2dShape;
using kiln::DType;
using kiln::Tensor;
using namespace kiln::test;

namespace {

struct Case {
  int n, h, w, c_in, c_out, kh, kw, stride_h, stride_w, pad_h, pad_w;
  bool bias;
};

Conv2dShape shape_of(const Case& c) {
  Conv2dShape s;
  s.n = c.n, s.h = c.h, s.w = c.w, s.c_in = c.c_in, s.c_out = c.c_out, s.kh = c.kh, s.kw = c.kw;
  s.stride_h = c.stride_h, s.stride_w = c.stride_w, s.pad_h = c.pad_h, s.pad_w = c.pad_w;
  return s;
}

Conv2dParams params_of(const Case& c) {
  return {c.stride_h, c.stride_w, c.pad_h, c.pad_w};
}

struct Sizes {
  int64_t x, w, y;
};
Sizes sizes(const Conv2dShape& s) {
  return {int64_t(s.n) * s.h * s.w * s.c_in, int64_t(s.c_out) * s.kh * s.kw * s.c_in,
          int64_t(s.n) * s.out_h() * s.out_w() * s.c_out};
}

std::string describe(const Case& c) {
  std::ostringstream os;
  os << "n" << c.n << " " << c.h << "x" << c.w << " c_in " << c.c_in << " c_out " << c.c_out
     << " k " << c.kh << "x" << c.kw << " stride " << c.stride_h << "x" << c.stride_w << " pad "
     << c.pad_h << "x" << c.pad_w << (c.bias ? " bias" : " no bias");
  return os.str();
}

template <typename T, typename U>
std::vector<T> cast(const std::vector<U>& v) {
  return std::vector<T>(v.begin(), v.end());
}

}  // namespace

TEST_CASE("conv2d output shape follows floor((H + 2P - K) / S) + 1", "[cpu]") {
  struct ShapeCase {
    int h, w, kh, kw, sh, sw, ph, pw, oh, ow;
  };
  const std::vector<ShapeCase> cases = {
      {48, 48, 3, 3, 1, 1, 1, 1, 48, 48}, {48, 48, 3, 3, 2, 2, 1, 1, 24, 24},
      {7, 7, 3, 3, 2, 2, 0, 0, 3, 3},     {5, 5, 5, 5, 1, 1, 2, 2, 5, 5},
      {10, 10, 4, 4, 3, 3, 1, 1, 3, 3},   {1, 1, 1, 1, 1, 1, 0, 0, 1, 1},
      {6, 9, 3, 2, 1, 2, 0, 1, 4, 5},     {128, 128, 3, 3, 1, 1, 1, 1, 128, 128}};
  for (const ShapeCase& c : cases) {
    Conv2dShape s;
    s.h = c.h, s.w = c.w, s.kh = c.kh, s.kw = c.kw, s.stride_h = c.sh, s.stride_w = c.sw;
    s.pad_h = c.ph, s.pad_w = c.pw;
    INFO(c.h << "x" << c.w << " k " << c.kh << "x" << c.kw << " s " << c.sh << "x" << c.sw << " p "
             << c.ph << "x" << c.pw);
    CHECK(s.out_h() == c.oh);
    CHECK(s.out_w() == c.ow);
    // The functional API accepts exactly that output shape and rejects one row more.
    Tensor x = Tensor::zeros({1, c.h, c.w, 2}, DType::f64);
    Tensor w = Tensor::zeros({3, c.kh, c.kw, 2}, DType::f64);
    Tensor y({1, c.oh, c.ow, 3}, DType::f64);
    CHECK_NOTHROW(kiln::conv2d_forward(y, x, w, nullptr, {c.sh, c.sw, c.ph, c.pw}));
    Tensor bad({1, c.oh + 1, c.ow, 3}, DType::f64);
    CHECK_THROWS_AS(kiln::conv2d_forward(bad, x, w, nullptr, {c.sh, c.sw, c.ph, c.pw}),
                    kiln::Error);
  }
}

TEST_CASE("conv2d hand-computed forward and backward", "[cpu]") {
  for (DType dtype : {DType::f64, DType::f32}) {
    INFO("dtype " << kiln::dtype_name(dtype));
    Tensor x = Tensor::from_vector<double>({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
    Tensor w = Tensor::from_vector<double>({1, 2, 2, 1}, {1, 2, 3, 4});
    Tensor b = Tensor::from_vector<double>({1}, {0.5});
    if (dtype == DType::f32) {
      x = Tensor::from_vector<float>({1, 3, 3, 1}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
      w = Tensor::from_vector<float>({1, 2, 2, 1}, {1, 2, 3, 4});
      b = Tensor::from_vector<float>({1}, {0.5f});
    }
    // y[0,0] = 1·1 + 2·2 + 4·3 + 5·4 = 37, and so on, plus the bias.
    Tensor y = Tensor::full({1, 2, 2, 1}, NAN, dtype);
    kiln::conv2d_forward(y, x, w, &b, {});
    CHECK(values(y) == std::vector<double>{37.5, 47.5, 67.5, 77.5});
    // dy = 1 everywhere: dx is the "full" correlation of the ones with w; dw[i][j] is the sum of
    // the 2x2 block of x starting at (i, j); db = 4.
    Tensor dy = Tensor::full({1, 2, 2, 1}, 1.0, dtype);
    Tensor dx = Tensor::full({1, 3, 3, 1}, NAN, dtype);
    kiln::conv2d_backward_data(dx, dy, w, {});
    CHECK(values(dx) == std::vector<double>{1, 3, 2, 4, 10, 6, 3, 7, 4});
    Tensor dw = Tensor::zeros({1, 2, 2, 1}, dtype), db = Tensor::zeros({1}, dtype);
    kiln::conv2d_backward_filter(dw, &db, dy, x, {});
    CHECK(values(dw) == std::vector<double>{12, 16, 24, 28});
    CHECK(values(db) == std::vector<double>{4});

    // Stride 2, padding 1, a 3x3 kernel of ones: each output sums the 2x2 corner of x it sees.
    Tensor ones = Tensor::full({1, 3, 3, 1}, 1.0, dtype);
    Tensor y2 = Tensor::full({1, 2, 2, 1}, NAN, dtype);
    kiln::conv2d_forward(y2, x, ones, nullptr, {2, 2, 1, 1});
    CHECK(values(y2) == std::vector<double>{12, 16, 24, 28});

    // Channels: x one row of two pixels (1,2) (3,4); w [2][1][2][2] picks x₀ + x₃ and −x₁ + 2x₂.
    Tensor xc = Tensor::full({1, 1, 2, 2}, 0.0, dtype);
    Tensor wc = Tensor::full({2, 1, 2, 2}, 0.0, dtype);
    const std::vector<double> xv = {1, 2, 3, 4}, wv = {1, 0, 0, 1, 0, -1, 2, 0};
    for (int i = 0; i < 4; ++i) {
      if (dtype == DType::f64)
        xc.data<double>()[i] = xv[i];
      else
        xc.data<float>()[i] = float(xv[i]);
    }
    for (int i = 0; i < 8; ++i) {
      if (dtype == DType::f64)
        wc.data<double>()[i] = wv[i];
      else
        wc.data<float>()[i] = float(wv[i]);
    }
    Tensor yc = Tensor::full({1, 1, 1, 2}, NAN, dtype);
    kiln::conv2d_forward(yc, xc, wc, nullptr, {});
    CHECK(values(yc) == std::vector<double>{5, 4});
  }
}

TEST_CASE("conv2d gradient check of the double oracle (x, w, b)", "[cpu][gradcheck]") {
  const std::vector<Case> cases = {
      {2, 5, 6, 3, 4, 3, 3, 1, 1, 1, 1, true},   // padding 1, odd non-square input
      {1, 7, 5, 1, 2, 3, 2, 2, 1, 0, 1, true},   // stride 2 with an odd size, non-square kernel
      {2, 6, 7, 2, 3, 5, 5, 2, 2, 2, 2, false},  // 5x5, stride 2, padding 2, no bias
      {1, 4, 4, 3, 2, 1, 1, 1, 1, 0, 0, true},   // 1x1
      {1, 5, 8, 2, 2, 2, 3, 3, 2, 1, 0, true},   // stride 3 leaves rows unused
  };
  uint64_t seed = 1;
  for (const Case& c : cases) {
    INFO(describe(c));
    const Conv2dShape s = shape_of(c);
    const Sizes n = sizes(s);
    std::vector<double> x = random_vector<double>(n.x, seed++),
                        w = random_vector<double>(n.w, seed++);
    std::vector<double> b = random_vector<double>(c.c_out, seed++);
    const std::vector<double> r = random_vector<double>(n.y, seed++);
    std::vector<double> y(n.y);
    // L = Σ r·y + ½ Σ y² (nonlinear in x and w), so dL/dy = r + y.
    auto loss = [&] {
      kiln::cpu::conv2d_forward(y.data(), x.data(), w.data(), c.bias ? b.data() : nullptr, s);
      return probe_loss(y, r);
    };
    loss();
    const std::vector<double> dy = probe_loss_grad(y, r);
    std::vector<double> dx(n.x), dw(n.w, 0.0), db(c.c_out, 0.0);
    kiln::cpu::conv2d_backward_data(dx.data(), dy.data(), w.data(), s);
    kiln::cpu::conv2d_backward_filter(dw.data(), c.bias ? db.data() : nullptr, dy.data(), x.data(),
                                      s);
    kiln::test::expect_gradient_close("x", x.data(), n.x, dx.data(), loss, 1e-6,
                                      sample_indices(n.x, 48, seed));
    kiln::test::expect_gradient_close("w", w.data(), n.w, dw.data(), loss, 1e-6,
                                      sample_indices(n.w, 48, seed));
    if (c.bias) kiln::test::expect_gradient_close("b", b.data(), c.c_out, db.data(), loss, 1e-6);
  }
}

// Error bounds of the float paths against the double oracle, inputs uniform in [-1, 1]:
//   fast path (float sgemm accumulation):  |got − ref| ≤ 1e-5·max|ref| + 1e-4·|ref|
//   plain loops in float (double accumulation, one rounding): ≤ 1e-6·max|ref| + 1e-6·|ref|
TEST_CASE("conv2d float paths match the double oracle on awkward shapes", "[cpu]") {
  const std::vector<Case> cases = {
      {1, 5, 7, 1, 3, 3, 3, 1, 1, 1, 1, true},      // batch 1, 1 channel, non-square
      {2, 9, 6, 3, 5, 3, 3, 2, 2, 0, 0, false},     // 3 channels, stride 2, no padding
      {3, 11, 11, 3, 8, 5, 5, 1, 1, 2, 2, true},    // 5x5, padding 2
      {2, 8, 7, 4, 6, 1, 1, 1, 1, 0, 0, true},      // 1x1 shortcut (no im2col)
      {2, 7, 9, 2, 4, 1, 1, 2, 2, 0, 0, false},     // 1x1 with stride: im2col
      {4, 13, 10, 16, 17, 3, 3, 1, 1, 1, 1, true},  // odd channel counts
      {2, 12, 12, 5, 4, 5, 3, 2, 1, 2, 1, true},    // mixed strides and paddings
      {2, 9, 8, 12, 5, 3, 2, 1, 1, 0, 0, true},     // stride 1, C_in >= 8: backward-data as a conv
      {1, 7, 7, 8, 3, 5, 5, 1, 1, 2, 1, false},     // the same, uneven padding
      {3, 64, 64, 64, 8, 3, 3, 1, 1, 1, 1, true},   // one sample per GEMM group
  };
  uint64_t seed = 100;
  for (const Case& c : cases) {
    INFO(describe(c));
    const Conv2dShape s = shape_of(c);
    const Sizes n = sizes(s);
    // Inputs exactly representable in float, so both paths see the same numbers.
    const std::vector<double> x = cast<double>(random_vector<float>(n.x, seed++));
    const std::vector<double> w = cast<double>(random_vector<float>(n.w, seed++));
    const std::vector<double> b = cast<double>(random_vector<float>(c.c_out, seed++));
    const std::vector<double> dy = cast<double>(random_vector<float>(n.y, seed++));
    const double* bp = c.bias ? b.data() : nullptr;

    std::vector<double> y_ref(n.y), dx_ref(n.x), dw_ref(n.w, 0.0), db_ref(c.c_out, 0.0);
    kiln::cpu::conv2d_forward(y_ref.data(), x.data(), w.data(), bp, s);
    kiln::cpu::conv2d_backward_data(dx_ref.data(), dy.data(), w.data(), s);
    kiln::cpu::conv2d_backward_filter(dw_ref.data(), db_ref.data(), dy.data(), x.data(), s);

    // Fast path through the functional API (CPU f32 dispatches to kiln::cpu::fast).
    Tensor xt = Tensor::from_vector<float>({c.n, c.h, c.w, c.c_in}, cast<float>(x));
    Tensor wt = Tensor::from_vector<float>({c.c_out, c.kh, c.kw, c.c_in}, cast<float>(w));
    Tensor bt = Tensor::from_vector<float>({c.c_out}, cast<float>(b));
    Tensor dyt = Tensor::from_vector<float>({c.n, s.out_h(), s.out_w(), c.c_out}, cast<float>(dy));
    Tensor yt = Tensor::full(dyt.shape(), NAN);
    Tensor dxt = Tensor::full(xt.shape(), NAN);
    Tensor dwt = Tensor::zeros(wt.shape()), dbt = Tensor::zeros(bt.shape());
    kiln::conv2d_forward(yt, xt, wt, c.bias ? &bt : nullptr, params_of(c));
    kiln::conv2d_backward_data(dxt, dyt, wt, params_of(c));
    kiln::conv2d_backward_filter(dwt, &dbt, dyt, xt, params_of(c));
    auto bound = [](const std::vector<double>& ref) { return 1e-5 * max_abs(ref); };
    expect_close("fast y", yt.to_vector<float>(), y_ref, bound(y_ref), 1e-4);
    expect_close("fast dx", dxt.to_vector<float>(), dx_ref, bound(dx_ref), 1e-4);
    expect_close("fast dw", dwt.to_vector<float>(), dw_ref, bound(dw_ref), 1e-4);
    expect_close("fast db", dbt.to_vector<float>(), db_ref, bound(db_ref), 1e-4);

    if (c.h * c.w * c.c_in > 4096) continue;  // the plain float loops are slow on the big case
    const std::vector<float> xf = cast<float>(x), wf = cast<float>(w), bf = cast<float>(b),
                             dyf = cast<float>(dy);
    std::vector<float> yf(n.y, NAN), dxf(n.x, NAN), dwf(n.w, 0.f), dbf(c.c_out, 0.f);
    kiln::cpu::conv2d_forward(yf.data(), xf.data(), wf.data(), c.bias ? bf.data() : nullptr, s);
    kiln::cpu::conv2d_backward_data(dxf.data(), dyf.data(), wf.data(), s);
    kiln::cpu::conv2d_backward_filter(dwf.data(), dbf.data(), dyf.data(), xf.data(), s);
    auto tight = [](const std::vector<double>& ref) { return 1e-6 * max_abs(ref); };
    expect_close("plain float y", yf, y_ref, tight(y_ref), 1e-6);
    expect_close("plain float dx", dxf, dx_ref, tight(dx_ref), 1e-6);
    expect_close("plain float dw", dwf, dw_ref, tight(dw_ref), 1e-6);
    expect_close("plain float db", dbf, db_ref, tight(db_ref), 1e-6);
  }
}

TEST_CASE("conv2d gradient semantics: dx overwritten, dw and db accumulate", "[cpu]") {
  const Case c = {2, 6, 5, 3, 4, 3, 3, 2, 1, 1, 1, true};
  const Conv2dShape s = shape_of(c);
  const Sizes n = sizes(s);
  const std::vector<double> x = cast<double>(random_vector<float>(n.x, 7));
  const std::vector<double> w = cast<double>(random_vector<float>(n.w, 8));
  const std::vector<double> dy = cast<double>(random_vector<float>(n.y, 9));
  std::vector<double> dx_ref(n.x), dw_ref(n.w, 3.0), db_ref(c.c_out, 3.0);  // 3 + gradient
  kiln::cpu::conv2d_backward_data(dx_ref.data(), dy.data(), w.data(), s);
  kiln::cpu::conv2d_backward_filter(dw_ref.data(), db_ref.data(), dy.data(), x.data(), s);
  for (DType dtype : {DType::f64, DType::f32}) {
    for (double sentinel : {double(NAN), 1e30}) {
      INFO("dtype " << kiln::dtype_name(dtype) << ", dx pre-filled with " << sentinel);
      auto make = [&](kiln::Shape shape, const std::vector<double>& v) {
        return make_tensor(shape, v, dtype);
      };
      Tensor xt = make({c.n, c.h, c.w, c.c_in}, x), wt = make({c.c_out, c.kh, c.kw, c.c_in}, w);
      Tensor dyt = make({c.n, s.out_h(), s.out_w(), c.c_out}, dy);
      Tensor dxt = Tensor::full(xt.shape(), sentinel, dtype);
      Tensor dwt = Tensor::full(wt.shape(), 3.0, dtype), dbt = Tensor::full({c.c_out}, 3.0, dtype);
      kiln::conv2d_backward_data(dxt, dyt, wt, params_of(c));
      kiln::conv2d_backward_filter(dwt, &dbt, dyt, xt, params_of(c));
      expect_close("dx", values(dxt), dx_ref, 1e-5 * max_abs(dx_ref), 1e-5);
      expect_close("dw = 3 + gradient", values(dwt), dw_ref, 1e-5 * max_abs(dw_ref), 1e-5);
      expect_close("db = 3 + gradient", values(dbt), db_ref, 1e-5 * max_abs(db_ref), 1e-5);
      // A second backward-filter adds the gradient once more: 3 + 2·gradient.
      kiln::conv2d_backward_filter(dwt, &dbt, dyt, xt, params_of(c));
      std::vector<double> twice(n.w);
      for (int64_t i = 0; i < n.w; ++i) twice[i] = 2 * dw_ref[i] - 3.0;
      expect_close("dw after two calls", values(dwt), twice, 1e-5 * max_abs(twice), 1e-5);
    }
  }
}
