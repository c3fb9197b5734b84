// train/trainer.cpp — the training loop (see train/trainer.h).
#include "train/trainer.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <utility>

#include "train/progress.h"

namespace kiln {
namespace {

std::string number(const char* format, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, format, v);
  return buf;
}

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

Diverged::Diverged(Kind kind, std::string fact, int64_t epoch, const char* file, int line)
    : Error("", file, line,
            fact +
                ": the run diverged; the learning rate is probably too high (lower it, or "
                "clip the gradients)"),
      kind_(kind),
      fact_(std::move(fact)),
      epoch_(epoch) {}

void DivergenceRule::check(const std::vector<EpochRecord>& history, int classes,
                           bool validated) const {
  KILN_CHECK(!history.empty(), "DivergenceRule::check: no epoch to check");
  KILN_CHECK(classes >= 2, "DivergenceRule::check: classes must be at least 2, got ", classes);
  const EpochRecord& h = history.back();
  const double chance = std::log(double(classes));
  const double limit =
      factor * (history.size() > 1 ? std::max(chance, history.front().train_loss) : chance);
  for (const auto& [what, loss] : {std::pair<const char*, double>{"training", h.train_loss},
                                   std::pair<const char*, double>{"validation", h.val_loss}}) {
    const bool finite = std::isfinite(loss);
    if ((finite && loss <= limit) || (!validated && what == std::string("validation"))) continue;
    throw Diverged(Diverged::Kind::epoch_loss,
                   std::string("the ") + what + " loss " +
                       (finite ? number("%g", loss) + " is above the divergence limit " +
                                     number("%.3g", limit) + " (" + number("%g", factor) +
                                     " x max(ln(classes), the first epoch's training loss))"
                               : "is not finite (" + number("%g", loss) + ")") +
                       " at epoch " + std::to_string(h.epoch) + ": the run diverged",
                   h.epoch, __FILE__, __LINE__);
  }
}

Trainer::Trainer(data::Loader& loader, Step& step, const TrainerOptions& options)
    : loader_(loader), step_(step), options_(options) {
  KILN_CHECK(options.epochs >= 1, "Trainer: epochs must be at least 1, got ", options.epochs);
  KILN_CHECK(options.classes >= 2,
             "Trainer: classes must be at least 2 (the divergence rule compares the loss with "
             "ln(classes)), got ",
             options.classes);
  KILN_CHECK(options.stop_after >= 0, "Trainer: stop_after must be >= 0 (0: never), got ",
             options.stop_after);
  KILN_CHECK(options.checkpoint_every >= 1, "Trainer: checkpoint_every must be at least 1, got ",
             options.checkpoint_every);
  KILN_CHECK(options.divergence.factor > 0, "Trainer: the divergence factor must be positive, got ",
             options.divergence.factor);
}

Trainer::~Trainer() = default;

void Trainer::resume(std::vector<EpochRecord> history, double best_val_accuracy) {
  for (size_t i = 0; i < history.size(); ++i)
    KILN_CHECK(history[i].epoch == int64_t(i) + 1, "Trainer::resume: history entry ", i + 1,
               " is epoch ", history[i].epoch, ": the history must list epochs 1, 2, ... in order");
  history_ = std::move(history);
  best_ = best_val_accuracy;
}

MetricValues Trainer::read_checked(const Metrics& metrics, int64_t epoch, int64_t batch) const {
  const MetricValues v = metrics.read();
  if (!std::isfinite(v.loss))
    throw Diverged(Diverged::Kind::batch_loss,
                   "the training loss is not finite (" + number("%g", v.loss) + ") at epoch " +
                       std::to_string(epoch + 1) + ", batch " + std::to_string(batch + 1),
                   epoch + 1, __FILE__, __LINE__);
  // The device step's gradient check (the eager CPU step throws this at the batch itself).
  if (v.gradient_not_finite)
    throw Diverged(Diverged::Kind::gradient_norm,
                   "the gradient norm is not finite at epoch " + std::to_string(epoch + 1),
                   epoch + 1, __FILE__, __LINE__);
  return v;
}

TrainResult Trainer::run() {
  using clock = std::chrono::steady_clock;
  ProgressHook* progress = this->progress;
  if (!progress) {
    if (!default_progress_) default_progress_ = std::make_unique<ProgressLine>();
    progress = default_progress_.get();
  }
  const int64_t start = epochs_done(), epochs = options_.epochs;
  const int64_t batches = int64_t(loader_.batches_per_epoch());
  TrainResult result;
  Metrics metrics;
  data::Batch batch;
  const auto t_run = clock::now();
  for (int64_t epoch = start; epoch < epochs; ++epoch) {
    const auto t_epoch = clock::now();
    loader_.start_epoch(epoch);
    metrics.reset();
    while (loader_.next(batch)) {
      step_.run(batch, metrics);
      result.images += step_.images(batch);
      if (!progress->due(batch.index, batches)) continue;
      ProgressInfo info;
      info.epoch = epoch;
      info.epochs = epochs;
      info.batch = batch.index;
      info.batches = batches;
      info.train = read_checked(metrics, epoch, batch.index);
      const double elapsed = seconds_since(t_run);
      const double done = double(epoch - start) * batches + batch.index + 1;
      const double total = double(epochs - start) * batches;
      info.images_per_s = result.images / elapsed;
      info.seconds_left = elapsed / done * (total - done);
      progress->show(info);
    }
    progress->end_epoch();
    const MetricValues train = read_checked(metrics, epoch, batches - 1);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    const MetricValues val = validate ? validate() : MetricValues{nan, nan, 0};
    EpochRecord r{epoch + 1,    train.loss, train.accuracy,        val.loss,
                  val.accuracy, step_.lr(), seconds_since(t_epoch)};
    history_.push_back(r);
    try {
      options_.divergence.check(history_, options_.classes, bool(validate));
    } catch (...) {
      history_.pop_back();  // the diverged epoch is not part of the run
      throw;
    }
    r.best = history_.back().best = val.accuracy > best_;
    if (r.best) best_ = val.accuracy;
    ++result.epochs_run;
    const bool last = epoch + 1 == epochs;
    const bool stop = options_.stop_after > 0 && result.epochs_run >= options_.stop_after && !last;
    if (checkpoint && (last || stop || (epoch + 1) % options_.checkpoint_every == 0)) checkpoint(r);
    if (epoch_end) epoch_end(r);
    if (stop) {
      result.stopped_early = true;
      break;
    }
  }
  result.seconds = seconds_since(t_run);
  result.best_val_accuracy = best_;
  return result;
}

}  // namespace kiln
