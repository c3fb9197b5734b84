// core/simt/cuda_runtime_shim.cpp — the CUDA runtime calls Kiln uses, implemented on the CPU.
//
// Code that includes <cuda_runtime.h> links against these extern "C" definitions instead of
// libcudart when it is built into kiln_emu (or any target linking kiln_simt). There is one device,
// "Kiln SIMT emulator"; device memory is host memory. Semantics worth knowing:
//   - cudaMalloc'd (and cudaMallocHost'd) memory is filled with 0xFF, so a float nothing wrote reads
//     as NaN; allocations are exact-sized, so AddressSanitizer bounds them;
//   - launches, copies, memsets and event records are queued on streams and run by the device
//     thread (device_queue.h), with CUDA's documented synchronisation behaviour of each call (which
//     copies are synchronous depends on the kind of memory: docs/simt.md, "Streams");
//   - errors are reported as CUDA would (return code + cudaGetLastError), never thrown; a failure of
//     queued work is sticky and returned by the synchronising calls.
#include <cuda_runtime.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <unordered_set>
#include <vector>

#include "device_queue.h"
#include "schedule.h"
#include "simt.h"

namespace sd = kiln::simt::detail;

namespace {

thread_local cudaError_t last_error = cudaSuccess;

// The sticky cudaErrorLaunchFailure lives with the device (device_queue.h), not here.
cudaError_t record(cudaError_t e) {
  if (e != cudaSuccess && e != cudaErrorLaunchFailure) last_error = e;
  return e;
}

struct Event {
  unsigned flags = 0;
  bool recorded = false;
  bool captured = false;  // last recorded on a stream under capture (a node of that capture)
  sd::OpPtr op;           // the marker queued by the last cudaEventRecord
};

// Live allocations (device and pinned host) by start address: cudaFree of an unknown pointer is an
// error, cudaMemGetInfo reports what is in use, and copies tell pinned from pageable host memory.
struct Allocation {
  std::size_t bytes;
  bool pinned;
};
struct Allocations {
  std::mutex mu;
  std::map<const char*, Allocation> live;
  std::size_t in_use = 0;
  std::unordered_set<const Event*> events;
};
Allocations& allocations() {
  static Allocations* a = new Allocations;  // never destroyed: frees may run during exit
  return *a;
}

enum class Memory { kDevice, kPinned, kPageable };

Memory memory_of(const void* p) {
  Allocations& a = allocations();
  const char* c = static_cast<const char*>(p);
  std::lock_guard<std::mutex> lock(a.mu);
  auto it = a.live.upper_bound(c);
  if (it == a.live.begin()) return Memory::kPageable;
  --it;
  if (c >= it->first + it->second.bytes) return Memory::kPageable;
  return it->second.pinned ? Memory::kPinned : Memory::kDevice;
}

std::size_t physical_memory() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page)
                               : std::size_t{16} << 30;
}

cudaError_t allocate(void** p, std::size_t bytes, bool pinned) {
  if (p == nullptr) return record(cudaErrorInvalidValue);
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  *p = nullptr;
  if (bytes == 0) return cudaSuccess;
  void* m = nullptr;
  if (posix_memalign(&m, 256, bytes) != 0) return record(cudaErrorMemoryAllocation);
  std::memset(m, 0xFF, bytes);
  Allocations& a = allocations();
  std::lock_guard<std::mutex> lock(a.mu);
  a.live.emplace(static_cast<const char*>(m), Allocation{bytes, pinned});
  a.in_use += bytes;
  *p = m;
  return cudaSuccess;
}

