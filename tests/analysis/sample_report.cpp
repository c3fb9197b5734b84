// tests/analysis/sample_report.cpp — a report page with every kind of figure, for the browser test.
//
//   kiln_analysis_sample_report write <dir>       writes <dir>/report.html (and probe.html, a page
//                                                 that logs a console error, to prove the check
//                                                 sees it)
//   kiln_analysis_sample_report check-png <file>  exit 0 if the PNG decodes and is not blank
#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

#include "analysis/curves.h"
#include "analysis/filters.h"
#include "analysis/metrics.h"
#include "analysis/report.h"
#include "analysis/saliency.h"
#include "core/error.h"
#include "layers/fer_cnn.h"
#include "tests/support/png.h"

using namespace kiln;
using namespace kiln::analysis;

namespace {

void write_sample(const std::string& dir) {
  HtmlReport r("Kiln sample report", "every figure kind, from an untrained narrow model");
  r.key_values("Configuration", {{"model", "fer_cnn x0.125"}, {"input", "1x32x32"}});
  std::string csv = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n";
  for (int e = 1; e <= 10; ++e)
    csv += std::to_string(e) + "," + std::to_string(2 * std::exp(-e / 4.0)) + "," +
           std::to_string(1 - std::exp(-e / 4.0)) + "," +
           std::to_string(2 * std::exp(-e / 5.0) + 0.5) + "," +
           std::to_string(0.6 - 0.5 * std::exp(-e / 3.0)) + ",0.001,1\n";
  const auto history = parse_history_csv(csv);
  r.heading("Training");
  r.figure_svg("Training curves (SVG)", training_curves_svg(history), "Loss and accuracy.");
  r.figure("Training curves (PNG)", training_curves_png(history), "The same as PNG.");

  const std::vector<std::string> names = {"angry", "disgust",  "fear",   "happy",
                                          "sad",   "surprise", "neutral"};
  std::vector<int> labels, preds;
  for (int i = 0; i < 700; ++i)
    labels.push_back(i % 7), preds.push_back(i % 5 == 0 ? (i + 1) % 7 : i % 7);
  const ConfusionMatrix cm(labels, preds, 7);
  r.figure("Confusion matrix", confusion_png(cm, names), "Rows: true class.");

  auto net = make_fer_cnn(FerCnnConfig{1, 32, 32, 7, 0.125}, 1);
  std::vector<float> x(7 * 32 * 32);
  for (size_t i = 0; i < x.size(); ++i) x[i] = float(0.5 + 0.4 * std::sin(double(i) * 0.07));
  const Tensor xt = Tensor::from_vector<float>({7, 32, 32, 1}, x);
  const SaliencyResult s = saliency_maps(*net, xt, {0, 1, 2, 3, 4, 5, 6});
  r.figure("Saliency",
           saliency_grid_png(s, {.inputs = x.data(),
                                 .channels = 1,
                                 .labels = {0, 1, 2, 3, 4, 5, 6},
                                 .class_names = names,
                                 .row_labels = names,
                                 .cell_px = 80}),
           "Bright pixels move the score most.");
  ActivationMaxOptions o;
  o.steps = 40;
  const auto am = maximize_activations(*net, 2, {0, 1, 2, 3}, Shape{1, 32, 32, 1}, o);
  r.figure("Filters", filter_grid_png(am, 32, 32, 1, "layer 2"), "What each filter wants.");
  r.figure(
      "Feature maps",
      feature_map_grid_png(feature_maps(*net, 2, std::vector<float>(x.begin(), x.begin() + 1024),
                                        Shape{1, 32, 32, 1}),
                           "layer 2"),
      "Where each filter fires.");
  r.write(dir + "/report.html");
  write_file(dir + "/probe.html",
             "<!DOCTYPE html><html><head><link rel=\"icon\" href=\"data:,\"></head><body>probe"
             "<script>console.error('kiln-probe-console-error')</script></body></html>\n");
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string mode = argc > 1 ? argv[1] : "";
    if (mode == "write" && argc == 3) {
      write_sample(argv[2]);
      return 0;
    }
    if (mode == "check-png" && argc == 3) {
      const auto d = kiln::test::decode_png_file(argv[2]);
      std::printf("%s: %dx%d, stddev %.1f, %.1f%% inked\n", argv[2], d.width, d.height, d.stddev(),
                  100 * (d.pixels.empty() ? 0 : d.inked()));
      return d.width > 0 && d.stddev() > 10 && d.inked() > 0.02 ? 0 : 1;
    }
    std::fprintf(stderr, "usage: %s write <dir> | check-png <file>\n", argv[0]);
    return 2;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "error: %s\n", e.detailed().c_str());
    return 1;
  }
}
