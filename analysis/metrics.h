// analysis/metrics.h — classification metrics from predictions: the confusion matrix (counts and
// row-normalised), accuracy, per-class precision / recall / F1, as CSV and as a labelled heat map.
//
// Conventions (scikit-learn's): rows are the true class, columns the predicted class; recall of
// class c = M[c][c] / row c's total, precision = M[c][c] / column c's total, F1 their harmonic
// mean; a ratio whose denominator is 0 is reported as 0. The row-normalised matrix divides each row
// by its total, so its diagonal is each class's recall (what the report quotes: "happy 83%").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "analysis/image.h"

namespace kiln::analysis {

class ConfusionMatrix {
 public:
  explicit ConfusionMatrix(int num_classes);
  // requires: labels and predictions have the same length, every value in [0, num_classes).
  ConfusionMatrix(const std::vector<int>& labels, const std::vector<int>& predictions,
                  int num_classes);

  // From a [true][predicted] table of counts (square).
  static ConfusionMatrix from_counts(const std::vector<std::vector<int64_t>>& counts);

  void add(int label, int prediction);
  int num_classes() const { return n_; }
  int64_t count(int label, int prediction) const {
    return counts_[size_t(label * n_ + prediction)];
  }
  int64_t row_total(int label) const;
  int64_t col_total(int prediction) const;
  int64_t total() const;
  // count / row_total (0 for an empty row).
  double row_fraction(int label, int prediction) const;

 private:
  int n_;
  std::vector<int64_t> counts_;  // [true][predicted]
};

struct ClassMetrics {
  double precision = 0, recall = 0, f1 = 0;
  int64_t support = 0;  // images of this class
};

struct Metrics {
  double accuracy = 0;
  double macro_precision = 0, macro_recall = 0, macro_f1 = 0;  // unweighted means over classes
  std::vector<ClassMetrics> per_class;
};

Metrics compute_metrics(const ConfusionMatrix& cm);

// CSV documents. Confusion: header "true\\predicted,angry,...", one row per true class, with
// counts, or row fractions to 4 decimals when `normalised`. Metrics: header
// "class,precision,recall,f1, support", one row per class, then "macro_avg" (unweighted means) and
// "accuracy" (in the f1 column, as scikit-learn's classification_report places it), both with the
// total support. A class name that needs it (a comma, a quote, ...) is quoted as RFC 4180 says
// (io/csv.h), so the documents read back with any CSV reader.
std::string confusion_csv(const ConfusionMatrix& cm, const std::vector<std::string>& class_names,
                          bool normalised);
std::string metrics_csv(const Metrics& m, const std::vector<std::string>& class_names);

// Two heat maps side by side: the counts, and the row-normalised matrix in percent (cells coloured
// by the row fraction in both, so the two read alike).
Image confusion_png(const ConfusionMatrix& cm, const std::vector<std::string>& class_names,
                    int cell_px = 62);

// Everything an evaluation leaves behind, in `dir` (created if needed): confusion.csv,
// confusion_normalized.csv, metrics.csv and confusion.png. Returns the metrics.
Metrics write_evaluation_files(const std::string& dir, const ConfusionMatrix& cm,
                               const std::vector<std::string>& class_names);

}  // namespace kiln::analysis
