// dist/mpi_communicator.cpp — the MPI backend: non-blocking collectives on MPI_COMM_WORLD's
// duplicate, polled with a deadline, and heartbeats that let a rank that waits too long name the
// ranks that have not arrived.
//
// Heartbeats: on entering its k-th collective every rank sends k (one int64) to every other rank
// on a second duplicate of the world communicator, and drains what it has received. A rank whose
// collective passes the deadline drains once more and names the ranks whose last heartbeat is
// below k: those have not reached the collective (stopped, hung, or dead). (N-1 eight-byte
// messages per collective and rank: nothing beside a gradient bucket, for the job sizes here.)
#include <mpi.h>

#include <chrono>
#include <cstdio>
#include <deque>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "dist/backends.h"

namespace kiln::dist {

namespace {

class MpiCommunicator final : public Communicator, public Watchdog {
 public:
  MpiCommunicator(const LaunchInfo& info, bool thread_multiple) : Communicator(info) {
    int initialised = 0;
    MPI_Initialized(&initialised);
    const int wanted = thread_multiple ? MPI_THREAD_MULTIPLE : MPI_THREAD_FUNNELED;
    int provided = 0;
    if (!initialised) {
      MPI_Init_thread(nullptr, nullptr, wanted, &provided);
      owns_mpi_ = true;
    } else {
      MPI_Query_thread(&provided);
    }
    KILN_CHECK(provided >= wanted, "kiln::dist: this MPI gives thread level ", provided,
               " where the emulated device's NCCL needs MPI_THREAD_MULTIPLE (", wanted,
               "); use an MPI built with thread support, or KILN_DIST_NCCL=0");
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    int rank = -1, size = -1;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    KILN_CHECK(rank == info.rank && size == info.size, "kiln::dist: MPI says rank ", rank, " of ",
               size, " but the launcher's environment says ", info.rank, " of ", info.size,
               "; start the job with the mpirun of the MPI Kiln was built with");
    ok(MPI_Comm_dup(MPI_COMM_WORLD, &comm_), "MPI_Comm_dup");
    ok(MPI_Comm_dup(MPI_COMM_WORLD, &beats_), "MPI_Comm_dup");
    MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);
    MPI_Comm_set_errhandler(beats_, MPI_ERRORS_RETURN);
    seen_.assign(size_t(size), 0);
  }

  ~MpiCommunicator() override {
    release_device();  // the NCCL communicator and its streams, while MPI is still up
    // Unsent heartbeats to a rank that is gone must not block the exit.
    for (auto& s : sends_) MPI_Request_free(&s.request);
    MPI_Comm_free(&beats_);
    MPI_Comm_free(&comm_);
    if (owns_mpi_) MPI_Finalize();
  }

  Backend backend() const override { return Backend::mpi; }

  void heartbeat(const char* what) override { enter(what); }
  [[noreturn]] void end_job() override {
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::_Exit(3);
  }

  void all_reduce_sum(double* p, int64_t n) override {
    start_sum(p, n, MPI_DOUBLE);
    wait_all();
  }
  void broadcast_bytes(void* p, int64_t bytes, int root) override {
    start_broadcast(p, bytes, MPI_BYTE, root);
    wait_all();
  }

 protected:
  void start_sum(float* p, int64_t n) override { start_sum(p, n, MPI_FLOAT); }
  void broadcast_host(float* p, int64_t n, int root) override {
    start_broadcast(p, n, MPI_FLOAT, root);
    wait_all();
  }
  void barrier_host() override {
    enter("barrier");
    ok(MPI_Ibarrier(comm_, &pending()), "MPI_Ibarrier");
    wait_all();
  }

  // Each collective: a heartbeat (enter), then the non-blocking call, its request left pending.
  void start_sum(void* p, int64_t n, MPI_Datatype type) {
    enter("all-reduce");
    ok(MPI_Iallreduce(MPI_IN_PLACE, p, count(n), type, MPI_SUM, comm_, &pending()),
       "MPI_Iallreduce");
  }
  void start_broadcast(void* p, int64_t n, MPI_Datatype type, int root) {
    enter("broadcast");
    ok(MPI_Ibcast(p, count(n), type, root, comm_, &pending()), "MPI_Ibcast");
  }
  MPI_Request& pending() {
    pending_.push_back(MPI_REQUEST_NULL);
    return pending_.back();
  }

