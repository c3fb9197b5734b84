// train/eager_step.cpp — the eager training step (see train/eager_step.h).
#include "train/eager_step.h"

#include <cmath>
#include <cstdio>
#include <string>

#include "core/memory.h"

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
  copy_bytes(x.raw(), device, b.images.data(), Device::cpu, x.bytes());
  copy_bytes(y.raw(), device, b.labels.data(), Device::cpu, y.bytes());
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
  const double loss = criterion_.forward(net_.forward(batch_.x, Mode::train), batch_.y);
  if (!std::isfinite(loss)) {
    char text[32];
    std::snprintf(text, sizeof text, "%g", loss);
    throw Diverged(Diverged::Kind::batch_loss,
                   "the training loss is not finite (" + std::string(text) + ") at epoch " +
                       std::to_string(batch.epoch + 1) + ", batch " +
                       std::to_string(batch.index + 1),
                   batch.epoch + 1, __FILE__, __LINE__);
  }
  net_.backward(criterion_.backward(), {.need_dx = false});
  if (options_.clip > 0) {
    const double norm = clip_grad_norm(net_.flat_grads(), options_.clip);
    if (!std::isfinite(norm))
      throw Diverged(Diverged::Kind::gradient_norm,
                     "the gradient norm is not finite at epoch " + std::to_string(batch.epoch + 1),
                     batch.epoch + 1, __FILE__, __LINE__);
  }
  optimizer_.step();
  metrics.add(loss, criterion_.correct(), batch.size);
}

}  // namespace kiln
