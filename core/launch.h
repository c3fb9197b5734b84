// core/launch.h — the one way Kiln launches a kernel.
//
//   kiln::launch({grid, block, shared_bytes, stream}, my_kernel, args...);
//
// Under nvcc this is kernel<<<grid, block, shared_bytes, stream>>>(args...) followed by a launch
// check; under the SIMT emulator (g++) it queues the kernel on the stream, to run on the CPU
// (core/simt/). No kernel in Kiln is launched any other way.
#pragma once

#include <cstdint>
#include <utility>

#include "core/cost.h"
#include "core/cuda_check.h"
#include "core/device_code.h"

namespace kiln {

struct LaunchConfig {
  dim3 grid;
  dim3 block;
  size_t shared_bytes = 0;
  cudaStream_t stream = nullptr;
};

template <typename... KernelArgs, typename... Args>
void launch(const LaunchConfig& cfg, void (*kernel)(KernelArgs...), Args&&... args) {
  cost::launched();  // the cost model's coverage: each launch should have a cost entry
#if defined(__CUDACC__)
  kernel<<<cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream>>>(std::forward<Args>(args)...);
  KILN_CUDA_CHECK(cudaGetLastError());
#else
  // A launch the emulator refuses fails here as it would above, with the emulator's message.
  if (!::kiln::simt::launch(cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream, kernel,
                            std::forward<Args>(args)...)) {
    const cudaError_t err = cudaGetLastError();
    throw ::kiln::Error("kiln::launch", __FILE__, __LINE__,
                        ::kiln::detail::concat("CUDA error ", cudaGetErrorName(err), ": ",
                                               ::kiln::simt::last_launch_error()));
  }
#endif
}

// ---- host-side helpers for choosing a launch ----------------------------------------------------
// True when p is 16-byte aligned, so float4 loads and stores through it are legal (nullptr counts
// as aligned: an absent optional pointer never blocks the vector path).
inline bool aligned16(const void* p) {
  return reinterpret_cast<uintptr_t>(p) % 16 == 0;
}

// ceil(a / b), as a grid dimension.
inline unsigned ceil_div(int64_t a, int64_t b) {
  return static_cast<unsigned>((a + b - 1) / b);
}

// Blocks for a grid-stride loop over `work` items with `block` threads each: enough to cover the
// work, at least 1, at most `max_blocks` (the loop takes the rest).
inline unsigned grid_stride_blocks(int64_t work, int block, int64_t max_blocks) {
  int64_t blocks = (work + block - 1) / block;
  if (blocks < 1) blocks = 1;
  return static_cast<unsigned>(blocks < max_blocks ? blocks : max_blocks);
}

// The launch shape of the memory-bound grid-stride kernels (activation, dropout, elementwise,
// optimizer): 256-thread blocks and at most 2048 blocks, several waves on an H200 (132 SMs x 2048
// threads) while each loop stays long enough to amortise its per-thread setup.
constexpr int kStreamBlock = 256;
constexpr int64_t kStreamMaxBlocks = 2048;

// Blocks of kStreamBlock threads for a grid-stride loop over `work` items.
inline unsigned stream_grid(int64_t work) {
  return grid_stride_blocks(work, kStreamBlock, kStreamMaxBlocks);
}

}  // namespace kiln
