// examples/fer_cnn/cmd_filters.cpp — `fer_cnn filters`: what the filters of a checkpoint respond
// to (docs/report.md §5): (a) activation maximisation at three depths, one grid PNG per layer, and
// (b) the feature maps of one image at a layer (the first 64 channels). The methods are in
// analysis/filters.h.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>

#include "analysis/filters.h"
#include "examples/fer_cnn/fer_cnn.h"

namespace fer {

// "layer 12: LeakyReLU of block 3 (12x12x32)". Also used by `fer_cnn report`.
std::string layer_title(kiln::Sequential& net, const kiln::data::ImageSpec& spec, int layer) {
  const std::vector<int> blocks = kiln::analysis::conv_block_activations(net);
  const auto it = std::find(blocks.begin(), blocks.end(), layer);
  kiln::Shape s{1, spec.height, spec.width, spec.channels};
  for (int k = 0; k <= layer; ++k) s = net[k].output_shape(s);
  std::string shape;
  for (int d = 1; d < s.rank(); ++d) shape += (d > 1 ? "x" : "") + std::to_string(s[d]);
  return "layer " + std::to_string(layer) + ": " + net[layer].kind() +
         (it != blocks.end() ? " of block " + std::to_string(it - blocks.begin() + 1) : "") + " (" +
         shape + ")";
}

// The default depths: the first, middle and last conv block's activation. Also used by report.
std::vector<int> default_filter_layers(kiln::Sequential& net) {
  const std::vector<int> b = kiln::analysis::conv_block_activations(net);
  if (b.size() < 3) return b;
  return {b.front(), b[b.size() / 2], b.back()};
}

// Activation-maximisation grids of the first `filters` channels of each layer: (title, picture).
std::vector<std::pair<std::string, kiln::analysis::Image>> filter_figures(
    kiln::Sequential& net, const kiln::data::ImageSpec& spec, const std::vector<int>& layers,
    int filters, const kiln::analysis::ActivationMaxOptions& options) {
  std::vector<std::pair<std::string, kiln::analysis::Image>> out;
  for (int layer : layers) {
    if (layer < 0 || layer >= net.size())
      throw UsageError("--layers: " + std::to_string(layer) + " is not a layer of this model (0.." +
                       std::to_string(net.size() - 1) + ")");
    kiln::Shape s{1, spec.height, spec.width, spec.channels};
    for (int k = 0; k <= layer; ++k) s = net[k].output_shape(s);
    const int channels = int(s[s.rank() - 1]);
    std::vector<int> which;
    for (int c = 0; c < std::min(filters, channels); ++c) which.push_back(c);
    const auto results = kiln::analysis::maximize_activations(
        net, layer, which, {1, spec.height, spec.width, spec.channels}, options);
    const std::string title = layer_title(net, spec, layer);
    out.push_back(
        {title, kiln::analysis::filter_grid_png(results, spec.height, spec.width, spec.channels,
                                                title, 8, std::max(88, 2 * spec.width))});
    std::printf("  %s: %zu filters maximised\n", title.c_str(), which.size());
  }
  return out;
}

// The feature maps of `image` ([H][W][C] in [0, 1]) at `layer`, first 64 channels.
kiln::analysis::Image feature_map_figure(kiln::Sequential& net, const kiln::data::ImageSpec& spec,
                                         const std::vector<float>& image, int layer,
                                         const std::string& what) {
  const kiln::analysis::FeatureMaps f =
      kiln::analysis::feature_maps(net, layer, image, {1, spec.height, spec.width, spec.channels});
  return kiln::analysis::feature_map_grid_png(
      f, "Feature maps of " + what + ", " + layer_title(net, spec, layer), 64, 8,
      std::max(64, std::min(120, 8 * f.width)));
}

// The class whose image the model is surest of (rule in fer_cnn.h). Also used by report.
int surest_class(kiln::Sequential& net, const kiln::data::ImageSpec& spec,
                 const std::vector<float>& images) {
  const int n = int(images.size() / spec.pixels());
  const kiln::Tensor x = kiln::Tensor::from_vector<float>(
      {n, spec.height, spec.width, spec.channels}, images, net.device());
  const std::vector<float> z = net.forward(x, kiln::Mode::eval).to_vector<float>();
  if (z.size() != size_t(n) * size_t(n))
    throw UsageError("the data has " + std::to_string(n) + " classes but the model has " +
                     std::to_string(z.size() / size_t(n)) +
                     ": pass --data with the classes the model was trained on");
  int best = 0;
  double best_log_p = -INFINITY;
  for (int c = 0; c < n; ++c) {
    const float* row = z.data() + size_t(c) * size_t(n);
    const float zmax = *std::max_element(row, row + n);
    double sum = 0;
    for (int k = 0; k < n; ++k) sum += std::exp(double(row[k]) - zmax);
    const double log_p = double(row[c]) - zmax - std::log(sum);  // log softmax of the true class
    if (log_p > best_log_p) {
      best_log_p = log_p;
      best = c;
    }
  }
  return best;
}

namespace {

struct Options : CheckpointOptions {
  std::string out, image_class;  // empty: the class the model is surest of
  std::vector<int> layers;
  int filters = 16, steps = 150, feature_layer = -1;
} opts;

int run_filters() {
  if (opts.filters < 1) throw UsageError("--filters must be at least 1");
  const OpenedCheckpoint opened = open_checkpoint(opts);
  kiln::Sequential& net = *opened.net;
  const kiln::data::ImageSpec spec = opened.info.spec();
  const std::string dir = opts.out.empty() ? analysis_dir(opts.checkpoint) : opts.out;
  kiln::analysis::ActivationMaxOptions am;
  am.steps = opts.steps;
  const std::vector<int> layers = opts.layers.empty() ? default_filter_layers(net) : opts.layers;
  const auto figures = filter_figures(net, spec, layers, opts.filters, am);
  for (size_t i = 0; i < figures.size(); ++i) {
    const std::string path = join_path(dir, "filters_layer_" + std::to_string(layers[i]) + ".png");
    kiln::analysis::write_png(path, figures[i].second);
    std::printf("wrote %s\n", path.c_str());
  }

  // Feature maps of the first test image of the chosen class.
  const auto& names = opened.info.class_names;
  const auto named = std::find(names.begin(), names.end(), opts.image_class);
  if (!opts.image_class.empty() && named == names.end())
    throw UsageError("--image-class '" + opts.image_class + "' is not a class of this model");
  const kiln::data::Dataset& set = opened.data.test.empty() ? opened.data.val : opened.data.test;
  std::vector<int> labels;
  const std::vector<float> all = pick_per_class(set, 1, &labels);
  const size_t c = opts.image_class.empty() ? size_t(surest_class(net, spec, all))
                                            : size_t(named - names.begin());
  const std::vector<float> image(all.begin() + std::ptrdiff_t(c * spec.pixels()),
                                 all.begin() + std::ptrdiff_t((c + 1) * spec.pixels()));
  const int layer = opts.feature_layer >= 0 ? opts.feature_layer
                                            : kiln::analysis::conv_block_activations(net).back();
  const std::string path = join_path(dir, "feature_maps_layer_" + std::to_string(layer) + ".png");
  kiln::analysis::write_png(path,
                            feature_map_figure(net, spec, image, layer, "a " + names[c] + " face"));
  std::printf("wrote %s\n", path.c_str());
  return 0;
}

const Registration reg{
    {"filters", "Filter visualisation: activation maximisation and feature maps (grid PNGs)",
     [](CLI::App& app) {
       opts.add_to(app, "where the feature-map image comes from");
       app.add_option("--layers", opts.layers,
                      "layer indices to visualise (default: first, middle and last conv block)")
           ->check(integer_in(0, 100000));
       app.add_option("--filters", opts.filters, "filters per layer (the first N channels)")
           ->check(integer_in(1, 4096))
           ->capture_default_str();
       app.add_option("--steps", opts.steps, "gradient-ascent steps")
           ->check(integer_in(1, 1000000))
           ->capture_default_str();
       app.add_option("--feature-layer", opts.feature_layer,
                      "layer of the feature maps (default: the last conv block)")
           ->check(integer_in(0, 100000));
       app.add_option("--image-class", opts.image_class,
                      "class of the test image whose feature maps are shown (default: the class "
                      "whose first test image the model is surest of)");
       app.add_option("--out", opts.out, "output folder (default: <checkpoint dir>/analysis)");
     },
     run_filters}};

}  // namespace
}  // namespace fer
