// data/loader.h — mini-batches of a Dataset: shuffling, augmentation, a background thread.
//
// Batch (epoch e, index b) is a pure function of (seed, e, b) and the options: the order of epoch e
// is the sampler's (by default a Fisher-Yates shuffle seeded from (seed, e)), and the augmentation
// of the image at position p of epoch e's order is drawn from (seed, e, p). So a run resumed from
// LoaderState{e, b} sees exactly the batches the uninterrupted run saw, whether or not the
// background thread is on.
//
// The sampler is the hook that decides which samples an epoch visits and in which order: a
// data-parallel run gives each rank its own disjoint shard of the shared shuffled order
// (shard_sampler), and each rank's loader then batches only its shard.
//
// Batches are float NHWC, [n][H][W][C], each value pixel / 255 in [0, 1] (no mean subtraction: the
// model's first BatchNorm does that), plus int32 labels. Every epoch has
// batches_per_epoch() = ceil(epoch_size() / batch_size) batches (epoch_size() = N unless a
// sampler says otherwise); the last one keeps the remainder (it is smaller, never dropped or
// padded).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "data/dataset.h"

namespace kiln::data {

enum class Padding {
  kZero,  // pixels shifted in from outside are 0 (black)
  kEdge,  // ... repeat the nearest edge pixel
};

struct Augment {
  bool hflip = false;  // mirror left-right with probability 1/2
  int max_shift = 0;   // shift by dx, dy uniform in [-max_shift, max_shift] (= pad and random crop)
  Padding padding = Padding::kZero;
};

// The order of the samples of epoch `epoch` of a data set of `size` samples: indices in
// [0, size). It must be a pure function of its arguments (resume recomputes it), never empty, and
// of the same length every epoch; it may leave samples out (a shard) but should not repeat one.
using Sampler = std::function<std::vector<uint32_t>(int64_t epoch, size_t size)>;

struct LoaderOptions {
  int batch_size = 64;
  bool shuffle = true;
  uint64_t seed = 0;
  Augment augment;   // none by default (evaluation); training turns it on
  int prefetch = 2;  // batches prepared ahead by a background thread; 0 prepares them in next()
  // Empty: default_order(size, shuffle, seed, epoch), every sample once. Else it replaces
  // `shuffle`; `seed` still keys the augmentation.
  Sampler sampler;
};

// The default order: a Fisher-Yates shuffle of 0..size-1 seeded from (seed, epoch), or the
// identity without `shuffle`.
std::vector<uint32_t> default_order(size_t size, bool shuffle, uint64_t seed, int64_t epoch);

// A sampler that deals default_order(size, true, seed, epoch) to `ranks` ranks like cards: rank r
// gets the positions r, r + ranks, r + 2 ranks, ... So the shards of one epoch are disjoint and
// cover every sample once; the first size % ranks ranks get one sample more (every rank's shard
// has the same length in every epoch). Requires 0 <= rank < ranks <= size.
Sampler shard_sampler(int rank, int ranks, uint64_t seed);

struct Batch {
  int64_t epoch = 0, index = 0;  // which batch this is
  int size = 0, channels = 0, height = 0, width = 0;
  std::vector<float> images;    // [size][height][width][channels], values in [0, 1]
  std::vector<int32_t> labels;  // [size]
};

// Where a loader stands: the next batch next() returns is (epoch, batch). Save it with a
// checkpoint; seek() to it to resume.
struct LoaderState {
  int64_t epoch = 0;
  int64_t batch = 0;
  bool operator==(const LoaderState&) const = default;
};

class Loader {
 public:
  // `data` must outlive the loader and stay unchanged while it runs.
  Loader(const Dataset& data, const LoaderOptions& options);
  ~Loader();  // stops and joins the background thread
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  size_t batches_per_epoch() const;
  const LoaderOptions& options() const { return options_; }

  // Starts epoch `epoch` at batch `first_batch` (0 <= first_batch <= batches_per_epoch()); the
  // background thread begins preparing at once. Any batches prepared for an earlier position
  // are discarded.
  void start_epoch(int64_t epoch, int64_t first_batch = 0);
  // Resumes at `state`; a state at the end of an epoch continues with the next epoch.
  void seek(const LoaderState& state);
  // Fills `out` with the next batch of the current epoch (its buffers are reused) and returns true,
  // or returns false once the epoch is exhausted. Rethrows an exception raised while preparing.
  bool next(Batch& out);
  LoaderState state() const { return {epoch_, next_batch_}; }

  // The batch (epoch, index), computed on the calling thread: what next() delivers, for tests and
  // for callers that want random access.
  void make_batch(int64_t epoch, int64_t index, Batch& out) const;
  // The order of epoch `epoch`: the sampler's, checked (by default a permutation of 0..N-1,
  // the identity without shuffle).
  std::vector<uint32_t> order(int64_t epoch) const;
  // Samples per epoch: the length of the sampler's order (N by default).
  size_t epoch_size() const { return epoch_size_; }

 private:
  void stop_producer();
  void produce(int64_t epoch, int64_t first_batch, std::vector<uint32_t> order);
  void fill(int64_t epoch, int64_t index, const std::vector<uint32_t>& order, Batch& out) const;

  const Dataset& data_;
  LoaderOptions options_;
  size_t epoch_size_ = 0;
  int64_t epoch_ = 0, next_batch_ = 0;
  bool started_ = false;
  std::vector<uint32_t> order_;  // of epoch_, for the synchronous path

  // Background producer: fills `ready_` (at most prefetch batches) in order; recycles buffers from
  // `spare_`. Guarded by mutex_.
  std::thread producer_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Batch> ready_;
  std::vector<Batch> spare_;
  bool stop_ = false, producer_done_ = false;
  std::exception_ptr error_;
};

}  // namespace kiln::data
