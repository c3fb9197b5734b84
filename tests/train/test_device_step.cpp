// tests/train/test_device_step.cpp — the training step on the CUDA device (the SIMT emulator):
// it never waits for the device (the emulator counts host synchronisations), and it gives the same
// losses, accuracies and weights, bit for bit, as the step that read the loss back every batch, in
// the asynchronous and the adversarial ("check") stream modes; a non-finite loss still stops the
// run with the same message, before any checkpoint; clipping on the device equals clipping on the
// host. In a build without the CUDA device these tests only state that they did not run.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "data/loader.h"
#include "kernels/elementwise.h"
#include "layers/activation.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/loss.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/eager_step.h"
#include "train/trainer.h"
#include "tests/train/fixtures.h"

#if KILN_WITH_CUDA
#include "core/simt/schedule.h"
#endif

namespace {

using namespace kiln::test;  // the fixtures, and Batch, Dataset, Loader, LoaderOptions

std::unique_ptr<kiln::Sequential> device_net(uint64_t seed) {
  auto net = tiny_net(seed);
  net->to(kiln::Device::cuda);
  return net;
}

// The CUDA step as it was before it stopped synchronising: the loss and the correct count read
// back every batch (SoftmaxCrossEntropy::forward), clipping's norm read back (clip_grad_norm), the
// metrics summed on the host.
struct ReadBackStep : kiln::Step {
  kiln::Sequential& net;
  kiln::Optimizer& opt;
  kiln::LrSchedule schedule;
  double clip;
  kiln::SoftmaxCrossEntropy criterion;
  double lr_ = 0;
  ReadBackStep(kiln::Sequential& n, kiln::Optimizer& o, kiln::LrSchedule s, double c)
      : net(n), opt(o), schedule(s), clip(c) {}
  void run(const Batch& b, kiln::Metrics& m) override {
    kiln::Tensor x({b.size, b.height, b.width, b.channels}, kiln::DType::f32, kiln::Device::cuda);
    kiln::Tensor y({b.size}, kiln::DType::i32, kiln::Device::cuda);
    kiln::copy_bytes(x.raw(), kiln::Device::cuda, b.images.data(), kiln::Device::cpu, x.bytes());
    kiln::copy_bytes(y.raw(), kiln::Device::cuda, b.labels.data(), kiln::Device::cpu, y.bytes());
    lr_ = schedule.lr(opt.steps());
    opt.set_lr(lr_);
    net.zero_grad();
    const double loss = criterion.forward(net.forward(x, kiln::Mode::train), y);
    net.backward(criterion.backward(), {.need_dx = false});
    if (clip > 0) kiln::clip_grad_norm(net.flat_grads(), clip);
    opt.step();
    m.add(loss, criterion.correct(), b.size);
  }
  double lr() const override { return lr_; }
};

struct Run {
  std::vector<kiln::EpochRecord> history;
  std::vector<float> weights;
};

template <typename MakeStep>
Run train(MakeStep make_step, double clip) {
  const Dataset data = faces(22);  // 6 batches of 4, the last one of 2
  auto net = device_net(5);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  auto step = make_step(*net, adam, cosine(3 * int64_t(loader.batches_per_epoch())), clip);
  kiln::Trainer trainer(loader, *step, {.epochs = 3, .classes = 3});
  Quiet quiet;
  quiet.every = 2;
  trainer.progress = &quiet;
  trainer.run();
  return {trainer.history(), net->flat_params().to_vector<float>()};
}

auto device_step = [](kiln::Sequential& net, kiln::Optimizer& opt, kiln::LrSchedule s,
                      double clip) {
  return std::make_unique<kiln::EagerStep>(net, opt, s, kiln::Device::cuda,
                                           kiln::EagerStepOptions{.clip = clip});
};
auto read_back_step = [](kiln::Sequential& net, kiln::Optimizer& opt, kiln::LrSchedule s,
                         double clip) { return std::make_unique<ReadBackStep>(net, opt, s, clip); };

}  // namespace

TEST_CASE("device step: the same history and weights as reading the loss back, bit for bit",
          "[cuda][train]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  in_stream_modes([] {
    for (const double clip : {0.0, 0.05}) {
      INFO("clip " << clip);
      const Run want = train(read_back_step, clip);
      const Run got = train(device_step, clip);
      check_same_history(got.history, want.history);
      CHECK(got.weights == want.weights);
      CHECK(std::isfinite(got.history.back().train_loss));
    }
  });
#endif
}

