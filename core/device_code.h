// core/device_code.h — what every kernels/*.cu includes first.
//
// The same .cu source is compiled two ways (docs/design.md §1):
//   - by nvcc (__CUDACC__): plain CUDA;
//   - by g++ with core/simt/simt.h force-included (KILN_SIMT): the SIMT emulator supplies
//     threadIdx, __syncthreads, shuffles, atomics, the shared-memory macros below and the launch.
// Kernels never write a bare __shared__: they use
//   KILN_SHARED(type, name, dims);        e.g. KILN_SHARED(float, tile, [32][33]);
//   KILN_DYNAMIC_SHARED(type, name);      dynamic shared memory sized by LaunchConfig::shared_bytes
// and never a bare __launch_bounds__: they use
//   __global__ void KILN_LAUNCH_BOUNDS(max_threads[, min_blocks]) name(...)
// which is __launch_bounds__ under nvcc and, under the emulator, records the bound so that a launch
// with a larger block fails as it does on a GPU (docs/simt.md, "Launch limits").
// KILN_DEVICE_CODE is defined in device code under both compilers (never test __CUDA_ARCH__
// directly).
#pragma once

#if defined(__CUDACC__)
#include <cuda_runtime.h>
#define KILN_SHARED(type, name, dims) __shared__ type name dims
#define KILN_DYNAMIC_SHARED(type, name)                               \
  extern __shared__ __align__(16) unsigned char kiln_dynamic_smem_[]; \
  type* name = reinterpret_cast<type*>(kiln_dynamic_smem_)
#define KILN_LAUNCH_BOUNDS(...) __launch_bounds__(__VA_ARGS__)
#if defined(__CUDA_ARCH__)
#define KILN_DEVICE_CODE 1
#endif
#elif defined(KILN_SIMT)
#if !defined(KILN_SIMT_H_INCLUDED)
#error "the emulated build force-includes core/simt/simt.h (see core/simt/CMakeLists.txt)"
#endif
#define KILN_DEVICE_CODE 1
#define KILN_LAUNCH_BOUNDS(...) KILN_SIMT_LAUNCH_BOUNDS(__VA_ARGS__)
#else
#error "kernels/*.cu are compiled by nvcc or by g++ under the SIMT emulator (KILN_SIMT)"
#endif