// cudaFree and cudaFreeHost synchronise the device first, as CUDA's do.
cudaError_t release(void* p, bool pinned) {
  if (p == nullptr) return cudaSuccess;
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  {
    Allocations& a = allocations();
    std::lock_guard<std::mutex> lock(a.mu);
    auto it = a.live.find(static_cast<const char*>(p));
    if (it == a.live.end() || it->second.pinned != pinned) return record(cudaErrorInvalidValue);
  }
  (void)sd::wait_device();  // a sticky error is reported by the next synchronising call
  Allocations& a = allocations();
  {
    std::lock_guard<std::mutex> lock(a.mu);
    auto it = a.live.find(static_cast<const char*>(p));
    if (it == a.live.end()) return record(cudaErrorInvalidValue);
    a.in_use -= it->second.bytes;
    a.live.erase(it);
  }
  std::free(p);
  return cudaSuccess;
}

// The direction of a copy, cudaMemcpyDefault resolved from the pointers; false for a bad kind.
bool resolve_kind(cudaMemcpyKind& kind, const void* dst, const void* src) {
  if (kind == cudaMemcpyDefault) {
    const bool d = memory_of(dst) == Memory::kDevice, s = memory_of(src) == Memory::kDevice;
    kind = d ? (s ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
             : (s ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
    return true;
  }
  return kind == cudaMemcpyHostToHost || kind == cudaMemcpyHostToDevice ||
         kind == cudaMemcpyDeviceToHost || kind == cudaMemcpyDeviceToDevice;
}

sd::OpPtr queue_copy(void* dst, const void* src, std::size_t count, cudaStream_t stream) {
  return sd::enqueue(stream, [dst, src, count] { std::memmove(dst, src, count); });
}

// Pageable host memory is staged at the call, so the caller may reuse it at once (as CUDA does).
sd::OpPtr queue_staged_copy(void* dst, const void* src, std::size_t count, cudaStream_t stream) {
  auto staged = std::make_shared<std::vector<char>>(static_cast<const char*>(src),
                                                    static_cast<const char*>(src) + count);
  return sd::enqueue(stream, [dst, staged] { std::memcpy(dst, staged->data(), staged->size()); });
}

// Waits until everything the stream's next operation would wait for has run (for a blocking or the
// legacy stream that includes the implicit ordering between them).
cudaError_t drain(cudaStream_t stream) {
  return sd::wait(sd::enqueue(stream, [] {}));
}

cudaError_t copy_checks(void* dst, const void* src, size_t count, cudaMemcpyKind& kind,
                        cudaStream_t stream) {
  if (!resolve_kind(kind, dst, src)) return cudaErrorInvalidMemcpyDirection;
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return e;
  if (count != 0 && (dst == nullptr || src == nullptr)) return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

namespace kiln::simt::detail {
void record_error(cudaError_t error) {
  record(error);
}
}  // namespace kiln::simt::detail

extern "C" {

cudaError_t cudaMalloc(void** devPtr, size_t size) {
  return allocate(devPtr, size, false);
}
cudaError_t cudaFree(void* devPtr) {
  return release(devPtr, false);
}
cudaError_t cudaMallocHost(void** ptr, size_t size) {
  return allocate(ptr, size, true);
}
cudaError_t cudaFreeHost(void* ptr) {
  return release(ptr, true);
}

// CUDA's rules for cudaMemcpy: host->host is synchronous; pageable host->device waits for the
// (legacy) stream, then copies out of the caller's buffer before returning; pinned host->device and
// device->host return when the copy is done; device->device is only queued.
cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  if (const cudaError_t e = copy_checks(dst, src, count, kind, nullptr); e != cudaSuccess)
    return record(e);
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  if (count == 0) return cudaSuccess;
  switch (kind) {
    case cudaMemcpyHostToHost:
    case cudaMemcpyHostToDevice:
      if (kind == cudaMemcpyHostToHost || memory_of(src) == Memory::kPageable) {
        const cudaError_t e = drain(nullptr);
        if (e != cudaSuccess) return record(e);
        std::memmove(dst, src, count);
        return cudaSuccess;
      }
      return record(sd::wait(queue_copy(dst, src, count, nullptr)));
    case cudaMemcpyDeviceToHost:
      return record(sd::wait(queue_copy(dst, src, count, nullptr)));
    default:
      queue_copy(dst, src, count, nullptr);
      return cudaSuccess;
  }
}

// cudaMemcpyAsync: host->host is synchronous; pageable host->device is staged at the call; every
// other copy (pinned host memory, device->pageable host, device->device) is only queued.
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                            cudaStream_t stream) {
  if (const cudaError_t e = copy_checks(dst, src, count, kind, stream); e != cudaSuccess)
    return record(e);
  if (const cudaError_t e = sd::capture_check(stream); e != cudaSuccess) return record(e);
  // Under capture a copy becomes a node that reads its source when the graph runs: a synchronous
  // host-to-host copy and pageable host memory (which CUDA stages at the call) cannot be captured.
  if (sd::capture_status(stream) != cudaStreamCaptureStatusNone &&
      (kind == cudaMemcpyHostToHost ||
       (kind == cudaMemcpyHostToDevice && memory_of(src) == Memory::kPageable) ||
       (kind == cudaMemcpyDeviceToHost && memory_of(dst) == Memory::kPageable))) {
    (void)sd::unsafe_call_check();
    return record(cudaErrorStreamCaptureUnsupported);
  }
  if (count == 0) return cudaSuccess;
  if (kind == cudaMemcpyHostToHost) {
    const cudaError_t e = drain(stream);
    if (e != cudaSuccess) return record(e);
    std::memmove(dst, src, count);
  } else if (kind == cudaMemcpyHostToDevice && memory_of(src) == Memory::kPageable) {
    queue_staged_copy(dst, src, count, stream);
  } else {
    queue_copy(dst, src, count, stream);
  }
  return cudaSuccess;
}

// cudaMemset is asynchronous for device memory and synchronous for host memory; cudaMemsetAsync is
// always asynchronous.
cudaError_t cudaMemset(void* devPtr, int value, size_t count) {
  if (count == 0) return cudaSuccess;
  if (devPtr == nullptr) return record(cudaErrorInvalidValue);
  if (memory_of(devPtr) == Memory::kDevice) {
    if (const cudaError_t e = sd::capture_check(nullptr); e != cudaSuccess) return record(e);
    sd::enqueue(nullptr, [devPtr, value, count] { std::memset(devPtr, value, count); });
    return cudaSuccess;
  }
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  const cudaError_t e = drain(nullptr);
  if (e != cudaSuccess) return record(e);
  std::memset(devPtr, value, count);
  return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream) {
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  if (const cudaError_t e = sd::capture_check(stream); e != cudaSuccess) return record(e);
  if (count == 0) return cudaSuccess;
  if (devPtr == nullptr) return record(cudaErrorInvalidValue);
  sd::enqueue(stream, [devPtr, value, count] { std::memset(devPtr, value, count); });
  return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* pStream) {
  return cudaStreamCreateWithFlags(pStream, cudaStreamDefault);
}
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* pStream, unsigned int flags) {
  if (pStream == nullptr || (flags & ~cudaStreamNonBlocking) != 0)
    return record(cudaErrorInvalidValue);
  *pStream = sd::create_stream((flags & cudaStreamNonBlocking) != 0);
  return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t stream) {
  if (stream == nullptr || stream == cudaStreamLegacy)
    return record(cudaErrorInvalidResourceHandle);
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  if (sd::capture_status(stream) != cudaStreamCaptureStatusNone)
    return record(cudaErrorStreamCaptureUnsupported);
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  return record(sd::destroy_stream(stream));
}
cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  if (sd::capture_status(stream) != cudaStreamCaptureStatusNone)
    return record(cudaErrorStreamCaptureUnsupported);  // a relaxed capture of this very stream
  return record(sd::wait_stream(stream));
}
cudaError_t cudaStreamQuery(cudaStream_t stream) {
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  if (sd::capture_status(stream) != cudaStreamCaptureStatusNone) {
    (void)sd::unsafe_call_check();
    return record(cudaErrorStreamCaptureUnsupported);
  }
  if (const cudaError_t e = sd::sticky_error(); e != cudaSuccess) return record(e);
  return sd::poll(sd::stream_tail(stream)) ? cudaSuccess : cudaErrorNotReady;
}

}  // extern "C"

