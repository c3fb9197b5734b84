// optim/checkpoint.cpp — see checkpoint.h.
#include "optim/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.h"

namespace kiln {

namespace {

using ordered_json = nlohmann::ordered_json;

size_t st_dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32") return 4;
  if (dtype == "F64" || dtype == "I64") return 8;
  if (dtype == "U8") return 1;
  return 0;
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

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

void set_values(Tensor& t, const std::vector<double>& values) {
  Tensor host = Tensor::from_vector(t.shape(), values);
  if (t.dtype() == DType::f32) convert_tensor(host, DType::f32);
  t.copy_from(host);  // copies across devices
}

// The PyTorch shape of a parameter, and the permutations between the two layouts.
std::vector<int64_t> torch_shape(const Tensor& t, const TorchLayout& layout) {
  std::vector<int64_t> s = t.shape().dims();
  if (layout.kind == TorchLayout::Kind::conv_ohwi) return {s[0], s[3], s[1], s[2]};
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

// Opens a checkpoint for reading; `size` receives its length in bytes.
std::ifstream open_for_reading(const std::string& path, uint64_t* size) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  KILN_CHECK(in.good(), "cannot open '", path, "': ", std::strerror(errno),
             " (check the path; checkpoints are written by `fer_cnn train --out DIR`)");
  const std::streamoff end = in.tellg();
  in.seekg(0);
  KILN_CHECK(end >= 0 && in.good(), "cannot read '", path, "' (is it a regular file?)");
  *size = static_cast<uint64_t>(end);
  return in;
}

std::string not_safetensors(const std::string& path) {
  return "'" + path + "' is not a safetensors checkpoint: ";
}

// Reads the 8-byte header length and the JSON header, and nothing more, from `in` (at the start
// of a file of `size` bytes); returns the header and sets *data_start to where the data begins.
ordered_json read_header(std::ifstream& in, const std::string& path, uint64_t size,
                         uint64_t* data_start) {
  const std::string not_st = not_safetensors(path);
  KILN_CHECK(size >= 8, not_st, "the file has only ", size, " bytes");
  char len[8];
  in.read(len, 8);
  KILN_CHECK(in.good(), "cannot read '", path, "': ", std::strerror(errno));
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(static_cast<uint8_t>(len[i])) << (8 * i);
  KILN_CHECK(n <= size - 8, not_st, "the header length ", n,
             " exceeds the file (truncated or another format)");
  std::string text(n, '\0');
  in.read(text.data(), static_cast<std::streamsize>(n));
  KILN_CHECK(in.good(), "cannot read '", path, "': ", std::strerror(errno));
  ordered_json header;
  try {
    header = ordered_json::parse(text);
  } catch (const std::exception& e) {
    KILN_FAIL(not_st, "its header is not valid JSON (", e.what(), ")");
  }
  KILN_CHECK(header.is_object(), not_st, "its header is not a JSON object");
  *data_start = 8 + n;
  return header;
}

std::map<std::string, std::string> header_metadata(const ordered_json& header,
                                                   const std::string& path) {
  std::map<std::string, std::string> metadata;
  const auto it = header.find("__metadata__");
  if (it == header.end()) return metadata;
  try {
    for (auto m = it->begin(); m != it->end(); ++m)
      metadata[m.key()] = m.value().get<std::string>();
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL(not_safetensors(path), "malformed header entry (", e.what(), ")");
  }
  return metadata;
}

}  // namespace

const StTensor* StFile::find(const std::string& name) const {
  for (const StTensor& t : tensors)
    if (t.name == name) return &t;
  return nullptr;
}

void write_safetensors(const std::string& path, const StFile& file) {
  ordered_json header = ordered_json::object();
  if (!file.metadata.empty()) {
    ordered_json meta = ordered_json::object();
    for (const auto& [k, v] : file.metadata) meta[k] = v;
    header["__metadata__"] = meta;
  }
  size_t offset = 0;
  for (const StTensor& t : file.tensors) {
    const size_t size = st_dtype_size(t.dtype);
    KILN_CHECK(size != 0, "write_safetensors: unknown dtype '", t.dtype, "' of ", t.name);
    KILN_CHECK(t.bytes.size() == static_cast<size_t>(shape_numel(t.shape)) * size,
               "write_safetensors: ", t.name, " has ", t.bytes.size(), " bytes for shape ",
               shape_str(t.shape));
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {offset, offset + t.bytes.size()}}};
    offset += t.bytes.size();
  }
  std::string json = header.dump();
  json.append((8 - json.size() % 8) % 8, ' ');  // the data starts 8-byte aligned
  std::string out;
  out.reserve(8 + json.size() + offset);
  uint64_t n = json.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  out += json;
  for (const StTensor& t : file.tensors)
    out.append(reinterpret_cast<const char*>(t.bytes.data()), t.bytes.size());
  write_file_atomic(path, out);
}

