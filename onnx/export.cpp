// onnx/export.cpp — a Sequential as an ONNX inference graph (opset 17), and the full checker.
//
// The weights come from the PyTorch state dict (model_state_dict, optim/checkpoint.h), so the
// layout conversions (conv OHWI -> OIHW, the first Linear's columns HWC -> CHW) are the
// checkpoints' own, and the graph reads NCHW inputs exactly as PyTorch's export of the same
// nn.Sequential does. Batchnorm folding (docs/onnx.md): for a BatchNorm2d after a Conv2d, per
// output channel o, s = gamma[o] / sqrt(running_var[o] + eps), W'[o] = s * W[o],
// b'[o] = s * (b[o] - running_mean[o]) + beta[o], computed in double and rounded once to float.
#include <onnx/checker.h>
#include <onnx/onnx_pb.h>
#include <onnx/shape_inference/implementation.h>

#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

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

std::vector<float> floats_of(const StTensor& t) {
  std::vector<float> out;
  if (t.dtype == "F32") {
    out.resize(t.bytes.size() / 4);
    std::memcpy(out.data(), t.bytes.data(), t.bytes.size());
  } else {
    KILN_CHECK(t.dtype == "F64", "ONNX export: tensor '", t.name, "' is ", t.dtype,
               ", not a float tensor");
    std::vector<double> d(t.bytes.size() / 8);
    std::memcpy(d.data(), t.bytes.data(), t.bytes.size());
    out.assign(d.begin(), d.end());
  }
  return out;
}

class GraphWriter {
 public:
  GraphWriter(const StFile& state, ::onnx::GraphProto* graph) : graph_(graph) {
    for (const StTensor& t : state.tensors) state_[t.name] = &t;
  }

  const StTensor& state(const std::string& name) const {
    const auto it = state_.find(name);
    KILN_CHECK(it != state_.end(), "ONNX export: the model has no tensor '", name, "'");
    return *it->second;
  }

  // An initializer named like the state-dict entry ("3.weight"), float32, raw little-endian data.
  std::string add_initializer(const std::string& name, const std::vector<int64_t>& dims,
                              const std::vector<float>& values) {
    ::onnx::TensorProto* t = graph_->add_initializer();
    t->set_name(name);
    t->set_data_type(::onnx::TensorProto::FLOAT);
    for (int64_t d : dims) t->add_dims(d);
    t->set_raw_data(values.data(), values.size() * sizeof(float));
    return name;
  }
  std::string add_state(const std::string& name) {
    const StTensor& t = state(name);
    return add_initializer(name, t.shape, floats_of(t));
  }

  // Appends node `op` at layer `layer` reading `inputs`; returns its output's name.
  ::onnx::NodeProto* add_node(const std::string& op, int layer,
                              const std::vector<std::string>& inputs) {
    ::onnx::NodeProto* n = graph_->add_node();
    n->set_op_type(op);
    n->set_name("/" + std::to_string(layer) + "/" + op);
    for (const std::string& in : inputs) n->add_input(in);
    n->add_output(n->name() + "_output_0");
    return n;
  }

 private:
  ::onnx::GraphProto* graph_;
  std::map<std::string, const StTensor*> state_;
};

void set_ints(::onnx::NodeProto* n, const std::string& name, std::vector<int64_t> values) {
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INTS);
  for (int64_t v : values) a->add_ints(v);
}
void set_int(::onnx::NodeProto* n, const std::string& name, int64_t value) {
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(value);
}
void set_float(::onnx::NodeProto* n, const std::string& name, double value) {
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::FLOAT);
  a->set_f(static_cast<float>(value));
}

// A float tensor value [dims...], a string entry being a symbolic dimension.
void set_value_info(::onnx::ValueInfoProto* v, const std::string& name,
                    const std::vector<std::string>& symbolic, const std::vector<int64_t>& dims) {
  v->set_name(name);
  ::onnx::TypeProto_Tensor* t = v->mutable_type()->mutable_tensor_type();
  t->set_elem_type(::onnx::TensorProto::FLOAT);
  for (size_t i = 0; i < dims.size(); ++i) {
    ::onnx::TensorShapeProto_Dimension* d = t->mutable_shape()->add_dim();
    if (i < symbolic.size() && !symbolic[i].empty())
      d->set_dim_param(symbolic[i]);
    else
      d->set_dim_value(dims[i]);
  }
}

