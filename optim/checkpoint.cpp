// optim/checkpoint.cpp — see checkpoint.h.
#include "optim/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "core/error.h"

namespace kiln {
namespace {

using ordered_json = nlohmann::ordered_json;

// Host values of a float tensor (any device, f32 or f64).
std::vector<double> host_values(const Tensor& t) {
  std::vector<double> out(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::f32) {
    std::vector<float> v = t.to_vector<float>();
    std::copy(v.begin(), v.end(), out.begin());
  } else {
    KILN_CHECK(t.dtype() == DType::f64, "checkpoint: cannot save a ", dtype_name(t.dtype()),
               " tensor as a parameter");
    out = t.to_vector<double>();
  }
  return out;
}

StTensor float_entry(const std::string& name, DType dtype, std::vector<int64_t> shape,
                     const std::vector<double>& values) {
  StTensor e{name, dtype == DType::f64 ? "F64" : "F32", std::move(shape), {}};
  if (dtype == DType::f64) {
    e.bytes.resize(values.size() * 8);
    std::memcpy(e.bytes.data(), values.data(), e.bytes.size());
  } else {
    std::vector<float> f(values.begin(), values.end());
    e.bytes.resize(f.size() * 4);
    std::memcpy(e.bytes.data(), f.data(), e.bytes.size());
  }
  return e;
}

std::vector<double> entry_values(const StTensor& e) {
  const int64_t n = shape_numel(e.shape);
  std::vector<double> out(static_cast<size_t>(n));
  if (e.dtype == "F32") {
    std::vector<float> f(static_cast<size_t>(n));
    std::memcpy(f.data(), e.bytes.data(), f.size() * 4);
    std::copy(f.begin(), f.end(), out.begin());
  } else {
    std::memcpy(out.data(), e.bytes.data(), out.size() * 8);
  }
  return out;
}

// An StFile may be built by hand: its bytes must hold what its dtype and shape say before
// entry_values() reads them.
void check_bytes(const StTensor& t, const std::string& source) {
  uint64_t bytes = st_dtype_size(t.dtype);
  for (int64_t d : t.shape)
    KILN_CHECK(d >= 0 && !__builtin_mul_overflow(bytes, uint64_t(d), &bytes), "'", source,
               "': tensor '", t.name, "' has an invalid shape ", shape_str(t.shape));
  KILN_CHECK(t.bytes.size() == bytes, "'", source, "': tensor '", t.name, "' has ", t.bytes.size(),
             " bytes but its dtype ", t.dtype, " and shape ", shape_str(t.shape), " need ", bytes);
}

void set_values(Tensor& t, const std::vector<double>& values) {
  Tensor host = Tensor::from_vector(t.shape(), values);
  if (t.dtype() == DType::f32) convert_tensor(host, DType::f32);
  t.copy_from(host);  // copies across devices
}

// The layer index of a Sequential's "<i>.<name>", or -1.
int layer_index(const std::string& name);

// The PyTorch shape of a parameter, and the permutations between the two layouts. A layout not
// known yet is refused here, before a file is written or a model changed.
std::vector<int64_t> torch_shape(const ParamRef& p) {
  const int layer = layer_index(p.name);
  KILN_CHECK(p.torch_layout.kind != TorchLayout::Kind::unknown, "checkpoint: cannot save or load '",
             p.name, "': ", layer >= 0 ? "layer " + std::to_string(layer) : std::string("it"),
             " is a Linear after a Flatten that has not seen an input shape yet, so the order of "
             "its input columns (PyTorch's C*H*W or Kiln's H*W*C) is not known; call "
             "set_input_shape({1, H, W, C}) on the Sequential or run one forward through it first");
  std::vector<int64_t> s = p.value->shape().dims();
  if (p.torch_layout.kind == TorchLayout::Kind::conv_ohwi) return {s[0], s[3], s[1], s[2]};
  return s;
}

// Calls f(kiln_index, torch_index) for every element of a parameter whose layouts differ
// (conv weights: Kiln [O][KH][KW][I], PyTorch [O][I][KH][KW]; the first linear layer after the
// flatten: columns in HWC order in Kiln, CHW in PyTorch).
template <class F>
void for_each_index_pair(const Tensor& t, const TorchLayout& layout, F&& f) {
  if (layout.kind == TorchLayout::Kind::conv_ohwi) {
    const int64_t O = t.size(0), KH = t.size(1), KW = t.size(2), I = t.size(3);
    for (int64_t o = 0; o < O; ++o)
      for (int64_t kh = 0; kh < KH; ++kh)
        for (int64_t kw = 0; kw < KW; ++kw)
          for (int64_t i = 0; i < I; ++i)
            f(((o * KH + kh) * KW + kw) * I + i, ((o * I + i) * KH + kh) * KW + kw);
    return;
  }
  const int64_t rows = t.size(0), C = layout.c, H = layout.h, W = layout.w, cols = C * H * W;
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t h = 0; h < H; ++h)
      for (int64_t w = 0; w < W; ++w)
        for (int64_t c = 0; c < C; ++c)
          f(r * cols + (h * W + w) * C + c, r * cols + (c * H + h) * W + w);
}

// Kiln order -> PyTorch order.
std::vector<double> to_torch(const std::vector<double>& v, const Tensor& t,
                             const TorchLayout& layout) {
  if (layout.kind == TorchLayout::Kind::same) return v;
  std::vector<double> out(v.size());
  for_each_index_pair(t, layout, [&](int64_t k, int64_t p) { out[size_t(p)] = v[size_t(k)]; });
  return out;
}

// PyTorch order -> Kiln order.
std::vector<double> from_torch(const std::vector<double>& v, const Tensor& t,
                               const TorchLayout& layout) {
  if (layout.kind == TorchLayout::Kind::same) return v;
  std::vector<double> out(v.size());
  for_each_index_pair(t, layout, [&](int64_t k, int64_t p) { out[size_t(k)] = v[size_t(p)]; });
  return out;
}

int layer_index(const std::string& name) {
  const size_t dot = name.find('.');
  if (dot == std::string::npos || dot == 0) return -1;
  for (size_t i = 0; i < dot; ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoi(name.substr(0, dot));
}

}  // namespace

StFile model_state_dict(Layer& model) {
  struct Item {
    int layer;
    StTensor entry;
  };
  std::vector<Item> items;
  for (ParamRef& p : model.params()) {
    const std::vector<int64_t> shape = torch_shape(p);
    std::vector<double> v = to_torch(host_values(*p.value), *p.value, p.torch_layout);
    items.push_back({layer_index(p.name), float_entry(p.name, p.value->dtype(), shape, v)});
  }
  for (BufferRef& b : model.buffers()) {
    if (b.tensor) {
      items.push_back(
          {layer_index(b.name), float_entry(b.name, b.tensor->dtype(), b.tensor->shape().dims(),
                                            host_values(*b.tensor))});
    } else {
      StTensor e{b.name, "I64", {}, std::vector<uint8_t>(8)};
      std::memcpy(e.bytes.data(), b.scalar, 8);
      items.push_back({layer_index(b.name), std::move(e)});
    }
  }
  // nn.Module.state_dict() order: per layer, parameters then buffers.
  std::stable_sort(items.begin(), items.end(),
                   [](const Item& a, const Item& b) { return a.layer < b.layer; });
  StFile file;
  for (Item& it : items) file.tensors.push_back(std::move(it.entry));
  return file;
}

namespace {

// Checks that `file` holds exactly the model's state_dict: every name, dtype, shape and byte count
// (the last check: no tensor the model does not have). Throws naming `source` and the first
// mismatch; changes nothing.
void check_model_state_dict(Layer& model, const StFile& file, const std::string& source) {
  const std::string hint =
      " (the checkpoint is of another architecture or input shape: build the model with the "
      "options it was trained with, e.g. the same --preset and --width)";
  std::vector<std::string> expected;
  auto find = [&](const std::string& name) -> const StTensor& {
    expected.push_back(name);
    const StTensor* t = file.find(name);
    KILN_CHECK(t != nullptr, "checkpoint '", source, "' has no tensor '", name,
               "' that the model needs", hint);
    return *t;
  };
  auto check_float = [&](const StTensor& t, const std::vector<int64_t>& shape) {
    KILN_CHECK(t.dtype == "F32" || t.dtype == "F64", "checkpoint '", source, "': tensor '", t.name,
               "' is ", t.dtype, ", expected F32");
    KILN_CHECK(t.shape == shape, "checkpoint '", source, "': tensor '", t.name, "' has shape ",
               shape_str(t.shape), " but the model expects ", shape_str(shape), hint);
    check_bytes(t, source);
  };
  for (ParamRef& p : model.params()) {
    const std::vector<int64_t> shape = torch_shape(p);
    check_float(find(p.name), shape);
  }
  for (BufferRef& b : model.buffers()) {
    const StTensor& t = find(b.name);
    if (b.tensor) {
      check_float(t, b.tensor->shape().dims());
    } else {
      KILN_CHECK(t.dtype == "I64" && t.shape.empty(), "checkpoint '", source, "': tensor '", b.name,
                 "' must be a 0-d I64, got ", t.dtype, " ", shape_str(t.shape));
      check_bytes(t, source);
    }
  }
  for (const StTensor& t : file.tensors)
    KILN_CHECK(std::find(expected.begin(), expected.end(), t.name) != expected.end(),
               "checkpoint '", source, "' has a tensor '", t.name, "' ", shape_str(t.shape),
               " that the model does not have", hint);
}

// Copies a state_dict that check_model_state_dict accepted into the model.
void apply_model_state_dict(Layer& model, const StFile& file) {
  for (ParamRef& p : model.params())
    set_values(*p.value, from_torch(entry_values(*file.find(p.name)), *p.value, p.torch_layout));
  for (BufferRef& b : model.buffers()) {
    const StTensor& t = *file.find(b.name);
    if (b.tensor)
      set_values(*b.tensor, entry_values(t));
    else
      std::memcpy(b.scalar, t.bytes.data(), 8);
  }
}

}  // namespace

void load_model_state_dict(Layer& model, const StFile& file, const std::string& source) {
  // Everything is checked before anything changes: a failed load leaves the model as it was.
  check_model_state_dict(model, file, source);
  apply_model_state_dict(model, file);
}

void save_model(const std::string& path, Layer& model,
                const std::map<std::string, std::string>& metadata) {
  StFile file = model_state_dict(model);
  file.metadata = metadata;
  file.metadata["format"] = "pt";  // what safetensors.torch writes: readers expect it
  write_safetensors(path, file);
}

std::map<std::string, std::string> load_model(const std::string& path, Layer& model) {
  StFile file = read_safetensors(path);
  load_model_state_dict(model, file, path);
  return file.metadata;
}

namespace {
constexpr const char* kModelPrefix = "model.";
constexpr const char* kOptimizerPrefix = "optimizer.";
}  // namespace

void save_training_state(const std::string& path, Optimizer& optimizer, Layer& model,
                         const std::map<std::string, std::string>& metadata) {
  // The model's weights too, as "model.<name>": the state alone restores a run, so it can be the
  // one file whose rename commits an epoch (docs/checkpoints.md, "The run folder"). Gathered first:
  // a model whose layout is not known yet is refused before the optimizer allocates its state.
  StFile weights = model_state_dict(model);
  optimizer.ensure_state();
  StFile file;
  for (OptimizerStateRef& s : optimizer.state())
    file.tensors.push_back(float_entry(kOptimizerPrefix + s.name, s.tensor->dtype(),
                                       s.tensor->shape().dims(), host_values(*s.tensor)));
  for (StTensor& t : weights.tensors) {
    t.name = kModelPrefix + t.name;
    file.tensors.push_back(std::move(t));
  }
  ordered_json state = {
      {"optimizer", optimizer.kind()}, {"steps", optimizer.steps()}, {"lr", optimizer.lr()}};
  ordered_json counters = ordered_json::object();
  for (CounterRef& c : model.counters()) counters[c.name] = *c.value;
  state["counters"] = counters;
  file.metadata = metadata;
  file.metadata["kiln.optimizer_state"] = state.dump();
  write_safetensors(path, file);
}

std::map<std::string, std::string> load_training_state(const std::string& path,
                                                       Optimizer& optimizer, Layer& model) {
  return restore_training_state(read_safetensors(path), path, optimizer, model);
}

std::map<std::string, std::string> restore_training_state(StFile file, const std::string& path,
                                                          Optimizer& optimizer, Layer& model) {
  // Everything is checked before anything changes (phase 1), then applied (phase 2): a failed
  // load leaves the optimizer (state, steps, lr) and the model (weights, buffers, counters) as
  // they were. The order of the checks: the metadata, the counters, the model's state_dict (so a
  // run of another architecture is named by its first differing layer), the optimizer's tensors.
  auto it = file.metadata.find("kiln.optimizer_state");
  KILN_CHECK(it != file.metadata.end(), "'", path,
             "' is not a Kiln training-state file (no kiln.optimizer_state metadata)");
  const std::string bad = "'" + path + "': malformed training state: ";
  ordered_json state;
  try {
    state = ordered_json::parse(it->second);
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL(bad, "kiln.optimizer_state is not valid JSON (", e.what(), ")");
  }
  KILN_CHECK(state.is_object() && state.contains("optimizer") && state["optimizer"].is_string(),
             bad, "no optimizer name");
  const std::string kind = state["optimizer"].get<std::string>();
  KILN_CHECK(kind == optimizer.kind(), "'", path, "' holds the state of optimizer '", kind,
             "' but this run uses '", optimizer.kind(), "' (pass the same --optimizer to resume)");
  KILN_CHECK(state.contains("steps") && state["steps"].is_number_unsigned(), bad,
             "steps must be a non-negative integer");
  const uint64_t steps = state["steps"].get<uint64_t>();
  KILN_CHECK(steps <= uint64_t(INT64_MAX), bad, "steps ", steps, " is out of range");
  KILN_CHECK(state.contains("lr") && state["lr"].is_number(), bad, "lr must be a number");
  const double lr = state["lr"].get<double>();
  KILN_CHECK(std::isfinite(lr) && lr >= 0, bad, "lr ", lr, " is not a finite non-negative number");
  KILN_CHECK(state.contains("counters") && state["counters"].is_object(), bad,
             "counters must be an object");
  const ordered_json& counters = state["counters"];
  for (CounterRef& c : model.counters()) {
    KILN_CHECK(counters.contains(c.name), "'", path, "' has no counter '", c.name,
               "' (another architecture)");
    KILN_CHECK(counters[c.name].is_number_unsigned(), bad, "counter '", c.name,
               "' must be a non-negative integer");
  }
  StFile weights;
  for (StTensor& t : file.tensors)
    if (t.name.rfind(kModelPrefix, 0) == 0) {
      weights.tensors.push_back(std::move(t));
      weights.tensors.back().name.erase(0, std::strlen(kModelPrefix));
    }
  check_model_state_dict(model, weights, path);
  // The optimizer's state tensors are checked against the parameters (the state has their shape
  // and dtype), so that checking allocates nothing.
  const Tensor& params = optimizer.params();
  const char* dtype = params.dtype() == DType::f64 ? "F64" : "F32";
  for (OptimizerStateRef& s : optimizer.state()) {
    const StTensor* t = file.find(kOptimizerPrefix + s.name);
    KILN_CHECK(t != nullptr && t->shape == params.shape().dims(), "'", path, "': optimizer state '",
               s.name, "' is missing or of another size (", t ? shape_str(t->shape) : "absent",
               " vs ", params.str(), "): the checkpoint is of another architecture");
    KILN_CHECK(t->dtype == dtype, "'", path, "': optimizer state '", s.name, "' is ", t->dtype,
               ", expected ", dtype, " (the file was not written by this optimizer)");
    check_bytes(*t, path);
  }

  optimizer.ensure_state();
  for (OptimizerStateRef& s : optimizer.state())
    set_values(*s.tensor, entry_values(*file.find(kOptimizerPrefix + s.name)));
  optimizer.set_steps(static_cast<int64_t>(steps));
  optimizer.set_lr(lr);
  for (CounterRef& c : model.counters()) *c.value = counters[c.name].get<uint64_t>();
  apply_model_state_dict(model, weights);
  file.metadata.erase("kiln.optimizer_state");
  file.metadata.erase("format");
  return file.metadata;
}

}  // namespace kiln
