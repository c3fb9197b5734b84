// dist/data_parallel.h — data parallelism for a Sequential trained by kiln::Trainer: every rank
// holds the whole model, trains on its shard of each global batch, and the gradients are averaged
// by all-reduce before the (identical) optimizer step.
//
//   auto comm = kiln::dist::connect();
//   kiln::data::LoaderOptions o;                      // this rank's share and shard:
//   o.batch_size = kiln::dist::local_batch(global, *comm);
//   o.sampler = kiln::dist::batch_sampler(*comm, global, o.seed);
//   kiln::data::Loader loader(train, o);
//   kiln::dist::DataParallel dp(*comm, net);          // rank 0's weights everywhere
//   kiln::EagerStep eager(net, adam, schedule, device, {.clip = 5});
//   kiln::dist::DataParallelStep step(dp, eager);     // the Trainer's step
//
// The global batch: --batch-size is the batch of the whole job; each rank's loader takes
// global / ranks samples per batch (the global batch must divide evenly). Rank r's batch b is the
// positions of global batch b (of the epoch's shared shuffled order) congruent to r modulo the
// ranks, so the ranks' batches together are exactly the batch one process would take.
// The remainder: the epoch's last global batch keeps R = size mod global samples, split as evenly
// as the dealing gives (ranks differ by at most one sample; the gradient average weighs each rank
// by its sample count). When 0 < R < ranks some rank would have no sample for that step, so
// those R samples (the last of that epoch's shuffled order, different ones every epoch) sit the
// epoch out; otherwise every sample is visited exactly once per epoch.
//
// Gradients: Sequential::backward calls a hook after each layer; the hook scales that layer's
// gradients by (local samples / global samples) and gathers them into buckets of `bucket_bytes`,
// each all-reduced (asynchronously) as soon as it is full, while the backward pass continues
// below it; the hook of layer 0 completes them all. So the step's clipping and update see the
// global mean gradient, bitwise the same on every rank.
#pragma once

#include <cstdint>
#include <deque>
#include <utility>
#include <vector>

#include "data/loader.h"
#include "dist/communicator.h"
#include "layers/sequential.h"
#include "train/trainer.h"

namespace kiln::dist {

// The per-rank batch of a global batch; throws unless `global` is a positive multiple of the ranks.
int local_batch(int global, const Communicator& comm);
int local_batch(int global, int ranks);

// The sampler of rank `rank` (see the header comment); ranks = 1 gives the loader's default order.
data::Sampler batch_sampler(int rank, int ranks, int global_batch, uint64_t seed);
data::Sampler batch_sampler(const Communicator& comm, int global_batch, uint64_t seed);

struct DataParallelOptions {
  int64_t bucket_bytes = 4 << 20;  // gradient bytes per all-reduce (PyTorch DDP's default: 25 MB)
  // BatchNorm2d layers: per-replica statistics (false, PyTorch DDP's default) or synchronised
  // over the ranks (SyncBatchNorm: the statistics of the global batch; layers/batchnorm.h).
  bool sync_batchnorm = false;
};

class DataParallel {
 public:
  // Broadcasts rank 0's parameters, buffers (running statistics) and counters (dropout's seeds)
  // to every rank, places every Dropout layer's masks in the global batch (rank r's sample k is
  // the global batch's sample k·ranks + r, as batch_sampler deals them), and installs the
  // gradient hook on `net`. `comm` and `net` must outlive this object; its destructor removes
  // the hook.
  DataParallel(Communicator& comm, Sequential& net, const DataParallelOptions& options = {});
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // The next backward pass averages gradients over `global` samples, `local` of them this rank's.
  void begin_step(int64_t local, int64_t global);
  Communicator& comm() { return comm_; }
  // Every rank's f32 buffers (running statistics) = rank 0's.
  void broadcast_buffers();
  // The all-reduces the last step issued (one per bucket).
  int buckets_last_step() const { return buckets_; }

 private:
  void layer_done(int layer);
  void issue(int64_t lo, int64_t hi);

  Communicator& comm_;
  Sequential& net_;
  DataParallelOptions options_;
  std::vector<std::pair<int64_t, int64_t>> ranges_;  // layer i's [lo, hi) in the flat gradients
  std::deque<Tensor> in_flight_;  // the bucket views being reduced (deque: stable addresses)
  int64_t pending_lo_ = 0, pending_hi_ = 0;  // gradients done but not yet issued
  float scale_ = 1;  // local / global samples (1 / ranks until begin_step says otherwise)
  int buckets_ = 0;
};

// The Trainer's step for a data-parallel run: counts the global batch, runs `inner` (whose
// backward pass all-reduces the gradients through `dp`'s hook), gives every rank rank 0's buffers
// (batchnorm's running statistics, which each replica updates from its own shard; PyTorch DDP's
// broadcast_buffers) and adds the global batch's loss and accuracy to the metrics. So every
// rank's history is the job's and every rank holds the same model after every step.
class DataParallelStep : public Step {
 public:
  DataParallelStep(DataParallel& dp, Step& inner) : dp_(dp), inner_(inner) {}
  void run(const data::Batch& batch, Metrics& metrics) override;
  double lr() const override { return inner_.lr(); }
  // The job's images of the last run (the global batch), so the loop's images/s is the job's.
  int64_t images(const data::Batch&) const override { return global_images_; }

 private:
  DataParallel& dp_;
  Step& inner_;
  int64_t global_images_ = 0;
};

}  // namespace kiln::dist
