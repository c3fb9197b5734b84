// layers/layer.h — the Layer interface every Kiln layer implements, and the gradient semantics.
//
// GRADIENT SEMANTICS (every layer, every device, tested with sentinel pre-fills in tests/layers):
//   * forward(x, mode) OVERWRITES the layer's output; backward(dy) OVERWRITES the layer's dx.
//   * Parameter gradients ACCUMULATE (+=) over backward calls until zero_grad() sets them to 0.
//     BackwardOptions::param_grads = false leaves them untouched (analysis: input gradients only).
//   * backward(dy) differentiates the most recent forward(x, mode) of this layer, in that mode: the
//     layer keeps a view of x (not a copy), so x must stay unchanged between forward and backward.
//   * In Mode::eval, BatchNorm2d's statistics are constants: backward gives dx only and does not
//     touch its parameter gradients (PyTorch's eval-mode autograd would; nothing here needs them).
//
// OWNERSHIP: a layer owns its output and dx buffers. The references forward() and backward() return
// stay valid until the next call of the same method. Buffers grow only: a batch no larger than the
// largest seen so far reuses them (a smaller last batch of an epoch allocates nothing), so a
// steady- state training step allocates no device memory (docs/design.md §5, tested in
// tests/layers).
//
// PARAMETERS: params() lists (name, value, grad) triples. A Sequential (layers/sequential.h)
// gathers the parameters of all its layers into ONE flat value buffer and ONE flat gradient buffer
// and points every layer's tensors at slices of them (Tensor::slice), so an optimizer step is one
// fused launch over the flat buffer (optim/). Non-trainable state that PyTorch keeps in state_dict
// (BatchNorm's running statistics and num_batches_tracked) is listed by buffers(); Kiln-only state
// that a resumed run needs (dropout RNG counters) by counters().
//
// The public methods are non-virtual and check shapes, dtypes and devices once (docs/conventions.md
// rule 7); subclasses implement the protected *_impl methods and trust their arguments.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "core/precision.h"
#include "core/tensor.h"

namespace kiln {

enum class Mode { train, eval };
const char* mode_name(Mode mode);

// How a parameter is initialised: uniform in [-bound, bound] from Philox, or a constant.
struct ParamInit {
  enum class Kind { uniform, constant } kind = Kind::constant;
  double value = 0.0;  // the bound (uniform) or the value (constant)
  static ParamInit uniform(double bound) { return {Kind::uniform, bound}; }
  static ParamInit constant(double value) { return {Kind::constant, value}; }
};

// How a parameter is laid out in PyTorch's state_dict (checkpoints permute on save and load).
struct TorchLayout {
  enum class Kind {
    same,        // identical (biases, BatchNorm vectors, linear weights after a linear layer)
    conv_ohwi,   // Kiln [O][KH][KW][I]  <->  PyTorch [O][I][KH][KW]
    linear_hwc,  // Kiln [OUT][H*W*C] (NHWC flatten)  <->  PyTorch [OUT][C*H*W] (NCHW flatten)
    unknown,     // a Linear after a Flatten that has seen no input shape yet: the column order is
                 // not known, so checkpoints refuse to save or load it (optim/checkpoint.h)
  } kind = Kind::same;
  int64_t c = 0, h = 0, w = 0;  // linear_hwc: the flattened activation's channels and size
};

// One trainable parameter: its value, its gradient (same shape), how to initialise and export it.
struct ParamRef {
  std::string name;  // "weight", or "3.weight" when listed by a Sequential
  Tensor* value = nullptr;
  Tensor* grad = nullptr;
  ParamInit init;
  TorchLayout torch_layout;
};

// One non-trainable state_dict entry: a tensor (running_mean) or an int64 scalar
// (num_batches_tracked, saved as a 0-d int64 tensor).
struct BufferRef {
  std::string name;
  Tensor* tensor = nullptr;
  int64_t* scalar = nullptr;
};

// One Kiln-only integer of state (a dropout layer's Philox seed and offset).
//
// `device` is set for a counter whose kernels can read its value from device memory (dropout's
// offset): while *device holds a device address, the layer's kernels read the counter there instead
// of taking *value as an argument. A step that replays a captured CUDA graph (train/graph_step.h)
// writes *value to that address before every step and sets *device for the capture, so each replay
// draws the step's own value; the host still advances *value (checkpoints save it). Such a counter
// must advance by at most one per step (one draw). nullptr: the counter is host state only.
struct CounterRef {
  std::string name;
  uint64_t* value = nullptr;
  const uint64_t** device = nullptr;
};

struct BackwardOptions {
  bool need_dx = true;      // false: the caller does not want dx (the first layer in training)
  bool param_grads = true;  // false: leave parameter gradients untouched
};

// A grow-only buffer viewed at the requested shape: reallocates only when more elements, another
// dtype or another device are asked for.
class Workspace {
 public:
  Tensor& get(const Shape& shape, DType dtype, Device device);
  void release();
  bool defined() const { return view_.defined(); }
  Tensor& tensor() { return view_; }
  const Tensor& tensor() const { return view_; }

