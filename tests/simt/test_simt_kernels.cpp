// tests/simt/test_simt_kernels.cpp — the emulator runs correct CUDA kernels right: in every order,
// bitwise identical across orders, and in agreement with plain C++ loops (and CUDA's documented
// rules for shuffles and votes).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <numeric>
#include <random>
#include <vector>

#include "tests/simt/simt_test_kernels.h"
#include "tests/support/device_buffer.h"
#include "tests/support/every_order.h"

namespace kt = kiln::simt_test;
using kiln::test::DeviceBuffer;

namespace {

std::vector<float> random_floats(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (auto& x : v) x = dist(rng);
  return v;
}

}  // namespace

TEST_CASE("block sum with a shuffle tail agrees in every order and with a loop", "[simt]") {
  const int n = 10007, blocks = 7;
  const auto x = random_floats(n, 1);
  DeviceBuffer<float> dx(x), dout(blocks);
  auto runs = kiln::test::run_in_every_order([&] {
    dout.fill_bytes(0x00);
    kt::block_sum(dout.get(), dx.get(), n, blocks);
    return dout.download();
  });
  REQUIRE(kiln::test::first_difference(runs) == "");
  for (int b = 0; b < blocks; ++b) {
    double ref = 0.0;
    for (int i = b * 256; i < n; i += blocks * 256)
      for (int j = i; j < std::min(i + 256, n); ++j) ref += x[j];
    INFO("block " << b);
    CHECK(std::abs(runs.results[0][b] - ref) <= 1e-4 + 1e-5 * std::abs(ref));
  }
}

TEST_CASE("padded tiled transpose equals the loop", "[simt]") {
  for (auto [rows, cols] : {std::pair{37, 70}, std::pair{64, 32}, std::pair{1, 5}}) {
    const auto in = random_floats(static_cast<std::size_t>(rows) * cols, 2);
    DeviceBuffer<float> din(in), dout(in.size());
    auto runs = kiln::test::run_in_every_order([&] {
      dout.fill_bytes(0x7f);
      kt::transpose(dout.get(), din.get(), rows, cols);
      return dout.download();
    });
    REQUIRE(kiln::test::first_difference(runs) == "");
    for (int r = 0; r < rows; ++r)
      for (int c = 0; c < cols; ++c) {
        INFO("rows " << rows << " cols " << cols << " at (" << r << "," << c << ")");
        REQUIRE(runs.results[0][c * rows + r] == in[r * cols + c]);
      }
  }
}

TEST_CASE("dynamic shared memory reverses each chunk", "[simt]") {
  const int n = 1000, block = 96;
  const auto x = random_floats(n, 3);
  DeviceBuffer<float> dx(x), dout(n);
  auto runs = kiln::test::run_in_every_order([&] {
    dout.fill_bytes(0x00);
    kt::reverse_chunks(dout.get(), dx.get(), n, block);
    return dout.download();
  });
  REQUIRE(kiln::test::first_difference(runs) == "");
  for (int base = 0; base < n; base += block) {
    const int len = std::min(block, n - base);
    for (int t = 0; t < len; ++t) REQUIRE(runs.results[0][base + t] == x[base + len - 1 - t]);
  }
}

TEST_CASE("atomics give CUDA's results", "[simt]") {
  const int n = 1000;
  std::vector<int> values(n);
  for (int i = 0; i < n; ++i) values[i] = (i * 37 + 11) % 1000;
  DeviceBuffer<int> dvalues(values), counters(16), hist(8);
  DeviceBuffer<unsigned> ucounters(4);
  DeviceBuffer<unsigned long long> ull(2);
  DeviceBuffer<float> fsum(1);
  std::vector<int> c0(16, 0);
  c0[2] = -1;
  c0[3] = 1 << 30;
  c0[4] = 0xffff;
  counters.upload(c0);
  hist.fill_bytes(0);
  ucounters.fill_bytes(0);
  ull.fill_bytes(0);
  fsum.fill_bytes(0);
  kt::atomics(counters.get(), ucounters.get(), ull.get(), fsum.get(), hist.get(), dvalues.get(), n);
  const auto c = counters.download();
  const auto u = ucounters.download();
  const auto l = ull.download();
  long long sum = 0;
  int mx = -1, mn = 1 << 30, x = 0, orv = 0, andv = 0xffff;
  std::vector<int> h(8, 0);
  for (int v : values) {
    sum += v;
    mx = std::max(mx, v);
    mn = std::min(mn, v);
    x ^= v;
    orv |= 1 << (v & 15);
    andv &= ~(1 << (v & 15));
    ++h[v & 7];
  }
  CHECK(c[0] == sum);
  CHECK(c[1] == -sum);
  CHECK(c[2] == mx);
  CHECK(c[3] == mn);
  CHECK(c[4] == andv);
  CHECK(c[5] == orv);
  CHECK(c[6] == x);
  CHECK(c[7] >= 1);
  CHECK(c[8] == 1);
  CHECK(c[9] == 7);
  CHECK(hist.download() == h);
  CHECK(u[0] == static_cast<unsigned>(n));
  CHECK(u[1] == static_cast<unsigned>(n % 10));  // atomicInc wraps after 9
  // atomicDec from 0 with limit 4: 0 -> 4 -> 3 -> 2 -> 1 -> 0 -> 4 ...; period 5.
  CHECK(u[2] == static_cast<unsigned>((5 - n % 5) % 5));
  CHECK(u[3] == static_cast<unsigned>(mx));
  CHECK(l[0] == static_cast<unsigned long long>(sum));
  CHECK(l[1] == static_cast<unsigned long long>(mx) << 40);
  CHECK(fsum.download()[0] == 0.5f * n);
}

