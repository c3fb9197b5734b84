// tests/simt/test_simt_streams.cpp — the emulator's asynchronous streams: CUDA's synchronisation
// rules (events, stream queries, the legacy stream's implicit ordering, cudaFree), the schedule
// captured at queue time, and planted bugs each caught by the stream mode named:
//   - a host read of a kernel's output copied to pinned memory without a sync (async mode);
//   - a pinned host buffer refilled before the cudaMemcpyAsync from it ran (async mode);
//   - a second stream reading the first's output without an event (check mode).
// The emulator's device memory is host memory, so some tests look at a device buffer directly to see
// whether queued work has run; that is what a GPU would not let them do.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/simt/schedule.h"
#include "tests/simt/simt_stream_kernels.h"
#include "tests/support/device_buffer.h"

namespace kt = kiln::simt_test;
using kiln::simt::ScopedStreamMode;
using kiln::simt::StreamMode;
using kiln::test::DeviceBuffer;

namespace {

constexpr int kN = 300;  // three blocks of the test kernels

struct Stream {
  explicit Stream(unsigned flags = cudaStreamDefault) {
    KILN_CUDA_CHECK(cudaStreamCreateWithFlags(&s, flags));
  }
  ~Stream() { cudaStreamDestroy(s); }
  Stream(const Stream&) = delete;
  Stream& operator=(const Stream&) = delete;
  cudaStream_t s = nullptr;
};

struct Event {
  Event() { KILN_CUDA_CHECK(cudaEventCreate(&e)); }
  ~Event() { cudaEventDestroy(e); }
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;
  cudaEvent_t e = nullptr;
};

template <typename T>
struct Pinned {
  explicit Pinned(int n) : n(n) {
    KILN_CUDA_CHECK(cudaMallocHost(reinterpret_cast<void**>(&p), n * sizeof(T)));
  }
  ~Pinned() { cudaFreeHost(p); }
  Pinned(const Pinned&) = delete;
  Pinned& operator=(const Pinned&) = delete;
  void fill(T v) {
    for (int i = 0; i < n; ++i) p[i] = v;
  }
  T* p = nullptr;
  int n;
};

// True when every one of the n values at p equals v.
bool all_equal(const float* p, int n, float v) {
  for (int i = 0; i < n; ++i)
    if (!(p[i] == v)) return false;
  return true;
}

}  // namespace

TEST_CASE("streams: the mode comes from the API and defaults to async", "[simt][streams]") {
  CHECK(std::string(kiln::simt::to_string(StreamMode::kAsync)) == "async");
  CHECK(std::string(kiln::simt::to_string(StreamMode::kCheck)) == "check");
  CHECK(std::string(kiln::simt::to_string(StreamMode::kSync)) == "sync");
  const StreamMode before = kiln::simt::stream_mode();
  {
    ScopedStreamMode check(StreamMode::kCheck);
    CHECK(kiln::simt::stream_mode() == StreamMode::kCheck);
  }
  CHECK(kiln::simt::stream_mode() == before);
}

TEST_CASE("streams: launches and copies are queued until something synchronises",
          "[simt][streams]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> x(kN);
    Stream s;
    kt::fill_on(s.s, x.get(), kN, 3.0f);
    CHECK(std::isnan(x.get()[0]));  // queued, not run: the buffer is still poison
    CHECK(cudaStreamQuery(s.s) == cudaErrorNotReady);
    REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
    CHECK(all_equal(x.get(), kN, 3.0f));
    CHECK(cudaStreamQuery(s.s) == cudaSuccess);
    // A device -> pageable host cudaMemcpyAsync may return before the copy is done, and here does.
    std::vector<float> host(kN, -1.0f);
    REQUIRE(cudaMemcpyAsync(host.data(), x.get(), kN * sizeof(float), cudaMemcpyDeviceToHost,
                            s.s) == cudaSuccess);
    CHECK(all_equal(host.data(), kN, -1.0f));
    REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
    CHECK(all_equal(host.data(), kN, 3.0f));
  }
  // The synchronous mode runs everything before the call returns.
  ScopedStreamMode sync(StreamMode::kSync);
  DeviceBuffer<float> x(kN);
  kt::fill_on(nullptr, x.get(), kN, 4.0f);
  CHECK(all_equal(x.get(), kN, 4.0f));
}

