// dist/communicator.cpp — the backend-independent half of Communicator (checks, CUDA staging or
// the device backend), the one-rank backend, and connect().
#include "dist/communicator.h"

#include <cstdio>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "dist/backends.h"
#include "kernels/elementwise.h"

namespace kiln::dist {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::self:
      return "self";
    case Backend::mpi:
      return "mpi";
    case Backend::nccl:
      return "nccl";
  }
  return "?";
}

struct Communicator::Staged {
  Tensor* device = nullptr;  // where the result goes back
  Tensor host;
};

Communicator::~Communicator() = default;

Backend Communicator::device_backend() const {
  return device_ ? Backend::nccl : backend();
}

void Communicator::release_device() {
  device_.reset();
}

Communicator::Communicator(LaunchInfo info) : info_(std::move(info)) {
  if (const char* t = std::getenv("KILN_DIST_TIMEOUT")) {
    char* end = nullptr;
    const double s = std::strtod(t, &end);
    KILN_CHECK(end != t && *end == '\0' && s > 0, "KILN_DIST_TIMEOUT='", t,
               "' is not a positive number of seconds; unset it for the default (300)");
    timeout_s_ = s;
  }
}

void Communicator::check(const Tensor& t, const char* what) const {
  KILN_CHECK(t.defined(), "kiln::dist::", what, ": the tensor is empty");
  KILN_CHECK(t.dtype() == DType::f32, "kiln::dist::", what, ": ", t.str(),
             " is not f32; collectives move f32 tensors (convert with .to(DType::f32))");
}

namespace {
void scale_host(Tensor& t, float scale) {
  if (scale == 1) return;
  float* p = t.data<float>();
  for (int64_t i = 0; i < t.numel(); ++i) p[i] *= scale;
}
}  // namespace

void Communicator::start_all_reduce_sum(Tensor& t, float scale) {
  check(t, "all_reduce_sum");
  if (t.is_cuda() && device_) {
    device_->start_sum(t.data<float>(), t.numel(), scale);
    return;
  }
  if (t.is_cuda()) {
    if (size() == 1 && scale == 1) return;
    auto s = std::make_unique<Staged>();
    s->device = &t;
    s->host = t.to(Device::cpu);
    scale_host(s->host, scale);
    if (size() > 1) start_sum(s->host.data<float>(), s->host.numel());
    staged_.push_back(std::move(s));
    return;
  }
  scale_host(t, scale);
  if (size() > 1) start_sum(t.data<float>(), t.numel());
}

void Communicator::wait() {
  if (device_) device_->wait();
  if (size() > 1) wait_all();
  for (auto& s : staged_) s->device->copy_from(s->host);
  staged_.clear();
}

void Communicator::all_reduce_sum(Tensor& t) {
  start_all_reduce_sum(t);
  wait();
}

void Communicator::all_reduce_average(Tensor& t) {
  check(t, "all_reduce_average");
  if (t.is_cuda() && device_) {
    // As below: the sum, then one rounding by 1/size, queued after it on the current stream.
    device_->start_sum(t.data<float>(), t.numel(), 1);
    device_->wait();
    if (size() > 1) kiln::scale(t, 1.0 / double(size()));
    return;
  }
  if (size() == 1) return;
  Tensor host = t.to(Device::cpu);
  start_sum(host.data<float>(), host.numel());
  wait_all();
  // One rounding, the same on every rank: the sum is already identical everywhere.
  scale_host(host, 1.0f / static_cast<float>(size()));
  t.copy_from(host);
}

void Communicator::broadcast(Tensor& t, int root) {
  check(t, "broadcast");
  KILN_CHECK(root >= 0 && root < size(), "kiln::dist::broadcast: root ", root,
             " is not a rank of this job (0..", size() - 1, ")");
  if (t.is_cuda() && device_) {
    device_->broadcast(t.data<float>(), t.numel(), root);
    return;
  }
  if (size() == 1) return;
  if (t.is_cuda()) {
    Tensor host = t.to(Device::cpu);
    broadcast_host(host.data<float>(), host.numel(), root);
    t.copy_from(host);
    return;
  }
  broadcast_host(t.data<float>(), t.numel(), root);
}

