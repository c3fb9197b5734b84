// examples/fer_cnn/cmd_report.cpp — `fer_cnn report`: the whole analysis of a training run as one
// self-contained HTML page (docs/report.md §2-5): configuration, training curves, confusion matrix
// and per-class metrics on held-out data, saliency maps, activation maximisation at three depths
// and feature maps, each with a text on how to read it. Every figure is also left as a file in
// <run>/analysis/ (PNG, SVG, CSV).
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>

#include "analysis/curves.h"
#include "analysis/filters.h"
#include "analysis/metrics.h"
#include "analysis/report.h"
#include "examples/fer_cnn/fer_cnn.h"
#include "optim/checkpoint.h"

namespace fer {

namespace {

struct Options {
  std::string run = "runs/fer_cnn", checkpoint, data, split = "test", out, device = "auto";
  int per_class = 2, filters = 16, steps = 150, train_per_class = 0, batch_size = 128;
  int64_t seed = -1;
} opts;

std::string pct(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f%%", 100 * v);
  return buf;
}

std::string num(double v, const char* f = "%.4f") {
  char buf[32];
  std::snprintf(buf, sizeof buf, f, v);
  return buf;
}

std::map<std::string, std::string> metadata_of(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  return kiln::read_safetensors_metadata(path);
}

std::string get(const std::map<std::string, std::string>& m, const std::string& key,
                const std::string& fallback = "") {
  const auto it = m.find(key);
  return it == m.end() ? fallback : it->second;
}

// What the curves say, in one sentence per fact.
std::string curve_summary(const std::vector<kiln::analysis::EpochRecord>& h) {
  if (h.empty()) return "";
  size_t best = 0;
  for (size_t i = 0; i < h.size(); ++i)
    if (h[i].val_acc > h[best].val_acc) best = i;
  const auto& last = h.back();
  std::string s = "This run: " + std::to_string(h.size()) +
                  " epochs; validation accuracy peaked at " + pct(h[best].val_acc) + " in epoch " +
                  num(h[best].epoch, "%.0f") + "; at the end training accuracy is " +
                  pct(last.train_acc) + " and validation " + pct(last.val_acc);
  const double gap = 100 * (last.train_acc - last.val_acc);
  s += gap >= 0 ? " (gap " + num(gap, "%.1f") + " points)."
                : ": validation is above training, as expected while the model is still "
                  "improving — the training figure is averaged over the epoch with dropout on.";
  return s;
}

// The largest confusions and the best and worst classes.
std::string confusion_summary(const kiln::analysis::ConfusionMatrix& cm,
                              const kiln::analysis::Metrics& m,
                              const std::vector<std::string>& names) {
  const int n = cm.num_classes();
  int best = 0, worst = 0;
  for (int c = 0; c < n; ++c) {
    if (m.per_class[size_t(c)].recall > m.per_class[size_t(best)].recall) best = c;
    if (m.per_class[size_t(c)].recall < m.per_class[size_t(worst)].recall) worst = c;
  }
  struct Off {
    double f;
    int t, p;
  };
  std::vector<Off> off;
  for (int t = 0; t < n; ++t)
    for (int p = 0; p < n; ++p)
      if (t != p && cm.count(t, p) > 0) off.push_back({cm.row_fraction(t, p), t, p});
  std::sort(off.begin(), off.end(), [](const Off& a, const Off& b) { return a.f > b.f; });
  std::string s = "This run: accuracy " + pct(m.accuracy) +
                  "; best recognised: " + names[size_t(best)] + " (" +
                  pct(m.per_class[size_t(best)].recall) + "), worst: " + names[size_t(worst)] +
                  " (" + pct(m.per_class[size_t(worst)].recall) + ").";
  if (!off.empty()) {
    s += " Most frequent confusions: ";
    for (size_t i = 0; i < std::min<size_t>(3, off.size()); ++i)
      s += (i ? ", " : "") + names[size_t(off[i].t)] + " taken for " + names[size_t(off[i].p)] +
           " (" + pct(off[i].f) + ")";
    s += ".";
  } else {
    s += " No image was confused.";
  }
  return s;
}

int run_report() {
  namespace fs = std::filesystem;
  using kiln::analysis::HtmlReport;
  const kiln::Device device = select_device(opts.device);
  const std::string checkpoint =
      opts.checkpoint.empty() ? join_path(opts.run, "best.safetensors") : opts.checkpoint;
  const std::string dir = join_path(opts.run, "analysis");
  const std::string out = opts.out.empty() ? join_path(opts.run, "report.html") : opts.out;
  ModelInfo info;
  auto net = load_network(checkpoint, device, &info);
  const auto model_meta = metadata_of(checkpoint);
  const auto state_meta = metadata_of(join_path(opts.run, "last.train.safetensors"));
  const std::string data_source =
      !opts.data.empty() ? opts.data : get(state_meta, "kiln.data", "synthetic");
  const uint64_t seed =
      opts.seed >= 0 ? uint64_t(opts.seed) : std::stoull(get(state_meta, "kiln.seed", "1"));
  const kiln::data::ImageSpec spec = info.spec();

  HtmlReport page("fer_cnn report: " + fs::path(opts.run).filename().string(),
                  "Kiln's analysis of the run in " + opts.run + " (checkpoint " + checkpoint + ")");
  std::printf("report: %s\n", opts.run.c_str());

  // ---- configuration
  page.heading("Run configuration");
  const auto widths = kiln::fer_cnn_widths(info.config.width_multiplier);
  std::string w;
  for (size_t i = 0; i < 5; ++i) w += (i ? ", " : "") + std::to_string(widths[i]);
  page.key_values(
      "Model and data",
      {{"model", "fer_cnn: 5 x (Conv3x3 - BatchNorm - LeakyReLU - MaxPool2 - Dropout), 3 linear"},
       {"input", std::to_string(spec.channels) + " x " + std::to_string(spec.height) + " x " +
                     std::to_string(spec.width)},
       {"width multiplier", num(info.config.width_multiplier, "%g") + " (conv widths " + w + ")"},
       {"parameters", std::to_string(net->num_params())},
       {"classes", std::to_string(info.config.classes)},
       {"data", data_source + " (seed " + std::to_string(seed) + ")"},
       {"checkpoint epoch", get(model_meta, "kiln.epoch", "?")},
       {"checkpoint validation accuracy", get(model_meta, "kiln.val_acc", "?")},
       {"optimizer steps", get(model_meta, "kiln.steps", "?")},
       {"device used for this report", device == kiln::Device::cuda ? "cuda" : "cpu"}});

  // How the run trained (the training state of runs made before this was recorded lacks it).
  nlohmann::json training = nlohmann::json::object();
  try {
    training = nlohmann::json::parse(get(state_meta, "kiln.training", "{}"));
  } catch (const nlohmann::json::exception&) {
  }
  std::vector<std::pair<std::string, std::string>> training_rows;
  for (const char* key : {"device", "epochs", "batch_size", "optimizer", "lr", "schedule",
                          "augmentation", "train_images", "val_images"})
    if (training.contains(key)) {
      const auto& v = training[key];
      std::string name = key;
      std::replace(name.begin(), name.end(), '_', ' ');
      training_rows.push_back({name, v.is_string() ? v.get<std::string>() : v.dump()});
    }
  if (!training_rows.empty()) page.key_values("Training", training_rows);
  const std::string augmentation = training.value("augmentation", std::string("unknown"));
  const std::string train_batches = augmentation == "none" ? "with dropout, no augmentation"
                                    : augmentation == "unknown"
                                        ? "with dropout and any augmentation"
                                        : "with dropout and augmentation (" + augmentation + ")";

  // ---- training curves
  page.heading("Training");
  const std::string history_path = join_path(opts.run, "history.csv");
  if (fs::exists(history_path)) {
    const auto history = kiln::analysis::read_history_csv(history_path);
    kiln::analysis::update_training_curves(history_path, join_path(dir, "curves"));
    page.figure_svg(
        "Training curves", kiln::analysis::training_curves_svg(history),
        "Loss (left) and accuracy (right) after every epoch; blue solid: the training batches (" +
            train_batches +
            ", averaged over the epoch), orange dashed: the validation split (eval mode, after "
            "the epoch).\n\nFalling curves mean the model is still learning. "
            "When the validation loss stops falling (or rises) while the training loss keeps going "
            "down, and a gap opens between the accuracies, the model is over-fitting: memorising "
            "the "
            "training images rather than learning what generalises. The report's FER2013 run shows "
            "exactly that near epoch 20 (validation accuracy flat near 60%).\n\n" +
            curve_summary(history));
  } else {
    page.paragraph("No history.csv in " + opts.run + ": the training curves are not shown.");
  }

  // ---- evaluation
  kiln::data::Splits data = load_data(data_source, spec, seed, opts.train_per_class);
  const bool use_test = opts.split == "test" && !data.test.empty();
  const kiln::data::Dataset& set = use_test ? data.test : data.val;
  const std::string split_name = use_test ? "test" : "validation";
  std::printf("  evaluating on the %s split (%zu images)\n", split_name.c_str(), set.size());
  const EvalResult r = evaluate(*net, set, opts.batch_size, device);
  const auto cm = kiln::analysis::ConfusionMatrix::from_counts(r.confusion);
  const auto metrics = kiln::analysis::write_evaluation_files(dir, cm, info.class_names);
  page.heading("Evaluation on the " + split_name + " split");
  page.paragraph(std::to_string(r.count) + " images, loss " + num(r.loss) + ", accuracy " +
                 pct(r.accuracy) + ", macro-averaged F1 " + num(metrics.macro_f1, "%.3f") + ".");
  page.figure(
      "Confusion matrix", kiln::analysis::confusion_png(cm, info.class_names),
      "Each row is the true expression, each column what the model predicted. Left: the number "
      "of images; right: the same row divided by its total, so the diagonal is each class's "
      "recall (the share of that expression recognised) and the rest of a row says what it was "
      "mistaken for. Darker cells hold a larger share of their row.\n\nA good model has a dark "
      "diagonal; a dark off-diagonal cell is a systematic confusion (in the report on FER2013: "
      "fear taken for sad and neutral, disgust for angry).\n\n" +
          confusion_summary(cm, metrics, info.class_names));
  std::vector<std::vector<std::string>> rows;
  for (size_t c = 0; c < metrics.per_class.size(); ++c) {
    const auto& k = metrics.per_class[c];
    rows.push_back({info.class_names[c], num(k.precision, "%.3f"), num(k.recall, "%.3f"),
                    num(k.f1, "%.3f"), std::to_string(k.support)});
  }
  rows.push_back({"macro average", num(metrics.macro_precision, "%.3f"),
                  num(metrics.macro_recall, "%.3f"), num(metrics.macro_f1, "%.3f"),
                  std::to_string(r.count)});
  page.paragraph(
      "Per class: precision is the share of the images predicted as the class that truly are; "
      "recall the share of the class's images that were found; F1 their harmonic mean.");
  page.table("Per-class metrics on the " + split_name + " split",
             {"class", "precision", "recall", "F1", "images"}, rows);

  // ---- saliency
  std::printf("  saliency maps (%d per class)\n", opts.per_class);
  const kiln::analysis::Image sal = saliency_figure(*net, set, info.class_names, opts.per_class);
  kiln::analysis::write_png(join_path(dir, "saliency.png"), sal);
  page.heading("What the model looks at");
  page.figure(
      "Saliency maps", sal,
      "For each image (the first " + std::to_string(opts.per_class) + " " + split_name +
          " images of every class), the middle picture is |d score / d pixel|: how much the "
          "score of the true class (before the softmax) changes when that pixel changes, "
          "the largest over the colour channels (Simonyan et al. 2014). Black: no influence; "
          "yellow: the strongest (each map scaled to its own 99th percentile). The right "
          "picture lays the map over the face.\n\nA model that learned the expression "
          "concentrates on the mouth, the eyes and the brows; one that fires on the background, "
          "the hair or the frame relies on a shortcut. The captions give the true class, the "
          "prediction and its probability.");

  // ---- filters
  page.heading("What the filters respond to");
  kiln::analysis::ActivationMaxOptions am;
  am.steps = opts.steps;
  const std::vector<int> layers = default_filter_layers(*net);
  std::printf("  activation maximisation at layers");
  for (int l : layers) std::printf(" %d", l);
  std::printf(" (%d filters each, %d steps)\n", opts.filters, opts.steps);
  const auto figures = filter_figures(*net, spec, layers, opts.filters, am);
  for (size_t i = 0; i < figures.size(); ++i) {
    kiln::analysis::write_png(join_path(dir, "filters_layer_" + std::to_string(layers[i]) + ".png"),
                              figures[i].second);
    page.figure(
        "Activation maximisation, " + figures[i].first, figures[i].second,
        std::string(i == 0 ? "Each picture is an input image grown by gradient ascent, from grey "
                             "noise, to excite one filter of this layer as much as possible (its "
                             "mean activation), with small random shifts, blurring and decay "
                             "towards grey so that the pattern is one a reader can see. The "
                             "caption gives the filter's index and how many times more it fires "
                             "on the picture than on the starting noise. A uniform black or white "
                             "picture means the filter responds to overall darkness or "
                             "brightness rather than to a pattern.\n\n"
                           : "") +
            (i == 0 ? "Early layers see 3x3 to 10x10 pixel neighbourhoods: expect edges, "
                      "stripes and blobs of one orientation or contrast, repeated across the "
                      "picture."
             : i + 1 == figures.size()
                 ? "The deepest block sees most of the face: expect larger parts (a curved "
                   "mouth, a pair of brows, eyes) rather than textures; filters that stay grey "
                   "are dead or need a specific combination the ascent did not find."
                 : "A middle block combines edges into small parts: corners, short curves, "
                   "dots."));
  }
  std::vector<int> one_label;
  const std::vector<float> firsts = pick_per_class(set, 1, &one_label);
  const auto happy = std::find(info.class_names.begin(), info.class_names.end(), "happy");
  const size_t c = happy == info.class_names.end() ? 0 : size_t(happy - info.class_names.begin());
  const std::vector<float> image(firsts.begin() + std::ptrdiff_t(c * spec.pixels()),
                                 firsts.begin() + std::ptrdiff_t((c + 1) * spec.pixels()));
  const std::vector<int> blocks = kiln::analysis::conv_block_activations(*net);
  for (int layer : {blocks.front(), blocks.back()}) {
    const auto fm =
        feature_map_figure(*net, spec, image, layer, "a " + info.class_names[c] + " face");
    kiln::analysis::write_png(
        join_path(dir, "feature_maps_layer_" + std::to_string(layer) + ".png"), fm);
    page.figure(
        "Feature maps, " + layer_title(*net, spec, layer), fm,
        "The activation of the first 64 channels (or all, if fewer) of this layer for one " +
            split_name + " image of class '" + info.class_names[c] +
            "', each channel stretched to its own range: white where the filter fires, black "
            "where it does not.\n\n" +
            (layer == blocks.front()
                 ? "The first block keeps the full resolution: most maps are recognisable "
                   "copies of the face, each highlighting edges of one direction or regions of "
                   "one brightness."
                 : "The last block has pooled the face down to a few cells: each map says "
                   "whether (and roughly where) its part of the face is present — this is what "
                   "the linear layers classify."));
  }

  page.write(out);
  std::printf("wrote %s (figures also in %s)\n", out.c_str(), dir.c_str());
  return 0;
}

const Registration reg{
    {"report", "The run's analysis as one HTML page: curves, confusion, saliency, filters",
     [](CLI::App& app) {
       app.add_option("--run", opts.run, "the training run's folder (fer_cnn train --out)")
           ->capture_default_str();
       app.add_option("--checkpoint", opts.checkpoint, "default: <run>/best.safetensors");
       app.add_option("--data", opts.data, "default: the data the run trained on");
       app.add_option("--split", opts.split, "test or val: the held-out images evaluated")
           ->check(CLI::IsMember({"val", "test"}))
           ->capture_default_str();
       app.add_option("--per-class", opts.per_class, "saliency images per class")
           ->check(integer_in(1, 8))
           ->capture_default_str();
       app.add_option("--filters", opts.filters, "filters per layer in activation maximisation")
           ->check(integer_in(1, 4096))
           ->capture_default_str();
       app.add_option("--steps", opts.steps, "gradient-ascent steps")
           ->check(integer_in(1, 1000000))
           ->capture_default_str();
       app.add_option("--train-per-class", opts.train_per_class,
                      "synthetic images per class (as in training)")
           ->check(integer_in(1, 1000000));
       app.add_option("--seed", opts.seed, "data seed (default: the run's)")
           ->check(integer_in(0, INT64_MAX));
       app.add_option("--out", opts.out, "the HTML page (default: <run>/report.html)");
       add_device_option(app, opts.device);
     },
     run_report}};

}  // namespace
}  // namespace fer
