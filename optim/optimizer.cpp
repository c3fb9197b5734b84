// optim/optimizer.cpp — see optimizer.h.
#include "optim/optimizer.h"

#include <cmath>

#include "core/error.h"
#include "kernels/elementwise.h"

namespace kiln {

namespace {
Tensor zeros_like(const Tensor& t) {
  return Tensor::zeros(t.shape(), t.dtype(), Device::cpu).to(t.device());
}
// A view of the caller's tensor, sharing (and keeping alive) its storage.
Tensor share(Tensor& t) {
  return t.defined() ? t.view(t.shape()) : Tensor();
}
}  // namespace

Optimizer::Optimizer(Tensor& params, Tensor& grads) : params_(share(params)), grads_(share(grads)) {
  KILN_CHECK(params_.defined() && grads_.defined() && params_.shape() == grads_.shape() &&
                 params_.dtype() == grads_.dtype() && params_.device() == grads_.device(),
             "Optimizer: parameters ", params_.str(), " and gradients ", grads_.str(),
             " must be defined and of one shape, dtype and device");
  KILN_CHECK(!params_.read_only() && !grads_.read_only(), "Optimizer: parameters ", params_.str(),
             " and gradients ", grads_.str(),
             " must be writable (pass the model's flat_params() and flat_grads())");
}

void Optimizer::step() {
  KILN_CHECK(std::isfinite(lr_) && lr_ >= 0, kind(),
             ": the learning rate must be a finite number >= 0, got ", lr_);
  ensure_state();
  update(steps_ + 1);
  ++steps_;
}

void Optimizer::ensure_state() {
  bool missing = false;
  for (OptimizerStateRef& s : state())
    if (!s.tensor->defined()) missing = true;
  if (missing) allocate_state();
}

Sgd::Sgd(Tensor& params, Tensor& grads, const SgdOptions& options)
    : Optimizer(params, grads), options_(options) {
  lr_ = options.lr;
}

std::vector<OptimizerStateRef> Sgd::state() {
  if (options_.momentum == 0.f) return {};
  return {{"momentum_buffer", &momentum_buffer_}};
}

void Sgd::allocate_state() {
  if (options_.momentum != 0.f) momentum_buffer_ = zeros_like(params_);
}

SgdParams Sgd::update_params(int64_t step) const {
  SgdParams p;
  p.lr = static_cast<float>(lr_);
  p.momentum = options_.momentum;
  p.dampening = options_.dampening;
  p.weight_decay = options_.weight_decay;
  p.nesterov = options_.nesterov;
  p.step = step;
  p.device_coefficients = device_coefficients_;
  return p;
}

void Sgd::update(int64_t step) {
  sgd_update(params_, options_.momentum != 0.f ? &momentum_buffer_ : nullptr, grads_,
             update_params(step));
}

Adam::Adam(Tensor& params, Tensor& grads, const AdamOptions& options, bool decoupled)
    : Optimizer(params, grads), options_(options), decoupled_(decoupled) {
  lr_ = options.lr;
}

std::vector<OptimizerStateRef> Adam::state() {
  return {{"exp_avg", &m_}, {"exp_avg_sq", &v_}};
}

void Adam::allocate_state() {
  m_ = zeros_like(params_);
  v_ = zeros_like(params_);
}

AdamParams Adam::update_params(int64_t step) const {
  AdamParams p;
  p.lr = static_cast<float>(lr_);
  p.beta1 = options_.beta1;
  p.beta2 = options_.beta2;
  p.eps = options_.eps;
  p.weight_decay = options_.weight_decay;
  p.decoupled_weight_decay = decoupled_;
  p.step = step;
  p.device_coefficients = device_coefficients_;
  return p;
}

void Adam::update(int64_t step) {
  adam_update(params_, m_, v_, grads_, update_params(step));
}

// The coefficients exist only where the CUDA kernels do.
#if KILN_WITH_CUDA
size_t Sgd::coefficient_bytes() const {
  return cuda::sgd_coefficient_bytes();
}
void Sgd::next_coefficients(void* out) const {
  cuda::sgd_coefficients(update_params(steps_ + 1), out);
}
size_t Adam::coefficient_bytes() const {
  return cuda::adam_coefficient_bytes();
}
void Adam::next_coefficients(void* out) const {
  cuda::adam_coefficients(update_params(steps_ + 1), out);
}
#else
size_t Sgd::coefficient_bytes() const {
  return 0;
}
void Sgd::next_coefficients(void*) const {}
size_t Adam::coefficient_bytes() const {
  return 0;
}
void Adam::next_coefficients(void*) const {}
#endif

double clip_grad_norm(Tensor& grads, double max_norm) {
  KILN_CHECK(max_norm > 0, "clip_grad_norm: max_norm must be positive, got ", max_norm);
  const double norm = l2_norm(grads);
  if (!std::isfinite(norm)) return norm;
  // PyTorch's clip_coef = max_norm / (norm + 1e-6), applied only when it is below 1.
  const double coef = max_norm / (norm + 1e-6);
  if (coef < 1.0) scale(grads, coef);
  return norm;
}

}  // namespace kiln
