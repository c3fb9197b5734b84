// train/metrics.cpp — the epoch's running metrics, on the host or on the device (see trainer.h).
#include <cmath>
#include <cstring>

#include "core/memory.h"
#include "core/stream.h"
#include "kernels/softmax_xent.h"
#include "train/trainer.h"

namespace kiln {

// The sums of add(tensors): [kMetricSums] f64 on the tensors' device, and for a CUDA device the
// pinned copy and the event read() goes through.
struct Metrics::OnDevice {
  Tensor sums;
  bool fresh = true;  // no add since reset(): the next one overwrites the sums
  Stream stream = nullptr;
  std::unique_ptr<PinnedBuffer> pinned;
  std::unique_ptr<CudaEvent> copied;
};

Metrics::Metrics() = default;
Metrics::~Metrics() = default;

void Metrics::add(double mean_loss, int64_t correct, int64_t count) {
  loss_sum_ += mean_loss * count;
  correct_ += correct;
  count_ += count;
}

void Metrics::add(const Tensor& loss, const Tensor& correct, const Tensor* grad_not_finite) {
  KILN_CHECK(correct.defined() && correct.rank() == 1,
             "Metrics::add: correct must be one i32 flag per sample, got ",
             correct.defined() ? correct.str() : std::string("an undefined tensor"));
  const Device device = correct.device();
  if (!device_ || device_->sums.device() != device) {
    KILN_CHECK(!device_ || device_->fresh,
               "Metrics::add: the batches of one epoch must be on one device (reset() first)");
    device_ = std::make_unique<OnDevice>();
    device_->sums = Tensor({kMetricSums}, DType::f64, device);
    if (device == Device::cuda) {
      device_->pinned = std::make_unique<PinnedBuffer>(kMetricSums * sizeof(double));
      device_->copied = std::make_unique<CudaEvent>();
    }
  }
  accumulate_metrics(device_->sums, loss, correct, grad_not_finite, device_->fresh);
  device_->fresh = false;
  device_->stream = current_stream();
  count_ += correct.size(0);
}

MetricValues Metrics::read() const {
  if (count_ == 0) return {};
  double loss = loss_sum_, right = double(correct_);
  bool gradient_not_finite = false;
  if (device_ && !device_->fresh) {
    double sums[kMetricSums];
    if (device_->sums.device() == Device::cuda) {
      // The one host synchronisation of an epoch's steps: the copy and an event after it.
      copy_bytes_async(device_->pinned->data(), Device::cpu, device_->sums.raw(), Device::cuda,
                       sizeof sums, device_->stream);
      device_->copied->record(device_->stream);
      device_->copied->synchronize();
      ++synchronizations_;
      std::memcpy(sums, device_->pinned->data(), sizeof sums);
    } else {
      std::memcpy(sums, device_->sums.raw(), sizeof sums);
    }
    loss += sums[0];
    right += sums[1];
    if ((static_cast<int>(sums[2]) & 1) != 0 && std::isfinite(loss)) loss = NAN;
    gradient_not_finite = (static_cast<int>(sums[2]) & 2) != 0;
  }
  return {loss / count_, right / count_, count_, gradient_not_finite};
}

void Metrics::reset() {
  loss_sum_ = 0;
  correct_ = count_ = 0;
  if (device_) device_->fresh = true;
}

}  // namespace kiln
