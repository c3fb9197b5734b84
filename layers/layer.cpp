// layers/layer.cpp — the checks around every layer's forward and backward, parameter and buffer
// helpers (see layer.h).
#include "layers/layer.h"

#include <cmath>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "kernels/elementwise.h"

namespace kiln {

namespace {
// f on every tensor a layer owns: each parameter's value and gradient, and its buffers.
template <typename F>
void for_each_state_tensor(Layer& layer, F f) {
  for (ParamRef& p : layer.params()) {
    f(*p.value);
    f(*p.grad);
  }
  for (BufferRef& b : layer.buffers())
    if (b.tensor) f(*b.tensor);
}
}  // namespace

const char* mode_name(Mode mode) {
  return mode == Mode::train ? "train" : "eval";
}

Tensor& Workspace::get(const Shape& shape, DType dtype, Device device) {
  if (!store_.defined() || store_.dtype() != dtype || store_.device() != device ||
      store_.numel() < shape.numel()) {
    store_ = Tensor(Shape{shape.numel()}, dtype, device);
    view_ = store_.slice(0, shape);
  } else if (!view_.defined() || view_.shape() != shape) {
    view_ = store_.slice(0, shape);
  }
  return view_;
}

void Workspace::release() {
  view_ = Tensor();
  store_ = Tensor();
}

const Tensor& Layer::output() const {
  return returns_views() ? view_output_ : output_.tensor();
}

const Tensor& Layer::forward(const Tensor& x, Mode mode) {
  KILN_CHECK(x.defined(), describe(), ": forward got an undefined tensor");
  KILN_CHECK(x.device() == device_, describe(), ": input ", x.str(), " is on ",
             device_name(x.device()), " but the layer is on ", device_name(device_),
             " (move one of them with .to())");
  KILN_CHECK(x.dtype() == dtype_, describe(), ": input ", x.str(), " is ", dtype_name(x.dtype()),
             " but the layer computes in ", dtype_name(dtype_));
  const Shape y_shape = output_shape(x.shape());
  input_ = x.view(x.shape());
  mode_ = mode;
  has_forward_ = true;
  if (returns_views()) {
    forward_impl(x, view_output_, mode);
    KILN_CHECK(view_output_.shape() == y_shape, describe(), ": produced ", view_output_.str(),
               ", expected ", y_shape.str());
    return view_output_;
  }
  Tensor& y = output_.get(y_shape, dtype_, device_);
  forward_impl(x, y, mode);
  return y;
}

const Tensor& Layer::backward(const Tensor& dy, const BackwardOptions& options) {
  KILN_CHECK(has_forward_, describe(), ": backward() before forward()");
  const Tensor& y = output();
  KILN_CHECK(dy.defined(), describe(), ": backward got an undefined gradient");
  KILN_CHECK(dy.shape() == y.shape() && dy.dtype() == y.dtype() && dy.device() == y.device(),
             describe(), ": the output gradient ", dy.str(), " does not match the output ",
             y.str());
  static const Tensor kNone;
  if (returns_views()) {
    view_dx_ = Tensor();
    backward_impl(dy, input_, options.need_dx ? &view_dx_ : nullptr, options.param_grads, mode_);
    return options.need_dx ? view_dx_ : kNone;
  }
  if (!options.need_dx) {
    backward_impl(dy, input_, nullptr, options.param_grads, mode_);
    return kNone;
  }
  Tensor& dx = dx_.get(input_.shape(), dtype_, device_);
  backward_impl(dy, input_, &dx, options.param_grads, mode_);
  return dx;
}

int64_t Layer::num_params() {
  int64_t n = 0;
  for (const ParamRef& p : params()) n += p.value->numel();
  return n;
}

void Layer::zero_grad() {
  for (ParamRef& p : params()) fill_tensor(*p.grad, 0.0);
}

namespace {
// Element i of parameter k: (2u - 1) * bound with u = Philox uniform (seed, offset k, element i).
template <typename T>
Tensor init_values(const Shape& shape, const ParamInit& init, uint64_t seed, uint64_t k) {
  Tensor host(shape, dtype_of<T>(), Device::cpu);
  T* v = host.data<T>();
  const int64_t n = shape.numel();
  if (init.kind == ParamInit::Kind::constant) {
    for (int64_t i = 0; i < n; ++i) v[i] = static_cast<T>(init.value);
    return host;
  }
  for (int64_t b = 0; b * 4 < n; ++b) {
    const Philox4 r = philox_block(seed, k, static_cast<uint64_t>(b));
    for (int j = 0; j < 4 && b * 4 + j < n; ++j)
      v[b * 4 + j] = static_cast<T>((2.0 * philox_word_to_uniform(r.v[j]) - 1.0) * init.value);
  }
  return host;
}
}  // namespace

void Layer::init(uint64_t seed) {
  uint64_t k = 0;
  for (ParamRef& p : params()) {
    Tensor host = p.value->dtype() == DType::f64
                      ? init_values<double>(p.value->shape(), p.init, seed, k)
                      : init_values<float>(p.value->shape(), p.init, seed, k);
    p.value->copy_from(host);
    ++k;
  }
  reset_buffers();
  reset_rng(seed);
}

void Layer::to(Device device) {
  if (device == device_) return;
  for_each_state_tensor(*this, [&](Tensor& t) { move_tensor(t, device); });
  device_ = device;
  reset_activation_state();
}

void Layer::to(DType dtype) {
  if (dtype == dtype_) return;
  KILN_CHECK(dtype == DType::f32 || dtype == DType::f64, describe(),
             ": layers compute in f32 or f64, not ", dtype_name(dtype));
  for_each_state_tensor(*this, [&](Tensor& t) { convert_tensor(t, dtype); });
  dtype_ = dtype;
  reset_activation_state();
}

void Layer::reset_activation_state() {
  output_.release();
  dx_.release();
  input_ = Tensor();
  view_output_ = Tensor();
  view_dx_ = Tensor();
  has_forward_ = false;
  release_workspaces();
}

Layer::Param Layer::make_param(std::string name, Shape shape, ParamInit init, TorchLayout layout) {
  Param p;
  p.name = std::move(name);
  p.value = Tensor::zeros(shape);
  p.grad = Tensor::zeros(shape);
  p.init = init;
  p.torch_layout = layout;
  return p;
}

void move_tensor(Tensor& t, Device device) {
  if (!t.defined() || t.device() == device) return;
  t = t.to(device);
}

void convert_tensor(Tensor& t, DType dtype) {
  if (!t.defined() || t.dtype() == dtype) return;
  const Device device = t.device();
  Tensor out(t.shape(), dtype, Device::cpu);
  if (t.dtype() == DType::f32 && dtype == DType::f64) {
    std::vector<float> v = t.to_vector<float>();
    double* o = out.data<double>();
    for (size_t i = 0; i < v.size(); ++i) o[i] = v[i];
  } else if (t.dtype() == DType::f64 && dtype == DType::f32) {
    std::vector<double> v = t.to_vector<double>();
    float* o = out.data<float>();
    for (size_t i = 0; i < v.size(); ++i) o[i] = static_cast<float>(v[i]);
  } else {
    KILN_FAIL("convert_tensor: cannot convert ", t.str(), " to ", dtype_name(dtype));
  }
  t = out.to(device);
}

void fill_tensor(Tensor& t, double value) {
  if (!t.defined()) return;
#if KILN_WITH_CUDA
  if (t.is_cuda() && t.dtype() == DType::f32) {
    cuda::fill(t.data<float>(), t.numel(), static_cast<float>(value), current_stream());
    return;
  }
#endif
  t.fill(value);
}

}  // namespace kiln
