// examples/fer_cnn/cmd_report.cpp — `fer_cnn report`: the whole analysis of a training run as one
// self-contained HTML page (docs/report.md §2-5): configuration, training curves, confusion matrix
// and per-class metrics on held-out data, saliency maps, activation maximisation at three depths
// and feature maps, each with a text on how to read it. Every figure is also left as a file in
// <run>/analysis/ (PNG, SVG, CSV).
//
// The file reads top-down: what the run folder says (RunFacts), the texts beside the figures (one
// function each, taking the facts they mention), then one function per section of the page, and
// run_report, which calls them in page order. Nothing depends on the class names: the image of the
// feature maps is the one the model is surest of (surest_class), and the comparisons with the
// FER2013 run of docs/report.md appear only when the checkpoint's classes are FER's seven.
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

using kiln::analysis::HtmlReport;

struct Options {
  std::string run = "runs/fer_cnn", checkpoint, data, split = "test", out, device = "auto";
  int per_class = 2, filters = 16, steps = 150, train_per_class = 0, batch_size = 128;
  int64_t seed = -1;
} opts;

// ---- formatting --------------------------------------------------------------------------------

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

std::string get(const std::map<std::string, std::string>& m, const std::string& key,
                const std::string& fallback = "") {
  const auto it = m.find(key);
  return it == m.end() ? fallback : it->second;
}

// ---- what the run folder says ------------------------------------------------------------------

// The checkpoint's and the training state's metadata, and what follows from them.
struct RunFacts {
  std::string checkpoint, analysis_dir;
  std::map<std::string, std::string> model_meta, state_meta;
  std::string data_source;  // --data, else what the run trained on
  uint64_t seed = 1;        // --seed, else the run's
  // How the run trained: empty for runs made before the training state recorded it.
  nlohmann::json training = nlohmann::json::object();
};

RunFacts read_run_facts(const std::string& checkpoint) {
  RunFacts f;
  f.checkpoint = checkpoint;
  f.analysis_dir = join_path(opts.run, "analysis");
  f.model_meta = checkpoint_metadata(f.checkpoint);
  f.state_meta = checkpoint_metadata(join_path(opts.run, "last.train.safetensors"));
  f.data_source = !opts.data.empty() ? opts.data : get(f.state_meta, "kiln.data", "synthetic");
  f.seed = opts.seed >= 0 ? uint64_t(opts.seed) : std::stoull(get(f.state_meta, "kiln.seed", "1"));
  try {
    f.training = nlohmann::json::parse(get(f.state_meta, "kiln.training", "{}"));
  } catch (const nlohmann::json::exception&) {
  }
  return f;
}

// ---- the texts beside the figures --------------------------------------------------------------

