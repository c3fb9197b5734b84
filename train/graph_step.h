// train/graph_step.h — the CUDA training step as a CUDA graph: captured once, replayed every step.
//
//   kiln::GraphStep step(net, optimizer, schedule, {.clip = 5});   // the model on Device::cuda
//   kiln::Trainer trainer(loader, step, options);                   // as with EagerStep
//
// The step is EagerStep's device part (device_step in train/eager_step.h: forward, loss, backward,
// clipping, the optimizer's update) on a stream of the step's own. Per step the host only uploads
// the batch (DeviceBatch's pipeline) and launches: once a batch size has run eagerly without
// allocating device memory (the first step of each size sizes every buffer and workspace, so the
// addresses are fixed from then on: the memory plan), the next step of that size is captured and
// every later one replays the graph — one graph launch, no host synchronisation, no allocation.
// What changes from step to step reaches the graph through device memory at fixed addresses: the
// batch (one of DeviceBatch's two device buffers, so there is one graph per buffer and batch size;
// a smaller last batch gets graphs of its own, padding it would change the loss and the batch
// statistics), the optimizer's coefficients — the learning rate of the schedule and the step
// count folded in on the host, exactly as an eager update computes them — and the network's
// device-readable counters (CounterRef::device, layers/layer.h: dropout's random-stream offsets),
// all copied with the batch (DeviceBatch::upload's extra bytes). The host keeps advancing the
// counters, and the integer buffers no kernel reads (BatchNorm2d's num_batches_tracked), as the
// eager step does (a replay adds what the captured step added), so checkpoints see the same values, and every replay draws the masks the eager step would: the graph never changes
// and its weights equal the eager step's bit for bit. The metrics' small kernel is queued after
// each launch (its "first batch" flag differs).
//
// Refused: a network with a backward hook (Sequential::on_layer_backward: host code, such as data
// parallelism's all-reduce, that a replay would skip). Refused, with an error naming the counter,
// after the first (eager) step: a counter that advances
// every step but has no device slot (host state a replay cannot advance), or a device-readable
// counter that advances more than once per step (the slot holds one value). A device allocation in
// an eager step, or between two steps (a validation pass with a larger batch grows the layers'
// buffers, say), drops the graphs, since a buffer that grows moves: the next step of each size
// runs eagerly and captures again.
#pragma once

#include <cstdint>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "core/stream.h"
#include "train/eager_step.h"

namespace kiln {

struct GraphStepOptions {
  double clip = 0;  // clip the gradients to this global L2 norm; 0: no clipping
};

class GraphStep : public Step {
 public:
  // `net` (on Device::cuda) and `optimizer` (over its flat parameters and gradients) must outlive
  // the step; the schedule is copied.
  GraphStep(Sequential& net, Optimizer& optimizer, const LrSchedule& schedule,
            const GraphStepOptions& options = {});
  ~GraphStep() override;
  void run(const data::Batch& batch, Metrics& metrics) override;
  double lr() const override { return lr_; }
  const SoftmaxCrossEntropy& criterion() const { return criterion_; }
  // Graphs captured and graph launches so far; the steps run eagerly (each batch size's first).
  int64_t graphs() const { return int64_t(graphs_.size()); }
  int64_t replays() const { return replays_; }
  int64_t eager_steps() const { return eager_; }

 private:
  // How far a step advanced each of net_.counters() and each integer buffer of net_.buffers().
  struct Advance {
    std::vector<uint64_t> counters;
    std::vector<int64_t> scalars;
  };
  // Runs body() (an eager step or the capture) and returns its Advance; throws for a counter a
  // replay could not reproduce.
  template <typename F>
  Advance run_counted(const std::vector<CounterRef>& counters, const std::vector<int64_t*>& scalars,
                      F&& body);

  Sequential& net_;
  Optimizer& optimizer_;
  LrSchedule schedule_;
  GraphStepOptions options_;
  CudaStream stream_;
  SoftmaxCrossEntropy criterion_;
  DeviceBatch batch_;
  Tensor grad_not_finite_;
  // The bytes copied with each batch: the optimizer's coefficients, then (8-byte aligned) the
  // value of every device-readable counter before the step.
  std::vector<unsigned char> extra_;
  size_t counters_at_ = 0;  // where the counters start in extra_
  // A graph, the loss and correct flags it writes (views of the criterion's buffers as they were
  // at the capture: the criterion's own views follow the last batch the host ran), and what the
  // captured step advanced on the host (what a replay adds).
  struct Captured {
    CudaGraph graph;
    Tensor loss, correct;
    Advance advance;
  };
  std::map<std::pair<int64_t, int>, Captured> graphs_;  // by (batch size, device buffer)
  std::set<int64_t> planned_;      // batch sizes whose eager step allocated nothing
  uint64_t allocations_seen_ = 0;  // device allocations when the last step ended
  int64_t replays_ = 0, eager_ = 0;
  double lr_ = 0;
};

}  // namespace kiln
