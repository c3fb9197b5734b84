// dist/backends.h — internal: the backends connect() chooses between (not installed).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>

#include "dist/communicator.h"

namespace kiln::dist {

// What a device backend needs from the host backend beside its collectives: a heartbeat on
// entering each collective (so a rank that waits too long can name the ranks that did not arrive)
// and the job's abort: abort_job names them, runs `before` (the device backend's own abort) and
// ends every rank with exit status 3; end_job ends every rank so after an error already reported.
class Watchdog {
 public:
  virtual ~Watchdog() = default;
  virtual void heartbeat(const char* what) = 0;
  [[noreturn]] virtual void abort_job(const char* what, double waited,
                                      const std::function<void()>& before) = 0;
  [[noreturn]] virtual void end_job() = 0;
};

// Collectives of CUDA tensors (f32 device memory), queued on the device. The contract is
// Communicator's: start_sum (p = Σ over ranks of scale·p) may be called several times before
// wait(), which completes them all; broadcast completes before it returns.
class DeviceCollectives {
 public:
  virtual ~DeviceCollectives() = default;
  virtual void start_sum(float* p, int64_t n, float scale) = 0;
  virtual void wait() = 0;
  virtual void broadcast(float* p, int64_t n, int root) = 0;
};

// MPI over the launcher's job (dist/mpi_communicator.cpp); only in a build with MPI.
// `thread_multiple`: initialise MPI for calls from several threads (the emulated device's NCCL
// shim calls MPI from the device's thread).
std::unique_ptr<Communicator> connect_mpi(const LaunchInfo& info, bool thread_multiple);
Watchdog& mpi_watchdog(Communicator& mpi);

// NCCL over the ranks of `host` (dist/nccl_communicator.cpp); only in a build with NCCL (or the
// emulated device's NCCL shim). Makes the NCCL communicator at its first collective.
std::unique_ptr<DeviceCollectives> connect_nccl(Communicator& host, Watchdog& watchdog);
// Picks this process's GPU by its local rank (before any device memory is allocated); a no-op on
// a machine without one.
void select_device(const LaunchInfo& info);

}  // namespace kiln::dist
