// core/simt/device_queue.cpp — streams, their dependencies and the device thread (device_queue.h).
#include "device_queue.h"

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <exception>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "schedule.h"

namespace kiln::simt {
namespace detail {

namespace {
using Clock = std::chrono::steady_clock;
struct StreamRec;

// The counts of counts() (schedule.h): every call that blocks the host on device work (whether or
// not the work had already finished: the call is the synchronisation), every query that finds work
// pending (a polling loop is a host wait too), every grid queued.
std::atomic<std::uint64_t> g_host_syncs{0}, g_launches{0}, g_graph_launches{0};

struct Capture {
  cudaStreamCaptureMode mode = cudaStreamCaptureModeGlobal;
  bool invalid = false;
  std::vector<GraphNode> nodes;
};
}  // namespace

struct Op {
  std::uint64_t seq = 0;
  StreamRec* stream = nullptr;
  Work work;
  std::vector<OpPtr> deps;  // operations of other streams that must run first
  bool released = false;    // check mode: a synchronisation needs it
  bool polled = false;      // a query found it pending once
  bool running = false;
  bool done = false;
  Clock::time_point finished{};
};

namespace {

struct StreamRec {
  bool legacy = false;
  bool non_blocking = false;
  std::unique_ptr<Capture> capture;  // set while the stream is capturing
  std::deque<OpPtr> pending;         // queued and not finished, in stream order
};

StreamMode mode_from_env() {
  const char* env = std::getenv("KILN_SIMT_STREAMS");
  if (env == nullptr || *env == '\0') return StreamMode::kAsync;
  const std::string v(env);
  if (v == "async") return StreamMode::kAsync;
  if (v == "check") return StreamMode::kCheck;
  if (v == "sync") return StreamMode::kSync;
  KILN_FAIL("KILN_SIMT_STREAMS must be async, check or sync, not '", v, "'");
}

struct Device {
  std::mutex mu;
  std::condition_variable work_cv;  // the device thread waits here for runnable work
  std::condition_variable done_cv;  // hosts wait here for operations to finish
  StreamRec legacy;
  std::vector<StreamRec*> streams;  // created streams (the legacy stream is not in it)
  std::uint64_t next_seq = 1;
  std::uint64_t released_upto = 0;  // every operation with seq <= this may run
  StreamMode mode = mode_from_env();
  cudaError_t error = cudaSuccess;
  std::string message;
  std::thread thread;
  bool started = false;
  bool stop = false;

