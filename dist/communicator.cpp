// dist/communicator.cpp — the backend-independent half of Communicator (checks, CUDA staging),
// the one-rank backend, and connect().
#include "dist/communicator.h"

#include <cstdlib>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/error.h"
#include "dist/backends.h"

namespace kiln::dist {

const char* backend_name(Backend b) {
  switch (b) {
    case Backend::self:
      return "self";
    case Backend::mpi:
      return "mpi";
  }
  return "?";
}

struct Communicator::Staged {
  Tensor* device = nullptr;  // where the result goes back
  Tensor host;
};

Communicator::~Communicator() = default;

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

class SelfCommunicator final : public Communicator {
 public:
  SelfCommunicator() : Communicator(LaunchInfo{}) {}
  Backend backend() const override { return Backend::self; }
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

std::unique_ptr<Communicator> connect() {
  const LaunchInfo info = launch_info();
#ifdef _OPENMP
  if (info.launched && std::getenv("OMP_NUM_THREADS") == nullptr)
    omp_set_num_threads(threads_per_rank(omp_get_num_procs(), info.local_size));
#endif
  if (info.size == 1) return connect_self();
#ifdef KILN_DIST_HAVE_MPI
  return connect_mpi(info);
#else
  KILN_FAIL("kiln::dist: started as rank ", info.rank, " of ", info.size, " by ", info.launcher,
            ", but this Kiln was built without MPI; install libopenmpi-dev and rebuild, or run "
            "one process");
#endif
}

}  // namespace kiln::dist