// What the training batches were, for the curves' legend.
std::string training_batches_text(const std::string& augmentation) {
  if (augmentation == "none") return "with dropout, no augmentation";
  if (augmentation == "unknown") return "with dropout and any augmentation";
  return "with dropout and augmentation (" + augmentation + ")";
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

std::string curves_caption(const std::string& training_batches, bool fer_classes,
                           const std::string& summary) {
  return "Loss (left) and accuracy (right) after every epoch; blue solid: the training batches (" +
         training_batches +
         ", averaged over the epoch), orange dashed: the validation split (eval mode, after the "
         "epoch).\n\nFalling curves mean the model is still learning. When the validation loss "
         "stops falling (or rises) while the training loss keeps going down, and a gap opens "
         "between the accuracies, the model is over-fitting: memorising the training images "
         "rather than learning what generalises." +
         std::string(fer_classes ? " The report's FER2013 run shows exactly that near epoch 20 "
                                   "(validation accuracy flat near 60%)."
                                 : "") +
         "\n\n" + summary;
}

// The best and the worst recognised class (the largest and smallest recall; ties: the first).
std::pair<int, int> best_and_worst_class(const kiln::analysis::Metrics& m) {
  int best = 0, worst = 0;
  for (int c = 0; c < int(m.per_class.size()); ++c) {
    if (m.per_class[size_t(c)].recall > m.per_class[size_t(best)].recall) best = c;
    if (m.per_class[size_t(c)].recall < m.per_class[size_t(worst)].recall) worst = c;
  }
  return {best, worst};
}

// The largest confusions and the best and worst classes.
std::string confusion_summary(const kiln::analysis::ConfusionMatrix& cm,
                              const kiln::analysis::Metrics& m,
                              const std::vector<std::string>& names) {
  const int n = cm.num_classes();
  const auto [best, worst] = best_and_worst_class(m);
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

std::string confusion_caption(bool fer_classes, const std::string& summary) {
  return "Each row is the true class, each column what the model predicted. Left: the number "
         "of images; right: the same row divided by its total, so the diagonal is each class's "
         "recall (the share of that class recognised) and the rest of a row says what it was "
         "mistaken for. Darker cells hold a larger share of their row.\n\nA good model has a dark "
         "diagonal; a dark off-diagonal cell is a systematic confusion" +
         std::string(fer_classes ? " (in the report on FER2013: fear taken for sad and neutral, "
                                   "disgust for angry)"
                                 : "") +
         ".\n\n" + summary;
}

std::string saliency_caption(int per_class, const std::string& split_name) {
  return "For each image (the first " + std::to_string(per_class) + " " + split_name +
         " images of every class), the middle picture is |d score / d pixel|: how much the "
         "score of the true class (before the softmax) changes when that pixel changes, "
         "the largest over the colour channels (Simonyan et al. 2014). Black: no influence; "
         "yellow: the strongest (each map scaled to its own 99th percentile). The right "
         "picture lays the map over the face.\n\nA model that learned the expression "
         "concentrates on the mouth, the eyes and the brows; one that fires on the background, "
         "the hair or the frame relies on a shortcut. The captions give the true class, the "
         "prediction and its probability.";
}

// The text of the i-th of `count` activation-maximisation figures (shallow to deep): how to read
// the pictures (the first figure only), then what to expect at that depth.
std::string activation_max_caption(size_t i, size_t count) {
  const std::string how_to_read =
      "Each picture is an input image grown by gradient ascent, from grey noise, to excite one "
      "filter of this layer as much as possible (its mean activation), with small random shifts, "
      "blurring and decay towards grey so that the pattern is one a reader can see. The caption "
      "gives the filter's index and how many times more it fires on the picture than on the "
      "starting noise. A uniform black or white picture means the filter responds to overall "
      "darkness or brightness rather than to a pattern.\n\n";
  if (i == 0)
    return how_to_read +
           "Early layers see 3x3 to 10x10 pixel neighbourhoods: expect edges, stripes and blobs "
           "of one orientation or contrast, repeated across the picture.";
  if (i + 1 == count)
    return "The deepest block sees most of the face: expect larger parts (a curved mouth, a pair "
           "of brows, eyes) rather than textures; filters that stay grey are dead or need a "
           "specific combination the ascent did not find.";
  return "A middle block combines edges into small parts: corners, short curves, dots.";
}

std::string feature_maps_caption(const std::string& split_name, const std::string& class_name,
                                 bool first_block) {
  return "The activation of the first 64 channels (or all, if fewer) of this layer for one " +
         split_name + " image of class '" + class_name +
         "' (the class whose first image the model is surest of), each channel stretched to its "
         "own range: white where the filter fires, black where it does not.\n\n" +
         (first_block ? "The first block keeps the full resolution: most maps are recognisable "
                        "copies of the face, each highlighting edges of one direction or regions "
                        "of one brightness."
                      : "The last block has pooled the face down to a few cells: each map says "
                        "whether (and roughly where) its part of the face is present — this is "
                        "what the linear layers classify.");
}

// ---- the sections of the page ------------------------------------------------------------------

// What every section reads.
struct Report {
  RunFacts facts;
  kiln::Device device;
  ModelInfo info;
  std::unique_ptr<kiln::Sequential> net;
  kiln::data::ImageSpec spec;
  bool fer_classes = false;  // the checkpoint's classes are FER's seven, in FER's order
};

void add_configuration(HtmlReport& page, const Report& r) {
  page.heading("Run configuration");
  const auto widths = kiln::fer_cnn_widths(r.info.config.width_multiplier);
  std::string w;
  for (size_t i = 0; i < 5; ++i) w += (i ? ", " : "") + std::to_string(widths[i]);
  page.key_values(
      "Model and data",
      {{"model", "fer_cnn: 5 x (Conv3x3 - BatchNorm - LeakyReLU - MaxPool2 - Dropout), 3 linear"},
       {"input", std::to_string(r.spec.channels) + " x " + std::to_string(r.spec.height) + " x " +
                     std::to_string(r.spec.width)},
       {"width multiplier", num(r.info.config.width_multiplier, "%g") + " (conv widths " + w + ")"},
       {"parameters", std::to_string(r.net->num_params())},
       {"classes", std::to_string(r.info.config.classes)},
       {"data", r.facts.data_source + " (seed " + std::to_string(r.facts.seed) + ")"},
       {"checkpoint epoch", get(r.facts.model_meta, "kiln.epoch", "?")},
       {"checkpoint validation accuracy", get(r.facts.model_meta, "kiln.val_acc", "?")},
       {"optimizer steps", get(r.facts.model_meta, "kiln.steps", "?")},
       {"device used for this report", r.device == kiln::Device::cuda ? "cuda" : "cpu"}});
  std::vector<std::pair<std::string, std::string>> training_rows;
  for (const char* key : {"device", "precision", "epochs", "batch_size", "optimizer", "lr",
                          "schedule", "augmentation", "train_images", "val_images"})
    if (r.facts.training.contains(key)) {
      const auto& v = r.facts.training[key];
      std::string name = key;
      std::replace(name.begin(), name.end(), '_', ' ');
      training_rows.push_back({name, v.is_string() ? v.get<std::string>() : v.dump()});
    }
  if (!training_rows.empty()) page.key_values("Training", training_rows);
}

void add_training_curves(HtmlReport& page, const Report& r) {
  page.heading("Training");
  const std::string history_path = join_path(opts.run, "history.csv");
  if (!std::filesystem::exists(history_path)) {
    page.paragraph("No history.csv in " + opts.run + ": the training curves are not shown.");
    return;
  }
  const auto history = kiln::analysis::read_history_csv(history_path);
  kiln::analysis::update_training_curves(history_path, join_path(r.facts.analysis_dir, "curves"));
  const std::string augmentation = r.facts.training.value("augmentation", std::string("unknown"));
  page.figure_svg(
      "Training curves", kiln::analysis::training_curves_svg(history),
      curves_caption(training_batches_text(augmentation), r.fer_classes, curve_summary(history)));
}

// The confusion matrix and the per-class metrics of `set`, also written as files.
void add_evaluation(HtmlReport& page, Report& r, const kiln::data::Dataset& set,
                    const std::string& split_name) {
  std::printf("  evaluating on the %s split (%zu images)\n", split_name.c_str(), set.size());
  const EvalResult e = evaluate(*r.net, set, opts.batch_size, r.device);
  const auto cm = kiln::analysis::ConfusionMatrix::from_counts(e.confusion);
  const auto& names = r.info.class_names;
  const auto metrics = kiln::analysis::write_evaluation_files(r.facts.analysis_dir, cm, names);
  page.heading("Evaluation on the " + split_name + " split");
  page.paragraph(std::to_string(e.count) + " images, loss " + num(e.loss) + ", accuracy " +
                 pct(e.accuracy) + ", macro-averaged F1 " + num(metrics.macro_f1, "%.3f") + ".");
  page.figure("Confusion matrix", kiln::analysis::confusion_png(cm, names),
              confusion_caption(r.fer_classes, confusion_summary(cm, metrics, names)));
  std::vector<std::vector<std::string>> rows;
  for (size_t c = 0; c < metrics.per_class.size(); ++c) {
    const auto& k = metrics.per_class[c];
    rows.push_back({names[c], num(k.precision, "%.3f"), num(k.recall, "%.3f"), num(k.f1, "%.3f"),
                    std::to_string(k.support)});
  }
  rows.push_back({"macro average", num(metrics.macro_precision, "%.3f"),
                  num(metrics.macro_recall, "%.3f"), num(metrics.macro_f1, "%.3f"),
                  std::to_string(e.count)});
  page.paragraph(
      "Per class: precision is the share of the images predicted as the class that truly are; "
      "recall the share of the class's images that were found; F1 their harmonic mean.");
  page.table("Per-class metrics on the " + split_name + " split",
             {"class", "precision", "recall", "F1", "images"}, rows);
}

void add_saliency(HtmlReport& page, Report& r, const kiln::data::Dataset& set,
                  const std::string& split_name) {
  std::printf("  saliency maps (%d per class)\n", opts.per_class);
  const kiln::analysis::Image sal =
      saliency_figure(*r.net, set, r.info.class_names, opts.per_class);
  kiln::analysis::write_png(join_path(r.facts.analysis_dir, "saliency.png"), sal);
  page.heading("What the model looks at");
  page.figure("Saliency maps", sal, saliency_caption(opts.per_class, split_name));
}

void add_activation_maximisation(HtmlReport& page, Report& r) {
  kiln::analysis::ActivationMaxOptions am;
  am.steps = opts.steps;
  const std::vector<int> layers = default_filter_layers(*r.net);
  std::printf("  activation maximisation at layers");
  for (int l : layers) std::printf(" %d", l);
  std::printf(" (%d filters each, %d steps)\n", opts.filters, opts.steps);
  const auto figures = filter_figures(*r.net, r.spec, layers, opts.filters, am);
  for (size_t i = 0; i < figures.size(); ++i) {
    kiln::analysis::write_png(
        join_path(r.facts.analysis_dir, "filters_layer_" + std::to_string(layers[i]) + ".png"),
        figures[i].second);
    page.figure("Activation maximisation, " + figures[i].first, figures[i].second,
                activation_max_caption(i, figures.size()));
  }
}

// The feature maps of the first and the last conv block for one image of `set`: the first image
// of the class the model is surest of.
void add_feature_maps(HtmlReport& page, Report& r, const kiln::data::Dataset& set,
                      const std::string& split_name) {
  std::vector<int> one_label;
  const std::vector<float> firsts = pick_per_class(set, 1, &one_label);
  const size_t pixels = r.spec.pixels();
  const size_t c = size_t(surest_class(*r.net, r.spec, firsts));
  const std::string& name = r.info.class_names[c];
  const std::vector<float> image(firsts.begin() + std::ptrdiff_t(c * pixels),
                                 firsts.begin() + std::ptrdiff_t((c + 1) * pixels));
  const std::vector<int> blocks = kiln::analysis::conv_block_activations(*r.net);
  for (int layer : {blocks.front(), blocks.back()}) {
    const auto fm = feature_map_figure(*r.net, r.spec, image, layer, "a " + name + " face");
    kiln::analysis::write_png(
        join_path(r.facts.analysis_dir, "feature_maps_layer_" + std::to_string(layer) + ".png"),
        fm);
    page.figure("Feature maps, " + layer_title(*r.net, r.spec, layer), fm,
                feature_maps_caption(split_name, name, layer == blocks.front()));
  }
}

int run_report() {
  Report r;
  r.device = select_device(opts.device);
  const std::string checkpoint =
      opts.checkpoint.empty() ? join_path(opts.run, "best.safetensors") : opts.checkpoint;
  r.net = load_network(checkpoint, r.device, &r.info);
  r.facts = read_run_facts(checkpoint);
  r.spec = r.info.spec();
  r.fer_classes = r.info.class_names == kiln::data::fer_class_names();
  const std::string out = opts.out.empty() ? join_path(opts.run, "report.html") : opts.out;

  HtmlReport page(
      "fer_cnn report: " + std::filesystem::path(opts.run).filename().string(),
      "Kiln's analysis of the run in " + opts.run + " (checkpoint " + r.facts.checkpoint + ")");
  std::printf("report: %s\n", opts.run.c_str());
  add_configuration(page, r);
  add_training_curves(page, r);

  const kiln::data::Splits data =
      load_data(r.facts.data_source, r.spec, r.facts.seed, opts.train_per_class);
  const bool use_test = opts.split == "test" && !data.test.empty();
  const kiln::data::Dataset& set = use_test ? data.test : data.val;
  const std::string split_name = use_test ? "test" : "validation";
  add_evaluation(page, r, set, split_name);
  add_saliency(page, r, set, split_name);
  page.heading("What the filters respond to");
  add_activation_maximisation(page, r);
  add_feature_maps(page, r, set, split_name);

  page.write(out);
  std::printf("wrote %s (figures also in %s)\n", out.c_str(), r.facts.analysis_dir.c_str());
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
