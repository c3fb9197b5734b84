// layers/loss.h — SoftmaxCrossEntropy, PyTorch's nn.CrossEntropyLoss (mean over the batch), fused:
// one kernel gives the loss, d loss / d logits = (softmax(z) − onehot(label)) / N (docs/math.md
// §3), and which predictions were right.
//
//   float loss = criterion.forward(logits, labels);   // labels: int32 [N] on the logits' device
//   net.backward(criterion.backward());
//
// forward() copies the loss and the per-example correct flags to the host (two small synchronous
// copies) and returns plain numbers; forward_on_device() leaves them on the device (loss_tensor(),
// correct_tensor()) for a step that never waits for the GPU (train/eager_step.h). loss() and
// correct() always answer for the last forward of either kind: after forward_on_device() their
// first call reads the device's values (the synchronous read a step that never waits avoids;
// kiln::Metrics sums them on the device instead). The buffers are reused (no steady-state
// allocation).
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
  // The same, without reading anything back: on CUDA only the kernel is queued; loss_tensor() and
  // correct_tensor() hold the results, and loss() / correct() read them back when first asked.
  void forward_on_device(const Tensor& logits, const Tensor& labels);
  // The mean loss [1] and the correct flags [N] i32 of the last forward, on the logits' device.
  const Tensor& loss_tensor() const { return loss_.tensor(); }
  const Tensor& correct_tensor() const { return correct_.tensor(); }
  // d loss / d logits of the last forward (owned; valid until the next forward).
  const Tensor& backward() const;
  // The mean loss, and the number of predictions equal to their label, of the last forward (of
  // either kind). After forward_on_device() the first call copies both from the device, which
  // waits for the current stream's work (issue it on the stream that ran the forward).
  double loss() const;
  int64_t correct() const;

 private:
  // Copies the loss and the correct count to the host unless they are there already.
  void read_back() const;
  Workspace loss_, dlogits_, correct_;
  mutable double loss_value_ = 0;
  mutable int64_t correct_count_ = 0;
  mutable bool on_host_ = false;  // loss_value_ and correct_count_ are the last forward's
  bool has_forward_ = false;
};

}  // namespace kiln
