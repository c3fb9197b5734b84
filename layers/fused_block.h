// layers/fused_block.h — how a Sequential runs BatchNorm2d → LeakyReLU → MaxPool2d → Dropout after
// a Conv2d as one fused op (kernels/fused_block.h) in training mode.
//
// A FusedBlock is not a Layer: it drives the four layers' own state — BatchNorm2d's parameters,
// running statistics, num_batches_tracked and saved statistics, MaxPool2d's argmax, Dropout's Philox
// counters — exactly as their forward and backward would, so parameters, names, buffers, counters
// and checkpoints are the same whether the block ran fused or not. It owns only the block's output
// (the pooled tensor) and dx (the gradient at the convolution's output); the full-resolution
// batchnorm output and activation, and the layers' own output buffers, are not written.
#pragma once

#include <memory>
#include <vector>

#include "core/tensor.h"
#include "kernels/fused_block.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/layer.h"
#include "layers/pooling.h"

namespace kiln {

class FusedBlock {
 public:
  // The block of layers[first..first+3] when they are BatchNorm2d, LeakyReLU (positive slope),
  // MaxPool2d and Dropout, in that order, after a Conv2d at first − 1; otherwise nullptr.
  static std::unique_ptr<FusedBlock> match(const std::vector<std::unique_ptr<Layer>>& layers,
                                           int first);

  int first() const { return first_; }
  int last() const { return first_ + 3; }
  // Whether the most recent forward through these layers ran fused.
  bool ran_fused() const { return ran_fused_; }
  // Whether the block can run fused now. The fused kernel takes this batch's own statistics and
  // draws dropout's mask by the batch's own sample index, so in data parallelism a synchronised
  // batchnorm (BatchNorm2d::sync) or a dropout placed in the global batch (Dropout::set_placement)
  // runs the block unfused (docs/distributed.md).
  bool can_fuse() const { return !bn_->synced() && drop_->stride_ == 1 && drop_->first_ == 0; }
  void set_ran_fused(bool ran) { ran_fused_ = ran; }
  // Called before the convolution's training forward when the block will run fused: the
  // convolution then gathers batchnorm's batch statistics in its epilogue where it can
  // (conv2d_forward_batch_stats: CUDA, fp32), and forward() skips its own statistics pass.
  // Sequential::set_fused_conv_stats(false) stops asking.
  void prepare_conv_stats();
  // Withdraws a prepare_conv_stats() whose convolution forward has not run (Sequential calls it
  // before every forward, so a request never outlives the forward it was made for).
  void cancel_conv_stats() {
    conv_->set_next_forward(nullptr);
    stats_ready_ = false;
  }

  // A training forward of the four layers from x (the convolution's output); returns the pooled,
  // dropped-out output. x must stay unchanged until backward.
  const Tensor& forward(const Tensor& x);
  // The backward of the four layers: returns dx at the convolution's output (overwritten);
  // BatchNorm2d's parameter gradients accumulate unless options.param_grads is false.
  const Tensor& backward(const Tensor& dy, const BackwardOptions& options);
  void release_workspaces();

 private:
  FusedBlock(int first, Conv2d* conv, BatchNorm2d* bn, LeakyReLU* act, MaxPool2d* pool,
             Dropout* drop)
      : first_(first), conv_(conv), bn_(bn), act_(act), pool_(pool), drop_(drop) {}
  FusedBlockParams params() const;

  int first_;
  Conv2d* conv_;
  BatchNorm2d* bn_;
  LeakyReLU* act_;
  MaxPool2d* pool_;
  Dropout* drop_;
  Workspace y_, dx_;
  Tensor x_;  // a view of the last forward input
  bool ran_fused_ = false;
  bool stats_ready_ = false;  // the convolution's epilogue wrote this batch's statistics
};

}  // namespace kiln
