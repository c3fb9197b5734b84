// dist/communicator.h — the collectives data-parallel training needs, over the ranks of one job.
//
//   auto comm = kiln::dist::connect();          // alone: a one-rank communicator, no MPI at all
//   comm->broadcast(net.flat_params(), 0);      // every rank starts from rank 0's weights
//   comm->all_reduce_average(net.flat_grads()); // the mean gradient, the same bits on every rank
//
// Backends: `self` (one process: every collective is the identity, nothing is initialised),
// `mpi` (host memory: CPU tensors, and CUDA tensors staged through host memory) and `nccl` (CUDA
// tensors, in a build with NCCL: dist/nccl_communicator.cpp). Which host backend connect() gives is
// decided by the launcher's environment (dist/launch.h): started by mpirun or srun it initialises
// MPI, otherwise it does not; a build without MPI refuses a launch of more than one rank. CUDA
// tensors go to NCCL whenever the build has it and the job has more than one rank
// (device_backend() says which; KILN_DIST_NCCL=0 stages them over MPI instead, =1 asks for NCCL
// even alone and fails, naming the reason, in a build without it).
//
// Contract of every collective: all ranks call the same collectives in the same order with tensors
// of the same shape and dtype (f32, contiguous); the result is bitwise identical on every rank.
// Asynchronous all-reduces (start_all_reduce_sum) may be in flight together; wait() completes them
// all, in any order, and the tensors must not be touched before it returns. On the NCCL backend
// the collectives of CUDA tensors are queued on the backend's own communication stream, after the
// work already queued on kiln::current_stream() (an event), and wait() makes the current stream's
// later work wait for them; wait() also holds the host until they are done, polling their
// completion and NCCL's asynchronous error against the deadline below (Kiln's watchdog).
//
// Faults: a collective that has not completed after `timeout_s` (KILN_DIST_TIMEOUT, seconds;
// 300 by default) means a rank is stopped, hung or dead. The waiting rank prints which ranks have
// not reached the collective, then aborts the whole job (exit status 3), so no rank hangs silently.
// An MPI error (a rank died) is reported the same way through MPI's error handler; an NCCL error
// (ncclCommGetAsyncError) or an NCCL collective past the deadline aborts the NCCL communicator
// (ncclCommAbort) first. The NCCL bootstrap (the communicator is made non-blocking at the first
// collective of a CUDA tensor) is watched against the same deadline, so a rank hung inside
// NCCL's init is named too.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "dist/launch.h"

namespace kiln::dist {

enum class Backend { self, mpi, nccl };
class DeviceCollectives;  // dist/backends.h
const char* backend_name(Backend b);

class Communicator {
 public:
  virtual ~Communicator();
  Communicator(const Communicator&) = delete;
  Communicator& operator=(const Communicator&) = delete;

  int rank() const { return info_.rank; }
  int size() const { return info_.size; }
  int local_rank() const { return info_.local_rank; }
  int local_size() const { return info_.local_size; }
  const LaunchInfo& launch() const { return info_; }
  // The backend of host memory (CPU tensors and the host-memory forms below).
  virtual Backend backend() const = 0;
  // The backend of CUDA tensors: nccl, or backend() when they are staged through host memory.
  Backend device_backend() const;

  // t = Σ over ranks of t.
  void all_reduce_sum(Tensor& t);
  // t = (Σ over ranks of t) / size().
  void all_reduce_average(Tensor& t);
  // Every rank's t = root's t.
  void broadcast(Tensor& t, int root);
  // Starts t = Σ over ranks of (scale · t) without waiting; wait() completes every one started.
  void start_all_reduce_sum(Tensor& t, float scale = 1);
  void wait();
  void barrier();

  // Host-memory forms, for small values: sums of n doubles (sample counts), and `bytes` bytes from
  // root (seeds and counters).
  virtual void all_reduce_sum(double* p, int64_t n) = 0;
  virtual void broadcast_bytes(void* p, int64_t bytes, int root) = 0;

  // Seconds a collective may take before the job is aborted (KILN_DIST_TIMEOUT, default 300).
  double timeout_s() const { return timeout_s_; }
  void set_timeout_s(double s) { timeout_s_ = s; }

 protected:
  explicit Communicator(LaunchInfo info);
  // f32 host memory: start (t = Σ t), complete all started, broadcast, barrier.
  virtual void start_sum(float* p, int64_t n) = 0;
  virtual void wait_all() = 0;
  virtual void broadcast_host(float* p, int64_t n, int root) = 0;
  virtual void barrier_host() = 0;
  // Ends the device backend (first, in a backend's destructor: it needs the host backend's MPI).
  void release_device();

 private:
  friend std::unique_ptr<Communicator> connect();
  void check(const Tensor& t, const char* what) const;

  LaunchInfo info_;
  double timeout_s_ = 300;
  // CUDA tensors in flight: each staged in host memory until wait() copies it back.
  struct Staged;
  std::vector<std::unique_ptr<Staged>> staged_;
  // CUDA tensors' collectives when they do not go through host memory (the NCCL backend).
  std::unique_ptr<DeviceCollectives> device_;
};

// The communicator of this process: `self` when no launcher started it (or a launcher started a
// job of one rank), else MPI. Sets the OpenMP threads of this rank to
// threads_per_rank(cores, local ranks) unless OMP_NUM_THREADS says otherwise. Call once, before
// training; the communicator finalises MPI when destroyed.
std::unique_ptr<Communicator> connect();

// Whether this kiln_dist has the NCCL backend (real NCCL, or the emulated device's shim).
bool nccl_built();

// The one-rank communicator (what connect() gives a process started by hand).
std::unique_ptr<Communicator> connect_self();

}  // namespace kiln::dist
