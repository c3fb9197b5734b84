// tests/train/test_graph_step.cpp — the graph-captured CUDA step (the SIMT emulator's stream capture
// and graphs): the same history, weights and counters as the eager device step, bit for bit, over
// several epochs with a learning-rate schedule (warm-up and cosine), a smaller last batch and
// dropout on (its random-stream offsets read from device memory: a plain Dropout layer and the
// dropout of a fused convolution block), in the asynchronous and the adversarial stream modes;
// once captured, a step is one graph launch with no host synchronisation and no device allocation;
// a network with per-step host state a replay cannot reproduce is refused.
// In a build without the CUDA device these tests only state that they did not run.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"
#include "data/loader.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/linear.h"
#include "layers/pooling.h"
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

enum class Net { plain, dropout, fused_block };

const char* name(Net n) {
  return n == Net::plain ? "no dropout" : n == Net::dropout ? "dropout" : "fused block";
}

// tiny_net (fixtures.h) with or without its dropout, or a convolution block that a Sequential
// runs fused on CUDA (its dropout in the fused kernel), on the CUDA device.
std::unique_ptr<kiln::Sequential> make_net(Net kind, uint64_t seed) {
  std::unique_ptr<kiln::Sequential> net;
  if (kind == Net::dropout) {
    net = tiny_net(seed);
  } else {
    net = std::make_unique<kiln::Sequential>();
    if (kind == Net::fused_block) {
      net->emplace<kiln::Conv2d>(1, 4, 3, 1, 1);
      net->emplace<kiln::BatchNorm2d>(4);
      net->emplace<kiln::LeakyReLU>(0.01);
      net->emplace<kiln::MaxPool2d>(2);
      net->emplace<kiln::Dropout>(0.25);
      net->emplace<kiln::Flatten>();
      net->emplace<kiln::Linear>(16, 3);
    } else {
      net->emplace<kiln::Flatten>();
      net->emplace<kiln::Linear>(16, 8);
      net->emplace<kiln::LeakyReLU>(0.01);
      net->emplace<kiln::Linear>(8, 3);
    }
    net->set_input_shape({1, 4, 4, 1});
    net->init(seed);
  }
  net->to(kiln::Device::cuda);
  return net;
}

std::vector<uint64_t> counter_values(kiln::Sequential& net) {
  std::vector<uint64_t> v;
  for (const kiln::CounterRef& c : net.counters()) v.push_back(*c.value);
  return v;
}

struct Run {
  std::vector<kiln::EpochRecord> history;
  std::vector<float> weights, buffers;
  std::vector<uint64_t> counters;
  std::vector<int64_t> scalars;  // batchnorm's num_batches_tracked
  int64_t graphs = 0, replays = 0;
};

Run train(bool graph, double clip, bool sgd, Net kind) {
  const Dataset data = faces(22);  // 6 batches of 4, the last one of 2
  auto net = make_net(kind, 5);
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
  Run r{trainer.history(), net->flat_params().to_vector<float>(), {}, counter_values(*net), {}};
  for (const kiln::BufferRef& b : net->buffers())
    if (b.tensor != nullptr)
      for (const float v : b.tensor->to_vector<float>()) r.buffers.push_back(v);
    else
      r.scalars.push_back(*b.scalar);
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
    for (const Net kind : {Net::plain, Net::dropout, Net::fused_block}) {
      for (const bool sgd : {false, true}) {
        const double clip = sgd ? 0.0 : 0.05;
        INFO(name(kind) << ", " << (sgd ? "sgd" : "adam, clip 0.05"));
        const Run want = train(false, clip, sgd, kind);
        const Run got = train(true, clip, sgd, kind);
        check_same_history(got.history, want.history);
        CHECK(got.weights == want.weights);
        CHECK(got.buffers == want.buffers);  // batchnorm's running statistics
        CHECK(got.scalars == want.scalars);
        if (kind == Net::fused_block) CHECK(got.scalars == std::vector<int64_t>{24});
        // The host's counters (what a checkpoint saves) advanced as the eager step's: one dropout
        // offset per step.
        CHECK(got.counters == want.counters);
        if (kind != Net::plain) CHECK(got.counters.back() == 24);
        // Batches of 4 in both device buffers and the last batch of 2: three graphs, replayed by
        // every step after the first of each size (4 x 6 steps, 3 of them eager).
        CHECK(got.graphs == 3);
        CHECK(got.replays == 24 - 3);
      }
    }
  });
