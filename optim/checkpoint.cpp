// optim/checkpoint.cpp — see checkpoint.h.
#include "optim/checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "core/error.h"
#include "core/file.h"

namespace kiln {

std::string shape_str(const std::vector<int64_t>& shape) {
  std::ostringstream os;
  os << "[";
  for (size_t i = 0; i < shape.size(); ++i) os << (i ? ", " : "") << shape[i];
  os << "]";
  return os.str();
}

namespace {

using ordered_json = nlohmann::ordered_json;

// Bytes per element of the safetensors specification's dtypes; 0 for an unknown one.
size_t st_dtype_size(const std::string& dtype) {
  if (dtype == "F32" || dtype == "I32" || dtype == "U32") return 4;
  if (dtype == "F64" || dtype == "I64" || dtype == "U64") return 8;
  if (dtype == "F16" || dtype == "BF16" || dtype == "I16" || dtype == "U16") return 2;
  if (dtype == "U8" || dtype == "I8" || dtype == "BOOL" || dtype == "F8_E4M3" || dtype == "F8_E5M2")
    return 1;
  return 0;
}

int64_t shape_numel(const std::vector<int64_t>& shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
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

// ---- reading: the safetensors specification, checked before anything is trusted ----------------
// The header length is bounded by the file and by kMaxHeaderBytes (the specification's own limit
// of 100 MB), so a small file cannot make the reader allocate much; the header is JSON without
// duplicate keys; every entry is {"dtype": known string, "shape": [non-negative integers],
// "data_offsets": [begin, end]} with end - begin == product(shape) * dtype size (overflow-checked);
// the entries' byte ranges, sorted, are contiguous from 0 and cover the data exactly;
// "__metadata__" maps strings to strings. Tensor bytes are allocated only after all of that holds.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

const char* const kMissingCheckpointHint =
    "check the path; checkpoints are written by `fer_cnn train --out DIR`";

std::string not_safetensors(const std::string& path) {
  return "'" + path + "' is not a safetensors checkpoint: ";
}

// Where the bytes come from: a file (read in order, never seeking back) or memory.
using ReadBytes = std::function<void(void* dst, uint64_t bytes)>;

// Parses JSON, recording the first key that repeats within one object (nlohmann keeps the last
// value silently, so two files that differ only there would load alike).
ordered_json parse_json_unique_keys(const std::string& text, std::string* duplicate) {
  std::vector<std::set<std::string>> keys;  // the keys seen so far, per open object
  auto callback = [&](int /*depth*/, nlohmann::json::parse_event_t event, ordered_json& parsed) {
    using E = nlohmann::json::parse_event_t;
    if (event == E::object_start) keys.emplace_back();
    if (event == E::object_end && !keys.empty()) keys.pop_back();
    if (event == E::key && !keys.empty() && !keys.back().insert(parsed.get<std::string>()).second &&
        duplicate->empty())
      *duplicate = parsed.get<std::string>();
    return true;
  };
  return ordered_json::parse(text, callback);
}

// Reads and checks the header; returns the tensors without their bytes (data_offsets in
// `offsets`, in the header's order) and the metadata, and sets *data_size to the data's length.
StFile read_header(const ReadBytes& read, uint64_t size, const std::string& path,
                   std::vector<std::pair<uint64_t, uint64_t>>* offsets, uint64_t* data_size) {
  const std::string not_st = not_safetensors(path);
  KILN_CHECK(size >= 8, not_st, "the file has only ", size,
             " bytes, less than the 8-byte header length");
  uint8_t len[8];
  read(len, 8);
  uint64_t n = 0;
  for (int i = 0; i < 8; ++i) n |= static_cast<uint64_t>(len[i]) << (8 * i);
  KILN_CHECK(n <= size - 8, not_st, "the header length ", n, " exceeds the file's ", size - 8,
             " remaining bytes (truncated file, or another format)");
  KILN_CHECK(n <= kMaxHeaderBytes, not_st, "the header length ", n,
             " exceeds the specification's limit of ", kMaxHeaderBytes, " bytes");
  std::string text(n, '\0');
  read(text.data(), n);
  ordered_json header;
  std::string duplicate;
  try {
    header = parse_json_unique_keys(text, &duplicate);
  } catch (const std::exception& e) {
    KILN_FAIL(not_st, "its header is not valid JSON (", e.what(), ")");
  }
  KILN_CHECK(header.is_object(), not_st, "its header is not a JSON object");
  KILN_CHECK(duplicate.empty(), not_st, "its header has the key '", duplicate,
             "' twice (a tensor or metadata name must be unique)");
  *data_size = size - 8 - n;
  StFile file;
  for (auto it = header.begin(); it != header.end(); ++it) {
    const std::string& name = it.key();
    const ordered_json& v = it.value();
    if (name == "__metadata__") {
      KILN_CHECK(v.is_object(), not_st, "__metadata__ is not a JSON object");
      for (auto m = v.begin(); m != v.end(); ++m) {
        KILN_CHECK(m.value().is_string(), not_st, "metadata '", m.key(),
                   "' is not a string (__metadata__ maps strings to strings)");
        file.metadata[m.key()] = m.value().get<std::string>();
      }
      continue;
    }
    const std::string entry = "tensor '" + name + "' ";
    KILN_CHECK(v.is_object() && v.size() == 3 && v.contains("dtype") && v.contains("shape") &&
                   v.contains("data_offsets"),
               not_st, entry, "must be an object with exactly dtype, shape and data_offsets");
    StTensor t;
    t.name = name;
    KILN_CHECK(v["dtype"].is_string(), not_st, entry, "has a dtype that is not a string");
    t.dtype = v["dtype"].get<std::string>();
    const uint64_t elem = st_dtype_size(t.dtype);
    KILN_CHECK(elem != 0, not_st, entry, "has the unknown dtype '", t.dtype, "'");
    const ordered_json& shape = v["shape"];
    KILN_CHECK(shape.is_array(), not_st, entry, "has a shape that is not an array");
    uint64_t bytes = elem;
    for (const ordered_json& d : shape) {
      KILN_CHECK(d.is_number_unsigned(), not_st, entry, "has a shape entry ", d.dump(),
                 " that is not a non-negative integer");
      const uint64_t dim = d.get<uint64_t>();
      KILN_CHECK(dim <= uint64_t(INT64_MAX) && !__builtin_mul_overflow(bytes, dim, &bytes), not_st,
                 entry, "has a shape whose size overflows 64 bits");
      t.shape.push_back(static_cast<int64_t>(dim));
    }
    const ordered_json& off = v["data_offsets"];
    KILN_CHECK(off.is_array() && off.size() == 2 && off[0].is_number_unsigned() &&
                   off[1].is_number_unsigned(),
               not_st, entry, "must have data_offsets [begin, end] of two non-negative integers");
    const uint64_t begin = off[0].get<uint64_t>(), end = off[1].get<uint64_t>();
    KILN_CHECK(begin <= end && end <= *data_size, not_st, entry, "has data_offsets [", begin, ", ",
               end, "] outside the file's ", *data_size, " data bytes (truncated file?)");
    KILN_CHECK(end - begin == bytes, not_st, entry, "has ", end - begin, " bytes but its dtype ",
               t.dtype, " and shape ", shape_str(t.shape), " need ", bytes);
    offsets->push_back({begin, end});
    file.tensors.push_back(std::move(t));
  }
  // The byte ranges, in order, must tile the data: no gap, no overlap, nothing left over.
  std::vector<size_t> order(offsets->size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return (*offsets)[a] < (*offsets)[b]; });
  uint64_t at = 0;
  for (size_t i : order) {
    const auto [begin, end] = (*offsets)[i];
    KILN_CHECK(begin == at, not_st, "tensor '", file.tensors[i].name, "' starts at byte ", begin,
               " of the data but the previous tensor ends at ", at,
               " (the tensors' bytes must be contiguous and must not overlap)");
    at = end;
  }
  KILN_CHECK(at == *data_size, not_st, "the tensors cover ", at, " of the file's ", *data_size,
             " data bytes (extra bytes after the last tensor)");
  return file;
}

StFile read_safetensors_from(const ReadBytes& read, uint64_t size, const std::string& path) {
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  uint64_t data_size = 0;
  StFile file = read_header(read, size, path, &offsets, &data_size);
  // The ranges tile the data, so reading the tensors in offset order reads the data in order.
  std::vector<size_t> order(offsets.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(),
            [&](size_t a, size_t b) { return offsets[a] < offsets[b]; });
  for (size_t i : order) {
    std::vector<uint8_t>& bytes = file.tensors[i].bytes;
    bytes.resize(offsets[i].second - offsets[i].first);
    read(bytes.data(), bytes.size());
  }
  return file;
}

ReadBytes file_reader(InputFile& in) {
  return [&in](void* dst, uint64_t bytes) { in.read(dst, bytes); };
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
  InputFile in(path, "checkpoint", kMissingCheckpointHint);
  return read_safetensors_from(file_reader(in), in.size(), path);
}

StFile parse_safetensors(std::string_view bytes, const std::string& name) {
  uint64_t at = 0;
  auto read = [&](void* dst, uint64_t n) {
    KILN_CHECK(n <= bytes.size() - at, "'", name, "' ended early");
    if (n > 0) std::memcpy(dst, bytes.data() + at, n);  // dst may be null for an empty tensor
    at += n;
  };
  return read_safetensors_from(read, bytes.size(), name);
}

StFile read_safetensors_header(const std::string& path) {
  InputFile in(path, "checkpoint", kMissingCheckpointHint);
  std::vector<std::pair<uint64_t, uint64_t>> offsets;
  uint64_t data_size = 0;
  return read_header(file_reader(in), in.size(), path, &offsets, &data_size);
}

std::map<std::string, std::string> read_safetensors_metadata(const std::string& path) {
  return read_safetensors_header(path).metadata;
}

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
  // they were. The order of the checks: the metadata, the counters, the optimizer's tensors, the
  // model's state_dict.
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
  StFile weights;
  for (StTensor& t : file.tensors)
    if (t.name.rfind(kModelPrefix, 0) == 0) {
      weights.tensors.push_back(std::move(t));
      weights.tensors.back().name.erase(0, std::strlen(kModelPrefix));
    }
  check_model_state_dict(model, weights, path);

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
