// data/loader.cpp — batching, augmentation and the prefetch thread (contract in data/loader.h).
#include "data/loader.h"

#include <algorithm>

#include "core/error.h"
#include "data/rng.h"

namespace kiln::data {
namespace {

constexpr uint64_t kOrderStream = 0x6f72646572ULL;  // "order"
constexpr uint64_t kAugmentStream = 0x6175676dULL;  // "augm"

}  // namespace

Loader::Loader(const Dataset& data, const LoaderOptions& options) : data_(data), options_(options) {
  KILN_CHECK(options.batch_size > 0, "loader: batch_size must be positive, got ",
             options.batch_size);
  KILN_CHECK(options.prefetch >= 0, "loader: prefetch must be >= 0, got ", options.prefetch);
  KILN_CHECK(options.augment.max_shift >= 0, "loader: max_shift must be >= 0, got ",
             options.augment.max_shift);
  KILN_CHECK(!data.empty(), "loader: the data set is empty");
  KILN_CHECK(data.size() <= UINT32_MAX, "loader: more than 2^32 images");
  KILN_CHECK(data.pixels.size() == data.size() * data.image_bytes(), "loader: the data set holds ",
             data.pixels.size(), " bytes, expected ", data.size(), " images of ",
             data.image_bytes());
  // order(0) runs while epoch_size_ is still 0: it sets the length every later epoch must have.
  epoch_size_ = options_.sampler ? order(0).size() : data.size();
}

Loader::~Loader() {
  stop_producer();
}

std::vector<uint32_t> default_order(size_t size, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<uint32_t> o(size);
  for (size_t i = 0; i < o.size(); ++i) o[i] = uint32_t(i);
  if (shuffle) {
    detail::Rng rng(detail::hash_keys(seed, kOrderStream, uint64_t(epoch)));
    for (size_t i = o.size(); i > 1; --i) std::swap(o[i - 1], o[rng.below(i)]);  // Fisher-Yates
  }
  return o;
}

Sampler shard_sampler(int rank, int ranks, uint64_t seed) {
  KILN_CHECK(ranks > 0 && rank >= 0 && rank < ranks, "shard_sampler: rank ", rank,
             " is outside 0..", ranks - 1, " (ranks = ", ranks, ")");
  return [rank, ranks, seed](int64_t epoch, size_t size) {
    KILN_CHECK(size >= size_t(ranks), "shard_sampler: ", size, " samples cannot be dealt to ",
               ranks, " ranks (each needs at least one)");
    const std::vector<uint32_t> all = default_order(size, /*shuffle=*/true, seed, epoch);
    std::vector<uint32_t> mine;
    mine.reserve(size / size_t(ranks) + 1);
    for (size_t p = size_t(rank); p < all.size(); p += size_t(ranks)) mine.push_back(all[p]);
    return mine;
  };
}

size_t Loader::batches_per_epoch() const {
  return (epoch_size_ + size_t(options_.batch_size) - 1) / size_t(options_.batch_size);
}

std::vector<uint32_t> Loader::order(int64_t epoch) const {
  if (!options_.sampler) return default_order(data_.size(), options_.shuffle, options_.seed, epoch);
  std::vector<uint32_t> o = options_.sampler(epoch, data_.size());
  KILN_CHECK(!o.empty(), "loader: the sampler gave no samples for epoch ", epoch,
             ": a sampler must return at least one index");
  KILN_CHECK(epoch_size_ == 0 || o.size() == epoch_size_, "loader: the sampler gave ", o.size(),
             " samples for epoch ", epoch, " but ", epoch_size_,
             " for epoch 0: a sampler must return the same number every epoch");
  for (uint32_t i : o)
    KILN_CHECK(i < data_.size(), "loader: the sampler gave index ", i, " for epoch ", epoch,
               ", outside the data set's ", data_.size(), " samples");
  return o;
}

void Loader::fill(int64_t epoch, int64_t index, const std::vector<uint32_t>& order,
                  Batch& out) const {
  const size_t begin = size_t(index) * size_t(options_.batch_size);
  KILN_CHECK(index >= 0 && begin < order.size(), "loader: batch ", index,
             " is outside the epoch's ", batches_per_epoch(), " batches");
  KILN_CHECK(data_.pixels.size() == data_.size() * data_.image_bytes() &&
                 data_.labels.size() == data_.size(),
             "loader: the data set changed while the loader used it (", data_.pixels.size(),
             " bytes for ", data_.size(),
             " images): keep a Dataset unchanged while its Loader lives");
  const size_t n = std::min(size_t(options_.batch_size), order.size() - begin);
  const int H = data_.height, W = data_.width, C = data_.channels;
  const size_t image = data_.image_bytes();
  out.epoch = epoch;
  out.index = index;
  out.size = int(n);
  out.channels = C;
  out.height = H;
  out.width = W;
  out.images.resize(n * image);
  out.labels.resize(n);
  const Augment& aug = options_.augment;
  const bool augment = aug.hflip || aug.max_shift > 0;
  constexpr float kScale = 1.0f / 255.0f;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t src_index = order[begin + i];
    const uint8_t* src = data_.image(src_index);
    float* dst = out.images.data() + i * image;
    out.labels[i] = data_.labels[src_index];
    if (!augment) {
      for (size_t k = 0; k < image; ++k) dst[k] = float(src[k]) * kScale;
      continue;
    }
    // Same three draws for every image, whatever the options, so turning one augmentation off
    // leaves the other's draws unchanged.
    detail::Rng rng(detail::hash_keys(options_.seed, kAugmentStream, uint64_t(epoch), begin + i));
    const bool flip = rng.chance(0.5) && aug.hflip;
    const int span = 2 * aug.max_shift + 1;
    const int dx = int(rng.below(uint64_t(span))) - aug.max_shift;
    const int dy = int(rng.below(uint64_t(span))) - aug.max_shift;
    // Flip, then shift: out(y, x) = flipped(y - dy, x - dx), flipped(y, x) = in(y, W - 1 - x).
    const bool edge = aug.padding == Padding::kEdge;
    for (int y = 0; y < H; ++y) {
      int sy = y - dy;
      if (edge) sy = std::clamp(sy, 0, H - 1);
      for (int x = 0; x < W; ++x) {
        float* d = dst + (size_t(y) * W + x) * C;
        int fx = x - dx;
        if (edge) fx = std::clamp(fx, 0, W - 1);
        if (sy < 0 || sy >= H || fx < 0 || fx >= W) {
          for (int c = 0; c < C; ++c) d[c] = 0.0f;
          continue;
        }
        const int sx = flip ? W - 1 - fx : fx;
        const uint8_t* s = src + (size_t(sy) * W + sx) * C;
        for (int c = 0; c < C; ++c) d[c] = float(s[c]) * kScale;
      }
    }
  }
}

