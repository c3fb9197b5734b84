// core/simt/device_queue.h — the emulated device's work queues: streams, their order and the
// synchronisation rules of CUDA's runtime (internal to core/simt; docs/simt.md, "Streams").
//
// Every kernel launch, cudaMemcpy*/cudaMemset* that is asynchronous in CUDA and every event record
// becomes an operation queued on a stream. A device thread runs the operations, each stream in FIFO
// order, each operation only after the ones it depends on:
//   - an operation on the legacy (NULL) stream waits for everything queued before it on every
//     blocking stream, and an operation on a blocking stream waits for everything queued before it on
//     the legacy stream (streams created with cudaStreamNonBlocking are exempt);
//   - an operation queued by cudaStreamWaitEvent waits for the event's operation.
// When the work runs depends on the mode (schedule.h, StreamMode):
//   async  the device thread starts queued work when the host first synchronises on (or queries)
//          anything, and then runs everything queued so far, oldest first;
//   check  only what a synchronisation needs runs (the awaited operation, its stream predecessors
//          and their dependencies, transitively), and among runnable streams the most recently
//          queued goes first;
//   sync   enqueue() runs the work on the calling thread before returning (exceptions propagate).
// A failure of queued work (an exception) becomes the device's sticky error: later work is skipped,
// and every synchronising call returns cudaErrorLaunchFailure until clear_device_error().
#pragma once

#include <cuda_runtime.h>

#include <chrono>
#include <functional>
#include <memory>
#include <vector>

namespace kiln::simt::detail {

struct Op;
using OpPtr = std::shared_ptr<Op>;
using Work = std::function<void()>;

// cudaSuccess for the legacy stream (nullptr, cudaStreamLegacy) and live streams;
// cudaErrorNotSupported for cudaStreamPerThread; cudaErrorInvalidResourceHandle otherwise.
cudaError_t check_stream(cudaStream_t stream);
cudaStream_t create_stream(bool non_blocking);
// Waits for the stream's work, then forgets it. The stream must have passed check_stream.
cudaError_t destroy_stream(cudaStream_t stream);

enum class OpKind { kOther, kKernel };

// Queues `work` on a stream that passed check_stream, after `after` as well when given. On a
// stream under capture the work is recorded into the capture instead (and `after` is ignored: the
// caller has checked that the dependency is inside the capture); the returned operation is then
// one that has run. A kernel's work counts as a launch when it is queued (not when captured).
OpPtr enqueue(cudaStream_t stream, Work work, const OpPtr& after = nullptr,
              OpKind kind = OpKind::kOther);

// ---- stream capture and graphs (docs/simt.md, "Graphs") -----------------------------------------
struct GraphNode {
  Work work;
  OpKind kind = OpKind::kOther;
};
// cudaStreamBeginCapture: the stream (not the legacy stream, not already capturing) records what is
// queued on it from now on.
cudaError_t begin_capture(cudaStream_t stream, cudaStreamCaptureMode mode);
// cudaStreamEndCapture: the recorded nodes, in order; cudaErrorStreamCaptureInvalidated (and no
// nodes) when an illegal call broke the capture, cudaErrorIllegalState when it is not capturing.
cudaError_t end_capture(cudaStream_t stream, std::vector<GraphNode>* nodes);
cudaStreamCaptureStatus capture_status(cudaStream_t stream);
// Whether work may be queued on `stream` now: cudaErrorStreamCaptureInvalidated on a stream whose
// capture an illegal call broke; cudaErrorStreamCaptureImplicit for the legacy stream while a
// blocking stream captures (that would make it depend on the capture; the capture is invalidated).
cudaError_t capture_check(cudaStream_t stream);
// For every call that would make the host wait or allocate (synchronisations, synchronous copies,
// cudaMalloc/cudaFree, ...): cudaErrorStreamCaptureUnsupported while a capture that is not relaxed
// (cudaStreamCaptureModeRelaxed) is active, which it invalidates; else cudaSuccess.
cudaError_t unsafe_call_check();
// An explanation of a capture error, for messages.
const char* capture_error_text(cudaError_t error);
// cudaGraphLaunch: queues the nodes on `stream` in order (each counts as what it is) and counts a
// graph launch.
void launch_graph(cudaStream_t stream, const std::vector<GraphNode>& nodes);

// Block until the operation / the stream's work / all work has run; return the sticky error.
cudaError_t wait(const OpPtr& op);
cudaError_t wait_stream(cudaStream_t stream);
cudaError_t wait_device();

// True when the operation has run (nullptr counts as run). The first poll of a pending operation
// leaves it queued; later ones tell the device to start it, so a polling loop terminates.
bool poll(const OpPtr& op);
// The stream's last queued operation that has not run yet, or nullptr.
OpPtr stream_tail(cudaStream_t stream);
// When the operation finished (valid once poll() is true).
std::chrono::steady_clock::time_point finished_at(const OpPtr& op);

// The sticky error (cudaSuccess when none) and its message ("" when none).
cudaError_t sticky_error();

}  // namespace kiln::simt::detail
