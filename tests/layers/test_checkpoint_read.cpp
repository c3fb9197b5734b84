// tests/layers/test_checkpoint_read.cpp — the model and training-state loaders against hostile
// files: they check dtypes, sizes and values before they copy (the safetensors format itself is
// tested in tests/io/test_safetensors.cpp).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <utility>
#include <nlohmann/json.hpp>

#include "layers/fer_cnn.h"
#include "layers/loss.h"
#include "optim/checkpoint.h"
#include "optim/fer_cnn_checkpoint.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"
#include "tests/support/temp_dir.h"

using namespace kiln;
using Catch::Contains;
namespace fs = std::filesystem;
using kiln::test::TempDir;

TEST_CASE("the model loader checks bytes against dtype and shape before copying",
          "[cpu][checkpoint]") {
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
  StFile file = model_state_dict(*net);
  const std::vector<double> before = test::values(net->flat_params());
  file.tensors[0].bytes.resize(file.tensors[0].bytes.size() / 2);  // a hand-built, short tensor
  CHECK_THROWS_WITH(load_model_state_dict(*net, file, "hand-built"),
                    Contains("'0.weight'") && Contains("bytes"));
  CHECK(test::values(net->flat_params()) == before);
}

TEST_CASE("the training-state loader checks dtypes, sizes and values before changing anything",
          "[cpu][checkpoint]") {
  const TempDir tmp("ckread_state");
  const fs::path& dir = tmp.path();
  const std::string path = (dir / "s.safetensors").string();
  auto net = make_fer_cnn(1, 32, 32, 7, 1.0 / 16, 3);
  Adam adam(net->flat_params(), net->flat_grads());
  save_training_state(path, adam, *net);
  const StFile good = read_safetensors(path);
  auto restore = [&](const StFile& f) {
    Adam fresh(net->flat_params(), net->flat_grads());
    return restore_training_state(f, "s", fresh, *net);
  };
  CHECK_NOTHROW(restore(good));
  SECTION("a non-F32 optimizer tensor") {
    // Regression: an I32 (or U8) moment was read as floats past the end of its bytes.
    for (const char* dtype : {"I32", "U8", "F64"}) {
      StFile f = good;
      StTensor& m = f.tensors[0];
      m.dtype = dtype;
      CHECK_THROWS_WITH(restore(f), Contains(m.name.substr(10)) && Contains("expected F32"));
    }
  }
  SECTION("a tensor's bytes do not match its shape") {
    StFile f = good;
    f.tensors[0].bytes.pop_back();
    CHECK_THROWS_WITH(restore(f), Contains("bytes"));
  }
  SECTION("malformed state values") {
    auto with = [&](const std::function<void(nlohmann::json&)>& change) {
      StFile f = good;
      nlohmann::json state = nlohmann::json::parse(f.metadata.at("kiln.optimizer_state"));
      change(state);
      f.metadata.at("kiln.optimizer_state") = state.dump();
      return f;
    };
    CHECK_THROWS_WITH(restore(with([](nlohmann::json& s) { s["steps"] = -3; })), Contains("steps"));
    CHECK_THROWS_WITH(restore(with([](nlohmann::json& s) { s["steps"] = "0"; })),
                      Contains("steps"));
    CHECK_THROWS_WITH(restore(with([](nlohmann::json& s) { s["lr"] = "x"; })), Contains("lr"));
    CHECK_THROWS_WITH(restore(with([](nlohmann::json& s) { s["lr"] = -1.0; })), Contains("lr"));
    CHECK_THROWS_WITH(restore(with([](nlohmann::json& s) { s["counters"] = 1; })),
                      Contains("counters"));
    CHECK_THROWS_WITH(restore(with([](nlohmann::json& s) {
                        for (auto& c : s["counters"]) c = -1;
                      })),
                      Contains("counter") && Contains("non-negative"));
    StFile f = good;
    f.metadata.at("kiln.optimizer_state") = "[1";
    CHECK_THROWS_WITH(restore(f), Contains("not valid JSON"));
  }
  SECTION("a failing last check leaves the run byte for byte as it was") {
    auto train_step = [&](uint64_t seed) {
      SoftmaxCrossEntropy xent;
      const Tensor x = test::random_tensor<float>({4, 32, 32, 1}, seed, Device::cpu, 0.0, 1.0);
      const Tensor y = Tensor::from_vector<int32_t>({4}, {int32_t(seed % 7), 1, 2, 3});
      net->zero_grad();
      xent.forward(net->forward(x, Mode::train), y);
      net->backward(xent.backward(), {.need_dx = false});
      adam.step();
    };
    // Everything a restore writes: the optimizer's state, steps and lr; the model's weights,
    // buffers and counters.
    struct Run {
      std::vector<std::vector<double>> floats;
      std::vector<uint64_t> ints;
      bool operator==(const Run&) const = default;
    };
    auto snapshot = [&] {
      Run r;
      r.floats.push_back(test::values(net->flat_params()));
      for (OptimizerStateRef& s : adam.state()) r.floats.push_back(test::values(*s.tensor));
      r.floats.push_back({adam.lr()});
      r.ints.push_back(uint64_t(adam.steps()));
      for (BufferRef& b : net->buffers()) {
        if (b.tensor)
          r.floats.push_back(test::values(*b.tensor));
        else
          r.ints.push_back(uint64_t(*b.scalar));
      }
      for (CounterRef& c : net->counters()) r.ints.push_back(*c.value);
      return r;
    };
    train_step(1);
    train_step(2);
    save_training_state(path, adam, *net);  // replaces the untrained state
    const Run saved = snapshot();
    train_step(3);  // the run moves on: every part of the snapshot changes
    adam.set_lr(5e-4);
    const Run now = snapshot();
    REQUIRE(now.floats.size() == saved.floats.size());
    REQUIRE(now.ints.size() == saved.ints.size());
    for (size_t i = 0; i < now.floats.size(); ++i) CHECK(now.floats[i] != saved.floats[i]);
    CHECK(now.ints[0] != saved.ints[0]);          // steps
    CHECK(now.ints.back() != saved.ints.back());  // the last dropout counter

    const StFile state = read_safetensors(path);
    // The checks run: metadata, counters, the model's state_dict (whose last checks are its last
    // buffer, then tensors the model does not have), then the optimizer's tensors, the last
    // check of all being the last state tensor's dtype.
    const std::string last_buffer = "model." + net->buffers().back().name;
    StFile extra = state;
    extra.tensors.push_back({"model.31.weight", "F32", {1}, std::vector<uint8_t>(4)});
    StFile bad_buffer = state;
    auto last = std::find_if(bad_buffer.tensors.begin(), bad_buffer.tensors.end(),
                             [&](const StTensor& t) { return t.name == last_buffer; });
    REQUIRE(last != bad_buffer.tensors.end());
    REQUIRE(last->dtype == "I64");  // num_batches_tracked
    last->dtype = "F64";
    StFile bad_state = state;
    const std::string last_state = "optimizer." + adam.state().back().name;
    auto st = std::find_if(bad_state.tensors.begin(), bad_state.tensors.end(),
                           [&](const StTensor& t) { return t.name == last_state; });
    REQUIRE(st != bad_state.tensors.end());
    REQUIRE(st->dtype == "F32");
    st->dtype = "F64";
    st->bytes.resize(st->bytes.size() * 2);
    for (const auto& [file, part] :
         {std::pair{&extra, std::string("'31.weight'")},
          std::pair{&bad_buffer, std::string("0-d I64")},
          std::pair{&bad_state, "'" + adam.state().back().name + "' is F64, expected F32"}}) {
      INFO(part);
      CHECK_THROWS_WITH(restore_training_state(*file, "s", adam, *net),
                        Contains("'s'") && Contains(part));
      CHECK(snapshot() == now);
    }
    // The good file restores every part of it.
    restore_training_state(state, "s", adam, *net);
    CHECK(snapshot() == saved);
  }
}

