// tests/onnx/test_onnx.cpp — ONNX export and import (onnx/kiln_onnx.h, docs/onnx.md): the export
// passes the full checker; Kiln -> ONNX -> Kiln gives the same weights and logits bit for bit; the
// folded export's logits are within the derived tolerance (tests/onnx/test_model.h); dynamo-style
// graphs (MatMul + Add, Reshape) at opsets 13-21 import and predict the same; and every refusal
// names the node, the operator and what Kiln supports. PyTorch's and ONNX Runtime's side:
// tests/onnx/torch_onnx.py and ort_onnx.py.
#include <onnx/onnx_pb.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "core/error.h"
#include "onnx/kiln_onnx.h"
#include "optim/checkpoint.h"
#include "tests/onnx/test_model.h"
#include "tests/support/compare.h"

using namespace kiln;
using Catch::Matchers::Contains;
using kiln::test::kOnnxC;
using kiln::test::kOnnxH;
using kiln::test::kOnnxW;

namespace {

OnnxExportOptions options(bool fold) {
  OnnxExportOptions o;
  o.channels = kOnnxC;
  o.height = kOnnxH;
  o.width = kOnnxW;
  o.fold_batchnorm = fold;
  o.class_names = {"a", "b", "c", "d", "e", "f", "g"};
  o.metadata = {{"kiln.epoch", "3"}};
  return o;
}

::onnx::ModelProto parse(const std::string& bytes) {
  ::onnx::ModelProto m;
  REQUIRE(m.ParseFromString(bytes));
  return m;
}

std::string serialise(const ::onnx::ModelProto& m) {
  std::string s;
  REQUIRE(m.SerializeToString(&s));
  return s;
}

std::vector<float> logits(Sequential& net, const Tensor& x) {
  return net.forward(x, Mode::eval).to_vector<float>();
}

std::vector<std::string> kinds(Sequential& net) {
  std::vector<std::string> k;
  for (int i = 0; i < net.size(); ++i) k.push_back(net[i].kind());
  return k;
}

std::string metadata(const ::onnx::ModelProto& m, const std::string& key) {
  for (const auto& e : m.metadata_props())
    if (e.key() == key) return e.value();
  return "";
}

// The folded export rewritten as PyTorch >= 2.9's dynamo exporter writes a Linear and the
// flattening: MatMul(x, W^T) + Add(b) instead of Gemm, Reshape(x, [0, -1]) instead of Flatten (the
// shape as an initializer, or as a Constant node when `constant_shape`), at `opset`.
::onnx::ModelProto dynamo_style(const std::string& folded, int opset, bool constant_shape) {
  const ::onnx::ModelProto src = parse(folded);
  ::onnx::ModelProto m = src;
  m.clear_opset_import();
  m.add_opset_import()->set_version(opset);
  ::onnx::GraphProto* g = m.mutable_graph();
  g->clear_node();
  std::map<std::string, const ::onnx::TensorProto*> init;
  for (const auto& t : src.graph().initializer()) init[t.name()] = &t;
  for (const ::onnx::NodeProto& n : src.graph().node()) {
    if (n.op_type() == "Flatten") {
      if (constant_shape) {
        ::onnx::NodeProto* c = g->add_node();
        c->set_op_type("Constant");
        c->add_output(n.name() + "_shape");
        ::onnx::AttributeProto* a = c->add_attribute();
        a->set_name("value");
        a->set_type(::onnx::AttributeProto::TENSOR);
        a->mutable_t()->set_data_type(::onnx::TensorProto::INT64);
        a->mutable_t()->add_dims(2);
        a->mutable_t()->add_int64_data(0);
        a->mutable_t()->add_int64_data(-1);
      } else {
        ::onnx::TensorProto* t = g->add_initializer();
        t->set_name(n.name() + "_shape");
        t->set_data_type(::onnx::TensorProto::INT64);
        t->add_dims(2);
        const int64_t shape[2] = {-1, 256};  // [-1, C*H*W]: 2x2x64 after the convolutions
        t->set_raw_data(shape, sizeof shape);
      }
      ::onnx::NodeProto* r = g->add_node();
      r->set_op_type("Reshape");
      r->set_name(n.name());
      r->add_input(n.input(0));
      r->add_input(n.name() + "_shape");
      r->add_output(n.output(0));
    } else if (n.op_type() == "Gemm") {
      const ::onnx::TensorProto& w = *init.at(n.input(1));
      const int64_t out = w.dims(0), in = w.dims(1);
      std::vector<float> wt(size_t(out * in));
      const float* wv = reinterpret_cast<const float*>(w.raw_data().data());
      for (int64_t o = 0; o < out; ++o)
        for (int64_t i = 0; i < in; ++i) wt[size_t(i * out + o)] = wv[o * in + i];
      ::onnx::TensorProto* t = g->add_initializer();
      t->set_name(n.input(1) + "_t");
      t->set_data_type(::onnx::TensorProto::FLOAT);
      t->add_dims(in);
      t->add_dims(out);
      t->set_raw_data(wt.data(), wt.size() * 4);
      ::onnx::NodeProto* mm = g->add_node();
      mm->set_op_type("MatMul");
      mm->set_name(n.name() + "/MatMul");
      mm->add_input(n.input(0));
      mm->add_input(t->name());
      mm->add_output(n.name() + "/MatMul_output_0");
      ::onnx::NodeProto* add = g->add_node();
      add->set_op_type("Add");
      add->set_name(n.name() + "/Add");
      add->add_input(n.input(2));  // the bias first, as a check that either order is read
      add->add_input(mm->output(0));
      add->add_output(n.output(0));
    } else {
      *g->add_node() = n;
    }
  }
  return m;
}

// Imports the mutated model and expects a kiln::Error containing every one of `parts`.
void expect_refused(const std::string& bytes, const std::function<void(::onnx::ModelProto&)>& edit,
                    const std::vector<std::string>& parts) {
  ::onnx::ModelProto m = parse(bytes);
  edit(m);
  const std::string edited = serialise(m);
  try {
    import_onnx(edited, "edited.onnx");
    FAIL("the edited model was imported; expected an error with '" << parts[0] << "'");
  } catch (const Error& e) {
    INFO("message: " << e.what());
    for (const std::string& p : parts) CHECK_THAT(e.what(), Contains(p));
  }
}

::onnx::NodeProto* first(::onnx::ModelProto& m, const std::string& op) {
  for (auto& n : *m.mutable_graph()->mutable_node())
    if (n.op_type() == op) return &n;
  FAIL("no " << op << " node");
  return nullptr;
}

void set_ints(::onnx::NodeProto* n, const std::string& name, std::vector<int64_t> v) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == name) {
      a.clear_ints();
      for (int64_t x : v) a.add_ints(x);
      return;
    }
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

