// tests/cpu/test_determinism.cpp — the CPU fast path gives the same bits for any number of OpenMP
// threads (docs/perf.md, "Determinism"): conv (forward, backward-data, backward-filter; batch 1 and
// batch > 1, every code path: im2col, 1×1 direct, stride-1 flipped backward-data, col2im) and
// linear (all three passes) for 1, 2, 3 and 16 threads; and, structurally, the list of BLAS-level
// calls sgemm makes is the same for every thread count — which holds on any CPU, whether or not its
// BLAS happens to round differently for a different M.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <mutex>
#include <tuple>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/conv2d.h"
#include "kernels/cpu/fast/gemm.h"
#include "kernels/linear.h"
#include "tests/support/random.h"

using kiln::Conv2dShape;
using kiln::LinearShape;
using kiln::cpu::fast::GemmCall;
using kiln::test::random_vector;

namespace {

constexpr int kThreadCounts[] = {1, 2, 3, 16};

Conv2dShape conv(int n, int h, int w, int c_in, int c_out, int k, int stride, int pad) {
  Conv2dShape s;
  s.n = n, s.h = h, s.w = w, s.c_in = c_in, s.c_out = c_out, s.kh = k, s.kw = k;
  s.stride_h = s.stride_w = stride, s.pad_h = s.pad_w = pad;
  return s;
}

// Batch 1 large enough that sgemm cuts its GEMMs into several blocks; batches > 1 with several
// groups; each backward-data path (flipped forward, col2im, direct).
const Conv2dShape kConvs[] = {
    conv(1, 48, 48, 16, 32, 3, 1, 1),   // batch 1: sgemm blocks; flipped backward-data
    conv(1, 33, 33, 16, 32, 3, 2, 1),   // batch 1, stride 2: col2im
    conv(13, 12, 10, 8, 16, 3, 1, 1),   // batch 13: several groups and filter slots
    conv(6, 16, 16, 32, 24, 1, 1, 0),   // 1×1 direct
    conv(7, 19, 17, 3, 8, 5, 2, 2),     // small C_in, stride 2
    conv(64, 12, 12, 32, 64, 3, 1, 1),  // a training batch
};

const LinearShape kLinears[] = {{64, 1152, 256}, {1, 4096, 512}, {3, 7, 5}};

// Every output of every conv and linear case, one after another.
std::vector<float> run_all() {
  std::vector<float> all;
  auto append = [&](const std::vector<float>& v) { all.insert(all.end(), v.begin(), v.end()); };
  uint64_t seed = 700;
  for (const Conv2dShape& s : kConvs) {
    const int64_t nx = int64_t(s.n) * s.h * s.w * s.c_in,
                  nw = int64_t(s.c_out) * s.kh * s.kw * s.c_in;
    const int64_t ny = int64_t(s.n) * s.out_h() * s.out_w() * s.c_out;
    const auto x = random_vector<float>(nx, ++seed), w = random_vector<float>(nw, ++seed);
    const auto b = random_vector<float>(s.c_out, ++seed), dy = random_vector<float>(ny, ++seed);
    std::vector<float> y(ny), dx(nx), dw(nw, 0.5f), db(s.c_out, 0.5f);
    kiln::cpu::fast::conv2d_forward(y.data(), x.data(), w.data(), b.data(), s);
    kiln::cpu::fast::conv2d_backward_data(dx.data(), dy.data(), w.data(), s);
    kiln::cpu::fast::conv2d_backward_filter(dw.data(), db.data(), dy.data(), x.data(), s);
    for (const auto* v : {&y, &dx, &dw, &db}) append(*v);
  }
  for (const LinearShape& s : kLinears) {
    const auto x = random_vector<float>(int64_t(s.n) * s.in, ++seed);
    const auto w = random_vector<float>(int64_t(s.out) * s.in, ++seed);
    const auto b = random_vector<float>(s.out, ++seed);
    const auto dy = random_vector<float>(int64_t(s.n) * s.out, ++seed);
    std::vector<float> y(int64_t(s.n) * s.out), dx(int64_t(s.n) * s.in);
    std::vector<float> dw(int64_t(s.out) * s.in, 0.5f), db(s.out, 0.5f);
    kiln::cpu::fast::linear_forward(y.data(), x.data(), w.data(), b.data(), s);
    kiln::cpu::fast::linear_backward_data(dx.data(), dy.data(), w.data(), s);
    kiln::cpu::fast::linear_backward_weight(dw.data(), db.data(), dy.data(), x.data(), s);
    for (const auto* v : {&y, &dx, &dw, &db}) append(*v);
  }
  return all;
}

// The number of elements whose bits differ, and the first of them.
std::pair<int64_t, int64_t> bit_differences(const std::vector<float>& a,
                                            const std::vector<float>& b) {
  int64_t count = 0, first = -1;
  for (size_t i = 0; i < a.size(); ++i)
    if (std::memcmp(&a[i], &b[i], sizeof(float)) != 0) {
      if (first < 0) first = int64_t(i);
      ++count;
    }
  return {count, first};
}

std::mutex calls_mutex;
std::vector<GemmCall> calls;

void record(const GemmCall& call) {
  std::lock_guard<std::mutex> lock(calls_mutex);
  calls.push_back(call);
}

auto key(const GemmCall& c) {
  return std::make_tuple(c.row0, c.col0, c.m, c.n, c.k, c.trans_a, c.trans_b, c.lda, c.ldb, c.ldc,
                         c.alpha, c.beta);
}

// The calls sgemm made while `work` ran, as a sorted multiset (threads finish blocks in any order).
template <typename F>
std::vector<GemmCall> recorded_calls(F work) {
  calls.clear();
  kiln::cpu::fast::set_gemm_recorder(record);
  work();
  kiln::cpu::fast::set_gemm_recorder(nullptr);
  std::vector<GemmCall> sorted = calls;
  std::sort(sorted.begin(), sorted.end(),
            [](const GemmCall& a, const GemmCall& b) { return key(a) < key(b); });
  return sorted;
}

}  // namespace

