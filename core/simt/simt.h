// core/simt/simt.h — the SIMT emulator's view of CUDA C++, force-included (g++ `-include`) into
// every .cu compiled for the CPU (see core/simt/CMakeLists.txt, kiln_emulate_cu()).
//
// It turns ordinary CUDA C++ into C++ that g++ compiles and core/simt/executor.cpp runs:
//   - threadIdx/blockIdx/blockDim/gridDim are real thread-local variables that the per-block
//     scheduler sets before it switches to a CUDA thread's fiber (macros would break cuda_runtime.h,
//     which has parameters named blockDim);
//   - __syncthreads() and the warp operations are macros that record __FILE__/__LINE__ and switch to
//     the scheduler, which checks that every thread arrives at the same site and computes the
//     results by CUDA's rules (docs/simt.md);
//   - KILN_SHARED / KILN_DYNAMIC_SHARED (the only way Kiln kernels declare shared memory) give
//     fresh 0xFF-poisoned per-block storage that AddressSanitizer bounds; a bare __shared__ is a
//     compile error here;
//   - the atomics are exactly those CUDA declares, so the emulator accepts no code nvcc rejects;
//   - kiln::simt::launch() (called by kiln::launch in core/launch.h) queues a grid on its stream
//     (core/simt/device_queue.h).
// __CUDACC__ and __CUDA_ARCH__ stay undefined (CUDA's headers would take their device paths);
// device code tests KILN_DEVICE_CODE (core/device_code.h).
#pragma once

#define KILN_SIMT_H_INCLUDED 1

// Keeps CUDA's extern declarations of threadIdx & co. out; we define them below.
#ifndef __DEVICE_LAUNCH_PARAMETERS_H__
#define __DEVICE_LAUNCH_PARAMETERS_H__
#endif

#include <cuda_runtime.h>

#include <atomic>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <tuple>
#include <type_traits>
#include <utility>

#include "device_limits.h"
#include "schedule.h"

#if defined(__SANITIZE_THREAD__) && !defined(KILN_SIMT_TSAN)
#define KILN_SIMT_TSAN 1
#endif

// ---- CUDA keywords -------------------------------------------------------------------------
// cuda_runtime.h already makes __global__, __device__, __host__, __constant__ empty under g++.
#undef __launch_bounds__
#define __launch_bounds__(...) \
  _Pragma("GCC error \"a bare __launch_bounds__: use KILN_LAUNCH_BOUNDS (core/device_code.h)\"")
// KILN_LAUNCH_BOUNDS(max_threads[, min_blocks]) under the emulator: the compiler itself records
// the bound in the kernel's code, as max_threads / 32 one-byte NOPs at its entry
// (patchable_function_entry, which GCC honours on template instantiations too, unlike a section),
// and the launch reads them back (launch_bound_of in core/simt/launch_limits.cpp). Nothing else GCC
// compiles starts with a NOP. max_threads must be a multiple of 32 in 32..1024 (a compile error
// otherwise).
#define KILN_SIMT_LAUNCH_BOUNDS(...) \
  __attribute__((patchable_function_entry(::kiln::simt::detail::launch_bound_nops(__VA_ARGS__), 0)))
#undef __shared__
#define __shared__                                                                             \
  _Pragma(                                                                                     \
      "GCC error \"Kiln kernels declare shared memory with KILN_SHARED / KILN_DYNAMIC_SHARED " \
      "(core/device_code.h), never a bare __shared__\"")

// ---- built-in variables ------------------------------------------------------------------------
// Constant-initialised inline thread_locals: g++ accesses them directly through %fs.
inline thread_local uint3 threadIdx{};
inline thread_local uint3 blockIdx{};
inline thread_local dim3 blockDim{1, 1, 1};
inline thread_local dim3 gridDim{1, 1, 1};
inline constexpr int warpSize = 32;

