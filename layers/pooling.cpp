// layers/pooling.cpp — see pooling.h.
#include "layers/pooling.h"

#include <sstream>

#include "core/error.h"

namespace kiln {

MaxPool2d::MaxPool2d(int kernel_size, int stride, int padding)
    : k_(kernel_size), stride_(stride == 0 ? kernel_size : stride), pad_(padding) {
  KILN_CHECK(k_ > 0 && k_ * k_ <= 256 && stride_ > 0 && pad_ >= 0 && 2 * pad_ <= k_,
             "MaxPool2d: invalid arguments (kernel ", k_, ", stride ", stride_, ", padding ", pad_,
             "); windows hold at most 256 elements and padding is at most half the kernel");
}

std::string MaxPool2d::describe() const {
  std::ostringstream os;
  os << "MaxPool2d(kernel_size=" << k_ << ", stride=" << stride_ << ", padding=" << pad_ << ")";
  return os.str();
}

Shape MaxPool2d::output_shape(const Shape& x) const {
  KILN_CHECK(x.rank() == 4, describe(), ": expected an input [N][H][W][C], got ", x.str());
  KILN_CHECK(x[1] + 2 * pad_ >= k_ && x[2] + 2 * pad_ >= k_, describe(), ": input ", x.str(),
             " is smaller than the pooling window");
  return {x[0], (x[1] + 2 * pad_ - k_) / stride_ + 1, (x[2] + 2 * pad_ - k_) / stride_ + 1, x[3]};
}

void MaxPool2d::forward_impl(const Tensor& x, Tensor& y, Mode) {
  Tensor& argmax = argmax_.get(y.shape(), DType::u8, device_);
  maxpool2d_forward(y, argmax, x, pool_params());
}

void MaxPool2d::backward_impl(const Tensor& dy, const Tensor&, Tensor* dx, bool, Mode) {
  if (dx) maxpool2d_backward(*dx, dy, argmax_.tensor(), pool_params());
}

}  // namespace kiln
