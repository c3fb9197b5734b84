// tests/fuzz/make_corpus.cpp — writes the fuzzers' seed corpus (tests/fuzz/corpus/<fuzzer>/):
// a few small valid files of each format, written by Kiln's own writers, and edge cases next to
// them. The files are kept in the repository; rerun this (docs/fuzzing.md) when a format changes.
//   make_corpus tests/fuzz/corpus
#include <stb/stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "onnx/kiln_onnx.h"
#include "tests/fuzz/harness.h"

namespace fs = std::filesystem;

namespace {

void put(const fs::path& p, const std::string& bytes) {
  fs::create_directories(p.parent_path());
  std::ofstream(p, std::ios::binary) << bytes;
}

std::string image(const char* format, int w, int h, int c) {
  std::vector<uint8_t> px(size_t(w) * h * c);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 37 % 256);
  std::string out;
  auto sink = [](void* ctx, void* data, int n) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(n));
  };
  const std::string f = format;
  if (f == "png") stbi_write_png_to_func(sink, &out, w, h, c, px.data(), w * c);
  if (f == "bmp") stbi_write_bmp_to_func(sink, &out, w, h, c, px.data());
  if (f == "jpg") stbi_write_jpg_to_func(sink, &out, w, h, c, px.data(), 90);
  return out;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: make_corpus DIR (tests/fuzz/corpus)\n");
    return 2;
  }
  const fs::path out = argv[1];
  // CSV: 2x2 images; Usage splits, no Usage column, RFC 4180 quoting and CRLF, bad rows.
  const fs::path csv = out / "fuzz_fer_csv";
  put(csv / "splits.csv",
      "emotion,pixels,Usage\n0,1 2 3 4,Training\n3,255 0 9 8,PublicTest\n6,7 7 7 7,PrivateTest\n");
  put(csv / "no_usage.csv", "pixels,emotion\n10 20 30 40,1\n50 60 70 80,2\n");
  put(csv / "quoted.csv",
      "\"emotion\",\"pixels\",\"Usage\"\r\n\"4\",\"1 2 3 4\",\"Training\"\r\n5,\"9 9\n9 9\","
      "\"Train\"\"ing\"\r\n");
  put(csv / "bad_rows.csv",
      "emotion,pixels,Usage\n9,1 2 3 4,Training\n1,1 2 3,Training\n2,\"1 2 3 4,Training\n");
  // Images: each format stb_image reads that Kiln's tests write, gray to RGBA.
  const fs::path img = out / "fuzz_image";
  put(img / "gray.png", image("png", 4, 4, 1));
  put(img / "rgba.png", image("png", 3, 2, 4));
  put(img / "rgb.bmp", image("bmp", 3, 3, 3));
  put(img / "gray.jpg", image("jpg", 8, 8, 1));
  // safetensors: hand-made edge cases and a real model; the model and state loaders get real
  // Kiln files of a tiny fer_cnn (width 1/1024: every hidden width is 1).
  const fs::path st = out / "fuzz_safetensors";
  auto craft = [](const std::string& header, const std::string& data) {
    std::string s(8, '\0');
    for (int i = 0; i < 8; ++i) s[size_t(i)] = char((header.size() >> (8 * i)) & 0xff);
    return s + header + data;
  };
  put(st / "empty.safetensors", craft("{}", ""));
  put(st / "dtypes.safetensors",
      craft(
          R"({"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
          R"("b":{"dtype":"I64","shape":[],"data_offsets":[8,16]},)"
          R"("c":{"dtype":"U8","shape":[1,3],"data_offsets":[16,19]},)"
          R"("z":{"dtype":"F64","shape":[0,4],"data_offsets":[19,19]}})",
          std::string(19, '\x11')));
  const kiln::FerCnnConfig& tiny = kiln::fuzz::kTinyFerCnn;
  kiln::Sequential* net = &kiln::fuzz::tiny_fer_cnn();
  const nlohmann::json model = {
      {"architecture", "fer_cnn"}, {"channels", tiny.channels},
      {"height", tiny.height},     {"width", tiny.width},
      {"classes", tiny.classes},   {"width_multiplier", tiny.width_multiplier},
      {"dropout", tiny.dropout}};
  const fs::path ms = out / "fuzz_model_state";
  fs::create_directories(ms);
  kiln::save_model(
      (ms / "tiny.safetensors").string(), *net,
      {{"kiln.model", model.dump()}, {"kiln.class_names", R"(["a","b","c","d","e","f","g"])"}});
  put(st / "model.safetensors", file_bytes(ms / "tiny.safetensors"));
  const fs::path ts = out / "fuzz_training_state";
  fs::create_directories(ts);
  kiln::Adam adam(net->flat_params(), net->flat_grads());
  kiln::save_training_state((ts / "adam.train.safetensors").string(), adam, *net,
                            {{"kiln.epochs_done", "1"}});
  kiln::Sgd sgd(net->flat_params(), net->flat_grads(), kiln::SgdOptions{.momentum = 0.9f});
  kiln::save_training_state((ts / "sgd.train.safetensors").string(), sgd, *net);
  // ONNX: the tiny fer_cnn with batchnorm folded (3.4 KB), and one block of each layer with
  // every operator as its node (the unfolded tiny fer_cnn is over the 4 KB input limit).
  const fs::path ox = out / "fuzz_onnx";
  fs::create_directories(ox);
  kiln::OnnxExportOptions onnx{.channels = tiny.channels,
                               .height = tiny.height,
                               .width = tiny.width,
                               .fold_batchnorm = true,
                               .class_names = {"a", "b", "c", "d", "e", "f", "g"}};
  kiln::save_onnx((ox / "tiny_folded.onnx").string(), *net, onnx);
  kiln::Sequential block;
  block.emplace<kiln::Conv2d>(1, 2, 3, 1, 1);
  block.emplace<kiln::BatchNorm2d>(2);
  block.emplace<kiln::LeakyReLU>(0.01);
  block.emplace<kiln::MaxPool2d>(2, 2);
  block.emplace<kiln::Dropout>(0.25);
  block.emplace<kiln::Flatten>();
  block.emplace<kiln::Linear>(2 * 4 * 4, 3);
  block.init(1);
  kiln::save_onnx((ox / "block.onnx").string(), block,
                  {.channels = 1, .height = 8, .width = 8, .class_names = {"x", "y", "z"}});
  return 0;
}