namespace {

Event* event_of(cudaEvent_t event) {
  Allocations& a = allocations();
  std::lock_guard<std::mutex> lock(a.mu);
  auto* e = reinterpret_cast<Event*>(event);
  return a.events.count(e) != 0 ? e : nullptr;
}

}  // namespace

extern "C" {

cudaError_t cudaEventCreate(cudaEvent_t* event) {
  return cudaEventCreateWithFlags(event, cudaEventDefault);
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* event, unsigned int flags) {
  if (event == nullptr ||
      (flags & ~(cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess)) != 0)
    return record(cudaErrorInvalidValue);
  auto* e = new Event;
  e->flags = flags;
  Allocations& a = allocations();
  std::lock_guard<std::mutex> lock(a.mu);
  a.events.insert(e);
  *event = reinterpret_cast<cudaEvent_t>(e);
  return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t event) {
  Event* e = event_of(event);
  if (e == nullptr) return record(cudaErrorInvalidResourceHandle);
  Allocations& a = allocations();
  {
    std::lock_guard<std::mutex> lock(a.mu);
    a.events.erase(e);
  }
  delete e;  // a queued marker stays queued; it no longer has an event to complete
  return cudaSuccess;
}
// Queues a marker on the stream: the event completes when everything queued before it has run.
cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  Event* e = event_of(event);
  if (e == nullptr) return record(cudaErrorInvalidResourceHandle);
  if (const cudaError_t err = sd::check_stream(stream); err != cudaSuccess) return record(err);
  if (const cudaError_t err = sd::capture_check(stream); err != cudaSuccess) return record(err);
  e->captured = sd::capture_status(stream) != cudaStreamCaptureStatusNone;
  e->op = sd::enqueue(stream, [] {});
  e->recorded = true;
  return cudaSuccess;
}
cudaError_t cudaEventQuery(cudaEvent_t event) {
  Event* e = event_of(event);
  if (e == nullptr) return record(cudaErrorInvalidResourceHandle);
  if (e->captured) return record(cudaErrorStreamCaptureUnsupported);
  if (const cudaError_t err = sd::sticky_error(); err != cudaSuccess) return record(err);
  return sd::poll(e->op) ? cudaSuccess : cudaErrorNotReady;
}
cudaError_t cudaEventSynchronize(cudaEvent_t event) {
  Event* e = event_of(event);
  if (e == nullptr) return record(cudaErrorInvalidResourceHandle);
  if (e->captured) return record(cudaErrorStreamCaptureUnsupported);
  if (const cudaError_t err = sd::unsafe_call_check(); err != cudaSuccess) return record(err);
  return record(sd::wait(e->op));
}
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t start, cudaEvent_t end) {
  if (ms == nullptr) return record(cudaErrorInvalidValue);
  Event* a = event_of(start);
  Event* b = event_of(end);
  if (a == nullptr || b == nullptr || !a->recorded || !b->recorded ||
      ((a->flags | b->flags) & cudaEventDisableTiming) != 0)
    return record(cudaErrorInvalidResourceHandle);
  if (!sd::poll(a->op) || !sd::poll(b->op)) return record(cudaErrorNotReady);
  *ms = std::chrono::duration<float, std::milli>(sd::finished_at(b->op) - sd::finished_at(a->op))
            .count();
  return cudaSuccess;
}
// Work queued on `stream` after this call waits for the event's marker.
cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  Event* e = event_of(event);
  if (e == nullptr) return record(cudaErrorInvalidResourceHandle);
  if (flags != 0) return record(cudaErrorInvalidValue);
  if (const cudaError_t err = sd::check_stream(stream); err != cudaSuccess) return record(err);
  if (const cudaError_t err = sd::capture_check(stream); err != cudaSuccess) return record(err);
  const bool capturing = sd::capture_status(stream) != cudaStreamCaptureStatusNone;
  if (capturing && !e->captured && e->recorded) {
    (void)sd::unsafe_call_check();  // CUDA invalidates the capture
    return record(cudaErrorStreamCaptureIsolation);
  }
  // Joining another stream into a capture (waiting on a captured event from a stream that is not
  // capturing) is not emulated.
  if (!capturing && e->captured) return record(cudaErrorStreamCaptureUnsupported);
  if (!capturing && e->op != nullptr)
    sd::enqueue(
        stream, [] {}, e->op);
  return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize() {
  if (const cudaError_t e = sd::unsafe_call_check(); e != cudaSuccess) return record(e);
  return record(sd::wait_device());
}

