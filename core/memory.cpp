// core/memory.cpp — allocation, copies and device queries (see memory.h).
#include "core/memory.h"
#include "core/workspace_counters.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_map>

#include "core/bytes.h"
#include "core/error.h"

#if KILN_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace kiln {

namespace {
std::atomic<uint64_t> g_host_allocations{0}, g_device_allocations{0};
std::atomic<uint64_t> g_device_in_use{0}, g_device_peak{0};

void require_cuda() {
  KILN_CHECK(cuda_available(), "the CUDA device is not available: ", cuda_unavailable_reason(),
             ". Use the CPU (Device::cpu, --device cpu) instead.");
}
}  // namespace

const char* device_name(Device device) {
  return device == Device::cpu ? "cpu" : "cuda";
}

Device parse_device(const std::string& name) {
  if (name == "cpu") return Device::cpu;
  if (name == "cuda") return Device::cuda;
  KILN_FAIL("unknown device '", name, "': expected 'cpu' or 'cuda'");
}

#if KILN_WITH_CUDA
namespace {
// Asked once: the answer does not change during a process.
struct CudaProbe {
  bool ok = false;
  std::string reason, name;
  CudaProbe() {
    int count = 0;
    cudaError_t err = cudaGetDeviceCount(&count);
    if (err != cudaSuccess) {
      // No driver answers cudaErrorInsufficientDriver rather than cudaErrorNoDevice: all mean "no GPU".
      reason = std::string("no usable CUDA device (") + cudaGetErrorName(err) + ": " +
               cudaGetErrorString(err) + ")";
      (void)cudaGetLastError();
      return;
    }
    if (count == 0) {
      reason = "no CUDA device found";
      return;
    }
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, 0) == cudaSuccess) name = prop.name;
    ok = true;
  }
};
const CudaProbe& probe() {
  static const CudaProbe p;
  return p;
}
}  // namespace
bool cuda_available() {
  return probe().ok;
}
std::string cuda_unavailable_reason() {
  return probe().ok ? "" : probe().reason;
}
std::string cuda_device_name() {
  return probe().name;
}
#else
bool cuda_available() {
  return false;
}
std::string cuda_unavailable_reason() {
  return "Kiln was built without CUDA (reconfigure with -DKILN_CUDA=ON)";
}
std::string cuda_device_name() {
  return "";
}
#endif

std::string byte_count(uint64_t bytes) {
  char buf[64];
  if (bytes >= 1'000'000)
    std::snprintf(buf, sizeof buf, "%.1f MB (%llu bytes)", double(bytes) / 1e6,
                  static_cast<unsigned long long>(bytes));
  else
    std::snprintf(buf, sizeof buf, "%llu bytes", static_cast<unsigned long long>(bytes));
  return buf;
}

void* allocate(size_t bytes, Device device) {
  if (bytes == 0) bytes = 1;
  if (device == Device::cpu) {
    void* p = bytes <= SIZE_MAX - 63 ? std::aligned_alloc(64, (bytes + 63) / 64 * 64) : nullptr;
    KILN_CHECK(p != nullptr, "out of host memory allocating ", byte_count(bytes));
    ++g_host_allocations;
    return p;
  }
  require_cuda();
#if KILN_WITH_CUDA
  void* p = nullptr;
  cudaError_t err = cudaMalloc(&p, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    KILN_FAIL("out of device memory allocating ", byte_count(bytes), " (", cudaGetErrorString(err),
              "): reduce the batch size or the model width");
  }
  ++g_device_allocations;
  uint64_t now = g_device_in_use += bytes;
  uint64_t peak = g_device_peak.load();
  while (now > peak && !g_device_peak.compare_exchange_weak(peak, now)) {
  }
  return p;
#else
  return nullptr;
#endif
}

void deallocate(void* ptr, Device device) {
  if (ptr == nullptr) return;
  if (device == Device::cpu) {
    std::free(ptr);
    return;
  }
#if KILN_WITH_CUDA
  cudaFree(ptr);  // never throws from a destructor path
#endif
}

Buffer::Buffer(size_t bytes, Device device)
    : data_(allocate(bytes, device)), bytes_(bytes), device_(device) {}

Buffer::~Buffer() {
  deallocate(data_, device_);
#if KILN_WITH_CUDA
  if (device_ == Device::cuda) g_device_in_use -= bytes_;
#endif
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t bytes,
                Stream stream) {
  copy_bytes_async(dst, dst_device, src, src_device, bytes, stream);
  // A copy that touches (pageable) host memory may still be running when cudaMemcpyAsync returns.
  if (bytes != 0 && (dst_device == Device::cpu) != (src_device == Device::cpu))
    stream_synchronize(stream);
}

void copy_bytes_async(void* dst, Device dst_device, const void* src, Device src_device,
                      size_t bytes, Stream stream) {
  if (bytes == 0) return;
  if (dst_device == Device::cpu && src_device == Device::cpu) {
    std::memcpy(dst, src, bytes);
    return;
  }
  require_cuda();
#if KILN_WITH_CUDA
  const cudaMemcpyKind kind = dst_device == Device::cpu   ? cudaMemcpyDeviceToHost
                              : src_device == Device::cpu ? cudaMemcpyHostToDevice
                                                          : cudaMemcpyDeviceToDevice;
  KILN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, kind, stream));
