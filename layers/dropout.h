// layers/dropout.h — Dropout (PyTorch's nn.Dropout: inverted dropout, identity in eval mode).
//
// The mask is drawn from Philox (docs/design.md §4) with this layer's seed and an offset that
// advances once per training forward; backward regenerates the same mask from (seed, offset of that
// forward), so no mask is stored. seed and offset are counters(): checkpoints save them so a
// resumed run draws the masks the uninterrupted run would have drawn. init(seed) / reset_rng(seed)
// reseed the layer. The offset's CounterRef carries a device slot (layers/layer.h): while a
// captured step sets it, the kernels read the offset from that device address, which holds the
// value next_offset() has before the step's forward.
#pragma once

#include "kernels/dropout.h"
#include "layers/layer.h"

namespace kiln {

class Dropout : public Layer {
 public:
  explicit Dropout(double p = 0.5, uint64_t seed = 0);

  Shape output_shape(const Shape& x) const override { return x; }
  std::string kind() const override { return "Dropout"; }
  std::string describe() const override;
  std::vector<CounterRef> counters() override;

  double p() const { return p_; }
  uint64_t seed() const { return seed_; }
  uint64_t next_offset() const { return next_offset_; }
  // Sets the stream: the next training forward draws (seed, offset).
  void set_rng(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    next_offset_ = offset;
  }
  // Places every batch in a larger one (data parallelism): sample k draws the mask of sample
  // k·stride + first of the larger batch (kernels/dropout.h, DropoutSamples). (1, 0): its own.
  void set_placement(int64_t stride, int64_t first);

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;
  void reset_rng(uint64_t seed) override { set_rng(seed, 0); }

 private:
  friend class FusedBlock;  // runs this layer fused with its neighbours (layers/fused_block.h)
  double p_;
  uint64_t seed_, next_offset_ = 0, used_offset_ = 0;
  const uint64_t* device_offset_ = nullptr;  // set by a captured step through counters()
  int64_t stride_ = 1, first_ = 0;
  DropoutSamples samples(const Tensor& x) const;
  // The offset of the last training forward as its kernels take it.
  PhiloxOffset offset() const;
};

}  // namespace kiln