namespace kiln::simt {

namespace detail {

// The NOP count that encodes a launch bound (KILN_SIMT_LAUNCH_BOUNDS above).
consteval int launch_bound_nops(int max_threads, int min_blocks = 1) {
  if (max_threads < 32 || max_threads > 1024 || max_threads % 32 != 0 || min_blocks < 1)
    throw "KILN_LAUNCH_BOUNDS: max_threads must be a multiple of 32 in 32..1024, min_blocks >= 1";
  return max_threads / 32;
}

enum class SyncKind : std::uint8_t { kBarrier, kCount, kAnd, kOr };

enum class WarpKind : std::uint8_t {
  kSyncWarp,
  kShflIdx,
  kShflUp,
  kShflDown,
  kShflXor,
  kBallot,
  kAny,
  kAll,
  kReduceAddU,
  kReduceMinU,
  kReduceMaxU,
  kReduceMinI,
  kReduceMaxI,
  kReduceAnd,
  kReduceOr,
  kReduceXor,
  kGather,  // warp_gather: mma.sync, ldmatrix (core/tensor_core.h)
};

// Blocks the calling CUDA thread at a __syncthreads* site; returns the block-wide result
// (count of non-zero predicates for kCount, 0/1 for kAnd/kOr).
int block_barrier(SyncKind kind, int predicate, const char* file, int line);

// Blocks the calling lane until every lane named in `mask` has reached a warp operation of the
// same kind and mask; returns this lane's result (the bits of the value for shuffles).
std::uint64_t warp_op(WarpKind kind, unsigned mask, std::uint64_t value, int arg, int width,
                      const char* file, int line);

// The instructions whose lanes read each other's registers (mma.sync, ldmatrix:
// core/tensor_core.h) are built on this rendezvous: every lane of the (full) warp posts `bytes`
// bytes at `mine` (1 <= bytes <= kGatherBytes, the same count in every lane) and blocks; once all
// 32 lanes have arrived at the same site, each receives the warp's table, lane l's bytes at
// table + l * kGatherBytes. The table stays valid until the calling lane's next warp_gather (it
// is rewritten only when all 32 lanes have arrived at the next one). Unlike __syncwarp it orders
// no memory: under the race detector a missing barrier before an ldmatrix is still a race.
inline constexpr int kGatherBytes = 64;
const unsigned char* warp_gather(const void* mine, int bytes, const char* file, int line);
// True when [p, p + bytes) lies inside the calling block's shared memory (static or dynamic).
bool is_shared_address(const void* p, std::size_t bytes);

// Per-block storage of a KILN_SHARED variable identified by `key` (the address of a static tag):
// allocated, 0xFF-filled, on first use in each block; the same address for every thread of it.
void* shared_variable(const void* key, std::size_t bytes, std::size_t align);
// The block's dynamic shared memory (LaunchConfig::shared_bytes, 0xFF-filled, 16-byte aligned).
void* dynamic_shared();

// Race-detector hooks (KILN_SIMT_TSAN builds; no-ops otherwise), see executor.cpp:
// race_fence() marks the calling CUDA thread as fenced; an atomic of a fenced thread releases its
// address before it runs, and every atomic acquires its address after it ran.
#if defined(KILN_SIMT_TSAN)
void race_fence();
void race_atomic_begin(const void* address);
void race_atomic_end(const void* address);
#else
inline void race_fence() {}
inline void race_atomic_begin(const void*) {}
inline void race_atomic_end(const void*) {}
#endif
struct RaceAtomic {
  const void* address;
  explicit RaceAtomic(const void* a) : address(a) { race_atomic_begin(address); }
  ~RaceAtomic() { race_atomic_end(address); }
  RaceAtomic(const RaceAtomic&) = delete;
  RaceAtomic& operator=(const RaceAtomic&) = delete;
};

// cp.async model (core/async_copy.h): copies are queued per thread and performed at wait time.
void async_copy(void* dst, const void* src, std::size_t bytes);
void async_commit();
void async_wait(int pending_groups);

struct LaunchSpec {
  dim3 grid;
  dim3 block;
  std::size_t shared_bytes;
  cudaStream_t stream;
};
// Queues the grid on spec.stream (device_queue.h); each CUDA thread calls invoke(packed), and
// destroy(packed) runs once the grid is done. A bad configuration throws kiln::Error at once. The
// first exception a kernel thread throws (or a kiln::Error for a barrier/warp-operation misuse)
// becomes the device's sticky error, or reaches the caller in the synchronous stream mode.
void run_kernel(const LaunchSpec& spec, void (*invoke)(void*), void* packed,
                void (*destroy)(void*));

// Checks a launch of `kernel` against the device's limits and the kernel's attributes, as a GPU
// does before it starts a grid (core/simt/launch_limits.cpp). On a violation it records the CUDA
// error a GPU returns (cudaGetLastError() gives it) and a message naming the kernel (`signature`:
// its parameter types) and the limit (last_launch_error()), and returns false.
bool launch_allowed(const void* kernel, const char* signature, const LaunchSpec& spec);
// cudaFuncSetAttribute's work: the kernel's attribute table entry (launch_limits.cpp).
cudaError_t set_kernel_attribute(const void* kernel, cudaFuncAttribute attribute, int value);
// Makes `error` the thread's last CUDA error, as a failing runtime call does (cuda_runtime_shim.cpp).
void record_error(cudaError_t error);

template <typename T>
inline std::uint64_t to_bits(T v) {
  static_assert(std::is_trivially_copyable_v<T> && sizeof(T) <= 8,
                "warp shuffles move values of at most 8 bytes");
  std::uint64_t bits = 0;
  std::memcpy(&bits, &v, sizeof(T));
  return bits;
}
template <typename T>
inline T from_bits(std::uint64_t bits) {
  T v;
  std::memcpy(&v, &bits, sizeof(T));
  return v;
}

template <WarpKind kKind, typename T>
inline T shfl_at(const char* file, int line, unsigned mask, T var, int lane_arg,
                 int width = warpSize) {
  return from_bits<T>(warp_op(kKind, mask, to_bits(var), lane_arg, width, file, line));
}
inline void syncwarp_at(const char* file, int line, unsigned mask = 0xffffffffu) {
  warp_op(WarpKind::kSyncWarp, mask, 0, 0, warpSize, file, line);
}

}  // namespace detail

// The message of the last launch this thread could not start, as launch_allowed() wrote it.
const char* last_launch_error();

// Queues `kernel` over `grid` x `block` on `stream` (in the synchronous stream mode it has run when
// this returns). The arguments are copied once, by value, into the kernel's parameter types, as
// CUDA copies them into parameter memory, and live until the grid has run. A launch beyond the
// device's or the kernel's limits does not start: it returns false with the CUDA error recorded,
// as `kernel<<<...>>>` does on a GPU.
template <typename... KArgs, typename... Args>
bool launch(dim3 grid, dim3 block, std::size_t shared_bytes, cudaStream_t stream,
            void (*kernel)(KArgs...), Args&&... args) {
  static_assert(sizeof...(KArgs) == sizeof...(Args), "wrong number of kernel arguments");
  struct Packed {
    void (*fn)(KArgs...);
    std::tuple<std::decay_t<KArgs>...> params;
  };
  const detail::LaunchSpec spec{grid, block, shared_bytes, stream};
  if (!detail::launch_allowed(reinterpret_cast<const void*>(kernel), __PRETTY_FUNCTION__, spec))
    return false;
  auto* packed =
      new Packed{kernel, std::tuple<std::decay_t<KArgs>...>(std::forward<Args>(args)...)};
  detail::run_kernel(
      spec,
      [](void* p) {
        auto* k = static_cast<Packed*>(p);
        std::apply(k->fn, k->params);
      },
      packed, [](void* p) { delete static_cast<Packed*>(p); });
  return true;
}

}  // namespace kiln::simt

