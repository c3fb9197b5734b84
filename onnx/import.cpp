// onnx/import.cpp — an ONNX graph that is a chain of Kiln's operators, as a Sequential.
//
// The file is parsed with libonnx's protobuf classes, then read by this file alone (not by
// libonnx's checker, which in Debian's ONNX 1.12 knows opsets only up to 17): opsets 13-21 of the
// default domain, whose definitions of these operators Kiln honours (docs/onnx.md has the table).
// The graph must be a chain: every operator node reads the previous node's output as its data
// input and takes everything else from initializers or Constant nodes. Each node becomes a layer
// (MatMul followed by Add of a bias is one Linear; Reshape to [N, C*H*W] is a Flatten; Identity
// is dropped); the weights are collected in PyTorch's state-dict layout ("3.weight", OIHW, the
// first Linear's columns in C*H*W order, which is what an NCHW graph holds) and loaded through
// load_model_state_dict, so checkpoints and ONNX share one layout conversion.
#include <onnx/onnx_pb.h>

#include <algorithm>
#include <cctype>
#include <climits>
#include <cstring>
#include <deque>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.h"
#include "io/file.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "onnx/kiln_onnx.h"
#include "optim/checkpoint.h"

namespace kiln {
namespace {

using ::onnx::AttributeProto;
using ::onnx::NodeProto;
using ::onnx::TensorProto;

const char* kSupportedOps =
    "Conv, BatchNormalization, Relu, LeakyRelu, MaxPool, Dropout, Flatten, Reshape (to "
    "[N, C*H*W]), Gemm, MatMul (+ Add), Identity and Constant";

// The largest input side (channels, height, width) a model may declare: every activation is
// sized from the file's claim, so it is bounded before anything trusts it.
constexpr int64_t kMaxInputSide = 4096;

// Files are read whole; protobuf's parser takes at most 2 GB.
constexpr uint64_t kMaxFileBytes = (uint64_t(1) << 31) - 1;

std::string type_name(int data_type) {
  const std::string n = TensorProto::DataType_IsValid(data_type)
                            ? TensorProto::DataType_Name(TensorProto::DataType(data_type))
                            : "";
  return n.empty() ? "data type " + std::to_string(data_type) : n;
}

class Importer {
 public:
  Importer(const ::onnx::ModelProto& model, const std::string& source, uint64_t file_bytes)
      : model_(model), graph_(model.graph()), source_(source), file_bytes_(file_bytes) {}

  OnnxModel run();

 private:
  // "node 3 '/3/MaxPool' (MaxPool)", the prefix of every error about a node.
  std::string where(int j) const {
    const NodeProto& n = graph_.node(j);
    return "ONNX model '" + source_ + "': node " + std::to_string(j) + " '" + n.name() + "' (" +
           n.op_type() + ")";
  }

  void read_opset(OnnxModel& m);
  void read_input(OnnxModel& m);
  void add_constant(int j);

  // Element count of an initializer, checked (non-negative dims, no overflow).
  int64_t numel(const TensorProto& t, const std::string& ctx) const;
  const TensorProto& tensor(const std::string& name, const std::string& ctx) const;
  std::vector<float> floats(const TensorProto& t, const std::string& ctx) const;
  std::vector<int64_t> ints(const TensorProto& t, const std::string& ctx) const;
  template <typename T, typename Repeated>
  std::vector<T> values(const TensorProto& t, const std::string& ctx, int type, const char* what,
                        const Repeated& typed) const;

  // The node's attributes, refusing any not in `allowed`.
  std::map<std::string, const AttributeProto*> attributes(int j,
                                                          std::vector<std::string> allowed) const;
  // Attribute `name` of node j, of ONNX type `type` (`type_text` names it in the error), or
  // nullptr when the node does not set it.
  const AttributeProto* typed_attr(int j, const std::map<std::string, const AttributeProto*>& a,
                                   const std::string& name, AttributeProto::AttributeType type,
                                   const char* type_text) const;
  // The attribute's value, or `fallback` when the node does not set it.
  int64_t attr_int(int j, const std::map<std::string, const AttributeProto*>& a,
                   const std::string& name, int64_t fallback) const;
  float attr_float(int j, const std::map<std::string, const AttributeProto*>& a,
                   const std::string& name, float fallback) const;
  std::vector<int64_t> attr_ints(int j, const std::map<std::string, const AttributeProto*>& a,
                                 const std::string& name, std::vector<int64_t> fallback) const;
  std::string attr_string(int j, const std::map<std::string, const AttributeProto*>& a,
                          const std::string& name, const std::string& fallback) const;
  // The one value of a pair/quadruple of spatial attributes that must all be equal.
  int64_t same_value(int j, const std::vector<int64_t>& v, size_t count,
                     const std::string& name) const;
  void require_inputs(int j, int lo, int hi) const;

  // Appends a layer for node j and records its state-dict tensors; updates the shape.
  void add_layer(int j, std::unique_ptr<Layer> layer);
  void add_state(const std::string& name, std::vector<int64_t> dims, const std::vector<float>& v);

