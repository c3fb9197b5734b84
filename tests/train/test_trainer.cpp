// tests/train/test_trainer.cpp — kiln::Trainer: the same losses and weights as a hand-written
// loop, bit for bit; the replaceable step, the sampler's shards, the progress and checkpoint
// cadences; the divergence rule; the default progress line's text and cadence.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/memory.h"
#include "data/loader.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/eager_step.h"
#include "train/progress.h"
#include "train/trainer.h"
#include "tests/train/fixtures.h"

namespace {

using namespace kiln::test;  // the fixtures, and Batch, Dataset, Loader, LoaderOptions

// Wraps a step and records every batch's loss and samples.
struct Recording : kiln::Step {
  kiln::EagerStep& inner;
  std::vector<double> losses;
  explicit Recording(kiln::EagerStep& s) : inner(s) {}
  void run(const Batch& b, kiln::Metrics& m) override {
    inner.run(b, m);
    losses.push_back(inner.criterion().loss());
  }
  double lr() const override { return inner.lr(); }
};

// A step that trains nothing: it adds a scripted loss per call and records what it was given.
struct Scripted : kiln::Step {
  std::function<double(const Batch&)> loss = [](const Batch&) { return 1.0; };
  std::vector<std::pair<int64_t, int64_t>> calls;  // (epoch, index)
  std::vector<int> samples;
  void run(const Batch& b, kiln::Metrics& m) override {
    calls.push_back({b.epoch, b.index});
    for (int i = 0; i < b.size; ++i) samples.push_back(source_of(b, i));
    m.add(loss(b), b.size / 2, b.size);
  }
  double lr() const override { return 0.5; }
};

std::vector<float> params_of(kiln::Sequential& net) {
  return net.flat_params().to_vector<float>();
}

}  // namespace

