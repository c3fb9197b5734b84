// tests/simt/simt_test_kernels.cu — kernels written to test the SIMT emulator (correct ones and
// planted bugs). Plain CUDA C++: compiled by nvcc (sm_90) and by g++ under the emulator.
// Declarations and contracts: simt_test_kernels.h.
#include "core/device_code.h"
#include "core/launch.h"
#include "tests/simt/simt_test_kernels.h"

namespace kiln::simt_test {

namespace {

constexpr int kSumThreads = 256;

// Shared-memory tree down to 64 partial sums, then one warp folds them with shuffles.
__global__ void KILN_LAUNCH_BOUNDS(kSumThreads)
    block_sum_kernel(float* __restrict__ out, const float* __restrict__ x, int n) {
  KILN_SHARED(float, partial, [kSumThreads]);
  const int t = static_cast<int>(threadIdx.x);
  float acc = 0.0f;
  for (int i = static_cast<int>(blockIdx.x) * kSumThreads + t; i < n;
       i += static_cast<int>(gridDim.x) * kSumThreads)
    acc += x[i];
  partial[t] = acc;
  __syncthreads();
  for (int stride = kSumThreads / 2; stride >= 32; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
    __syncthreads();
  }
  if (t < 32) {
    float v = partial[t];
    for (int offset = 16; offset > 0; offset /= 2) v += __shfl_down_sync(0xffffffffu, v, offset);
    if (t == 0) out[blockIdx.x] = v;
  }
}

// Planted bug: the barrier between tree levels is missing.
__global__ void racy_block_sum_kernel(float* __restrict__ out, const float* __restrict__ x, int n) {
  KILN_SHARED(float, partial, [kSumThreads]);
  const int t = static_cast<int>(threadIdx.x);
  float acc = 0.0f;
  for (int i = static_cast<int>(blockIdx.x) * kSumThreads + t; i < n;
       i += static_cast<int>(gridDim.x) * kSumThreads)
    acc += x[i];
  partial[t] = acc;
  __syncthreads();
  for (int stride = kSumThreads / 2; stride > 0; stride /= 2) {
    if (t < stride) partial[t] += partial[t + stride];
  }
  if (t == 0) out[blockIdx.x] = partial[0];
}

constexpr int kTile = 32;
constexpr int kTileRows = 8;

// A 32x33 tile: the padding column keeps the column reads free of bank conflicts on a GPU.
__global__ void transpose_kernel(float* __restrict__ out, const float* __restrict__ in, int rows,
                                 int cols) {
  KILN_SHARED(float, tile, [kTile][kTile + 1]);  // (row in tile, col in tile)
  const int tx = static_cast<int>(threadIdx.x), ty = static_cast<int>(threadIdx.y);
  const int col = static_cast<int>(blockIdx.x) * kTile + tx;
  const int row0 = static_cast<int>(blockIdx.y) * kTile;
  for (int r = ty; r < kTile; r += kTileRows)
    if (row0 + r < rows && col < cols) tile[r][tx] = in[(row0 + r) * cols + col];
  __syncthreads();
  // Output block (blockIdx.x, blockIdx.y) of the transposed matrix: out has `rows` columns.
  const int out_col = row0 + tx;
  const int out_row0 = static_cast<int>(blockIdx.x) * kTile;
  for (int r = ty; r < kTile; r += kTileRows)
    if (out_row0 + r < cols && out_col < rows) out[(out_row0 + r) * rows + out_col] = tile[tx][r];
}

__global__ void reverse_chunks_kernel(float* __restrict__ out, const float* __restrict__ x, int n) {
  KILN_DYNAMIC_SHARED(float, chunk);  // [blockDim.x]
  const int t = static_cast<int>(threadIdx.x);
  const int b = static_cast<int>(blockDim.x);
  const int base = static_cast<int>(blockIdx.x) * b;
  if (base + t < n) chunk[t] = x[base + t];
  __syncthreads();
  const int len = min(b, n - base);
  if (t < len) out[base + t] = chunk[len - 1 - t];
}

__global__ void atomics_kernel(int* counters, unsigned* ucounters, unsigned long long* ullcounters,
                               float* fsum, int* hist, const int* __restrict__ values, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i >= n) return;
  const int v = values[i];
  atomicAdd(&hist[v & 7], 1);
  atomicAdd(&counters[0], v);
  atomicSub(&counters[1], v);
  atomicMax(&counters[2], v);
  atomicMin(&counters[3], v);
  atomicAnd(&counters[4], ~(1 << (v & 15)));
  atomicOr(&counters[5], 1 << (v & 15));
  atomicXor(&counters[6], v);
  if (atomicCAS(&counters[7], 0, i + 1) == 0) atomicAdd(&counters[8], 1);  // exactly one winner
  atomicExch(&counters[9], 7);
  atomicAdd(&ucounters[0], 1u);
  atomicInc(&ucounters[1], 9u);  // wraps to 0 after 9
  atomicDec(&ucounters[2], 4u);
  atomicMax(&ucounters[3], static_cast<unsigned>(v));
  atomicAdd(&ullcounters[0], static_cast<unsigned long long>(v));
  atomicMax(&ullcounters[1], static_cast<unsigned long long>(v) << 40);
  atomicAdd(&fsum[0], 0.5f);
}

__global__ void shuffles_kernel(int* out, const int* __restrict__ args, int delta, int xor_mask) {
  const int lane = static_cast<int>(threadIdx.x);
  const int value = 100 + lane;
  const int widths[6] = {32, 16, 8, 4, 2, 1};
  for (int w = 0; w < 6; ++w) {
    const int width = widths[w];
    out[(0 * 6 + w) * 32 + lane] = __shfl_sync(0xffffffffu, value, args[lane], width);
    out[(1 * 6 + w) * 32 + lane] =
        __shfl_up_sync(0xffffffffu, value, static_cast<unsigned>(delta), width);
    out[(2 * 6 + w) * 32 + lane] =
        __shfl_down_sync(0xffffffffu, value, static_cast<unsigned>(delta), width);
    out[(3 * 6 + w) * 32 + lane] = __shfl_xor_sync(0xffffffffu, value, xor_mask, width);
  }
}

__global__ void shuffle_double_kernel(double* out) {
  const int lane = static_cast<int>(threadIdx.x);
  out[lane] = __shfl_sync(0xffffffffu, 0.5 + lane, 31 - lane);
}

__global__ void votes_kernel(unsigned* out, int k, int threshold) {
  const int t = static_cast<int>(threadIdx.x);
  const int lane = t % 32, warp = t / 32;
  const int nwarps = static_cast<int>((blockDim.x + 31) / 32);
  const int lanes = min(32, static_cast<int>(blockDim.x) - warp * 32);
  const unsigned mask = lanes == 32 ? 0xffffffffu : (1u << lanes) - 1u;
  const bool p = lane % k == 0;
  const unsigned ballot = __ballot_sync(mask, p);
  const int any = __any_sync(mask, p);
  const int all = __all_sync(mask, p);
  __syncwarp(mask);
  if (lane == 0) {
    out[warp * 8 + 0] = ballot;
    out[warp * 8 + 1] = static_cast<unsigned>(any);
    out[warp * 8 + 2] = static_cast<unsigned>(all);
  }
  const int count = __syncthreads_count(t < threshold);
  const int and_ = __syncthreads_and(t < threshold);
  const int or_ = __syncthreads_or(t < threshold);
  if (t == 0) {
    out[nwarps * 8 + 0] = static_cast<unsigned>(count);
    out[nwarps * 8 + 1] = static_cast<unsigned>(and_);
    out[nwarps * 8 + 2] = static_cast<unsigned>(or_);
  }
}

__global__ void warp_reduce_intrinsics_kernel(int* out, const int* __restrict__ values) {
  const int lane = static_cast<int>(threadIdx.x);
  const int v = values[lane];
  out[lane * 4 + 0] = __reduce_add_sync(0xffffffffu, v);
  out[lane * 4 + 1] = __reduce_min_sync(0xffffffffu, v);
  out[lane * 4 + 2] = __reduce_max_sync(0xffffffffu, v);
  out[lane * 4 + 3] = static_cast<int>(__reduce_xor_sync(0xffffffffu, static_cast<unsigned>(v)));
}

__global__ void indexing_kernel(std::uint32_t* out) {
  const unsigned block = blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z);
  const unsigned threads = blockDim.x * blockDim.y * blockDim.z;
  const unsigned t = threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z);
  out[block * threads + t] = (blockIdx.x << 24) | (blockIdx.y << 20) | (blockIdx.z << 16) |
                             (threadIdx.x << 8) | (threadIdx.y << 4) | threadIdx.z;
}