  void import_conv(int j);
  void import_batchnorm(int j);
  void import_maxpool(int j);
  void import_dropout(int j);
  void import_flatten(int j, bool reshape);
  void import_gemm(int j);
  int import_matmul(int j);  // returns the number of nodes consumed (1, or 2 with the Add)

  const ::onnx::ModelProto& model_;
  const ::onnx::GraphProto& graph_;
  std::string source_;
  std::map<std::string, const TensorProto*> tensors_;  // initializers and Constant outputs
  std::deque<TensorProto> owned_;                      // Constant outputs built from attributes
  std::multiset<std::string> consumers_;               // every name a node or the graph reads
  std::vector<std::unique_ptr<Layer>> layers_;
  StFile state_;
  Shape shape_;                 // the current activation, Kiln's [N][H][W][C] or [N][F]
  std::string cur_;             // the current activation's ONNX name
  int64_t fixed_batch_ = -1;    // the input's batch size when it is not symbolic
  bool after_flatten_ = false;  // the last layer flattened a spatial activation
  uint64_t file_bytes_;         // the size of the file, which bounds the weights (add_state)
  uint64_t state_bytes_ = 0;    // the weights imported so far
};

int64_t Importer::numel(const TensorProto& t, const std::string& ctx) const {
  int64_t n = 1;
  for (int64_t d : t.dims()) {
    KILN_CHECK(d >= 0, ctx, ": tensor '", t.name(), "' has a negative dimension (", d,
               "): the file is corrupt");
    KILN_CHECK(d == 0 || n <= (int64_t(1) << 40) / d, ctx, ": tensor '", t.name(),
               "' declares more elements than any file can hold: the file is corrupt");
    n *= d;
  }
  return n;
}

const TensorProto& Importer::tensor(const std::string& name, const std::string& ctx) const {
  const auto it = tensors_.find(name);
  KILN_CHECK(it != tensors_.end(), ctx, ": input '", name,
             "' is neither an initializer nor a Constant; Kiln imports a chain whose weights are "
             "constants (each operator reads the previous operator's output and constants)");
  return *it->second;
}

// The data of `t` as T (float for FLOAT, int64_t for INT64), from raw_data or from the typed
// repeated field `typed` (float_data, int64_data), checked against the shape.
template <typename T, typename Repeated>
std::vector<T> Importer::values(const TensorProto& t, const std::string& ctx, int type,
                                const char* what, const Repeated& typed) const {
  KILN_CHECK(t.data_location() != TensorProto::EXTERNAL, ctx, ": tensor '", t.name(),
             "' keeps its data in an external file, which Kiln does not read; save the model "
             "with all tensors inside (onnx.save_model(m, path, save_as_external_data=False))");
  KILN_CHECK(!t.has_segment(), ctx, ": tensor '", t.name(),
             "' is segmented, which Kiln does not read");
  KILN_CHECK(t.data_type() == type, ctx, ": tensor '", t.name(), "' is ", type_name(t.data_type()),
             "; Kiln reads ", what);
  const int64_t n = numel(t, ctx);
  std::vector<T> v;
  if (t.has_raw_data()) {
    KILN_CHECK(int64_t(t.raw_data().size()) == int64_t(sizeof(T)) * n, ctx, ": tensor '", t.name(),
               "' has ", t.raw_data().size(), " bytes of data but its shape needs ",
               int64_t(sizeof(T)) * n, ": the file is corrupt or truncated");
    v.resize(size_t(n));
    if (n) std::memcpy(v.data(), t.raw_data().data(), size_t(n) * sizeof(T));
  } else {
    KILN_CHECK(typed.size() == n, ctx, ": tensor '", t.name(), "' has ", typed.size(),
               " values but its shape needs ", n, ": the file is corrupt or truncated");
    v.assign(typed.begin(), typed.end());
  }
  return v;
}

std::vector<float> Importer::floats(const TensorProto& t, const std::string& ctx) const {
  return values<float>(t, ctx, TensorProto::FLOAT, "float32 weights (FLOAT)", t.float_data());
}

std::vector<int64_t> Importer::ints(const TensorProto& t, const std::string& ctx) const {
  return values<int64_t>(t, ctx, TensorProto::INT64, "a shape as INT64", t.int64_data());
}

std::map<std::string, const AttributeProto*> Importer::attributes(
    int j, std::vector<std::string> allowed) const {
  std::map<std::string, const AttributeProto*> out;
  for (const AttributeProto& a : graph_.node(j).attribute()) {
    if (std::find(allowed.begin(), allowed.end(), a.name()) == allowed.end()) {
      std::string list;
      for (const std::string& s : allowed) list += (list.empty() ? "" : ", ") + s;
      KILN_FAIL(where(j), ": attribute '", a.name(), "' is not supported by Kiln (it reads ",
                list.empty() ? "no attributes" : list, " of this operator)");
    }
    KILN_CHECK(!out.count(a.name()), where(j), ": attribute '", a.name(), "' appears twice");
    out[a.name()] = &a;
  }
  return out;
}

const AttributeProto* Importer::typed_attr(int j,
                                           const std::map<std::string, const AttributeProto*>& a,
                                           const std::string& name,
                                           AttributeProto::AttributeType type,
                                           const char* type_text) const {
  const auto it = a.find(name);
  if (it == a.end()) return nullptr;
  KILN_CHECK(it->second->type() == type, where(j), ": attribute '", name, "' must be ", type_text);
  return it->second;
}

int64_t Importer::attr_int(int j, const std::map<std::string, const AttributeProto*>& a,
                           const std::string& name, int64_t fallback) const {
  const AttributeProto* p = typed_attr(j, a, name, AttributeProto::INT, "an INT");
  return p != nullptr ? p->i() : fallback;
}

float Importer::attr_float(int j, const std::map<std::string, const AttributeProto*>& a,
                           const std::string& name, float fallback) const {
  const AttributeProto* p = typed_attr(j, a, name, AttributeProto::FLOAT, "a FLOAT");
  return p != nullptr ? p->f() : fallback;
}

std::vector<int64_t> Importer::attr_ints(int j,
                                         const std::map<std::string, const AttributeProto*>& a,
                                         const std::string& name,
                                         std::vector<int64_t> fallback) const {
  const AttributeProto* p = typed_attr(j, a, name, AttributeProto::INTS, "INTS");
  return p != nullptr ? std::vector<int64_t>(p->ints().begin(), p->ints().end()) : fallback;
}

std::string Importer::attr_string(int j, const std::map<std::string, const AttributeProto*>& a,
                                  const std::string& name, const std::string& fallback) const {
  const AttributeProto* p = typed_attr(j, a, name, AttributeProto::STRING, "a STRING");
  return p != nullptr ? p->s() : fallback;
}

int64_t Importer::same_value(int j, const std::vector<int64_t>& v, size_t count,
                             const std::string& name) const {
  KILN_CHECK(v.size() == count, where(j), ": attribute '", name, "' has ", v.size(),
             " values; Kiln reads 2-D operators (", count, " values)");
  for (int64_t x : v)
    KILN_CHECK(x == v[0], where(j), ": attribute '", name,
               "' differs between dimensions or sides; Kiln supports only the same value for "
               "height and width (square kernels, equal strides, symmetric padding)");
  KILN_CHECK(v[0] >= 0 && v[0] <= 4096, where(j), ": attribute '", name, "' = ", v[0],
             " is out of range");
  return v[0];
}

void Importer::require_inputs(int j, int lo, int hi) const {
  const int n = graph_.node(j).input_size();
  KILN_CHECK(n >= lo && n <= hi, where(j), ": has ", n, " inputs; Kiln reads ", lo,
             lo == hi ? "" : " to " + std::to_string(hi));
}

void Importer::add_state(const std::string& name, std::vector<int64_t> dims,
                         const std::vector<float>& v) {
  StTensor t{std::to_string(layers_.size()) + "." + name, "F32", std::move(dims),
             std::vector<uint8_t>(v.size() * 4)};
  if (!v.empty()) std::memcpy(t.bytes.data(), v.data(), t.bytes.size());
  // Several nodes may read one initializer (PyTorch shares equal constants), so the layers can
  // hold more than the file; a file whose few tensors are read by many nodes would make the
  // import's memory grow with the square of its size. Allowed: 4x the file, plus 1 MB.
  state_bytes_ += t.bytes.size();
  KILN_CHECK(state_bytes_ <= 4 * file_bytes_ + (uint64_t(1) << 20), "ONNX model '", source_,
             "': its layers would hold ", state_bytes_, " bytes of weights, over 4 times the ",
             file_bytes_,
             "-byte file (the same initializers read by many nodes); Kiln refuses "
             "such a file");
  state_.tensors.push_back(std::move(t));
}

void Importer::add_layer(int j, std::unique_ptr<Layer> layer) {
  try {
    shape_ = layer->output_shape(shape_);
  } catch (const Error& e) {
    KILN_FAIL(where(j), ": the layer it becomes, ", layer->describe(),
              ", does not accept its input ", shape_.str(),
              " ([N, H, W, C] in Kiln's order): ", e.what());
  }
  // Sequential lays out a Linear's columns for PyTorch's C*H*W order only when it directly
  // follows the Flatten; any other layer in between would silently permute the weights.
  if (after_flatten_)
    KILN_CHECK(layer->kind() == "Linear", where(j),
               ": follows a Flatten of a spatial activation; Kiln needs the Linear (Gemm or "
               "MatMul) directly after the Flatten");
  after_flatten_ = false;
  layers_.push_back(std::move(layer));
  cur_ = graph_.node(j).output(0);
}

void Importer::import_conv(int j) {
  const NodeProto& n = graph_.node(j);
  require_inputs(j, 2, 3);
  const auto a =
      attributes(j, {"kernel_shape", "strides", "pads", "dilations", "group", "auto_pad"});
  KILN_CHECK(shape_.rank() == 4, where(j), ": its input is ", shape_.str(),
             "; Conv needs an image [N, C, H, W]");
  const TensorProto& wt = tensor(n.input(1), where(j));
  const std::vector<float> w = floats(wt, where(j));
  KILN_CHECK(wt.dims_size() == 4, where(j), ": weight '", wt.name(), "' has ", wt.dims_size(),
             " dimensions; a 2-D convolution's weight is [C_out, C_in, KH, KW]");
  const int64_t out = wt.dims(0), in = wt.dims(1), k = wt.dims(2);
  KILN_CHECK(wt.dims(2) == wt.dims(3), where(j), ": kernel ", wt.dims(2), "x", wt.dims(3),
             "; Kiln supports square kernels only");
  KILN_CHECK(out > 0 && k > 0, where(j), ": weight '", wt.name(), "' is empty");
  KILN_CHECK(in == shape_[3], where(j), ": weight '", wt.name(), "' expects ", in,
             " input channels but its input has ", shape_[3]);
  const int64_t group = attr_int(j, a, "group", 1);
  KILN_CHECK(group == 1, where(j), ": group = ", group,
             "; Kiln supports ordinary convolutions only (group 1, no depthwise or grouped)");
  const auto dil = attr_ints(j, a, "dilations", {1, 1});
  KILN_CHECK(same_value(j, dil, 2, "dilations") == 1, where(j), ": dilations ", dil[0],
             "; Kiln supports dilation 1 only");
  const auto ks = attr_ints(j, a, "kernel_shape", {k, k});
  KILN_CHECK(ks.size() == 2 && ks[0] == k && ks[1] == k, where(j),
             ": kernel_shape does not match the weight's ", k, "x", k);
  const std::string auto_pad = attr_string(j, a, "auto_pad", "NOTSET");
  KILN_CHECK(auto_pad == "NOTSET" || auto_pad == "VALID", where(j), ": auto_pad = ", auto_pad,
             "; Kiln supports explicit pads (NOTSET) or VALID");
  const int64_t stride = same_value(j, attr_ints(j, a, "strides", {1, 1}), 2, "strides");
  const int64_t pad =
      auto_pad == "VALID" ? 0 : same_value(j, attr_ints(j, a, "pads", {0, 0, 0, 0}), 4, "pads");
  KILN_CHECK(stride >= 1, where(j), ": stride 0");
  std::vector<float> bias;
  if (n.input_size() == 3 && !n.input(2).empty()) {
    const TensorProto& bt = tensor(n.input(2), where(j));
    bias = floats(bt, where(j));
    KILN_CHECK(int64_t(bias.size()) == out && bt.dims_size() == 1, where(j), ": bias '", bt.name(),
               "' must be [", out, "]");
  }
  KILN_CHECK(out <= INT_MAX && in <= INT_MAX, where(j), ": too many channels");
  const bool has_bias = !bias.empty();
  add_state("weight", {out, in, k, k}, w);
  if (has_bias) add_state("bias", {out}, bias);
  add_layer(j,
            std::make_unique<Conv2d>(int(in), int(out), int(k), int(stride), int(pad), has_bias));
}

void Importer::import_batchnorm(int j) {
  const NodeProto& n = graph_.node(j);
  require_inputs(j, 5, 5);
  const auto a = attributes(j, {"epsilon", "momentum", "training_mode"});
  KILN_CHECK(attr_int(j, a, "training_mode", 0) == 0, where(j),
             ": training_mode = 1; Kiln imports inference graphs (export with model.eval())");
  KILN_CHECK(shape_.rank() == 4, where(j), ": its input is ", shape_.str(),
             "; Kiln's BatchNorm2d needs an image [N, C, H, W]");
  const int64_t c = shape_[3];
  const char* names[4] = {"weight", "bias", "running_mean", "running_var"};
  std::vector<float> v[4];
  for (int i = 0; i < 4; ++i) {
    const TensorProto& t = tensor(n.input(i + 1), where(j));
    v[i] = floats(t, where(j));
    KILN_CHECK(int64_t(v[i].size()) == c, where(j), ": ", names[i], " '", t.name(), "' has ",
               v[i].size(), " values; the input has ", c, " channels");
  }
  const double eps = attr_float(j, a, "epsilon", 1e-5f);
  const double momentum = attr_float(j, a, "momentum", 0.9f);
  KILN_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, where(j), ": epsilon ", eps,
             " or momentum ", momentum, " out of range");
  for (int i = 0; i < 4; ++i) add_state(names[i], {c}, v[i]);
  StTensor tracked{std::to_string(layers_.size()) + ".num_batches_tracked",
                   "I64",
                   {},
                   std::vector<uint8_t>(8, 0)};
  state_.tensors.push_back(std::move(tracked));
  // ONNX's momentum weighs the running statistic, PyTorch's (and Kiln's) the new batch.
  add_layer(j, std::make_unique<BatchNorm2d>(int(c), eps, 1.0 - momentum));
}

void Importer::import_maxpool(int j) {
  require_inputs(j, 1, 1);
  const auto a = attributes(j, {"kernel_shape", "strides", "pads", "dilations", "ceil_mode",
                                "storage_order", "auto_pad"});
  KILN_CHECK(a.count("kernel_shape"), where(j), ": has no kernel_shape");
  const int64_t k = same_value(j, attr_ints(j, a, "kernel_shape", {}), 2, "kernel_shape");
  const int64_t stride = same_value(j, attr_ints(j, a, "strides", {1, 1}), 2, "strides");
  const std::string auto_pad = attr_string(j, a, "auto_pad", "NOTSET");
  KILN_CHECK(auto_pad == "NOTSET" || auto_pad == "VALID", where(j), ": auto_pad = ", auto_pad,
             "; Kiln supports explicit pads (NOTSET) or VALID");
  const int64_t pad =
      auto_pad == "VALID" ? 0 : same_value(j, attr_ints(j, a, "pads", {0, 0, 0, 0}), 4, "pads");
  KILN_CHECK(attr_int(j, a, "ceil_mode", 0) == 0, where(j),
             ": ceil_mode = 1; Kiln's MaxPool2d rounds the output size down (ceil_mode 0)");
  KILN_CHECK(same_value(j, attr_ints(j, a, "dilations", {1, 1}), 2, "dilations") == 1, where(j),
             ": Kiln supports dilation 1 only");
  KILN_CHECK(attr_int(j, a, "storage_order", 0) == 0, where(j),
             ": storage_order = 1 (column-major indices) is not supported");
  KILN_CHECK(k >= 1 && stride >= 1, where(j), ": kernel or stride 0");
  add_layer(j, std::make_unique<MaxPool2d>(int(k), int(stride), int(pad)));
}

void Importer::import_dropout(int j) {
  const NodeProto& n = graph_.node(j);
  require_inputs(j, 1, 3);
  const auto a = attributes(j, {"seed"});
  (void)a;
  double p = 0.5;
  if (n.input_size() >= 2 && !n.input(1).empty()) {
    const std::vector<float> r = floats(tensor(n.input(1), where(j)), where(j));
    KILN_CHECK(r.size() == 1 && r[0] >= 0 && r[0] < 1, where(j),
               ": ratio must be one value in [0, 1)");
    p = r[0];
  }
  if (n.input_size() == 3 && !n.input(2).empty()) {
    const TensorProto& t = tensor(n.input(2), where(j));
    KILN_CHECK(t.data_type() == TensorProto::BOOL && numel(t, where(j)) == 1 &&
                   ((t.has_raw_data() && t.raw_data() == std::string(1, '\0')) ||
                    (t.int32_data_size() == 1 && t.int32_data(0) == 0)),
               where(j),
               ": training_mode must be the constant false; Kiln imports inference "
               "graphs");
  }
  add_layer(j, std::make_unique<Dropout>(p));
}

void Importer::import_flatten(int j, bool reshape) {
  const NodeProto& n = graph_.node(j);
  KILN_CHECK(shape_.rank() == 4, where(j), ": its input is ", shape_.str(),
             "; Kiln flattens images [N, C, H, W] only");
  const int64_t flat = shape_[1] * shape_[2] * shape_[3];
  if (reshape) {
    require_inputs(j, 2, 2);
    const auto a = attributes(j, {"allowzero"});
    KILN_CHECK(attr_int(j, a, "allowzero", 0) == 0, where(j), ": allowzero = 1 is not supported");
    const std::vector<int64_t> t = ints(tensor(n.input(1), where(j)), where(j));
    const bool batch_ok = t.size() == 2 && (t[0] == 0 || (t[0] == -1 && t[1] == flat) ||
                                            (t[0] > 0 && t[0] == fixed_batch_));
    KILN_CHECK(batch_ok && (t[1] == -1 || t[1] == flat), where(j),
               ": reshapes to a shape other than [N, C*H*W] = [N, ", flat,
               "]; Kiln imports Reshape only as the flattening before a Linear layer");
  } else {
    require_inputs(j, 1, 1);
    const auto a = attributes(j, {"axis"});
    KILN_CHECK(attr_int(j, a, "axis", 1) == 1, where(j),
               ": axis must be 1 (flatten everything but the batch)");
  }
  const bool spatial = shape_[1] * shape_[2] > 1;
  add_layer(j, std::make_unique<Flatten>());
  after_flatten_ = spatial;
}

void Importer::import_gemm(int j) {
  const NodeProto& n = graph_.node(j);
  require_inputs(j, 2, 3);
  const auto a = attributes(j, {"alpha", "beta", "transA", "transB"});
  KILN_CHECK(attr_float(j, a, "alpha", 1.0f) == 1.0f, where(j),
             ": alpha != 1; Kiln's Linear computes x W^T + b");
  KILN_CHECK(attr_int(j, a, "transA", 0) == 0, where(j), ": transA = 1 is not supported");
  const bool trans_b = attr_int(j, a, "transB", 0) != 0;
  KILN_CHECK(shape_.rank() == 2, where(j), ": its input is ", shape_.str(),
             "; Gemm needs [N, features] (Flatten first)");
  const TensorProto& bt = tensor(n.input(1), where(j));
  const std::vector<float> b = floats(bt, where(j));
  KILN_CHECK(bt.dims_size() == 2, where(j), ": B '", bt.name(), "' must be 2-D");
  const int64_t out = trans_b ? bt.dims(0) : bt.dims(1), in = trans_b ? bt.dims(1) : bt.dims(0);
  KILN_CHECK(in == shape_[1] && out > 0 && out <= INT_MAX, where(j), ": B '", bt.name(),
             "' is for ", in, " input features but the input has ", shape_[1]);
  std::vector<float> w = b;  // [out][in]
  if (!trans_b)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t i = 0; i < in; ++i) w[o * in + i] = b[i * out + o];
  std::vector<float> bias;
  if (n.input_size() == 3 && !n.input(2).empty()) {
    KILN_CHECK(attr_float(j, a, "beta", 1.0f) == 1.0f, where(j),
               ": beta != 1; Kiln's Linear adds the bias as it is");
    bias = floats(tensor(n.input(2), where(j)), where(j));
    KILN_CHECK(int64_t(bias.size()) == out, where(j), ": C has ", bias.size(),
               " values; Kiln reads a bias of one value per output (", out, ")");
  }
  add_state("weight", {out, in}, w);
  if (!bias.empty()) add_state("bias", {out}, bias);
  add_layer(j, std::make_unique<Linear>(int(in), int(out), !bias.empty()));
}

