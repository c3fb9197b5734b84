// analysis/filters.h — what a filter responds to: activation maximisation and feature maps.
//
// Activation maximisation (Erhan et al. 2009; regularised as in Yosinski et al. 2015,
// "Understanding Neural Networks Through Deep Visualization"): start from noise and climb the
// gradient of one filter's mean activation at one layer with respect to the input image.
// Unregularised, the ascent finds high-frequency patterns that mean nothing to a reader, so
// every step
//   * jitters: the image is shifted by a random (dy, dx) before the forward pass and the gradient
//     is shifted back (a pattern must work wherever it sits);
//   * decays: x <- (1 - l2_decay) x, pulling pixels nobody needs back to the mean grey;
//   * blurs every `blur_every` steps with a small Gaussian (suppresses checkerboard noise);
//   * clamps x to the data's range [lo, hi].
// The step is normalised by the gradient's mean magnitude, so one step size works at every depth.
// Each filter gets its own image, all from the same starting noise; they run together as one batch
// (eval mode: the images do not interact).
//
// The activation is the layer's output from Sequential::forward_to(x, layer, eval): [N][H][W][C]
// (its mean over H and W per channel) or [N][F] (the unit itself).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/image.h"
#include "core/tensor.h"
#include "layers/sequential.h"

namespace kiln::analysis {

struct ActivationMaxOptions {
  int steps = 150;
  double step_size = 0.05;  // per step, in input units, times grad / mean|grad|
  double l2_decay = 0.002;  // x <- init_mean + (1 - l2_decay) (x - init_mean) each step
  int blur_every = 8;       // 0: never. Blurring more often starves deep filters of detail.
  double blur_sigma = 0.5;  // pixels
  int jitter = 1;           // max shift in pixels, 0: none
  double init_mean = 0.5, init_std = 0.05;  // the starting noise (std::mt19937_64 from `seed`)
  double lo = 0.0, hi = 1.0;                // the data's range (Kiln's loader gives [0, 1])
  uint64_t seed = 1;
};

struct ActivationMaxResult {
  int filter = 0;
  double start_activation = 0;  // mean activation of the filter on the starting noise
  double final_activation = 0;  // ... on the final image
  std::vector<float> image;     // [H][W][C], the final image
};

// requires: `input` = {1, H, W, C} (the model's input shape); 0 <= layer < model.size(); every
//           filter a channel of that layer's output.
std::vector<ActivationMaxResult> maximize_activations(Sequential& model, int layer,
                                                      const std::vector<int>& filters,
                                                      const Shape& input,
                                                      const ActivationMaxOptions& options = {});

// The mean activation of every channel of layer `layer` for each image of `images` ([N][H][W][C]
// floats, host): [N][channels].
std::vector<double> mean_activations(Sequential& model, int layer, const std::vector<float>& images,
                                     const Shape& input_shape);

// The activation of one image at a layer: [H][W][C] floats with its shape.
struct FeatureMaps {
  int height = 0, width = 0, channels = 0;
  std::vector<float> values;  // [H][W][C]
};
FeatureMaps feature_maps(Sequential& model, int layer, const std::vector<float>& image,
                         const Shape& input_shape);

// The layers worth visualising in a conv net: the activation (LeakyReLU/ReLU) that follows each
// BatchNorm2d or Conv2d, in order — for the flagship, 2, 7, 12, 17, 22 (one per block).
std::vector<int> conv_block_activations(const Sequential& model);

// Grids. Filter pictures: one cell per result, captioned "#<filter>  x<final/start>"; each image is
// stretched to its own min..max (the ascent's pictures differ in contrast). Feature maps: the first
// `max_maps` channels, 8 per row, each stretched to its own range (captions give the channel and
// its maximum), with the input picture first.
Image filter_grid_png(const std::vector<ActivationMaxResult>& results, int height, int width,
                      int channels, const std::string& title, int cols = 8, int cell_px = 88);
Image feature_map_grid_png(const FeatureMaps& maps, const std::string& title, int max_maps = 64,
                           int cols = 8, int cell_px = 72);

}  // namespace kiln::analysis
