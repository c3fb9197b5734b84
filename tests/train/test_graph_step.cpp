// tests/train/test_graph_step.cpp — the graph-captured CUDA step (the SIMT emulator's stream capture
// and graphs): the same history and weights as the eager device step, bit for bit, over several
// epochs with a learning-rate schedule (warm-up and cosine) and a smaller last batch, in the
// asynchronous and the adversarial stream modes; once captured, a step is one graph launch with no
// host synchronisation and no device allocation; a network with per-step host state is refused.
// In a build without the CUDA device these tests only state that they did not run.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "core/memory.h"
#include "data/loader.h"
#include "layers/activation.h"
#include "layers/linear.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "tests/train/fixtures.h"
#include "train/eager_step.h"
#include "train/graph_step.h"
#include "train/trainer.h"

#if KILN_WITH_CUDA
#include "core/simt/schedule.h"
#endif

namespace {

using namespace kiln::test;  // the fixtures, and Batch, Dataset, Loader, LoaderOptions

// tiny_net without its dropout (whose random-stream offset is host state), on the device.
std::unique_ptr<kiln::Sequential> plain_net(uint64_t seed) {
  auto net = tiny_net(seed, /*dropout=*/false);
  net->to(kiln::Device::cuda);
  return net;
}

struct Run {
  std::vector<kiln::EpochRecord> history;
  std::vector<float> weights;
  int64_t graphs = 0, replays = 0;
};

Run train(bool graph, double clip, bool sgd) {
  const Dataset data = faces(22);  // 6 batches of 4, the last one of 2
  auto net = plain_net(5);
  std::unique_ptr<kiln::Optimizer> opt;
  if (sgd)
    opt = std::make_unique<kiln::Sgd>(net->flat_params(), net->flat_grads(),
                                      kiln::SgdOptions{.lr = 0.05f, .momentum = 0.9f});
  else
    opt = std::make_unique<kiln::Adam>(net->flat_params(), net->flat_grads(),
                                       kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  const kiln::LrSchedule schedule = cosine(4 * int64_t(loader.batches_per_epoch()));
  std::unique_ptr<kiln::GraphStep> graph_step;
  std::unique_ptr<kiln::EagerStep> eager_step;
  kiln::Step* step = nullptr;
  if (graph) {
    graph_step = std::make_unique<kiln::GraphStep>(*net, *opt, schedule,
                                                   kiln::GraphStepOptions{.clip = clip});
    step = graph_step.get();
  } else {
    eager_step = std::make_unique<kiln::EagerStep>(*net, *opt, schedule, kiln::Device::cuda,
                                                   kiln::EagerStepOptions{.clip = clip});
    step = eager_step.get();
  }
  kiln::Trainer trainer(loader, *step, {.epochs = 4, .classes = 3});
  Quiet quiet;
  quiet.every = 2;
  trainer.progress = &quiet;
  trainer.run();
  Run r{trainer.history(), net->flat_params().to_vector<float>()};
  if (graph_step) {
    r.graphs = graph_step->graphs();
    r.replays = graph_step->replays();
  }
  return r;
}

}  // namespace

TEST_CASE("graph step: the eager step's history and weights, bit for bit", "[cuda][train]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  in_stream_modes([] {
    for (const bool sgd : {false, true}) {
      const double clip = sgd ? 0.0 : 0.05;
      INFO((sgd ? "sgd" : "adam, clip 0.05"));
      const Run want = train(false, clip, sgd);
      const Run got = train(true, clip, sgd);
      check_same_history(got.history, want.history);
      CHECK(got.weights == want.weights);
      // Batches of 4 in both device buffers and the last batch of 2: three graphs, replayed by
      // every step after the first of each size (4 x 6 steps, 3 of them eager).
      CHECK(got.graphs == 3);
      CHECK(got.replays == 24 - 3);
    }
  });
#endif
}

TEST_CASE("graph step: a captured step is one graph launch, no wait, no allocation",
          "[cuda][train]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  const Dataset data = faces(22);
  auto net = plain_net(5);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  kiln::GraphStep step(*net, adam, cosine(40), {.clip = 0.05});
  kiln::Metrics metrics;
  Batch batch;
  for (int64_t epoch = 0; epoch < 2; ++epoch) {  // every graph captured
    loader.start_epoch(epoch);
    metrics.reset();
    while (loader.next(batch)) step.run(batch, metrics);
    (void)metrics.read();
  }
  REQUIRE(step.graphs() == 3);
  loader.start_epoch(2);
  metrics.reset();
  const kiln::simt::DeviceCounts before = kiln::simt::counts();
  const kiln::AllocationStats allocated = kiln::allocation_stats();
  int steps = 0;
  while (loader.next(batch)) {
    step.run(batch, metrics);
    ++steps;
  }
  const kiln::simt::DeviceCounts after = kiln::simt::counts();
  REQUIRE(steps == 6);
  CHECK(after.graph_launches - before.graph_launches == uint64_t(steps));
  CHECK(after.host_synchronizations == before.host_synchronizations);
  CHECK(kiln::allocation_stats().device_allocations == allocated.device_allocations);
  CHECK(kiln::allocation_stats().host_allocations == allocated.host_allocations);
  // Per step: the graph's kernels and the metrics' one kernel outside it.
  const uint64_t launches = after.kernel_launches - before.kernel_launches;
  CHECK(launches % uint64_t(steps) == 0);
  CHECK(launches / uint64_t(steps) > 5);
  CHECK(std::isfinite(metrics.read().loss));
#endif
}

TEST_CASE("graph step: a network with per-step host state is refused, naming it", "[cuda][train]") {
  if (!have_cuda()) return;
  const Dataset data = faces(10);
  auto net = tiny_net(5);  // with dropout
  net->to(kiln::Device::cuda);
  kiln::Adam adam(net->flat_params(), net->flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  kiln::GraphStep step(*net, adam, cosine(10));
  kiln::Metrics metrics;
  Batch batch;
  loader.start_epoch(0);
  REQUIRE(loader.next(batch));
  CHECK_THROWS_WITH(
      step.run(batch, metrics),
      Catch::Contains("dropout_offset") && Catch::Contains("train this network with EagerStep"));
  auto cpu_net = tiny_net(5);
  kiln::Adam cpu_adam(cpu_net->flat_params(), cpu_net->flat_grads());
  CHECK_THROWS_WITH(kiln::GraphStep(*cpu_net, cpu_adam, cosine(10)),
                    Catch::Contains("must be on the CUDA device"));
}