TEST_CASE("streams: event query, synchronize and elapsed time", "[simt][streams]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck, StreamMode::kSync}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> x(kN);
    Stream s;
    Event start, stop, never;
    CHECK(cudaEventQuery(never.e) == cudaSuccess);  // never recorded: nothing to wait for
    CHECK(cudaEventSynchronize(never.e) == cudaSuccess);
    REQUIRE(cudaEventRecord(start.e, s.s) == cudaSuccess);
    kt::fill_on(s.s, x.get(), kN, 5.0f);
    REQUIRE(cudaEventRecord(stop.e, s.s) == cudaSuccess);
    float ms = -1.0f;
    if (mode != StreamMode::kSync) {
      CHECK(cudaEventElapsedTime(&ms, start.e, stop.e) == cudaErrorNotReady);
      (void)cudaGetLastError();
      CHECK(cudaEventQuery(stop.e) == cudaErrorNotReady);
    }
    REQUIRE(cudaEventSynchronize(stop.e) == cudaSuccess);
    CHECK(cudaEventQuery(stop.e) == cudaSuccess);
    CHECK(all_equal(x.get(), kN, 5.0f));
    REQUIRE(cudaEventElapsedTime(&ms, start.e, stop.e) == cudaSuccess);
    CHECK(ms >= 0.0f);
    CHECK(cudaEventElapsedTime(&ms, start.e, never.e) == cudaErrorInvalidResourceHandle);
    (void)cudaGetLastError();

    // Polling terminates: a query that finds the event pending lets the device start the work.
    kt::fill_on(s.s, x.get(), kN, 6.0f);
    REQUIRE(cudaEventRecord(stop.e, s.s) == cudaSuccess);
    long polls = 0;
    while (cudaEventQuery(stop.e) == cudaErrorNotReady && polls < 100000000) ++polls;
    CHECK(cudaEventQuery(stop.e) == cudaSuccess);
    CHECK(all_equal(x.get(), kN, 6.0f));
  }
}

TEST_CASE("streams: the legacy stream waits for blocking streams and they wait for it",
          "[simt][streams]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> x(kN), y(kN);
    Stream blocking;
    // Blocking stream, then the legacy stream: the legacy launch sees the blocking stream's result.
    kt::fill_on(blocking.s, x.get(), kN, 3.0f);
    kt::affine_on(nullptr, y.get(), x.get(), kN, 2.0f, 0.0f);
    REQUIRE(cudaStreamSynchronize(nullptr) == cudaSuccess);
    CHECK(all_equal(y.get(), kN, 6.0f));
    // The legacy stream, then a blocking stream.
    kt::fill_on(nullptr, x.get(), kN, 4.0f);
    kt::affine_on(blocking.s, y.get(), x.get(), kN, 2.0f, 0.0f);
    REQUIRE(cudaStreamSynchronize(blocking.s) == cudaSuccess);
    CHECK(all_equal(y.get(), kN, 8.0f));
    // A blocking cudaMemcpy (on the legacy stream) waits for a blocking stream's kernel.
    kt::fill_on(blocking.s, x.get(), kN, 7.0f);
    CHECK(x.download() == std::vector<float>(kN, 7.0f));
    // An upload from pageable memory too: the kernel queued before it reads the old x.
    kt::affine_on(blocking.s, y.get(), x.get(), kN, 2.0f, 0.0f);
    x.upload(std::vector<float>(kN, 100.0f));
    CHECK(y.download() == std::vector<float>(kN, 14.0f));
  }
}