__global__ void barrier_rounds_kernel(float* out, int rounds) {
  KILN_SHARED(float, buf, [1024]);
  const int t = static_cast<int>(threadIdx.x);
  float acc = 0.0f;
  buf[t] = static_cast<float>(t);
  for (int r = 0; r < rounds; ++r) {
    __syncthreads();
    const float neighbour = buf[(t + r + 1) % 1024];
    __syncthreads();
    buf[t] = neighbour;
    acc += neighbour;
  }
  out[t] = acc;
}

__global__ void read_unwritten_shared_kernel(float* out) {
  KILN_SHARED(float, tile, [64]);
  out[threadIdx.x] = tile[threadIdx.x];
}

__global__ void early_return_kernel(float* out, int active) {
  KILN_SHARED(float, s, [64]);
  const int t = static_cast<int>(threadIdx.x);
  if (t >= active) return;
  s[t] = 1.0f;
  __syncthreads();  // planted: not reached by the threads that returned
  out[t] = s[0];
}

__global__ void divergent_barriers_kernel(float* out) {
  const int t = static_cast<int>(threadIdx.x);
  if ((t / 32) % 2 == 0) {
    __syncthreads();  // planted: even warps wait here ...
  } else {
    __syncthreads();  // ... odd warps here
  }
  out[t] = 1.0f;
}

