// dist/data_parallel.cpp — see data_parallel.h.
#include "dist/data_parallel.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "layers/batchnorm.h"
#include "layers/dropout.h"

namespace kiln::dist {

int local_batch(int global, int ranks) {
  KILN_CHECK(global > 0 && ranks > 0 && global % ranks == 0, "the global batch size ", global,
             " does not divide among ", ranks,
             " ranks; give a --batch-size that is a multiple of the number of ranks");
  return global / ranks;
}
int local_batch(int global, const Communicator& comm) {
  return local_batch(global, comm.size());
}

data::Sampler batch_sampler(int rank, int ranks, int global_batch, uint64_t seed) {
  local_batch(global_batch, ranks);
  if (ranks == 1) return {};
  data::Sampler deal = data::shard_sampler(rank, ranks, seed);
  return [deal, rank, ranks, global_batch](int64_t epoch, size_t size) {
    std::vector<uint32_t> mine = deal(epoch, size);
    // The last global batch's R samples, when fewer than the ranks, sit the epoch out (see the
    // header): this rank's last position r + (len - 1) ranks is one of them when it is past
    // size - R.
    const size_t rest = size % size_t(global_batch);
    if (rest > 0 && rest < size_t(ranks)) {
      const size_t last = size_t(rank) + (mine.size() - 1) * size_t(ranks);
      if (last >= size - rest) mine.pop_back();
    }
    return mine;
  };
}
data::Sampler batch_sampler(const Communicator& comm, int global_batch, uint64_t seed) {
  return batch_sampler(comm.rank(), comm.size(), global_batch, seed);
}

DataParallel::DataParallel(Communicator& comm, Sequential& net, const DataParallelOptions& options)
    : comm_(comm), net_(net), options_(options) {
  KILN_CHECK(options.bucket_bytes > 0, "DataParallel: bucket_bytes must be positive");
  KILN_CHECK(!net.on_layer_backward,
             "DataParallel: the network already has a backward hook "
             "(another DataParallel?); one network takes one");
  comm_.broadcast(net.flat_params(), 0);
  broadcast_buffers();
  // The dropout layers' Philox seeds and offsets, so every rank draws rank 0's masks.
  for (CounterRef& c : net.counters()) comm_.broadcast_bytes(c.value, sizeof(uint64_t), 0);
  // Each layer's gradients are one range of the flat buffer (Sequential lays them out layer by
  // layer, in order).
  Tensor& flat = net.flat_grads();
  const char* base = static_cast<const char*>(flat.raw());
  for (int i = 0; i < net.size(); ++i) {
    int64_t lo = INT64_MAX, hi = -1;
    for (ParamRef& p : net[i].params()) {
      const int64_t at = (static_cast<const char*>(p.grad->raw()) - base) / int64_t(sizeof(float));
      lo = std::min(lo, at);
      hi = std::max(hi, at + p.grad->numel());
    }
    ranges_.push_back(hi < 0 ? std::pair<int64_t, int64_t>{-1, -1} : std::pair{lo, hi});
  }
  // Dropout: rank r's sample k is sample k·ranks + r of the global batch (batch_sampler), so its
  // mask is drawn where one process would draw it.
  for (int i = 0; i < net.size(); ++i)
    if (auto* d = dynamic_cast<Dropout*>(&net[i])) d->set_placement(comm.size(), comm.rank());
  if (options.sync_batchnorm && comm.size() > 1)
    for (int i = 0; i < net.size(); ++i)
      if (auto* bn = dynamic_cast<BatchNorm2d*>(&net[i]))
        bn->sync([&comm](double* p, int64_t n) { comm.all_reduce_sum(p, n); });
  scale_ = 1.0f / static_cast<float>(comm.size());
  pending_lo_ = pending_hi_ = flat.numel();
  net.on_layer_backward = [this](int layer) { layer_done(layer); };
}

DataParallel::~DataParallel() {
  net_.on_layer_backward = nullptr;
  for (int i = 0; i < net_.size(); ++i)
    if (auto* bn = dynamic_cast<BatchNorm2d*>(&net_[i])) bn->sync(nullptr);
}

void DataParallel::broadcast_buffers() {
  for (BufferRef& b : net_.buffers())
    if (b.tensor != nullptr && b.tensor->dtype() == DType::f32) comm_.broadcast(*b.tensor, 0);
}

void DataParallel::begin_step(int64_t local, int64_t global) {
  KILN_CHECK(global > 0 && local >= 0 && local <= global, "DataParallel::begin_step: ", local,
             " of ", global, " samples");
  scale_ = static_cast<float>(double(local) / double(global));
  buckets_ = 0;
}

void DataParallel::issue(int64_t lo, int64_t hi) {
  if (hi <= lo) return;
  in_flight_.push_back(net_.flat_grads().slice(lo, {hi - lo}));
  comm_.start_all_reduce_sum(in_flight_.back(), scale_);
  ++buckets_;
}

void DataParallel::layer_done(int layer) {
  const auto [lo, hi] = ranges_[size_t(layer)];
  if (lo >= 0) {
    // Layers finish from the top of the flat buffer down: the pending range grows downwards
    // (the alignment padding between layers, always zero, travels with it).
    pending_lo_ = std::min(pending_lo_, lo);
    if ((pending_hi_ - pending_lo_) * int64_t(sizeof(float)) >= options_.bucket_bytes) {
      issue(pending_lo_, pending_hi_);
      pending_hi_ = pending_lo_;
    }
  }
  if (layer == 0) {
    issue(0, pending_hi_);
    comm_.wait();
    in_flight_.clear();
    pending_lo_ = pending_hi_ = net_.flat_grads().numel();
  }
}

void DataParallelStep::run(const data::Batch& batch, Metrics& metrics) {
  Communicator& comm = dp_.comm();
  double count = batch.size;
  comm.all_reduce_sum(&count, 1);
  dp_.begin_step(batch.size, std::llround(count));
  Metrics local;
  inner_.run(batch, local);
  dp_.broadcast_buffers();  // after the update, so every rank leaves the step with one model
  const MetricValues v = local.read();
  double sums[3] = {v.loss * double(v.count), std::round(v.accuracy * double(v.count)),
                    double(v.count)};
  comm.all_reduce_sum(sums, 3);
  metrics.add(sums[0] / sums[2], std::llround(sums[1]), std::llround(sums[2]));
  global_images_ = std::llround(count);
}

}  // namespace kiln::dist