TEST_CASE("streams: a non-blocking stream does not wait for the legacy stream (check mode)",
          "[simt][streams]") {
  ScopedStreamMode scope(StreamMode::kCheck);
  DeviceBuffer<float> x(kN), y(kN);
  Stream non_blocking(cudaStreamNonBlocking), blocking;
  kt::fill_on(nullptr, x.get(), kN, 1.0f);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  kt::fill_on(nullptr, x.get(), kN, 4.0f);  // queued on the legacy stream, not awaited
  kt::affine_on(non_blocking.s, y.get(), x.get(), kN, 2.0f, 0.0f);
  REQUIRE(cudaStreamSynchronize(non_blocking.s) == cudaSuccess);
  CHECK(all_equal(y.get(), kN, 2.0f));  // it read x before the legacy fill
  CHECK(all_equal(x.get(), kN, 1.0f));  // which has still not run
  // The same on a blocking stream waits for the legacy fill.
  kt::affine_on(blocking.s, y.get(), x.get(), kN, 2.0f, 0.0f);
  REQUIRE(cudaStreamSynchronize(blocking.s) == cudaSuccess);
  CHECK(all_equal(y.get(), kN, 8.0f));
}

TEST_CASE("streams: cudaFree and cudaFreeHost synchronise the device", "[simt][streams]") {
  ScopedStreamMode scope(StreamMode::kCheck);
  DeviceBuffer<float> x(kN);
  Stream s(cudaStreamNonBlocking);
  float* other = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&other), 16) == cudaSuccess);
  kt::fill_on(s.s, x.get(), kN, 9.0f);
  CHECK(std::isnan(x.get()[0]));
  REQUIRE(cudaFree(other) == cudaSuccess);
  CHECK(all_equal(x.get(), kN, 9.0f));

  void* pinned = nullptr;
  REQUIRE(cudaMallocHost(&pinned, 16) == cudaSuccess);
  kt::fill_on(s.s, x.get(), kN, 10.0f);
  CHECK(all_equal(x.get(), kN, 9.0f));
  REQUIRE(cudaFreeHost(pinned) == cudaSuccess);
  CHECK(all_equal(x.get(), kN, 10.0f));
}

TEST_CASE("streams: the schedule in force when a kernel is queued is the one it runs with",
          "[simt][streams]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    const int n = 64;
    DeviceBuffer<unsigned> tickets(n), counter(1);
    counter.fill_bytes(0);
    {
      kiln::simt::ScopedSchedule reverse(kiln::simt::every_order()[1]);
      kt::tickets_on(nullptr, tickets.get(), counter.get(), n);
    }  // back to the previous (forward) schedule before the kernel runs
    const auto r = tickets.download();
    for (int t = 0; t < n; ++t) CHECK(r[t] == static_cast<unsigned>(n - 1 - t));
  }
}

TEST_CASE("streams: bad handles are errors, not crashes", "[simt][streams]") {
  DeviceBuffer<float> x(kN);
  cudaStream_t s = nullptr;
  REQUIRE(cudaStreamCreate(&s) == cudaSuccess);
  REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
  float h = 0.0f;
  CHECK(cudaMemcpyAsync(&h, x.get(), 4, cudaMemcpyDeviceToHost, s) ==
        cudaErrorInvalidResourceHandle);
  CHECK(cudaStreamSynchronize(s) == cudaErrorInvalidResourceHandle);
  CHECK(cudaMemsetAsync(x.get(), 0, 4, cudaStreamPerThread) == cudaErrorNotSupported);
  (void)cudaGetLastError();
  CHECK_THROWS_WITH(kt::fill_on(s, x.get(), kN, 1.0f), Catch::Contains("not a live stream"));
  CHECK_THROWS_WITH(kt::fill_on(cudaStreamPerThread, x.get(), kN, 1.0f),
                    Catch::Contains("cudaStreamPerThread"));
  CHECK(cudaStreamCreateWithFlags(&s, 0x40) == cudaErrorInvalidValue);
  (void)cudaGetLastError();
}

