// analysis/curves.h — training curves: the history a training run logs, and its loss/accuracy plot.
//
// history.csv has the header "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds" and one row
// per finished epoch (columns may come in any order; unknown columns are ignored; an empty or
// non-numeric cell reads as NaN and leaves a gap). Accuracies may be fractions or percentages: if
// any exceeds 1.5 they are all divided by 100.
#pragma once

#include <string>
#include <vector>

#include "analysis/image.h"

namespace kiln::analysis {

struct EpochRecord {
  double epoch = 0, train_loss = 0, train_acc = 0, val_loss = 0, val_acc = 0, lr = 0, seconds = 0;
};

std::vector<EpochRecord> parse_history_csv(const std::string& text);
std::vector<EpochRecord> read_history_csv(const std::string& path);

// Two panels, loss and accuracy, training solid and validation dashed, with the best validation
// accuracy marked in the accuracy panel's legend.
Image training_curves_png(const std::vector<EpochRecord>& history);
std::string training_curves_svg(const std::vector<EpochRecord>& history);

// The hook for a training loop: after each epoch, reads `history_csv` and rewrites
// `<out_prefix>.png` and `<out_prefix>.svg` (e.g. out_prefix = run_dir + "/curves").
void update_training_curves(const std::string& history_csv, const std::string& out_prefix);

}  // namespace kiln::analysis
