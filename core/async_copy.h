// core/async_copy.h — cp.async (sm_80+ asynchronous global→shared copies) for Kiln kernels.
//
//   kiln::cp_async_16(smem_dst, gmem_src);  // 16 bytes; both addresses 16-byte aligned
//   kiln::cp_async_4(smem_dst, gmem_src);   // 4 bytes; both addresses 4-byte aligned
//   kiln::cp_async_commit();                // closes the current group of this thread's copies
//   kiln::cp_async_wait<N>();               // waits until at most N committed groups are pending
//   __syncthreads();                        // then other threads' copies are visible too
//
// Semantics (PTX ISA, cp.async / cp.async.commit_group / cp.async.wait_group): the copy happens at
// some point between the cp.async and the wait_group that covers its group; copies not yet committed
// are not waited for; a thread sees only its own completed copies until a barrier.
//   nvcc (sm_80+): inline PTX. nvcc below sm_80: a plain synchronous copy.
//   SIMT emulator: the copies are queued per thread and performed only at the cp_async_wait that
//   covers them — so a kernel that reads before waiting reads the 0xFF (NaN) poison of fresh shared
//   memory, and a missing commit or wait shows in its results.
#pragma once

#include <cstddef>
#include <cstdint>

#include "core/device_code.h"
#include "core/error.h"

namespace kiln {

#if defined(__CUDACC__)

__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(s), "l"(gmem) : "memory");
#else
  *static_cast<int4*>(smem) = *static_cast<const int4*>(gmem);
#endif
}

__device__ __forceinline__ void cp_async_4(void* smem, const void* gmem) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4;\n" ::"r"(s), "l"(gmem) : "memory");
#else
  *static_cast<int*>(smem) = *static_cast<const int*>(gmem);
#endif
}

__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#endif
}

template <int N>
__device__ __forceinline__ void cp_async_wait() {
  static_assert(N >= 0, "cp_async_wait<N>: N is a count of pending groups");
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#endif
}

#elif defined(KILN_SIMT)

inline void cp_async_16(void* smem, const void* gmem) {
  KILN_CHECK(reinterpret_cast<std::uintptr_t>(smem) % 16 == 0 &&
                 reinterpret_cast<std::uintptr_t>(gmem) % 16 == 0,
             "cp_async_16 needs 16-byte aligned addresses (smem ", smem, ", gmem ", gmem, ")");
  ::kiln::simt::detail::async_copy(smem, gmem, 16);
}

inline void cp_async_4(void* smem, const void* gmem) {
  KILN_CHECK(reinterpret_cast<std::uintptr_t>(smem) % 4 == 0 &&
                 reinterpret_cast<std::uintptr_t>(gmem) % 4 == 0,
             "cp_async_4 needs 4-byte aligned addresses (smem ", smem, ", gmem ", gmem, ")");
  ::kiln::simt::detail::async_copy(smem, gmem, 4);
}

inline void cp_async_commit() {
  ::kiln::simt::detail::async_commit();
}

template <int N>
inline void cp_async_wait() {
  static_assert(N >= 0, "cp_async_wait<N>: N is a count of pending groups");
  ::kiln::simt::detail::async_wait(N);
}

#endif

}  // namespace kiln
