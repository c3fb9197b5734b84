// kernels/softmax_xent.cpp — functional API of the fused softmax + cross-entropy (docs/math.md §3):
// checks, then dispatches (CPU: the plain loops in kernels/cpu/softmax_xent.cpp for f32 and f64;
// CUDA f32: kiln::cuda::). logits [N][K] f32/f64, labels [N] i32 in [0, K), loss [1],
// dlogits [N][K] (overwritten, optional), correct [N] i32 (optional).
#include "kernels/softmax_xent.h"

#include <limits>

#include "kernels/checks.h"

namespace kiln {

void softmax_cross_entropy(Tensor& loss, Tensor* dlogits, Tensor* correct, const Tensor& logits,
                           const Tensor& labels) {
  constexpr const char* op = "softmax_cross_entropy";
  detail::check_rank(op, "logits", logits, 2);
  const int64_t n = logits.size(0), k = logits.size(1);
  KILN_CHECK(n <= std::numeric_limits<int>::max() && k <= std::numeric_limits<int>::max(),
             detail::describe(op, "logits", logits), ": too large");
  detail::check_shape(op, "loss", loss, {1});
  if (dlogits != nullptr) detail::check_shape(op, "dlogits", *dlogits, logits.shape());
  const Device device =
      detail::check_float_same(op, {{"loss", &loss}, {"dlogits", dlogits}, {"logits", &logits}});
  detail::check_shape(op, "labels", labels, {n});
  detail::check_dtype(op, "labels", labels, DType::i32);
  detail::check_device(op, "labels", labels, device);
  if (correct != nullptr) {
    detail::check_shape(op, "correct", *correct, {n});
    detail::check_dtype(op, "correct", *correct, DType::i32);
    detail::check_device(op, "correct", *correct, device);
  }
  const SoftmaxXentShape s{static_cast<int>(n), static_cast<int>(k)};
  int32_t* correct_ptr = correct != nullptr ? correct->data<int32_t>() : nullptr;
  detail::on_device(
      op, device,
      [&] {
        const int32_t* label = labels.data<int32_t>();
        for (int64_t i = 0; i < n; ++i)
          KILN_CHECK(label[i] >= 0 && label[i] < k, op, ": label ", label[i], " at index ", i,
                     " is outside [0, ", k, ") for logits ", logits.str());
        if (logits.dtype() == DType::f64) {
          cpu::softmax_cross_entropy(loss.data<double>(),
                                     dlogits != nullptr ? dlogits->data<double>() : nullptr,
                                     correct_ptr, logits.data<double>(), label, s);
        } else {
          cpu::softmax_cross_entropy(loss.data<float>(),
                                     dlogits != nullptr ? dlogits->data<float>() : nullptr,
                                     correct_ptr, logits.data<float>(), label, s);
        }
      },
      [&] {
        // Labels on the device are not read back here (that would synchronise every step).
        cuda::softmax_cross_entropy(
            loss.data<float>(), dlogits != nullptr ? dlogits->data<float>() : nullptr, correct_ptr,
            logits.data<float>(), labels.data<int32_t>(), s, current_stream());
      });
}

void accumulate_metrics(Tensor& sums, const Tensor& loss, const Tensor& correct,
                        const Tensor* grad_not_finite, bool first) {
  constexpr const char* op = "accumulate_metrics";
  detail::check_shape(op, "sums", sums, {kMetricSums});
  detail::check_dtype(op, "sums", sums, DType::f64);
  const Device device = sums.device();
  detail::check_shape(op, "loss", loss, {1});
  detail::check_device(op, "loss", loss, device);
  detail::check_rank(op, "correct", correct, 1);
  detail::check_dtype(op, "correct", correct, DType::i32);
  detail::check_device(op, "correct", correct, device);
  const int64_t n = correct.size(0);
  KILN_CHECK(n >= 1 && n <= std::numeric_limits<int>::max(),
             detail::describe(op, "correct", correct),
             ": the batch must hold 1 to 2^31 - 1 samples");
  const int32_t* flag = nullptr;
  if (grad_not_finite != nullptr) {
    detail::check_shape(op, "grad_not_finite", *grad_not_finite, {1});
    detail::check_dtype(op, "grad_not_finite", *grad_not_finite, DType::i32);
    detail::check_device(op, "grad_not_finite", *grad_not_finite, device);
    flag = grad_not_finite->data<int32_t>();
  }
  detail::on_device(
      op, device,
      [&] {
        if (loss.dtype() == DType::f64) {
          cpu::accumulate_metrics(sums.data<double>(), loss.data<double>(), correct.data<int32_t>(),
                                  static_cast<int>(n), flag, first);
        } else {
          detail::check_dtype(op, "loss", loss, DType::f32);
          cpu::accumulate_metrics(sums.data<double>(), loss.data<float>(), correct.data<int32_t>(),
                                  static_cast<int>(n), flag, first);
        }
      },
      [&] {
        detail::check_dtype(op, "loss", loss, DType::f32);
        cuda::accumulate_metrics(sums.data<double>(), loss.data<float>(), correct.data<int32_t>(),
                                 static_cast<int>(n), flag, first, current_stream());
      });
}

}  // namespace kiln
