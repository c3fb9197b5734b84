// kernels/optimizer.cpp — functional API of the fused optimizer updates (docs/math.md §5; PyTorch's
// SGD, Adam and AdamW as kernels/optimizer.h writes them): checks the tensors and the
// hyper-parameters, then dispatches (CPU f32/f64: kernels/cpu/optimizer.cpp; CUDA f32:
// kiln::cuda::).
#include "kernels/optimizer.h"

#include <cmath>

#include "kernels/checks.h"

namespace kiln {
namespace {

void check_finite(const char* op, const char* name, float value) {
  KILN_CHECK(std::isfinite(value), op, ": ", name, " = ", value, " is not finite");
}

}  // namespace

void sgd_update(Tensor& param, Tensor* momentum_buf, const Tensor& grad, const SgdParams& p) {
  constexpr const char* op = "sgd_update";
  check_finite(op, "lr", p.lr);
  check_finite(op, "momentum", p.momentum);
  check_finite(op, "dampening", p.dampening);
  check_finite(op, "weight_decay", p.weight_decay);
  KILN_CHECK(p.step >= 1, op, ": step = ", p.step, " must start at 1");
  KILN_CHECK(!p.nesterov || (p.momentum > 0.f && p.dampening == 0.f), op,
             ": Nesterov momentum needs momentum > 0 and dampening 0 (momentum = ", p.momentum,
             ", dampening = ", p.dampening, ")");
  detail::check_defined(op, "param", param);
  detail::check_shape(op, "grad", grad, param.shape());
  const bool use_momentum = p.momentum != 0.f;
  KILN_CHECK(!use_momentum || momentum_buf != nullptr, op, ": momentum = ", p.momentum,
             " needs a momentum buffer for param ", param.str());
  const Tensor* buf = use_momentum ? momentum_buf : nullptr;
  if (buf != nullptr) detail::check_shape(op, "momentum_buf", *buf, param.shape());
  const Device device =
      detail::check_float_same(op, {{"param", &param}, {"momentum_buf", buf}, {"grad", &grad}});
  const int64_t n = param.numel();
  detail::on_device(
      op, device,
      [&] {
        if (param.dtype() == DType::f64) {
          cpu::sgd_update(param.data<double>(),
                          buf != nullptr ? momentum_buf->data<double>() : nullptr,
                          grad.data<double>(), n, p);
        } else {
          cpu::sgd_update(param.data<float>(),
                          buf != nullptr ? momentum_buf->data<float>() : nullptr,
                          grad.data<float>(), n, p);
        }
      },
      [&] {
        cuda::sgd_update(param.data<float>(),
                         buf != nullptr ? momentum_buf->data<float>() : nullptr, grad.data<float>(),
                         n, p, current_stream());
      });
}

void adam_update(Tensor& param, Tensor& m, Tensor& v, const Tensor& grad, const AdamParams& p) {
  const char* op = p.decoupled_weight_decay ? "adamw_update" : "adam_update";
  check_finite(op, "lr", p.lr);
  check_finite(op, "weight_decay", p.weight_decay);
  KILN_CHECK(p.beta1 >= 0.f && p.beta1 < 1.f && p.beta2 >= 0.f && p.beta2 < 1.f, op, ": betas (",
             p.beta1, ", ", p.beta2, ") must lie in [0, 1)");
  KILN_CHECK(p.eps >= 0.f && std::isfinite(p.eps), op, ": eps = ", p.eps,
             " must be finite and >= 0");
  KILN_CHECK(p.step >= 1, op, ": step = ", p.step, " must start at 1");
  detail::check_defined(op, "param", param);
  detail::check_shape(op, "m", m, param.shape());
  detail::check_shape(op, "v", v, param.shape());
  detail::check_shape(op, "grad", grad, param.shape());
  const Device device =
      detail::check_float_same(op, {{"param", &param}, {"m", &m}, {"v", &v}, {"grad", &grad}});
  const int64_t n = param.numel();
  detail::on_device(
      op, device,
      [&] {
        if (param.dtype() == DType::f64) {
          cpu::adam_update(param.data<double>(), m.data<double>(), v.data<double>(),
                           grad.data<double>(), n, p);
        } else {
          cpu::adam_update(param.data<float>(), m.data<float>(), v.data<float>(),
                           grad.data<float>(), n, p);
        }
      },
      [&] {
        cuda::adam_update(param.data<float>(), m.data<float>(), v.data<float>(), grad.data<float>(),
                          n, p, current_stream());
      });
}

}  // namespace kiln
