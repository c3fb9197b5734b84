// analysis/curves.cpp — reading history.csv and drawing the training curves.
#include "analysis/curves.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <limits>
#include <string_view>

#include "analysis/plot.h"
#include "core/error.h"
#include "io/csv.h"

namespace kiln::analysis {
namespace {

double number(std::string_view cell) {
  if (cell.empty()) return std::numeric_limits<double>::quiet_NaN();
  const std::string s(cell);
  char* end = nullptr;
  const double v = std::strtod(s.c_str(), &end);
  return end == s.c_str() + s.size() ? v : std::numeric_limits<double>::quiet_NaN();
}

// The colour says which split in both panels (blue training, orange validation); validation is also
// dashed so that the figure still reads when printed in grey.
constexpr Rgb kTrain = {31, 119, 180};
constexpr Rgb kVal = {230, 110, 20};

std::vector<LineChart> curve_panels(const std::vector<EpochRecord>& h) {
  Series tl{.name = "training", .color = kTrain}, vl{.name = "validation", .color = kVal};
  Series ta{.name = "training", .color = kTrain}, va{.name = "validation", .color = kVal};
  vl.dashed = va.dashed = true;
  double best = -1, best_epoch = 0;
  for (const EpochRecord& r : h) {
    tl.x.push_back(r.epoch), tl.y.push_back(r.train_loss);
    vl.x.push_back(r.epoch), vl.y.push_back(r.val_loss);
    ta.x.push_back(r.epoch), ta.y.push_back(r.train_acc);
    va.x.push_back(r.epoch), va.y.push_back(r.val_acc);
    if (std::isfinite(r.val_acc) && r.val_acc > best) best = r.val_acc, best_epoch = r.epoch;
  }
  if (best >= 0) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "validation (best %.1f%% at %g)", 100 * best, best_epoch);
    va.name = buf;
  }
  LineChart loss{
      .title = "Loss", .x_label = "epoch", .y_label = "cross-entropy loss", .series = {tl, vl}};
  loss.y_min = 0;
  LineChart acc{.title = "Accuracy",
                .x_label = "epoch",
                .y_label = "accuracy",
                .series = {ta, va},
                .y_percent = true};
  acc.y_min = 0;
  acc.y_max = 1;
  return {loss, acc};
}

}  // namespace

std::vector<EpochRecord> parse_history_csv(const std::string& text) {
  const std::vector<CsvRecord> records = split_csv_records(text);
  KILN_CHECK(!records.empty(), "history.csv: empty document");
  std::vector<std::string_view> header, cells;
  std::deque<std::string> storage;
  auto split = [&](const CsvRecord& r, std::vector<std::string_view>& fields) {
    const std::string err = split_csv_fields(r.text, fields, storage);
    KILN_CHECK(err.empty(), "history.csv: line ", r.number, ": ", err);
  };
  split(records[0], header);
  const char* names[] = {"epoch",   "train_loss", "train_acc", "val_loss",
                         "val_acc", "lr",         "seconds"};
  int col[7];
  for (int k = 0; k < 7; ++k) {
    col[k] = -1;
    for (size_t i = 0; i < header.size(); ++i)
      if (header[i] == names[k]) col[k] = int(i);
  }
  KILN_CHECK(col[0] >= 0, "history.csv: no 'epoch' column in header '", records[0].text, "'");
  std::vector<EpochRecord> out;
  bool percent = false;
  for (size_t r = 1; r < records.size(); ++r) {
    split(records[r], cells);
    double v[7];
    for (int k = 0; k < 7; ++k)
      v[k] = col[k] >= 0 && size_t(col[k]) < cells.size()
                 ? number(cells[size_t(col[k])])
                 : std::numeric_limits<double>::quiet_NaN();
    out.push_back({v[0], v[1], v[2], v[3], v[4], v[5], v[6]});
    if (v[2] > 1.5 || v[4] > 1.5) percent = true;
  }
  if (percent)
    for (EpochRecord& r : out) r.train_acc /= 100, r.val_acc /= 100;
  return out;
}

std::vector<EpochRecord> read_history_csv(const std::string& path) {
  return parse_history_csv(read_file(path));
}

Image training_curves_png(const std::vector<EpochRecord>& history) {
  return line_charts_png(curve_panels(history));
}

std::string training_curves_svg(const std::vector<EpochRecord>& history) {
  return line_charts_svg(curve_panels(history));
}

void update_training_curves(const std::string& history_csv, const std::string& out_prefix) {
  const std::vector<EpochRecord> h = read_history_csv(history_csv);
  write_png(out_prefix + ".png", training_curves_png(h));
  write_file(out_prefix + ".svg", training_curves_svg(h));
}

}  // namespace kiln::analysis
