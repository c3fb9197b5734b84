// tests/train/test_cost.cpp — the cost model (core/cost.h) on the emulated CUDA step: every kernel
// launch of a step has a cost entry (eager and graph-captured, for the flagship and a small net);
// the convolutions' and linear layers' FLOPs equal the hand-derived 2·M·N·K of each GEMM; the
// lower bound is the arithmetic of its definition; --precision's re-classing follows the policy.
// In a build without the CUDA device the step tests only state that they did not run.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/cost.h"
#include "data/loader.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/fer_cnn.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "layers/sequential.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "tests/train/fixtures.h"
#include "train/eager_step.h"
#include "train/graph_step.h"
#include "train/trainer.h"

#if KILN_WITH_CUDA
#include "core/simt/schedule.h"
#endif

namespace {

using namespace kiln::test;
using kiln::cost::Entry;
using kiln::cost::Op;

// n images of c x h x w in 3 classes, deterministic.
Dataset images(int n, int c, int h, int w) {
  Dataset d = Dataset::with_spec({c, h, w}, {"a", "b", "c"});
  std::vector<uint8_t> img(size_t(c) * h * w);
  for (int i = 0; i < n; ++i) {
    for (size_t p = 0; p < img.size(); ++p) img[p] = uint8_t((i * 37 + int(p) * 11) % 251);
    d.push_back(img.data(), i % 3);
  }
  return d;
}

// conv(1→4, 3x3, pad 1) → BN → LeakyReLU → maxpool 2 → conv(4→6, 3x3, pad 1) → LeakyReLU →
// flatten → linear(96 → 3), on 1 x 8 x 8 images: no dropout, so a GraphStep can capture it.
std::unique_ptr<kiln::Sequential> small_net() {
  auto net = std::make_unique<kiln::Sequential>();
  net->emplace<kiln::Conv2d>(1, 4, 3, 1, 1);
  net->emplace<kiln::BatchNorm2d>(4);
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::MaxPool2d>(2);
  net->emplace<kiln::Conv2d>(4, 6, 3, 1, 1);
  net->emplace<kiln::LeakyReLU>(0.01);
  net->emplace<kiln::Flatten>();
  net->emplace<kiln::Linear>(96, 3);
  net->set_input_shape({1, 8, 8, 1});
  net->init(7);
  return net;
}

double flops_of(const std::vector<Entry>& entries, Op op) {
  double f = 0;
  for (const Entry& e : entries)
    if (e.op == op) f += e.flops;
  return f;
}

#if KILN_WITH_CUDA
// Records `counted` steps after `warmup` steps of `step` over full batches of `loader`; checks
// that the recorder's launches, the emulator's kernel launches and the cost entries agree.
struct Recorded {
  std::vector<Entry> entries;
  int64_t launches = 0, graph_launches = 0, simt_launches = 0, simt_graph_launches = 0;
};
Recorded record_steps(kiln::Step& step, kiln::data::Loader& loader, int batch, int warmup,
                      int counted) {
  kiln::data::Batch b;
  kiln::Metrics metrics;
  loader.start_epoch(0);
  int64_t epoch = 0;
  auto run = [&](int n) {
    for (int i = 0; i < n;) {
      if (!loader.next(b)) {
        loader.start_epoch(++epoch);
        continue;
      }
      if (b.size != batch) continue;
      step.run(b, metrics);
      ++i;
    }
  };
  run(warmup);
  kiln::device_synchronize();
  Recorded r;
  const kiln::simt::DeviceCounts c0 = kiln::simt::counts();
  {
    kiln::cost::Recorder rec;
    run(counted);
    kiln::device_synchronize();
    r.entries = rec.entries();
    r.launches = rec.launches();
    r.graph_launches = rec.graph_launches();
  }
  const kiln::simt::DeviceCounts c1 = kiln::simt::counts();
  r.simt_launches = c1.kernel_launches - c0.kernel_launches;
  r.simt_graph_launches = c1.graph_launches - c0.graph_launches;
  return r;
}

// small_net's step (eager or graph-captured) at batch 3: `counted` steps after `warmup`.
Recorded record_small_net(bool graph, int warmup, int counted) {
  const Dataset data = images(12, 1, 8, 8);
  auto net = small_net();
  net->to(kiln::Device::cuda);
  kiln::Adam opt(net->flat_params(), net->flat_grads());
  kiln::LrSchedule schedule;
  std::unique_ptr<kiln::Step> step;
  if (graph)
    step = std::make_unique<kiln::GraphStep>(*net, opt, schedule);
  else
    step = std::make_unique<kiln::EagerStep>(*net, opt, schedule, kiln::Device::cuda);
  LoaderOptions lo = loader_options();
  lo.batch_size = 3;
  kiln::data::Loader loader(data, lo);
  return record_steps(*step, loader, 3, warmup, counted);
}
#endif

}  // namespace