// ---- runtime API taking a kernel ---------------------------------------------------------------
// cuda_runtime.h declares its templated forms (taking the kernel itself, not a const void*) only
// for nvcc; the emulator supplies the one Kiln uses, so the same launcher compiles both ways.
template <typename T>
inline cudaError_t cudaFuncSetAttribute(T* kernel, cudaFuncAttribute attr, int value) {
  return ::cudaFuncSetAttribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// ---- shared memory -----------------------------------------------------------------------------
// KILN_SHARED(float, tile, [32][33]) declares `float (&tile)[32][33]`; KILN_SHARED(float, s, )
// declares `float& s`. The static tag's address names the declaration (one per template
// instantiation, as a __shared__ variable is).
#define KILN_SHARED(type, name, dims)                                               \
  static const char kiln_shared_tag_##name = 0;                                     \
  using kiln_shared_type_##name = type dims;                                        \
  kiln_shared_type_##name& name =                                                   \
      *static_cast<kiln_shared_type_##name*>(::kiln::simt::detail::shared_variable( \
          &kiln_shared_tag_##name, sizeof(kiln_shared_type_##name),                 \
          alignof(kiln_shared_type_##name)))
#define KILN_DYNAMIC_SHARED(type, name) \
  type* name = static_cast<type*>(::kiln::simt::detail::dynamic_shared())

// ---- barriers and warp operations --------------------------------------------------------------
#define __syncthreads()                                                                   \
  ((void)::kiln::simt::detail::block_barrier(::kiln::simt::detail::SyncKind::kBarrier, 1, \
                                             __FILE__, __LINE__))
#define __syncthreads_count(pred)                                                             \
  ::kiln::simt::detail::block_barrier(::kiln::simt::detail::SyncKind::kCount, (pred) ? 1 : 0, \
                                      __FILE__, __LINE__)
#define __syncthreads_and(pred)                                                             \
  ::kiln::simt::detail::block_barrier(::kiln::simt::detail::SyncKind::kAnd, (pred) ? 1 : 0, \
                                      __FILE__, __LINE__)
#define __syncthreads_or(pred)                                                             \
  ::kiln::simt::detail::block_barrier(::kiln::simt::detail::SyncKind::kOr, (pred) ? 1 : 0, \
                                      __FILE__, __LINE__)
#define __syncwarp(...) \
  ::kiln::simt::detail::syncwarp_at(__FILE__, __LINE__ __VA_OPT__(, ) __VA_ARGS__)

#define __shfl_sync(...)                                                                      \
  ::kiln::simt::detail::shfl_at<::kiln::simt::detail::WarpKind::kShflIdx>(__FILE__, __LINE__, \
                                                                          __VA_ARGS__)
#define __shfl_up_sync(...)                                                                  \
  ::kiln::simt::detail::shfl_at<::kiln::simt::detail::WarpKind::kShflUp>(__FILE__, __LINE__, \
                                                                         __VA_ARGS__)
#define __shfl_down_sync(...)                                                                  \
  ::kiln::simt::detail::shfl_at<::kiln::simt::detail::WarpKind::kShflDown>(__FILE__, __LINE__, \
                                                                           __VA_ARGS__)
#define __shfl_xor_sync(...)                                                                  \
  ::kiln::simt::detail::shfl_at<::kiln::simt::detail::WarpKind::kShflXor>(__FILE__, __LINE__, \
                                                                          __VA_ARGS__)

#define KILN_SIMT_WARP_(kind, mask, value)                                                \
  ::kiln::simt::detail::warp_op(::kiln::simt::detail::WarpKind::kind, (mask),             \
                                static_cast<std::uint64_t>(value), 0, warpSize, __FILE__, \
                                __LINE__)
#define __ballot_sync(mask, pred) \
  static_cast<unsigned>(KILN_SIMT_WARP_(kBallot, mask, (pred) ? 1 : 0))
#define __any_sync(mask, pred) static_cast<int>(KILN_SIMT_WARP_(kAny, mask, (pred) ? 1 : 0))
#define __all_sync(mask, pred) static_cast<int>(KILN_SIMT_WARP_(kAll, mask, (pred) ? 1 : 0))

namespace kiln::simt::detail {
// __reduce_*_sync (sm_80+): unsigned and int overloads as CUDA declares them.
inline unsigned reduce_u(WarpKind k, unsigned mask, unsigned v, const char* f, int l) {
  return static_cast<unsigned>(warp_op(k, mask, v, 0, warpSize, f, l));
}
inline int reduce_i(WarpKind k, unsigned mask, int v, const char* f, int l) {
  return static_cast<int>(static_cast<std::uint32_t>(
      warp_op(k, mask, static_cast<std::uint32_t>(v), 0, warpSize, f, l)));
}
struct ReduceAt {
  const char* file;
  int line;
  unsigned add(unsigned m, unsigned v) const {
    return reduce_u(WarpKind::kReduceAddU, m, v, file, line);
  }
  int add(unsigned m, int v) const { return reduce_i(WarpKind::kReduceAddU, m, v, file, line); }
  unsigned min(unsigned m, unsigned v) const {
    return reduce_u(WarpKind::kReduceMinU, m, v, file, line);
  }
  int min(unsigned m, int v) const { return reduce_i(WarpKind::kReduceMinI, m, v, file, line); }
  unsigned max(unsigned m, unsigned v) const {
    return reduce_u(WarpKind::kReduceMaxU, m, v, file, line);
  }
  int max(unsigned m, int v) const { return reduce_i(WarpKind::kReduceMaxI, m, v, file, line); }
  unsigned and_(unsigned m, unsigned v) const {
    return reduce_u(WarpKind::kReduceAnd, m, v, file, line);
  }
  unsigned or_(unsigned m, unsigned v) const {
    return reduce_u(WarpKind::kReduceOr, m, v, file, line);
  }
  unsigned xor_(unsigned m, unsigned v) const {
    return reduce_u(WarpKind::kReduceXor, m, v, file, line);
  }
};
}  // namespace kiln::simt::detail
#define __reduce_add_sync(mask, v) \
  (::kiln::simt::detail::ReduceAt{__FILE__, __LINE__}.add((mask), (v)))
#define __reduce_min_sync(mask, v) \
  (::kiln::simt::detail::ReduceAt{__FILE__, __LINE__}.min((mask), (v)))
#define __reduce_max_sync(mask, v) \
  (::kiln::simt::detail::ReduceAt{__FILE__, __LINE__}.max((mask), (v)))
#define __reduce_and_sync(mask, v) \
  (::kiln::simt::detail::ReduceAt{__FILE__, __LINE__}.and_((mask), (v)))
#define __reduce_or_sync(mask, v) \
  (::kiln::simt::detail::ReduceAt{__FILE__, __LINE__}.or_((mask), (v)))
#define __reduce_xor_sync(mask, v) \
  (::kiln::simt::detail::ReduceAt{__FILE__, __LINE__}.xor_((mask), (v)))

// ---- memory fences, loads, clocks ------------------------------------------------------------------
// Under the race detector (KILN_SIMT_TSAN) a fence also marks the CUDA thread as fenced, so that
// its later atomics publish what it wrote before (the fence model in docs/simt.md). ThreadSanitizer
// ignores (and g++ warns about) std::atomic_thread_fence; the same mfence is issued directly.
namespace kiln::simt::detail {
inline void full_fence() {
#if defined(KILN_SIMT_TSAN)
  asm volatile("mfence" ::: "memory");
#else
  std::atomic_thread_fence(std::memory_order_seq_cst);
#endif
  race_fence();
}
}  // namespace kiln::simt::detail
inline void __threadfence() {
  kiln::simt::detail::full_fence();
}
inline void __threadfence_block() {
  kiln::simt::detail::full_fence();
}
inline void __threadfence_system() {
  kiln::simt::detail::full_fence();
}
template <typename T>
inline T __ldg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcg(const T* p) {
  return *p;
}
template <typename T>
inline T __ldcs(const T* p) {
  return *p;
}
template <typename T>
inline void __stcs(T* p, T v) {
  *p = v;
}
template <typename T>
inline void __stcg(T* p, T v) {
  *p = v;
}

// ---- atomics: exactly the overloads CUDA 13 declares (no float atomicMax, no float atomicCAS) -----
// Relaxed, as CUDA's atomic functions are: they order nothing but themselves. (A seq_cst atomic
// would give the race detector happens-before edges that a GPU does not give.)
namespace kiln::simt::detail {
inline constexpr auto kRelaxed = std::memory_order_relaxed;
template <typename T>
inline std::atomic_ref<T> aref(T* p) {
  return std::atomic_ref<T>(*p);
}
template <typename T>
inline T atomic_min(T* p, T v) {
  auto a = aref(p);
  T old = a.load(kRelaxed);
  while (v < old && !a.compare_exchange_weak(old, v, kRelaxed, kRelaxed)) {
  }
  return old;
}
template <typename T>
inline T atomic_max(T* p, T v) {
  auto a = aref(p);
  T old = a.load(kRelaxed);
  while (old < v && !a.compare_exchange_weak(old, v, kRelaxed, kRelaxed)) {
  }
  return old;
}
template <typename T>
inline T atomic_cas(T* p, T compare, T v) {
  aref(p).compare_exchange_strong(compare, v, kRelaxed, kRelaxed);
  return compare;
}
}  // namespace kiln::simt::detail

using kiln_simt_ull_ = unsigned long long;  // NOLINT: CUDA's spelling of the 64-bit atomics
inline int atomicAdd(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_add(v, kiln::simt::detail::kRelaxed);
}
inline unsigned atomicAdd(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_add(v, kiln::simt::detail::kRelaxed);
}
inline kiln_simt_ull_ atomicAdd(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_add(v, kiln::simt::detail::kRelaxed);
}
inline float atomicAdd(float* p, float v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_add(v, kiln::simt::detail::kRelaxed);
}
inline double atomicAdd(double* p, double v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_add(v, kiln::simt::detail::kRelaxed);
}
inline int atomicSub(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_sub(v, kiln::simt::detail::kRelaxed);
}
inline unsigned atomicSub(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_sub(v, kiln::simt::detail::kRelaxed);
}
inline int atomicExch(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).exchange(v, kiln::simt::detail::kRelaxed);
}
inline unsigned atomicExch(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).exchange(v, kiln::simt::detail::kRelaxed);
}
inline kiln_simt_ull_ atomicExch(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).exchange(v, kiln::simt::detail::kRelaxed);
}
inline float atomicExch(float* p, float v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).exchange(v, kiln::simt::detail::kRelaxed);
}
inline int atomicMin(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_min(p, v);
}
inline unsigned atomicMin(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_min(p, v);
}
inline long long atomicMin(long long* p, long long v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_min(p, v);
}
inline kiln_simt_ull_ atomicMin(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_min(p, v);
}
inline int atomicMax(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_max(p, v);
}
inline unsigned atomicMax(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_max(p, v);
}
inline long long atomicMax(long long* p, long long v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_max(p, v);
}
inline kiln_simt_ull_ atomicMax(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_max(p, v);
}
inline int atomicCAS(int* p, int c, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_cas(p, c, v);
}
inline unsigned atomicCAS(unsigned* p, unsigned c, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_cas(p, c, v);
}
inline kiln_simt_ull_ atomicCAS(kiln_simt_ull_* p, kiln_simt_ull_ c, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::atomic_cas(p, c, v);
}
inline int atomicAnd(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_and(v, kiln::simt::detail::kRelaxed);
}
inline unsigned atomicAnd(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_and(v, kiln::simt::detail::kRelaxed);
}
inline long long atomicAnd(long long* p, long long v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_and(v, kiln::simt::detail::kRelaxed);
}
inline kiln_simt_ull_ atomicAnd(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_and(v, kiln::simt::detail::kRelaxed);
}
inline int atomicOr(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_or(v, kiln::simt::detail::kRelaxed);
}
inline unsigned atomicOr(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_or(v, kiln::simt::detail::kRelaxed);
}
inline long long atomicOr(long long* p, long long v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_or(v, kiln::simt::detail::kRelaxed);
}
inline kiln_simt_ull_ atomicOr(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_or(v, kiln::simt::detail::kRelaxed);
}
inline int atomicXor(int* p, int v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_xor(v, kiln::simt::detail::kRelaxed);
}
inline unsigned atomicXor(unsigned* p, unsigned v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_xor(v, kiln::simt::detail::kRelaxed);
}
inline long long atomicXor(long long* p, long long v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_xor(v, kiln::simt::detail::kRelaxed);
}
inline kiln_simt_ull_ atomicXor(kiln_simt_ull_* p, kiln_simt_ull_ v) {
  const kiln::simt::detail::RaceAtomic race(p);
  return kiln::simt::detail::aref(p).fetch_xor(v, kiln::simt::detail::kRelaxed);
}
// atomicInc/atomicDec: CUDA's wrapping counters.
inline unsigned atomicInc(unsigned* p, unsigned limit) {
  const kiln::simt::detail::RaceAtomic race(p);
  auto a = kiln::simt::detail::aref(p);
  unsigned old = a.load(kiln::simt::detail::kRelaxed);
  while (!a.compare_exchange_weak(old, old >= limit ? 0u : old + 1u, kiln::simt::detail::kRelaxed,
                                  kiln::simt::detail::kRelaxed)) {
  }
  return old;
}
inline unsigned atomicDec(unsigned* p, unsigned limit) {
  const kiln::simt::detail::RaceAtomic race(p);
  auto a = kiln::simt::detail::aref(p);
  unsigned old = a.load(kiln::simt::detail::kRelaxed);
  while (!a.compare_exchange_weak(old, (old == 0u || old > limit) ? limit : old - 1u,
                                  kiln::simt::detail::kRelaxed, kiln::simt::detail::kRelaxed)) {
  }
  return old;
}