int Importer::import_matmul(int j) {
  const NodeProto& n = graph_.node(j);
  require_inputs(j, 2, 2);
  attributes(j, {});
  KILN_CHECK(shape_.rank() == 2, where(j), ": its input is ", shape_.str(),
             "; Kiln imports MatMul as a Linear layer on [N, features] (Flatten first)");
  const TensorProto& bt = tensor(n.input(1), where(j));
  const std::vector<float> b = floats(bt, where(j));
  KILN_CHECK(bt.dims_size() == 2, where(j), ": B '", bt.name(), "' must be 2-D [in, out]");
  const int64_t in = bt.dims(0), out = bt.dims(1);
  KILN_CHECK(in == shape_[1] && out > 0 && out <= INT_MAX, where(j), ": B '", bt.name(),
             "' is for ", in, " input features but the input has ", shape_[1]);
  std::vector<float> w(b.size());  // [out][in] = B^T
  for (int64_t o = 0; o < out; ++o)
    for (int64_t i = 0; i < in; ++i) w[o * in + i] = b[i * out + o];
  // An Add of a constant [out] vector right after, reading only the MatMul's output: the bias.
  std::vector<float> bias;
  int used = 1;
  if (j + 1 < graph_.node_size() && graph_.node(j + 1).op_type() == "Add" &&
      consumers_.count(n.output(0)) == 1) {
    const NodeProto& add = graph_.node(j + 1);
    require_inputs(j + 1, 2, 2);
    attributes(j + 1, {});
    const int mine = add.input(0) == n.output(0) ? 0 : add.input(1) == n.output(0) ? 1 : -1;
    if (mine >= 0) {
      const TensorProto& ct = tensor(add.input(1 - mine), where(j + 1));
      bias = floats(ct, where(j + 1));
      KILN_CHECK(int64_t(bias.size()) == out, where(j + 1), ": adds ", bias.size(),
                 " values after a MatMul with ", out, " outputs; Kiln reads a bias [", out, "]");
      used = 2;
    }
  }
  add_state("weight", {out, in}, w);
  if (!bias.empty()) add_state("bias", {out}, bias);
  add_layer(j + used - 1, std::make_unique<Linear>(int(in), int(out), !bias.empty()));
  return used;
}