TEST_CASE("CPU fast path: conv and linear repeat bit for bit, for 1, 2, 3 and 16 threads",
          "[cpu][determinism]") {
  const std::vector<float> first = run_all();
  REQUIRE(bit_differences(run_all(), first).first == 0);  // run to run
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  for (int t : kThreadCounts) {
    omp_set_num_threads(t);
    const auto [count, index] = bit_differences(run_all(), first);
    INFO(t << " threads: " << count << " of " << first.size() << " values differ, first at "
           << index);
    CHECK(count == 0);
  }
  omp_set_num_threads(threads);
#endif
}

// Structural: the BLAS calls (shape, transposes, leading dimensions, alpha/beta, place in C) are a
// function of the problem alone. Fails on any CPU if the partition follows the thread count.
TEST_CASE("CPU fast path: sgemm makes the same BLAS calls for any number of threads",
          "[cpu][determinism]") {
  const std::vector<GemmCall> first = recorded_calls(run_all);
  REQUIRE(!first.empty());
  // The cases do exercise the cutting of one GEMM into blocks (else this test would prove little).
  CHECK(std::any_of(first.begin(), first.end(),
                    [](const GemmCall& c) { return c.row0 > 0 || c.col0 > 0; }));
#ifdef _OPENMP
  const int threads = omp_get_max_threads();
  for (int t : kThreadCounts) {
    omp_set_num_threads(t);
    const std::vector<GemmCall> now = recorded_calls(run_all);
    INFO(t << " threads: " << now.size() << " calls, " << first.size() << " at the start");
    REQUIRE(now.size() == first.size());
    for (size_t i = 0; i < now.size(); ++i) {
      INFO("call " << i << ": m " << now[i].m << " n " << now[i].n << " k " << now[i].k << " at ("
                   << now[i].row0 << ", " << now[i].col0 << ") against m " << first[i].m << " n "
                   << first[i].n << " k " << first[i].k << " at (" << first[i].row0 << ", "
                   << first[i].col0 << ")");
      REQUIRE(key(now[i]) == key(first[i]));
    }
  }
  omp_set_num_threads(threads);
#endif
}