#endif
}

TEST_CASE("graph step: a captured step with dropout is one graph launch, no wait, no allocation",
          "[cuda][train]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  const Dataset data = faces(22);
  auto net = make_net(Net::fused_block, 5);
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

namespace {

// An identity layer with a counter that advances `by` per training forward, read from device
// memory (a device slot) or not: what GraphStep must refuse when a replay cannot reproduce it.
class Ticker : public kiln::Layer {
 public:
  Ticker(uint64_t by, bool slot) : by_(by), slot_(slot) {}
  kiln::Shape output_shape(const kiln::Shape& x) const override { return x; }
  std::string kind() const override { return "Ticker"; }
  std::vector<kiln::CounterRef> counters() override {
    return {{"ticks", &ticks_, slot_ ? &device_ : nullptr}};
  }

 protected:
  void forward_impl(const kiln::Tensor& x, kiln::Tensor& y, kiln::Mode mode) override {
    y.copy_from(x);
    if (mode == kiln::Mode::train) ticks_ += by_;
  }
  void backward_impl(const kiln::Tensor& dy, const kiln::Tensor&, kiln::Tensor* dx, bool,
                     kiln::Mode) override {
    if (dx) dx->copy_from(dy);
  }

 private:
  uint64_t by_, ticks_ = 0;
  bool slot_;
  const uint64_t* device_ = nullptr;
};

// A Ticker and a linear layer, on the CUDA device.
std::unique_ptr<kiln::Sequential> ticker_net(uint64_t by, bool slot) {
  auto net = std::make_unique<kiln::Sequential>();
  net->emplace<Ticker>(by, slot);
  net->emplace<kiln::Flatten>();
  net->emplace<kiln::Linear>(16, 3);
  net->set_input_shape({1, 4, 4, 1});
  net->init(5);
  net->to(kiln::Device::cuda);
  return net;
}

// The first step of a GraphStep over `net`.
void first_graph_step(kiln::Sequential& net) {
  const Dataset data = faces(10);
  kiln::Adam adam(net.flat_params(), net.flat_grads(), kiln::AdamOptions{.lr = 1e-2f});
  Loader loader(data, loader_options());
  kiln::GraphStep step(net, adam, cosine(10));
  kiln::Metrics metrics;
  Batch batch;
  loader.start_epoch(0);
  REQUIRE(loader.next(batch));
  step.run(batch, metrics);
}

}  // namespace

TEST_CASE("graph step: per-step state a replay cannot reproduce is refused, naming it",
          "[cuda][train]") {
  if (!have_cuda()) return;
  CHECK_THROWS_WITH(first_graph_step(*ticker_net(1, false)),
                    Catch::Contains("0.ticks") && Catch::Contains("have no device slot") &&
                        Catch::Contains("train this network with EagerStep"));
  CHECK_THROWS_WITH(first_graph_step(*ticker_net(2, true)),
                    Catch::Contains("0.ticks") && Catch::Contains("more than once in one step"));
  CHECK_NOTHROW(first_graph_step(*ticker_net(1, true)));
  CHECK_NOTHROW(first_graph_step(*ticker_net(0, false)));
  // Host code in the backward pass (data parallelism's all-reduce) would run only at the capture.
  auto hooked = make_net(Net::plain, 5);
  hooked->on_layer_backward = [](int) {};
  CHECK_THROWS_WITH(first_graph_step(*hooked),
                    Catch::Contains("on_layer_backward") && Catch::Contains("with EagerStep"));
  auto cpu_net = tiny_net(5);
  kiln::Adam cpu_adam(cpu_net->flat_params(), cpu_net->flat_grads());
  CHECK_THROWS_WITH(kiln::GraphStep(*cpu_net, cpu_adam, cosine(10)),
                    Catch::Contains("must be on the CUDA device"));
}
