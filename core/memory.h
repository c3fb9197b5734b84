// core/memory.h — the one place through which every Kiln allocation goes.
//
// Host memory is 64-byte aligned; device memory comes from cudaMalloc (the real runtime or the SIMT
// emulator's, which fills it with 0xFF so unwritten floats read as NaN). Counters let tests prove
// that a steady-state training step allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "core/stream.h"

namespace kiln {

enum class Device { cpu, cuda };
const char* device_name(Device device);
Device parse_device(const std::string& name);  // "cpu" | "cuda"

// True when Kiln was built with CUDA support (real or emulated) and a device answers.
bool cuda_available();
// A readable reason when cuda_available() is false ("built without CUDA", "no CUDA driver", ...).
std::string cuda_unavailable_reason();
// The CUDA device's name, e.g. "NVIDIA H200" or "Kiln SIMT emulator".
std::string cuda_device_name();

// An owned allocation on one device; frees itself. Neither copyable nor movable.
class Buffer {
 public:
  Buffer(size_t bytes, Device device);
  ~Buffer();
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  Device device() const { return device_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  Device device_;
};

// Page-locked ("pinned") host memory (cudaMallocHost; plain aligned host memory without CUDA): the
// host side of copies that really run asynchronously, so a copy can overlap compute. Counted as a
// host allocation. Neither copyable nor movable.
class PinnedBuffer {
 public:
  explicit PinnedBuffer(size_t bytes);
  ~PinnedBuffer();
  PinnedBuffer(const PinnedBuffer&) = delete;
  PinnedBuffer& operator=(const PinnedBuffer&) = delete;
  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }

 private:
  void* data_ = nullptr;
  size_t bytes_ = 0;
  bool pinned_ = false;
};

void* allocate(size_t bytes, Device device);
void deallocate(void* ptr, Device device);
// Copies `bytes` between any two devices, ordered on `stream` (after the work queued on it so far):
//  - host → host: std::memcpy, at once;
//  - device → device: cudaMemcpyAsync on `stream`; returns at once, the copy runs in stream order
//    (later work on `stream` sees it; another stream or the host must synchronise first);
//  - host → device and device → host: cudaMemcpyAsync on `stream`, then the stream is synchronised,
//    so the call returns when the copy has finished: the host buffer may be reused (host → device)
//    or read (device → host) at once. CUDA does not promise either for pageable host memory after
//    cudaMemcpyAsync alone, and every host buffer Kiln copies is pageable.
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                Stream stream = current_stream());
// As copy_bytes, but never waits: every copy that touches the device is only queued on `stream`
// (cudaMemcpyAsync). The host side must stay untouched until the copy has run (an event recorded
// after it tells when), except a host → device copy out of pageable memory, which CUDA stages
// before the call returns. Host → host copies run at once.
void copy_bytes_async(void* dst, Device dst_device, const void* src, Device src_device,
                      size_t bytes, Stream stream = current_stream());
// Waits for all queued device work on every stream (no-op without CUDA). To wait for one stream,
// kiln::stream_synchronize (core/stream.h).
void device_synchronize();

struct AllocationStats {
  uint64_t host_allocations = 0, device_allocations = 0;
  uint64_t device_bytes_in_use = 0, device_bytes_peak = 0;
};
AllocationStats allocation_stats();

// Per-stream workspace: the temporary device memory of CUDA ops (split-K partials, reduction
// partials, the L2 norm's result). Each stream has one grow-only area of its own; it is not
// stream-ordered allocation (cudaMallocAsync), because a step captured into a CUDA graph must find
// the same addresses every time it is replayed.
//
// The contract, for every op that needs temporary memory:
//  - one request per op: the op computes the bytes of everything it needs, calls workspace() once
//    and carves the pieces from the one pointer. A second request could grow the area, freeing the
//    memory the first returned, and two requests that fit return the same memory (aliases);
//  - the pointer stays valid, and the memory is the op's alone, until the next request on the same
//    stream: the op's kernels, queued on `stream`, run in order, so the next op's kernels on that
//    stream start only after these have finished with it. Work on another stream must not use it;
//  - one host thread queues work on a stream at a time (the area has no owner besides the stream).
// Growing: when `bytes` is more than the area holds, the stream is synchronised (work queued on it
// may still be reading the old area), the old area freed and a larger one allocated. So the first
// step of a training loop allocates and every later step of the same shapes allocates nothing; a
// captured graph must be captured after a step outside capture has sized the areas (allocating and
// synchronising are not allowed while a stream is captured).
// Returns at least `bytes` (at least 1), 256-byte aligned. Needs a CUDA device.
//
// Each stream has two such areas, with the same contract each:
//  - WorkspaceArea::kernels: the temporaries of an op's kernels (split-K partials, reductions);
//  - WorkspaceArea::operands: converted copies of an op's operands that its kernels read (the bf16
//    copies of a bf16 convolution or linear op, kernels/precision.h). They must stay intact while
//    those kernels make their own request, so they live in an area of their own.
enum class WorkspaceArea { kernels, operands };
void* workspace(size_t bytes, Stream stream, WorkspaceArea area = WorkspaceArea::kernels);
// The size of `stream`'s area in bytes (0 when it has none yet).
size_t workspace_bytes(Stream stream, WorkspaceArea area = WorkspaceArea::kernels);
// Frees `stream`'s areas after synchronising the stream (CudaStream's destructor calls this; call
// it before destroying a stream you created with cudaStreamCreate yourself).
void release_workspace(Stream stream);
// Frees every stream's areas (synchronising each stream first). For tests that check an op's first
// run, which must grow the area from nothing.
void reset_workspace();

}  // namespace kiln