TEST_CASE("fer_cnn_weight_shapes is the built network's weights", "[cpu][checkpoint]") {
  for (const FerCnnConfig& c :
       {FerCnnConfig{1, 48, 48, 7, 1.0 / 16}, FerCnnConfig{3, 64, 40, 5, 0.1}}) {
    auto net = make_fer_cnn(c);
    const StFile file = model_state_dict(*net);
    const auto shapes = fer_cnn_weight_shapes(c);
    CHECK(shapes.size() == 8);
    for (const auto& [name, shape] : shapes) {
      INFO(name);
      REQUIRE(file.find(name) != nullptr);
      CHECK(file.find(name)->shape == shape);
    }
  }
}

TEST_CASE("a fer_cnn model description is checked against the file before a model is built",
          "[cpu][checkpoint]") {
  const FerCnnConfig small{1, 32, 32, 7, 1.0 / 16};
  auto net = make_fer_cnn(small);
  StFile header = model_state_dict(*net);
  for (StTensor& t : header.tensors) t.bytes.clear();  // as read_safetensors_header gives it
  auto describe = [&](const std::string& model) {
    StFile h = header;
    h.metadata["kiln.model"] = model;
    return h;
  };
  const std::string good =
      R"({"architecture":"fer_cnn","channels":1,"height":32,"width":32,"classes":7,)"
      R"("width_multiplier":0.0625,"dropout":0.25})";
  const FerCnnCheckpointInfo info = fer_cnn_info_from_header(describe(good), "c");
  CHECK(info.config == small);
  CHECK(info.class_names.size() == 7);
  auto refused = [&](const std::string& from, const std::string& to, const std::string& part) {
    std::string m = good;
    REQUIRE(m.find(from) != std::string::npos);
    m.replace(m.find(from), from.size(), to);
    INFO(m);
    CHECK_THROWS_WITH(fer_cnn_info_from_header(describe(m), "c"), Contains(part));
  };
  // Regression: these built networks of gigabytes before any check.
  refused("\"width_multiplier\":0.0625", "\"width_multiplier\":16", "does not match the weights");
  refused("\"height\":32", "\"height\":4096", "does not match the weights");
  refused("\"classes\":7", "\"classes\":100000", "does not match the weights");
  refused("\"width_multiplier\":0.0625", "\"width_multiplier\":1000", "allowed range");
  refused("\"height\":32", "\"height\":100000", "allowed range 32..4096");
  refused("\"classes\":7", "\"classes\":2000000000", "allowed range 2..100000");
  refused("\"channels\":1", "\"channels\":2", "channels 2");
  refused("\"channels\":1", "\"channels\":1.5", "must be an integer");
  refused("\"dropout\":0.25", "\"dropout\":1", "dropout 1");
  refused("\"fer_cnn\"", "\"resnet\"", "'resnet' model");
  CHECK_THROWS_WITH(fer_cnn_info_from_header(describe("{"), "c"), Contains("not valid JSON"));
  StFile none = header;
  CHECK_THROWS_WITH(fer_cnn_info_from_header(none, "c"), Contains("no fer_cnn model description"));
}
