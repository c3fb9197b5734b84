// tests/parity/test_pooling_parity.cpp — kiln::cuda max pooling forward/backward against the CPU
// reference: y and the argmax bytes must equal kiln::cpu::maxpool2d_forward<double> exactly (ties
// included: inputs drawn from a few values), dx must equal the float CPU reference bit for bit (the
// gather adds in the CPU's scatter order) and the double oracle within the stated bound. Shapes:
// the flagship's 2x2/2 layers at batch 1-2, odd channel counts, odd and non-square images,
// overlapping and padded windows; every emulator thread order (or three runs on a GPU), guards.
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
#include "kernels/pooling.h"
#include "tests/support/compare.h"
#include "tests/support/parity.h"

namespace {

using kiln::Device;
using kiln::Tensor;

using namespace kiln::test;  // tests/support/parity.h

constexpr uint8_t kByteSentinel = 0xEE;

kiln::Pool2dShape shape(int n, int h, int w, int c, int kh, int kw, int sh, int sw, int ph,
                        int pw) {
  kiln::Pool2dShape s;
  s.n = n, s.h = h, s.w = w, s.c = c, s.kh = kh, s.kw = kw, s.stride_h = sh, s.stride_w = sw;
  s.pad_h = ph, s.pad_w = pw;
  return s;
}

const std::vector<kiln::Pool2dShape> kFixedShapes = {
    // The flagship at 48x48 input, 2x2 stride 2: 48->24 (C=64), 24->12, 12->6, 6->3, 3->1.
    shape(2, 48, 48, 64, 2, 2, 2, 2, 0, 0),
    shape(1, 24, 24, 128, 2, 2, 2, 2, 0, 0),
    shape(2, 12, 12, 256, 2, 2, 2, 2, 0, 0),
    shape(1, 6, 6, 512, 2, 2, 2, 2, 0, 0),
    shape(2, 3, 3, 512, 2, 2, 2, 2, 0, 0),
    // Odd channel counts (scalar path), odd and non-square images, batch 1.
    shape(1, 7, 5, 3, 2, 2, 2, 2, 0, 0),
    shape(3, 9, 11, 5, 2, 2, 2, 2, 0, 0),
    shape(1, 1, 1, 7, 1, 1, 1, 1, 0, 0),
    // Overlapping windows with padding (several outputs share an input), and anisotropic windows.
    shape(2, 9, 7, 3, 3, 3, 2, 2, 1, 1),
    shape(1, 8, 8, 8, 3, 3, 1, 1, 1, 1),
    shape(1, 6, 10, 4, 2, 3, 1, 2, 0, 1),
    shape(1, 5, 6, 1, 5, 6, 1, 1, 2, 2),
};

// The fixed shapes plus eight random ones (fixed seed) within PyTorch's rules (pad <= k/2).
std::vector<kiln::Pool2dShape> all_shapes() {
  std::vector<kiln::Pool2dShape> shapes = kFixedShapes;
  std::mt19937 gen(60);
  auto pick = [&](int lo, int hi) { return std::uniform_int_distribution<int>(lo, hi)(gen); };
  while (shapes.size() < kFixedShapes.size() + 8) {
    const int kh = pick(1, 4), kw = pick(1, 4);
    const kiln::Pool2dShape s = shape(pick(1, 3), pick(1, 13), pick(1, 13), pick(1, 9), kh, kw,
                                      pick(1, 3), pick(1, 3), pick(0, kh / 2), pick(0, kw / 2));
    if (s.h + 2 * s.pad_h >= s.kh && s.w + 2 * s.pad_w >= s.kw) shapes.push_back(s);
  }
  return shapes;
}
const std::vector<kiln::Pool2dShape> kShapes = all_shapes();

std::string describe(const kiln::Pool2dShape& s) {
  std::ostringstream os;
  os << "x [" << s.n << "," << s.h << "," << s.w << "," << s.c << "] window " << s.kh << "x" << s.kw
     << " stride " << s.stride_h << "," << s.stride_w << " pad " << s.pad_h << "," << s.pad_w;
  return os.str();
}

// Values from a small set: many exact ties, so the tie rule is exercised.
std::vector<float> tied_input(int64_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int> dist(-3, 3);
  std::vector<float> v(static_cast<size_t>(n));
  for (float& x : v) x = 0.5f * static_cast<float>(dist(gen));
  return v;
}

struct ForwardOut {
  std::vector<float> y;
  std::vector<uint8_t> argmax;
};

// Runs the forward on the device; `misalign` offsets x and y by one float and argmax by one byte.
std::vector<float> run_forward(const kiln::Pool2dShape& s, const std::vector<float>& x,
                               bool misalign, std::vector<uint8_t>* argmax_out) {
  const int64_t out = static_cast<int64_t>(s.n) * s.out_h() * s.out_w() * s.c;
  Guarded gx(x, misalign),
      gy(std::vector<float>(static_cast<size_t>(out), std::nanf("")), misalign);
  const int64_t a_off = misalign ? 1 : 0;
  Tensor a = Tensor::from_vector<uint8_t>(
      {out + a_off}, std::vector<uint8_t>(static_cast<size_t>(out + a_off), kByteSentinel),
      Device::cuda);
  kiln::cuda::maxpool2d_forward(gy.data(), a.data<uint8_t>() + a_off, gx.data(), s, nullptr);
  const std::vector<uint8_t> all = a.to_vector<uint8_t>();
  argmax_out->assign(all.begin() + a_off, all.end());
  if (a_off) CHECK(all[0] == kByteSentinel);
  return gy.payload();
}

}  // namespace