void Importer::read_opset(OnnxModel& m) {
  for (const auto& o : model_.opset_import())
    if (o.domain().empty() || o.domain() == "ai.onnx") m.opset = int(o.version());
  KILN_CHECK(m.opset != 0, "ONNX model '", source_,
             "' imports no opset of the default domain (ai.onnx): it is not a model Kiln reads");
  KILN_CHECK(m.opset >= kOnnxImportMinOpset && m.opset <= kOnnxImportMaxOpset, "ONNX model '",
             source_, "' uses opset ", m.opset, "; Kiln imports opsets ", kOnnxImportMinOpset,
             " to ", kOnnxImportMaxOpset, " (export with opset_version in that range)");
}

void Importer::read_input(OnnxModel& m) {
  std::set<std::string> init;
  for (const TensorProto& t : graph_.initializer()) {
    KILN_CHECK(!tensors_.count(t.name()), "ONNX model '", source_, "': initializer '", t.name(),
               "' appears twice");
    tensors_[t.name()] = &t;
  }
  const ::onnx::ValueInfoProto* input = nullptr;
  for (const auto& v : graph_.input()) {
    if (tensors_.count(v.name())) continue;  // an initializer listed as an input (IR < 4)
    KILN_CHECK(!input, "ONNX model '", source_, "' has two data inputs ('", input->name(),
               "' and '", v.name(), "'); Kiln imports a model with one image input");
    input = &v;
  }
  KILN_CHECK(input, "ONNX model '", source_, "' has no data input");
  const std::string ctx = "ONNX model '" + source_ + "': input '" + input->name() + "'";
  KILN_CHECK(input->type().has_tensor_type() &&
                 input->type().tensor_type().elem_type() == TensorProto::FLOAT,
             ctx, " is not a float32 tensor");
  const auto& s = input->type().tensor_type().shape();
  KILN_CHECK(s.dim_size() == 4, ctx, " has ", s.dim_size(),
             " dimensions; Kiln imports models of NCHW images [N, C, H, W]");
  int64_t chw[3];
  for (int d = 1; d < 4; ++d) {
    const bool fixed = s.dim(d).has_dim_value() && s.dim(d).dim_value() > 0;
    KILN_CHECK(fixed && s.dim(d).dim_value() <= kMaxInputSide, ctx, ": dimension ", d, " (",
               "CHW"[d - 1], ") must be a fixed size in 1..", kMaxInputSide,
               "; Kiln builds the network for one image size");
    chw[d - 1] = s.dim(d).dim_value();
  }
  if (s.dim(0).has_dim_value()) fixed_batch_ = s.dim(0).dim_value();
  m.channels = int(chw[0]);
  m.height = int(chw[1]);
  m.width = int(chw[2]);
  shape_ = Shape({1, chw[1], chw[2], chw[0]});
  cur_ = input->name();
}