  // Polls every pending request until all are done or the deadline (timeout_s() after the wait
  // began) passes; then names the missing ranks and aborts the job.
  void wait_all() override {
    using clock = std::chrono::steady_clock;
    const auto start = clock::now();
    int spins = 0;
    while (!pending_.empty()) {
      int done = 0;
      ok(MPI_Testall(int(pending_.size()), pending_.data(), &done, MPI_STATUSES_IGNORE),
         "MPI_Testall");
      if (done) break;
      const double waited = std::chrono::duration<double>(clock::now() - start).count();
      if (waited > timeout_s()) abort_job(what_, waited, nullptr);
      // Spin briefly (a short step's collectives finish in microseconds), then sleep so that
      // ranks sharing few cores leave them to the ranks still computing.
      if (++spins > 1000) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    pending_.clear();
  }

 private:
  static int count(int64_t n) {
    KILN_CHECK(n >= 0 && n <= int64_t(1) << 30, "kiln::dist: a collective of ", n,
               " elements is more than one MPI call moves (2^30); split the buffer");
    return int(n);
  }

  // MPI's error handler returns the code (MPI_ERRORS_RETURN): an error in a collective means a
  // peer is gone, so the job is aborted with the reason rather than left to hang.
  void ok(int code, const char* call) {
    if (code == MPI_SUCCESS) return;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    MPI_Error_string(code, text, &len);
    std::fprintf(stderr, "kiln: rank %d of %d: %s failed: %.*s; aborting the job\n", rank(), size(),
                 call, len, text);
    std::fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 3);
  }

  // A new collective: send its number to every other rank, record what the others sent.
  void enter(const char* what) {
    ++seq_;
    what_ = what;
    for (auto it = sends_.begin(); it != sends_.end();) {
      int done = 0;
      MPI_Test(&it->request, &done, MPI_STATUS_IGNORE);
      it = done ? sends_.erase(it) : it + 1;
    }
    for (int peer = 0; peer < size(); ++peer) {
      if (peer == rank()) continue;
      sends_.push_back({MPI_REQUEST_NULL, std::make_unique<int64_t>(seq_)});
      MPI_Isend(sends_.back().value.get(), 1, MPI_INT64_T, peer, 0, beats_, &sends_.back().request);
    }
    drain();
  }

  void drain() {
    for (;;) {
      int flag = 0;
      MPI_Status st;
      MPI_Iprobe(MPI_ANY_SOURCE, 0, beats_, &flag, &st);
      if (!flag) return;
      int64_t k = 0;
      MPI_Recv(&k, 1, MPI_INT64_T, st.MPI_SOURCE, 0, beats_, MPI_STATUS_IGNORE);
      seen_[size_t(st.MPI_SOURCE)] = std::max(seen_[size_t(st.MPI_SOURCE)], k);
    }
  }

  [[noreturn]] void abort_job(const char* what, double waited,
                              const std::function<void()>& before) override {
    drain();
    std::string missing;
    for (int peer = 0; peer < size(); ++peer)
      if (peer != rank() && seen_[size_t(peer)] < seq_)
        missing += (missing.empty() ? "" : ", ") + std::to_string(peer);
    if (missing.empty()) missing = "unknown (all reached it; a rank stopped inside it)";
    std::fprintf(stderr,
                 "kiln: rank %d of %d: %s #%lld has waited %.0f s for rank(s) %s, which did not "
                 "reach it (stopped, hung or dead); aborting the job (the limit is "
                 "KILN_DIST_TIMEOUT=%.0f s)\n",
                 rank(), size(), what, static_cast<long long>(seq_), waited, missing.c_str(),
                 timeout_s());
    std::fflush(stderr);
    if (before) before();
    MPI_Abort(MPI_COMM_WORLD, 3);
    std::_Exit(3);
  }

  struct Send {
    MPI_Request request;
    std::unique_ptr<int64_t> value;
  };

  bool owns_mpi_ = false;
  MPI_Comm comm_ = MPI_COMM_NULL, beats_ = MPI_COMM_NULL;
  std::vector<MPI_Request> pending_;
  std::deque<Send> sends_;
  std::vector<int64_t> seen_;  // the last heartbeat of each rank
  int64_t seq_ = 0;
  const char* what_ = "";
};

}  // namespace

std::unique_ptr<Communicator> connect_mpi(const LaunchInfo& info, bool thread_multiple) {
  return std::make_unique<MpiCommunicator>(info, thread_multiple);
}

Watchdog& mpi_watchdog(Communicator& mpi) {
  return dynamic_cast<MpiCommunicator&>(mpi);
}

}  // namespace kiln::dist
