// dist/communicator.h — the collectives data-parallel training needs, over the ranks of one job.
//
//   auto comm = kiln::dist::connect();          // alone: a one-rank communicator, no MPI at all
//   comm->broadcast(net.flat_params(), 0);      // every rank starts from rank 0's weights
//   comm->all_reduce_average(net.flat_grads()); // the mean gradient, the same bits on every rank
//
// Backends: `self` (one process: every collective is the identity, nothing is initialised) and
// `mpi` (CPU tensors; CUDA tensors are staged through host memory). Which one connect() gives is
// decided by the launcher's environment (dist/launch.h): started by mpirun or srun it initialises
// MPI, otherwise it does not; a build without MPI refuses a launch of more than one rank.
//
// Contract of every collective: all ranks call the same collectives in the same order with tensors
// of the same shape and dtype (f32, contiguous); the result is bitwise identical on every rank.
// Asynchronous all-reduces (start_all_reduce_sum) may be in flight together; wait() completes them
// all, in any order, and the tensors must not be touched before it returns.
//
// Faults: a collective that has not completed after `timeout_s` (KILN_DIST_TIMEOUT, seconds;
// 300 by default) means a rank is stopped, hung or dead. The waiting rank prints which ranks have
// not reached the collective, then aborts the whole job (exit status 3), so no rank hangs silently.
// An MPI error (a rank died) is reported the same way through MPI's error handler.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/tensor.h"
#include "dist/launch.h"

namespace kiln::dist {

enum class Backend { self, mpi };
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
  virtual Backend backend() const = 0;

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

 private:
  void check(const Tensor& t, const char* what) const;

  LaunchInfo info_;
  double timeout_s_ = 300;
  // CUDA tensors in flight: each staged in host memory until wait() copies it back.
  struct Staged;
  std::vector<std::unique_ptr<Staged>> staged_;
};

// The communicator of this process: `self` when no launcher started it (or a launcher started a
// job of one rank), else MPI. Sets the OpenMP threads of this rank to
// threads_per_rank(cores, local ranks) unless OMP_NUM_THREADS says otherwise. Call once, before
// training; the communicator finalises MPI when destroyed.
std::unique_ptr<Communicator> connect();

// The one-rank communicator (what connect() gives a process started by hand).
std::unique_ptr<Communicator> connect_self();

}  // namespace kiln::dist
