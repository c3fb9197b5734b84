// layers/conv2d.h — Conv2d, PyTorch's nn.Conv2d on NHWC activations.
// Weight [C_out][KH][KW][C_in] (exported as PyTorch's OIHW), bias [C_out]. PyTorch's default
// initialisation: weight and bias uniform in ±1/sqrt(C_in*KH*KW) (kaiming_uniform with a
// = sqrt(5)).
#pragma once

#include <functional>

#include "kernels/conv2d.h"
#include "layers/layer.h"

namespace kiln {

class Conv2d : public Layer {
 public:
  Conv2d(int in_channels, int out_channels, int kernel_size, int stride = 1, int padding = 0,
         bool bias = true);

  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "Conv2d"; }
  std::string describe() const override;
  std::vector<ParamRef> params() override;
  void set_precision(const PrecisionPolicy& policy) override { precision_ = policy.conv(); }
  Precision precision() const { return precision_; }

  Tensor& weight() { return weight_.value; }
  Tensor* bias() { return has_bias_ ? &bias_.value : nullptr; }
  int in_channels() const { return in_; }
  int out_channels() const { return out_; }
  int kernel_size() const { return k_; }
  Conv2dParams conv_params() const { return {stride_, stride_, pad_, pad_, precision_}; }
  // The next forward only: in training mode runs `f(x, y)` instead of the plain convolution,
  // which still runs if f returns false (or the forward is in eval mode). A Sequential's fused block sets it to gather its batchnorm statistics in the
  // convolution's epilogue (layers/fused_block.h).
  void set_next_forward(std::function<bool(const Tensor& x, Tensor& y)> f) {
    next_forward_ = std::move(f);
  }

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;

 private:
  int in_, out_, k_, stride_, pad_;
  bool has_bias_;
  Param weight_, bias_;
  Precision precision_ = Precision::fp32;
  std::function<bool(const Tensor& x, Tensor& y)> next_forward_;
};

}  // namespace kiln
