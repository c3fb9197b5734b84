// layers/activation.cpp — see activation.h.
#include "layers/activation.h"

#include <sstream>

namespace kiln {

std::string LeakyReLU::describe() const {
  std::ostringstream os;
  os << "LeakyReLU(negative_slope=" << slope_ << ")";
  return os.str();
}

void LeakyReLU::forward_impl(const Tensor& x, Tensor& y, Mode) {
  leaky_relu_forward(y, x, slope_);
}

void LeakyReLU::backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool, Mode) {
  if (dx) leaky_relu_backward(*dx, dy, x, slope_);
}

}  // namespace kiln
