// core/launch.h — the one way Kiln launches a kernel.
//
//   kiln::launch({grid, block, shared_bytes, stream}, my_kernel, args...);
//
// Under nvcc this is kernel<<<grid, block, shared_bytes, stream>>>(args...) followed by a launch
// check; under the SIMT emulator (g++) it runs the kernel on the CPU (core/simt/). No kernel in Kiln
// is launched any other way.
#pragma once

#include <utility>

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
#if defined(__CUDACC__)
  kernel<<<cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream>>>(std::forward<Args>(args)...);
  KILN_CUDA_CHECK(cudaGetLastError());
#else
  ::kiln::simt::launch(cfg.grid, cfg.block, cfg.shared_bytes, cfg.stream, kernel,
                       std::forward<Args>(args)...);
#endif
}

}  // namespace kiln