// ---- stream capture and graphs ------------------------------------------------------------------
// A capture records the work queued on one stream, in order, as a chain of nodes; a graph launch
// queues the nodes on a stream in that order. Kernel nodes keep their arguments (by value) and a
// copy node its pointers, so a replay reads the memory as it is then.

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (stream == nullptr || stream == cudaStreamLegacy)
    return record(cudaErrorStreamCaptureUnsupported);
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  return record(sd::begin_capture(stream, mode));
}

cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (status == nullptr) return record(cudaErrorInvalidValue);
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  *status = sd::capture_status(stream);
  return cudaSuccess;
}

}  // extern "C"

namespace {
struct Graph {
  std::vector<sd::GraphNode> nodes;
};
struct GraphExec {
  std::vector<sd::GraphNode> nodes;
};
struct Graphs {
  std::mutex mu;
  std::unordered_set<const Graph*> graphs;
  std::unordered_set<const GraphExec*> execs;
};
Graphs& graphs() {
  static Graphs* g = new Graphs;
  return *g;
}
}  // namespace

extern "C" {

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph) {
  if (pGraph == nullptr) return record(cudaErrorInvalidValue);
  *pGraph = nullptr;
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  auto g = std::make_unique<Graph>();
  if (const cudaError_t e = sd::end_capture(stream, &g->nodes); e != cudaSuccess) return record(e);
  Graphs& all = graphs();
  std::lock_guard<std::mutex> lock(all.mu);
  all.graphs.insert(g.get());
  *pGraph = reinterpret_cast<cudaGraph_t>(g.release());
  return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t* pGraphExec, cudaGraph_t graph,
                                 unsigned long long flags) {
  if (pGraphExec == nullptr || flags != 0) return record(cudaErrorInvalidValue);
  Graphs& all = graphs();
  std::lock_guard<std::mutex> lock(all.mu);
  auto* g = reinterpret_cast<Graph*>(graph);
  if (all.graphs.count(g) == 0) return record(cudaErrorInvalidValue);
  auto* x = new GraphExec{g->nodes};
  all.execs.insert(x);
  *pGraphExec = reinterpret_cast<cudaGraphExec_t>(x);
  return cudaSuccess;
}

cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* numNodes) {
  if (numNodes == nullptr || nodes != nullptr) return record(cudaErrorInvalidValue);
  Graphs& all = graphs();
  std::lock_guard<std::mutex> lock(all.mu);
  auto* g = reinterpret_cast<Graph*>(graph);
  if (all.graphs.count(g) == 0) return record(cudaErrorInvalidValue);
  *numNodes = g->nodes.size();
  return cudaSuccess;
}

cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
  if (const cudaError_t e = sd::check_stream(stream); e != cudaSuccess) return record(e);
  if (sd::capture_status(stream) != cudaStreamCaptureStatusNone)
    return record(cudaErrorStreamCaptureUnsupported);  // a graph inside a capture: not emulated
  if (const cudaError_t e = sd::capture_check(stream); e != cudaSuccess) return record(e);
  Graphs& all = graphs();
  std::vector<sd::GraphNode> nodes;
  {
    std::lock_guard<std::mutex> lock(all.mu);
    auto* x = reinterpret_cast<GraphExec*>(graphExec);
    if (all.execs.count(x) == 0) return record(cudaErrorInvalidResourceHandle);
    nodes = x->nodes;
  }
  sd::launch_graph(stream, nodes);
  return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
  Graphs& all = graphs();
  std::lock_guard<std::mutex> lock(all.mu);
  auto* x = reinterpret_cast<GraphExec*>(graphExec);
  if (all.execs.erase(x) == 0) return record(cudaErrorInvalidResourceHandle);
  delete x;  // queued replays hold their own copies of the nodes
  return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  Graphs& all = graphs();
  std::lock_guard<std::mutex> lock(all.mu);
  auto* g = reinterpret_cast<Graph*>(graph);
  if (all.graphs.erase(g) == 0) return record(cudaErrorInvalidValue);
  delete g;
  return cudaSuccess;
}