void set_int(::onnx::NodeProto* n, const std::string& name, int64_t v) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == name) return a.set_i(v);
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(::onnx::AttributeProto::INT);
  a->set_i(v);
}

// Gives attribute `name` of node n (added without a value if absent) the type `type`.
void set_type(::onnx::NodeProto* n, const std::string& name,
              ::onnx::AttributeProto::AttributeType type) {
  for (auto& a : *n->mutable_attribute())
    if (a.name() == name) return a.set_type(type);
  ::onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(type);
}

::onnx::TensorProto* initializer(::onnx::ModelProto& m, const std::string& name) {
  for (auto& t : *m.mutable_graph()->mutable_initializer())
    if (t.name() == name) return &t;
  FAIL("no initializer " << name);
  return nullptr;
}

}  // namespace

TEST_CASE("ONNX export: opset 17, symbolic batch, NCHW input, metadata, full checker",
          "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  for (bool fold : {false, true}) {
    INFO("fold_batchnorm " << fold);
    const std::string bytes = export_onnx(*net, options(fold));
    REQUIRE_NOTHROW(check_onnx(bytes, "export"));
    const ::onnx::ModelProto m = parse(bytes);
    REQUIRE(m.opset_import_size() == 1);
    CHECK(m.opset_import(0).version() == 17);
    const auto& in = m.graph().input(0).type().tensor_type().shape();
    REQUIRE(in.dim_size() == 4);
    CHECK(in.dim(0).dim_param() == "batch");
    CHECK((in.dim(1).dim_value() == kOnnxC && in.dim(2).dim_value() == kOnnxH &&
           in.dim(3).dim_value() == kOnnxW));
    const auto& out = m.graph().output(0).type().tensor_type().shape();
    CHECK((out.dim(0).dim_param() == "batch" && out.dim(1).dim_value() == 7));
    CHECK(metadata(m, "kiln.class_names") == R"(["a","b","c","d","e","f","g"])");
    CHECK_THAT(metadata(m, "kiln.input"), Contains("\"layout\":\"NCHW\""));
    CHECK(metadata(m, "kiln.epoch") == "3");
    int bn = 0, dropout = 0, conv = 0;
    for (const auto& n : m.graph().node()) {
      bn += n.op_type() == "BatchNormalization";
      dropout += n.op_type() == "Dropout";
      conv += n.op_type() == "Conv";
    }
    CHECK(conv == 5);
    CHECK(bn == (fold ? 0 : 5));
    CHECK(dropout == (fold ? 0 : 5));
    CHECK(m.graph().node_size() == (fold ? 21 : 31));
  }
}