void Loader::make_batch(int64_t epoch, int64_t index, Batch& out) const {
  fill(epoch, index, order(epoch), out);
}

void Loader::stop_producer() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  if (producer_.joinable()) producer_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  for (Batch& b : ready_) spare_.push_back(std::move(b));
  ready_.clear();
  stop_ = false;
  producer_done_ = false;
  error_ = nullptr;
}

void Loader::produce(int64_t epoch, int64_t first_batch, std::vector<uint32_t> order) {
  const int64_t batches = int64_t(batches_per_epoch());
  try {
    for (int64_t b = first_batch; b < batches; ++b) {
      Batch batch;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [&] { return stop_ || ready_.size() < size_t(options_.prefetch); });
        if (stop_) return;
        if (!spare_.empty()) {
          batch = std::move(spare_.back());
          spare_.pop_back();
        }
      }
      fill(epoch, b, order, batch);  // outside the lock: this is the work that overlaps
      {
        std::lock_guard<std::mutex> lock(mutex_);
        ready_.push_back(std::move(batch));
      }
      changed_.notify_all();
    }
  } catch (...) {
    std::lock_guard<std::mutex> lock(mutex_);
    error_ = std::current_exception();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    producer_done_ = true;
  }
  changed_.notify_all();
}

void Loader::start_epoch(int64_t epoch, int64_t first_batch) {
  KILN_CHECK(epoch >= 0, "loader: epoch must be >= 0, got ", epoch);
  KILN_CHECK(first_batch >= 0 && size_t(first_batch) <= batches_per_epoch(), "loader: batch ",
             first_batch, " is outside 0..", batches_per_epoch());
  stop_producer();
  epoch_ = epoch;
  next_batch_ = first_batch;
  started_ = true;
  order_ = order(epoch);
  if (options_.prefetch > 0 && size_t(first_batch) < batches_per_epoch())
    producer_ = std::thread(&Loader::produce, this, epoch, first_batch, order_);
}

void Loader::seek(const LoaderState& state) {
  if (size_t(state.batch) >= batches_per_epoch() && state.batch >= 0)
    start_epoch(state.epoch + 1, 0);
  else
    start_epoch(state.epoch, state.batch);
}

bool Loader::next(Batch& out) {
  if (!started_) start_epoch(0, 0);
  if (size_t(next_batch_) >= batches_per_epoch()) return false;
  if (options_.prefetch == 0) {
    fill(epoch_, next_batch_, order_, out);
    ++next_batch_;
    return true;
  }
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return !ready_.empty() || producer_done_; });
  if (ready_.empty()) {
    // The producer finished without this batch: it failed.
    std::exception_ptr e = error_;
    KILN_CHECK(e != nullptr, "loader: the background thread stopped early");
    lock.unlock();
    std::rethrow_exception(e);
  }
  std::swap(out, ready_.front());  // the caller's old buffers go back to the producer
  spare_.push_back(std::move(ready_.front()));
  ready_.pop_front();
  lock.unlock();
  changed_.notify_all();
  ++next_batch_;
  return true;
}

}  // namespace kiln::data
