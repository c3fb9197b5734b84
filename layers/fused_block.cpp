// layers/fused_block.cpp — see fused_block.h.
#include "layers/fused_block.h"

#include "core/error.h"
#include "kernels/fused_block.h"
#include "layers/conv2d.h"

namespace kiln {

std::unique_ptr<FusedBlock> FusedBlock::match(const std::vector<std::unique_ptr<Layer>>& layers,
                                              int first) {
  if (first < 1 || first + 3 >= static_cast<int>(layers.size())) return nullptr;
  auto* conv = dynamic_cast<Conv2d*>(layers[first - 1].get());
  if (conv == nullptr) return nullptr;
  auto* bn = dynamic_cast<BatchNorm2d*>(layers[first].get());
  auto* act = dynamic_cast<LeakyReLU*>(layers[first + 1].get());
  auto* pool = dynamic_cast<MaxPool2d*>(layers[first + 2].get());
  auto* drop = dynamic_cast<Dropout*>(layers[first + 3].get());
  // The fused backward takes LeakyReLU's sign from bn(x), which needs a positive slope.
  if (!bn || !act || !pool || !drop || !(act->negative_slope() > 0)) return nullptr;
  return std::unique_ptr<FusedBlock>(new FusedBlock(first, conv, bn, act, pool, drop));
}

void FusedBlock::prepare_conv_stats() {
  stats_ready_ = false;
  conv_->set_next_forward([this](const Tensor& x, Tensor& y) {
    BatchNorm2d& bn = *bn_;
    if (x.device() != Device::cuda || y.rank() != 4 || y.size(3) != bn.channels_) return false;
    if (!bn.save_mean_.defined()) {
      bn.save_mean_ = Tensor({bn.channels_}, bn.dtype_, bn.device_);
      bn.save_invstd_ = Tensor({bn.channels_}, bn.dtype_, bn.device_);
    }
    stats_ready_ = conv2d_forward_batch_stats(y, bn.save_mean_, bn.save_invstd_, bn.running_mean_,
                                              bn.running_var_, x, conv_->weight(), conv_->bias(),
                                              conv_->conv_params(), bn.eps_, bn.momentum_);
    return stats_ready_;
  });
}

FusedBlockParams FusedBlock::params() const {
  FusedBlockParams p;
  p.eps = bn_->eps_;
  p.momentum = bn_->momentum_;
  p.slope = act_->negative_slope();
  p.pool = pool_->pool_params();
  p.p = static_cast<float>(drop_->p_);
  p.seed = drop_->seed_;
  p.offset = drop_->offset();
  return p;
}

const Tensor& FusedBlock::forward(const Tensor& x) {
  // The layers' own checks, in their words.
  const Shape y_shape = pool_->output_shape(bn_->output_shape(x.shape()));
  KILN_CHECK(x.numel() / bn_->channels_ > 1, bn_->describe(),
             ": training needs more than one value per channel (got input ", x.str(),
             "); use a batch larger than 1 or Mode::eval");
  BatchNorm2d& bn = *bn_;
  if (!bn.save_mean_.defined()) {
    bn.save_mean_ = Tensor({bn.channels_}, bn.dtype_, bn.device_);
    bn.save_invstd_ = Tensor({bn.channels_}, bn.dtype_, bn.device_);
  }
  // Dropout draws (and advances its offset) only when p > 0, as Dropout::forward_impl.
  if (drop_->p_ != 0.0) drop_->used_offset_ = drop_->next_offset_++;
  Tensor& argmax = pool_->argmax_.get(y_shape, DType::u8, x.device());
  Tensor& y = y_.get(y_shape, x.dtype(), x.device());
  FusedBlockParams p = params();
  // The statistics are the convolution's only if it wrote them for this very input.
  p.stats_ready = stats_ready_ && x.raw() == conv_->output().raw();
  stats_ready_ = false;
  fused_block_forward(y, argmax, bn.save_mean_, bn.save_invstd_, bn.running_mean_, bn.running_var_,
                      x, bn.weight_.value, bn.bias_.value, p);
  ++bn.num_batches_tracked_;
  x_ = x.view(x.shape());
  ran_fused_ = true;
  return y;
}

const Tensor& FusedBlock::backward(const Tensor& dy, const BackwardOptions& options) {
  KILN_CHECK(ran_fused_ && x_.defined(), "fused block of layers ", first(), "..", last(),
             ": backward() before a fused forward()");
  KILN_CHECK(
      dy.shape() == y_.tensor().shape() && dy.dtype() == x_.dtype() && dy.device() == x_.device(),
      "fused block of layers ", first(), "..", last(), ": the output gradient ", dy.str(),
      " does not match the output ", y_.tensor().str());
  BatchNorm2d& bn = *bn_;
  Tensor* dgamma = &bn.weight_.grad;
  Tensor* dbeta = &bn.bias_.grad;
  if (!options.param_grads) {
    if (!bn.scratch_dgamma_.defined()) {
      bn.scratch_dgamma_ = Tensor({bn.channels_}, bn.dtype_, bn.device_);
      bn.scratch_dbeta_ = Tensor({bn.channels_}, bn.dtype_, bn.device_);
    }
    dgamma = &bn.scratch_dgamma_;
    dbeta = &bn.scratch_dbeta_;
  }
  Tensor& dx = dx_.get(x_.shape(), x_.dtype(), x_.device());
  fused_block_backward(dx, *dgamma, *dbeta, dy, pool_->argmax_.tensor(), x_, bn.weight_.value,
                       bn.bias_.value, bn.save_mean_, bn.save_invstd_, params());
  return dx;
}

void FusedBlock::release_workspaces() {
  y_.release();
  dx_.release();
  x_ = Tensor();
  ran_fused_ = false;
}

}  // namespace kiln
