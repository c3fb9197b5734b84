// tests/layers/test_checkpoint_read.cpp — the checkpoint readers against hostile files: every rule
// of the safetensors specification with a crafted file that breaks it, FIFOs and devices, and the
// model and training-state loaders checking dtypes and sizes before they copy.
#include <catch2/catch.hpp>

#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "layers/fer_cnn.h"
#include "optim/checkpoint.h"
#include "optim/fer_cnn_checkpoint.h"
#include "tests/support/tensors.h"
#include "tests/support/temp_dir.h"

using namespace kiln;
using Catch::Contains;
namespace fs = std::filesystem;
using kiln::test::TempDir;

namespace {

// A safetensors file from its header text and data bytes.
std::string craft(const std::string& header, const std::string& data = "") {
  std::string out(8, '\0');
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[size_t(i)] = char((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// parse_safetensors(bytes) must throw, its message naming the file and containing `part`.
void refused(const std::string& bytes, const std::string& part) {
  INFO("expected: " << part);
  CHECK_THROWS_WITH(parse_safetensors(bytes, "crafted.safetensors"),
                    Contains("crafted.safetensors") && Contains(part));
}

const std::string k8(8, '\1');  // 8 data bytes

}  // namespace

TEST_CASE("safetensors: a valid crafted file reads exactly, in any header order",
          "[cpu][checkpoint]") {
  std::string data(12, '\0');
  for (int i = 0; i < 12; ++i) data[size_t(i)] = char(i);
  // b's bytes come first in the data although the header lists a first.
  const StFile f =
      parse_safetensors(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[4,12]},)"
                              R"("b":{"dtype":"U8","shape":[2,2],"data_offsets":[0,4]},)"
                              R"("z":{"dtype":"I64","shape":[0],"data_offsets":[4,4]},)"
                              R"("__metadata__":{"k":"v"}})",
                              data),
                        "ok");
  REQUIRE(f.tensors.size() == 3);
  CHECK(f.tensors[0].name == "a");
  CHECK(f.tensors[0].bytes == std::vector<uint8_t>{4, 5, 6, 7, 8, 9, 10, 11});
  CHECK(f.tensors[1].bytes == std::vector<uint8_t>{0, 1, 2, 3});
  CHECK(f.tensors[2].bytes.empty());
  CHECK(f.metadata.at("k") == "v");
}

TEST_CASE("safetensors: every rule of the specification is checked", "[cpu][checkpoint]") {
  const std::string t = R"("t":{"dtype":"F32","shape":[2],"data_offsets":[0,8]})";
  SECTION("header length") {
    refused("1234567", "only 7 bytes");
    refused(craft("{}").substr(0, 8) + "{", "exceeds the file");
    std::string big = craft(std::string(100'000'001, ' '));
    big[8] = '{';
    refused(big, "limit of 100000000");
  }
  SECTION("JSON") {
    refused(craft("{\"t\":"), "not valid JSON");
    refused(craft("[1,2]"), "not a JSON object");
    refused(craft("{" + t + "," + t + "}", k8), "the key 't' twice");
    refused(craft(R"({"__metadata__":{"a":"1","a":"2"}})"), "the key 'a' twice");
  }
  SECTION("entries") {
    refused(craft(R"({"t":[1]})"), "exactly dtype, shape and data_offsets");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2]}})", k8), "exactly dtype");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,8],"x":1}})", k8),
            "exactly dtype");
    refused(craft(R"({"t":{"dtype":7,"shape":[2],"data_offsets":[0,8]}})", k8), "not a string");
    refused(craft(R"({"t":{"dtype":"Q7","shape":[2],"data_offsets":[0,8]}})", k8),
            "unknown dtype 'Q7'");
    refused(craft(R"({"t":{"dtype":"F32","shape":2,"data_offsets":[0,8]}})", k8), "not an array");
    for (const char* dim : {"-2", "2.5", "\"2\"", "true"})
      refused(craft(std::string(R"({"t":{"dtype":"F32","shape":[)") + dim +
                        R"(],"data_offsets":[0,8]}})",
                    k8),
              "not a non-negative integer");
    // Regression: the shape product overflowed int64 (UBSan).
    refused(
        craft(R"({"t":{"dtype":"F32","shape":[4611686018427387904,4],"data_offsets":[0,8]}})", k8),
        "overflows 64 bits");
    for (const char* off : {"[0]", "[0,8,8]", "[-1,8]", "[0,8.0]", "\"0,8\""})
      refused(
          craft(std::string(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":)") + off + "}}", k8),
          "two non-negative integers");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", k8), "outside");
    refused(craft(R"({"t":{"dtype":"F32","shape":[2],"data_offsets":[0,16]}})", k8), "outside");
    refused(craft(R"({"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}})", k8), "need 12");
  }
  SECTION("the tensors tile the data") {
    const std::string k12(12, '\2');
    refused(craft(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                  R"("b":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
                  k12),
            "must not overlap");
    refused(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},)"
                  R"("b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
                  k12),
            "must be contiguous");
    refused(craft(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", k8),
            "starts at byte 4");
    refused(craft("{" + t + "}", k8 + "extra"), "extra bytes");
  }
  SECTION("metadata") {
    refused(craft(R"({"__metadata__":[1]})"), "__metadata__ is not a JSON object");
    refused(craft(R"({"__metadata__":{"n":3}})"), "metadata 'n' is not a string");
  }
}

TEST_CASE("checkpoints: only regular files are read", "[cpu][checkpoint]") {
  const TempDir tmp("ckread_fifo");
  const fs::path& dir = tmp.path();
  const std::string fifo = (dir / "m.safetensors").string();
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  // Regression: a FIFO passed as a checkpoint blocked for ever.
  CHECK_THROWS_WITH(read_safetensors(fifo), Contains("FIFO") && Contains("not a regular file"));
  CHECK_THROWS_WITH(read_safetensors_metadata(fifo), Contains("FIFO"));
  CHECK_THROWS_WITH(read_safetensors("/dev/zero"), Contains("character device"));
  CHECK_THROWS_WITH(read_safetensors(dir.string()), Contains("directory"));
  fs::remove_all(dir);
}

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
  fs::remove_all(dir);
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