TEST_CASE("cuda::maxpool2d_forward: values and argmax equal the oracle exactly", PARITY_TAG) {
  for (const kiln::Pool2dShape& s : kShapes)
    for (bool misalign : {false, true}) {
      INFO(describe(s) << " misaligned=" << misalign);
      const int64_t in = static_cast<int64_t>(s.n) * s.h * s.w * s.c;
      const int64_t out = static_cast<int64_t>(s.n) * s.out_h() * s.out_w() * s.c;
      const std::vector<float> x = tied_input(in, 61);
      auto runs = run_in_every_order([&] {
        std::vector<uint8_t> a;
        std::vector<float> y = run_forward(s, x, misalign, &a);
        for (uint8_t b : a) y.push_back(static_cast<float>(b));  // one vector for the comparison
        return y;
      });
      REQUIRE(first_difference(runs) == "");
      const std::vector<double> xd = to_double(x);
      std::vector<double> ref(static_cast<size_t>(out), std::nan(""));
      std::vector<uint8_t> ref_a(static_cast<size_t>(out), 0);
      kiln::cpu::maxpool2d_forward<double>(ref.data(), ref_a.data(), xd.data(), s);
      for (uint8_t b : ref_a) ref.push_back(static_cast<double>(b));
      kiln::test::expect_close("y and argmax", runs.results[0].data(), ref.data(), 2 * out, 0, 0);
    }
}

TEST_CASE("cuda::maxpool2d_forward with distinct random values", PARITY_TAG) {
  const kiln::Pool2dShape s = shape(2, 9, 7, 6, 3, 3, 2, 2, 1, 1);
  const int64_t in = static_cast<int64_t>(s.n) * s.h * s.w * s.c;
  const int64_t out = static_cast<int64_t>(s.n) * s.out_h() * s.out_w() * s.c;
  const std::vector<float> x = uniform_floats(in, 62);
  std::vector<uint8_t> a;
  const std::vector<float> y = run_forward(s, x, false, &a);
  const std::vector<double> xd = to_double(x);
  std::vector<double> ref(static_cast<size_t>(out));
  std::vector<uint8_t> ref_a(static_cast<size_t>(out));
  kiln::cpu::maxpool2d_forward<double>(ref.data(), ref_a.data(), xd.data(), s);
  kiln::test::expect_close("y", y.data(), ref.data(), out, 0, 0);
  CHECK(a == ref_a);
}

// Error bound: non-overlapping windows route each dy unchanged (exact); overlapping windows add at
// most terms = ceil(KH/SH)·ceil(KW/SW) values in float: |err| <= (terms − 1)·u·terms·max|dy|.
TEST_CASE("cuda::maxpool2d_backward: dx equals the CPU bit for bit and the oracle", PARITY_TAG) {
  for (const kiln::Pool2dShape& s : kShapes)
    for (bool misalign : {false, true}) {
      INFO(describe(s) << " misaligned=" << misalign);
      const int64_t in = static_cast<int64_t>(s.n) * s.h * s.w * s.c;
      const int64_t out = static_cast<int64_t>(s.n) * s.out_h() * s.out_w() * s.c;
      const std::vector<float> x = tied_input(in, 63);
      std::vector<float> ref_y(static_cast<size_t>(out));
      std::vector<uint8_t> argmax(static_cast<size_t>(out));
      kiln::cpu::maxpool2d_forward<float>(ref_y.data(), argmax.data(), x.data(), s);
      const std::vector<float> dy = uniform_floats(out, 64);
      auto runs = run_in_every_order([&] {
        Guarded gdy(dy, misalign),
            gdx(std::vector<float>(static_cast<size_t>(in), std::nanf("")), misalign);
        const int64_t a_off = misalign ? 1 : 0;
        std::vector<uint8_t> padded(static_cast<size_t>(out + a_off), kByteSentinel);
        for (int64_t i = 0; i < out; ++i)
          padded[static_cast<size_t>(a_off + i)] = argmax[static_cast<size_t>(i)];
        Tensor a = Tensor::from_vector<uint8_t>({out + a_off}, padded, Device::cuda);
        kiln::cuda::maxpool2d_backward(gdx.data(), gdy.data(), a.data<uint8_t>() + a_off, s,
                                       nullptr);
        return gdx.payload();
      });
      REQUIRE(first_difference(runs) == "");
      std::vector<float> cpu_f(static_cast<size_t>(in), std::nanf(""));
      kiln::cpu::maxpool2d_backward<float>(cpu_f.data(), dy.data(), argmax.data(), s);
      CHECK(std::memcmp(cpu_f.data(), runs.results[0].data(), cpu_f.size() * sizeof(float)) == 0);
      const std::vector<double> dyd = to_double(dy);
      std::vector<double> ref(static_cast<size_t>(in), std::nan(""));
      kiln::cpu::maxpool2d_backward<double>(ref.data(), dyd.data(), argmax.data(), s);
      const int terms =
          ((s.kh + s.stride_h - 1) / s.stride_h) * ((s.kw + s.stride_w - 1) / s.stride_w);
      double max_dy = 0;
      for (float v : dy) max_dy = std::fmax(max_dy, std::fabs(static_cast<double>(v)));
      kiln::test::expect_close("dx", runs.results[0].data(), ref.data(), in,
                               (terms - 1) * kU * terms * max_dy, 0);
    }
}
