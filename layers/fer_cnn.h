// layers/fer_cnn.h — the flagship network of the report (docs/report.md §1), as one function.
//
// Five blocks Conv2d(3x3, padding 1) -> BatchNorm2d -> LeakyReLU -> MaxPool2d(2) -> Dropout(0.25)
// with 64, 128, 256, 512, 512 channels, then Flatten -> Linear(., 1024) -> LeakyReLU ->
// Linear(1024, 512) -> LeakyReLU -> Linear(512, classes): 31 layers, indices 0..30 as PyTorch's
// nn.Sequential numbers them (the linear layers are 26, 28, 30). width_multiplier scales every
// hidden width (channels and the two hidden linear layers), rounded, at least 1: 1 is the report's
// network; the CPU default of examples/fer_cnn uses a narrower one.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "layers/sequential.h"

namespace kiln {

struct FerCnnConfig {
  int channels = 1, height = 48, width = 48, classes = 7;
  double width_multiplier = 1.0;
  double dropout = 0.25;
  bool operator==(const FerCnnConfig&) const = default;
};

// The hidden widths after scaling: the five conv widths, then the two hidden linear widths.
std::vector<int> fer_cnn_widths(double width_multiplier);

// The PyTorch shapes of the network's weights ("0.weight", "5.weight", ..., "26.weight",
// "28.weight", "30.weight": the five convolutions and three linear layers), computed without
// building it, so that a checkpoint can be checked against them before a model of the size its
// metadata claims is allocated.
std::vector<std::pair<std::string, std::vector<int64_t>>> fer_cnn_weight_shapes(
    const FerCnnConfig& config);

// Builds the network (initialised from `seed`) for inputs [N][height][width][channels]; height and
// width must be at least 32 so that five 2x2 poolings leave at least one pixel.
std::unique_ptr<Sequential> make_fer_cnn(const FerCnnConfig& config, uint64_t seed = 0);
inline std::unique_ptr<Sequential> make_fer_cnn(int channels, int height, int width, int classes,
                                                double width_multiplier = 1.0, uint64_t seed = 0) {
  return make_fer_cnn(FerCnnConfig{channels, height, width, classes, width_multiplier}, seed);
}

}  // namespace kiln
