// layers/pooling.h — MaxPool2d (PyTorch's nn.MaxPool2d; stride defaults to the kernel size).
// The argmax (one uint8 per output element) is kept from forward for backward.
#pragma once

#include "kernels/pooling.h"
#include "layers/layer.h"

namespace kiln {

class MaxPool2d : public Layer {
 public:
  explicit MaxPool2d(int kernel_size, int stride = 0 /* 0: kernel_size */, int padding = 0);

  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "MaxPool2d"; }
  std::string describe() const override;
  Pool2dParams pool_params() const { return {k_, k_, stride_, stride_, pad_, pad_}; }

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;
  void release_workspaces() override { argmax_.release(); }

 private:
  friend class FusedBlock;  // runs this layer fused with its neighbours (layers/fused_block.h)
  int k_, stride_, pad_;
  Workspace argmax_;  // u8, the output's shape
};

}  // namespace kiln
