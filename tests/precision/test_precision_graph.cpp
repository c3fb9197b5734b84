// tests/precision/test_precision_graph.cpp — tf32 and bf16 training on the CUDA device captured
// as a CUDA graph (train/graph_step.h): the operand copies of kernels/precision.h live in a
// grow-only workspace with fixed addresses once sized, so the graph step equals the eager step bit
// for bit, in the asynchronous and the adversarial stream modes, and a replayed step allocates
// nothing. The network has a first layer (1 input channel: the fp32 direct kernel on rounded
// operands), a tensor-core convolution and a linear layer, all with a bias (tf32's rounded dy copy
// for db). In a build without the CUDA device these tests only state that they did not run.
#include <catch2/catch.hpp>

#include <cstdint>
#include <memory>
#include <vector>

#include "core/memory.h"
#include "core/precision.h"
#include "data/loader.h"
#include "layers/activation.h"
#include "layers/conv2d.h"
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

using namespace kiln::test;

struct Run {
  std::vector<kiln::EpochRecord> history;
  std::vector<float> weights;
  int64_t graphs = 0;
  int64_t last_epoch_steps = 0, last_epoch_replays = 0;
  uint64_t last_epoch_allocations = 0;  // device allocations during the last epoch
};

Run train(bool graph, const kiln::PrecisionPolicy& policy) {
  const kiln::data::Dataset data = faces(14);  // batches of 4, 4, 4 and 2
  auto net = std::make_unique<kiln::Sequential>();
  net->emplace<kiln::Conv2d>(1, 4, 3, 1, 1);  // the first layer
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::Conv2d>(4, 8, 3, 1, 1);  // on the tensor cores
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::Flatten>();
  net->emplace<kiln::Linear>(128, 3);
  net->set_input_shape({1, 4, 4, 1});
  net->init(7);
  net->to(kiln::Device::cuda);
  net->set_precision(policy);
  kiln::Sgd opt(net->flat_params(), net->flat_grads(),
                kiln::SgdOptions{.lr = 0.05f, .momentum = 0.9f});
  kiln::data::Loader loader(data, loader_options());
  const kiln::LrSchedule schedule = cosine(3 * int64_t(loader.batches_per_epoch()));
  std::unique_ptr<kiln::GraphStep> graph_step;
  std::unique_ptr<kiln::EagerStep> eager_step;
  kiln::Step* step = nullptr;
  if (graph) {
    graph_step = std::make_unique<kiln::GraphStep>(*net, opt, schedule);
    step = graph_step.get();
  } else {
    eager_step = std::make_unique<kiln::EagerStep>(*net, opt, schedule, kiln::Device::cuda);
    step = eager_step.get();
  }
  kiln::Trainer trainer(loader, *step, {.epochs = 2, .classes = 3});
  Quiet quiet;
  trainer.progress = &quiet;
  trainer.run();
  // Two more epochs by hand (the first sizes what the hand loop's own metrics need): every graph
  // is captured by now, so the last epoch's steps only replay.
  kiln::Metrics metrics;
  kiln::data::Batch batch;
  loader.start_epoch(2);
  while (loader.next(batch)) step->run(batch, metrics);
  (void)metrics.read();
  metrics.reset();
  loader.start_epoch(3);
  const uint64_t before = kiln::allocation_stats().device_allocations;
  const int64_t replays_before = graph_step ? graph_step->replays() : 0;
  Run r;
  while (loader.next(batch)) {
    step->run(batch, metrics);
    ++r.last_epoch_steps;
  }
  (void)metrics.read();
  r.history = trainer.history();
  r.weights = net->flat_params().to_vector<float>();
  r.last_epoch_allocations = kiln::allocation_stats().device_allocations - before;
  if (graph_step) {
    r.graphs = graph_step->graphs();
    r.last_epoch_replays = graph_step->replays() - replays_before;
  }
  return r;
}

}  // namespace

TEST_CASE("precision: tf32 and bf16 graph steps equal the eager steps, allocating nothing",
          "[cuda][precision]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  in_stream_modes([] {
    for (const kiln::PrecisionPolicy policy :
         {kiln::PrecisionPolicy{kiln::Precision::tf32, true},
          kiln::PrecisionPolicy{kiln::Precision::bf16, false}}) {
      INFO(policy.describe());
      const Run want = train(false, policy);
      const Run got = train(true, policy);
      check_same_history(got.history, want.history);
      CHECK(got.weights == want.weights);
      // The last epoch only replays graphs captured before, allocating nothing.
      CHECK(got.graphs >= 2);
      CHECK(got.last_epoch_steps == 4);
      CHECK(got.last_epoch_replays == got.last_epoch_steps);
      CHECK(got.last_epoch_allocations == 0);
      CHECK(want.last_epoch_allocations == 0);
    }
  });
#endif
}
