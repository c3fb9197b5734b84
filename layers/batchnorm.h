// layers/batchnorm.h — BatchNorm2d, PyTorch's nn.BatchNorm2d over the channels of NHWC activations.
// Train: batch statistics (biased variance), running statistics updated with momentum from the
// unbiased variance, num_batches_tracked += 1. Eval: running statistics. eps 1e-5, momentum 0.1,
// weight 1, bias 0, running_mean 0, running_var 1 (PyTorch's defaults). Backward: docs/math.md §2.
//
// Synchronised across data-parallel replicas (PyTorch's SyncBatchNorm) once given a reducer
// (sync(): an all-reduce sum of doubles over the ranks, dist/data_parallel.h installs one): the
// training statistics are then those of the global batch, merged from each rank's count, mean
// and M2 (Chan et al.'s pairwise formula, M2 = Σ_r [M2_r + n_r (mean_r − μ)²], never raw Σx²),
// and backward all-reduces the per-channel Σdy and Σdy·x̂, so N ranks × batch B compute what one
// process computes with batch N·B. On CUDA the per-channel values are computed on the device and
// only [C]-sized vectors are merged on the host; on the CPU the whole path is host loops.
#pragma once

#include <functional>

#include "kernels/batchnorm.h"
#include "layers/layer.h"

namespace kiln {

class BatchNorm2d : public Layer {
 public:
  explicit BatchNorm2d(int channels, double eps = 1e-5, double momentum = 0.1);

  Shape output_shape(const Shape& x) const override;
  std::string kind() const override { return "BatchNorm2d"; }
  std::string describe() const override;
  std::vector<ParamRef> params() override;
  std::vector<BufferRef> buffers() override;

  Tensor& running_mean() { return running_mean_; }
  Tensor& running_var() { return running_var_; }
  int64_t num_batches_tracked() const { return num_batches_tracked_; }
  int channels() const { return channels_; }
  double eps() const { return eps_; }
  double momentum() const { return momentum_; }

  // all_reduce_sum(p, n): p[0..n) = their sum over the ranks, the same on every rank. Empty (the
  // default): per-replica statistics.
  using Reducer = std::function<void(double* p, int64_t n)>;
  void sync(Reducer all_reduce_sum) { reducer_ = std::move(all_reduce_sum); }
  bool synced() const { return static_cast<bool>(reducer_); }

 protected:
  void forward_impl(const Tensor& x, Tensor& y, Mode mode) override;
  void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                     Mode mode) override;
  void reset_buffers() override;
  void release_workspaces() override;

 private:
  friend class FusedBlock;  // runs this layer fused with its neighbours (layers/fused_block.h)
  int channels_;
  double eps_, momentum_;
  Param weight_, bias_;
  Tensor running_mean_, running_var_;
  int64_t num_batches_tracked_ = 0;
  Tensor save_mean_, save_invstd_;         // [C], from the last training forward
  Tensor scratch_dgamma_, scratch_dbeta_;  // [C], receive the unwanted grads when !param_grads
  Workspace dx_scratch_;                   // receives dx when the caller does not want it
  Tensor sync_pairs_, sync_coef_;  // [2][C] f64 and f32 on CUDA: the synchronised path's values
  Tensor& sync_pairs();
  Reducer reducer_;
  double share_ = 1;  // this rank's values per channel / the global batch's (synced forward)
  template <typename T>
  void forward_synced(const Tensor& x, Tensor& y);
  template <typename T>
  void backward_synced(Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& dy,
                       const Tensor& x);
};

}  // namespace kiln
