// train/eager_step.cpp — the eager training step (see train/eager_step.h).
#include "train/eager_step.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "core/memory.h"
#include "kernels/elementwise.h"

namespace kiln {

void DeviceBatch::upload(const data::Batch& b, Device device) {
  const int64_t n = b.size, per = int64_t(b.height) * b.width * b.channels;
  KILN_CHECK(n > 0 && b.images.size() == size_t(n * per) && b.labels.size() == size_t(n),
             "DeviceBatch::upload: the batch holds ", b.images.size(), " values and ",
             b.labels.size(), " labels for ", n, " images of ", per, " values");
  if (!store_x_.defined() || store_x_.device() != device || store_x_.numel() < n * per) {
    store_x_ = Tensor({n * per}, DType::f32, device);
    store_y_ = Tensor({n}, DType::i32, device);
  }
  x = store_x_.slice(0, {n, b.height, b.width, b.channels});
  y = store_y_.slice(0, {n});
  // Queued, never awaited: the copies run in stream order before the step's kernels, and a host →
  // device copy out of pageable memory is staged before cudaMemcpyAsync returns.
  copy_bytes_async(x.raw(), device, b.images.data(), Device::cpu, x.bytes());
  copy_bytes_async(y.raw(), device, b.labels.data(), Device::cpu, y.bytes());
}

EagerStep::EagerStep(Sequential& net, Optimizer& optimizer, const LrSchedule& schedule,
                     Device device, const EagerStepOptions& options)
    : net_(net), optimizer_(optimizer), schedule_(schedule), device_(device), options_(options) {
  KILN_CHECK(std::isfinite(options.clip) && options.clip >= 0,
             "EagerStep: clip must be a finite number >= 0 (0: off), got ", options.clip);
}

void EagerStep::run(const data::Batch& batch, Metrics& metrics) {
  batch_.upload(batch, device_);
  lr_ = schedule_.lr(optimizer_.steps());
  optimizer_.set_lr(lr_);
  net_.zero_grad();
  const bool on_host = device_ == Device::cpu;
  const Tensor& logits = net_.forward(batch_.x, Mode::train);
  double loss = 0;
  if (on_host) {
    loss = criterion_.forward(logits, batch_.y);
    if (!std::isfinite(loss)) {
      char text[32];
      std::snprintf(text, sizeof text, "%g", loss);
      throw Diverged(Diverged::Kind::batch_loss,
                     "the training loss is not finite (" + std::string(text) + ") at epoch " +
                         std::to_string(batch.epoch + 1) + ", batch " +
                         std::to_string(batch.index + 1),
                     batch.epoch + 1, __FILE__, __LINE__);
    }
  } else {
    // Nothing of the step comes back to the host: the loss, the correct flags and clipping's norm
    // stay on the device, and the metrics add them there (the loop sees a non-finite loss or norm
    // when it reads them).
    criterion_.forward_on_device(logits, batch_.y);
  }
  net_.backward(criterion_.backward(), {.need_dx = false});
  if (options_.clip > 0) {
    if (on_host) {
      const double norm = clip_grad_norm(net_.flat_grads(), options_.clip);
      if (!std::isfinite(norm))
        throw Diverged(
            Diverged::Kind::gradient_norm,
            "the gradient norm is not finite at epoch " + std::to_string(batch.epoch + 1),
            batch.epoch + 1, __FILE__, __LINE__);
    } else {
      if (!grad_not_finite_.defined()) grad_not_finite_ = Tensor({1}, DType::i32, device_);
      clip_by_norm(net_.flat_grads(), options_.clip, grad_not_finite_);
    }
  }
  optimizer_.step();
  if (on_host) {
    metrics.add(loss, criterion_.correct(), batch.size);
  } else {
    metrics.add(criterion_.loss_tensor(), criterion_.correct_tensor(),
                options_.clip > 0 ? &grad_not_finite_ : nullptr);
  }
}

}  // namespace kiln