TEST_CASE("ONNX round trip: Kiln -> ONNX -> Kiln gives the same weights and logits bit for bit",
          "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  const Tensor x = test::onnx_test_input(4);
  const std::vector<float> want = logits(*net, x);
  OnnxModel back = import_onnx(export_onnx(*net, options(false)), "roundtrip.onnx");
  CHECK(back.opset == 17);
  CHECK((back.channels == kOnnxC && back.height == kOnnxH && back.width == kOnnxW));
  CHECK(back.classes == 7);
  CHECK(back.class_names == options(false).class_names);
  CHECK(back.producer == "kiln 0.1.0");
  CHECK(kinds(*back.net) == kinds(*net));
  CHECK(back.net->describe() == net->describe());
  // The state dicts (PyTorch's names and layouts, what checkpoints hold) are the same bytes.
  const StFile a = model_state_dict(*net), b = model_state_dict(*back.net);
  REQUIRE(a.tensors.size() == b.tensors.size());
  for (size_t i = 0; i < a.tensors.size(); ++i) {
    INFO(a.tensors[i].name);
    CHECK(a.tensors[i].name == b.tensors[i].name);
    CHECK(a.tensors[i].shape == b.tensors[i].shape);
    if (a.tensors[i].name.find("num_batches_tracked") == std::string::npos)
      CHECK(a.tensors[i].bytes == b.tensors[i].bytes);
  }
  const std::vector<float> got = logits(*back.net, x);
  REQUIRE(got.size() == want.size());
  CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);

  // PyTorch without constant folding names shared initializers through Identity nodes placed
  // before the chain: "1.weight" = Identity("shared"). The same network comes back.
  ::onnx::ModelProto m = parse(export_onnx(*net, options(false)));
  ::onnx::GraphProto* g = m.mutable_graph();
  for (auto& t : *g->mutable_initializer())
    if (t.name() == "1.weight") t.set_name("shared");
  ::onnx::GraphProto nodes;
  ::onnx::NodeProto* alias = nodes.add_node();
  alias->set_op_type("Identity");
  alias->set_name("Identity_0");
  alias->add_input("shared");
  alias->add_output("1.weight");
  for (const auto& n : g->node()) *nodes.add_node() = n;
  g->mutable_node()->Swap(nodes.mutable_node());
  const std::vector<float> aliased = logits(*import_onnx(serialise(m), "alias.onnx").net, x);
  CHECK(std::memcmp(aliased.data(), want.data(), want.size() * 4) == 0);
}

TEST_CASE("ONNX folded export: batchnorm-free network within the derived tolerance",
          "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  const Tensor x = test::onnx_test_input(5);
  const std::vector<float> want = logits(*net, x);
  OnnxModel folded = import_onnx(export_onnx(*net, options(true)), "folded.onnx");
  const std::vector<std::string> k = kinds(*folded.net);
  CHECK(k.size() == 21);
  CHECK(std::count(k.begin(), k.end(), "BatchNorm2d") == 0);
  CHECK(std::count(k.begin(), k.end(), "Dropout") == 0);
  const double eps = test::logit_eps(*net);
  const std::vector<float> got = logits(*folded.net, x);
  INFO("eps = " << eps << ", max |logit| = " << test::max_abs(want));
  test::expect_close("folded vs unfolded logits", got, want, 2 * eps * test::max_abs(want),
                     2 * eps);
  // Folding did change the weights (the statistics are not the defaults).
  CHECK(folded.net->flat_params().to_vector<float>() != net->flat_params().to_vector<float>());
}

TEST_CASE("ONNX import: dynamo-style MatMul+Add and Reshape graphs at opsets 13 to 21",
          "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  const Tensor x = test::onnx_test_input(3);
  const std::string folded = export_onnx(*net, options(true));
  const std::vector<float> want = logits(*import_onnx(folded, "folded.onnx").net, x);
  for (int opset = kOnnxImportMinOpset; opset <= kOnnxImportMaxOpset; ++opset) {
    for (bool constant_shape : {false, true}) {
      INFO("opset " << opset << ", shape as " << (constant_shape ? "Constant" : "initializer"));
      OnnxModel m = import_onnx(serialise(dynamo_style(folded, opset, constant_shape)), "dyn");
      CHECK(m.opset == opset);
      CHECK(kinds(*m.net) == kinds(*import_onnx(folded, "folded.onnx").net));
      // Same weights (MatMul's B is W^T, transposed back exactly): the same logits bit for bit.
      const std::vector<float> got = logits(*m.net, x);
      CHECK(std::memcmp(got.data(), want.data(), got.size() * 4) == 0);
    }
  }
}