void Communicator::barrier() {
  if (size() > 1) barrier_host();
}

namespace {

class SelfCommunicator final : public Communicator, public Watchdog {
 public:
  explicit SelfCommunicator(LaunchInfo info = {}) : Communicator(std::move(info)) {}
  ~SelfCommunicator() override { release_device(); }
  Backend backend() const override { return Backend::self; }
  // Alone, only the device itself can be what a collective waits for.
  void heartbeat(const char*) override {}
  [[noreturn]] void abort_job(const char* what, double waited,
                              const std::function<void()>& before) override {
    std::fprintf(stderr,
                 "kiln: rank 0 of 1: %s has waited %.0f s for the device; aborting (the limit is "
                 "KILN_DIST_TIMEOUT=%.0f s)\n",
                 what, waited, timeout_s());
    std::fflush(stderr);
    if (before) before();
    std::_Exit(3);
  }
  [[noreturn]] void end_job() override { std::_Exit(3); }
  void all_reduce_sum(double*, int64_t) override {}
  void broadcast_bytes(void*, int64_t, int) override {}

 protected:
  void start_sum(float*, int64_t) override {}
  void wait_all() override {}
  void broadcast_host(float*, int64_t, int) override {}
  void barrier_host() override {}
};

}  // namespace

std::unique_ptr<Communicator> connect_self() {
  return std::make_unique<SelfCommunicator>();
}

namespace {

#ifdef KILN_DIST_HAVE_NCCL
constexpr bool kHaveNccl = true;
#else
constexpr bool kHaveNccl = false;
#endif
#ifdef KILN_DIST_NCCL_SHIM
constexpr bool kNcclShim = true;  // the emulated device's NCCL, over MPI from the device thread
#else
constexpr bool kNcclShim = false;
#endif

// KILN_DIST_NCCL: unset (NCCL for CUDA tensors when built and the job has several ranks), 0 (stage
// them through host memory) or 1 (NCCL, also for one rank).
int nccl_wanted() {
  const char* v = std::getenv("KILN_DIST_NCCL");
  if (v == nullptr || *v == '\0') return -1;
  const std::string s(v);
  KILN_CHECK(s == "0" || s == "1", "KILN_DIST_NCCL='", s,
             "' is neither 0 (stage CUDA tensors over MPI) nor 1 (NCCL); unset it for the default");
  return s == "1";
}

}  // namespace

bool nccl_built() {
  return kHaveNccl;
}

std::unique_ptr<Communicator> connect() {
  const LaunchInfo info = launch_info();
#ifdef _OPENMP
  if (info.launched && std::getenv("OMP_NUM_THREADS") == nullptr)
    omp_set_num_threads(threads_per_rank(omp_get_num_procs(), info.local_size));
#endif
  const int wanted = nccl_wanted();
  KILN_CHECK(wanted != 1 || kHaveNccl,
             "kiln::dist: KILN_DIST_NCCL=1 asks for the NCCL backend, but this Kiln was built "
             "without it (it needs MPI, and nccl.h and libnccl.so.2 beside the CUDA toolkit's "
             "headers and libraries, or the emulated device); unset KILN_DIST_NCCL to stage CUDA "
             "tensors through host memory");
  const bool nccl = kHaveNccl && (wanted == 1 || (wanted == -1 && info.size > 1));
  std::unique_ptr<Communicator> comm;
  Watchdog* watchdog = nullptr;
  if (info.size == 1) {
    auto self = std::make_unique<SelfCommunicator>(info);
    watchdog = self.get();
    comm = std::move(self);
  } else {
#ifdef KILN_DIST_HAVE_MPI
    comm = connect_mpi(info, nccl && kNcclShim);
    watchdog = &mpi_watchdog(*comm);
#else
    KILN_FAIL("kiln::dist: started as rank ", info.rank, " of ", info.size, " by ", info.launcher,
              ", but this Kiln was built without MPI; install libopenmpi-dev and rebuild, or run "
              "one process");
#endif
  }
#ifdef KILN_DIST_HAVE_NCCL
  if (nccl) {
    select_device(info);
    comm->device_ = connect_nccl(*comm, *watchdog);
  }
#else
  (void)watchdog;
#endif
  return comm;
}

}  // namespace kiln::dist
