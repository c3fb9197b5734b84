// bench/kernels_cpu.cpp — GFLOP/s of the CPU fast path (kiln::cpu::fast::, im2col + OpenBLAS sgemm,
// OpenMP over the batch) at the flagship's layer shapes, with Google Benchmark.
//
// Batches are reduced from the GPU's 64/256 so that a run stays short on a small machine (the
// batch is in every row's name). Both the report's full width (x1) and the CPU default of
// examples/fer_cnn (x0.25, kCpuWidth in cmd_train.cpp) are measured: narrow layers have short GEMM
// dimensions and reach a lower fraction of the machine. Threads: OMP_NUM_THREADS /
// OPENBLAS_NUM_THREADS, as for training. Wall-clock time (UseRealTime): the work is multi-threaded.
//
// Layer 1's backward-data is not measured: training never computes the input image's gradient.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <random>
#include <string>
#include <vector>

#include "bench/flagship.h"
#include "kernels/conv2d.h"
#include "kernels/linear.h"

namespace {

using kiln::bench::Input;

std::vector<float> random_vector(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v) x = u(gen);
  return v;
}

std::string fmt_width(double width) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "w%g", width);
  return buf;
}

enum class Dir { fwd, bwd_data, bwd_filter };
const char* dir_name(Dir d) {
  return d == Dir::fwd ? "fwd" : d == Dir::bwd_data ? "bwd_data" : "bwd_filter";
}

void bench_conv(benchmark::State& state, kiln::Conv2dShape s, Dir dir) {
  const size_t nx = size_t(s.n) * s.h * s.w * s.c_in;
  const size_t ny = size_t(s.n) * s.out_h() * s.out_w() * s.c_out;
  const size_t nw = size_t(s.c_out) * s.kh * s.kw * s.c_in;
  std::vector<float> x = random_vector(nx, 1), w = random_vector(nw, 2),
                     b = random_vector(s.c_out, 3);
  std::vector<float> y = random_vector(ny, 4), db(s.c_out, 0.f), dw(nw, 0.f);
  for (auto _ : state) {
    switch (dir) {
      case Dir::fwd:
        kiln::cpu::fast::conv2d_forward(y.data(), x.data(), w.data(), b.data(), s);
        break;
      case Dir::bwd_data:
        kiln::cpu::fast::conv2d_backward_data(x.data(), y.data(), w.data(), s);
        break;
      case Dir::bwd_filter:
        kiln::cpu::fast::conv2d_backward_filter(dw.data(), db.data(), y.data(), x.data(), s);
        break;
    }
    benchmark::DoNotOptimize(dir == Dir::fwd        ? y.data()
                             : dir == Dir::bwd_data ? x.data()
                                                    : dw.data());
    benchmark::ClobberMemory();
  }
  state.counters["FLOP"] =
      benchmark::Counter(kiln::bench::conv_flops(s), benchmark::Counter::kIsIterationInvariantRate);
}

void bench_linear(benchmark::State& state, kiln::LinearShape s, Dir dir) {
  std::vector<float> x = random_vector(size_t(s.n) * s.in, 1),
                     w = random_vector(size_t(s.out) * s.in, 2);
  std::vector<float> b = random_vector(s.out, 3), y = random_vector(size_t(s.n) * s.out, 4);
  std::vector<float> dw(size_t(s.out) * s.in, 0.f), db(s.out, 0.f);
  for (auto _ : state) {
    switch (dir) {
      case Dir::fwd:
        kiln::cpu::fast::linear_forward(y.data(), x.data(), w.data(), b.data(), s);
        break;
      case Dir::bwd_data:
        kiln::cpu::fast::linear_backward_data(x.data(), y.data(), w.data(), s);
        break;
      case Dir::bwd_filter:
        kiln::cpu::fast::linear_backward_weight(dw.data(), db.data(), y.data(), x.data(), s);
        break;
    }
    benchmark::ClobberMemory();
  }
  state.counters["FLOP"] = benchmark::Counter(kiln::bench::linear_flops(s),
                                              benchmark::Counter::kIsIterationInvariantRate);
}

struct Case {
  Input in;
  int conv_batch;
  int linear_batch;
  double width;
};

void register_all() {
  // Full width at small batches, the CPU default width at the CPU training batch (64) or near it.
  const std::vector<Case> cases{{{1, 48, 48}, 16, 64, 1.0},
                                {{1, 48, 48}, 64, 64, 0.25},
                                {{3, 128, 128}, 2, 64, 1.0},
                                {{3, 128, 128}, 8, 64, 0.25}};
  for (const Case& c : cases) {
    for (int block = 0; block < 5; ++block) {
      const kiln::Conv2dShape s = kiln::bench::conv_shape(c.in, c.conv_batch, block, c.width);
      for (Dir d : {Dir::fwd, Dir::bwd_data, Dir::bwd_filter}) {
        if (d == Dir::bwd_data && block == 0) continue;
        const std::string name = std::string("conv_") + dir_name(d) + "/" + c.in.name() + "/b" +
                                 std::to_string(c.conv_batch) + "/" + fmt_width(c.width) + "/L" +
                                 std::to_string(block + 1) + "/" + std::to_string(s.c_in) + "->" +
                                 std::to_string(s.c_out) + "@" + std::to_string(s.h);
        benchmark::RegisterBenchmark(name.c_str(), bench_conv, s, d)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.1);
      }
    }
    for (int layer = 0; layer < 3; ++layer) {
      const kiln::LinearShape s = kiln::bench::linear_shape(c.in, c.linear_batch, layer, c.width);
      for (Dir d : {Dir::fwd, Dir::bwd_data, Dir::bwd_filter}) {
        const std::string name =
            std::string("linear_") + (d == Dir::bwd_filter ? "bwd_weight" : dir_name(d)) + "/" +
            c.in.name() + "/b" + std::to_string(c.linear_batch) + "/" + fmt_width(c.width) + "/FC" +
            std::to_string(layer + 1) + "/" + std::to_string(s.in) + "->" + std::to_string(s.out);
        benchmark::RegisterBenchmark(name.c_str(), bench_linear, s, d)
            ->UseRealTime()
            ->Unit(benchmark::kMillisecond)
            ->MinTime(0.05);
      }
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  register_all();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
