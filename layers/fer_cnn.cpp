// layers/fer_cnn.cpp — see fer_cnn.h.
#include "layers/fer_cnn.h"

#include <algorithm>
#include <cmath>

#include "core/error.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pooling.h"

namespace kiln {

std::vector<int> fer_cnn_widths(double width_multiplier) {
  KILN_CHECK(width_multiplier > 0 && std::isfinite(width_multiplier),
             "the width multiplier must be a positive number, got ", width_multiplier);
  std::vector<int> widths;
  for (int w : {64, 128, 256, 512, 512, 1024, 512})
    widths.push_back(std::max(1, static_cast<int>(std::lround(w * width_multiplier))));
  return widths;
}

std::vector<std::pair<std::string, std::vector<int64_t>>> fer_cnn_weight_shapes(
    const FerCnnConfig& config) {
  const std::vector<int> w = fer_cnn_widths(config.width_multiplier);
  std::vector<std::pair<std::string, std::vector<int64_t>>> shapes;
  int64_t c_in = config.channels, h = config.height, wd = config.width;
  for (int block = 0; block < 5; ++block) {  // layers 5*block: Conv2d(c_in, w[block], 3)
    shapes.push_back({std::to_string(5 * block) + ".weight", {w[size_t(block)], c_in, 3, 3}});
    c_in = w[size_t(block)];
    h /= 2;
    wd /= 2;
  }
  shapes.push_back({"26.weight", {w[5], c_in * h * wd}});
  shapes.push_back({"28.weight", {w[6], w[5]}});
  shapes.push_back({"30.weight", {config.classes, w[6]}});
  return shapes;
}

std::unique_ptr<Sequential> make_fer_cnn(const FerCnnConfig& config, uint64_t seed) {
  KILN_CHECK(config.channels > 0 && config.classes > 1,
             "make_fer_cnn: needs at least one input channel and two classes (got ",
             config.channels, " channels, ", config.classes, " classes)");
  KILN_CHECK(config.height >= 32 && config.width >= 32,
             "make_fer_cnn: the input must be at least 32x32 so that five 2x2 poolings leave a "
             "pixel, got ",
             config.height, "x", config.width);
  const std::vector<int> w = fer_cnn_widths(config.width_multiplier);
  auto net = std::make_unique<Sequential>();
  int c_in = config.channels, h = config.height, wd = config.width;
  for (int block = 0; block < 5; ++block) {
    net->emplace<Conv2d>(c_in, w[block], 3, 1, 1);
    net->emplace<BatchNorm2d>(w[block]);
    net->emplace<LeakyReLU>(0.01);
    net->emplace<MaxPool2d>(2, 2);
    net->emplace<Dropout>(config.dropout);
    c_in = w[block];
    h /= 2;
    wd /= 2;
  }
  net->emplace<Flatten>();
  net->emplace<Linear>(c_in * h * wd, w[5]);
  net->emplace<LeakyReLU>(0.01);
  net->emplace<Linear>(w[5], w[6]);
  net->emplace<LeakyReLU>(0.01);
  net->emplace<Linear>(w[6], config.classes);
  net->set_input_shape({1, config.height, config.width, config.channels});
  net->init(seed);
  return net;
}

}  // namespace kiln
