// layers/linear.h — Linear (PyTorch's nn.Linear) and Flatten (nn.Flatten).
//
// Linear: x [N][IN], weight [OUT][IN], bias [OUT]; weight and bias uniform in ±1/sqrt(IN).
// Flatten: [N][H][W][C] -> [N][H*W*C], a view (no copy) in Kiln's NHWC order. PyTorch flattens
// NCHW activations in C*H*W order, so the Linear after a Flatten has its columns permuted on
// checkpoint save and load (TorchLayout::linear_hwc): in the file they are in PyTorch's order, in
// memory in Kiln's (docs/checkpoints.md). The Flatten records the shape it flattens at every
// forward (or when Sequential::set_input_shape tells it), and a Sequential hands that shape to a
// Linear that directly follows a Flatten whenever it lists its parameters. Until the Flatten has
// seen a shape the Linear's weight layout is TorchLayout::Kind::unknown, which checkpoints refuse
// with a message naming the layer, rather than guessing an order.
#pragma once

#include <optional>

#include "kernels/linear.h"
#include "layers/layer.h"

namespace kiln {

class Linear : public Layer {
 public:
  Linear(int in_features, int out_features, bool bias = true);

  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "Linear"; }
  std::string describe() const override;
  std::vector<ParamRef> params() override;
  void set_precision(const PrecisionPolicy& policy) override { precision_ = policy.linear(); }
  Precision precision() const { return precision_; }

  Tensor& weight() { return weight_.value; }
  Tensor* bias() { return has_bias_ ? &bias_.value : nullptr; }
  int in_features() const { return in_; }
  int out_features() const { return out_; }
  // The input is what a Flatten made of `x` ([N][H][W][C], any N): checkpoints then export the
  // columns in PyTorch's C*H*W order (inputs of another rank flatten alike in both orders). An
  // empty `x` (the Flatten has seen no shape yet) makes the layout TorchLayout::Kind::unknown.
  void set_flattened_input(const std::optional<Shape>& x);

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;

 private:
  int in_, out_;
  bool has_bias_;
  Param weight_, bias_;
  Precision precision_ = Precision::fp32;
};

class Flatten : public Layer {
 public:
  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "Flatten"; }
  // The shape of the input most recently flattened (or recorded): empty before the first.
  const std::optional<Shape>& input_shape() const { return input_shape_; }
  // Records `x` as the input shape (checked by output_shape); Sequential::set_input_shape calls it.
  void record_input_shape(const Shape& x);

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;
  bool returns_views() const override { return true; }

 private:
  std::optional<Shape> input_shape_;
};

}  // namespace kiln
