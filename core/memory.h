// core/memory.h — the one place through which every Kiln allocation goes.
//
// Host memory is 64-byte aligned; device memory comes from cudaMalloc (the real runtime or the SIMT
// emulator's, which fills it with 0xFF so unwritten floats read as NaN). Counters let tests prove
// that a steady-state training step allocates nothing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

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

void* allocate(size_t bytes, Device device);
void deallocate(void* ptr, Device device);
// Copies `bytes` between any two devices (synchronous).
void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes);
// Waits for all queued device work (no-op without CUDA).
void device_synchronize();

struct AllocationStats {
  uint64_t host_allocations = 0, device_allocations = 0;
  uint64_t device_bytes_in_use = 0, device_bytes_peak = 0;
};
AllocationStats allocation_stats();

// A grow-only scratch area per device for kernels that need temporary space (split-K partials,
// im2col columns). Returns at least `bytes`; reallocates only when a larger size is requested, so a
// steady-state step allocates nothing. Not thread-safe; one user at a time.
void* scratch(size_t bytes, Device device);

}  // namespace kiln
