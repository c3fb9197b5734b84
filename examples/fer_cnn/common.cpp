// examples/fer_cnn/common.cpp — helpers shared by the subcommands (see fer_cnn.h).
#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstdlib>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "examples/fer_cnn/fer_cnn.h"
#include "kernels/precision.h"
#include "layers/loss.h"
#include "optim/checkpoint.h"
#include "optim/fer_cnn_checkpoint.h"
#include "train/eager_step.h"

namespace fer {

std::vector<Command>& commands() {
  static std::vector<Command> all;
  return all;
}

void add_device_option(CLI::App& app, std::string& device) {
  app.add_option("--device", device, "auto (the GPU when one answers, else the CPU), cpu or cuda")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
}

kiln::Device select_device(const std::string& option) {
  if (option == "cpu") {
    std::printf("device: cpu (--device cpu)\n");
    return kiln::Device::cpu;
  }
  if (option == "cuda") {
    if (!kiln::cuda_available())
      throw UsageError("--device cuda: " + kiln::cuda_unavailable_reason() +
                       ". Use --device cpu (or auto) on this machine.");
    std::printf("device: cuda, %s (--device cuda)\n", kiln::cuda_device_name().c_str());
    return kiln::Device::cuda;
  }
  if (kiln::cuda_available()) {
    std::printf("device: cuda, %s (--device auto: a CUDA device answered)\n",
                kiln::cuda_device_name().c_str());
    return kiln::Device::cuda;
  }
  std::printf("device: cpu (--device auto: %s)\n", kiln::cuda_unavailable_reason().c_str());
  return kiln::Device::cpu;
}

void add_precision_option(CLI::App& app, std::string& precision, bool& tf32_linear) {
  app.add_option("--precision", precision,
                 "fp32, tf32 (TF32 convolutions, fp32 linear layers) or bf16 (bf16 convolutions "
                 "and linear layers on fp32 master weights); default fp32 on the CPU, " +
                     std::string(kiln::precision_name(default_cuda_precision())) +
                     " on CUDA, a resumed run's own")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_flag("--tf32-linear", tf32_linear, "with tf32: the linear layers in TF32 too");
}

kiln::Precision default_cuda_precision() {
  return kiln::cuda_supports_precision(kiln::Precision::tf32) ? kiln::Precision::tf32
                                                              : kiln::Precision::fp32;
}

std::map<std::string, std::string> precision_metadata(const kiln::PrecisionPolicy& policy) {
  return {{"kiln.precision", kiln::precision_name(policy.precision)},
          {"kiln.tf32_linear", policy.tf32_linear ? "true" : "false"}};
}

kiln::PrecisionPolicy select_precision(const std::string& option, bool tf32_linear,
                                       kiln::Device device,
                                       const std::map<std::string, std::string>& recorded) {
  kiln::PrecisionPolicy policy;
  std::string why;
  const auto it = recorded.find("kiln.precision");
  if (!option.empty()) {
    policy.precision = kiln::parse_precision(option);
    why = "--precision " + option;
  } else if (it != recorded.end()) {
    try {
      policy.precision = kiln::parse_precision(it->second);
    } catch (const kiln::Error& e) {
      throw UsageError(std::string("the training state's kiln.precision: ") + e.what());
    }
    const auto linear = recorded.find("kiln.tf32_linear");
    tf32_linear = tf32_linear || (linear != recorded.end() && linear->second == "true");
    why = "the resumed run's";
  } else if (device == kiln::Device::cuda) {
    policy.precision = default_cuda_precision();
    why = policy.precision == kiln::Precision::tf32
              ? "the CUDA default, as PyTorch's"
              : "the CUDA default where tf32 is not supported";
  } else {
    policy.precision = kiln::Precision::fp32;
    why = "the CPU default";
  }
  if (tf32_linear && policy.precision != kiln::Precision::tf32)
    throw UsageError("--tf32-linear needs --precision tf32 (the run's precision is " +
                     std::string(kiln::precision_name(policy.precision)) + ")");
  policy.tf32_linear = tf32_linear;
  if (device == kiln::Device::cuda && !kiln::cuda_supports_precision(policy.precision))
    throw UsageError("precision " + std::string(kiln::precision_name(policy.precision)) + " (" +
                     why +
                     ") is not supported on CUDA by this build: pass --precision fp32, or "
                     "--device cpu");
  std::printf("precision: %s (%s)\n", policy.describe().c_str(), why.c_str());
  return policy;
}

namespace {
std::string number_text(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%g", v);
  return buf;
}
}  // namespace

CLI::Validator real_in(double lo, double hi, bool exclude_lo) {
  const std::string range =
      (exclude_lo ? "(" : "[") + number_text(lo) + ", " + number_text(hi) + "]";
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        char* end = nullptr;
        const double v = std::strtod(s.c_str(), &end);
        const bool parsed = !s.empty() && end == s.c_str() + s.size();
        if (parsed && std::isfinite(v) && v >= lo && v <= hi && !(exclude_lo && v == lo)) return "";
        return "must be a finite number in " + range + ", got '" + s + "'";
      },
      "in " + range);
}