// ---- min / max as CUDA's math_functions.hpp overloads them -------------------------------------
#define KILN_SIMT_MINMAX_(R, A, B)                                                        \
  inline R min(A a, B b) {                                                                \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(a) : static_cast<R>(b); \
  }                                                                                       \
  inline R max(A a, B b) {                                                                \
    return static_cast<R>(a) < static_cast<R>(b) ? static_cast<R>(b) : static_cast<R>(a); \
  }
KILN_SIMT_MINMAX_(int, int, int)
KILN_SIMT_MINMAX_(unsigned, unsigned, unsigned)
KILN_SIMT_MINMAX_(unsigned, int, unsigned)
KILN_SIMT_MINMAX_(unsigned, unsigned, int)
KILN_SIMT_MINMAX_(long, long, long)
KILN_SIMT_MINMAX_(unsigned long, unsigned long, unsigned long)
KILN_SIMT_MINMAX_(unsigned long, long, unsigned long)
KILN_SIMT_MINMAX_(unsigned long, unsigned long, long)
KILN_SIMT_MINMAX_(long long, long long, long long)
KILN_SIMT_MINMAX_(unsigned long long, unsigned long long, unsigned long long)
KILN_SIMT_MINMAX_(unsigned long long, long long, unsigned long long)
KILN_SIMT_MINMAX_(unsigned long long, unsigned long long, long long)
KILN_SIMT_MINMAX_(double, double, double)
KILN_SIMT_MINMAX_(double, float, double)
KILN_SIMT_MINMAX_(double, double, float)
#undef KILN_SIMT_MINMAX_
inline float min(float a, float b) {
  return fminf(a, b);
}
inline float max(float a, float b) {
  return fmaxf(a, b);
}