namespace {

// CUDA Programming Guide, "Warp Shuffle Functions", written independently of the emulator (which
// follows the PTX ISA's formulation).
int doc_shfl(int lane, int src_lane, int width) {
  return lane / width * width + ((src_lane % width) + width) % width;
}
int doc_up(int lane, int delta, int width) {
  return lane % width >= delta ? lane - delta : lane;
}
int doc_down(int lane, int delta, int width) {
  return lane % width + delta < width ? lane + delta : lane;
}
int doc_xor(int lane, int mask, int width) {
  const int src = lane ^ mask;
  return src >= (lane / width + 1) * width ? lane : src;  // later groups: own value
}

}  // namespace

TEST_CASE("every shuffle variant follows CUDA's rules for every width", "[simt]") {
  std::vector<int> args(32);
  for (int l = 0; l < 32; ++l) args[l] = (l * 7 + 3) % 45 - 5;  // includes negative and >= 32
  const int widths[6] = {32, 16, 8, 4, 2, 1};
  for (auto [delta, xor_mask] :
       {std::pair{1, 1}, std::pair{3, 5}, std::pair{17, 16}, std::pair{0, 31}, std::pair{8, 12}}) {
    DeviceBuffer<int> dargs(args), out(4 * 6 * 32);
    auto runs = kiln::test::run_in_every_order([&] {
      out.fill_bytes(0);
      kt::shuffles(out.get(), dargs.get(), delta, xor_mask);
      return out.download();
    });
    REQUIRE(kiln::test::first_difference(runs) == "");
    const auto& r = runs.results[0];
    for (int w = 0; w < 6; ++w) {
      const int width = widths[w];
      for (int lane = 0; lane < 32; ++lane) {
        INFO("width " << width << " lane " << lane << " delta " << delta << " xor " << xor_mask
                      << " srcLane " << args[lane]);
        CHECK(r[(0 * 6 + w) * 32 + lane] == 100 + doc_shfl(lane, args[lane], width));
        CHECK(r[(1 * 6 + w) * 32 + lane] == 100 + doc_up(lane, delta, width));
        CHECK(r[(2 * 6 + w) * 32 + lane] == 100 + doc_down(lane, delta, width));
        CHECK(r[(3 * 6 + w) * 32 + lane] == 100 + doc_xor(lane, xor_mask, width));
      }
    }
  }
}

TEST_CASE("shuffles move 64-bit values whole", "[simt]") {
  DeviceBuffer<double> out(32);
  kt::shuffle_double(out.get());
  const auto r = out.download();
  for (int l = 0; l < 32; ++l) CHECK(r[l] == 0.5 + (31 - l));
}

TEST_CASE("ballot/any/all and __syncthreads_count/_and/_or", "[simt]") {
  for (auto [threads, k, threshold] :
       {std::tuple{100, 3, 37}, std::tuple{64, 1, 64}, std::tuple{32, 40, 0}}) {
    const int nwarps = (threads + 31) / 32;
    DeviceBuffer<unsigned> out(nwarps * 8 + 3);
    out.fill_bytes(0);
    kt::votes(out.get(), threads, k, threshold);
    const auto r = out.download();
    for (int w = 0; w < nwarps; ++w) {
      const int lanes = std::min(32, threads - w * 32);
      unsigned ballot = 0;
      for (int l = 0; l < lanes; ++l)
        if (l % k == 0) ballot |= 1u << l;
      const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
      INFO("threads " << threads << " warp " << w);
      CHECK(r[w * 8 + 0] == ballot);
      CHECK(r[w * 8 + 1] == (ballot != 0 ? 1u : 0u));
      CHECK(r[w * 8 + 2] == (ballot == mask ? 1u : 0u));
    }
    const unsigned count = static_cast<unsigned>(std::min(threads, threshold));
    CHECK(r[nwarps * 8 + 0] == count);
    CHECK((r[nwarps * 8 + 1] != 0) == (count == static_cast<unsigned>(threads)));
    CHECK((r[nwarps * 8 + 2] != 0) == (count > 0));
  }
}