cudaError_t cudaGetDeviceCount(int* count) {
  if (count == nullptr) return record(cudaErrorInvalidValue);
  *count = 1;
  return cudaSuccess;
}
cudaError_t cudaGetDevice(int* device) {
  if (device == nullptr) return record(cudaErrorInvalidValue);
  *device = 0;
  return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) {
  return device == 0 ? cudaSuccess : record(cudaErrorInvalidDevice);
}

cudaError_t cudaGetDeviceProperties(cudaDeviceProp* prop, int device) {
  if (prop == nullptr) return record(cudaErrorInvalidValue);
  if (device != 0) return record(cudaErrorInvalidDevice);
  std::memset(prop, 0, sizeof(*prop));
  std::strncpy(prop->name, "Kiln SIMT emulator", sizeof(prop->name) - 1);
  prop->totalGlobalMem = physical_memory();
  prop->sharedMemPerBlock = 48 * 1024;
  prop->sharedMemPerBlockOptin = 227 * 1024;
  prop->sharedMemPerMultiprocessor = 228 * 1024;
  prop->regsPerBlock = 65536;
  prop->regsPerMultiprocessor = 65536;
  prop->warpSize = 32;
  prop->memPitch = SIZE_MAX;
  prop->maxThreadsPerBlock = 1024;
  prop->maxThreadsDim[0] = 1024;
  prop->maxThreadsDim[1] = 1024;
  prop->maxThreadsDim[2] = 64;
  prop->maxGridSize[0] = 2147483647;
  prop->maxGridSize[1] = 65535;
  prop->maxGridSize[2] = 65535;
  prop->totalConstMem = 64 * 1024;
  prop->major = 9;
  prop->minor = 0;
  prop->textureAlignment = 512;
  prop->multiProcessorCount = kiln::simt::worker_count();
  prop->maxThreadsPerMultiProcessor = 2048;
  prop->maxBlocksPerMultiProcessor = 32;
  prop->l2CacheSize = 50 * 1024 * 1024;
  prop->memoryBusWidth = 5120;
  prop->concurrentKernels = 0;
  prop->unifiedAddressing = 1;
  prop->managedMemory = 0;
  prop->integrated = 1;
  prop->canMapHostMemory = 1;
  return cudaSuccess;
}

cudaError_t cudaMemGetInfo(size_t* free, size_t* total) {
  if (free == nullptr || total == nullptr) return record(cudaErrorInvalidValue);
  *total = physical_memory();
  Allocations& a = allocations();
  std::lock_guard<std::mutex> lock(a.mu);
  *free = a.in_use < *total ? *total - a.in_use : 0;
  return cudaSuccess;
}

cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  return record(kiln::simt::detail::set_kernel_attribute(func, attr, value));
}

