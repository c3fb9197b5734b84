// examples/fer_cnn/cmd_eval.cpp — `fer_cnn eval`: loss, accuracy and the confusion matrix of a
// checkpoint on a data set's validation or test split.
#include <cstdio>
#include <filesystem>

#include "analysis/metrics.h"
#include "examples/fer_cnn/fer_cnn.h"

namespace fer {
namespace {

struct Options : CheckpointOptions {
  std::string split = "val", out, precision;
  int batch_size = 128;
  bool tf32_linear = false;
} opts;

int run_eval() {
  const OpenedCheckpoint c = open_checkpoint(opts);
  const ModelInfo& info = c.info;
  c.net->set_precision(select_precision(opts.precision, opts.tf32_linear, c.device));
  const kiln::data::Dataset& set = choose_split(c.data, opts.split, opts.data, info);
  const EvalResult r = evaluate(*c.net, set, opts.batch_size, c.device);
  std::printf("%s on %s (%s split, %lld images): loss %.4f, accuracy %.2f%%\n",
              opts.checkpoint.c_str(), opts.data.c_str(), opts.split.c_str(),
              static_cast<long long>(r.count), r.loss, 100 * r.accuracy);
  print_confusion(r, info.class_names);

  // The confusion matrix (counts and row-normalised) as CSV and a labelled heat map, and the
  // per-class metrics, beside the checkpoint unless --out says elsewhere.
  const std::string dir = !opts.out.empty() ? opts.out : analysis_dir(opts.checkpoint);
  const kiln::analysis::Metrics m = kiln::analysis::write_evaluation_files(
      dir, kiln::analysis::ConfusionMatrix::from_counts(r.confusion), info.class_names);
  std::printf("%-10s %9s %9s %9s\n", "class", "precision", "recall", "F1");
  for (size_t c = 0; c < m.per_class.size(); ++c)
    std::printf("%-10s %9.3f %9.3f %9.3f\n", info.class_names[c].c_str(), m.per_class[c].precision,
                m.per_class[c].recall, m.per_class[c].f1);
  std::printf(
      "macro avg  %9.3f %9.3f %9.3f\nwrote %s/{confusion.csv, confusion_normalized.csv, "
      "metrics.csv, confusion.png}\n",
      m.macro_precision, m.macro_recall, m.macro_f1, dir.c_str());
  return 0;
}

const Registration reg{
    {"eval", "Evaluate a checkpoint: loss, accuracy, confusion matrix",
     [](CLI::App& app) {
       opts.add_to(app, "synthetic, a FER2013 CSV file, or an image folder");
       add_precision_option(app, opts.precision, opts.tf32_linear);
       app.add_option("--split", opts.split, "train, val or test")
           ->check(CLI::IsMember({"train", "val", "test"}))
           ->capture_default_str();
       app.add_option("--batch-size", opts.batch_size, "images per batch")
           ->check(integer_in(1, 65536))
           ->capture_default_str();
       app.add_option(
           "--out", opts.out,
           "folder for confusion.csv/.png and metrics.csv (default: <checkpoint dir>/analysis)");
     },
     run_eval}};

}  // namespace
}  // namespace fer
