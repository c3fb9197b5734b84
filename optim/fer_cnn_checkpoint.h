// optim/fer_cnn_checkpoint.h — what a fer_cnn checkpoint says about its model, checked before the
// model is built.
//
// fer_cnn train writes the network's configuration into the checkpoint's metadata ("kiln.model":
// a JSON object with architecture, channels, height, width, classes, width_multiplier, dropout;
// "kiln.class_names": a JSON array of strings). A reader builds the network from it, so a crafted
// header could otherwise ask for a model of gigabytes: every value is range-checked, and the
// shapes of the network's weights are compared with the tensors the file actually holds, so the
// model built is never larger than what the file stores.
#pragma once

#include <string>
#include <vector>

#include "layers/fer_cnn.h"
#include "optim/checkpoint.h"

namespace kiln {

struct FerCnnCheckpointInfo {
  FerCnnConfig config;
  std::vector<std::string> class_names;  // config.classes names ("0", "1", ... when absent)
};

// The allowed ranges (inclusive) of the model description.
struct FerCnnLimits {
  static constexpr int kMinSide = 32, kMaxSide = 4096, kMaxClasses = 100000;
  static constexpr double kMaxWidthMultiplier = 16;
};

// `header` is the checkpoint's header (read_safetensors_header: names, dtypes, shapes, metadata).
// Throws kiln::Error naming `source`, the value and its allowed range or the mismatching tensor.
// `tensor_prefix`: what the model's tensor names start with in the file ("model." in fer_cnn's
// training state, which holds the weights beside the optimizer's tensors).
FerCnnCheckpointInfo fer_cnn_info_from_header(const StFile& header, const std::string& source,
                                              const std::string& tensor_prefix = "");

}  // namespace kiln