TEST_CASE("ONNX import refuses an attribute of the wrong type, naming node, attribute and type",
          "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  const std::string bytes = export_onnx(*net, options(false));
  const std::string conv0 = "node 0 '/0/Conv' (Conv)";
  using A = ::onnx::AttributeProto;
  expect_refused(bytes, [](auto& m) { set_type(first(m, "Conv"), "group", A::FLOAT); },
                 {conv0, "attribute 'group' must be an INT"});
  expect_refused(bytes, [](auto& m) { set_type(first(m, "Conv"), "pads", A::INT); },
                 {conv0, "attribute 'pads' must be INTS"});
  expect_refused(bytes, [](auto& m) { set_type(first(m, "Conv"), "auto_pad", A::INTS); },
                 {conv0, "attribute 'auto_pad' must be a STRING"});
  expect_refused(bytes, [](auto& m) { set_type(first(m, "Gemm"), "alpha", A::INT); },
                 {"(Gemm)", "attribute 'alpha' must be a FLOAT"});
}

TEST_CASE("ONNX import refuses what Kiln cannot honour, naming node, operator and support",
          "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  const std::string bytes = export_onnx(*net, options(false));
  const std::string conv0 = "node 0 '/0/Conv' (Conv)";
  expect_refused(bytes, [](auto& m) { set_int(first(m, "Conv"), "group", 3); },
                 {conv0, "group = 3", "group 1"});
  expect_refused(bytes,
                 [](auto& m) {
                   set_ints(first(m, "Conv"), "dilations", {2, 2});
                 },
                 {conv0, "dilation 1"});
  expect_refused(bytes,
                 [](auto& m) {
                   set_ints(first(m, "Conv"), "pads", {1, 1, 0, 0});
                 },
                 {conv0, "symmetric padding"});
  expect_refused(bytes,
                 [](auto& m) {
                   auto* n = first(m, "Conv");
                   auto* a = n->add_attribute();
                   a->set_name("auto_pad");
                   a->set_type(::onnx::AttributeProto::STRING);
                   a->set_s("SAME_UPPER");
                 },
                 {conv0, "auto_pad = SAME_UPPER"});
  expect_refused(bytes, [](auto& m) { set_int(first(m, "MaxPool"), "ceil_mode", 1); },
                 {"(MaxPool)", "ceil_mode = 1"});
  // A limit of the layer itself (pooling windows of at most 256 elements), named with the node.
  expect_refused(bytes,
                 [](auto& m) {
                   set_ints(first(m, "MaxPool"), "kernel_shape", {17, 17});
                 },
                 {"node 3 '/3/MaxPool' (MaxPool): MaxPool2d"});
  expect_refused(bytes, [](auto& m) { set_int(first(m, "Gemm"), "frobnicate", 1); },
                 {"(Gemm)", "attribute 'frobnicate' is not supported", "alpha, beta, transA"});
  expect_refused(bytes,
                 [](auto& m) {
                   auto* g = m.mutable_graph();
                   auto* n = g->add_node();
                   n->set_op_type("Softmax");
                   n->set_name("probs");
                   n->add_input("logits");
                   n->add_output("probs");
                   g->mutable_output(0)->set_name("probs");
                 },
                 {"node 31 'probs' (Softmax)", "operator Softmax is not supported",
                  "Kiln imports Conv, BatchNormalization"});
  expect_refused(bytes,
                 [](auto& m) {
                   auto* n = first(m, "LeakyRelu");  // reads the batchnorm's output...
                   auto* add = m.mutable_graph()->add_node();
                   add->set_op_type("Add");  // ...which now has a second reader
                   add->add_input(n->input(0));
                   add->add_input(n->input(0));
                   add->add_output("skip");
                 },
                 {"(LeakyRelu)", "more than one node", "chain"});
  for (int opset : {12, 22})
    expect_refused(bytes, [opset](auto& m) { m.mutable_opset_import(0)->set_version(opset); },
                   {"opset " + std::to_string(opset), "Kiln imports opsets 13 to 21"});
  expect_refused(bytes,
                 [](auto& m) {
                   auto* t = initializer(m, "0.weight");
                   t->set_raw_data(t->raw_data().substr(0, 100));
                 },
                 {conv0, "'0.weight' has 100 bytes of data but its shape needs 864"});
  expect_refused(bytes, [](auto& m) { initializer(m, "0.weight")->set_name("renamed"); },
                 {conv0, "'0.weight' is neither an initializer nor a Constant"});
  expect_refused(
      bytes,
      [](auto& m) { initializer(m, "0.weight")->set_data_type(::onnx::TensorProto::DOUBLE); },
      {conv0, "is DOUBLE", "float32"});
  expect_refused(
      bytes,
      [](auto& m) { initializer(m, "0.weight")->set_data_location(::onnx::TensorProto::EXTERNAL); },
      {conv0, "external file"});
  expect_refused(bytes,
                 [](auto& m) {
                   auto* d = m.mutable_graph()
                                 ->mutable_input(0)
                                 ->mutable_type()
                                 ->mutable_tensor_type()
                                 ->mutable_shape()
                                 ->mutable_dim(2);
                   d->set_dim_param("height");
                 },
                 {"input 'input'", "fixed size"});
  expect_refused(bytes,
                 [](auto& m) {
                   initializer(m, "26.weight")->set_dims(1, 255);  // wrong features
                 },
                 {"node 26 '/26/Gemm' (Gemm)"});
}