TEST_CASE("cost: the modelled time of a kernel is max(compute, memory) plus its launch", "[cost]") {
  const kiln::cost::Machine m;
  Entry e{"k", Op::conv, kiln::Precision::fp32, 67e9, 4.8e6, false};  // 1 ms of fp32, 1 µs of HBM
  const kiln::PrecisionPolicy fp32;
  REQUIRE(kiln::cost::class_of(e, fp32) == kiln::cost::Class::fp32_simt);
  kiln::cost::KernelTime t = kiln::cost::time_of(e, kiln::cost::Class::fp32_simt, m);
  CHECK(t.compute_s == Approx(1e-3));
  CHECK(t.memory_s == Approx(1e-6));
  CHECK(t.total() == Approx(1e-3 + 4e-6));
  e.graph_node = true;
  CHECK(kiln::cost::time_of(e, kiln::cost::Class::fp32_simt, m).total() == Approx(1e-3 + 1e-6));

  // The policy re-classes fp32 GEMMs: tf32 takes the convolutions (the linear layers only with
  // tf32_linear), bf16 both; simt kernels and kernels launched on the tensor cores keep theirs.
  const kiln::PrecisionPolicy tf32{kiln::Precision::tf32, false};
  const kiln::PrecisionPolicy tf32_all{kiln::Precision::tf32, true};
  const kiln::PrecisionPolicy bf16{kiln::Precision::bf16, false};
  const Entry conv{"c", Op::conv, kiln::Precision::fp32, 1, 1, false};
  const Entry lin{"l", Op::linear, kiln::Precision::fp32, 1, 1, false};
  const Entry simt{"s", Op::simt, kiln::Precision::fp32, 1, 1, false};
  const Entry tc{"t", Op::linear, kiln::Precision::bf16, 1, 1, false};
  using kiln::cost::Class;
  CHECK(kiln::cost::class_of(conv, tf32) == Class::tf32_tensor);
  CHECK(kiln::cost::class_of(lin, tf32) == Class::fp32_simt);
  CHECK(kiln::cost::class_of(lin, tf32_all) == Class::tf32_tensor);
  CHECK(kiln::cost::class_of(conv, bf16) == Class::bf16_tensor);
  CHECK(kiln::cost::class_of(lin, bf16) == Class::bf16_tensor);
  CHECK(kiln::cost::class_of(simt, bf16) == Class::fp32_simt);
  CHECK(kiln::cost::class_of(tc, fp32) == Class::bf16_tensor);

  // A step: 2 launches over 2 steps, one of them a graph node of the one graph launch.
  const Entry a{"a", Op::conv, kiln::Precision::fp32, 495e9, 0, false};  // 1 ms as TF32
  const Entry b{"b", Op::simt, kiln::Precision::fp32, 0, 9.6e9, true};   // 2 ms of HBM
  const kiln::cost::StepModel s = kiln::cost::model_step({a, b}, 2, 1, 2, tf32, m);
  CHECK(s.flops[int(Class::tf32_tensor)] == Approx(495e9 / 2));
  CHECK(s.flops[int(Class::fp32_simt)] == 0);
  CHECK(s.bytes == Approx(9.6e9 / 2));
  CHECK(s.launches == 1.0);
  CHECK(s.graph_nodes == 0.5);
  CHECK(s.graph_launches == 0.5);
  CHECK(s.uncosted_launches == 0.0);
  CHECK(s.arithmetic_s == Approx((1e-3 + 2e-3) / 2));
  CHECK(s.launch_s == Approx((4e-6 + 1e-6 + 4e-6) / 2));
  REQUIRE(s.rows.size() == 2);
  CHECK(s.rows[0].kernel == "b");  // the larger modelled time first
  CHECK_THROWS_WITH(kiln::cost::model_step({}, 0, 0, 0, fp32, m),
                    Catch::Contains("steps must be > 0"));
}