TEST_CASE("device step: no host synchronisation in a step", "[cuda][train]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  for (const double clip : {0.0, 0.05}) {
    INFO("clip " << clip);
    const Dataset data = faces(22);
    auto net = device_net(5);
    kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
    Loader loader(data, loader_options());
    kiln::EagerStep step(*net, adam, cosine(20), kiln::Device::cuda, {.clip = clip});
    kiln::Metrics metrics;
    Batch batch;
    loader.start_epoch(0);
    // The first step sizes the workspaces and allocates the optimizer's state (a synchronisation
    // when a workspace grows); the steps after it are the steady state.
    REQUIRE(loader.next(batch));
    step.run(batch, metrics);
    const kiln::simt::DeviceCounts before = kiln::simt::counts();
    int steps = 0;
    while (loader.next(batch) && batch.size == 4) {
      step.run(batch, metrics);
      ++steps;
    }
    const kiln::simt::DeviceCounts after = kiln::simt::counts();
    REQUIRE(steps == 4);
    CHECK(after.host_synchronizations - before.host_synchronizations == 0);
    CHECK(after.kernel_launches - before.kernel_launches > uint64_t(10 * steps));
    // Reading the metrics is the synchronisation: exactly one (the event after the copy).
    const kiln::MetricValues v = metrics.read();
    CHECK(kiln::simt::counts().host_synchronizations - after.host_synchronizations == 1);
    CHECK(v.count == 20);
    CHECK(std::isfinite(v.loss));
    // The next epoch reuses the staging slots the read freed: no allocation, no wait.
    const kiln::AllocationStats allocated = kiln::allocation_stats();
    const kiln::simt::DeviceCounts read = kiln::simt::counts();
    loader.start_epoch(1);
    for (int i = 0; i < 5; ++i) {
      REQUIRE(loader.next(batch));
      step.run(batch, metrics);
    }
    CHECK(kiln::simt::counts().host_synchronizations == read.host_synchronizations);
    CHECK(kiln::allocation_stats().host_allocations == allocated.host_allocations);
    CHECK(kiln::allocation_stats().device_allocations == allocated.device_allocations);
  }
#endif
}

TEST_CASE("device batch: double-buffered pinned uploads deliver every batch intact",
          "[cuda][train]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  in_stream_modes([] {
    const Dataset data = faces(22);
    Loader loader(data, loader_options());
    kiln::DeviceBatch db;
    Batch batch;
    loader.start_epoch(0);
    int batches = 0;
    // Each batch is read back on the current stream (a synchronisation), as an evaluation does;
    // without a count of host waits the ring stays at two slots.
    while (loader.next(batch)) {
      db.upload(batch, kiln::Device::cuda);
      CHECK(db.x.to_vector<float>() == batch.images);
      CHECK(db.y.to_vector<int32_t>() == batch.labels);
      ++batches;
    }
    CHECK(batches == 6);
    CHECK(db.staging_slots() == 2);
  });
#endif
}

TEST_CASE("device step: a non-finite loss stops the run at the next read, before a checkpoint",
          "[cuda][train]") {
  if (!have_cuda()) return;
  const Dataset data = faces(22);
  auto net = device_net(5);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  kiln::EagerStep step(*net, adam, cosine(20), kiln::Device::cuda);
  kiln::Trainer trainer(loader, step, {.epochs = 2, .classes = 3});
  Quiet quiet;
  quiet.every = 2;
  trainer.progress = &quiet;
  int checkpoints = 0;
  trainer.checkpoint = [&](const kiln::EpochRecord&) { ++checkpoints; };
  poison_a_weight(*net);
  try {
    trainer.run();
    FAIL("no divergence reported");
  } catch (const kiln::Diverged& e) {
    CHECK(e.kind() == kiln::Diverged::Kind::batch_loss);
    // The device step cannot see batch 1's loss; the loop's first read is after batch 2.
    CHECK_THAT(e.fact(), Catch::Matches("the training loss is not finite \\(-?nan\\) at epoch 1, "
                                        "batch 2"));
  }
  CHECK(checkpoints == 0);
  CHECK(quiet.shown.empty());
}

TEST_CASE("clip_by_norm: clipping on the device equals clip_grad_norm, and flags a bad norm",
          "[cuda][train]") {
  if (!have_cuda()) return;
  std::vector<float> g(3000);
  for (size_t i = 0; i < g.size(); ++i) g[i] = float(std::sin(0.37 * double(i))) * 0.5f;
  kiln::Tensor flag({1}, kiln::DType::i32, kiln::Device::cuda);
  for (const double max_norm : {1.0, 100.0}) {
    INFO("max_norm " << max_norm);
    kiln::Tensor read_back = kiln::Tensor::from_vector({int64_t(g.size())}, g, kiln::Device::cuda);
    kiln::Tensor dev = kiln::Tensor::from_vector({int64_t(g.size())}, g, kiln::Device::cuda);
    kiln::clip_grad_norm(read_back, max_norm);  // the norm read back to the host
    kiln::clip_by_norm(dev, max_norm, flag);
    CHECK(dev.to_vector<float>() == read_back.to_vector<float>());
    CHECK(flag.to_vector<int32_t>()[0] == 0);
  }
  std::vector<float> bad = g;
  bad[17] = INFINITY;
  kiln::Tensor t = kiln::Tensor::from_vector({int64_t(bad.size())}, bad, kiln::Device::cuda);
  kiln::clip_by_norm(t, 1.0, flag);
  CHECK(flag.to_vector<int32_t>()[0] == 1);
  CHECK(t.to_vector<float>() == bad);  // left unchanged
  // The metrics carry the flag to the loop.
  kiln::Tensor loss = kiln::Tensor::from_vector({1}, std::vector<float>{0.5f}, kiln::Device::cuda);
  kiln::Tensor correct =
      kiln::Tensor::from_vector({3}, std::vector<int32_t>{1, 0, 1}, kiln::Device::cuda);
  kiln::Metrics m;
  m.add(loss, correct, &flag);
  const kiln::MetricValues v = m.read();
  CHECK(v.gradient_not_finite);
  CHECK(v.loss == 0.5);
  CHECK(v.accuracy == 2.0 / 3.0);
  CHECK_THROWS_WITH(kiln::clip_by_norm(t, 0.0, flag),
                    Catch::Contains("max_norm must be a positive"));
}
