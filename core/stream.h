// core/stream.h — CUDA streams in Kiln: the stream type, the thread's current stream, and an owned
// stream.
//
// `Stream` is identical to cudaStream_t (`typedef struct CUstream_st* cudaStream_t`), so kernels/*.h
// can declare kiln::cuda:: functions in builds without the CUDA toolkit; nullptr is CUDA's legacy
// default stream.
//
// The current stream: every call of the functional API (kernels/*.h on Tensors), every Tensor copy
// and kiln::copy_bytes queue their device work on kiln::current_stream() unless given a stream. It
// is per host thread and starts as the legacy stream, so code that never sets it behaves as plain
// CUDA code without streams does. To run a whole step on a stream of its own:
//
//     kiln::CudaStream stream;                 // cudaStreamCreate, destroyed at scope exit
//     {
//       kiln::StreamGuard on(stream.get());    // current_stream() == stream.get() in this scope
//       net.forward(x, mode); ...              // every op queued on `stream`
//     }                                        // the previous current stream is back
//
// Work on one stream runs in the order it was queued; work on different streams is unordered unless
// the caller orders it (events, or a stream synchronisation). Each stream has its own workspace
// (kiln::workspace in core/memory.h), so two streams never share temporary memory.
#pragma once

#include <cstddef>
#include <utility>

#include "core/cost.h"

struct CUstream_st;
struct CUevent_st;
struct CUgraphExec_st;

namespace kiln {

using Stream = CUstream_st*;

// The calling thread's current stream (the legacy default stream, nullptr, until set).
Stream current_stream();
// Makes `stream` the calling thread's current stream. Prefer StreamGuard, which restores the
// previous one.
void set_current_stream(Stream stream);

// Sets the current stream for a scope and restores the previous one when the scope ends.
class StreamGuard {
 public:
  explicit StreamGuard(Stream stream) : previous_(current_stream()) { set_current_stream(stream); }
  ~StreamGuard() { set_current_stream(previous_); }
  StreamGuard(const StreamGuard&) = delete;
  StreamGuard& operator=(const StreamGuard&) = delete;

 private:
  Stream previous_;
};

// Blocks the host until everything queued on `stream` so far has finished (cudaStreamSynchronize;
// no-op without CUDA). Rethrows a kernel's error as a kiln::Error.
void stream_synchronize(Stream stream = current_stream());

// An owned CUDA stream: created by the constructor (a blocking stream, so it is ordered with work on
// the legacy stream as CUDA defines; non-blocking when asked), destroyed — after its queued work
// has finished and its workspace is freed — by the destructor. Move-only. Needs a CUDA device. Do
// not destroy a stream that is still some thread's current stream (end its StreamGuard first).
class CudaStream {
 public:
  explicit CudaStream(bool non_blocking = false);
  ~CudaStream();
  CudaStream(CudaStream&& other) noexcept : stream_(other.stream_) { other.stream_ = nullptr; }
  CudaStream& operator=(CudaStream&& other) noexcept;
  CudaStream(const CudaStream&) = delete;
  CudaStream& operator=(const CudaStream&) = delete;
  Stream get() const { return stream_; }

 private:
  void destroy() noexcept;
  Stream stream_ = nullptr;
};

// An owned CUDA event without timing (cudaEventDisableTiming): record() marks the point of a
// stream's queue reached so far; wait() makes another stream's later work wait for that point (no
// host wait); synchronize() blocks the host until it has passed (a host synchronisation: call it
// only where the host needs device results). Move-only. Needs a CUDA device.
class CudaEvent {
 public:
  CudaEvent();
  ~CudaEvent();
  CudaEvent(CudaEvent&& other) noexcept : event_(other.event_) { other.event_ = nullptr; }
  CudaEvent& operator=(CudaEvent&&) = delete;
  CudaEvent(const CudaEvent&) = delete;
  CudaEvent& operator=(const CudaEvent&) = delete;
  void record(Stream stream);
  void wait(Stream stream) const;
  void synchronize() const;
  // True once it was recorded (a never-recorded event counts as passed).
  bool recorded() const { return recorded_; }

 private:
  CUevent_st* event_ = nullptr;
  bool recorded_ = false;
};

// An executable CUDA graph made by capturing a stream: capture(stream, body) runs body() with the
// stream capturing (global mode: nothing body queues on it runs, and a synchronisation, a
// synchronous copy or an allocation inside it fails with CUDA's error, here a kiln::Error), then
// instantiates what was recorded; launch(stream) queues one replay. Move-only. Needs a CUDA device.
class CudaGraph {
 public:
  CudaGraph() = default;
  ~CudaGraph();
  CudaGraph(CudaGraph&& other) noexcept
      : exec_(other.exec_), nodes_(other.nodes_), costs_(std::move(other.costs_)) {
    other.exec_ = nullptr;
  }
  CudaGraph& operator=(CudaGraph&&) = delete;
  CudaGraph(const CudaGraph&) = delete;
  CudaGraph& operator=(const CudaGraph&) = delete;

  template <typename Body>
  static CudaGraph capture(Stream stream, Body&& body) {
    CudaGraph g;
    g.begin(stream);
    try {
      body();
    } catch (...) {
      g.abandon(stream);
      throw;
    }
    g.end(stream);
    return g;
  }
  void launch(Stream stream) const;
  size_t nodes() const { return nodes_; }  // operations recorded

 private:
  void begin(Stream stream);
  void end(Stream stream);
  void abandon(Stream stream) noexcept;
  CUgraphExec_st* exec_ = nullptr;
  size_t nodes_ = 0;
  cost::Captured costs_;  // the cost model's entries of the captured kernels, replayed by launch()
};

}  // namespace kiln
