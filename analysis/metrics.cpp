// analysis/metrics.cpp — confusion matrix, per-class metrics, their CSV and heat map.
#include "analysis/metrics.h"

#include <cstdio>
#include <sstream>

#include "analysis/plot.h"
#include "core/error.h"
#include "io/csv.h"

namespace kiln::analysis {

ConfusionMatrix::ConfusionMatrix(int num_classes) : n_(num_classes) {
  KILN_CHECK(num_classes > 0, "ConfusionMatrix: need at least one class, got ", num_classes);
  counts_.assign(size_t(n_) * size_t(n_), 0);
}

ConfusionMatrix::ConfusionMatrix(const std::vector<int>& labels,
                                 const std::vector<int>& predictions, int num_classes)
    : ConfusionMatrix(num_classes) {
  KILN_CHECK(labels.size() == predictions.size(), "ConfusionMatrix: ", labels.size(),
             " labels but ", predictions.size(), " predictions");
  for (size_t i = 0; i < labels.size(); ++i) add(labels[i], predictions[i]);
}

ConfusionMatrix ConfusionMatrix::from_counts(const std::vector<std::vector<int64_t>>& counts) {
  ConfusionMatrix cm(int(counts.size()));
  for (size_t t = 0; t < counts.size(); ++t) {
    KILN_CHECK(counts[t].size() == counts.size(), "ConfusionMatrix::from_counts: row ", t, " has ",
               counts[t].size(), " entries for ", counts.size(), " classes");
    for (size_t p = 0; p < counts.size(); ++p) {
      KILN_CHECK(counts[t][p] >= 0, "ConfusionMatrix::from_counts: negative count");
      cm.counts_[t * counts.size() + p] = counts[t][p];
    }
  }
  return cm;
}

void ConfusionMatrix::add(int label, int prediction) {
  KILN_CHECK(label >= 0 && label < n_ && prediction >= 0 && prediction < n_,
             "ConfusionMatrix: label ", label, " / prediction ", prediction, " outside [0, ", n_,
             ")");
  ++counts_[size_t(label * n_ + prediction)];
}

int64_t ConfusionMatrix::row_total(int label) const {
  int64_t s = 0;
  for (int p = 0; p < n_; ++p) s += count(label, p);
  return s;
}

int64_t ConfusionMatrix::col_total(int prediction) const {
  int64_t s = 0;
  for (int t = 0; t < n_; ++t) s += count(t, prediction);
  return s;
}

int64_t ConfusionMatrix::total() const {
  int64_t s = 0;
  for (int64_t c : counts_) s += c;
  return s;
}

double ConfusionMatrix::row_fraction(int label, int prediction) const {
  const int64_t r = row_total(label);
  return r == 0 ? 0.0 : double(count(label, prediction)) / double(r);
}

Metrics compute_metrics(const ConfusionMatrix& cm) {
  auto ratio = [](double a, double b) { return b == 0 ? 0.0 : a / b; };
  Metrics m;
  const int n = cm.num_classes();
  int64_t correct = 0;
  for (int c = 0; c < n; ++c) {
    ClassMetrics k;
    const double tp = double(cm.count(c, c));
    correct += cm.count(c, c);
    k.support = cm.row_total(c);
    k.recall = ratio(tp, double(k.support));
    k.precision = ratio(tp, double(cm.col_total(c)));
    k.f1 = ratio(2 * k.precision * k.recall, k.precision + k.recall);
    m.macro_precision += k.precision / n;
    m.macro_recall += k.recall / n;
    m.macro_f1 += k.f1 / n;
    m.per_class.push_back(k);
  }
  m.accuracy = ratio(double(correct), double(cm.total()));
  return m;
}

namespace {

void check_names(int n, const std::vector<std::string>& names, const char* what) {
  KILN_CHECK(int(names.size()) == n, what, ": ", names.size(), " class names for ", n, " classes");
}

std::string fixed(double v, int decimals) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, v);
  return buf;
}

}  // namespace

std::string confusion_csv(const ConfusionMatrix& cm, const std::vector<std::string>& class_names,
                          bool normalised) {
  const int n = cm.num_classes();
  check_names(n, class_names, "confusion_csv");
  std::ostringstream os;
  os << "true\\predicted";
  for (const auto& name : class_names) os << ',' << csv_field(name);
  os << '\n';
  for (int t = 0; t < n; ++t) {
    os << csv_field(class_names[size_t(t)]);
    for (int p = 0; p < n; ++p)
      os << ',' << (normalised ? fixed(cm.row_fraction(t, p), 4) : std::to_string(cm.count(t, p)));
    os << '\n';
  }
  return os.str();
}

std::string metrics_csv(const Metrics& m, const std::vector<std::string>& class_names) {
  check_names(int(m.per_class.size()), class_names, "metrics_csv");
  std::ostringstream os;
  int64_t total = 0;
  os << "class,precision,recall,f1,support\n";
  for (size_t c = 0; c < m.per_class.size(); ++c) {
    const ClassMetrics& k = m.per_class[c];
    total += k.support;
    os << csv_field(class_names[c]) << ',' << fixed(k.precision, 4) << ',' << fixed(k.recall, 4)
       << ',' << fixed(k.f1, 4) << ',' << k.support << '\n';
  }
  os << "macro_avg," << fixed(m.macro_precision, 4) << ',' << fixed(m.macro_recall, 4) << ','
     << fixed(m.macro_f1, 4) << ',' << total << '\n';
  os << "accuracy,,," << fixed(m.accuracy, 4) << ',' << total << '\n';
  return os.str();
}

Image confusion_png(const ConfusionMatrix& cm, const std::vector<std::string>& class_names,
                    int cell_px) {
  const int n = cm.num_classes();
  check_names(n, class_names, "confusion_png");
  HeatMap counts{.title = "Confusion matrix (counts)",
                 .row_axis = "true class",
                 .col_axis = "predicted class",
                 .row_names = class_names,
                 .col_names = class_names};
  HeatMap norm = counts;
  norm.title = "Row-normalised (% of each true class)";
  for (int t = 0; t < n; ++t)
    for (int p = 0; p < n; ++p) {
      const double f = cm.row_fraction(t, p);
      counts.shade.push_back(f);
      norm.shade.push_back(f);
      counts.cells.push_back(std::to_string(cm.count(t, p)));
      norm.cells.push_back(fixed(100 * f, f >= 0.995 || f == 0 ? 0 : 1));
    }
  return heat_maps_png({counts, norm}, cell_px);
}

Metrics write_evaluation_files(const std::string& dir, const ConfusionMatrix& cm,
                               const std::vector<std::string>& class_names) {
  const Metrics m = compute_metrics(cm);
  write_file(dir + "/confusion.csv", confusion_csv(cm, class_names, false));
  write_file(dir + "/confusion_normalized.csv", confusion_csv(cm, class_names, true));
  write_file(dir + "/metrics.csv", metrics_csv(m, class_names));
  write_png(dir + "/confusion.png", confusion_png(cm, class_names));
  return m;
}

}  // namespace kiln::analysis
