// layers/sequential.h — a chain of layers, PyTorch's nn.Sequential, and the owner of the flat
// parameter and gradient buffers.
//
// Layer i's parameters are named "<i>.<name>" ("0.weight", "1.running_mean"), as nn.Sequential
// names them, so checkpoints use PyTorch's keys. The Sequential gathers every parameter of its
// layers into one flat value buffer and one flat gradient buffer (each tensor at a 64-byte aligned
// offset; the padding is zero in both and stays zero under every optimizer), and the layers'
// tensors become slices of them. That happens lazily, before the first params()/forward()/flat_*()
// after an add().
//
// For analysis (saliency maps, filter visualisation) forward_to(x, k, mode) returns the activation
// after layer k and backward_from(k, d) back-propagates d (the gradient of something with respect
// to that activation) down to the input, returning d input:
//
//   const Tensor& a = net.forward_to(x, k, Mode::eval);     // activation after layer k
//   ... build d, same shape as a ...
//   const Tensor& dx = net.backward_from(k, d, {.param_grads = false});
//
// Fused blocks: in Mode::train, each run of Conv2d → BatchNorm2d → LeakyReLU → MaxPool2d → Dropout
// (recognised by the layers' types when they are added) runs its last four layers as one fused op
// (layers/fused_block.h, kernels/fused_block.h) with the same parameters, buffers, counters and
// results, bit for bit. By default blocks run fused on CUDA only: on the CPU the unfused fast path
// is faster (fer_cnn's CPU default run: 991 images/s unfused, 609 fused, same results);
// set_fused_blocks(true) fuses on every device, set_fused_blocks(false) on none. A forward_to(x, k) that ends inside a
// block runs that block unfused, so every layer's activation is there to read and backward_from(k)
// can start inside it; Mode::eval always runs unfused.
//
// A Sequential is not meant to be nested in another (the outer one would own the flat buffers).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/fused_block.h"
#include "layers/layer.h"

namespace kiln {

class Sequential : public Layer {
 public:
  Sequential() = default;
  explicit Sequential(std::vector<std::unique_ptr<Layer>> layers);

  // Appends a layer; returns it.
  Layer& add(std::unique_ptr<Layer> layer);
  template <typename L, typename... Args>
  L& emplace(Args&&... args) {
    return static_cast<L&>(add(std::make_unique<L>(std::forward<Args>(args)...)));
  }

  int size() const { return static_cast<int>(layers_.size()); }
  Layer& operator[](int i);
  const Layer& operator[](int i) const;

  // Runs layers 0..k (0 <= k < size()) and returns the activation after layer k.
  const Tensor& forward_to(const Tensor& x, int k, Mode mode);
  // Back-propagates d_activation (shape of layer k's output from the last forward/forward_to that
  // ran layer k) through layers k..0; returns dx of the network input (undefined if !need_dx).
  const Tensor& backward_from(int k, const Tensor& d_activation,
                              const BackwardOptions& options = {});

  // Records the input shape [N][H][W][C] (any N): checks that every layer accepts its input and
  // tells every Flatten the shape it will flatten, as a forward would (a Linear after a Flatten
  // needs it for PyTorch's CHW column order in checkpoints). Returns the output shape.
  Shape set_input_shape(const Shape& x);

  // Whether training forwards run the recognised blocks fused (default: on CUDA only; see above).
  void set_fused_blocks(bool on) { fused_mode_ = on ? FusedMode::on : FusedMode::off; }
  // Whether blocks run fused on `device`.
  bool fused_blocks(Device device = Device::cuda) const {
    return fused_mode_ == FusedMode::on ||
           (fused_mode_ == FusedMode::automatic && device == Device::cuda);
  }
  // Whether a fused block on CUDA (fp32) has the convolution before it gather batchnorm's batch
  // statistics in its epilogue (kernels/fused_block.h, conv2d_forward_batch_stats: two launches
  // fewer per block, statistics equal to the separate pass within a derived tolerance, not bit for
  // bit). Default on; off, the fused block takes the statistics itself, bit for bit as the unfused
  // layers do.
  void set_fused_conv_stats(bool on) { fused_conv_stats_ = on; }
  bool fused_conv_stats() const { return fused_conv_stats_; }
  // How many blocks the network's layers form (fused or not).
  int fusable_blocks() const { return static_cast<int>(blocks_.size()); }
  // Called after each layer's backward pass that computed parameter gradients, with the layer's
  // index (from the last layer down to 0): data parallelism (dist/data_parallel.h) starts
  // reducing a layer's gradients there while the layers below it are still back-propagating.
  std::function<void(int layer)> on_layer_backward;

  // The flat buffers: every parameter value / gradient is a slice of these.
  Tensor& flat_params();
  Tensor& flat_grads();

  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "Sequential"; }
  std::string describe() const override;  // one line per layer, PyTorch's print style
  // Every layer's parameters, named "<i>.<name>"; a Linear directly after a Flatten has its
  // weight's TorchLayout from the shape that Flatten last saw (layers/linear.h).
  std::vector<ParamRef> params() override;
  std::vector<BufferRef> buffers() override;
  std::vector<CounterRef> counters() override;
  void zero_grad() override;
  // Moves / converts every layer and rebuilds the flat buffers. Refused while views of the old
  // flat buffers are held outside the network (an optimizer's): build optimizers after moving.
  void to(Device device) override;
  void to(DType dtype) override;
  // Sets the precision policy of every layer, and of every layer added later (core/precision.h).
  void set_precision(const PrecisionPolicy& policy) override;
  const PrecisionPolicy& precision() const { return precision_; }

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;
  bool returns_views() const override { return true; }
  void reset_rng(uint64_t seed) override;
  void reset_buffers() override;
  void release_workspaces() override;

 private:
  void ensure_flat();
  void update_flatten_layouts();
  void check_no_outside_views(const std::string& move) const;
  // After the layers moved or changed dtype: new flat buffers on the network's device and dtype.
  void rebuild_flat();
  void check_index(int k, const char* what) const;
  void find_blocks();
  FusedBlock* block_of(int layer) const;

  std::vector<std::unique_ptr<Layer>> layers_;
  Tensor flat_params_, flat_grads_;
  bool flat_ = false;
  PrecisionPolicy precision_;
  int last_forward_end_ = -1;  // the last layer the most recent forward ran
  enum class FusedMode { automatic, on, off } fused_mode_ = FusedMode::automatic;
  bool fused_conv_stats_ = true;
  std::vector<std::unique_ptr<FusedBlock>> blocks_;
};

}  // namespace kiln
