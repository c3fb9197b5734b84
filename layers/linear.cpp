// layers/linear.cpp — see linear.h.
#include "layers/linear.h"

#include <cmath>
#include <sstream>

#include "core/error.h"

namespace kiln {

Linear::Linear(int in_features, int out_features, bool bias)
    : in_(in_features), out_(out_features), has_bias_(bias) {
  KILN_CHECK(in_ > 0 && out_ > 0, "Linear: features must be positive (in ", in_, ", out ", out_,
             ")");
  const double bound = 1.0 / std::sqrt(static_cast<double>(in_));
  weight_ = make_param("weight", {out_, in_}, ParamInit::uniform(bound));
  if (has_bias_) bias_ = make_param("bias", {out_}, ParamInit::uniform(bound));
  init(0);
}

std::string Linear::describe() const {
  std::ostringstream os;
  os << "Linear(in_features=" << in_ << ", out_features=" << out_
     << ", bias=" << (has_bias_ ? "True" : "False") << ")";
  return os.str();
}

Shape Linear::output_shape(const Shape& x) const {
  KILN_CHECK(x.rank() == 2 && x[1] == in_, describe(), ": expected an input [N][", in_, "], got ",
             x.str());
  return {x[0], out_};
}

std::vector<ParamRef> Linear::params() {
  std::vector<ParamRef> out{ref(weight_)};
  if (has_bias_) out.push_back(ref(bias_));
  return out;
}

void Linear::set_flattened_input(const std::optional<Shape>& x) {
  if (!x) {
    weight_.torch_layout = {TorchLayout::Kind::unknown};
    return;
  }
  weight_.torch_layout = {};
  if (x->rank() != 4) return;  // both orders agree
  const int64_t h = (*x)[1], w = (*x)[2], c = (*x)[3];
  // A shape this layer does not accept was seen by a forward that then failed here: not known.
  if (c * h * w != in_)
    weight_.torch_layout = {TorchLayout::Kind::unknown};
  else if (c > 1 && h * w > 1)
    weight_.torch_layout = {TorchLayout::Kind::linear_hwc, c, h, w};
}

void Linear::forward_impl(const Tensor& x, Tensor& y, Mode) {
  linear_forward(y, x, weight_.value, has_bias_ ? &bias_.value : nullptr, precision_);
}

void Linear::backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads, Mode) {
  if (param_grads)
    linear_backward_weight(weight_.grad, has_bias_ ? &bias_.grad : nullptr, dy, x, precision_);
  if (dx) linear_backward_data(*dx, dy, weight_.value, precision_);
}

Shape Flatten::output_shape(const Shape& x) const {
  KILN_CHECK(x.rank() >= 2, "Flatten: expected an input with a batch dimension, got ", x.str());
  return {x[0], x.numel() / x[0]};
}

void Flatten::record_input_shape(const Shape& x) {
  output_shape(x);  // throws for a shape Flatten does not accept
  input_shape_ = x;
}

void Flatten::forward_impl(const Tensor& x, Tensor& y, Mode) {
  input_shape_ = x.shape();
  y = x.view(output_shape(x.shape()));  // read-only: x is the caller's const input
}

void Flatten::backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool, Mode) {
  if (dx) *dx = dy.view(x.shape());
}

}  // namespace kiln
