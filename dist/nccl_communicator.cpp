// dist/nccl_communicator.cpp — the NCCL backend: collectives of CUDA tensors on a communication
// stream of the backend's own, one GPU per process (chosen by the local rank), the communicator
// bootstrapped over the host backend (rank 0's ncclUniqueId broadcast over MPI).
//
// Ordering: a collective first records an event on kiln::current_stream() (the compute stream)
// and makes the communication stream wait for it, so it reads the gradients the backward pass has
// queued so far, and the backward pass goes on queuing the layers below while it runs; wait()
// records an event on the communication stream and makes the current stream wait for it, so the
// optimizer's update reads the reduced buffer.
//
// Watchdog: wait() holds the host until that event has passed, polling it together with
// ncclCommGetAsyncError. An NCCL error, or a wait past the host communicator's deadline
// (KILN_DIST_TIMEOUT), ends the job: the message names this rank (and, past the deadline, the
// ranks whose heartbeat shows they never reached the collective), the NCCL communicator is aborted
// (ncclCommAbort: its kernels return) and the job exits with status 3.
//
// Bootstrap: the communicator is non-blocking (ncclConfig_t::blocking = 0), so
// ncclCommInitRankConfig returns at once (ncclInProgress) and the same watchdog polls
// ncclCommGetAsyncError until the communicator is made: a rank stuck in the bootstrap ends the job
// at the deadline like a collective. The heartbeat of "NCCL init" is sent once the call has
// returned, so a rank whose call itself never returns is the one the message names. Any later NCCL
// call that answers ncclInProgress (a non-blocking communicator may) is polled to completion the
// same way.
//
// In the emulated build the same code runs against the emulator's NCCL shim
// (core/simt/nccl_shim.cpp, docs/distributed.md): the NCCL calls below are the shim's.
#include <cuda_runtime.h>
#include <nccl.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <thread>

#include "core/cuda_check.h"
#include "core/error.h"
#include "core/stream.h"
#include "dist/backends.h"
#include "kernels/elementwise.h"

namespace kiln::dist {

namespace {

#ifdef KILN_DIST_NCCL_SHIM
constexpr bool kEmulated = true;  // one emulated device, shared by every local rank
#else
constexpr bool kEmulated = false;
#endif

class NcclCollectives final : public DeviceCollectives {
 public:
  NcclCollectives(Communicator& host, Watchdog& watchdog) : host_(host), watchdog_(watchdog) {}

  ~NcclCollectives() override {
    if (ready_ != nullptr) cudaEventDestroy(ready_);
    if (done_ != nullptr) cudaEventDestroy(done_);
    if (comm_ == nullptr) return;
    // Destructors only log: a failure here is reported, and the communicator freed regardless.
    if (cudaStreamSynchronize(stream_->get()) != cudaSuccess)
      std::fprintf(stderr, "kiln: rank %d: the NCCL stream failed at exit\n", host_.rank());
    // A non-blocking communicator is finalised (polled until done, within the deadline), then
    // destroyed; one that does not finish in time is aborted instead.
    ncclResult_t state = ncclCommFinalize(comm_);
    const auto start = std::chrono::steady_clock::now();
    while (state == ncclInProgress || state == ncclSuccess) {
      if (ncclCommGetAsyncError(comm_, &state) != ncclSuccess || state != ncclInProgress) break;
      if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() >
          host_.timeout_s())
        break;
      std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    if (state == ncclSuccess) {
      ncclCommDestroy(comm_);
    } else {
      std::fprintf(stderr, "kiln: rank %d: finalising the NCCL communicator failed: %s\n",
                   host_.rank(), ncclGetErrorString(state));
      ncclCommAbort(comm_);
    }
  }

  void start_sum(float* p, int64_t n, float scale) override {
    begin("NCCL all-reduce");
    const Stream compute = current_stream();
    if (scale != 1) kiln::cuda::scale(p, n, scale, compute);
    follow(compute);
    ok(ncclAllReduce(p, p, size_t(n), ncclFloat32, ncclSum, comm_, stream_->get()),
       "ncclAllReduce");
    pending_ = true;
  }

  void broadcast(float* p, int64_t n, int root) override {
    begin("NCCL broadcast");
    follow(current_stream());
    ok(ncclBroadcast(p, p, size_t(n), ncclFloat32, root, comm_, stream_->get()), "ncclBroadcast");
    pending_ = true;
    wait();
  }

  void wait() override {
    if (!pending_) return;
    pending_ = false;
    KILN_CUDA_CHECK(cudaEventRecord(done_, stream_->get()));
    KILN_CUDA_CHECK(cudaStreamWaitEvent(current_stream(), done_, 0));
    watch(what_, [this](ncclResult_t) {
      const cudaError_t e = cudaEventQuery(done_);
      if (e != cudaSuccess && e != cudaErrorNotReady) KILN_CUDA_CHECK(e);
      return e == cudaSuccess;
    });
  }