// A sticky error (a failure of queued work) is returned, and not cleared, by both.
cudaError_t cudaGetLastError() {
  if (const cudaError_t sticky = sd::sticky_error(); sticky != cudaSuccess) return sticky;
  const cudaError_t e = last_error;
  last_error = cudaSuccess;
  return e;
}
cudaError_t cudaPeekAtLastError() {
  if (const cudaError_t sticky = sd::sticky_error(); sticky != cudaSuccess) return sticky;
  return last_error;
}

const char* cudaGetErrorName(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "cudaSuccess";
    case cudaErrorInvalidValue:
      return "cudaErrorInvalidValue";
    case cudaErrorMemoryAllocation:
      return "cudaErrorMemoryAllocation";
    case cudaErrorInvalidDevice:
      return "cudaErrorInvalidDevice";
    case cudaErrorInvalidMemcpyDirection:
      return "cudaErrorInvalidMemcpyDirection";
    case cudaErrorInvalidResourceHandle:
      return "cudaErrorInvalidResourceHandle";
    case cudaErrorInvalidConfiguration:
      return "cudaErrorInvalidConfiguration";
    case cudaErrorNoDevice:
      return "cudaErrorNoDevice";
    case cudaErrorInsufficientDriver:
      return "cudaErrorInsufficientDriver";
    case cudaErrorNotReady:
      return "cudaErrorNotReady";
    case cudaErrorLaunchFailure:
      return "cudaErrorLaunchFailure";
    case cudaErrorNotSupported:
      return "cudaErrorNotSupported";
    case cudaErrorInvalidDeviceFunction:
      return "cudaErrorInvalidDeviceFunction";
    case cudaErrorLaunchOutOfResources:
      return "cudaErrorLaunchOutOfResources";
    case cudaErrorIllegalState:
      return "cudaErrorIllegalState";
    case cudaErrorStreamCaptureUnsupported:
      return "cudaErrorStreamCaptureUnsupported";
    case cudaErrorStreamCaptureInvalidated:
      return "cudaErrorStreamCaptureInvalidated";
    case cudaErrorStreamCaptureIsolation:
      return "cudaErrorStreamCaptureIsolation";
    case cudaErrorStreamCaptureImplicit:
      return "cudaErrorStreamCaptureImplicit";
    default:
      return "cudaErrorUnknown";
  }
}
const char* cudaGetErrorString(cudaError_t error) {
  switch (error) {
    case cudaSuccess:
      return "no error";
    case cudaErrorInvalidValue:
      return "invalid argument";
    case cudaErrorMemoryAllocation:
      return "out of memory";
    case cudaErrorInvalidDevice:
      return "invalid device ordinal";
    case cudaErrorInvalidMemcpyDirection:
      return "invalid copy direction for memcpy";
    case cudaErrorInvalidResourceHandle:
      return "invalid resource handle";
    case cudaErrorInvalidConfiguration:
      return "invalid configuration argument";
    case cudaErrorNoDevice:
      return "no CUDA-capable device is detected";
    case cudaErrorInsufficientDriver:
      return "CUDA driver version is insufficient for CUDA runtime version";
    case cudaErrorNotReady:
      return "device not ready";
    case cudaErrorLaunchFailure:
      return "unspecified launch failure";
    case cudaErrorNotSupported:
      return "operation not supported";
    case cudaErrorInvalidDeviceFunction:
      return "invalid device function";
    case cudaErrorLaunchOutOfResources:
      return "too many resources requested for launch";
    case cudaErrorIllegalState:
      return "the operation is not permitted in the current state";
    case cudaErrorStreamCaptureUnsupported:
    case cudaErrorStreamCaptureInvalidated:
    case cudaErrorStreamCaptureIsolation:
    case cudaErrorStreamCaptureImplicit:
      return sd::capture_error_text(error);
    default:
      return "unknown error";
  }
}

}  // extern "C"
