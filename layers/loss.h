// layers/loss.h — SoftmaxCrossEntropy, PyTorch's nn.CrossEntropyLoss (mean over the batch), fused:
// one kernel gives the loss, d loss / d logits = (softmax(z) − onehot(label)) / N (docs/math.md
// §3), and which predictions were right.
//
//   float loss = criterion.forward(logits, labels);   // labels: int32 [N] on the logits' device
//   net.backward(criterion.backward());
//
// The loss and the per-example correct flags are copied to the host (two small synchronous
// copies), so forward() returns plain numbers; the buffers are reused (no steady-state allocation).
#pragma once

#include <cstdint>

#include "core/tensor.h"
#include "kernels/softmax_xent.h"
#include "layers/layer.h"

namespace kiln {

class SoftmaxCrossEntropy {
 public:
  // requires: logits [N][K] f32/f64, labels [N] i32 in [0, K), both on one device.
  // ensures:  returns the mean loss; backward() then returns d loss / d logits.
  double forward(const Tensor& logits, const Tensor& labels);
  // d loss / d logits of the last forward (owned; valid until the next forward).
  const Tensor& backward() const;
  // Predictions of the last forward equal to their label.
  int64_t correct() const { return correct_count_; }
  double loss() const { return loss_value_; }

 private:
  Workspace loss_, dlogits_, correct_;
  double loss_value_ = 0;
  int64_t correct_count_ = 0;
  bool has_forward_ = false;
};

}  // namespace kiln
