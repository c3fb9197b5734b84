// train/eager_step.cpp — the eager training step (see train/eager_step.h).
#include "train/eager_step.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdio>
#include <string>

#include "core/memory.h"
#include "core/stream.h"
#include "kernels/elementwise.h"

namespace kiln {

namespace {
size_t round_up(size_t bytes) {
  return (bytes + 255) / 256 * 256;
}
}  // namespace

// The CUDA input pipeline (see eager_step.h).
struct DeviceBatch::Pipeline {
  struct Staging {
    std::unique_ptr<PinnedBuffer> memory;  // [images | labels], each 256-byte aligned
    CudaEvent copied;                      // recorded after its last host → device copy
    uint64_t waits_at_use = 0;             // host waits counted when it was last used
    bool used = false;
  };
  struct Target {
    Tensor x, y, extra;
    CudaEvent consumed;  // recorded after the last step that read it
  };
  CudaStream copies{true};
  std::vector<std::unique_ptr<Staging>> ring;  // ring[oldest] is the least recently used
  size_t oldest = 0, ring_bytes = 0;
  Target target[2];
  int64_t uploads = 0;
};

DeviceBatch::DeviceBatch() = default;
DeviceBatch::~DeviceBatch() = default;

size_t DeviceBatch::staging_slots() const {
  return pipeline_ ? pipeline_->ring.size() : 0;
}

void DeviceBatch::upload(const data::Batch& b, Device device) {
  upload(b, device, false, 0, nullptr, 0);
}
void DeviceBatch::upload(const data::Batch& b, Device device, uint64_t host_waits) {
  upload(b, device, true, host_waits, nullptr, 0);
}
void DeviceBatch::upload(const data::Batch& b, Device device, uint64_t host_waits,
                         const void* extra, size_t extra_bytes) {
  KILN_CHECK(device == Device::cuda || extra_bytes == 0,
             "DeviceBatch::upload: extra bytes go with a CUDA batch only");
  upload(b, device, true, host_waits, extra, extra_bytes);
}

void DeviceBatch::upload(const data::Batch& b, Device device, bool known, uint64_t host_waits,
                         const void* extra, size_t extra_bytes) {
  const int64_t n = b.size, per = int64_t(b.height) * b.width * b.channels;
  KILN_CHECK(n > 0 && b.images.size() == size_t(n * per) && b.labels.size() == size_t(n),
             "DeviceBatch::upload: the batch holds ", b.images.size(), " values and ",
             b.labels.size(), " labels for ", n, " images of ", per, " values");
  const Shape shape{n, b.height, b.width, b.channels};
  if (device == Device::cpu) {
    if (!store_x_.defined() || store_x_.device() != device || store_x_.numel() < n * per) {
      store_x_ = Tensor({n * per}, DType::f32, device);
      store_y_ = Tensor({n}, DType::i32, device);
    }
    x = store_x_.slice(0, shape);
    y = store_y_.slice(0, {n});
    copy_bytes(x.raw(), device, b.images.data(), Device::cpu, x.bytes());
    copy_bytes(y.raw(), device, b.labels.data(), Device::cpu, y.bytes());
    return;
  }
  if (!pipeline_) pipeline_ = std::make_unique<Pipeline>();
  Pipeline& p = *pipeline_;
  const Stream compute = current_stream(), copies = p.copies.get();
  // The step queued since the last upload read the other target: mark its end.
  if (p.uploads > 0) p.target[(p.uploads - 1) % 2].consumed.record(compute);
  const size_t image_bytes = round_up(size_t(n * per) * sizeof(float));
  const size_t label_bytes = round_up(size_t(n) * sizeof(int32_t));
  const size_t bytes = image_bytes + label_bytes + extra_bytes;

  // A staging slot whose last copy has run.
  const size_t max_slots =
      known ? std::max<size_t>(2, DeviceBatch::kStagingBytes / std::max<size_t>(bytes, 1)) : 2;
  auto is_free = [&](const Pipeline::Staging& s) {
    return !s.used || (known && host_waits > s.waits_at_use);
  };
  if (p.ring.empty() || (!is_free(*p.ring[p.oldest]) && p.ring.size() < max_slots)) {
    p.ring.insert(p.ring.begin() + std::ptrdiff_t(p.oldest), std::make_unique<Pipeline::Staging>());
  } else if (!is_free(*p.ring[p.oldest])) {
    p.ring[p.oldest]->copied.synchronize();  // flow control: the host is max_slots batches ahead
  }
  Pipeline::Staging& slot = *p.ring[p.oldest];
  p.oldest = (p.oldest + 1) % p.ring.size();
  if (!slot.memory || slot.memory->bytes() < bytes) {
    if (slot.memory) p.ring_bytes -= slot.memory->bytes();
    slot.memory = std::make_unique<PinnedBuffer>(bytes);
    p.ring_bytes += bytes;
  }
  char* staged = static_cast<char*>(slot.memory->data());
  std::memcpy(staged, b.images.data(), size_t(n * per) * sizeof(float));
  std::memcpy(staged + image_bytes, b.labels.data(), size_t(n) * sizeof(int32_t));
  if (extra_bytes > 0) std::memcpy(staged + image_bytes + label_bytes, extra, extra_bytes);

  target_ = int(p.uploads % 2);
  Pipeline::Target& t = p.target[target_];
  if (!t.x.defined() || t.x.numel() < n * per) {
    // Growing frees the old buffer, which waits for the device (only the first batches).
    t.x = Tensor({n * per}, DType::f32, device);
    t.y = Tensor({n}, DType::i32, device);
  }
  if (extra_bytes > 0 && (!t.extra.defined() || size_t(t.extra.numel()) < extra_bytes))
    t.extra = Tensor({int64_t(extra_bytes)}, DType::u8, device);
  extra_ = extra_bytes > 0 ? t.extra.raw() : nullptr;
  x = t.x.slice(0, shape);
  y = t.y.slice(0, {n});
  t.consumed.wait(copies);  // the step that read this target two batches ago is done with it
  copy_bytes_async(x.raw(), device, staged, Device::cpu, x.bytes(), copies);
  copy_bytes_async(y.raw(), device, staged + image_bytes, Device::cpu, y.bytes(), copies);
  if (extra_bytes > 0)
    copy_bytes_async(t.extra.raw(), device, staged + image_bytes + label_bytes, Device::cpu,
                     extra_bytes, copies);
  slot.copied.record(copies);
  slot.waits_at_use = host_waits;
  slot.used = true;
  slot.copied.wait(compute);  // the step's work, queued after this, reads the batch
  ++p.uploads;
}

EagerStep::EagerStep(Sequential& net, Optimizer& optimizer, const LrSchedule& schedule,
                     Device device, const EagerStepOptions& options)
    : net_(net), optimizer_(optimizer), schedule_(schedule), device_(device), options_(options) {
  KILN_CHECK(std::isfinite(options.clip) && options.clip >= 0,
             "EagerStep: clip must be a finite number >= 0 (0: off), got ", options.clip);
}

void device_step(Sequential& net, SoftmaxCrossEntropy& criterion, Optimizer& optimizer,
                 const DeviceBatch& batch, double clip, Tensor& grad_not_finite) {
  net.zero_grad();
  criterion.forward_on_device(net.forward(batch.x, Mode::train), batch.y);
  net.backward(criterion.backward(), {.need_dx = false});
  if (clip > 0) {
    if (!grad_not_finite.defined()) grad_not_finite = Tensor({1}, DType::i32, Device::cuda);
    clip_by_norm(net.flat_grads(), clip, grad_not_finite);
  }
  optimizer.step();
}

void EagerStep::run(const data::Batch& batch, Metrics& metrics) {
  batch_.upload(batch, device_, metrics.synchronizations());
  lr_ = schedule_.lr(optimizer_.steps());
  optimizer_.set_lr(lr_);
  if (device_ == Device::cuda) {
    // Nothing of the step comes back to the host: the loss, the correct flags and clipping's norm
    // stay on the device, and the metrics add them there (the loop sees a non-finite loss or norm
    // when it reads them).
    device_step(net_, criterion_, optimizer_, batch_, options_.clip, grad_not_finite_);
    metrics.add(criterion_.loss_tensor(), criterion_.correct_tensor(),
                options_.clip > 0 ? &grad_not_finite_ : nullptr);
    return;
  }
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
