// optim/optimizer.h — SGD, Adam and AdamW over a model's flat parameter buffer.
//
// An optimizer sees the model only as two flat tensors, the parameter values and their gradients
// (Sequential::flat_params() / flat_grads(), docs/design.md §5), and updates them with ONE fused
// kernel launch per step (kernels/optimizer.h; PyTorch's update rules). It keeps its own views of
// the two tensors (core/tensor.h), which share their storage and keep it alive: nothing depends on
// the caller's Tensor objects staying where they are. Its state lives on the parameters' device.
// A Sequential moved with to() gets new flat buffers, so move the model before building its
// optimizer; Sequential::to() refuses to move while an optimizer still holds views of them.
//
//   kiln::Adam opt(net.flat_params(), net.flat_grads(), {.lr = 1e-3f});
//   net.zero_grad(); ...forward, backward...; opt.step();
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "kernels/optimizer.h"

namespace kiln {

// A named state tensor of an optimizer ("exp_avg"), flat like the parameters.
struct OptimizerStateRef {
  std::string name;
  Tensor* tensor = nullptr;
};

class Optimizer {
 public:
  // params and grads: flat, writable tensors of one shape; the optimizer keeps views of them.
  Optimizer(Tensor& params, Tensor& grads);
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update with the current learning rate; steps() increases by one.
  void step();
  double lr() const { return lr_; }
  void set_lr(double lr) { lr_ = lr; }
  // Updates applied so far (PyTorch's "step" of the state; the next update is steps() + 1).
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }
  virtual std::string kind() const = 0;  // "adam", "adamw", "sgd"
  // The views of the parameters and gradients the optimizer updates and reads.
  const Tensor& params() const { return params_; }
  const Tensor& grads() const { return grads_; }

  // For a step captured into a CUDA graph, whose update must not bake in the learning rate and the
  // step: the bytes of the next update's coefficients (step steps() + 1 at lr()), to be copied to
  // device memory before the update runs, and that memory for the updates to read (nullptr: the
  // kernels take lr and step as arguments, as usual). Both give the same bits.
  virtual size_t coefficient_bytes() const = 0;
  virtual void next_coefficients(void* out) const = 0;
  void set_device_coefficients(const void* device_coefficients) {
    device_coefficients_ = device_coefficients;
  }

  // The state tensors (allocated on the parameters' device on first use, or by ensure_state()),
  // for checkpoints.
  virtual std::vector<OptimizerStateRef> state() = 0;
  void ensure_state();

 protected:
  virtual void update(int64_t step) = 0;
  virtual void allocate_state() = 0;
  Tensor params_;  // a view of the caller's parameters (shares the storage)
  Tensor grads_;   // a view of the caller's gradients
  const void* device_coefficients_ = nullptr;
  double lr_ = 1e-3;
  int64_t steps_ = 0;
};

struct SgdOptions {
  float lr = 0.01f, momentum = 0.f, dampening = 0.f, weight_decay = 0.f;
  bool nesterov = false;
};

class Sgd : public Optimizer {
 public:
  Sgd(Tensor& params, Tensor& grads, const SgdOptions& options = {});
  std::string kind() const override { return "sgd"; }
  std::vector<OptimizerStateRef> state() override;
  const SgdOptions& options() const { return options_; }
  size_t coefficient_bytes() const override;
  void next_coefficients(void* out) const override;

 protected:
  SgdParams update_params(int64_t step) const;
  void update(int64_t step) override;
  void allocate_state() override;

 private:
  SgdOptions options_;
  Tensor momentum_buffer_;
};

struct AdamOptions {
  float lr = 1e-3f, beta1 = 0.9f, beta2 = 0.999f, eps = 1e-8f, weight_decay = 0.f;
};

// Adam (L2 weight decay added to the gradient) or, with decoupled = true, AdamW (decay applied to
// the weights directly; PyTorch's AdamW default weight_decay is 0.01).
class Adam : public Optimizer {
 public:
  Adam(Tensor& params, Tensor& grads, const AdamOptions& options = {}, bool decoupled = false);
  std::string kind() const override { return decoupled_ ? "adamw" : "adam"; }
  std::vector<OptimizerStateRef> state() override;
  const AdamOptions& options() const { return options_; }
  size_t coefficient_bytes() const override;
  void next_coefficients(void* out) const override;

 protected:
  AdamParams update_params(int64_t step) const;
  void update(int64_t step) override;
  void allocate_state() override;

 private:
  AdamOptions options_;
  bool decoupled_;
  Tensor m_, v_;
};

class AdamW : public Adam {
 public:
  AdamW(Tensor& params, Tensor& grads, AdamOptions options = {.weight_decay = 0.01f})
      : Adam(params, grads, options, true) {}
};

// Scales `grads` (flat) so that its global L2 norm is at most max_norm (torch.nn.utils.
// clip_grad_norm_). Returns the norm before clipping; a non-finite norm leaves grads unchanged and
// is returned as is, for the caller to report.
double clip_grad_norm(Tensor& grads, double max_norm);

}  // namespace kiln
