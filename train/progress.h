// train/progress.h — the default progress hook: one line per update on a terminal (rewritten in
// place with \r, at most 10 times a second), five plain lines per epoch otherwise (a log file or
// a pipe), each "epoch E/N  batch B/M  loss L  acc A%  I img/s  T left".
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

#include "train/trainer.h"

namespace kiln {

class ProgressLine : public ProgressHook {
 public:
  // `tty`: rewrite one line in place (true when `out` is a terminal, by default).
  explicit ProgressLine(std::FILE* out = stdout);
  ProgressLine(std::FILE* out, bool tty) : out_(out), tty_(tty) {}
  bool due(int64_t batch, int64_t batches) override;
  void show(const ProgressInfo& info) override;
  void end_epoch() override;

 private:
  std::FILE* out_;
  bool tty_;
  std::chrono::steady_clock::time_point shown_{};
};

// Whether `out` is a terminal.
bool is_terminal(std::FILE* out);
// "45s", "1m05s", "2h03m"; "?" for a negative or non-finite time.
std::string format_seconds(double seconds);

}  // namespace kiln
