// layers/batchnorm.cpp — see batchnorm.h.
#include "layers/batchnorm.h"

#include <sstream>

#include "core/error.h"

namespace kiln {

BatchNorm2d::BatchNorm2d(int channels, double eps, double momentum)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  KILN_CHECK(channels_ > 0, "BatchNorm2d: channels must be positive, got ", channels_);
  weight_ = make_param("weight", {channels_}, ParamInit::constant(1.0));
  bias_ = make_param("bias", {channels_}, ParamInit::constant(0.0));
  running_mean_ = Tensor::zeros({channels_});
  running_var_ = Tensor::full({channels_}, 1.0);
  init(0);
}

std::string BatchNorm2d::describe() const {
  std::ostringstream os;
  os << "BatchNorm2d(" << channels_ << ", eps=" << eps_ << ", momentum=" << momentum_ << ")";
  return os.str();
}

Shape BatchNorm2d::output_shape(const Shape& x) const {
  KILN_CHECK(x.rank() >= 2 && x[x.rank() - 1] == channels_, describe(), ": expected an input with ",
             channels_, " channels last, got ", x.str());
  return x;
}

std::vector<ParamRef> BatchNorm2d::params() {
  return {ref(weight_), ref(bias_)};
}

std::vector<BufferRef> BatchNorm2d::buffers() {
  return {{"running_mean", &running_mean_, nullptr},
          {"running_var", &running_var_, nullptr},
          {"num_batches_tracked", nullptr, &num_batches_tracked_}};
}

void BatchNorm2d::reset_buffers() {
  fill_tensor(running_mean_, 0.0);
  fill_tensor(running_var_, 1.0);
  num_batches_tracked_ = 0;
}

void BatchNorm2d::release_workspaces() {
  save_mean_ = Tensor();
  save_invstd_ = Tensor();
  scratch_dgamma_ = Tensor();
  scratch_dbeta_ = Tensor();
  dx_scratch_.release();
}

void BatchNorm2d::forward_impl(const Tensor& x, Tensor& y, Mode mode) {
  if (mode == Mode::eval) {
    batchnorm_forward_eval(y, x, weight_.value, bias_.value, running_mean_, running_var_, eps_);
    return;
  }
  KILN_CHECK(x.numel() / channels_ > 1, describe(),
             ": training needs more than one value per channel (got input ", x.str(),
             "); use a batch larger than 1 or Mode::eval");
  if (!save_mean_.defined()) {
    save_mean_ = Tensor({channels_}, dtype_, device_);
    save_invstd_ = Tensor({channels_}, dtype_, device_);
  }
  batchnorm_forward_train(y, save_mean_, save_invstd_, running_mean_, running_var_, x,
                          weight_.value, bias_.value, eps_, momentum_);
  ++num_batches_tracked_;
}

void BatchNorm2d::backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                                Mode mode) {
  if (mode == Mode::eval) {
    if (dx) batchnorm_backward_eval(*dx, dy, weight_.value, running_var_, eps_);
    return;
  }
  if (!dx && !param_grads) return;
  Tensor* dgamma = &weight_.grad;
  Tensor* dbeta = &bias_.grad;
  if (!param_grads) {
    if (!scratch_dgamma_.defined()) {
      scratch_dgamma_ = Tensor({channels_}, dtype_, device_);
      scratch_dbeta_ = Tensor({channels_}, dtype_, device_);
    }
    dgamma = &scratch_dgamma_;
    dbeta = &scratch_dbeta_;
  }
  // The fused kernel always writes dx; without a caller's buffer it goes to a workspace.
  Tensor* out = dx;
  if (!out) out = &dx_scratch_.get(x.shape(), dtype_, device_);
  batchnorm_backward(*out, *dgamma, *dbeta, dy, x, weight_.value, save_mean_, save_invstd_);
}

}  // namespace kiln