__global__ void partial_warp_shuffle_kernel(float* out) {
  const int t = static_cast<int>(threadIdx.x);
  float v = static_cast<float>(t);
  if (t < 16) v = __shfl_sync(0xffffffffu, v, 0);  // planted: lanes 16-31 never arrive
  out[t] = v;
}

}  // namespace

void block_sum(float* out, const float* x, int n, int blocks) {
  kiln::launch({dim3(blocks), dim3(kSumThreads), 0, nullptr}, block_sum_kernel, out, x, n);
}

void racy_block_sum(float* out, const float* x, int n, int blocks) {
  kiln::launch({dim3(blocks), dim3(kSumThreads), 0, nullptr}, racy_block_sum_kernel, out, x, n);
}

void transpose(float* out, const float* in, int rows, int cols) {
  const dim3 grid((cols + kTile - 1) / kTile, (rows + kTile - 1) / kTile);
  kiln::launch({grid, dim3(kTile, kTileRows), 0, nullptr}, transpose_kernel, out, in, rows, cols);
}

void reverse_chunks(float* out, const float* x, int n, int block) {
  kiln::launch({dim3((n + block - 1) / block), dim3(block), block * sizeof(float), nullptr},
               reverse_chunks_kernel, out, x, n);
}

void atomics(int* counters, unsigned* ucounters, unsigned long long* ullcounters, float* fsum,
             int* hist, const int* values, int n) {
  kiln::launch({dim3((n + 127) / 128), dim3(128), 0, nullptr}, atomics_kernel, counters, ucounters,
               ullcounters, fsum, hist, values, n);
}

void shuffles(int* out, const int* args, int delta, int xor_mask) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, shuffles_kernel, out, args, delta, xor_mask);
}

void shuffle_double(double* out) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, shuffle_double_kernel, out);
}

void votes(unsigned* out, int threads, int k, int threshold) {
  kiln::launch({dim3(1), dim3(threads), 0, nullptr}, votes_kernel, out, k, threshold);
}

void warp_reduce_intrinsics(int* out, const int* values) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, warp_reduce_intrinsics_kernel, out, values);
}

void indexing(std::uint32_t* out, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
              unsigned bz) {
  kiln::launch({dim3(gx, gy, gz), dim3(bx, by, bz), 0, nullptr}, indexing_kernel, out);
}

void barrier_rounds(float* out, int rounds) {
  kiln::launch({dim3(1), dim3(1024), 0, nullptr}, barrier_rounds_kernel, out, rounds);
}

void read_unwritten_shared(float* out) {
  kiln::launch({dim3(1), dim3(64), 0, nullptr}, read_unwritten_shared_kernel, out);
}

void early_return(float* out, int active) {
  kiln::launch({dim3(1), dim3(64), 0, nullptr}, early_return_kernel, out, active);
}

void divergent_barriers(float* out) {
  kiln::launch({dim3(1), dim3(128), 0, nullptr}, divergent_barriers_kernel, out);
}

void partial_warp_shuffle(float* out) {
  kiln::launch({dim3(1), dim3(32), 0, nullptr}, partial_warp_shuffle_kernel, out);
}

}  // namespace kiln::simt_test
