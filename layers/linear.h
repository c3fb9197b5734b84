// layers/linear.h — Linear (PyTorch's nn.Linear) and Flatten (nn.Flatten).
//
// Linear: x [N][IN], weight [OUT][IN], bias [OUT]; weight and bias uniform in ±1/sqrt(IN).
// Flatten: [N][H][W][C] -> [N][H*W*C], a view (no copy) in Kiln's NHWC order. PyTorch flattens
// NCHW activations in C*H*W order, so the Linear after a Flatten has its columns permuted on
// checkpoint save and load (TorchLayout::linear_hwc; Sequential::set_input_shape records the
// shape): in the file they are in PyTorch's order, in memory in Kiln's (docs/checkpoints.md).
#pragma once

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

  Tensor& weight() { return weight_.value; }
  Tensor* bias() { return has_bias_ ? &bias_.value : nullptr; }
  int in_features() const { return in_; }
  int out_features() const { return out_; }
  // The input is a flattened [H][W][C] activation: export columns in PyTorch's C*H*W order.
  void set_flattened_input(int64_t c, int64_t h, int64_t w);

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;

 private:
  int in_, out_;
  bool has_bias_;
  Param weight_, bias_;
};

class Flatten : public Layer {
 public:
  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "Flatten"; }

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;
  bool returns_views() const override { return true; }
};

}  // namespace kiln
