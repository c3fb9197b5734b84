// train/trainer.h — the training loop as a library facility: epochs of steps over a data::Loader,
// with hooks for what differs between programs. A program calls it; it is not a framework.
//
//   kiln::EagerStep step(net, optimizer, schedule, device, {.clip = 5});
//   kiln::Trainer trainer(loader, step, {.epochs = 30, .classes = 7});
//   trainer.validate = [&] { return my_validation(); };
//   trainer.checkpoint = [&](const kiln::EpochRecord& r) { save(r); };   // every N epochs, at the end
//   kiln::TrainResult result = trainer.run();
//
// The parts, and who may replace them:
//   Step        one training step on a batch (forward, loss, backward, clipping, update). Eager
//               today (train/eager_step.h); a fused or graph-captured step replaces it without
//               touching the loop.
//   Metrics     the epoch's running loss and accuracy. The loop reads them only when the progress
//               hook is due and at the end of an epoch, never per step, so a step may keep them
//               on the device.
//   Loader      the batches; its sampler (data/loader.h) decides the order and the shard.
//   hooks       validate, checkpoint (cadence: every `checkpoint_every` epochs and at the end),
//               epoch_end, progress (ProgressHook; the default prints train/progress.h's line).
// The divergence rule (DivergenceRule below) is the library's: it throws kiln::Diverged, which a
// program may catch to add advice in terms of its own options.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/tensor.h"
#include "data/loader.h"

namespace kiln {

// Mean loss and accuracy over `count` samples.
struct MetricValues {
  double loss = 0, accuracy = 0;
  int64_t count = 0;
  bool gradient_not_finite = false;  // a batch's gradient norm was not finite (device steps)
};

// The running sums of an epoch's training metrics.
//
// Two ways in: add(numbers) for a step that has the batch's loss and correct count on the host (the
// CPU step), and add(tensors) for a step whose values stay on the device (the CUDA step): it
// queues one small kernel on the current stream that adds the batch's loss, correct count and
// non-finite flags to sums on the device, so no step waits for the GPU. read() brings the sums to
// the host — through pinned memory, after an event on the stream of the last add: the only host
// synchronisation, which the trainer asks for at the progress hook's cadence and at the end of an
// epoch. Either way the arithmetic is the same (Σ double(mean loss) × count in double), so a CPU and
// a device run of the same numbers read the same sums. Adds on the device go on one stream (or on
// streams the caller orders).
class Metrics {
 public:
  Metrics();
  ~Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Adds a batch of `count` samples whose mean loss is `mean_loss` and of which `correct` were
  // predicted right.
  void add(double mean_loss, int64_t correct, int64_t count);
  // Adds a batch from tensors on one device (as kernels/softmax_xent.h's accumulate_metrics):
  // loss [1] the batch's mean loss, correct [n] i32 one flag per sample, grad_not_finite i32 [1]
  // (nonzero: the batch's gradient norm was not finite) or nullptr. Nothing is read back.
  void add(const Tensor& loss, const Tensor& correct, const Tensor* grad_not_finite = nullptr);
  // The mean loss and accuracy of the batches added since reset() (zeros before any).
  MetricValues read() const;
  void reset();
  // How many times read() has waited for the device (monotonic; reset() keeps it). Everything
  // queued on the adds' stream before the last such read has run.
  uint64_t synchronizations() const { return synchronizations_; }

 private:
  struct OnDevice;
  double loss_sum_ = 0;
  int64_t correct_ = 0, count_ = 0;
  mutable uint64_t synchronizations_ = 0;
  std::unique_ptr<OnDevice> device_;  // the sums of add(tensors), once there was one
};

// One training step. run() trains on `batch` and adds the batch's loss and correct count to
// `metrics`; it throws kiln::Diverged when it sees a non-finite loss or gradient (a step that
// cannot see them without waiting for the device leaves that to the loop, which checks the
// metrics whenever it reads them).
class Step {
 public:
  virtual ~Step() = default;
  virtual void run(const data::Batch& batch, Metrics& metrics) = 0;
  // The learning rate of the last run(), recorded in the epoch's history.
  virtual double lr() const = 0;
  // The images the last run() trained on, for the loop's images/s: the batch's own size, or the
  // whole job's for a data-parallel step (dist/data_parallel.h) whose ranks share a global batch.
  virtual int64_t images(const data::Batch& batch) const { return batch.size; }
};

// Thrown when a run diverges. fact() says what was seen and where ("the training loss is not
// finite (nan) at epoch 3, batch 7"); what() adds generic advice. Epochs and batches are 1-based.
class Diverged : public Error {
 public:
  enum class Kind {
    batch_loss,     // a batch's loss (or the running loss) is not finite
    gradient_norm,  // the gradients' global norm is not finite
    epoch_loss,     // an epoch's mean training or validation loss broke the divergence rule
  };
  Diverged(Kind kind, std::string fact, int64_t epoch, const char* file, int line);
  Kind kind() const { return kind_; }
  const std::string& fact() const { return fact_; }
  int64_t epoch() const { return epoch_; }

