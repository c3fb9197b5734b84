// examples/fer_cnn/cmd_saliency.cpp — `fer_cnn saliency`: saliency maps of a checkpoint, a grid PNG
// with one row per class (the input, |d score / d input|, and the map over the input), as the
// report shows (docs/report.md §4). The maps themselves come from analysis/saliency.h.
#include <algorithm>
#include <cstdio>
#include <filesystem>

#include "analysis/saliency.h"
#include "examples/fer_cnn/fer_cnn.h"

namespace fer {

// The first `per_class` images of each class of `set`, as model inputs in [0, 1]: [n][H][W][C] with
// the classes in order. Also used by `fer_cnn report` and `fer_cnn filters`.
std::vector<float> pick_per_class(const kiln::data::Dataset& set, int per_class,
                                  std::vector<int>* labels) {
  std::vector<float> out;
  labels->clear();
  for (int c = 0; c < set.num_classes(); ++c) {
    int taken = 0;
    for (size_t i = 0; i < set.size() && taken < per_class; ++i) {
      if (set.labels[i] != c) continue;
      const uint8_t* img = set.image(i);
      for (size_t k = 0; k < set.image_bytes(); ++k) out.push_back(float(img[k]) / 255.0f);
      labels->push_back(c);
      ++taken;
    }
    if (taken < per_class)
      throw UsageError("the data has only " + std::to_string(taken) + " images of class '" +
                       set.class_names[size_t(c)] + "'; ask for fewer per class");
  }
  return out;
}

// The saliency grid of `per_class` images per class. Also used by `fer_cnn report`.
kiln::analysis::Image saliency_figure(kiln::Sequential& net, const kiln::data::Dataset& set,
                                      const std::vector<std::string>& class_names, int per_class) {
  std::vector<int> labels;
  const std::vector<float> x = pick_per_class(set, per_class, &labels);
  const int n = int(labels.size());
  const kiln::Tensor xt =
      kiln::Tensor::from_vector<float>({n, set.height, set.width, set.channels}, x, net.device());
  const kiln::analysis::SaliencyResult s = kiln::analysis::saliency_maps(net, xt, labels);
  return kiln::analysis::saliency_grid_png(s, {.inputs = x.data(),
                                               .channels = set.channels,
                                               .labels = labels,
                                               .class_names = class_names,
                                               .row_labels = class_names,
                                               .per_row = per_class,
                                               .cell_px = std::max(96, 2 * set.width)});
}

namespace {

struct Options : CheckpointOptions {
  std::string split = "test", out;
  int per_class = 2;
} opts;

int run_saliency() {
  const OpenedCheckpoint c = open_checkpoint(opts);
  const kiln::data::Dataset& set = choose_split(c.data, opts.split, opts.data, c.info);
  const std::string out =
      opts.out.empty() ? join_path(analysis_dir(opts.checkpoint), "saliency.png") : opts.out;
  kiln::analysis::write_png(out, saliency_figure(*c.net, set, c.info.class_names, opts.per_class));
  std::printf("wrote %s (%d %s images per class)\n", out.c_str(), opts.per_class,
              opts.split.c_str());
  return 0;
}

const Registration reg{
    {"saliency", "Saliency maps |d score / d input| for a few images per class (grid PNG)",
     [](CLI::App& app) {
       opts.add_to(app, "synthetic, a FER2013 CSV file, or an image folder");
       app.add_option("--split", opts.split, "train, val or test")
           ->check(CLI::IsMember({"train", "val", "test"}))
           ->capture_default_str();
       app.add_option("--per-class", opts.per_class, "images per class")
           ->check(integer_in(1, 8))
           ->capture_default_str();
       app.add_option("--out", opts.out,
                      "PNG to write (default: <checkpoint dir>/analysis/saliency.png)");
     },
     run_saliency}};

}  // namespace
}  // namespace fer
