// analysis/saliency.h — saliency maps (Simonyan, Vedaldi & Zisserman 2014, "Deep Inside
// Convolutional Networks"): how strongly each input pixel moves the score of a class.
//
// For image i and class c_i, the map is |∂ z_c / ∂ x| with z the logits (the scores before softmax,
// as the paper uses: the softmax would mix in the other classes), maximised over the colour
// channels: [H][W] per image. It is one backward pass through the model in eval mode (BatchNorm
// uses its running statistics, dropout is the identity) from d logits = one-hot(c_i), via
// Sequential::forward_to / backward_from; parameter gradients are left untouched. In eval mode the
// images of a batch do not interact, so a whole batch is one pass.
#pragma once

#include <string>
#include <vector>

#include "analysis/image.h"
#include "core/tensor.h"
#include "layers/sequential.h"

namespace kiln::analysis {

struct SaliencyResult {
  int n = 0, height = 0, width = 0, classes = 0;
  std::vector<float> maps;     // [n][height][width]: max over channels of |∂ z_c / ∂ x|
  std::vector<float> probs;    // [n][classes]: softmax of the logits (what the model predicts)
  std::vector<int> predicted;  // [n]: argmax of the logits
};

// requires: x [N][H][W][C] on model.device() with model.dtype(); classes[i] in [0, K) for a model
//           whose last layer outputs [N][K].
SaliencyResult saliency_maps(Sequential& model, const Tensor& x, const std::vector<int>& classes);

// One row per example: the input, the saliency map (inferno, each map stretched to its own 0..99th
// percentile, so every row uses the full scale), and the map over the input. The caption says the
// true class, the prediction and its probability. Rows are labelled by `row_labels` (e.g. the class
// names). `inputs` is [n][H][W][C] in [0, 1]; several examples per row when `per_row` > 1.
struct SaliencyFigure {
  const float* inputs = nullptr;  // [n][H][W][C], values in [0, 1]
  int channels = 1;
  std::vector<int> labels{};               // [n] true classes
  std::vector<std::string> class_names{};  // [K]
  std::vector<std::string> row_labels{};   // [n / per_row]
  int per_row = 1;
  int cell_px = 120;
};
Image saliency_grid_png(const SaliencyResult& s, const SaliencyFigure& figure);

}  // namespace kiln::analysis
