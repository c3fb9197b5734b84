// tests/simt/simt_race_kernels.cu — planted data races for the race-detector build (KILN_TSAN),
// each next to its correct twin. simt_race_main.cpp runs one of them; the CTest tests
// simt_race_* (tests/simt/CMakeLists.txt) pass when ThreadSanitizer reports the planted race at
// the line marked `RACE(<case>)` and the twin runs clean. Every racy variant still computes the
// right answer in the emulator (forward order), which is the point: only the detector sees them.
#include "core/device_code.h"
#include "core/launch.h"
#include "core/tensor_core.h"
#include "tests/simt/simt_race_kernels.h"
#include "tests/support/device_buffer.h"

namespace kiln::simt_test::race {

namespace {

using kiln::test::DeviceBuffer;

constexpr int kThreads = 64;

// A shared-memory tree reduction, mirrored so that the sum ends in the last slot: at each level the
// upper `stride` threads add the slot `stride` below them. Without the barriers between levels the
// forward thread order still gives the right sum (every lower thread finishes all its levels
// before a higher one reads its slot), but the levels race.
template <bool kSync>
__global__ void tree_sum_kernel(float* __restrict__ out, const float* __restrict__ x) {
  KILN_SHARED(float, partial, [kThreads]);
  const int t = static_cast<int>(threadIdx.x);
  partial[t] = x[blockIdx.x * kThreads + t];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t >= kThreads - stride) partial[t] += partial[t - stride];  // RACE(missing_sync)
    if (kSync) __syncthreads();
  }
  // Both variants end with a barrier before thread 0 reads the sum: the race detector must not
  // let the threads that reached it first order the levels before it for the others.
  __syncthreads();
  if (t == 0) out[blockIdx.x] = partial[kThreads - 1];
}

// y = 2x, but the planted variants step blocks by blockDim.x - 1 (kOverlap 1: the last element of
// each block is also the first of the next) or by 0 (kOverlap 2: every block writes the same
// elements, thread t of each block element t). The blocks write equal values: the result is right.
template <int kOverlap>
__global__ void scale_kernel(float* __restrict__ y, const float* __restrict__ x, int n) {
  const int step = kOverlap == 2 ? 0 : static_cast<int>(blockDim.x) - kOverlap;
  const int i = static_cast<int>(blockIdx.x) * step + static_cast<int>(threadIdx.x);
  if (i < n) y[i] = 2.0f * x[i];  // RACE(two_blocks) RACE(same_elements)
}

// The last-block-done sum (CUDA programming guide, "memory fence functions"): each block writes
// its partial sum, fences, and counts itself done with an atomic; the block that counts last adds
// the partials. Without the fence the partials are not ordered before the count.
template <bool kFence>
__global__ void last_block_sum_kernel(float* __restrict__ partial, unsigned* count,
                                      float* __restrict__ out, const float* __restrict__ x) {
  KILN_SHARED(float, s, [kThreads]);
  KILN_SHARED(int, is_last, );
  const int t = static_cast<int>(threadIdx.x);
  s[t] = x[blockIdx.x * kThreads + t];
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) s[t] += s[t + stride];
    __syncthreads();
  }
  if (t == 0) {
    partial[blockIdx.x] = s[0];
    if (kFence) __threadfence();
    const unsigned done = atomicAdd(count, 1u);
    is_last = done == gridDim.x - 1 ? 1 : 0;
  }
  __syncthreads();
  if (is_last != 0 && t == 0) {
    float total = 0.0f;
    for (unsigned b = 0; b < gridDim.x; ++b) total += partial[b];  // RACE(no_fence)
    out[0] = total;
    atomicExch(count, 0u);  // ready for the next launch
  }
}

// Lanes pass values through shared memory to their lower neighbour within groups of `kGroup`
// lanes (32: the whole warp, synchronised with a full-mask __syncwarp; 16: each half warp with
// its own mask). Without the __syncwarp the forward order still reads values already written.
template <bool kSync, int kGroup>
__global__ void neighbour_kernel(float* __restrict__ out, const float* __restrict__ x) {
  KILN_SHARED(float, buf, [32]);
  const int lane = static_cast<int>(threadIdx.x);
  const int first = lane / kGroup * kGroup;
  buf[lane] = x[lane];
  if (kSync) __syncwarp(kGroup == 32 ? 0xffffffffu : 0xffffu << first);
  out[lane] = lane > first ? buf[lane - 1] : buf[lane];  // RACE(missing_syncwarp)
}

// A warp stores an 8×8 matrix of 16-bit elements into shared memory and loads it with
// ldmatrix_trans, so that each lane receives elements other lanes stored. ldmatrix, like mma,
// orders no memory (unlike __syncwarp): without a __syncwarp between the stores and the load, the
// load's reads race with the other lanes' stores — reported inside the emulated ldmatrix
// (core/tensor_core.h), called from the marked line. The forward order still reads what was stored.
struct alignas(16) Rows8 {
  std::uint16_t e[64];  // (8 rows, 8 columns)
};
template <bool kSync>
__global__ void ldmatrix_unsynced_kernel(std::uint32_t* __restrict__ out,
                                         const std::uint16_t* __restrict__ x) {
  KILN_SHARED(Rows8, rows, );
  const int lane = static_cast<int>(threadIdx.x);
  rows.e[2 * lane] = x[2 * lane];
  rows.e[2 * lane + 1] = x[2 * lane + 1];
  if (kSync) __syncwarp();
  const std::uint16_t* row = lane < 8 ? &rows.e[8 * lane] : nullptr;
  std::uint32_t v[1];
  kiln::tc::ldmatrix_trans<1>(v, row);  // RACE(ldmatrix_unsynced)
  out[lane] = v[0];
}

