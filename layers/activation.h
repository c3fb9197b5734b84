// layers/activation.h — LeakyReLU (PyTorch's nn.LeakyReLU, negative slope 0.01 by default).
#pragma once

#include "kernels/activation.h"
#include "layers/layer.h"

namespace kiln {

class LeakyReLU : public Layer {
 public:
  explicit LeakyReLU(double negative_slope = 0.01) : slope_(negative_slope) {}

  Shape output_shape(const Shape& x) const override { return x; }
  std::string kind() const override { return "LeakyReLU"; }
  std::string describe() const override;
  double negative_slope() const { return slope_; }

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;

 private:
  double slope_;
};

}  // namespace kiln