// ---- fast-math and bit intrinsics (libm; the GPU differs in the last bits, see docs/simt.md) -------
inline float __expf(float x) {
  return expf(x);
}
inline float __exp10f(float x) {
  return exp10f(x);
}
inline float __logf(float x) {
  return logf(x);
}
inline float __log2f(float x) {
  return log2f(x);
}
inline float __log10f(float x) {
  return log10f(x);
}
inline float __powf(float x, float y) {
  return powf(x, y);
}
inline float __sinf(float x) {
  return sinf(x);
}
inline float __cosf(float x) {
  return cosf(x);
}
inline float __tanf(float x) {
  return tanf(x);
}
inline void __sincosf(float x, float* s, float* c) {
  sincosf(x, s, c);
}
inline float __tanhf(float x) {
  return tanhf(x);
}
inline float __fdividef(float x, float y) {
  return x / y;
}
inline float fdividef(float x, float y) {
  return x / y;
}
inline float rsqrtf(float x) {
  return 1.0f / sqrtf(x);
}
inline double rsqrt(double x) {
  return 1.0 / sqrt(x);
}
inline float __frsqrt_rn(float x) {
  return 1.0f / sqrtf(x);
}
inline float __frcp_rn(float x) {
  return 1.0f / x;
}
inline float __fsqrt_rn(float x) {
  return sqrtf(x);
}
// CUDA never merges __fadd_rn, __fsub_rn or __fmul_rn into a multiply-add; g++ contracts a·b + c
// into an FMA under -mfma (C++ has no ISO-mode exception), so their results pass through an empty
// asm that g++ cannot see through, and stay rounded.
namespace kiln::simt::detail {
inline float rounded(float v) {
#if defined(__x86_64__) || defined(__i386__)
  __asm__("" : "+x"(v));
#elif defined(__aarch64__)
  __asm__("" : "+w"(v));
#else
  volatile float kept = v;
  v = kept;
#endif
  return v;
}
}  // namespace kiln::simt::detail
inline float __fadd_rn(float a, float b) {
  return ::kiln::simt::detail::rounded(a + b);
}
inline float __fsub_rn(float a, float b) {
  return ::kiln::simt::detail::rounded(a - b);
}
inline float __fmul_rn(float a, float b) {
  return ::kiln::simt::detail::rounded(a * b);
}
inline float __fdiv_rn(float a, float b) {
  return a / b;
}
inline float __fmaf_rn(float a, float b, float c) {
  return fmaf(a, b, c);
}
inline double __fma_rn(double a, double b, double c) {
  return fma(a, b, c);
}
inline double __dadd_rn(double a, double b) {
  return a + b;
}
inline double __dmul_rn(double a, double b) {
  return a * b;
}
inline float __saturatef(float x) {
  return x != x ? 0.0f : fminf(fmaxf(x, 0.0f), 1.0f);
}
inline float saturate(float x) {
  return __saturatef(x);
}
inline unsigned __float_as_uint(float x) {
  return std::bit_cast<unsigned>(x);
}
inline int __float_as_int(float x) {
  return std::bit_cast<int>(x);
}
inline float __uint_as_float(unsigned x) {
  return std::bit_cast<float>(x);
}
inline float __int_as_float(int x) {
  return std::bit_cast<float>(x);
}
inline long long __double_as_longlong(double x) {
  return std::bit_cast<long long>(x);
}
inline double __longlong_as_double(long long x) {
  return std::bit_cast<double>(x);
}
inline int __float2int_rn(float x) {
  return static_cast<int>(nearbyintf(x));
}
inline int __float2int_rz(float x) {
  return static_cast<int>(x);
}
inline int __float2int_rd(float x) {
  return static_cast<int>(floorf(x));
}
inline int __float2int_ru(float x) {
  return static_cast<int>(ceilf(x));
}
inline int __popc(unsigned x) {
  return __builtin_popcount(x);
}
inline int __popcll(unsigned long long x) {
  return __builtin_popcountll(x);
}
inline int __clz(int x) {
  return x == 0 ? 32 : __builtin_clz(static_cast<unsigned>(x));
}
inline int __clzll(long long x) {
  return x == 0 ? 64 : __builtin_clzll(static_cast<unsigned long long>(x));
}
inline int __ffs(int x) {
  return __builtin_ffs(x);
}
inline int __ffsll(long long x) {
  return __builtin_ffsll(x);
}
inline unsigned __brev(unsigned x) {
  x = ((x >> 1) & 0x55555555u) | ((x & 0x55555555u) << 1);
  x = ((x >> 2) & 0x33333333u) | ((x & 0x33333333u) << 2);
  x = ((x >> 4) & 0x0f0f0f0fu) | ((x & 0x0f0f0f0fu) << 4);
  return __builtin_bswap32(x);
}
inline int __mul24(int a, int b) {
  return (a << 8 >> 8) * (b << 8 >> 8);
}
inline unsigned __umul24(unsigned a, unsigned b) {
  return (a & 0xffffffu) * (b & 0xffffffu);
}
inline int __mulhi(int a, int b) {
  return static_cast<int>((static_cast<long long>(a) * b) >> 32);
}
inline unsigned __umulhi(unsigned a, unsigned b) {
  return static_cast<unsigned>((static_cast<unsigned long long>(a) * b) >> 32);
}
inline long long int clock64() {
  return static_cast<long long>(__builtin_ia32_rdtsc());
}
inline void __nanosleep(unsigned) {}