std::vector<float> inputs(int n) {
  std::vector<float> x(static_cast<std::size_t>(n));
  for (int i = 0; i < n; ++i) x[static_cast<std::size_t>(i)] = static_cast<float>(i % 7);
  return x;
}

}  // namespace

std::vector<float> block_sums(bool with_barriers, int blocks) {
  DeviceBuffer<float> x(inputs(blocks * kThreads)), out(static_cast<std::size_t>(blocks));
  const LaunchConfig cfg{dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, nullptr};
  if (with_barriers)
    kiln::launch(cfg, tree_sum_kernel<true>, out.get(), x.get());
  else
    kiln::launch(cfg, tree_sum_kernel<false>, out.get(), x.get());
  return out.download();
}

std::vector<float> block_sums_reference(int blocks) {
  const std::vector<float> x = inputs(blocks * kThreads);
  std::vector<float> r(static_cast<std::size_t>(blocks), 0.0f);
  for (int i = 0; i < blocks * kThreads; ++i)
    r[static_cast<std::size_t>(i / kThreads)] += x[static_cast<std::size_t>(i)];
  return r;  // small integers: every summation order is exact
}

std::vector<float> doubled(int overlap, int n) {
  DeviceBuffer<float> x(inputs(n)), y(static_cast<std::size_t>(n));
  y.fill_bytes(0);
  const int step = overlap == 2 ? kThreads : kThreads - overlap;
  const LaunchConfig cfg{dim3(static_cast<unsigned>(overlap == 2 ? 4 : (n - 1) / step + 1)),
                         dim3(kThreads), 0, nullptr};
  if (overlap == 1)
    kiln::launch(cfg, scale_kernel<1>, y.get(), x.get(), n);
  else if (overlap == 2)
    kiln::launch(cfg, scale_kernel<2>, y.get(), x.get(), n);
  else
    kiln::launch(cfg, scale_kernel<0>, y.get(), x.get(), n);
  return y.download();
}

std::vector<float> doubled_reference(int overlap, int n) {
  std::vector<float> r = inputs(n);
  for (int i = 0; i < n; ++i)
    r[static_cast<std::size_t>(i)] =
        overlap == 2 && i >= kThreads ? 0.0f : 2.0f * r[static_cast<std::size_t>(i)];
  return r;
}

float last_block_sum(bool with_fence, int blocks) {
  DeviceBuffer<float> x(inputs(blocks * kThreads)), partial(static_cast<std::size_t>(blocks)),
      out(1);
  DeviceBuffer<unsigned> count(1);
  count.fill_bytes(0);
  const LaunchConfig cfg{dim3(static_cast<unsigned>(blocks)), dim3(kThreads), 0, nullptr};
  // Twice: the second launch reuses the counter the first one reset.
  for (int run = 0; run < 2; ++run) {
    if (with_fence)
      kiln::launch(cfg, last_block_sum_kernel<true>, partial.get(), count.get(), out.get(),
                   x.get());
    else
      kiln::launch(cfg, last_block_sum_kernel<false>, partial.get(), count.get(), out.get(),
                   x.get());
  }
  return out.download()[0];
}

std::vector<float> neighbours(bool with_syncwarp, int group) {
  DeviceBuffer<float> x(inputs(32)), out(32);
  const LaunchConfig cfg{dim3(1), dim3(32), 0, nullptr};
  if (with_syncwarp && group == 32)
    kiln::launch(cfg, neighbour_kernel<true, 32>, out.get(), x.get());
  else if (with_syncwarp)
    kiln::launch(cfg, neighbour_kernel<true, 16>, out.get(), x.get());
  else if (group == 32)
    kiln::launch(cfg, neighbour_kernel<false, 32>, out.get(), x.get());
  else
    kiln::launch(cfg, neighbour_kernel<false, 16>, out.get(), x.get());
  return out.download();
}

std::vector<float> neighbours_reference(int group) {
  const std::vector<float> x = inputs(32);
  std::vector<float> r(32);
  for (int lane = 0; lane < 32; ++lane)
    r[static_cast<std::size_t>(lane)] =
        x[static_cast<std::size_t>(lane % group == 0 ? lane : lane - 1)];
  return r;
}

std::vector<std::uint32_t> ldmatrix_unsynced(bool with_syncwarp) {
  std::vector<std::uint16_t> x(64);
  for (int i = 0; i < 64; ++i) x[static_cast<std::size_t>(i)] = static_cast<std::uint16_t>(i);
  DeviceBuffer<std::uint16_t> dx(x);
  DeviceBuffer<std::uint32_t> out(32);
  const LaunchConfig cfg{dim3(1), dim3(32), 0, nullptr};
  if (with_syncwarp)
    kiln::launch(cfg, ldmatrix_unsynced_kernel<true>, out.get(), dx.get());
  else
    kiln::launch(cfg, ldmatrix_unsynced_kernel<false>, out.get(), dx.get());
  return out.download();
}

std::vector<std::uint32_t> ldmatrix_unsynced_reference() {
  // Element (r, c) of the matrix holds 8r + c; ldmatrix_trans gives lane l the elements at rows
  // 2(l%4) and 2(l%4) + 1 of column l/4 (core/tensor_core.h), low half first.
  std::vector<std::uint32_t> r(32);
  for (int l = 0; l < 32; ++l)
    r[static_cast<std::size_t>(l)] = static_cast<std::uint32_t>(8 * (2 * (l % 4)) + l / 4) |
                                     static_cast<std::uint32_t>(8 * (2 * (l % 4) + 1) + l / 4)
                                         << 16;
  return r;
}

float last_block_sum_reference(int blocks) {
  float total = 0.0f;
  for (float v : inputs(blocks * kThreads)) total += v;
  return total;
}

}  // namespace kiln::simt_test::race