TEST_CASE("trainer: the same losses and weights as a hand-written loop, bit for bit",
          "[cpu][train]") {
  const Dataset data = faces(22);  // 6 batches of 4, the last one of 2
  const int epochs = 3;
  const double clip = 0.5;

  // The Trainer.
  auto net = tiny_net(5);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  const int64_t batches = int64_t(loader.batches_per_epoch());
  kiln::EagerStep eager(*net, adam, cosine(epochs * batches), kiln::Device::cpu, {.clip = clip});
  Recording step(eager);
  kiln::Trainer trainer(loader, step, {.epochs = epochs, .classes = 3});
  Quiet quiet;
  trainer.progress = &quiet;
  const kiln::TrainResult result = trainer.run();

  // The loop it replaces, written out.
  auto ref = tiny_net(5);
  kiln::Adam ref_adam(ref->flat_params(), ref->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader ref_loader(data, loader_options());
  const kiln::LrSchedule schedule = cosine(epochs * batches);
  kiln::SoftmaxCrossEntropy xent;
  std::vector<double> losses, epoch_loss, epoch_acc;
  Batch batch;
  for (int epoch = 0; epoch < epochs; ++epoch) {
    ref_loader.start_epoch(epoch);
    double loss_sum = 0;
    int64_t correct = 0, seen = 0;
    while (ref_loader.next(batch)) {
      const kiln::Tensor x = kiln::Tensor::from_vector<float>({batch.size, 4, 4, 1}, batch.images);
      const kiln::Tensor y = kiln::Tensor::from_vector<int32_t>({batch.size}, batch.labels);
      ref_adam.set_lr(schedule.lr(ref_adam.steps()));
      ref->zero_grad();
      const double loss = xent.forward(ref->forward(x, kiln::Mode::train), y);
      ref->backward(xent.backward(), {.need_dx = false});
      kiln::clip_grad_norm(ref->flat_grads(), clip);
      ref_adam.step();
      losses.push_back(loss);
      loss_sum += loss * batch.size;
      correct += xent.correct();
      seen += batch.size;
    }
    epoch_loss.push_back(loss_sum / seen);
    epoch_acc.push_back(double(correct) / seen);
  }

  REQUIRE(step.losses.size() == size_t(epochs * batches));
  CHECK(step.losses == losses);
  REQUIRE(trainer.history().size() == size_t(epochs));
  for (int e = 0; e < epochs; ++e) {
    CHECK(trainer.history()[size_t(e)].epoch == e + 1);
    CHECK(trainer.history()[size_t(e)].train_loss == epoch_loss[size_t(e)]);
    CHECK(trainer.history()[size_t(e)].train_acc == epoch_acc[size_t(e)]);
  }
  CHECK(trainer.history().back().lr == schedule.lr(epochs * batches - 1));
  CHECK(params_of(*net) == params_of(*ref));
  CHECK(adam.steps() == epochs * batches);
  CHECK(result.images == epochs * 22);
  CHECK(result.epochs_run == epochs);
  CHECK_FALSE(result.stopped_early);
  // It learned something (the task is easy), so the comparison is not of two idle runs.
  CHECK(epoch_loss.back() < epoch_loss.front());
}

TEST_CASE("trainer: the replaceable step is called for every batch, in order", "[cpu][train]") {
  const Dataset data = faces(10);  // 3 batches: 4, 4, 2
  Loader loader(data, loader_options());
  Scripted step;
  step.loss = [](const Batch& b) { return 1.0 + b.index; };
  kiln::Trainer trainer(loader, step, {.epochs = 2, .classes = 3});
  Quiet quiet;
  trainer.progress = &quiet;
  trainer.run();
  const std::vector<std::pair<int64_t, int64_t>> expected = {{0, 0}, {0, 1}, {0, 2},
                                                             {1, 0}, {1, 1}, {1, 2}};
  CHECK(step.calls == expected);
  // The epoch's loss is the sample-weighted mean of what the step added.
  CHECK(trainer.history()[0].train_loss == Approx((1.0 * 4 + 2.0 * 4 + 3.0 * 2) / 10));
  CHECK(trainer.history()[0].train_acc == Approx((2 + 2 + 1) / 10.0));
  CHECK(trainer.history()[1].lr == 0.5);
}

TEST_CASE("trainer: two ranks' sampler shards cover every sample once per epoch", "[cpu][train]") {
  const Dataset data = faces(13);
  std::vector<std::multiset<int>> per_epoch(2);
  for (int rank = 0; rank < 2; ++rank) {
    LoaderOptions o = loader_options();
    o.augment = {};  // so pixel 0 still names the sample
    o.sampler = kiln::data::shard_sampler(rank, 2, o.seed);
    Loader loader(data, o);
    CHECK(loader.epoch_size() == size_t(rank == 0 ? 7 : 6));
    Scripted step;
    kiln::Trainer trainer(loader, step, {.epochs = 2, .classes = 3});
    Quiet quiet;
    trainer.progress = &quiet;
    trainer.run();
    size_t k = 0;
    for (const auto& [epoch, index] : step.calls) {
      const int n = index + 1 < int64_t(loader.batches_per_epoch())
                        ? 4
                        : int(loader.epoch_size() - size_t(index) * 4);
      for (int i = 0; i < n; ++i) per_epoch[size_t(epoch)].insert(step.samples[k++]);
    }
    CHECK(k == step.samples.size());
  }
  for (const std::multiset<int>& seen : per_epoch) {
    REQUIRE(seen.size() == 13);
    for (int i = 0; i < 13; ++i) CHECK(seen.count(i) == 1);
  }
}

TEST_CASE("trainer: the progress hook is shown at its cadence, with the metrics so far",
          "[cpu][train]") {
  const Dataset data = faces(22);  // 6 batches
  Loader loader(data, loader_options());
  Scripted step;
  step.loss = [](const Batch& b) { return double(b.index); };
  kiln::Trainer trainer(loader, step, {.epochs = 2, .classes = 3});
  Quiet quiet;
  quiet.every = 4;  // batches 4 and 6 (the last) of each epoch
  trainer.progress = &quiet;
  trainer.run();
  REQUIRE(quiet.shown.size() == 4);
  CHECK(quiet.ends == 2);
  const int64_t batches[] = {3, 5, 3, 5};
  for (size_t i = 0; i < 4; ++i) {
    const kiln::ProgressInfo& p = quiet.shown[i];
    CHECK(p.epoch == int64_t(i / 2));
    CHECK(p.batch == batches[i]);
    CHECK(p.batches == 6);
    CHECK(p.epochs == 2);
    CHECK(p.images_per_s > 0);
    CHECK(p.seconds_left >= 0);
  }
  // After batch 4 of an epoch: 16 samples whose losses were 0, 1, 2, 3 (4 each).
  CHECK(quiet.shown[0].train.loss == Approx(1.5));
  CHECK(quiet.shown[0].train.count == 16);
  CHECK(quiet.shown[1].train.count == 22);
}

TEST_CASE("progress line: today's text, in place on a terminal, five lines per epoch otherwise",
          "[cpu][train]") {
  std::FILE* f = std::tmpfile();
  REQUIRE(f != nullptr);
  kiln::ProgressLine line(f, /*tty=*/false);
  int shown = 0;
  for (int64_t b = 0; b < 11; ++b)
    if (line.due(b, 11)) {
      ++shown;
      kiln::ProgressInfo p;
      p.epoch = 0;
      p.epochs = 3;
      p.batch = b;
      p.batches = 11;
      p.train = {0.5, 0.25, 16};
      p.images_per_s = 100;
      p.seconds_left = 65;
      line.show(p);
    }
  CHECK(shown == 6);  // every 11 / 5 = 2 batches, and the last one
  line.end_epoch();
  std::rewind(f);
  char buf[256] = {};
  REQUIRE(std::fgets(buf, sizeof buf, f) != nullptr);
  CHECK(std::string(buf) ==
        "  epoch 1/3  batch 2/11  loss 0.5000  acc  25.0%  100 img/s  1m05s left\n");
  std::fclose(f);
  // On a terminal: one line rewritten in place, cleared at the end of the epoch; the last batch
  // is always shown.
  std::FILE* t = std::tmpfile();
  REQUIRE(t != nullptr);
  kiln::ProgressLine tty(t, /*tty=*/true);
  CHECK(tty.due(10, 11));
  kiln::ProgressInfo p;
  p.epochs = 2;
  p.batch = 10;
  p.batches = 11;
  p.train = {1.25, 0.5, 40};
  p.images_per_s = 12.4;
  p.seconds_left = 3600;
  tty.show(p);
  tty.end_epoch();
  std::rewind(t);
  std::string text(256, '\0');
  text.resize(std::fread(text.data(), 1, text.size(), t));
  CHECK(text ==
        "\repoch 1/2  batch 11/11  loss 1.2500  acc  50.0%  12 img/s  1h00m left\033[K\r\033[K");
  std::fclose(t);
  CHECK(kiln::format_seconds(45) == "45s");
  CHECK(kiln::format_seconds(7380) == "2h03m");
  CHECK(kiln::format_seconds(NAN) == "?");
}

TEST_CASE("trainer: the divergence rule throws, naming the loss, the limit and the epoch",
          "[cpu][train]") {
  const kiln::DivergenceRule rule;  // 10 x max(ln 7, the first epoch's training loss)
  std::vector<kiln::EpochRecord> h = {{.epoch = 1, .train_loss = 1.0, .val_loss = 1.2}};
  CHECK_NOTHROW(rule.check(h, 7));
  h.push_back({.epoch = 2, .train_loss = 19.0, .val_loss = 25.0});
  try {
    rule.check(h, 7);
    FAIL("no divergence reported");
  } catch (const kiln::Diverged& e) {
    CHECK(e.kind() == kiln::Diverged::Kind::epoch_loss);
    CHECK(e.epoch() == 2);
    CHECK(e.fact() ==
          "the validation loss 25 is above the divergence limit 19.5 (10 x max(ln(classes), the "
          "first epoch's training loss)) at epoch 2: the run diverged");
  }
  // The first epoch: the limit is 10 x ln 7 = 19.46.
  CHECK_THROWS_AS(rule.check({{.epoch = 1, .train_loss = 19.5}}, 7), kiln::Diverged);
  CHECK_NOTHROW(rule.check({{.epoch = 1, .train_loss = 19.4}}, 7));
  // A first epoch that learned fast does not lower the limit below 10 x chance.
  CHECK_NOTHROW(rule.check({{.epoch = 1, .train_loss = 0.1}, {.epoch = 2, .train_loss = 19.0}}, 7));
  CHECK_THROWS_WITH(rule.check({{.epoch = 1, .train_loss = 1, .val_loss = NAN}}, 7),
                    Catch::Contains("validation loss is not finite (nan) at epoch 1"));
  CHECK_NOTHROW(rule.check({{.epoch = 1, .train_loss = 1, .val_loss = NAN}}, 7, false));

  // In the loop: the diverged epoch reaches neither the checkpoint nor the history.
  const Dataset data = faces(10);
  Loader loader(data, loader_options());
  Scripted step;
  step.loss = [](const Batch& b) { return b.epoch == 0 ? 1.0 : 1e6; };
  kiln::Trainer trainer(loader, step, {.epochs = 3, .classes = 3});
  Quiet quiet;
  trainer.progress = &quiet;
  std::vector<int64_t> checkpoints;
  trainer.checkpoint = [&](const kiln::EpochRecord& r) { checkpoints.push_back(r.epoch); };
  CHECK_THROWS_WITH(trainer.run(), Catch::Contains("training loss 1e+06 is above") &&
                                       Catch::Contains("at epoch 2"));
  CHECK(checkpoints == std::vector<int64_t>{1});
  CHECK(trainer.history().size() == 1);

  // A step that does not look at its loss: the loop finds it when it reads the metrics.
  Loader loader2(data, loader_options());
  Scripted blind;
  blind.loss = [](const Batch& b) { return b.index == 1 ? NAN : 1.0; };
  kiln::Trainer trainer2(loader2, blind, {.epochs = 1, .classes = 3});
  Quiet every;
  every.every = 1;
  trainer2.progress = &every;
  try {
    trainer2.run();
    FAIL("no divergence reported");
  } catch (const kiln::Diverged& e) {
    CHECK(e.kind() == kiln::Diverged::Kind::batch_loss);
    CHECK(e.fact() == "the training loss is not finite (nan) at epoch 1, batch 2");
  }
}

TEST_CASE("trainer: the checkpoint hook runs every N epochs and at the end, before epoch_end",
          "[cpu][train]") {
  const Dataset data = faces(8);
  std::vector<std::string> log;
  auto train = [&](int64_t epochs, int64_t every, int64_t stop_after,
                   std::vector<kiln::EpochRecord> done) {
    log.clear();
    Loader loader(data, loader_options());
    Scripted step;
    kiln::Trainer trainer(
        loader, step,
        {.epochs = epochs, .classes = 3, .stop_after = stop_after, .checkpoint_every = every});
    Quiet quiet;
    trainer.progress = &quiet;
    int64_t validations = 0;
    trainer.validate = [&] {
      ++validations;
      return kiln::MetricValues{1.0, validations == 2 ? 0.9 : 0.5, 8};
    };
    trainer.checkpoint = [&](const kiln::EpochRecord& r) {
      log.push_back("checkpoint " + std::to_string(r.epoch) + (r.best ? " best" : ""));
    };
    trainer.epoch_end = [&](const kiln::EpochRecord& r) {
      log.push_back("epoch " + std::to_string(r.epoch) + (r.best ? " best" : ""));
    };
    if (!done.empty()) trainer.resume(done, 0.5);
    return trainer.run();
  };
  kiln::TrainResult r = train(7, 3, 0, {});
  CHECK_FALSE(r.stopped_early);
  CHECK(r.best_val_accuracy == 0.9);
  CHECK(log == std::vector<std::string>{"epoch 1 best", "epoch 2 best", "checkpoint 3", "epoch 3",
                                        "epoch 4", "epoch 5", "checkpoint 6", "epoch 6",
                                        "checkpoint 7", "epoch 7"});
  // Resumed after epoch 2 (best 0.5), stopped after two epochs of this run: checkpoints at
  // epoch 3 (a multiple of 3; 0.5 is not better than 0.5) and epoch 4 (the end of this run, the
  // best with 0.9).
  std::vector<kiln::EpochRecord> done = {{.epoch = 1}, {.epoch = 2}};
  r = train(7, 3, 2, done);
  CHECK(r.stopped_early);
  CHECK(r.epochs_run == 2);
  CHECK(log ==
        std::vector<std::string>{"checkpoint 3", "epoch 3", "checkpoint 4 best", "epoch 4 best"});
  // A history that does not list epochs 1, 2, ... is refused.
  CHECK_THROWS_WITH(train(7, 1, 0, {{.epoch = 2}}), Catch::Contains("epochs 1, 2, ... in order"));
}

TEST_CASE("eager step: a non-finite loss stops the run before the update, naming the batch",
          "[cpu][train]") {
  const Dataset data = faces(10);
  auto net = tiny_net(5);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  kiln::EagerStep step(*net, adam, cosine(10), kiln::Device::cpu);
  kiln::Trainer trainer(loader, step, {.epochs = 2, .classes = 3});
  Quiet quiet;
  trainer.progress = &quiet;
  poison_a_weight(*net);
  try {
    trainer.run();
    FAIL("no divergence reported");
  } catch (const kiln::Diverged& e) {
    CHECK(e.kind() == kiln::Diverged::Kind::batch_loss);
    CHECK(e.epoch() == 1);
    CHECK_THAT(e.fact(), Catch::Matches("the training loss is not finite \\(-?nan\\) at epoch 1, "
                                        "batch 1"));
    CHECK_THAT(std::string(e.what()), Catch::Contains("the learning rate is probably too high"));
  }
  CHECK(adam.steps() == 0);  // no update was applied
  CHECK(quiet.shown.empty());
  CHECK_THROWS_WITH(kiln::EagerStep(*net, adam, cosine(10), kiln::Device::cpu, {.clip = -1}),
                    Catch::Contains("clip must be a finite number >= 0"));
}
