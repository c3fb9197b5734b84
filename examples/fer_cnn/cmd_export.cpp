// examples/fer_cnn/cmd_export.cpp — `fer_cnn export --checkpoint C --onnx M.onnx [--fold-bn]`:
// the checkpoint's network as an ONNX model for inference (onnx/kiln_onnx.h, docs/onnx.md), and
// load_onnx_network, which lets every subcommand that loads a model take `--checkpoint M.onnx`.
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "examples/fer_cnn/fer_cnn.h"
#include "layers/conv2d.h"
#include "optim/checkpoint.h"
#if KILN_FER_ONNX
#include "onnx/kiln_onnx.h"
#endif

namespace fer {

#if KILN_FER_ONNX
std::unique_ptr<kiln::Sequential> load_onnx_network(const std::string& path, ModelInfo* info) {
  kiln::OnnxModel m;
  try {
    m = kiln::load_onnx(path);
  } catch (const kiln::Error& e) {
    throw UsageError(e.what());
  }
  info->config = {m.channels, m.height, m.width, m.classes, 1.0, 0.25};
  // A Kiln export carries its checkpoint's model description; any other file (a PyTorch export)
  // gets the width multiplier its first convolution implies (the flagship's is 64 channels wide).
  const auto it = m.metadata.find("kiln.model");
  const nlohmann::json model =
      it == m.metadata.end() ? nlohmann::json() : nlohmann::json::parse(it->second, nullptr, false);
  if (model.is_object() && model.value("width_multiplier", 0.0) > 0) {
    info->config.width_multiplier = model.value("width_multiplier", 1.0);
    info->config.dropout = model.value("dropout", 0.25);
  } else {
    for (int i = 0; i < m.net->size(); ++i)
      if (auto* conv = dynamic_cast<kiln::Conv2d*>(&(*m.net)[i])) {
        info->config.width_multiplier = conv->out_channels() / 64.0;
        break;
      }
  }
  info->class_names = m.class_names;
  if (info->class_names.empty()) {
    if (m.classes == 7) {
      info->class_names = kiln::data::fer_class_names();
    } else {
      for (int c = 0; c < m.classes; ++c) info->class_names.push_back("class " + std::to_string(c));
    }
  }
  std::printf("model: %s (ONNX opset %d from %s, %d layers)\n", path.c_str(), m.opset,
              m.producer.empty() ? "an unnamed producer" : m.producer.c_str(), m.net->size());
  return std::move(m.net);
}
#else
std::unique_ptr<kiln::Sequential> load_onnx_network(const std::string& path, ModelInfo*) {
  throw UsageError("'" + path +
                   "' is an ONNX model, but this fer_cnn was built without ONNX: apt-get install "
                   "libonnx-dev libprotobuf-dev, then re-run cmake and rebuild");
}
#endif

bool is_onnx_model(const std::string& path) {
#if KILN_FER_ONNX
  return kiln::is_onnx_path(path);
#else
  return path.ends_with(".onnx");
#endif
}

std::map<std::string, std::string> checkpoint_metadata(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  if (!is_onnx_model(path)) return kiln::read_safetensors_metadata(path);
#if KILN_FER_ONNX
  try {
    return kiln::load_onnx(path).metadata;
  } catch (const kiln::Error& e) {
    throw UsageError(e.what());
  }
#else
  return {};
#endif
}

namespace {

struct Options {
  std::string checkpoint = "runs/fer_cnn/best.safetensors", onnx;
  bool fold_bn = false;
} opts;

int run_export() {
#if KILN_FER_ONNX
  ModelInfo info;
  auto net = load_network(opts.checkpoint, kiln::Device::cpu, &info);
  kiln::OnnxExportOptions o;
  o.channels = info.config.channels;
  o.height = info.config.height;
  o.width = info.config.width;
  o.fold_batchnorm = opts.fold_bn;
  o.class_names = info.class_names;
  o.metadata = model_metadata(info);
  for (const auto& [key, value] : checkpoint_metadata(opts.checkpoint))
    o.metadata.emplace(key, value);
  o.metadata["kiln.source"] = std::filesystem::path(opts.checkpoint).filename().string();
  try {
    kiln::save_onnx(opts.onnx, *net, o);
  } catch (const kiln::Error& e) {
    throw UsageError(e.what());
  }
  std::printf(
      "wrote %s (%lld bytes): ONNX opset %d, input \"input\" [batch, %d, %d, %d] (NCHW, pixels / "
      "255), output \"logits\" [batch, %d], %s; passed onnx::checker's full check\n",
      opts.onnx.c_str(), static_cast<long long>(std::filesystem::file_size(opts.onnx)),
      kiln::kOnnxExportOpset, o.channels, o.height, o.width, info.config.classes,
      opts.fold_bn ? "batchnorm folded into the convolutions, no Dropout"
                   : "BatchNormalization and Dropout nodes as in the checkpoint");
  return 0;
#else
  throw UsageError(
      "this fer_cnn was built without ONNX: apt-get install libonnx-dev "
      "libprotobuf-dev, then re-run cmake and rebuild");
#endif
}

const Registration reg{
    {"export", "Export a checkpoint as an ONNX model (opset 17) for ONNX Runtime, TensorRT, ...",
     [](CLI::App& app) {
       app.add_option("--checkpoint", opts.checkpoint, "a fer_cnn checkpoint (or an .onnx model)")
           ->capture_default_str();
       app.add_option("--onnx", opts.onnx, "the ONNX file to write (M.onnx)")->required();
       app.add_flag("--fold-bn", opts.fold_bn,
                    "fold each batchnorm into the convolution before it and leave Dropout out "
                    "(what deployment wants); default: one ONNX node per layer");
     },
     run_export}};

}  // namespace
}  // namespace fer
