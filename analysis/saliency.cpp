// analysis/saliency.cpp — saliency maps by one eval-mode backward pass from a one-hot d logits.
#include "analysis/saliency.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "analysis/plot.h"
#include "core/error.h"

namespace kiln::analysis {
namespace {

template <typename T>
SaliencyResult saliency_typed(Sequential& model, const Tensor& x, const std::vector<int>& classes) {
  const int last = model.size() - 1;
  const Tensor& logits = model.forward_to(x, last, Mode::eval);
  KILN_CHECK(logits.rank() == 2 && logits.size(0) == x.size(0),
             "saliency_maps: the model's output must be [N][classes], got ", logits.str());
  SaliencyResult r;
  r.n = int(x.size(0));
  r.height = int(x.size(1));
  r.width = int(x.size(2));
  r.classes = int(logits.size(1));
  const int channels = int(x.size(3));

  const std::vector<T> z = logits.to_vector<T>();  // [n][classes]
  std::vector<T> onehot(z.size(), T(0));
  for (int i = 0; i < r.n; ++i) {
    const int c = classes[size_t(i)];
    KILN_CHECK(c >= 0 && c < r.classes, "saliency_maps: class ", c, " of image ", i,
               " outside [0, ", r.classes, ")");
    onehot[size_t(i) * r.classes + c] = T(1);
    // Softmax on the host, shifted by the maximum so that exp cannot overflow.
    const T* zi = &z[size_t(i) * r.classes];
    const T m = *std::max_element(zi, zi + r.classes);
    double sum = 0;
    for (int k = 0; k < r.classes; ++k) sum += std::exp(double(zi[k] - m));
    for (int k = 0; k < r.classes; ++k) r.probs.push_back(float(std::exp(double(zi[k] - m)) / sum));
    r.predicted.push_back(int(std::max_element(zi, zi + r.classes) - zi));
  }
  const Tensor d = Tensor::from_vector<T>(logits.shape(), onehot, model.device());
  const Tensor& dx = model.backward_from(last, d, {.need_dx = true, .param_grads = false});
  const std::vector<T> g = dx.to_vector<T>();  // [n][H][W][C]
  const size_t pixels = size_t(r.n) * r.height * r.width;
  r.maps.assign(pixels, 0.0f);
  for (size_t p = 0; p < pixels; ++p)
    for (int c = 0; c < channels; ++c)
      r.maps[p] = std::max(r.maps[p], float(std::abs(g[p * channels + size_t(c)])));
  return r;
}

}  // namespace

SaliencyResult saliency_maps(Sequential& model, const Tensor& x, const std::vector<int>& classes) {
  KILN_CHECK(x.rank() == 4, "saliency_maps: input must be [N][H][W][C], got ", x.str());
  KILN_CHECK(x.device() == model.device() && x.dtype() == model.dtype(), "saliency_maps: input ",
             x.str(), " does not match the model's device and dtype");
  KILN_CHECK(classes.size() == size_t(x.size(0)), "saliency_maps: ", classes.size(),
             " classes for ", x.size(0), " images");
  if (x.dtype() == DType::f64) return saliency_typed<double>(model, x, classes);
  KILN_CHECK(x.dtype() == DType::f32, "saliency_maps: input must be f32 or f64, got ", x.str());
  return saliency_typed<float>(model, x, classes);
}

Image saliency_grid_png(const SaliencyResult& s, const SaliencyFigure& f) {
  KILN_CHECK(f.inputs != nullptr, "saliency_grid_png: no input pictures");
  KILN_CHECK(f.per_row >= 1 && s.n % f.per_row == 0, "saliency_grid_png: ", s.n,
             " examples do not fill rows of ", f.per_row);
  KILN_CHECK(f.labels.size() == size_t(s.n), "saliency_grid_png: ", f.labels.size(), " labels for ",
             s.n, " examples");
  KILN_CHECK(f.class_names.size() == size_t(s.classes), "saliency_grid_png: ", f.class_names.size(),
             " class names for ", s.classes, " classes");
  const int rows = s.n / f.per_row, hw = s.height * s.width;
  PictureGrid g{.title = "Saliency maps: |d score(true class) / d input|",
                .rows = rows,
                .cols = 3 * f.per_row,
                .row_labels = f.row_labels,
                .cell_px = f.cell_px};
  for (int k = 0; k < f.per_row; ++k)
    for (const char* h : {"input", "saliency", "overlay"}) g.col_labels.push_back(h);
  std::vector<float> gray(static_cast<size_t>(hw));
  for (int i = 0; i < s.n; ++i) {
    const float* in = f.inputs + size_t(i) * hw * f.channels;
    const float* map = &s.maps[size_t(i) * hw];
    const Image input = picture(in, s.height, s.width, f.channels, {0, 1});
    const Range range = quantile_range(map, hw, 0.0, 0.99);
    const Image heat = colorize(map, s.height, s.width, range, ColorMap::inferno);
    // The overlay sits on a dimmed grey input so that the heat colours stay readable.
    for (int p = 0; p < hw; ++p) {
      double v = 0;
      for (int c = 0; c < f.channels; ++c) v += in[size_t(p) * f.channels + c];
      gray[size_t(p)] = float(0.25 + 0.5 * v / f.channels);
    }
    const Image base = colorize(gray.data(), s.height, s.width, {0, 1}, ColorMap::gray);
    g.cells.push_back(input);
    g.cells.push_back(heat);
    g.cells.push_back(overlay(base, heat, map, range, 0.85));
    const int label = f.labels[size_t(i)], pred = s.predicted[size_t(i)];
    char buf[160];
    std::snprintf(buf, sizeof buf, "true %s", f.class_names[size_t(label)].c_str());
    g.captions.push_back(buf);
    std::snprintf(buf, sizeof buf, "pred %s %.0f%%", f.class_names[size_t(pred)].c_str(),
                  100.0 * s.probs[size_t(i) * s.classes + pred]);
    g.captions.push_back(buf);
    std::snprintf(buf, sizeof buf, "max |grad| %.2g", double(range.hi));
    g.captions.push_back(buf);
  }
  g.footnote =
      "colour: black = no effect on the score, yellow = strongest (per image, 99th percentile)";
  return picture_grid_png(g);
}

}  // namespace kiln::analysis
