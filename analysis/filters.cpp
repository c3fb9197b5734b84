// analysis/filters.cpp — activation maximisation by regularised gradient ascent, feature maps.
#include "analysis/filters.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>

#include "analysis/plot.h"
#include "core/error.h"

namespace kiln::analysis {
namespace {

struct Geometry {
  int n, h, w, c;
  size_t image() const { return size_t(h) * w * c; }
  size_t total() const { return size_t(n) * image(); }
};

// Circular shift of every image by (dy, dx): out[y][x] = in[y - dy][x - dx].
template <typename T>
std::vector<T> roll(const std::vector<T>& in, const Geometry& g, int dy, int dx) {
  if (dy == 0 && dx == 0) return in;
  std::vector<T> out(in.size());
  for (int i = 0; i < g.n; ++i)
    for (int y = 0; y < g.h; ++y)
      for (int x = 0; x < g.w; ++x) {
        const int sy = ((y - dy) % g.h + g.h) % g.h, sx = ((x - dx) % g.w + g.w) % g.w;
        const size_t o = i * g.image() + (size_t(y) * g.w + x) * g.c;
        const size_t s = i * g.image() + (size_t(sy) * g.w + sx) * g.c;
        for (int c = 0; c < g.c; ++c) out[o + c] = in[s + c];
      }
  return out;
}

// Separable Gaussian blur of every image and channel, edges clamped.
void blur(std::vector<double>& v, const Geometry& g, double sigma) {
  const int r = std::max(1, int(std::ceil(2 * sigma)));
  std::vector<double> k(size_t(2 * r + 1));
  double sum = 0;
  for (int i = -r; i <= r; ++i) sum += k[size_t(i + r)] = std::exp(-0.5 * i * i / (sigma * sigma));
  for (double& x : k) x /= sum;
  std::vector<double> tmp(v.size());
  auto at = [&](const std::vector<double>& a, int i, int y, int x, int c) {
    y = std::clamp(y, 0, g.h - 1);
    x = std::clamp(x, 0, g.w - 1);
    return a[i * g.image() + (size_t(y) * g.w + x) * g.c + c];
  };
  for (int pass = 0; pass < 2; ++pass) {
    const std::vector<double>& src = pass == 0 ? v : tmp;
    std::vector<double>& dst = pass == 0 ? tmp : v;
    for (int i = 0; i < g.n; ++i)
      for (int y = 0; y < g.h; ++y)
        for (int x = 0; x < g.w; ++x)
          for (int c = 0; c < g.c; ++c) {
            double s = 0;
            for (int t = -r; t <= r; ++t)
              s += k[size_t(t + r)] *
                   (pass == 0 ? at(src, i, y, x + t, c) : at(src, i, y + t, x, c));
            dst[i * g.image() + (size_t(y) * g.w + x) * g.c + c] = s;
          }
  }
}

// Per image and channel: the mean of a [N][H][W][C] or [N][F] activation. [N][channels].
template <typename T>
std::vector<double> channel_means(const Tensor& a) {
  KILN_CHECK(a.rank() == 4 || a.rank() == 2,
             "filters: a layer's output must be [N][H][W][C] or [N][F], got ", a.str());
  const std::vector<T> v = a.to_vector<T>();
  const int64_t n = a.size(0), ch = a.size(a.rank() - 1);
  const int64_t positions = a.numel() / (n * ch);
  std::vector<double> m(size_t(n * ch), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t p = 0; p < positions; ++p)
      for (int64_t c = 0; c < ch; ++c)
        m[size_t(i * ch + c)] += double(v[size_t((i * positions + p) * ch + c)]);
  for (double& x : m) x /= double(positions);
  return m;
}

template <typename T>
Tensor upload(const std::vector<double>& v, const Shape& shape, Device device) {
  return Tensor::from_vector<T>(shape, std::vector<T>(v.begin(), v.end()), device);
}

template <typename T>
std::vector<double> layer_means(Sequential& model, int layer, const std::vector<double>& x,
                                const Shape& shape) {
  const Tensor t = upload<T>(x, shape, model.device());
  return channel_means<T>(model.forward_to(t, layer, Mode::eval));
}

template <typename T>
std::vector<ActivationMaxResult> maximize_typed(Sequential& model, int layer,
                                                const std::vector<int>& filters, const Geometry& g,
                                                const ActivationMaxOptions& o) {
  const Shape shape{g.n, g.h, g.w, g.c};
  std::mt19937_64 rng(o.seed);
  std::normal_distribution<double> noise(o.init_mean, o.init_std);
  // Every filter starts from the same noise image, so a filter's result does not depend on which
  // other filters share its batch.
  std::vector<double> x(g.total());
  for (size_t k = 0; k < g.image(); ++k) x[k] = std::clamp(noise(rng), o.lo, o.hi);
  for (int i = 1; i < g.n; ++i)
    std::copy(x.begin(), x.begin() + std::ptrdiff_t(g.image()),
              x.begin() + std::ptrdiff_t(i * g.image()));

  const std::vector<double> start = layer_means<T>(model, layer, x, shape);
  const int64_t channels = int64_t(start.size()) / g.n;
  for (int f : filters)
    KILN_CHECK(f >= 0 && f < channels, "maximize_activations: filter ", f, " outside layer ", layer,
               "'s ", channels, " channels");

  std::uniform_int_distribution<int> shift(-o.jitter, o.jitter);
  for (int step = 0; step < o.steps; ++step) {
    const int dy = o.jitter > 0 ? shift(rng) : 0, dx = o.jitter > 0 ? shift(rng) : 0;
    const Tensor xt = upload<T>(roll(x, g, dy, dx), shape, model.device());
    const Tensor& a = model.forward_to(xt, layer, Mode::eval);
    // d (mean activation of filter f_i of image i) / d a: 1 / positions on that channel.
    const int64_t positions = a.numel() / (int64_t(g.n) * channels);
    std::vector<T> d(size_t(a.numel()), T(0));
    for (int i = 0; i < g.n; ++i)
      for (int64_t p = 0; p < positions; ++p)
        d[size_t((i * positions + p) * channels + filters[size_t(i)])] = T(1.0 / double(positions));
    const Tensor dt = Tensor::from_vector<T>(a.shape(), d, model.device());
    const Tensor& gx = model.backward_from(layer, dt, {.need_dx = true, .param_grads = false});
    const std::vector<T> grad = roll(gx.to_vector<T>(), g, -dy, -dx);
    for (int i = 0; i < g.n; ++i) {
      const size_t base = i * g.image();
      double mean_abs = 0;
      for (size_t k = 0; k < g.image(); ++k) mean_abs += std::abs(double(grad[base + k]));
      mean_abs /= double(g.image());
      if (!(mean_abs > 0)) continue;  // a dead filter: nothing to climb
      const double scale = o.step_size / mean_abs;
      for (size_t k = 0; k < g.image(); ++k) x[base + k] += scale * double(grad[base + k]);
    }
    for (double& v : x) v = o.init_mean + (1 - o.l2_decay) * (v - o.init_mean);
    if (o.blur_every > 0 && (step + 1) % o.blur_every == 0 && o.blur_sigma > 0)
      blur(x, g, o.blur_sigma);
    for (double& v : x) v = std::clamp(v, o.lo, o.hi);
  }

  const std::vector<double> end = layer_means<T>(model, layer, x, shape);
  std::vector<ActivationMaxResult> out;
  for (int i = 0; i < g.n; ++i) {
    ActivationMaxResult r;
    r.filter = filters[size_t(i)];
    r.start_activation = start[size_t(i * channels + r.filter)];
    r.final_activation = end[size_t(i * channels + r.filter)];
    r.image.assign(x.begin() + std::ptrdiff_t(i * g.image()),
                   x.begin() + std::ptrdiff_t((i + 1) * g.image()));
    out.push_back(std::move(r));
  }
  return out;
}

void check_model_input(const Sequential& model, int layer, const Shape& input, const char* what) {
  KILN_CHECK(input.rank() == 4, what, ": the input shape must be [N][H][W][C], got ", input.str());
  KILN_CHECK(layer >= 0 && layer < model.size(), what, ": layer ", layer, " outside [0, ",
             model.size(), ")");
  KILN_CHECK(model.dtype() == DType::f32 || model.dtype() == DType::f64, what,
             ": the model must be f32 or f64");
}

}  // namespace

std::vector<ActivationMaxResult> maximize_activations(Sequential& model, int layer,
                                                      const std::vector<int>& filters,
                                                      const Shape& input,
                                                      const ActivationMaxOptions& options) {
  check_model_input(model, layer, input, "maximize_activations");
  KILN_CHECK(!filters.empty(), "maximize_activations: no filters");
  KILN_CHECK(options.lo < options.hi && options.steps >= 0 && options.jitter >= 0,
             "maximize_activations: bad options");
  const Geometry g{int(filters.size()), int(input[1]), int(input[2]), int(input[3])};
  if (model.dtype() == DType::f64) return maximize_typed<double>(model, layer, filters, g, options);
  return maximize_typed<float>(model, layer, filters, g, options);
}

std::vector<double> mean_activations(Sequential& model, int layer, const std::vector<float>& images,
                                     const Shape& input_shape) {
  check_model_input(model, layer, input_shape, "mean_activations");
  const std::vector<double> x(images.begin(), images.end());
  KILN_CHECK(int64_t(x.size()) == input_shape.numel(), "mean_activations: ", x.size(),
             " values for shape ", input_shape.str());
  if (model.dtype() == DType::f64) return layer_means<double>(model, layer, x, input_shape);
  return layer_means<float>(model, layer, x, input_shape);
}

FeatureMaps feature_maps(Sequential& model, int layer, const std::vector<float>& image,
                         const Shape& input_shape) {
  check_model_input(model, layer, input_shape, "feature_maps");
  KILN_CHECK(input_shape[0] == 1 && int64_t(image.size()) == input_shape.numel(),
             "feature_maps: one image of shape ", input_shape.str(), " expected, got ",
             image.size(), " values");
  const std::vector<double> x(image.begin(), image.end());
  FeatureMaps f;
  auto take = [&](const Tensor& a) {
    KILN_CHECK(a.rank() == 4, "feature_maps: layer ", layer, " outputs ", a.str(),
               ", not a [1][H][W][C] map");
    f.height = int(a.size(1));
    f.width = int(a.size(2));
    f.channels = int(a.size(3));
  };
  if (model.dtype() == DType::f64) {
    const Tensor t = upload<double>(x, input_shape, model.device());
    const Tensor& a = model.forward_to(t, layer, Mode::eval);
    take(a);
    const std::vector<double> v = a.to_vector<double>();
    f.values.assign(v.begin(), v.end());
  } else {
    const Tensor t = upload<float>(x, input_shape, model.device());
    const Tensor& a = model.forward_to(t, layer, Mode::eval);
    take(a);
    f.values = a.to_vector<float>();
  }
  return f;
}

std::vector<int> conv_block_activations(const Sequential& model) {
  std::vector<int> out;
  for (int k = 1; k < model.size(); ++k) {
    const std::string kind = model[k].kind(), before = model[k - 1].kind();
    if ((kind == "LeakyReLU" || kind == "ReLU") && (before == "BatchNorm2d" || before == "Conv2d"))
      out.push_back(k);
  }
  return out;
}

Image filter_grid_png(const std::vector<ActivationMaxResult>& results, int height, int width,
                      int channels, const std::string& title, int cols, int cell_px) {
  KILN_CHECK(!results.empty() && cols > 0, "filter_grid_png: nothing to draw");
  const int n = int(results.size());
  cols = std::min(cols, n);
  PictureGrid g{.title = title, .rows = (n + cols - 1) / cols, .cols = cols, .cell_px = cell_px};
  for (const ActivationMaxResult& r : results) {
    KILN_CHECK(r.image.size() == size_t(height) * width * channels,
               "filter_grid_png: image of filter ", r.filter, " has ", r.image.size(), " values");
    // A uniform picture (the filter wants overall darkness or brightness) keeps its true grey
    // level; stretching it would paint a white one black.
    const auto [lo, hi] = std::minmax_element(r.image.begin(), r.image.end());
    const Range range = *hi > *lo ? Range{*lo, *hi} : Range{0, 1};
    g.cells.push_back(picture(r.image.data(), height, width, channels, range));
    char buf[64];
    if (r.start_activation > 0)
      std::snprintf(buf, sizeof buf, "#%d  x%.0f", r.filter,
                    r.final_activation / r.start_activation);
    else
      std::snprintf(buf, sizeof buf, "#%d  act %.2g", r.filter, r.final_activation);
    g.captions.push_back(buf);
  }
  while (g.cells.size() < size_t(g.rows * g.cols)) {
    g.cells.emplace_back();
    g.captions.emplace_back();
  }
  g.footnote =
      "caption: filter index and its activation gain over the starting noise (xN), or its final "
      "mean activation (act A) where the noise gave none";
  return picture_grid_png(g);
}

Image feature_map_grid_png(const FeatureMaps& maps, const std::string& title, int max_maps,
                           int cols, int cell_px) {
  KILN_CHECK(maps.channels > 0 && cols > 0, "feature_map_grid_png: no maps");
  const int n = std::min(max_maps, maps.channels);
  cols = std::min(cols, n);
  PictureGrid g{.title = title, .rows = (n + cols - 1) / cols, .cols = cols, .cell_px = cell_px};
  const size_t hw = size_t(maps.height) * maps.width;
  std::vector<float> channel(hw);
  for (int c = 0; c < n; ++c) {
    for (size_t p = 0; p < hw; ++p) channel[p] = maps.values[p * maps.channels + size_t(c)];
    const auto [lo, hi] = std::minmax_element(channel.begin(), channel.end());
    // A constant map (a dead channel) shows black rather than as a stretched mid grey.
    const Range shown = *hi > *lo ? Range{*lo, *hi} : Range{*lo, *lo + 1.0};
    g.cells.push_back(colorize(channel.data(), maps.height, maps.width, shown, ColorMap::gray));
    char buf[64];
    std::snprintf(buf, sizeof buf, "#%d max %.2g", c, double(*hi));
    g.captions.push_back(buf);
  }
  while (g.cells.size() < size_t(g.rows * g.cols)) {
    g.cells.emplace_back();
    g.captions.emplace_back();
  }
  g.footnote = "each map stretched to its own range: black = lowest, white = highest activation";
  return picture_grid_png(g);
}

}  // namespace kiln::analysis