CLI::Validator integer_in(long long lo, unsigned long long hi) {
  const std::string range = "[" + std::to_string(lo) + ", " + std::to_string(hi) + "]";
  return CLI::Validator(
      [=](std::string& s) -> std::string {
        const bool negative = !s.empty() && s[0] == '-';
        bool digits = s.size() > (negative ? 1u : 0u);
        for (size_t i = negative ? 1 : 0; i < s.size(); ++i)
          digits = digits && std::isdigit(static_cast<unsigned char>(s[i]));
        bool ok = false;
        if (digits) {
          errno = 0;
          if (negative) {
            const long long v = std::strtoll(s.c_str(), nullptr, 10);
            ok = errno == 0 && v >= lo;
          } else {
            const unsigned long long v = std::strtoull(s.c_str(), nullptr, 10);
            ok = errno == 0 && v <= hi && (lo <= 0 || v >= static_cast<unsigned long long>(lo));
          }
        }
        return ok ? "" : "must be an integer in " + range + ", got '" + s + "'";
      },
      "in " + range);
}

kiln::data::ImageSpec preset_spec(const std::string& preset) {
  if (preset == "report") return {3, 128, 128};
  if (preset == "default") return {1, 48, 48};
  throw UsageError("unknown --preset '" + preset +
                   "': use 'default' (1x48x48, FER2013's images) or 'report' (3x128x128)");
}

std::map<std::string, std::string> model_metadata(const ModelInfo& info) {
  nlohmann::json model = {
      {"architecture", "fer_cnn"},      {"channels", info.config.channels},
      {"height", info.config.height},   {"width", info.config.width},
      {"classes", info.config.classes}, {"width_multiplier", info.config.width_multiplier},
      {"dropout", info.config.dropout}};
  return {{"kiln.model", model.dump()},
          {"kiln.class_names", nlohmann::json(info.class_names).dump()}};
}

ModelInfo read_model_info(const std::string& checkpoint, const std::string& tensor_prefix) {
  if (!std::filesystem::exists(checkpoint))
    throw UsageError("checkpoint '" + checkpoint +
                     "' does not exist: train one first (fer_cnn train --out DIR writes "
                     "DIR/best.safetensors) or pass --checkpoint PATH");
  // Only the header is read; the description is checked against the tensors it lists before
  // any model is built.
  try {
    kiln::FerCnnCheckpointInfo checked = kiln::fer_cnn_info_from_header(
        kiln::read_safetensors_header(checkpoint), checkpoint, tensor_prefix);
    ModelInfo info;
    info.config = checked.config;
    info.class_names = std::move(checked.class_names);
    return info;
  } catch (const kiln::Error& e) {
    throw UsageError(e.what());
  }
}

