// examples/fer_cnn/fer_cnn.h — what the subcommands of fer_cnn share.
//
// main.cpp is a thin dispatcher: each subcommand lives in its own cmd_<name>.cpp and registers
// itself with a static Registration object, so adding a subcommand is adding one file
// (the CMake glob picks it up; re-run cmake):
//
//   // cmd_hello.cpp
//   #include "examples/fer_cnn/fer_cnn.h"
//   namespace fer {
//   namespace { struct Options { std::string name = "world"; } opts; }
//   static const Registration reg{{"hello", "Say hello",
//       [](CLI::App& app) { app.add_option("--name", opts.name, "who to greet"); },
//       [] { std::printf("hello %s\n", opts.name.c_str()); return 0; }}};
//   }  // namespace fer
//
// Errors: throw UsageError (bad input: exit 2) or kiln::Error (exit 1) with a message that names
// the problem and the fix; main() prints it and exits non-zero.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "analysis/filters.h"
#include "analysis/image.h"
#include "core/memory.h"
#include "core/precision.h"
#include "core/tensor.h"
#include "data/dataset.h"
#include "layers/fer_cnn.h"
#include "layers/sequential.h"

namespace fer {

// ---- subcommands -------------------------------------------------------------------------------
struct Command {
  std::string name, description;
  std::function<void(CLI::App&)> setup;  // adds the subcommand's options
  std::function<int()> run;              // returns the exit code
};
std::vector<Command>& commands();
struct Registration {
  explicit Registration(Command c) { commands().push_back(std::move(c)); }
};

// A bad input: main() prints "error: <message>" and exits 2.
struct UsageError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// ---- options shared by several subcommands -----------------------------------------------------
// --device auto|cpu|cuda; returns the device and prints which one and why.
void add_device_option(CLI::App& app, std::string& device);
kiln::Device select_device(const std::string& option);

// --precision fp32|tf32|bf16 and --tf32-linear (train and eval). select_precision returns the
// policy and prints it and why: the option when given; else `recorded` (a resumed run's, from its
// training state: see precision_metadata) when not empty; else fp32 on the CPU and, on CUDA,
// default_cuda_precision().
void add_precision_option(CLI::App& app, std::string& precision, bool& tf32_linear);
kiln::PrecisionPolicy select_precision(const std::string& option, bool tf32_linear,
                                       kiln::Device device,
                                       const std::map<std::string, std::string>& recorded = {});
// The GPU default: tf32 (PyTorch's default for convolutions: TF32 tensor-core convolutions, fp32
// linear layers), where kiln::cuda_supports_precision says CUDA computes it (every build does);
// fp32 otherwise.
kiln::Precision default_cuda_precision();
// The policy as checkpoint metadata ("kiln.precision", "kiln.tf32_linear"), every file of a run.
std::map<std::string, std::string> precision_metadata(const kiln::PrecisionPolicy& policy);

// Checks for numeric options, the one way every subcommand range-checks its numbers: the value
// must be a finite number (real_in) or an integer written in digits (integer_in, so a negative
// seed cannot wrap) within the range, else CLI11 stops with "--opt: must be ... in [lo, hi]".
CLI::Validator real_in(double lo, double hi, bool exclude_lo = false);
CLI::Validator integer_in(long long lo, unsigned long long hi);

// --preset default|report: the input shape.
kiln::data::ImageSpec preset_spec(const std::string& preset);

// ---- model configuration, saved in every checkpoint's metadata ---------------------------------
struct ModelInfo {
  kiln::FerCnnConfig config;
  std::vector<std::string> class_names;
  // The model's input shape.
  kiln::data::ImageSpec spec() const { return {config.channels, config.height, config.width}; }
};
std::map<std::string, std::string> model_metadata(const ModelInfo& info);
// Reads a checkpoint's model configuration (throws naming the file if it has none), checked against
// the tensors the file lists (their names prefixed by `tensor_prefix`: "model." in a training state).
ModelInfo read_model_info(const std::string& checkpoint, const std::string& tensor_prefix = "");
// Throws naming `source` and the tensor if a parameter or statistic of `model` is not finite, or a
// running variance is negative: such a model computes nonsense, so nothing may use it.
void check_model_values(kiln::Layer& model, const std::string& source);
// Builds the network a checkpoint describes and loads its weights (checked by
// check_model_values), on `device`.
// A path ending in .onnx is imported instead (load_onnx_network).
std::unique_ptr<kiln::Sequential> load_network(const std::string& checkpoint, kiln::Device device,
                                               ModelInfo* info = nullptr);
// cmd_export.cpp: an ONNX model (docs/onnx.md) as a network, its ModelInfo from the file's
// metadata (a PyTorch export gets FER's class names when it has 7 classes); throws UsageError
// naming what the importer refused, or that this fer_cnn was built without ONNX.
std::unique_ptr<kiln::Sequential> load_onnx_network(const std::string& path, ModelInfo* info);
// True when `path` names an ONNX model (ends in .onnx).
bool is_onnx_model(const std::string& path);
// A checkpoint's metadata: a safetensors file's __metadata__, an ONNX model's metadata_props;
// empty when the file does not exist.
std::map<std::string, std::string> checkpoint_metadata(const std::string& path);

// ---- data --------------------------------------------------------------------------------------
// "synthetic" (train_per_class images per class; 0: the data set's default), a CSV file or an
// image folder, converted to `spec`. Throws UsageError naming the problem and the fix.
kiln::data::Splits load_data(const std::string& source, const kiln::data::ImageSpec& spec,
                             uint64_t seed, int train_per_class);

// The split named by --split ("train", "val" or "test") of `data` (loaded from `source`), checked
// to be non-empty and to have the model's number of classes; throws UsageError otherwise.
const kiln::data::Dataset& choose_split(const kiln::data::Splits& data, const std::string& split,
                                        const std::string& source, const ModelInfo& info);

// ---- subcommands that analyse a checkpoint on a data set (eval, saliency, filters) -------------
struct CheckpointOptions {
  std::string checkpoint = "runs/fer_cnn/best.safetensors", data = "synthetic", device = "auto";
  int train_per_class = 0;
  uint64_t seed = 1;
  // Adds --checkpoint, --data (described by data_help), --train-per-class, --seed and --device.
  void add_to(CLI::App& app, const std::string& data_help);
};
// The checkpoint's network on the chosen device, and the data set at the model's input shape.
struct OpenedCheckpoint {
  kiln::Device device;
  ModelInfo info;
  std::unique_ptr<kiln::Sequential> net;
  kiln::data::Splits data;
};
OpenedCheckpoint open_checkpoint(const CheckpointOptions& options);
// <the checkpoint's folder>/analysis: where eval, saliency and filters write unless told otherwise.
std::string analysis_dir(const std::string& checkpoint);

// Evaluation over a whole data set in Mode::eval: mean loss, accuracy and the confusion matrix
// (rows: true class, columns: predicted).
struct EvalResult {
  double loss = 0, accuracy = 0;
  int64_t count = 0;
  std::vector<std::vector<int64_t>> confusion;
};
EvalResult evaluate(kiln::Sequential& net, const kiln::data::Dataset& data, int batch_size,
                    kiln::Device device);
void print_confusion(const EvalResult& r, const std::vector<std::string>& class_names);

// ---- figures shared by saliency, filters and report ---------------------------------------------
// cmd_saliency.cpp: the first `per_class` images of each class of `set`, as model inputs in [0, 1]
// ([n][H][W][C], classes in order), and the saliency grid of those images.
std::vector<float> pick_per_class(const kiln::data::Dataset& set, int per_class,
                                  std::vector<int>* labels);
kiln::analysis::Image saliency_figure(kiln::Sequential& net, const kiln::data::Dataset& set,
                                      const std::vector<std::string>& class_names, int per_class);
// cmd_filters.cpp: a layer's title ("layer 12: LeakyReLU of block 3 (12x12x32)"), the default
// depths (first, middle and last conv block), the activation-maximisation grids of the first
// `filters` channels of each layer as (title, picture), and the feature maps of one image.
std::string layer_title(kiln::Sequential& net, const kiln::data::ImageSpec& spec, int layer);
std::vector<int> default_filter_layers(kiln::Sequential& net);
std::vector<std::pair<std::string, kiln::analysis::Image>> filter_figures(
    kiln::Sequential& net, const kiln::data::ImageSpec& spec, const std::vector<int>& layers,
    int filters, const kiln::analysis::ActivationMaxOptions& options);
kiln::analysis::Image feature_map_figure(kiln::Sequential& net, const kiln::data::ImageSpec& spec,
                                         const std::vector<float>& image, int layer,
                                         const std::string& what);
// The class whose image the model is surest of, given one image per class in class order
// (pick_per_class(set, 1)): the largest softmax probability of the true class, ties to the first.
// Throws UsageError when the model has another number of classes.
// It picks the image of the feature maps by what the model does, not by a class name, so it works
// for any classes a checkpoint carries.
int surest_class(kiln::Sequential& net, const kiln::data::ImageSpec& spec,
                 const std::vector<float>& images);

// ---- output ------------------------------------------------------------------------------------
std::string join_path(const std::string& dir, const std::string& file);

}  // namespace fer
