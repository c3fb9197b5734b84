// train/progress.cpp — the default progress line (see train/progress.h).
#include "train/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>

namespace kiln {

bool is_terminal(std::FILE* out) {
  return ::isatty(::fileno(out)) != 0;
}

ProgressLine::ProgressLine(std::FILE* out) : ProgressLine(out, is_terminal(out)) {}

bool ProgressLine::due(int64_t batch, int64_t batches) {
  if (batch + 1 == batches) return true;  // an epoch's last batch is always shown
  if (tty_) return std::chrono::steady_clock::now() - shown_ >= std::chrono::milliseconds(100);
  const int64_t every = std::max<int64_t>(1, batches / 5);
  return (batch + 1) % every == 0;
}

void ProgressLine::show(const ProgressInfo& p) {
  shown_ = std::chrono::steady_clock::now();
  std::fprintf(out_,
               "%sepoch %lld/%lld  batch %lld/%lld  loss %.4f  acc %5.1f%%  %.0f img/s  %s left%s",
               tty_ ? "\r" : "  ", static_cast<long long>(p.epoch + 1),
               static_cast<long long>(p.epochs), static_cast<long long>(p.batch + 1),
               static_cast<long long>(p.batches), p.train.loss, 100 * p.train.accuracy,
               p.images_per_s, format_seconds(p.seconds_left).c_str(), tty_ ? "\033[K" : "\n");
  std::fflush(out_);
}

void ProgressLine::end_epoch() {
  if (tty_) std::fprintf(out_, "\r\033[K");
}

std::string format_seconds(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  char buf[32];
  const long t = std::lround(s);
  if (t >= 3600)
    std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60)
    std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else
    std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

}  // namespace kiln