void check_model_values(kiln::Layer& model, const std::string& source) {
  auto values = [](const kiln::Tensor& t) {
    if (t.dtype() == kiln::DType::f64) return t.to_vector<double>();
    const std::vector<float> f = t.to_vector<float>();  // throws naming any other dtype
    return std::vector<double>(f.begin(), f.end());
  };
  auto check = [&](const std::string& name, const kiln::Tensor& t, bool variance) {
    const std::vector<double> v = values(t);
    for (size_t i = 0; i < v.size(); ++i) {
      if (!std::isfinite(v[i]))
        throw UsageError("checkpoint '" + source + "': tensor '" + name + "' holds a non-finite " +
                         "value (" + number_text(v[i]) + " at element " + std::to_string(i) +
                         "): the run that wrote it diverged; use an earlier checkpoint or "
                         "retrain with a lower --lr");
      if (variance && v[i] < 0)
        throw UsageError("checkpoint '" + source + "': tensor '" + name +
                         "' is a variance but holds " + number_text(v[i]) + " at element " +
                         std::to_string(i) + ": the file is corrupt; use another checkpoint");
    }
  };
  for (kiln::ParamRef& p : model.params()) check(p.name, *p.value, false);
  for (kiln::BufferRef& b : model.buffers()) {
    const std::string suffix = "running_var";
    const bool variance = b.name.size() >= suffix.size() &&
                          b.name.compare(b.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (b.tensor) check(b.name, *b.tensor, variance);
  }
}

std::unique_ptr<kiln::Sequential> load_network(const std::string& checkpoint, kiln::Device device,
                                               ModelInfo* info_out) {
  ModelInfo info;
  std::unique_ptr<kiln::Sequential> net;
  if (is_onnx_model(checkpoint)) {
    net = load_onnx_network(checkpoint, &info);  // cmd_export.cpp
  } else {
    info = read_model_info(checkpoint);
    net = kiln::make_fer_cnn(info.config);
    kiln::load_model(checkpoint, *net);
  }
  check_model_values(*net, checkpoint);
  net->to(device);
  if (info_out) *info_out = std::move(info);
  return net;
}

kiln::data::Splits load_data(const std::string& source, const kiln::data::ImageSpec& spec,
                             uint64_t seed, int train_per_class) {
  try {
    if (source == "synthetic") {
      kiln::data::SyntheticOptions o;
      o.spec = spec;
      o.seed = seed;
      if (train_per_class > 0) {
        o.train_per_class = train_per_class;
        o.val_per_class = std::max(20, train_per_class / 5);
        o.test_per_class = o.val_per_class;
      }
      return kiln::data::make_synthetic(o);
    }
    return kiln::data::load_dataset(source, spec, seed);
  } catch (const kiln::Error& e) {
    throw UsageError(std::string("--data ") + source + ": " + e.what());
  }
}

void CheckpointOptions::add_to(CLI::App& app, const std::string& data_help) {
  app.add_option("--checkpoint", checkpoint, "a fer_cnn checkpoint, or an ONNX model (.onnx)")
      ->capture_default_str();
  app.add_option("--data", data, data_help)->capture_default_str();
  app.add_option("--train-per-class", train_per_class,
                 "synthetic images per class (as in training)")
      ->check(integer_in(1, 1000000));
  app.add_option("--seed", seed, "the data seed used in training")
      ->check(integer_in(0, UINT64_MAX))
      ->capture_default_str();
  add_device_option(app, device);
}

OpenedCheckpoint open_checkpoint(const CheckpointOptions& o) {
  OpenedCheckpoint c;
  c.device = select_device(o.device);
  c.net = load_network(o.checkpoint, c.device, &c.info);
  c.data = load_data(o.data, c.info.spec(), o.seed, o.train_per_class);
  return c;
}

std::string analysis_dir(const std::string& checkpoint) {
  return join_path(std::filesystem::path(checkpoint).parent_path().string(), "analysis");
}

const kiln::data::Dataset& choose_split(const kiln::data::Splits& data, const std::string& split,
                                        const std::string& source, const ModelInfo& info) {
  const kiln::data::Dataset* set = split == "train"  ? &data.train
                                   : split == "val"  ? &data.val
                                   : split == "test" ? &data.test
                                                     : nullptr;
  if (!set) throw UsageError("--split " + split + ": choose train, val or test");
  if (set->empty())
    throw UsageError("--data " + source + " has no " + split +
                     " images; choose another --split (train, val, test)");
  if (set->num_classes() != info.config.classes)
    throw UsageError("--data " + source + " has " + std::to_string(set->num_classes()) +
                     " classes but the checkpoint's model has " +
                     std::to_string(info.config.classes));
  return *set;
}

EvalResult evaluate(kiln::Sequential& net, const kiln::data::Dataset& data, int batch_size,
                    kiln::Device device) {
  EvalResult r;
  const int k = data.num_classes();
  r.confusion.assign(k, std::vector<int64_t>(k, 0));
  if (data.empty()) return r;
  kiln::data::LoaderOptions lo;
  lo.batch_size = batch_size;
  lo.shuffle = false;
  lo.prefetch = 2;
  kiln::data::Loader loader(data, lo);
  loader.start_epoch(0);
  kiln::data::Batch batch;
  kiln::DeviceBatch db;
  kiln::SoftmaxCrossEntropy xent;
  double loss_sum = 0;
  int64_t correct = 0;
  while (loader.next(batch)) {
    db.upload(batch, device);
    const kiln::Tensor& logits = net.forward(db.x, kiln::Mode::eval);
    loss_sum += xent.forward(logits, db.y) * batch.size;
    correct += xent.correct();
    const std::vector<float> z = logits.to_vector<float>();
    for (int i = 0; i < batch.size; ++i) {
      const float* row = z.data() + static_cast<size_t>(i) * k;
      const int pred = static_cast<int>(std::max_element(row, row + k) - row);
      ++r.confusion[batch.labels[i]][pred];
    }
    r.count += batch.size;
  }
  r.loss = loss_sum / r.count;
  r.accuracy = static_cast<double>(correct) / r.count;
  return r;
}

void print_confusion(const EvalResult& r, const std::vector<std::string>& names) {
  std::printf("confusion matrix (rows: true class, columns: predicted; row-normalised %%)\n%10s",
              "");
  for (size_t c = 0; c < names.size(); ++c) std::printf(" %8.8s", names[c].c_str());
  std::printf("   recall\n");
  for (size_t t = 0; t < names.size(); ++t) {
    int64_t row = 0;
    for (int64_t v : r.confusion[t]) row += v;
    std::printf("%10.10s", names[t].c_str());
    for (size_t c = 0; c < names.size(); ++c)
      std::printf(" %8.1f", row ? 100.0 * r.confusion[t][c] / row : 0.0);
    std::printf("   %5.1f%% of %lld\n", row ? 100.0 * r.confusion[t][t] / row : 0.0,
                static_cast<long long>(row));
  }
}

std::string join_path(const std::string& dir, const std::string& file) {
  return (std::filesystem::path(dir) / file).string();
}

}  // namespace fer