// ---- planted bugs ---------------------------------------------------------------------------------

TEST_CASE("planted: a host read of a kernel's output copied to pinned memory without a sync",
          "[simt][streams]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> x(kN), y(kN);
    Pinned<float> host(kN);
    Stream s;
    host.fill(-1.0f);
    kt::fill_on(s.s, x.get(), kN, 2.0f);
    kt::affine_on(s.s, y.get(), x.get(), kN, 3.0f, 1.0f);
    REQUIRE(cudaMemcpyAsync(host.p, y.get(), kN * sizeof(float), cudaMemcpyDeviceToHost, s.s) ==
            cudaSuccess);
    // The bug: reading host.p now. The copy has not run, so the read sees the old contents.
    CHECK(all_equal(host.p, kN, -1.0f));
    // The fix: synchronise first.
    REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
    CHECK(all_equal(host.p, kN, 7.0f));
  }
}

TEST_CASE("planted: a pinned buffer refilled before the cudaMemcpyAsync from it ran",
          "[simt][streams]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> a(kN), b(kN), y(kN);
    Pinned<float> host(kN);
    Stream s;
    for (bool fixed : {false, true}) {
      INFO((fixed ? "with" : "without") << " an event before the refill");
      Event copied;
      host.fill(1.0f);
      REQUIRE(cudaMemcpyAsync(a.get(), host.p, kN * sizeof(float), cudaMemcpyHostToDevice, s.s) ==
              cudaSuccess);
      REQUIRE(cudaEventRecord(copied.e, s.s) == cudaSuccess);
      kt::affine_on(s.s, y.get(), a.get(), kN, 10.0f, 0.0f);
      if (fixed) REQUIRE(cudaEventSynchronize(copied.e) == cudaSuccess);
      host.fill(2.0f);  // the next batch
      REQUIRE(cudaMemcpyAsync(b.get(), host.p, kN * sizeof(float), cudaMemcpyHostToDevice, s.s) ==
              cudaSuccess);
      REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
      // Without the event the first copy read the second batch: the device saw 2, not 1.
      CHECK(all_equal(y.get(), kN, fixed ? 10.0f : 20.0f));
      CHECK(all_equal(b.get(), kN, 2.0f));
    }
    // Pageable memory is staged by cudaMemcpyAsync itself: refilling it at once is safe.
    std::vector<float> pageable(kN, 1.0f);
    REQUIRE(cudaMemcpyAsync(a.get(), pageable.data(), kN * sizeof(float), cudaMemcpyHostToDevice,
                            s.s) == cudaSuccess);
    kt::affine_on(s.s, y.get(), a.get(), kN, 10.0f, 0.0f);
    pageable.assign(kN, 2.0f);
    REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
    CHECK(all_equal(y.get(), kN, 10.0f));
  }
}

TEST_CASE("planted: a second stream reads the first's output without an event (check mode)",
          "[simt][streams]") {
  ScopedStreamMode scope(StreamMode::kCheck);
  DeviceBuffer<float> x(kN), y(kN);
  Stream producer, consumer;
  for (bool fixed : {false, true}) {
    INFO((fixed ? "with" : "without") << " cudaStreamWaitEvent");
    kt::fill_on(nullptr, x.get(), kN, 0.0f);
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    Event produced;
    kt::fill_on(producer.s, x.get(), kN, 5.0f);
    REQUIRE(cudaEventRecord(produced.e, producer.s) == cudaSuccess);
    if (fixed) REQUIRE(cudaStreamWaitEvent(consumer.s, produced.e, 0) == cudaSuccess);
    kt::affine_on(consumer.s, y.get(), x.get(), kN, 2.0f, 0.0f);
    REQUIRE(cudaStreamSynchronize(consumer.s) == cudaSuccess);
    // Without the event the consumer ran first and read the old x: 0, not 10.
    CHECK(all_equal(y.get(), kN, fixed ? 10.0f : 0.0f));
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(all_equal(x.get(), kN, 5.0f));
  }
}

