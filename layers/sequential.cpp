// layers/sequential.cpp — see sequential.h.
#include "layers/sequential.h"

#include <algorithm>
#include <sstream>
#include <type_traits>

#include "core/error.h"
#include "core/philox.h"
#include "layers/linear.h"

namespace kiln {

namespace {
constexpr int64_t kAlignElements = 16;  // 64 bytes in f32: every slice is float4-aligned
int64_t align_up(int64_t n) {
  return (n + kAlignElements - 1) / kAlignElements * kAlignElements;
}

// What `refs(layer)` gives for every layer (its params, buffers or counters), in layer order, each
// named "<layer index>.<its name>" (PyTorch's state-dict names for an nn.Sequential).
template <typename Refs>
auto prefixed(const std::vector<std::unique_ptr<Layer>>& layers, Refs refs) {
  std::invoke_result_t<Refs, Layer&> out;
  for (size_t i = 0; i < layers.size(); ++i)
    for (auto r : refs(*layers[i])) {
      r.name = std::to_string(i) + "." + r.name;
      out.push_back(std::move(r));
    }
  return out;
}
}  // namespace

Sequential::Sequential(std::vector<std::unique_ptr<Layer>> layers) {
  for (auto& l : layers) add(std::move(l));
}

Layer& Sequential::add(std::unique_ptr<Layer> layer) {
  KILN_CHECK(layer != nullptr, "Sequential::add: null layer");
  KILN_CHECK(dynamic_cast<Sequential*>(layer.get()) == nullptr,
             "Sequential::add: nesting a Sequential is not supported; add its layers instead");
  layer->to(dtype_);
  layer->to(device_);
  layer->set_precision(precision_);
  layers_.push_back(std::move(layer));
  flat_ = false;
  find_blocks();
  return *layers_.back();
}

void Sequential::find_blocks() {
  blocks_.clear();
  for (int i = 1; i + 3 < size(); ++i)
    if (auto b = FusedBlock::match(layers_, i)) {
      blocks_.push_back(std::move(b));
      i += 3;
    }
}

FusedBlock* Sequential::block_of(int layer) const {
  for (const auto& b : blocks_)
    if (layer >= b->first() && layer <= b->last()) return b.get();
  return nullptr;
}

Layer& Sequential::operator[](int i) {
  check_index(i, "operator[]");
  return *layers_[i];
}
const Layer& Sequential::operator[](int i) const {
  check_index(i, "operator[]");
  return *layers_[i];
}

void Sequential::check_index(int k, const char* what) const {
  KILN_CHECK(k >= 0 && k < size(), "Sequential::", what, ": layer index ", k,
             " out of range (the network has ", size(), " layers, 0..", size() - 1, ")");
}

void Sequential::ensure_flat() {
  if (flat_) return;
  std::vector<ParamRef> ps;
  for (auto& l : layers_)
    for (ParamRef& p : l->params()) ps.push_back(p);
  int64_t total = 0;
  for (ParamRef& p : ps) total = align_up(total) + p.value->numel();
  total = std::max<int64_t>(align_up(total), kAlignElements);
  Tensor values = Tensor::zeros({total}, dtype_, Device::cpu);
  Tensor grads = Tensor::zeros({total}, dtype_, Device::cpu);
  values = values.to(device_);
  grads = grads.to(device_);
  int64_t offset = 0;
  for (ParamRef& p : ps) {
    offset = align_up(offset);
    Tensor v = values.slice(offset, p.value->shape());
    Tensor g = grads.slice(offset, p.grad->shape());
    v.copy_from(*p.value);
    g.copy_from(*p.grad);
    *p.value = std::move(v);
    *p.grad = std::move(g);
    offset += p.value->numel();
  }
  flat_params_ = std::move(values);
  flat_grads_ = std::move(grads);
  flat_ = true;
}

Tensor& Sequential::flat_params() {
  ensure_flat();
  return flat_params_;
}

Tensor& Sequential::flat_grads() {
  ensure_flat();
  return flat_grads_;
}

Shape Sequential::output_shape(const Shape& x) const {
  Shape s = x;
  for (int i = 0; i < size(); ++i) {
    try {
      s = layers_[i]->output_shape(s);
    } catch (const Error& e) {
      KILN_FAIL("layer ", i, " (", layers_[i]->describe(), ") does not accept input ", s.str(),
                ": ", e.what());
    }
  }
  return s;
}

Shape Sequential::set_input_shape(const Shape& x) {
  Shape s = x;
  for (int i = 0; i < size(); ++i) {
    Shape next;
    try {
      next = layers_[i]->output_shape(s);
    } catch (const Error& e) {
      KILN_FAIL("layer ", i, " (", layers_[i]->describe(), ") does not accept input ", s.str(),
                ": ", e.what());
    }
    if (auto* flatten = dynamic_cast<Flatten*>(layers_[i].get())) flatten->record_input_shape(s);
    s = next;
  }
  return s;
}

std::string Sequential::describe() const {
  std::ostringstream os;
  os << "Sequential(\n";
  for (int i = 0; i < size(); ++i) os << "  (" << i << "): " << layers_[i]->describe() << "\n";
  os << ")";
  return os.str();
}

void Sequential::update_flatten_layouts() {
  for (int i = 0; i + 1 < size(); ++i) {
    const auto* flatten = dynamic_cast<const Flatten*>(layers_[i].get());
    auto* linear = dynamic_cast<Linear*>(layers_[i + 1].get());
    if (flatten && linear) linear->set_flattened_input(flatten->input_shape());
  }
}

std::vector<ParamRef> Sequential::params() {
  ensure_flat();
  update_flatten_layouts();
  return prefixed(layers_, [](Layer& l) { return l.params(); });
}

std::vector<BufferRef> Sequential::buffers() {
  return prefixed(layers_, [](Layer& l) { return l.buffers(); });
}

std::vector<CounterRef> Sequential::counters() {
  return prefixed(layers_, [](Layer& l) { return l.counters(); });
}

void Sequential::zero_grad() {
  ensure_flat();
  fill_tensor(flat_grads_, 0.0);
}

void Sequential::check_no_outside_views(const std::string& move) const {
  if (!flat_) return;
  // The flat buffers are shared by the network's own tensors only: itself and one slice per
  // parameter. Anything more is a view held outside, which the move would leave behind.
  long inside = 1;
  for (auto& l : layers_) inside += static_cast<long>(l->params().size());
  KILN_CHECK(flat_params_.storage_users() == inside && flat_grads_.storage_users() == inside,
             "Sequential::to(", move,
             "): something outside the network holds views of its flat parameter or gradient "
             "buffers (an optimizer built over flat_params() / flat_grads()?), which would keep "
             "working on the old buffers; move the network first, then build the optimizer");
}

void Sequential::set_precision(const PrecisionPolicy& policy) {
  precision_ = policy;
  for (auto& l : layers_) l->set_precision(policy);
}

void Sequential::rebuild_flat() {
  flat_params_ = Tensor();
  flat_grads_ = Tensor();
  flat_ = false;
  reset_activation_state();
  ensure_flat();
}

void Sequential::to(Device device) {
  if (device == device_) return;
  check_no_outside_views(device_name(device));
  for (auto& l : layers_) l->to(device);
  device_ = device;
  rebuild_flat();
}

void Sequential::to(DType dtype) {
  if (dtype == dtype_) return;
  check_no_outside_views(dtype_name(dtype));
  for (auto& l : layers_) l->to(dtype);
  dtype_ = dtype;
  rebuild_flat();
}

void Sequential::forward_impl(const Tensor& x, Tensor& y, Mode mode) {
  KILN_CHECK(size() > 0, "Sequential: forward through an empty network");
  const Tensor& out = forward_to(x, size() - 1, mode);
  y = out.view(out.shape());
}

void Sequential::backward_impl(const Tensor& dy, const Tensor&, Tensor* dx, bool param_grads,
                               Mode) {
  const Tensor& d = backward_from(size() - 1, dy, {dx != nullptr, param_grads});
  if (dx) *dx = d.view(d.shape());
}

const Tensor& Sequential::forward_to(const Tensor& x, int k, Mode mode) {
  check_index(k, "forward_to");
  ensure_flat();
  for (auto& b : blocks_) {
    b->set_ran_fused(false);
    b->cancel_conv_stats();
  }
  const Tensor* a = &x;
  // Whether block b, starting at layer i, runs fused in this forward.
  const auto runs_fused = [&](const FusedBlock* b, int i) {
    return b && fused_blocks(a->device()) && mode == Mode::train && i == b->first() &&
           b->last() <= k && b->can_fuse();
  };
  for (int i = 0; i <= k; ++i) {
    FusedBlock* b = block_of(i);
    const bool fused = runs_fused(b, i);
    if (FusedBlock* next = i + 1 <= k ? block_of(i + 1) : nullptr;
        fused_conv_stats_ && !fused && runs_fused(next, i + 1))
      next->prepare_conv_stats();  // layer i is the block's convolution
    try {
      a = fused ? &b->forward(*a) : &layers_[i]->forward(*a, mode);
    } catch (const Error& e) {
      const std::string where =
          fused ? "layers " + std::to_string(i) + ".." + std::to_string(b->last()) + " (fused)"
                : "layer " + std::to_string(i);
      throw Error(e.expression(), e.file(), e.line(), where + ": " + std::string(e.what()));
    }
    if (fused) i = b->last();
  }
  last_forward_end_ = k;
  return *a;
}

const Tensor& Sequential::backward_from(int k, const Tensor& d_activation,
                                        const BackwardOptions& options) {
  check_index(k, "backward_from");
  KILN_CHECK(last_forward_end_ >= k, "Sequential::backward_from(", k,
             "): the last forward ran layers 0..", last_forward_end_,
             "; run forward_to(x, k) (or further) first");
  if (FusedBlock* b = block_of(k))
    KILN_CHECK(!b->ran_fused() || k == b->last(), "Sequential::backward_from(", k, "): layer ", k,
               " is inside layers ", b->first(), "..", b->last(),
               ", which the last forward ran fused; run forward_to(x, ", k,
               ") first (it runs that block unfused) or set_fused_blocks(false)");
  const Tensor* d = &d_activation;
  for (int i = k; i >= 0; --i) {
    BackwardOptions o = options;
    if (i > 0) o.need_dx = true;
    FusedBlock* b = block_of(i);
    if (b && b->ran_fused()) {  // i == b->last(): the check above and the jump below
      d = &b->backward(*d, o);
      // The block's layers have their gradients now: tell the hook, from the last one down.
      for (int j = b->last(); o.param_grads && on_layer_backward && j >= b->first(); --j)
        on_layer_backward(j);
      i = b->first();
      continue;
    }
    d = &layers_[i]->backward(*d, o);
    if (o.param_grads && on_layer_backward) on_layer_backward(i);
  }
  return *d;
}

void Sequential::reset_rng(uint64_t seed) {
  // Every dropout layer gets its own stream: the seed mixed with the layer index by one
  // Philox block.
  for (int i = 0; i < size(); ++i) {
    const Philox4 r = philox_block(seed, 0xD5u, static_cast<uint64_t>(i));
    layers_[i]->reset_rng((static_cast<uint64_t>(r.v[1]) << 32) | r.v[0]);
  }
}

void Sequential::reset_buffers() {
  for (auto& l : layers_) l->reset_buffers();
}

void Sequential::release_workspaces() {
  for (auto& l : layers_) l->release_workspaces();
  for (auto& b : blocks_) b->release_workspaces();
}

}  // namespace kiln