 private:
  // The watchdog: polls ncclCommGetAsyncError and done(its answer) until done says so; an NCCL
  // error, or the deadline passing, ends the job (see the top of the file).
  template <typename Done>
  void watch(const char* what, Done done) {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    for (int spins = 0;; ++spins) {
      ncclResult_t async = ncclSuccess;
      if (const ncclResult_t r = ncclCommGetAsyncError(comm_, &async); r != ncclSuccess)
        fail(r, "ncclCommGetAsyncError");
      if (async != ncclSuccess && async != ncclInProgress) fail(async, what);
      if (done(async)) return;
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (waited > host_.timeout_s())
        watchdog_.abort_job(what, waited, [this] { ncclCommAbort(comm_); });
      // As the MPI backend: spin briefly, then leave the cores to the ranks still computing.
      if (spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
  }

  // The heartbeat of a new collective, and the communicator at the first one.
  void begin(const char* what) {
    cudaStreamCaptureStatus capturing = cudaStreamCaptureStatusNone;
    KILN_CUDA_CHECK(cudaStreamIsCapturing(current_stream(), &capturing));
    KILN_CHECK(capturing == cudaStreamCaptureStatusNone, "kiln::dist: an ", what,
               " while the current stream is captured into a CUDA graph (GraphStep); the NCCL "
               "backend's watchdog waits for every collective on the host, so data-parallel "
               "training runs the eager step (EagerStep inside DataParallelStep)");
    if (comm_ == nullptr) init();
    what_ = what;
    watchdog_.heartbeat(what);
  }

  // The communication stream waits for what `compute` has queued so far.
  void follow(Stream compute) {
    KILN_CUDA_CHECK(cudaEventRecord(ready_, compute));
    KILN_CUDA_CHECK(cudaStreamWaitEvent(stream_->get(), ready_, 0));
  }

  void init() {
    int devices = 0;
    KILN_CUDA_CHECK(cudaGetDeviceCount(&devices));
    KILN_CHECK(kEmulated || host_.local_size() <= devices, "kiln::dist: rank ", host_.rank(),
               " is local rank ", host_.local_rank(), " of ", host_.local_size(),
               " on its machine, which has ", devices,
               " GPU(s); NCCL needs one GPU per rank: start at most ", devices,
               " ranks per machine, or set KILN_DIST_NCCL=0 to stage CUDA tensors over MPI");
    stream_.emplace(/*non_blocking=*/true);  // no implicit order with the legacy stream
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&ready_, cudaEventDisableTiming));
    KILN_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    ncclUniqueId id{};
    if (host_.rank() == 0) ok(ncclGetUniqueId(&id), "ncclGetUniqueId");
    host_.broadcast_bytes(&id, sizeof id, 0);
    ncclConfig_t config = NCCL_CONFIG_INITIALIZER;
    config.blocking = 0;  // the watchdog bounds the bootstrap (see the top of the file)
    const ncclResult_t r = ncclCommInitRankConfig(&comm_, host_.size(), id, host_.rank(), &config);
    if (r != ncclSuccess && r != ncclInProgress) fail(r, "ncclCommInitRankConfig");
    watchdog_.heartbeat("NCCL init");
    watch("NCCL init", [](ncclResult_t async) { return async == ncclSuccess; });
  }

  // A call on the communicator: ncclInProgress (non-blocking) is polled until it has completed.
  void ok(ncclResult_t r, const char* call) {
    if (r == ncclInProgress && comm_ != nullptr)
      watch(call, [](ncclResult_t async) { return async == ncclSuccess; });
    else if (r != ncclSuccess)
      fail(r, call);
  }

  // An NCCL error ends the job: a collective whose peers went on without this rank cannot be
  // resumed.
  [[noreturn]] void fail(ncclResult_t r, const char* what) {
    const char* detail = comm_ != nullptr ? ncclGetLastError(comm_) : ncclGetLastError(nullptr);
    std::fprintf(stderr, "kiln: rank %d of %d: %s failed: %s%s%s; aborting the job\n", host_.rank(),
                 host_.size(), what, ncclGetErrorString(r),
                 detail != nullptr && *detail != '\0' ? ": " : "", detail != nullptr ? detail : "");
    std::fflush(stderr);
    if (comm_ != nullptr) ncclCommAbort(comm_);
    watchdog_.end_job();
    std::_Exit(3);  // not reached (g++ does not carry [[noreturn]] through a virtual call)
  }

  Communicator& host_;
  Watchdog& watchdog_;
  ncclComm_t comm_ = nullptr;
  std::optional<CudaStream> stream_;  // made with the communicator
  cudaEvent_t ready_ = nullptr, done_ = nullptr;
  bool pending_ = false;
  const char* what_ = "";
};

}  // namespace

std::unique_ptr<DeviceCollectives> connect_nccl(Communicator& host, Watchdog& watchdog) {
  return std::make_unique<NcclCollectives>(host, watchdog);
}

void select_device(const LaunchInfo& info) {
  int devices = 0;
  // No GPU (or no driver: cudaErrorInsufficientDriver): CPU training needs none; a collective of
  // CUDA tensors would fail at its own first CUDA call.
  if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
    (void)cudaGetLastError();
    return;
  }
  KILN_CUDA_CHECK(cudaSetDevice(kEmulated ? 0 : info.local_rank % devices));
}

}  // namespace kiln::dist
