// layers/loss.cpp — see loss.h.
#include "layers/loss.h"

#include <vector>

#include "core/error.h"

namespace kiln {

void SoftmaxCrossEntropy::forward_on_device(const Tensor& logits, const Tensor& labels) {
  KILN_CHECK(logits.defined() && logits.rank() == 2,
             "SoftmaxCrossEntropy: logits must be [N][K], got ", logits.str());
  KILN_CHECK(labels.defined() && labels.rank() == 1 && labels.size(0) == logits.size(0) &&
                 labels.dtype() == DType::i32 && labels.device() == logits.device(),
             "SoftmaxCrossEntropy: labels must be i32 [", logits.size(0), "] on ",
             device_name(logits.device()), ", got ", labels.str());
  Tensor& loss = loss_.get({1}, logits.dtype(), logits.device());
  Tensor& dlogits = dlogits_.get(logits.shape(), logits.dtype(), logits.device());
  Tensor& correct = correct_.get({logits.size(0)}, DType::i32, logits.device());
  softmax_cross_entropy(loss, &dlogits, &correct, logits, labels);
  has_forward_ = true;
  on_host_ = false;
}

double SoftmaxCrossEntropy::forward(const Tensor& logits, const Tensor& labels) {
  forward_on_device(logits, labels);
  read_back();
  return loss_value_;
}

void SoftmaxCrossEntropy::read_back() const {
  KILN_CHECK(has_forward_, "SoftmaxCrossEntropy: loss() or correct() before forward()");
  if (on_host_) return;
  const Tensor& loss = loss_.tensor();
  loss_value_ =
      loss.dtype() == DType::f32 ? double(loss.to_vector<float>()[0]) : loss.to_vector<double>()[0];
  correct_count_ = 0;
  for (int32_t c : correct_.tensor().to_vector<int32_t>()) correct_count_ += c;
  on_host_ = true;
}

double SoftmaxCrossEntropy::loss() const {
  read_back();
  return loss_value_;
}

int64_t SoftmaxCrossEntropy::correct() const {
  read_back();
  return correct_count_;
}

const Tensor& SoftmaxCrossEntropy::backward() const {
  KILN_CHECK(has_forward_, "SoftmaxCrossEntropy: backward() before forward()");
  return dlogits_.tensor();
}

}  // namespace kiln
