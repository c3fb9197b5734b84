// core/stream.cpp — the thread's current stream and owned streams (see stream.h).
#include "core/stream.h"

#include <cstdio>

#include "core/error.h"
#include "core/memory.h"

#if KILN_WITH_CUDA
#include "core/cuda_check.h"
#endif

namespace kiln {

namespace {
thread_local Stream t_current_stream = nullptr;
}  // namespace

Stream current_stream() {
  return t_current_stream;
}

void set_current_stream(Stream stream) {
  t_current_stream = stream;
}

void stream_synchronize(Stream stream) {
#if KILN_WITH_CUDA
  if (cuda_available()) KILN_CUDA_CHECK(cudaStreamSynchronize(stream));
#else
  (void)stream;
#endif
}

CudaStream::CudaStream(bool non_blocking) {
  KILN_CHECK(cuda_available(),
             "CudaStream: the CUDA device is not available: ", cuda_unavailable_reason(),
             ". Streams exist only on the CUDA device.");
#if KILN_WITH_CUDA
  cudaStream_t s = nullptr;
  KILN_CUDA_CHECK(
      cudaStreamCreateWithFlags(&s, non_blocking ? cudaStreamNonBlocking : cudaStreamDefault));
  stream_ = s;
#else
  (void)non_blocking;
#endif
}

CudaStream::~CudaStream() {
  destroy();
}

CudaStream& CudaStream::operator=(CudaStream&& other) noexcept {
  if (this != &other) {
    destroy();
    stream_ = other.stream_;
    other.stream_ = nullptr;
  }
  return *this;
}

void CudaStream::destroy() noexcept {
  if (stream_ == nullptr) return;
#if KILN_WITH_CUDA
  // release_workspace waits for the stream, so nothing queued still uses the area it frees, and a
  // later stream that happens to get the same handle starts without an area.
  try {
    release_workspace(stream_);
  } catch (const Error& e) {
    std::fprintf(stderr, "kiln: destroying a CUDA stream: %s\n", e.what());
  }
  cudaStreamDestroy(stream_);
#endif
  stream_ = nullptr;
}

CudaEvent::CudaEvent() {
  KILN_CHECK(cuda_available(),
             "CudaEvent: the CUDA device is not available: ", cuda_unavailable_reason(),
             ". Events exist only on the CUDA device.");
#if KILN_WITH_CUDA
  cudaEvent_t e = nullptr;
  KILN_CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
  event_ = e;
#endif
}

CudaEvent::~CudaEvent() {
#if KILN_WITH_CUDA
  if (event_ != nullptr) cudaEventDestroy(event_);
#endif
}

void CudaEvent::record(Stream stream) {
#if KILN_WITH_CUDA
  KILN_CUDA_CHECK(cudaEventRecord(event_, stream));
#else
  (void)stream;
#endif
  recorded_ = true;
}

void CudaEvent::wait(Stream stream) const {
#if KILN_WITH_CUDA
  if (recorded_) KILN_CUDA_CHECK(cudaStreamWaitEvent(stream, event_, 0));
#else
  (void)stream;
#endif
}

void CudaEvent::synchronize() const {
#if KILN_WITH_CUDA
  if (recorded_) KILN_CUDA_CHECK(cudaEventSynchronize(event_));
#endif
}

CudaGraph::~CudaGraph() {
#if KILN_WITH_CUDA
  if (exec_ != nullptr) cudaGraphExecDestroy(exec_);
#endif
}

void CudaGraph::begin(Stream stream) {
  KILN_CHECK(cuda_available(),
             "CudaGraph: the CUDA device is not available: ", cuda_unavailable_reason());
  KILN_CHECK(stream != nullptr,
             "CudaGraph: the legacy stream cannot be captured; capture a stream of your own "
             "(kiln::CudaStream)");
#if KILN_WITH_CUDA
  KILN_CUDA_CHECK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
#endif
  cost::begin_capture();
}

void CudaGraph::end(Stream stream) {
  costs_ = cost::end_capture();
#if KILN_WITH_CUDA
  cudaGraph_t graph = nullptr;
  KILN_CUDA_CHECK(cudaStreamEndCapture(stream, &graph));
  size_t nodes = 0;
  const cudaError_t counted = cudaGraphGetNodes(graph, nullptr, &nodes);
  cudaGraphExec_t exec = nullptr;
  const cudaError_t made = cudaGraphInstantiate(&exec, graph, 0);
  cudaGraphDestroy(graph);
  KILN_CUDA_CHECK(counted);
  KILN_CUDA_CHECK(made);
  exec_ = exec;
  nodes_ = nodes;
#else
  (void)stream;
#endif
}

void CudaGraph::abandon(Stream stream) noexcept {
  try {
    (void)cost::end_capture();
  } catch (...) {  // not reached: begin() started the capture; abandon() must not throw
  }
#if KILN_WITH_CUDA
  cudaGraph_t graph = nullptr;
  if (cudaStreamEndCapture(stream, &graph) == cudaSuccess && graph != nullptr)
    cudaGraphDestroy(graph);
  (void)cudaGetLastError();
#else
  (void)stream;
#endif
}

void CudaGraph::launch(Stream stream) const {
  KILN_CHECK(exec_ != nullptr, "CudaGraph::launch: no graph was captured");
#if KILN_WITH_CUDA
  KILN_CUDA_CHECK(cudaGraphLaunch(exec_, stream));
#else
  (void)stream;
#endif
  cost::replay(costs_);
}

}  // namespace kiln