TEST_CASE("ONNX import: truncated, corrupt and empty files give clear errors", "[onnx][cpu]") {
  auto net = test::make_onnx_test_net();
  const std::string bytes = export_onnx(*net, options(false));
  // Every prefix at ~300 cut points: a kiln::Error, or (a cut between top-level fields after the
  // graph) a model that imports; never another exception or a crash.
  int refused = 0, cuts = 0;
  for (size_t len = 0; len < bytes.size(); len += 1 + bytes.size() / 300, ++cuts) {
    try {
      import_onnx(std::string_view(bytes).substr(0, len), "cut.onnx");
    } catch (const Error&) {
      ++refused;
    }
  }
  CHECK(refused >= cuts - 2);
  CHECK_THROWS_WITH(import_onnx("", "empty.onnx"), Contains("has no graph"));
  CHECK_THROWS_WITH(import_onnx(std::string("\x0a\xff\xff\xff\xff\x0f garbage", 13), "junk.onnx"),
                    Contains("not a readable ONNX file"));
  CHECK_THROWS_WITH(load_onnx("/nonexistent/model.onnx"), Contains("does not exist"));
  CHECK_THROWS_WITH(load_onnx(std::filesystem::temp_directory_path().string()),
                    Contains("not a regular file"));
  CHECK(is_onnx_path("a/B.ONNX"));
  CHECK_FALSE(is_onnx_path("best.safetensors"));
}

TEST_CASE("ONNX import: initializers read by many nodes cannot blow the weights up",
          "[onnx][cpu]") {
  // input [batch, 1, 16, 16] -> Flatten -> Gemm(W) x `gemms`, one 256x256 W (256 KB) for all.
  auto model = [](int gemms) {
    ::onnx::ModelProto m;
    m.add_opset_import()->set_version(17);
    ::onnx::GraphProto* g = m.mutable_graph();
    auto value = [](::onnx::ValueInfoProto* v, const std::string& name, std::vector<int64_t> d) {
      v->set_name(name);
      auto* t = v->mutable_type()->mutable_tensor_type();
      t->set_elem_type(::onnx::TensorProto::FLOAT);
      for (int64_t x : d) t->mutable_shape()->add_dim()->set_dim_value(x);
    };
    value(g->add_input(), "x", {1, 1, 16, 16});
    ::onnx::TensorProto* w = g->add_initializer();
    w->set_name("W");
    w->set_data_type(::onnx::TensorProto::FLOAT);
    w->add_dims(256);
    w->add_dims(256);
    const std::vector<float> wv(256 * 256, 1.0f / 256);
    w->set_raw_data(wv.data(), wv.size() * 4);
    ::onnx::NodeProto* f = g->add_node();
    f->set_op_type("Flatten");
    f->add_input("x");
    f->add_output("f");
    std::string cur = "f";
    for (int i = 0; i < gemms; ++i) {
      ::onnx::NodeProto* n = g->add_node();
      n->set_op_type("Gemm");
      n->add_input(cur);
      n->add_input("W");
      n->add_output(cur = "g" + std::to_string(i));
    }
    value(g->add_output(), cur, {1, 256});
    return serialise(m);
  };
  // Four layers share W: 1 MB of weights from a 256 KB file, allowed (and they compute x).
  OnnxModel ok = import_onnx(model(4), "shared.onnx");
  CHECK(ok.net->size() == 5);
  // Twenty: 5 MB from 256 KB, refused.
  CHECK_THROWS_WITH(import_onnx(model(20), "shared.onnx"),
                    Contains("over 4 times the") && Contains("read by many nodes"));
}