  Device() { legacy.legacy = true; }
};

// Never destroyed: operations may still be queued while static objects are torn down.
Device& device() {
  static Device* d = new Device;
  return *d;
}

StreamRec* resolve(Device& d, cudaStream_t s) {
  if (s == nullptr || s == cudaStreamLegacy) return &d.legacy;
  auto* rec = reinterpret_cast<StreamRec*>(s);
  return std::find(d.streams.begin(), d.streams.end(), rec) != d.streams.end() ? rec : nullptr;
}

bool runnable(const Device& d, const Op& op) {
  if (op.running || !(op.released || op.seq <= d.released_upto)) return false;
  if (op.stream->pending.front().get() != &op) return false;
  return std::all_of(op.deps.begin(), op.deps.end(), [](const OpPtr& p) { return p->done; });
}

// The next operation to run: the oldest runnable one, or in check mode the newest (the stream
// queued most recently goes first).
Op* pick(Device& d) {
  Op* best = nullptr;
  auto consider = [&](StreamRec* s) {
    if (s->pending.empty()) return;
    Op* op = s->pending.front().get();
    if (!runnable(d, *op)) return;
    if (best == nullptr ||
        (d.mode == StreamMode::kCheck ? op->seq > best->seq : op->seq < best->seq))
      best = op;
  };
  consider(&d.legacy);
  for (StreamRec* s : d.streams) consider(s);
  return best;
}

std::string describe(std::exception_ptr e) {
  try {
    std::rethrow_exception(e);
  } catch (const kiln::Error& k) {
    std::string where = k.file().empty() ? "" : k.file() + ":" + std::to_string(k.line());
    return std::string(k.what()) + (where.empty() ? "" : " (at " + where + ")");
  } catch (const std::exception& x) {
    return x.what();
  } catch (...) {
    return "a kernel threw an exception that is not a std::exception";
  }
}

void device_loop(Device& d) {
  std::unique_lock<std::mutex> lock(d.mu);
  for (;;) {
    if (d.stop) return;
    Op* op = pick(d);
    if (op == nullptr) {
      d.work_cv.wait(lock);
      continue;
    }
    op->running = true;
    const bool skip = d.error != cudaSuccess;
    Work work = std::move(op->work);
    lock.unlock();
    std::exception_ptr failure;
    if (!skip) {
      try {
        work();
      } catch (...) {
        failure = std::current_exception();
      }
    }
    work = nullptr;  // frees the kernel's arguments, staging buffers, ... outside the lock
    const Clock::time_point t = Clock::now();
    std::string what = failure ? describe(failure) : std::string();
    lock.lock();
    if (failure && d.error == cudaSuccess) {
      d.error = cudaErrorLaunchFailure;
      d.message = std::move(what);
    }
    op->finished = t;
    op->running = false;
    op->done = true;
    op->deps.clear();
    op->stream->pending.pop_front();
    d.done_cv.notify_all();
  }
}

void stop_device() {
  Device& d = device();
  {
    std::lock_guard<std::mutex> lock(d.mu);
    d.stop = true;
  }
  d.work_cv.notify_all();
  if (d.thread.joinable()) d.thread.join();
  // Work never awaited is dropped, so that a static object's cudaFree during exit cannot wait for
  // it forever; what is queued from now on runs on the caller (see enqueue).
  std::lock_guard<std::mutex> lock(d.mu);
  auto drop = [](StreamRec& s) {
    for (const OpPtr& op : s.pending) {
      op->done = true;
      op->deps.clear();
    }
    s.pending.clear();
  };
  drop(d.legacy);
  for (StreamRec* s : d.streams) drop(*s);
  d.done_cv.notify_all();
}

void start_device(Device& d) {
  if (d.started) return;
  d.started = true;
  d.thread = std::thread([&d] { device_loop(d); });
  std::atexit(stop_device);  // lets a running operation finish; what was never awaited is dropped
}

// Check mode: marks `target`, its stream predecessors and (transitively) their dependencies as
// needed. A released operation's predecessors are always released too.
void release(Device& d, Op* target) {
  if (d.mode != StreamMode::kCheck) {
    d.released_upto = d.next_seq - 1;
    return;
  }
  std::vector<Op*> todo{target};
  while (!todo.empty()) {
    Op* t = todo.back();
    todo.pop_back();
    if (t->released || t->done) continue;
    for (const OpPtr& p : t->stream->pending) {
      if (!p->released) {
        p->released = true;
        for (const OpPtr& dep : p->deps) todo.push_back(dep.get());
      }
      if (p.get() == t) break;
    }
  }
}

void wait_locked(Device& d, std::unique_lock<std::mutex>& lock, Op* op) {
  if (op->done) return;
  release(d, op);
  d.work_cv.notify_one();
  d.done_cv.wait(lock, [&] { return op->done; });
}

}  // namespace

cudaError_t check_stream(cudaStream_t stream) {
  if (stream == cudaStreamPerThread) return cudaErrorNotSupported;
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  return resolve(d, stream) != nullptr ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaStream_t create_stream(bool non_blocking) {
  Device& d = device();
  auto* rec = new StreamRec;
  rec->non_blocking = non_blocking;
  std::lock_guard<std::mutex> lock(d.mu);
  d.streams.push_back(rec);
  return reinterpret_cast<cudaStream_t>(rec);
}

cudaError_t destroy_stream(cudaStream_t stream) {
  const cudaError_t e = wait_stream(stream);
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  auto* rec = reinterpret_cast<StreamRec*>(stream);
  d.streams.erase(std::find(d.streams.begin(), d.streams.end(), rec));
  delete rec;
  return e;
}

OpPtr enqueue(cudaStream_t stream, Work work, const OpPtr& after, OpKind kind) {
  Device& d = device();
  auto op = std::make_shared<Op>();
  std::unique_lock<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  if (rec != nullptr && rec->capture) {
    if (!rec->capture->invalid) rec->capture->nodes.push_back({std::move(work), kind});
    op->done = true;
    return op;
  }
  if (kind == OpKind::kKernel) g_launches.fetch_add(1, std::memory_order_relaxed);
  if (d.mode == StreamMode::kSync || d.stop) {
    const bool skip = d.error != cudaSuccess;
    lock.unlock();
    if (!skip) work();  // exceptions reach the caller
    op->finished = Clock::now();
    op->done = true;
    return op;
  }
  op->seq = d.next_seq++;
  op->stream = rec;
  op->work = std::move(work);
  if (after && !after->done) op->deps.push_back(after);
  if (rec->legacy) {
    for (StreamRec* s : d.streams)
      if (!s->non_blocking && !s->pending.empty()) op->deps.push_back(s->pending.back());
  } else if (!rec->non_blocking && !d.legacy.pending.empty()) {
    op->deps.push_back(d.legacy.pending.back());
  }
  rec->pending.push_back(op);
  start_device(d);
  return op;
}

cudaError_t begin_capture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return cudaErrorInvalidValue;
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  if (rec == nullptr) return cudaErrorInvalidResourceHandle;
  if (rec->legacy) return cudaErrorStreamCaptureUnsupported;
  if (rec->capture) return cudaErrorIllegalState;
  rec->capture = std::make_unique<Capture>();
  rec->capture->mode = mode;
  return cudaSuccess;
}

cudaError_t end_capture(cudaStream_t stream, std::vector<GraphNode>* nodes) {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  if (rec == nullptr) return cudaErrorInvalidResourceHandle;
  if (!rec->capture) return cudaErrorIllegalState;
  std::unique_ptr<Capture> c = std::move(rec->capture);
  if (c->invalid) return cudaErrorStreamCaptureInvalidated;
  *nodes = std::move(c->nodes);
  return cudaSuccess;
}

cudaStreamCaptureStatus capture_status(cudaStream_t stream) {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  if (rec == nullptr || !rec->capture) return cudaStreamCaptureStatusNone;
  return rec->capture->invalid ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive;
}

cudaError_t capture_check(cudaStream_t stream) {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  if (rec == nullptr) return cudaSuccess;  // check_stream reports it
  if (rec->capture) return rec->capture->invalid ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
  if (!rec->legacy) return cudaSuccess;
  bool implicit = false;
  for (StreamRec* s : d.streams) {
    if (s->capture && !s->non_blocking) {
      s->capture->invalid = true;
      implicit = true;
    }
  }
  return implicit ? cudaErrorStreamCaptureImplicit : cudaSuccess;
}

cudaError_t unsafe_call_check() {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  bool unsafe = false;
  for (StreamRec* s : d.streams) {
    if (s->capture && s->capture->mode != cudaStreamCaptureModeRelaxed) {
      s->capture->invalid = true;
      unsafe = true;
    }
  }
  return unsafe ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
}

const char* capture_error_text(cudaError_t error) {
  switch (error) {
    case cudaErrorStreamCaptureUnsupported:
      return "the call is not allowed while a stream is being captured (a synchronisation, a "
             "synchronous copy, an allocation or a free, or capturing the legacy stream); the "
             "capture is invalidated: do it before cudaStreamBeginCapture or after "
             "cudaStreamEndCapture";
    case cudaErrorStreamCaptureInvalidated:
      return "the stream's capture was invalidated by an earlier illegal call; end it "
             "(cudaStreamEndCapture fails) and capture again";
    case cudaErrorStreamCaptureImplicit:
      return "work on the legacy stream would depend on a blocking stream under capture; queue it "
             "on another stream, or capture a non-blocking stream";
    case cudaErrorStreamCaptureIsolation:
      return "the captured stream would wait for an event recorded outside the capture; record "
             "it inside the capture, or wait before cudaStreamBeginCapture";
    default:
      return "stream capture error";
  }
}

void launch_graph(cudaStream_t stream, const std::vector<GraphNode>& nodes) {
  g_graph_launches.fetch_add(1, std::memory_order_relaxed);
  for (const GraphNode& n : nodes) enqueue(stream, n.work, nullptr, n.kind);
}

cudaError_t wait(const OpPtr& op) {
  g_host_syncs.fetch_add(1, std::memory_order_relaxed);
  Device& d = device();
  std::unique_lock<std::mutex> lock(d.mu);
  if (op) wait_locked(d, lock, op.get());
  return d.error;
}

cudaError_t wait_stream(cudaStream_t stream) {
  g_host_syncs.fetch_add(1, std::memory_order_relaxed);
  Device& d = device();
  std::unique_lock<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  if (rec != nullptr && !rec->pending.empty()) {
    const OpPtr tail = rec->pending.back();
    wait_locked(d, lock, tail.get());
  }
  return d.error;
}

cudaError_t wait_device() {
  g_host_syncs.fetch_add(1, std::memory_order_relaxed);
  Device& d = device();
  std::unique_lock<std::mutex> lock(d.mu);
  auto idle = [&] {
    if (!d.legacy.pending.empty()) return false;
    return std::all_of(d.streams.begin(), d.streams.end(),
                       [](const StreamRec* s) { return s->pending.empty(); });
  };
  if (!idle()) {
    d.released_upto = d.next_seq - 1;
    d.work_cv.notify_one();
    d.done_cv.wait(lock, idle);
  }
  return d.error;
}

bool poll(const OpPtr& op) {
  if (!op) return true;
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  if (op->done) return true;
  g_host_syncs.fetch_add(1, std::memory_order_relaxed);
  // The first query leaves the work queued (so it reliably reports it pending); a second one is a
  // host waiting for it, and lets the device start it.
  if (!op->polled) {
    op->polled = true;
    return false;
  }
  release(d, op.get());
  d.work_cv.notify_one();
  return false;
}

OpPtr stream_tail(cudaStream_t stream) {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  StreamRec* rec = resolve(d, stream);
  return rec == nullptr || rec->pending.empty() ? nullptr : rec->pending.back();
}

std::chrono::steady_clock::time_point finished_at(const OpPtr& op) {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  return op->finished;
}

cudaError_t sticky_error() {
  Device& d = device();
  std::lock_guard<std::mutex> lock(d.mu);
  return d.error;
}

}  // namespace detail

DeviceCounts counts() {
  return {detail::g_launches.load(std::memory_order_relaxed),
          detail::g_host_syncs.load(std::memory_order_relaxed),
          detail::g_graph_launches.load(std::memory_order_relaxed)};
}

void set_stream_mode(StreamMode mode) {
  detail::wait_device();
  detail::Device& d = detail::device();
  std::lock_guard<std::mutex> lock(d.mu);
  d.mode = mode;
}

StreamMode stream_mode() {
  detail::Device& d = detail::device();
  std::lock_guard<std::mutex> lock(d.mu);
  return d.mode;
}

const char* to_string(StreamMode mode) {
  switch (mode) {
    case StreamMode::kAsync:
      return "async";
    case StreamMode::kCheck:
      return "check";
    case StreamMode::kSync:
      return "sync";
  }
  return "?";
}

std::string device_error() {
  detail::Device& d = detail::device();
  std::lock_guard<std::mutex> lock(d.mu);
  return d.message;
}

void clear_device_error() {
  detail::wait_device();
  detail::Device& d = detail::device();
  std::lock_guard<std::mutex> lock(d.mu);
  d.error = cudaSuccess;
  d.message.clear();
}

}  // namespace kiln::simt

// The hook core/cuda_check.h calls (through a weak reference, so code linked against the real
// runtime does not need it): the sticky error's message when `error` is the sticky error.
extern "C" const char* kiln_simt_error_message(cudaError_t error) {
  kiln::simt::detail::Device& d = kiln::simt::detail::device();
  std::lock_guard<std::mutex> lock(d.mu);
  return error != cudaSuccess && error == d.error ? d.message.c_str() : nullptr;
}