TEST_CASE("cost: nothing is recorded without a Recorder, and one Recorder at a time", "[cost]") {
  kiln::cost::record("k", Op::simt, kiln::Precision::fp32, 1, 1);  // no listener: dropped
  kiln::cost::Recorder rec;
  CHECK(rec.entries().empty());
  kiln::cost::simt("k", 3, 8);
  kiln::cost::gemm("g", Op::linear, kiln::Precision::fp32, 2, 3, 5, 40);
  const std::vector<Entry> e = rec.entries();
  REQUIRE(e.size() == 2);
  CHECK(e[0].flops == 3);
  CHECK(e[1].flops == 2 * 2 * 3 * 5);
  CHECK(e[1].bytes == 40);
  CHECK_THROWS_WITH(kiln::cost::Recorder(), Catch::Contains("another Recorder is alive"));
}

TEST_CASE("cost: an emulated eager step's conv and linear FLOPs are the hand-derived ones",
          "[cost][simt]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  const Recorded r = record_small_net(false, 1, 1);
  // Batch 3. conv1 (1→4 on 8x8): forward and filter gradient, no input gradient (need_dx off):
  // 2·(3·8·8)·4·(3·3·1) = 13824 each. conv2 (4→6 on 4x4): forward, data and filter gradients,
  // 2·(3·4·4)·6·(3·3·4) = 20736 each. linear (96→3): forward, data, weight: 2·3·96·3 = 1728 each.
  CHECK(flops_of(r.entries, Op::conv) == 2 * 13824.0 + 3 * 20736.0);
  CHECK(flops_of(r.entries, Op::linear) == 3 * 1728.0);
  CHECK(r.launches == int64_t(r.entries.size()));
  CHECK(r.simt_launches == int64_t(r.entries.size()));
#endif
}

TEST_CASE("cost: every kernel launch of the flagship's emulated eager step has a cost entry",
          "[cost][simt]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  const Dataset data = images(8, 1, 48, 48);
  auto net = kiln::make_fer_cnn(kiln::FerCnnConfig{1, 48, 48, 3, 0.125, 0.25}, 3);
  net->to(kiln::Device::cuda);
  kiln::Adam opt(net->flat_params(), net->flat_grads());
  kiln::LrSchedule schedule;
  kiln::EagerStep step(*net, opt, schedule, kiln::Device::cuda, kiln::EagerStepOptions{.clip = 1});
  LoaderOptions lo = loader_options();
  lo.batch_size = 2;
  kiln::data::Loader loader(data, lo);
  const Recorded r = record_steps(step, loader, 2, 1, 1);
  INFO("recorder launches " << r.launches << ", emulator launches " << r.simt_launches);
  REQUIRE(r.simt_launches > 30);
  CHECK(r.launches == r.simt_launches);
  CHECK(int64_t(r.entries.size()) == r.simt_launches);  // launches without a cost entry: 0
  const kiln::cost::StepModel m =
      kiln::cost::model_step(r.entries, r.launches, r.graph_launches, 1, {});
  CHECK(m.uncosted_launches == 0);
  CHECK(m.flops[int(kiln::cost::Class::fp32_simt)] > 0);
  CHECK(m.lower_bound_s() > double(r.launches) * 4e-6);
#endif
}

TEST_CASE("cost: a graph-captured step replays its capture's entries as graph nodes",
          "[cost][simt]") {
  if (!have_cuda()) return;
#if KILN_WITH_CUDA
  const Recorded eager = record_small_net(false, 1, 2);
  const Recorded graph = record_small_net(true, 3, 2);  // eager, capture, replay; then 2 counted
  CHECK(graph.graph_launches == 2);
  CHECK(graph.simt_graph_launches == 2);
  CHECK(graph.launches == graph.simt_launches);
  CHECK(int64_t(graph.entries.size()) == graph.simt_launches);
  // Only the metrics' accumulation runs outside the graph (Metrics::add, after the launch).
  CHECK(std::count_if(graph.entries.begin(), graph.entries.end(),
                      [](const Entry& e) { return e.graph_node; }) > 10);
  for (const Entry& e : graph.entries)
    if (!e.graph_node) CHECK(std::string(e.kernel) == "accumulate_metrics");
  // The same kernels as the eager step, the same FLOPs and bytes.
  REQUIRE(graph.entries.size() == eager.entries.size());
  CHECK(flops_of(graph.entries, Op::conv) == flops_of(eager.entries, Op::conv));
  CHECK(flops_of(graph.entries, Op::simt) == flops_of(eager.entries, Op::simt));
#endif
}