TEST_CASE("__reduce_*_sync", "[simt]") {
  std::vector<int> v(32);
  for (int l = 0; l < 32; ++l) v[l] = (l * 13) % 29 - 9;
  DeviceBuffer<int> dv(v), out(32 * 4);
  kt::warp_reduce_intrinsics(out.get(), dv.get());
  const auto r = out.download();
  const int add = std::accumulate(v.begin(), v.end(), 0);
  int x = 0;
  for (int e : v) x ^= e;
  for (int l = 0; l < 32; ++l) {
    CHECK(r[l * 4 + 0] == add);
    CHECK(r[l * 4 + 1] == *std::min_element(v.begin(), v.end()));
    CHECK(r[l * 4 + 2] == *std::max_element(v.begin(), v.end()));
    CHECK(r[l * 4 + 3] == x);
  }
}

TEST_CASE("threadIdx/blockIdx/blockDim/gridDim in 3-D", "[simt]") {
  const unsigned gx = 3, gy = 2, gz = 2, bx = 5, by = 3, bz = 2;
  DeviceBuffer<std::uint32_t> out(gx * gy * gz * bx * by * bz);
  out.fill_bytes(0xff);
  kt::indexing(out.get(), gx, gy, gz, bx, by, bz);
  const auto r = out.download();
  std::size_t i = 0;
  for (unsigned z = 0; z < gz; ++z)
    for (unsigned y = 0; y < gy; ++y)
      for (unsigned x = 0; x < gx; ++x)
        for (unsigned tz = 0; tz < bz; ++tz)
          for (unsigned ty = 0; ty < by; ++ty)
            for (unsigned tx = 0; tx < bx; ++tx, ++i)
              REQUIRE(r[i] == ((x << 24) | (y << 20) | (z << 16) | (tx << 8) | (ty << 4) | tz));
}

TEST_CASE("a 1024-thread block through many barriers", "[simt]") {
  const int rounds = 20;
  DeviceBuffer<float> out(1024);
  auto runs = kiln::test::run_in_every_order([&] {
    out.fill_bytes(0);
    kt::barrier_rounds(out.get(), rounds);
    return out.download();
  });
  REQUIRE(kiln::test::first_difference(runs) == "");
  for (int t = 0; t < 1024; ++t) {
    // Round r reads the value that started at position t + (r + 1) * (r + 2) / 2.
    double ref = 0;
    for (int r = 0; r < rounds; ++r) ref += (t + (r + 1) * (r + 2) / 2) % 1024;
    REQUIRE(runs.results[0][t] == static_cast<float>(ref));
  }
}

TEST_CASE("CUB block reduce, block scan and warp reduce (shims)", "[simt]") {
  const int blocks = 3;
  const auto x = random_floats(blocks * 256, 4);
  DeviceBuffer<float> dx(x), sum(blocks), incl(x.size()), excl(x.size()), warp(blocks * 8);
  auto runs = kiln::test::run_in_every_order([&] {
    for (auto* b : {&sum, &incl, &excl, &warp}) b->fill_bytes(0);
    kt::cub_block_ops(sum.get(), incl.get(), excl.get(), warp.get(), dx.get(), blocks);
    std::vector<float> all;
    for (auto* b : {&sum, &incl, &excl, &warp}) {
      const auto h = b->download();
      all.insert(all.end(), h.begin(), h.end());
    }
    return all;
  });
  REQUIRE(kiln::test::first_difference(runs) == "");
  const auto s = sum.download(), in = incl.download(), ex = excl.download(), w = warp.download();
  for (int b = 0; b < blocks; ++b) {
    double total = 0;
    for (int t = 0; t < 256; ++t) {
      const double v = x[b * 256 + t];
      CHECK(std::abs(ex[b * 256 + t] - total) <= 1e-4);
      total += v;
      CHECK(std::abs(in[b * 256 + t] - total) <= 1e-4);
    }
    CHECK(std::abs(s[b] - total) <= 1e-4);
    for (int wi = 0; wi < 8; ++wi) {
      double ws = 0;
      for (int l = 0; l < 32; ++l) ws += x[b * 256 + wi * 32 + l];
      CHECK(std::abs(w[b * 8 + wi] - ws) <= 1e-5);
    }
  }
}

TEST_CASE("cp.async: double-buffered tiles and 4-byte copies", "[simt]") {
  const int tiles = 5;
  const auto x = random_floats(tiles * 256, 5);
  DeviceBuffer<float> dx(x), out(x.size());
  auto runs = kiln::test::run_in_every_order([&] {
    out.fill_bytes(0);
    kt::async_copy_tiles(out.get(), dx.get(), tiles, false);
    return out.download();
  });
  REQUIRE(kiln::test::first_difference(runs) == "");
  CHECK(runs.results[0] == x);

  const int n = 300;
  DeviceBuffer<float> out4(n);
  kt::async_copy4(out4.get(), dx.get(), n);
  const auto r = out4.download();
  for (int i = 0; i < n; ++i) REQUIRE(r[i] == x[n - 1 - i]);
}