TEST_CASE("check mode runs independent streams the most recently queued first", "[simt][streams]") {
  ScopedStreamMode scope(StreamMode::kCheck);
  DeviceBuffer<float> x(kN);
  Stream first, second;
  kt::fill_on(first.s, x.get(), kN, 1.0f);
  kt::fill_on(second.s, x.get(), kN, 2.0f);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(all_equal(x.get(), kN, 1.0f));  // `second` ran first, so `first` wrote last
  // The async mode runs the oldest first, as the order of the calls suggests.
  ScopedStreamMode async(StreamMode::kAsync);
  kt::fill_on(first.s, x.get(), kN, 1.0f);
  kt::fill_on(second.s, x.get(), kN, 2.0f);
  REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
  CHECK(all_equal(x.get(), kN, 2.0f));
}

// ---- stream capture and graphs --------------------------------------------------------------------

TEST_CASE("graphs: a capture records instead of running, and a launch replays it in order",
          "[simt][streams][graphs]") {
  for (auto mode : {StreamMode::kAsync, StreamMode::kCheck, StreamMode::kSync}) {
    ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> x(kN), y(kN);
    Pinned<float> in(kN), out(kN);
    Stream s;
    in.fill(1.0f);
    out.fill(-1.0f);
    const kiln::simt::DeviceCounts before = kiln::simt::counts();
    REQUIRE(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    REQUIRE(cudaStreamIsCapturing(s.s, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusActive);
    // pinned -> device, y = 2x + 1, device -> pinned: three nodes, nothing runs.
    REQUIRE(cudaMemcpyAsync(x.get(), in.p, kN * sizeof(float), cudaMemcpyHostToDevice, s.s) ==
            cudaSuccess);
    kt::affine_on(s.s, y.get(), x.get(), kN, 2.0f, 1.0f);
    REQUIRE(cudaMemcpyAsync(out.p, y.get(), kN * sizeof(float), cudaMemcpyDeviceToHost, s.s) ==
            cudaSuccess);
    cudaGraph_t graph = nullptr;
    REQUIRE(cudaStreamEndCapture(s.s, &graph) == cudaSuccess);
    CHECK(std::isnan(x.get()[0]));
    CHECK(all_equal(out.p, kN, -1.0f));
    size_t nodes = 0;
    REQUIRE(cudaGraphGetNodes(graph, nullptr, &nodes) == cudaSuccess);
    CHECK(nodes == 3);
    CHECK(kiln::simt::counts().kernel_launches == before.kernel_launches);  // captured: not run
    cudaGraphExec_t exec = nullptr;
    REQUIRE(cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess);
    REQUIRE(cudaGraphDestroy(graph) == cudaSuccess);  // the instance keeps its own nodes
    // Each replay reads the pinned input as it is at the time: 1, then 5.
    REQUIRE(cudaGraphLaunch(exec, s.s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
    CHECK(all_equal(out.p, kN, 3.0f));
    in.fill(5.0f);
    REQUIRE(cudaGraphLaunch(exec, s.s) == cudaSuccess);
    REQUIRE(cudaStreamSynchronize(s.s) == cudaSuccess);
    CHECK(all_equal(out.p, kN, 11.0f));
    const kiln::simt::DeviceCounts after = kiln::simt::counts();
    CHECK(after.graph_launches - before.graph_launches == 2);
    CHECK(after.kernel_launches - before.kernel_launches == 2);  // one kernel node per replay
    REQUIRE(cudaGraphExecDestroy(exec) == cudaSuccess);
    CHECK(cudaGraphExecDestroy(exec) == cudaErrorInvalidResourceHandle);
    CHECK(cudaGetLastError() == cudaErrorInvalidResourceHandle);
  }
}

TEST_CASE("graphs: illegal calls during a capture fail and invalidate it, as CUDA's do",
          "[simt][streams][graphs]") {
  ScopedStreamMode scope(StreamMode::kAsync);
  DeviceBuffer<float> x(kN);
  std::vector<float> pageable(kN, 1.0f);
  Stream s, other;
  Event outside;
  REQUIRE(cudaEventRecord(outside.e, other.s) == cudaSuccess);
  // The legacy stream cannot be captured.
  CHECK(cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal) ==
        cudaErrorStreamCaptureUnsupported);
  (void)cudaGetLastError();
  // Each of these breaks a global-mode capture; cudaStreamEndCapture then reports it.
  struct Case {
    const char* what;
    std::function<cudaError_t()> call;
    cudaError_t error;
  };
  void* p = nullptr;
  const std::vector<Case> cases = {
      {"cudaStreamSynchronize", [&] { return cudaStreamSynchronize(s.s); },
       cudaErrorStreamCaptureUnsupported},
      {"cudaStreamSynchronize of another stream", [&] { return cudaStreamSynchronize(other.s); },
       cudaErrorStreamCaptureUnsupported},
      {"cudaDeviceSynchronize", [&] { return cudaDeviceSynchronize(); },
       cudaErrorStreamCaptureUnsupported},
      {"cudaMemcpy",
       [&] { return cudaMemcpy(pageable.data(), x.get(), sizeof(float), cudaMemcpyDeviceToHost); },
       cudaErrorStreamCaptureUnsupported},
      {"a pageable cudaMemcpyAsync",
       [&] {
         return cudaMemcpyAsync(x.get(), pageable.data(), sizeof(float), cudaMemcpyHostToDevice,
                                s.s);
       },
       cudaErrorStreamCaptureUnsupported},
      {"cudaMalloc", [&] { return cudaMalloc(&p, 64); }, cudaErrorStreamCaptureUnsupported},
      {"cudaStreamQuery", [&] { return cudaStreamQuery(s.s); }, cudaErrorStreamCaptureUnsupported},
      {"waiting for an event recorded outside the capture",
       [&] { return cudaStreamWaitEvent(s.s, outside.e, 0); }, cudaErrorStreamCaptureIsolation},
      {"work on the legacy stream",
       [&] { return cudaMemsetAsync(x.get(), 0, sizeof(float), nullptr); },
       cudaErrorStreamCaptureImplicit},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    REQUIRE(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeGlobal) == cudaSuccess);
    kt::fill_on(s.s, x.get(), kN, 2.0f);
    CHECK(c.call() == c.error);
    CHECK(cudaGetLastError() == c.error);
    cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
    REQUIRE(cudaStreamIsCapturing(s.s, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusInvalidated);
    // Work queued on the broken capture is refused too.
    CHECK(cudaMemsetAsync(x.get(), 0, sizeof(float), s.s) == cudaErrorStreamCaptureInvalidated);
    cudaGraph_t graph = nullptr;
    CHECK(cudaStreamEndCapture(s.s, &graph) == cudaErrorStreamCaptureInvalidated);
    CHECK(graph == nullptr);
    (void)cudaGetLastError();
    CHECK(cudaStreamIsCapturing(s.s, &status) == cudaSuccess);
    CHECK(status == cudaStreamCaptureStatusNone);
  }
  CHECK(p == nullptr);
  CHECK(std::isnan(x.get()[0]));  // nothing captured ever ran
  // A relaxed capture allows allocation; ending a capture that never began is an error.
  REQUIRE(cudaStreamBeginCapture(s.s, cudaStreamCaptureModeRelaxed) == cudaSuccess);
  REQUIRE(cudaMalloc(&p, 64) == cudaSuccess);
  cudaGraph_t graph = nullptr;
  REQUIRE(cudaStreamEndCapture(s.s, &graph) == cudaSuccess);
  REQUIRE(cudaGraphDestroy(graph) == cudaSuccess);
  REQUIRE(cudaFree(p) == cudaSuccess);
  CHECK(cudaStreamEndCapture(s.s, &graph) == cudaErrorIllegalState);
  (void)cudaGetLastError();
}