 private:
  Kind kind_;
  std::string fact_;
  int64_t epoch_;
};

// An epoch's record, as the history keeps it. `epoch` is 1-based; the validation values are NaN
// when the trainer has no validate hook; `seconds` covers training and validation.
struct EpochRecord {
  int64_t epoch = 0;
  double train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, lr = 0, seconds = 0;
  bool best = false;  // the best validation accuracy so far (strictly better than every earlier)
};

// The divergence rule: an epoch whose mean training or validation loss is not finite, or above
// factor × max(ln(classes), the first epoch's training loss), stops the run. ln(classes) is the
// loss of a uniform guess, so the limit is never below factor × chance; in the first epoch it is
// factor × ln(classes). check() judges the last epoch of `history` (its validation loss only if
// `validated`) and throws Diverged (Kind::epoch_loss) naming the loss, the limit and the epoch.
struct DivergenceRule {
  double factor = 10;
  void check(const std::vector<EpochRecord>& history, int classes, bool validated = true) const;
};

// What the progress hook is shown. `epoch` and `batch` are 0-based.
struct ProgressInfo {
  int64_t epoch = 0, epochs = 0, batch = 0, batches = 0;
  MetricValues train;       // of the epoch so far
  double images_per_s = 0;  // of this run so far (validation and saves included)
  double seconds_left = 0;  // estimated, for the rest of this run
};

// Progress reporting. due() is asked after every step and must not read device values; show() is
// called only when it said yes, with metrics read for it.
class ProgressHook {
 public:
  virtual ~ProgressHook() = default;
  virtual bool due(int64_t batch, int64_t batches) = 0;
  virtual void show(const ProgressInfo& info) = 0;
  virtual void end_epoch() {}  // after the epoch's last batch, before validation
};

struct TrainerOptions {
  int64_t epochs = 1;            // train epochs [epochs done, epochs)
  int classes = 0;               // for the divergence rule's ln(classes); at least 2
  int64_t stop_after = 0;        // stop after this many epochs of this run (0: never)
  int64_t checkpoint_every = 1;  // the checkpoint hook's cadence in epochs (and the run's end)
  DivergenceRule divergence{};
};

struct TrainResult {
  bool stopped_early = false;    // stop_after ended the run before `epochs`
  int64_t epochs_run = 0;        // epochs trained by this run
  int64_t images = 0;            // images trained on by this run
  double seconds = 0;            // wall time of this run
  double best_val_accuracy = 0;  // the best of the whole history (-1 without validation)
};

class Trainer {
 public:
  // `loader` and `step` must outlive the trainer.
  Trainer(data::Loader& loader, Step& step, const TrainerOptions& options);
  ~Trainer();

  // ---- hooks (all optional) --------------------------------------------------------------------
  // The validation loss and accuracy after every epoch.
  std::function<MetricValues()> validate;
  // Called after an epoch whose number (1-based) is a multiple of checkpoint_every, and after
  // the last epoch of the run (the end, or stop_after): write what a resume needs here. It sees
  // the epoch's record, already in history(); a diverged epoch never reaches it.
  std::function<void(const EpochRecord&)> checkpoint;
  // After every epoch, after its checkpoint (if any).
  std::function<void(const EpochRecord&)> epoch_end;
  // Progress reporting; null: the default ProgressLine on stdout (train/progress.h).
  ProgressHook* progress = nullptr;

  // Continues a run: `history` holds the epochs done (1..history.size()), `best_val_accuracy`
  // the best so far. Call before run().
  void resume(std::vector<EpochRecord> history, double best_val_accuracy);
  const std::vector<EpochRecord>& history() const { return history_; }
  int64_t epochs_done() const { return int64_t(history_.size()); }
  // The best validation accuracy so far (-1 before any epoch, or without validation).
  double best_val_accuracy() const { return best_; }

  // Trains epochs [epochs_done(), options.epochs). Throws Diverged if the run diverges (nothing of
  // that epoch reaches the checkpoint hook), and whatever the step or a hook throws.
  TrainResult run();

 private:
  MetricValues read_checked(const Metrics& metrics, int64_t epoch, int64_t batch) const;

  data::Loader& loader_;
  Step& step_;
  TrainerOptions options_;
  std::vector<EpochRecord> history_;
  double best_ = -1;
  std::unique_ptr<ProgressHook> default_progress_;
};

}  // namespace kiln