void Importer::add_constant(int j) {
  const NodeProto& n = graph_.node(j);
  require_inputs(j, 0, 0);
  const auto a = attributes(j, {"value", "value_ints", "value_float"});
  KILN_CHECK(a.size() == 1 && n.output_size() == 1, where(j),
             ": must have exactly one of value, value_ints, value_float");
  TensorProto& t = owned_.emplace_back();
  const AttributeProto& v = *a.begin()->second;
  if (v.name() == "value") {
    KILN_CHECK(v.type() == AttributeProto::TENSOR, where(j), ": value must be a TENSOR");
    t = v.t();
  } else if (v.name() == "value_ints") {
    KILN_CHECK(v.type() == AttributeProto::INTS, where(j), ": value_ints must be INTS");
    t.set_data_type(TensorProto::INT64);
    t.add_dims(v.ints_size());
    for (int64_t x : v.ints()) t.add_int64_data(x);
  } else {
    KILN_CHECK(v.type() == AttributeProto::FLOAT, where(j), ": value_float must be a FLOAT");
    t.set_data_type(TensorProto::FLOAT);
    t.add_float_data(v.f());
  }
  t.set_name(n.output(0));
  tensors_[n.output(0)] = &t;
}

OnnxModel Importer::run() {
  OnnxModel m;
  m.producer = model_.producer_name() +
               (model_.producer_version().empty() ? "" : " " + model_.producer_version());
  read_opset(m);
  read_input(m);
  for (const NodeProto& n : graph_.node())
    for (const std::string& in : n.input()) consumers_.insert(in);
  for (const auto& o : graph_.output()) consumers_.insert(o.name());
  KILN_CHECK(graph_.output_size() == 1, "ONNX model '", source_, "' has ", graph_.output_size(),
             " outputs; Kiln imports models with one output (the logits)");

  for (int j = 0; j < graph_.node_size(); ++j) {
    const NodeProto& n = graph_.node(j);
    KILN_CHECK(n.domain().empty() || n.domain() == "ai.onnx", where(j), ": operator domain '",
               n.domain(), "' is not ONNX's own; Kiln imports ", kSupportedOps);
    KILN_CHECK(n.output_size() >= 1 && !n.output(0).empty(), where(j), ": has no output");
    for (int o = 1; o < n.output_size(); ++o)
      KILN_CHECK(n.output(o).empty() || !consumers_.count(n.output(o)), where(j), ": output ", o,
                 " ('", n.output(o), "') is used; Kiln imports only the first output");
    const std::string& op = n.op_type();
    if (op == "Constant") {
      add_constant(j);
      continue;
    }
    // An Identity of a constant is another name for it: PyTorch's export without constant folding
    // gives initializers with equal values one tensor and the other names through Identity.
    if (op == "Identity" && n.input_size() == 1 && tensors_.count(n.input(0))) {
      attributes(j, {});
      tensors_[n.output(0)] = tensors_.at(n.input(0));
      continue;
    }
    KILN_CHECK(n.input_size() >= 1 && n.input(0) == cur_, where(j), ": reads '",
               n.input_size() ? n.input(0) : std::string(), "' but the chain's current value is '",
               cur_,
               "'; Kiln imports a chain of operators, each reading the previous one's output");
    KILN_CHECK(consumers_.count(cur_) == 1, where(j), ": '", cur_,
               "' is read by more than one node (a branch or skip connection); Kiln imports a "
               "chain of operators");
    try {
      if (op == "Conv") {
        import_conv(j);
      } else if (op == "BatchNormalization") {
        import_batchnorm(j);
      } else if (op == "Relu" || op == "LeakyRelu") {
        require_inputs(j, 1, 1);
        const auto a = attributes(
            j, op == "Relu" ? std::vector<std::string>{} : std::vector<std::string>{"alpha"});
        add_layer(
            j, std::make_unique<LeakyReLU>(op == "Relu" ? 0.0 : attr_float(j, a, "alpha", 0.01f)));
      } else if (op == "MaxPool") {
        import_maxpool(j);
      } else if (op == "Dropout") {
        import_dropout(j);
      } else if (op == "Flatten" || op == "Reshape") {
        import_flatten(j, op == "Reshape");
      } else if (op == "Gemm") {
        import_gemm(j);
      } else if (op == "MatMul") {
        j += import_matmul(j) - 1;
      } else if (op == "Identity") {
        require_inputs(j, 1, 1);
        attributes(j, {});
        cur_ = n.output(0);
      } else {
        KILN_FAIL(where(j), ": operator ", op, " is not supported; Kiln imports ", kSupportedOps,
                  " (a chain as torch.onnx.export writes for an nn.Sequential of Conv2d, "
                  "BatchNorm2d, ReLU/LeakyReLU, MaxPool2d, Dropout, Flatten and Linear)");
      }
    } catch (const Error& e) {
      // A layer constructor's own check ("MaxPool2d: window over 256 elements") gets the node.
      if (std::string_view(e.what()).starts_with("ONNX model")) throw;
      KILN_FAIL(where(j), ": ", e.what());
    }
  }
  KILN_CHECK(!layers_.empty(), "ONNX model '", source_, "' has no operator Kiln imports");
  KILN_CHECK(cur_ == graph_.output(0).name(), "ONNX model '", source_, "': the chain ends in '",
             cur_, "' but the graph's output is '", graph_.output(0).name(), "'");
  KILN_CHECK(shape_.rank() == 2, "ONNX model '", source_, "': the output is ", shape_.str(),
             "; Kiln imports classifiers whose output is [N, classes]");
  KILN_CHECK(!after_flatten_, "ONNX model '", source_,
             "' ends in a Flatten; Kiln imports "
             "classifiers that end in a Linear layer");
  m.classes = int(shape_[1]);

  m.net = std::make_unique<Sequential>(std::move(layers_));
  m.net->set_input_shape({1, m.height, m.width, m.channels});
  load_model_state_dict(*m.net, state_, "ONNX model '" + source_ + "'");

  for (const auto& e : model_.metadata_props()) m.metadata[e.key()] = e.value();
  if (const auto it = m.metadata.find("kiln.class_names"); it != m.metadata.end()) {
    const nlohmann::json names = nlohmann::json::parse(it->second, nullptr, false);
    bool ok = names.is_array() && int(names.size()) == m.classes;
    if (ok)
      for (const auto& s : names) ok = ok && s.is_string() && !s.get<std::string>().empty();
    KILN_CHECK(ok, "ONNX model '", source_, "': metadata kiln.class_names is not a list of ",
               m.classes, " non-empty class names");
    for (const auto& s : names) m.class_names.push_back(s.get<std::string>());
  }
  return m;
}

}  // namespace

OnnxModel import_onnx(std::string_view bytes, const std::string& source) {
  KILN_CHECK(bytes.size() <= kMaxFileBytes, "ONNX model '", source, "' is ", bytes.size(),
             " bytes; protobuf (and so ONNX without external data) reads at most 2 GB");
  ::onnx::ModelProto model;
  KILN_CHECK(model.ParseFromArray(bytes.data(), int(bytes.size())), "ONNX model '", source,
             "' is not a readable ONNX file (the protobuf does not parse: the file is truncated, "
             "corrupt, or not ONNX)");
  KILN_CHECK(model.has_graph(), "ONNX model '", source,
             "' has no graph (an empty or non-ONNX "
             "file)");
  return Importer(model, source, bytes.size()).run();
}

OnnxModel load_onnx(const std::string& path) {
  const std::string bytes =
      read_regular_file(path, "ONNX model", "pass the path of a .onnx file", kMaxFileBytes);
  return import_onnx(bytes, path);
}

bool is_onnx_path(const std::string& path) {
  if (path.size() < 5) return false;
  std::string ext = path.substr(path.size() - 5);
  for (char& c : ext) c = char(std::tolower(static_cast<unsigned char>(c)));
  return ext == ".onnx";
}

}  // namespace kiln
