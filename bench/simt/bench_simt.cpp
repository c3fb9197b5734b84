// bench/simt/bench_simt.cpp — how fast the SIMT emulator runs CUDA threads (docs/simt.md).
//   thread_launches: threads started and finished per second (an almost empty kernel);
//   thread_barriers: threads passing a __syncthreads per second;
//   lane_shuffles:   lanes completing a __shfl_xor_sync per second;
//   launch_overhead: launches per second of a 1-thread kernel, each awaited by
//                    cudaDeviceSynchronize in the default (async) stream mode: queueing, the
//                    device thread's wake-up and the wait included;
//   launch_overhead_sync_mode: the same in the synchronous stream mode (no device thread);
//   reduce_1M:       a 1M-float block reduction (256 threads x 64 blocks).
// All but launch_overhead run in the synchronous stream mode, so the kernels run on the benchmark's
// thread and its CPU time is the emulator's own cost. KILN_SIMT_WORKERS sets the number of OS
// threads (default: hardware threads).
#include <benchmark/benchmark.h>
#include <cuda_runtime.h>

#include <vector>

#include "core/simt/schedule.h"

namespace kiln::simt_bench {
void touch(float* out, int blocks, int threads);
void barriers(float* out, int blocks, int threads, int rounds);
void shuffles(float* out, int blocks, int threads, int rounds);
void reduce(float* out, const float* x, int n, int blocks);
}  // namespace kiln::simt_bench

namespace {

float* device_floats(std::size_t n) {
  void* p = nullptr;
  cudaMalloc(&p, n * sizeof(float));
  return static_cast<float*>(p);
}

void thread_launches(benchmark::State& state) {
  kiln::simt::ScopedStreamMode sync(kiln::simt::StreamMode::kSync);
  const int blocks = 64, threads = static_cast<int>(state.range(0));
  float* out = device_floats(blocks);
  for (auto _ : state) kiln::simt_bench::touch(out, blocks, threads);
  state.counters["threads/s"] = benchmark::Counter(
      static_cast<double>(state.iterations()) * blocks * threads, benchmark::Counter::kIsRate);
  cudaFree(out);
}
BENCHMARK(thread_launches)->Arg(32)->Arg(256)->Arg(1024)->UseRealTime();

void thread_barriers(benchmark::State& state) {
  kiln::simt::ScopedStreamMode sync(kiln::simt::StreamMode::kSync);
  const int blocks = 16, threads = static_cast<int>(state.range(0)), rounds = 64;
  float* out = device_floats(blocks);
  for (auto _ : state) kiln::simt_bench::barriers(out, blocks, threads, rounds);
  state.counters["barriers/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * blocks * threads * rounds,
                         benchmark::Counter::kIsRate);
  cudaFree(out);
}
BENCHMARK(thread_barriers)->Arg(32)->Arg(256)->Arg(1024)->UseRealTime();

void lane_shuffles(benchmark::State& state) {
  kiln::simt::ScopedStreamMode sync(kiln::simt::StreamMode::kSync);
  const int blocks = 16, threads = 256, rounds = 64;
  float* out = device_floats(blocks);
  for (auto _ : state) kiln::simt_bench::shuffles(out, blocks, threads, rounds);
  state.counters["shuffles/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * blocks * threads * rounds,
                         benchmark::Counter::kIsRate);
  cudaFree(out);
}
BENCHMARK(lane_shuffles)->UseRealTime();

void launch_overhead(benchmark::State& state) {
  float* out = device_floats(1);
  for (auto _ : state) {
    kiln::simt_bench::touch(out, 1, 1);
    cudaDeviceSynchronize();
  }
  state.counters["launches/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
  cudaFree(out);
}
BENCHMARK(launch_overhead)->UseRealTime();

void launch_overhead_sync_mode(benchmark::State& state) {
  kiln::simt::ScopedStreamMode sync(kiln::simt::StreamMode::kSync);
  launch_overhead(state);
}
BENCHMARK(launch_overhead_sync_mode)->UseRealTime();

void reduce_1M(benchmark::State& state) {
  kiln::simt::ScopedStreamMode sync(kiln::simt::StreamMode::kSync);
  const int n = 1 << 20, blocks = 64;
  float* x = device_floats(n);
  float* out = device_floats(blocks);
  cudaMemset(x, 0, n * sizeof(float));
  for (auto _ : state) kiln::simt_bench::reduce(out, x, n, blocks);
  state.counters["elements/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()) * n, benchmark::Counter::kIsRate);
  cudaFree(x);
  cudaFree(out);
}
BENCHMARK(reduce_1M)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
