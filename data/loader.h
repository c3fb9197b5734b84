// data/loader.h — mini-batches of a Dataset: shuffling, augmentation, a background thread.
//
// Batch (epoch e, index b) is a pure function of (seed, e, b) and the options: the order of epoch e
// is a Fisher-Yates shuffle seeded from (seed, e), and the augmentation of the image at position p
// of epoch e is drawn from (seed, e, p). So a run resumed from LoaderState{e, b} sees exactly the
// batches the uninterrupted run saw, whether or not the background thread is on.
//
// Batches are float NHWC, [n][H][W][C], each value pixel / 255 in [0, 1] (no mean subtraction: the
// model's first BatchNorm does that), plus int32 labels. Every epoch has
// batches_per_epoch() = ceil(N / batch_size) batches; the last one keeps the remainder (it is
// smaller, never dropped or padded).
#pragma once

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
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

struct LoaderOptions {
  int batch_size = 64;
  bool shuffle = true;
  uint64_t seed = 0;
  Augment augment;   // none by default (evaluation); training turns it on
  int prefetch = 2;  // batches prepared ahead by a background thread; 0 prepares them in next()
};

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
  // The order of epoch `epoch`: a permutation of 0..N-1 (identity without shuffle).
  std::vector<uint32_t> order(int64_t epoch) const;

 private:
  void stop_producer();
  void produce(int64_t epoch, int64_t first_batch, std::vector<uint32_t> order);
  void fill(int64_t epoch, int64_t index, const std::vector<uint32_t>& order, Batch& out) const;

  const Dataset& data_;
  LoaderOptions options_;
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