#else
  (void)stream;
#endif
}

PinnedBuffer::PinnedBuffer(size_t bytes) : bytes_(bytes) {
  if (bytes == 0) bytes = 1;
#if KILN_WITH_CUDA
  if (cuda_available()) {
    const cudaError_t err = cudaMallocHost(&data_, bytes);
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      KILN_FAIL("out of page-locked host memory allocating ", byte_count(bytes), " (",
                cudaGetErrorString(err), "): reduce the batch size");
    }
    ++g_host_allocations;
    pinned_ = true;
    return;
  }
#endif
  data_ = allocate(bytes, Device::cpu);
}

PinnedBuffer::~PinnedBuffer() {
  if (pinned_) {
#if KILN_WITH_CUDA
    cudaFreeHost(data_);  // never throws from a destructor
#endif
    return;
  }
  deallocate(data_, Device::cpu);
}

void device_synchronize() {
#if KILN_WITH_CUDA
  if (cuda_available()) KILN_CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

AllocationStats allocation_stats() {
  return {g_host_allocations.load(), g_device_allocations.load(), g_device_in_use.load(),
          g_device_peak.load()};
}

namespace {
// The workspace areas: two per stream that has asked for one (WorkspaceArea), and the stream's
// zeroed counters (workspace_counters()).
struct WorkspaceAreas {
  std::mutex mutex;
  std::unordered_map<Stream, std::array<std::unique_ptr<Buffer>, 2>> areas;
  std::unordered_map<Stream, std::unique_ptr<Buffer>> counters;
};
WorkspaceAreas& workspace_areas() {
  static WorkspaceAreas w;
  return w;
}

// Grows `area` (of `stream`) to at least `bytes` (rounded up to 256); a new area is zero-filled
// when `zero` is set.
void* grow_area(std::unique_ptr<Buffer>& area, size_t bytes, Stream stream, bool zero) {
  require_cuda();
  constexpr size_t kGranule = 256;
  bytes = (std::max<size_t>(bytes, 1) + kGranule - 1) / kGranule * kGranule;
  if (!area || area->bytes() < bytes) {
    // Kernels queued earlier on this stream may still read or write the old area.
    if (area) stream_synchronize(stream);
    area.reset();
    area = std::make_unique<Buffer>(bytes, Device::cuda);
#if KILN_WITH_CUDA
    if (zero) KILN_CUDA_CHECK(cudaMemset(area->data(), 0, bytes));
#else
    (void)zero;  // require_cuda() has thrown: no device area exists in a build without CUDA
#endif
  }
  return area->data();
}

}  // namespace

void* workspace(size_t bytes, Stream stream, WorkspaceArea which) {
  WorkspaceAreas& w = workspace_areas();
  std::lock_guard<std::mutex> lock(w.mutex);
  return grow_area(w.areas[stream][static_cast<size_t>(which)], bytes, stream, false);
}

int* workspace_counters(int64_t count, Stream stream) {
  KILN_CHECK(count >= 0, "workspace_counters: negative count ", count);
  WorkspaceAreas& w = workspace_areas();
  std::lock_guard<std::mutex> lock(w.mutex);
  return static_cast<int*>(
      grow_area(w.counters[stream], static_cast<size_t>(count) * sizeof(int), stream, true));
}

size_t workspace_bytes(Stream stream, WorkspaceArea which) {
  WorkspaceAreas& w = workspace_areas();
  std::lock_guard<std::mutex> lock(w.mutex);
  auto it = w.areas.find(stream);
  if (it == w.areas.end()) return 0;
  const std::unique_ptr<Buffer>& area = it->second[static_cast<size_t>(which)];
  return area ? area->bytes() : 0;
}

void release_workspace(Stream stream) {
  WorkspaceAreas& w = workspace_areas();
  std::array<std::unique_ptr<Buffer>, 2> areas;
  std::unique_ptr<Buffer> counters;
  {
    std::lock_guard<std::mutex> lock(w.mutex);
    auto it = w.areas.find(stream);
    const bool have_areas = it != w.areas.end();
    if (have_areas) {
      areas = std::move(it->second);
      w.areas.erase(it);
    }
    auto ct = w.counters.find(stream);
    const bool have_counters = ct != w.counters.end();
    if (have_counters) {
      counters = std::move(ct->second);
      w.counters.erase(ct);
    }
    if (!have_areas && !have_counters) return;
  }
  stream_synchronize(stream);
}

void reset_workspace() {
  WorkspaceAreas& w = workspace_areas();
  std::lock_guard<std::mutex> lock(w.mutex);
  for (auto& [stream, area] : w.areas) stream_synchronize(stream);
  for (auto& [stream, area] : w.counters) stream_synchronize(stream);
  w.areas.clear();
  w.counters.clear();
}

}  // namespace kiln