const char* kSupportedLayers =
    "Conv2d, BatchNorm2d, LeakyReLU, MaxPool2d, Dropout, Flatten and Linear";

}  // namespace

std::string export_onnx(Sequential& net, const OnnxExportOptions& o) {
  KILN_CHECK(o.channels > 0 && o.height > 0 && o.width > 0,
             "ONNX export: the input shape must be positive, got C=", o.channels, " H=", o.height,
             " W=", o.width);
  const Shape out = net.set_input_shape({1, o.height, o.width, o.channels});
  KILN_CHECK(out.rank() == 2, "ONNX export: the model's output must be [N, classes], got ",
             out.str(), " (end the network with a Linear layer)");
  const StFile state = model_state_dict(net);

  ::onnx::ModelProto model;
  model.set_ir_version(8);  // the IR version of opset 17 (ONNX 1.12)
  model.set_producer_name("kiln");
  model.set_producer_version("0.1.0");
  model.set_doc_string(o.fold_batchnorm ? "Kiln Sequential, batchnorm folded into the convolutions"
                                        : "Kiln Sequential, one ONNX operator per layer");
  ::onnx::OperatorSetIdProto* opset = model.add_opset_import();
  opset->set_domain("");
  opset->set_version(kOnnxExportOpset);
  ::onnx::GraphProto* graph = model.mutable_graph();
  graph->set_name("kiln_sequential");
  set_value_info(graph->add_input(), "input", {"batch"}, {0, o.channels, o.height, o.width});

  GraphWriter w(state, graph);
  std::string cur = "input";
  for (int i = 0; i < net.size(); ++i) {
    Layer& layer = net[i];
    const std::string p = std::to_string(i) + ".";
    ::onnx::NodeProto* n = nullptr;
    if (auto* conv = dynamic_cast<Conv2d*>(&layer)) {
      auto* bn = i + 1 < net.size() ? dynamic_cast<BatchNorm2d*>(&net[i + 1]) : nullptr;
      const int k = conv->kernel_size();
      const Conv2dParams cp = conv->conv_params();
      if (o.fold_batchnorm && bn) {
        const std::string q = std::to_string(i + 1) + ".";
        const StTensor& wt = w.state(p + "weight");
        std::vector<float> weight = floats_of(wt);
        const std::vector<float> gamma = floats_of(w.state(q + "weight")),
                                 beta = floats_of(w.state(q + "bias")),
                                 mean = floats_of(w.state(q + "running_mean")),
                                 var = floats_of(w.state(q + "running_var"));
        const int out_c = conv->out_channels();
        std::vector<float> bias(out_c, 0.0f);
        if (conv->bias()) bias = floats_of(w.state(p + "bias"));
        const size_t per = weight.size() / out_c;
        for (int c = 0; c < out_c; ++c) {
          const double s = double(gamma[c]) / std::sqrt(double(var[c]) + bn->eps());
          for (size_t j = 0; j < per; ++j)
            weight[c * per + j] = static_cast<float>(s * weight[c * per + j]);
          bias[c] = static_cast<float>(s * (double(bias[c]) - mean[c]) + beta[c]);
        }
        n = w.add_node("Conv", i,
                       {cur, w.add_initializer(p + "weight", wt.shape, weight),
                        w.add_initializer(p + "bias", {out_c}, bias)});
      } else {
        std::vector<std::string> in = {cur, w.add_state(p + "weight")};
        if (conv->bias()) in.push_back(w.add_state(p + "bias"));
        n = w.add_node("Conv", i, in);
      }
      set_ints(n, "kernel_shape", {k, k});
      set_ints(n, "strides", {cp.stride_h, cp.stride_w});
      set_ints(n, "pads", {cp.pad_h, cp.pad_w, cp.pad_h, cp.pad_w});
      set_ints(n, "dilations", {1, 1});
      set_int(n, "group", 1);
      if (o.fold_batchnorm && bn) ++i;  // the batchnorm is inside the convolution now
    } else if (auto* bn = dynamic_cast<BatchNorm2d*>(&layer)) {
      n = w.add_node("BatchNormalization", i,
                     {cur, w.add_state(p + "weight"), w.add_state(p + "bias"),
                      w.add_state(p + "running_mean"), w.add_state(p + "running_var")});
      set_float(n, "epsilon", bn->eps());
      // ONNX keeps `momentum` of the running statistic, PyTorch (and Kiln) of the new batch's.
      set_float(n, "momentum", 1.0 - bn->momentum());
    } else if (auto* act = dynamic_cast<LeakyReLU*>(&layer)) {
      n = w.add_node("LeakyRelu", i, {cur});
      set_float(n, "alpha", act->negative_slope());
    } else if (auto* pool = dynamic_cast<MaxPool2d*>(&layer)) {
      n = w.add_node("MaxPool", i, {cur});
      const Pool2dParams pp = pool->pool_params();
      set_ints(n, "kernel_shape", {pp.kh, pp.kw});
      set_ints(n, "strides", {pp.stride_h, pp.stride_w});
      set_ints(n, "pads", {pp.pad_h, pp.pad_w, pp.pad_h, pp.pad_w});
    } else if (auto* drop = dynamic_cast<Dropout*>(&layer)) {
      if (o.fold_batchnorm) continue;  // the identity at inference: deployment drops it
      n = w.add_node("Dropout", i,
                     {cur, w.add_initializer(p + "ratio", {}, {static_cast<float>(drop->p())})});
    } else if (layer.kind() == "Flatten") {
      n = w.add_node("Flatten", i, {cur});
      set_int(n, "axis", 1);
    } else if (auto* lin = dynamic_cast<Linear*>(&layer)) {
      std::vector<std::string> in = {cur, w.add_state(p + "weight")};
      if (lin->bias()) in.push_back(w.add_state(p + "bias"));
      n = w.add_node("Gemm", i, in);
      set_int(n, "transB", 1);  // x [N][in] times weight [out][in] transposed
    } else {
      KILN_FAIL("ONNX export: layer ", i, " (", layer.describe(),
                ") has no ONNX export; Kiln exports ", kSupportedLayers);
    }
    cur = n->output(0);
  }
  // The last node writes the graph's output, "logits".
  KILN_CHECK(graph->node_size() > 0, "ONNX export: the model has no layers");
  graph->mutable_node(graph->node_size() - 1)->set_output(0, "logits");
  set_value_info(graph->add_output(), "logits", {"batch"}, {0, out[1]});

  auto meta = [&](const std::string& key, const std::string& value) {
    ::onnx::StringStringEntryProto* e = model.add_metadata_props();
    e->set_key(key);
    e->set_value(value);
  };
  meta("kiln.input", nlohmann::json{{"name", "input"},
                                    {"layout", "NCHW"},
                                    {"shape", {"batch", o.channels, o.height, o.width}},
                                    {"dtype", "float32"},
                                    {"range", "pixel / 255, in [0, 1]"}}
                         .dump());
  if (!o.class_names.empty()) meta("kiln.class_names", nlohmann::json(o.class_names).dump());
  meta("kiln.batchnorm", o.fold_batchnorm ? "folded" : "nodes");
  for (const auto& [key, value] : o.metadata)
    if (key != "kiln.input" && key != "kiln.class_names" && key != "kiln.batchnorm")
      meta(key, value);

  std::string bytes;
  KILN_CHECK(model.SerializeToString(&bytes),
             "ONNX export: the model does not serialise (over protobuf's 2 GB limit)");
  check_onnx(bytes, "the exported model");
  return bytes;
}

void save_onnx(const std::string& path, Sequential& net, const OnnxExportOptions& options) {
  write_file_atomic(path, export_onnx(net, options));
}

void check_onnx(std::string_view bytes, const std::string& source) {
  ::onnx::ModelProto model;
  KILN_CHECK(bytes.size() < (size_t(1) << 31) &&
                 model.ParseFromArray(bytes.data(), static_cast<int>(bytes.size())),
             "ONNX check of ", source, ": not a readable ONNX model");
  try {
    ::onnx::checker::check_model(model);
    ::onnx::ShapeInferenceOptions strict(/*check_type=*/true, /*error_mode=*/1,
                                         /*enable_data_propagation=*/true);
    ::onnx::shape_inference::InferShapes(model, ::onnx::OpSchemaRegistry::Instance(), strict);
  } catch (const std::exception& e) {
    KILN_FAIL("ONNX check of ", source, " failed: ", e.what());
  }
}

}  // namespace kiln
