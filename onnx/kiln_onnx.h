// onnx/kiln_onnx.h — ONNX export and import of a Sequential (docs/onnx.md).
//
// Export writes an inference graph at opset 17 in PyTorch's conventions: the input is NCHW
// ("input", [batch, C, H, W], batch symbolic), weights are in PyTorch's layouts (the state dict
// of optim/checkpoint.h: conv OIHW, the first Linear's columns in C*H*W order), so the graph is
// the one torch.onnx.export writes for the same nn.Sequential. Kiln's NHWC layout stays inside
// Kiln: nothing in the file is NHWC. Two forms: every layer as its ONNX operator (BatchNormalization
// and Dropout nodes included, so a re-import rebuilds the same layers with the same indices), or,
// with fold_batchnorm, every BatchNorm2d that follows a Conv2d folded into that convolution and
// Dropout (the identity at inference) left out.
//
// Import reads a graph that is a chain of Conv, BatchNormalization, Relu, LeakyRelu, MaxPool,
// Dropout, Flatten, Reshape (to [N, C*H*W]), Gemm, MatMul (+ Add), Identity and Constant nodes,
// opsets 13-21, with the protobuf classes of Debian's libonnx (no hand-written protobuf), and
// builds the Sequential with its weights. Anything else is refused with a kiln::Error naming the
// node, its operator and what Kiln supports; a malformed or truncated file, a tensor whose data
// does not match its shape, and an unsupported attribute are refused the same way.
//
// This header includes no protobuf or ONNX header: programs that link kiln_onnx see only Kiln's
// types. (It is not called onnx/onnx.h so that it can never shadow a header of ONNX's own
// onnx/ include folder.)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "layers/sequential.h"

namespace kiln {

// The opset export writes, and the range import accepts.
inline constexpr int kOnnxExportOpset = 17;
inline constexpr int kOnnxImportMinOpset = 13;
inline constexpr int kOnnxImportMaxOpset = 21;

struct OnnxExportOptions {
  int channels = 1, height = 48, width = 48;  // the model's input (C, H, W)
  bool fold_batchnorm = false;
  std::vector<std::string> class_names;         // -> metadata "kiln.class_names" (JSON list)
  std::map<std::string, std::string> metadata;  // further metadata_props (e.g. a checkpoint's)
};

// requires: `net` holds only Conv2d, BatchNorm2d, LeakyReLU, MaxPool2d, Dropout, Flatten and
//           Linear layers, is f32, and accepts [N][height][width][channels] inputs.
// ensures:  the serialised ModelProto, which passed check_onnx (throws kiln::Error otherwise,
//           naming the layer Kiln cannot export).
std::string export_onnx(Sequential& net, const OnnxExportOptions& options);
// export_onnx written atomically to `path`.
void save_onnx(const std::string& path, Sequential& net, const OnnxExportOptions& options);

// onnx::checker::check_model plus strict shape inference with type checks (what Python's
// onnx.checker.check_model(model, full_check=True) does). Debian's ONNX 1.12 knows opsets up to
// 17, so this serves export; import accepts newer opsets without it. Throws kiln::Error with the
// checker's message.
void check_onnx(std::string_view bytes, const std::string& source);

struct OnnxModel {
  std::unique_ptr<Sequential> net;  // f32, on the CPU, weights loaded
  int channels = 0, height = 0, width = 0;
  int classes = 0;                       // the output's width
  int opset = 0;                         // the default domain's opset the file imports
  std::vector<std::string> class_names;  // from "kiln.class_names"; empty when the file has none
  std::map<std::string, std::string> metadata;  // metadata_props
  std::string producer;                         // "pytorch 1.13.1", "kiln 0.1.0", ...
};

// Parses and imports `bytes` (a file's contents; `source` names it in errors).
OnnxModel import_onnx(std::string_view bytes, const std::string& source);
// Reads `path` (a regular file) and imports it.
OnnxModel load_onnx(const std::string& path);
// True when `path` names an ONNX file (ends in ".onnx", any case).
bool is_onnx_path(const std::string& path);

}  // namespace kiln
