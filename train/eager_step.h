// train/eager_step.h — the eager training step, and a batch's home on the device.
//
// EagerStep::run(batch): copy the batch to the device; set the learning rate the schedule gives
// for the optimizer's step; zero the gradients; forward in Mode::train; softmax cross-entropy;
// backward (no dx for the input); clip the gradients' global L2 norm (if asked); one optimizer
// update. Each op is its own launch. On the CPU the loss comes back as a number and a non-finite
// loss or gradient norm throws at once. On CUDA the step never waits for the device: the batch is
// copied asynchronously, the loss, the correct flags and clipping's norm stay on the device, and
// kiln::Metrics adds them there; the loop sees a non-finite loss or norm when it reads the metrics
// (at the progress cadence and the epoch's end), before any checkpoint of that epoch. A fused or
// graph-captured step replaces this one through kiln::Step without changing the loop.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "data/loader.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/trainer.h"

namespace kiln {

// A batch's images ([n][H][W][C] f32) and labels ([n] i32) on a device, in buffers reused from
// batch to batch (a smaller batch is a view of the larger buffers: no steady-state allocation).
//
// On the CPU, upload() copies into the buffers. On CUDA it is the input pipeline: the host copies
// the batch into a page-locked (pinned) staging slot, and the host → device copy is queued on the
// pipeline's own stream (non-blocking), into one of two device buffers in turn; events order it
// after the step that last read that device buffer and before the step that reads it (the current
// stream's work queued after upload()). So batch k + 1's copy can run while batch k computes, and
// upload() waits for nothing it does not have to:
//   - a staging slot is rewritten only once its last copy is known to have run. The host knows that
//     without asking when it has waited for the device since (`host_waits`: pass the count of such
//     waits, Metrics::synchronizations(), and the slots used before the last one are free). Until
//     then a new slot is added, up to kStagingBytes of them (at least two); past that upload()
//     waits for the oldest slot's copy (flow control: the host is that far ahead of the device).
//     Without `host_waits` the ring is two slots (double buffering) and each reuse waits for the
//     copy two batches back.
//   - steady state: the ring stops growing once it covers the batches between two waits (the
//     progress cadence in the Trainer), and from then on neither allocates nor synchronises.
struct DeviceBatch {
  DeviceBatch();
  ~DeviceBatch();
  DeviceBatch(const DeviceBatch&) = delete;
  DeviceBatch& operator=(const DeviceBatch&) = delete;

  // The pinned staging the ring may hold (more only when one batch needs more than half of it).
  static constexpr size_t kStagingBytes = size_t{64} << 20;

  Tensor x, y;  // views of the current batch
  void upload(const data::Batch& batch, Device device);
  void upload(const data::Batch& batch, Device device, uint64_t host_waits);
  // CUDA: also copies `extra_bytes` from `extra` (host memory, read during the call) to device
  // memory that goes with this batch's buffers — the per-step values of a captured step, such as
  // the optimizer's coefficients — at extra() until the upload after next.
  void upload(const data::Batch& batch, Device device, uint64_t host_waits, const void* extra,
              size_t extra_bytes);
  const void* extra() const { return extra_; }
  // CUDA: the number of pinned staging slots (0 before the first upload).
  size_t staging_slots() const;
  // CUDA: which of the two device buffers holds the current batch (0 or 1).
  int target() const { return target_; }

 private:
  struct Pipeline;
  void upload(const data::Batch& batch, Device device, bool known, uint64_t host_waits,
              const void* extra, size_t extra_bytes);
  const void* extra_ = nullptr;
  int target_ = 0;
  Tensor store_x_, store_y_;
  std::unique_ptr<Pipeline> pipeline_;
};

// The device part of a CUDA step, after the upload: zero the gradients, forward in train mode, the
// loss on the device (SoftmaxCrossEntropy::forward_on_device), backward without the input's dx,
// clip_by_norm when clip > 0 (grad_not_finite: i32 [1], allocated on first use), one update. It
// queues everything on the current stream and reads nothing back. The eager step runs it as is; the
// graph step (train/graph_step.h) captures it.
void device_step(Sequential& net, SoftmaxCrossEntropy& criterion, Optimizer& optimizer,
                 const DeviceBatch& batch, double clip, Tensor& grad_not_finite);

struct EagerStepOptions {
  double clip = 0;  // clip the gradients to this global L2 norm; 0: no clipping
};

class EagerStep : public Step {
 public:
  // `net`, `optimizer` (over net's flat parameters and gradients) must outlive the step; the
  // schedule is copied.
  EagerStep(Sequential& net, Optimizer& optimizer, const LrSchedule& schedule, Device device,
            const EagerStepOptions& options = {});
  // On the CPU: throws Diverged (batch_loss) before the backward pass if the loss is not finite,
  // and (gradient_norm) before the update if clipping finds a non-finite norm. On CUDA: no host
  // synchronisation; the metrics carry both (the Trainer throws the same Diverged when it reads).
  void run(const data::Batch& batch, Metrics& metrics) override;
  double lr() const override { return lr_; }
  // The criterion of the last run(): its loss() and correct() (on CUDA a synchronous read of the
  // device's values; kiln::Metrics has them without one).
  const SoftmaxCrossEntropy& criterion() const { return criterion_; }

 private:
  Sequential& net_;
  Optimizer& optimizer_;
  LrSchedule schedule_;
  Device device_;
  EagerStepOptions options_;
  SoftmaxCrossEntropy criterion_;
  DeviceBatch batch_;
  Tensor grad_not_finite_;  // i32 [1] on the device: clipping found a non-finite norm
  double lr_ = 0;
};

}  // namespace kiln
