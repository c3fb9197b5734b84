// layers/conv2d.cpp — see conv2d.h.
#include "layers/conv2d.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace kiln {

Conv2d::Conv2d(int in_channels, int out_channels, int kernel_size, int stride, int padding,
               bool bias)
    : in_(in_channels),
      out_(out_channels),
      k_(kernel_size),
      stride_(stride),
      pad_(padding),
      has_bias_(bias) {
  KILN_CHECK(in_ > 0 && out_ > 0 && k_ > 0 && stride_ > 0 && pad_ >= 0,
             "Conv2d: invalid arguments (in ", in_, ", out ", out_, ", kernel ", k_, ", stride ",
             stride_, ", padding ", pad_, ")");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_) * k_ * k_);
  weight_ = make_param("weight", {out_, k_, k_, in_}, ParamInit::uniform(bound),
                       {TorchLayout::Kind::conv_ohwi});
  if (has_bias_) bias_ = make_param("bias", {out_}, ParamInit::uniform(bound));
  init(0);
}

std::string Conv2d::describe() const {
  std::ostringstream os;
  os << "Conv2d(" << in_ << ", " << out_ << ", kernel_size=(" << k_ << ", " << k_ << "), stride=("
     << stride_ << ", " << stride_ << "), padding=(" << pad_ << ", " << pad_ << ")"
     << (has_bias_ ? "" : ", bias=False") << ")";
  return os.str();
}

Shape Conv2d::output_shape(const Shape& x) const {
  KILN_CHECK(x.rank() == 4 && x[3] == in_, describe(), ": expected an input [N][H][W][", in_,
             "], got ", x.str());
  const int64_t oh = (x[1] + 2 * pad_ - k_) / stride_ + 1;
  const int64_t ow = (x[2] + 2 * pad_ - k_) / stride_ + 1;
  KILN_CHECK(x[1] + 2 * pad_ >= k_ && x[2] + 2 * pad_ >= k_, describe(), ": input ", x.str(),
             " is smaller than the kernel");
  return {x[0], oh, ow, out_};
}

std::vector<ParamRef> Conv2d::params() {
  std::vector<ParamRef> out{ref(weight_)};
  if (has_bias_) out.push_back(ref(bias_));
  return out;
}

void Conv2d::forward_impl(const Tensor& x, Tensor& y, Mode mode) {
  if (next_forward_) {
    const auto f = std::move(next_forward_);
    next_forward_ = nullptr;
    if (mode == Mode::train && f(x, y)) return;
  }
  conv2d_forward(y, x, weight_.value, has_bias_ ? &bias_.value : nullptr, conv_params());
}

void Conv2d::backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads, Mode) {
  if (param_grads)
    conv2d_backward_filter(weight_.grad, has_bias_ ? &bias_.grad : nullptr, dy, x, conv_params());
  if (dx) conv2d_backward_data(*dx, dy, weight_.value, conv_params());
}

}  // namespace kiln