 private:
  Tensor store_, view_;
};

class Layer {
 public:
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  // requires: x is on device(), has dtype(), and a shape this layer accepts (output_shape(x)).
  // ensures:  returns the output (owned by the layer, valid until the next forward).
  const Tensor& forward(const Tensor& x, Mode mode);
  // requires: a forward() since the last to(); dy has the shape, dtype and device of its output.
  // ensures:  returns dx (overwritten; an undefined tensor when options.need_dx is false);
  //           parameter gradients += d loss / d parameter unless options.param_grads is false.
  const Tensor& backward(const Tensor& dy, const BackwardOptions& options = {});

  // The output shape for an input shape; throws a message naming the layer when x is not accepted.
  virtual Shape output_shape(const Shape& x) const = 0;
  // "Conv2d", "BatchNorm2d", ... (PyTorch's class names).
  virtual std::string kind() const = 0;
  // "Conv2d(1, 64, kernel_size=3, stride=1, padding=1)".
  virtual std::string describe() const { return kind() + "()"; }

  virtual std::vector<ParamRef> params() { return {}; }
  virtual std::vector<BufferRef> buffers() { return {}; }
  virtual std::vector<CounterRef> counters() { return {}; }
  int64_t num_params();

  // Sets every parameter gradient to 0.
  virtual void zero_grad();
  // Re-initialises every parameter from its ParamInit: the k-th parameter tensor (in params()
  // order) draws from Philox (seed, offset = k). Buffers are reset (running_var 1, others 0).
  void init(uint64_t seed);

  Device device() const { return device_; }
  DType dtype() const { return dtype_; }
  // Moves parameters, gradients and buffers to `device` / converts them to `dtype` (f64 for the CPU
  // oracle in gradient checks); drops the activation buffers. Same device/dtype: no-op.
  virtual void to(Device device);
  virtual void to(DType dtype);
  // The model's precision policy (core/precision.h): Conv2d takes policy.conv(), Linear
  // policy.linear(); a Sequential passes it to every layer, also those added later. Layers without
  // a GEMM ignore it. Parameters stay fp32 (the master weights); only the ops' arithmetic changes.
  virtual void set_precision(const PrecisionPolicy& /*policy*/) {}

  // The most recent output / dx (undefined before the first call).
  const Tensor& output() const;
  const Tensor& input_grad() const { return dx_.tensor(); }
  bool has_forward() const { return has_forward_; }
  Mode last_mode() const { return mode_; }

 protected:
  friend class Sequential;
  Layer() = default;
  // y: the layer's output buffer, already sized to output_shape(x.shape()); overwrite it.
  virtual void forward_impl(const Tensor& x, Tensor& y, Mode mode) = 0;
  // dx: nullptr when not wanted, else sized like the input; overwrite it. x: the forward input.
  virtual void backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                             Mode mode) = 0;
  // Layers whose output and dx are views of other buffers (Flatten, Sequential) return true: their
  // *_impl then receive undefined tensors and assign views to them instead of filling a buffer.
  virtual bool returns_views() const { return false; }
  // Re-seeds the layer's random streams (Dropout); called by init().
  virtual void reset_rng(uint64_t /*seed*/) {}
  virtual void reset_buffers() {}
  // Drops activation-sized workspaces (called by to()).
  virtual void release_workspaces() {}
  // Drops the output, dx, the saved input and every workspace (after a move or a conversion).
  void reset_activation_state();

  // Helpers for subclasses that own parameters: allocate value and gradient on the layer's device.
  struct Param {
    std::string name;
    Tensor value, grad;
    ParamInit init;
    TorchLayout torch_layout;
  };
  static Param make_param(std::string name, Shape shape, ParamInit init, TorchLayout layout = {});
  static ParamRef ref(Param& p) { return {p.name, &p.value, &p.grad, p.init, p.torch_layout}; }
  const Tensor& saved_input() const { return input_; }

  Device device_ = Device::cpu;
  DType dtype_ = DType::f32;

 private:
  Workspace output_, dx_;
  Tensor input_;  // a view of the last forward input (shares its buffer; no copy)
  Tensor view_output_, view_dx_;
  Mode mode_ = Mode::train;
  bool has_forward_ = false;
};

// Re-creates `t` on `device` / in `dtype` (values converted). Undefined stays undefined.
void move_tensor(Tensor& t, Device device);
void convert_tensor(Tensor& t, DType dtype);
// Sets every element of `t` (any device) to `value` without allocating device memory; on CUDA, a
// kernel queued on the current stream (core/stream.h).
void fill_tensor(Tensor& t, double value);

}  // namespace kiln