StFile read_safetensors(const std::string& path) {
  uint64_t size = 0, data_start = 0;
  std::ifstream in = open_for_reading(path, &size);
  const ordered_json header = read_header(in, path, size, &data_start);
  const std::string not_st = not_safetensors(path);
  const size_t data_size = size - data_start;
  std::string data(data_size, '\0');
  in.read(data.data(), static_cast<std::streamsize>(data_size));
  KILN_CHECK(in.good() || data_size == 0, "cannot read '", path, "': ", std::strerror(errno));
  StFile file;
  file.metadata = header_metadata(header, path);
  try {
    for (auto it = header.begin(); it != header.end(); ++it) {
      if (it.key() == "__metadata__") continue;
      StTensor t;
      t.name = it.key();
      t.dtype = it.value().at("dtype").get<std::string>();
      t.shape = it.value().at("shape").get<std::vector<int64_t>>();
      const auto offsets = it.value().at("data_offsets").get<std::vector<uint64_t>>();
      const size_t elem = st_dtype_size(t.dtype);
      KILN_CHECK(elem != 0, not_st, "tensor '", t.name, "' has unsupported dtype ", t.dtype);
      KILN_CHECK(offsets.size() == 2 && offsets[0] <= offsets[1] && offsets[1] <= data_size &&
                     offsets[1] - offsets[0] == static_cast<uint64_t>(shape_numel(t.shape)) * elem,
                 not_st, "tensor '", t.name, "' has data offsets outside the file or not matching ",
                 "its shape ", shape_str(t.shape), " (truncated file?)");
      t.bytes.assign(data.begin() + static_cast<std::ptrdiff_t>(offsets[0]),
                     data.begin() + static_cast<std::ptrdiff_t>(offsets[1]));
      file.tensors.push_back(std::move(t));
    }
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL(not_st, "malformed header entry (", e.what(), ")");
  }
  return file;
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  uint64_t size = 0, data_start = 0;
  std::ifstream in = open_for_reading(path, &size);
  return header_metadata(read_header(in, path, size, &data_start), path);
}

StFile model_state_dict(Layer& model) {
  struct Item {
    int layer;
    StTensor entry;
  };
  std::vector<Item> items;
  for (ParamRef& p : model.params()) {
    std::vector<double> v = to_torch(host_values(*p.value), *p.value, p.torch_layout);
    items.push_back({layer_index(p.name), float_entry(p.name, p.value->dtype(),
                                                      torch_shape(*p.value, p.torch_layout), v)});
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

void load_model_state_dict(Layer& model, const StFile& file, const std::string& source) {
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
  };
  // Check everything before changing anything: a failed load leaves the model as it was.
  for (ParamRef& p : model.params())
    check_float(find(p.name), torch_shape(*p.value, p.torch_layout));
  for (BufferRef& b : model.buffers()) {
    const StTensor& t = find(b.name);
    if (b.tensor) {
      check_float(t, b.tensor->shape().dims());
    } else {
      KILN_CHECK(t.dtype == "I64" && t.shape.empty(), "checkpoint '", source, "': tensor '", b.name,
                 "' must be a 0-d I64, got ", t.dtype, " ", shape_str(t.shape));
    }
  }
  for (const StTensor& t : file.tensors)
    KILN_CHECK(std::find(expected.begin(), expected.end(), t.name) != expected.end(),
               "checkpoint '", source, "' has a tensor '", t.name, "' ", shape_str(t.shape),
               " that the model does not have", hint);
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

void save_training_state(const std::string& path, Optimizer& optimizer, Layer& model,
                         const std::map<std::string, std::string>& metadata) {
  optimizer.ensure_state();
  StFile file;
  for (OptimizerStateRef& s : optimizer.state())
    file.tensors.push_back(float_entry("optimizer." + s.name, s.tensor->dtype(),
                                       s.tensor->shape().dims(), host_values(*s.tensor)));
  // The model's weights too, as "model.<name>": the state alone restores a run, so it can be the
  // one file whose rename commits an epoch (docs/checkpoints.md, "The run folder").
  for (StTensor& t : model_state_dict(model).tensors) {
    t.name = "model." + t.name;
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
  StFile file = read_safetensors(path);
  auto it = file.metadata.find("kiln.optimizer_state");
  KILN_CHECK(it != file.metadata.end(), "'", path,
             "' is not a Kiln training-state file (no kiln.optimizer_state metadata)");
  ordered_json state;
  try {
    state = ordered_json::parse(it->second);
    KILN_CHECK(state.at("optimizer").get<std::string>() == optimizer.kind(), "'", path,
               "' holds the state of optimizer '", state.at("optimizer").get<std::string>(),
               "' but this run uses '", optimizer.kind(),
               "' (pass the same --optimizer to resume)");
    optimizer.ensure_state();
    for (OptimizerStateRef& s : optimizer.state()) {
      const StTensor* t = file.find("optimizer." + s.name);
      KILN_CHECK(t != nullptr && t->shape == s.tensor->shape().dims(), "'", path,
                 "': optimizer state '", s.name, "' is missing or of another size (",
                 t ? shape_str(t->shape) : "absent", " vs ", s.tensor->str(),
                 "): the checkpoint is of another architecture");
      set_values(*s.tensor, entry_values(*t));
    }
    optimizer.set_steps(state.at("steps").get<int64_t>());
    optimizer.set_lr(state.at("lr").get<double>());
    const ordered_json& counters = state.at("counters");
    for (CounterRef& c : model.counters()) {
      KILN_CHECK(counters.contains(c.name), "'", path, "' has no counter '", c.name,
                 "' (another architecture)");
      *c.value = counters.at(c.name).get<uint64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    KILN_FAIL("'", path, "': malformed training state (", e.what(), ")");
  }
  file.metadata.erase("kiln.optimizer_state");
  file.metadata.erase("format");
  return file.metadata;
}

}  // namespace kiln
