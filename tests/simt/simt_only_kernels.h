// tests/simt/simt_only_kernels.h — launchers of the emulator-only test kernels
// (simt_only_kernels.cu).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

namespace kiln::simt_test {

// Launches 3 blocks of 128 threads; thread `bad_thread` of block 1 throws kiln::Error after the
// first barrier while its block-mates wait at the second.
void throwing(int bad_thread);

struct ByValue {
  int values[2];
};
// out[t] = scale * (v.values[0] + t + v.values[1]) for t < 8; `scale` converts int -> float.
void args(float* out, int scale, const ByValue& v);

// Launches an empty kernel over `grid` x `block` with `shared_bytes` of dynamic shared memory
// (through kiln::launch): for the launch-limit tests.
void empty(dim3 grid, dim3 block, size_t shared_bytes);
// The empty kernel's address, for cudaFuncSetAttribute.
const void* empty_kernel_address();

// Launch an empty kernel declared KILN_LAUNCH_BOUNDS(128) (a plain kernel), or
// KILN_LAUNCH_BOUNDS(kThreads, 2) with kThreads = 256 a template parameter, over one block.
void bounded_128(dim3 block);
void bounded_template_256(dim3 block);

// One block of 32 threads with 200 KiB of static shared memory and `dynamic_bytes` of dynamic
// (its MaxDynamicSharedMemorySize raised to 227 KiB first): over the device's 227 KiB in all when
// dynamic_bytes > 27 KiB.
void static_plus_dynamic(size_t dynamic_bytes);

// *out = Σ x[0..n) by one block of 256 threads that first stages x (n ≤ 16384) in n floats of
// dynamic shared memory — more than 48 KiB for n > 12288. With `opt_in` the launcher first raises
// the kernel's MaxDynamicSharedMemorySize to n floats (as a correct launcher must); without it, it
// is the planted bug a GPU refuses.
void staged_sum(float* out, const float* x, int n, bool opt_in);
// Puts the staged-sum kernel's MaxDynamicSharedMemorySize back to CUDA's default, 48 KiB.
void reset_staged_sum_attribute();

}  // namespace kiln::simt_test
