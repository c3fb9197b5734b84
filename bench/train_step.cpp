// bench/train_step.cpp — throughput of the flagship's training step (layers/fer_cnn.h + Adam +
// softmax cross-entropy), the way examples/fer_cnn trains it:
//   zero_grad -> forward (train mode) -> loss (its value read back to the host) -> backward
//   (no input gradient) -> one fused Adam launch over the flat parameters.
//
// Three measurements, each after warm-up steps, timed on the wall clock with the device
// synchronised at both ends:
//   resident   one random batch already on the device, reused every step (the compute ceiling);
//   loader     the real pipeline: data::Loader over the synthetic faces (shuffle, flip, shift, a
//              background thread preparing the next batches), each batch copied to the device;
//   breakdown  every layer's forward and backward timed alone, the device synchronised around each
//              call (so on a GPU the sum exceeds the resident step: launches no longer overlap);
//   counts     (CUDA) the library's steps over the loader — EagerStep (sync-free) and GraphStep —
//              per step after warm-up: kernel launches, graph launches and host synchronisations
//              (counted by the SIMT emulator, so only in the emulated twin kiln_bench_train_emu),
//              device allocations, and the peak device memory. Counts, not times.
//              Beside them the cost model (core/cost.h) of the same steps: FLOPs per
//              instruction class, compulsory bytes, and the lower bound they put on an H200's
//              step time, with the kernels of the largest modelled time. A model, not a
//              measurement: computed from the shapes each launcher records, so the nvcc build
//              and the emulated twin give the same figures. --precision tf32|bf16 models the
//              convolutions and linear layers on the tensor cores (PyTorch's policy: tf32 leaves
//              the linear layers in fp32 unless --tf32-linear).
//
//   kiln_bench_train --device cpu --input 1x48x48 --batch 64 --width 1 --steps 5 --json out.json
//   kiln_bench_train_emu --device cuda --width 0.125 --batch-size 256 --steps 2 --no-resident
//       --no-loader --no-breakdown          (the counts and the cost model only)
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <string>
#include <vector>

#include "core/bytes.h"
#include "core/cost.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/tensor.h"
#include "data/loader.h"
#include "data/synthetic.h"
#include "io/file.h"
#include "layers/fer_cnn.h"
#include "layers/loss.h"
#include "optim/optimizer.h"
#include "optim/schedule.h"
#include "train/eager_step.h"
#include "train/graph_step.h"
#include "train/trainer.h"

#if KILN_BENCH_EMULATED
#include "core/simt/schedule.h"
#endif

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

struct Options {
  std::string device = "auto", input = "1x48x48", json, precision = "fp32";
  bool tf32_linear = false;
  int top_kernels = 10;
  int batch = 64, steps = 5, warmup = 2;
  double width = 1.0;
  bool resident = true, loader = true, breakdown = true, counts = true;
  uint64_t seed = 1;
};

kiln::data::ImageSpec parse_input(const std::string& s) {
  kiln::data::ImageSpec spec;
  char x1 = 0, x2 = 0;
  if (std::sscanf(s.c_str(), "%d%c%d%c%d", &spec.channels, &x1, &spec.height, &x2, &spec.width) !=
          5 ||
      x1 != 'x' || x2 != 'x' || (spec.channels != 1 && spec.channels != 3) || spec.height < 32 ||
      spec.width < 32)
    KILN_FAIL("--input ", s, ": expected CxHxW with C 1 or 3 and H, W >= 32 (e.g. 1x48x48)");
  return spec;
}

class Bench {
 public:
  Bench(const Options& o, kiln::Device device)
      : o_(o), device_(device), spec_(parse_input(o.input)) {
    net_ = kiln::make_fer_cnn(
        kiln::FerCnnConfig{spec_.channels, spec_.height, spec_.width, 7, o.width, 0.25}, o.seed);
    net_->to(device_);
    opt_ = std::make_unique<kiln::Adam>(net_->flat_params(), net_->flat_grads());
    x_ = kiln::Tensor({o.batch, spec_.height, spec_.width, spec_.channels}, kiln::DType::f32,
                      device_);
    y_ = kiln::Tensor({o.batch}, kiln::DType::i32, device_);
  }

  int64_t params() { return net_->num_params(); }

  // One training step on (x_, y_); returns the loss.
  double step() {
    net_->zero_grad();
    const double loss = xent_.forward(net_->forward(x_, kiln::Mode::train), y_);
    net_->backward(xent_.backward(), {.need_dx = false});
    opt_->step();
    return loss;
  }

  void random_batch() {
    std::mt19937 gen(static_cast<uint32_t>(o_.seed));
    std::uniform_real_distribution<float> u(0.f, 1.f);
    std::vector<float> x(x_.numel());
    for (auto& v : x) v = u(gen);
    std::vector<int32_t> y(o_.batch);
    for (int i = 0; i < o_.batch; ++i) y[i] = static_cast<int32_t>(gen() % 7);
    x_.copy_from(kiln::Tensor::from_vector<float>(x_.shape(), x));
    y_.copy_from(kiln::Tensor::from_vector<int32_t>(y_.shape(), y));
  }

  nlohmann::json resident() {
    random_batch();
    for (int i = 0; i < o_.warmup; ++i) step();
    kiln::device_synchronize();
    const auto t0 = Clock::now();
    double loss = 0;
    for (int i = 0; i < o_.steps; ++i) loss = step();
    kiln::device_synchronize();
    return result(seconds_since(t0), loss);
  }

  kiln::data::Splits synthetic(int steps_needed) const {
    kiln::data::SyntheticOptions so;
    so.spec = spec_;
    so.train_per_class = (o_.batch * steps_needed + 6) / 7 + 1;
    so.val_per_class = so.test_per_class = 1;
    so.seed = o_.seed;
    return kiln::data::make_synthetic(so);
  }

  kiln::data::LoaderOptions loader_options() const {
    kiln::data::LoaderOptions lo;
    lo.batch_size = o_.batch;
    lo.seed = o_.seed;
    lo.augment = {.hflip = true, .max_shift = std::max(1, spec_.width / 16)};
    return lo;
  }

  nlohmann::json loader() {
    const auto t_data = Clock::now();
    const kiln::data::Splits data = synthetic(o_.warmup + o_.steps);
    const double data_s = seconds_since(t_data);
    kiln::data::Loader loader(data.train, loader_options());
    loader.start_epoch(0);
    kiln::data::Batch batch;
    int64_t epoch = 0;
    auto next_full_batch = [&] {
      for (;;) {
        if (!loader.next(batch)) {
          loader.start_epoch(++epoch);
          continue;
        }
        if (batch.size == o_.batch) return;  // the epoch's short last batch is skipped
      }
    };
    auto upload = [&] {
      kiln::copy_bytes(x_.raw(), device_, batch.images.data(), kiln::Device::cpu, x_.bytes());
      kiln::copy_bytes(y_.raw(), device_, batch.labels.data(), kiln::Device::cpu, y_.bytes());
    };
    for (int i = 0; i < o_.warmup; ++i) {
      next_full_batch();
      upload();
      step();
    }
    kiln::device_synchronize();
    const auto t0 = Clock::now();
    double loss = 0;
    for (int i = 0; i < o_.steps; ++i) {
      next_full_batch();
      upload();
      loss = step();
    }
    kiln::device_synchronize();
    nlohmann::json r = result(seconds_since(t0), loss);
    r["dataset_seconds"] = data_s;
    r["dataset_images"] = data.train.size();
    return r;
  }

  // Counts per step of the library's CUDA steps (see the header comment).
  nlohmann::json counts() {
    const int warmup = std::max(o_.warmup, 4);  // the graph step: 2 eager, 2 captured
    const kiln::data::Splits data = synthetic(warmup + o_.steps + 1);
    nlohmann::json out;
    for (const bool graph : {false, true}) {
      const char* name = graph ? "graph_step" : "eager_step";
      kiln::Adam opt(net_->flat_params(), net_->flat_grads());
      kiln::LrSchedule schedule;
      schedule.base_lr = 1e-3;
      std::unique_ptr<kiln::Step> step;
      if (graph)
        step = std::make_unique<kiln::GraphStep>(*net_, opt, schedule);
      else
        step = std::make_unique<kiln::EagerStep>(*net_, opt, schedule, kiln::Device::cuda);
      kiln::data::Loader loader(data.train, loader_options());
      loader.start_epoch(0);
      kiln::data::Batch batch;
      kiln::Metrics metrics;
      auto run_steps = [&](int n) {
        for (int i = 0; i < n;) {
          if (!loader.next(batch)) break;
          if (batch.size != o_.batch) continue;  // the short last batch is not counted
          step->run(batch, metrics);
          ++i;
        }
      };
      try {
        run_steps(warmup);
      } catch (const kiln::Error& e) {
        out[name] = {{"refused", e.what()}};
        continue;
      }
      const kiln::AllocationStats a0 = kiln::allocation_stats();
#if KILN_BENCH_EMULATED
      const kiln::simt::DeviceCounts c0 = kiln::simt::counts();
#endif
      nlohmann::json model;
      {
        kiln::cost::Recorder recorder;
        run_steps(o_.steps);
        model = cost_model(recorder);
      }
      const kiln::AllocationStats a1 = kiln::allocation_stats();
      const double per = 1.0 / o_.steps;
      nlohmann::json r = {{"steps", o_.steps},
                          {"device_allocations_per_step",
                           double(a1.device_allocations - a0.device_allocations) * per},
                          {"device_bytes_in_use", a1.device_bytes_in_use},
                          {"device_bytes_peak", a1.device_bytes_peak}};
#if KILN_BENCH_EMULATED
      const kiln::simt::DeviceCounts c1 = kiln::simt::counts();
      r["kernel_launches_per_step"] = double(c1.kernel_launches - c0.kernel_launches) * per;
      r["graph_launches_per_step"] = double(c1.graph_launches - c0.graph_launches) * per;
      r["host_synchronizations_per_step"] =
          double(c1.host_synchronizations - c0.host_synchronizations) * per;
#endif
      KILN_CHECK(std::isfinite(metrics.read().loss), "training diverged in the counted steps");
      r["cost_model"] = model;
      out[name] = r;
    }
    return out;
  }

  nlohmann::json breakdown() {
    random_batch();
    kiln::Sequential& net = *net_;
    const int layers = net.size();
    std::vector<double> fwd(layers, 0), bwd(layers, 0);
    double zero = 0, loss_t = 0, opt_t = 0;
    auto timed = [](auto&& f) {
      kiln::device_synchronize();
      const auto t = Clock::now();
      f();
      kiln::device_synchronize();
      return seconds_since(t);
    };
    step();  // warm-up: every buffer allocated
    for (int s = 0; s < o_.steps; ++s) {
      zero += timed([&] { net.zero_grad(); });
      const kiln::Tensor* a = &x_;
      for (int i = 0; i < layers; ++i)
        fwd[i] += timed([&] { a = &net[i].forward(*a, kiln::Mode::train); });
      loss_t += timed([&] { xent_.forward(*a, y_); });
      const kiln::Tensor* d = &xent_.backward();
      for (int i = layers - 1; i >= 0; --i)
        bwd[i] += timed([&] { d = &net[i].backward(*d, {.need_dx = i > 0}); });
      opt_t += timed([&] { opt_->step(); });
    }
    const double k = 1e3 / o_.steps;  // seconds summed over steps -> ms per step
    nlohmann::json rows = nlohmann::json::array();
    double total = (zero + loss_t + opt_t) * k;
    for (int i = 0; i < layers; ++i) {
      rows.push_back({{"index", i},
                      {"layer", net[i].describe()},
                      {"forward_ms", fwd[i] * k},
                      {"backward_ms", bwd[i] * k}});
      total += (fwd[i] + bwd[i]) * k;
    }
    return {{"layers", rows},
            {"zero_grad_ms", zero * k},
            {"loss_ms", loss_t * k},
            {"optimizer_ms", opt_t * k},
            {"total_ms", total}};
  }

 private:
  kiln::PrecisionPolicy policy() const {
    return {kiln::parse_precision(o_.precision), o_.tf32_linear};
  }

  // The model of the recorded steps as JSON: its assumptions, totals and the top kernels by
  // modelled time at --precision, and the lower bound at each precision policy.
  nlohmann::json cost_model(const kiln::cost::Recorder& recorder) const {
    const std::vector<kiln::cost::Entry> entries = recorder.entries();
    auto model_at = [&](const kiln::PrecisionPolicy& p) {
      return kiln::cost::model_step(entries, recorder.launches(), recorder.graph_launches(),
                                    o_.steps, p);
    };
    nlohmann::json by_precision = nlohmann::json::object();
    for (const kiln::PrecisionPolicy& p : {kiln::PrecisionPolicy{kiln::Precision::fp32, false},
                                           kiln::PrecisionPolicy{kiln::Precision::tf32, false},
                                           kiln::PrecisionPolicy{kiln::Precision::tf32, true},
                                           kiln::PrecisionPolicy{kiln::Precision::bf16, false}})
      by_precision[p.describe()] = model_at(p).lower_bound_s() * 1e3;
    const kiln::cost::StepModel m = model_at(policy());
    const kiln::cost::Machine machine;
    nlohmann::json flops = nlohmann::json::object();
    for (const kiln::cost::Class c : {kiln::cost::Class::fp32_simt, kiln::cost::Class::tf32_tensor,
                                      kiln::cost::Class::bf16_tensor})
      flops[kiln::cost::class_name(c)] = m.flops[int(c)];
    nlohmann::json top = nlohmann::json::array();
    for (size_t i = 0; i < m.rows.size() && int(i) < o_.top_kernels; ++i) {
      const kiln::cost::ModelRow& r = m.rows[i];
      top.push_back({{"kernel", r.kernel},
                     {"class", kiln::cost::class_name(r.cls)},
                     {"calls", r.calls},
                     {"flops", r.flops},
                     {"bytes", r.bytes},
                     {"modelled_us", r.seconds * 1e6}});
    }
    return {{"note", "a model, not a measurement"},
            {"precision", policy().describe()},
            {"assumptions",
             {{"machine", machine.name},
              {"fp32_simt_tflops", machine.fp32_flops * 1e-12},
              {"tf32_tensor_tflops", machine.tf32_flops * 1e-12},
              {"bf16_tensor_tflops", machine.bf16_flops * 1e-12},
              {"hbm_tb_per_s", machine.dram_bytes * 1e-12},
              {"launch_us", machine.launch_s * 1e6},
              {"graph_node_us", machine.graph_node_s * 1e6},
              {"graph_launch_us", machine.graph_launch_s * 1e6}}},
            {"flops_per_step", flops},
            {"bytes_per_step", m.bytes},
            {"kernel_launches_per_step", m.launches},
            {"graph_nodes_per_step", m.graph_nodes},
            {"graph_launches_per_step", m.graph_launches},
            {"launches_without_cost_entry_per_step", m.uncosted_launches},
            {"arithmetic_ms", m.arithmetic_s * 1e3},
            {"launch_overhead_ms", m.launch_s * 1e3},
            {"lower_bound_ms", m.lower_bound_s() * 1e3},
            {"lower_bound_ms_by_precision", by_precision},
            {"kernels", m.rows.size()},
            {"top_kernels", top}};
  }

  nlohmann::json result(double seconds, double loss) const {
    KILN_CHECK(std::isfinite(loss), "training diverged (loss ", loss, ")");
    return {{"steps", o_.steps},
            {"step_ms", 1e3 * seconds / o_.steps},
            {"images_per_s", o_.batch * o_.steps / seconds},
            {"last_loss", loss}};
  }

  Options o_;
  kiln::Device device_;
  kiln::data::ImageSpec spec_;
  std::unique_ptr<kiln::Sequential> net_;
  std::unique_ptr<kiln::Adam> opt_;
  kiln::SoftmaxCrossEntropy xent_;
  kiln::Tensor x_, y_;
};

std::string env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v && *v ? v : fallback;
}

// The cost model's lines under a step's counts.
void print_cost_model(const nlohmann::json& m) {
  const auto& a = m["assumptions"];
  const auto& f = m["flops_per_step"];
  std::printf(
      "    cost model (a model, not a measurement; %s, %s: fp32 %g, TF32 %g, BF16 %g TFLOP/s, "
      "%g TB/s; %g us a launch, %g us a graph node, %g us a graph launch)\n",
      a["machine"].get<std::string>().c_str(), m["precision"].get<std::string>().c_str(),
      a["fp32_simt_tflops"].get<double>(), a["tf32_tensor_tflops"].get<double>(),
      a["bf16_tensor_tflops"].get<double>(), a["hbm_tb_per_s"].get<double>(),
      a["launch_us"].get<double>(), a["graph_node_us"].get<double>(),
      a["graph_launch_us"].get<double>());
  std::printf(
      "    per step: %.3f GFLOP fp32 SIMT, %.3f GFLOP TF32, %.3f GFLOP BF16; %s moved; %.1f "
      "launches (%.1f graph nodes), %.1f without a cost entry\n",
      f["fp32 SIMT"].get<double>() * 1e-9, f["TF32 tensor core"].get<double>() * 1e-9,
      f["BF16 tensor core"].get<double>() * 1e-9,
      kiln::byte_count(uint64_t(m["bytes_per_step"].get<double>())).c_str(),
      m["kernel_launches_per_step"].get<double>(), m["graph_nodes_per_step"].get<double>(),
      m["launches_without_cost_entry_per_step"].get<double>());
  std::printf(
      "    lower bound: %.4f ms per step (%.4f ms arithmetic and memory, %.4f ms launches)\n",
      m["lower_bound_ms"].get<double>(), m["arithmetic_ms"].get<double>(),
      m["launch_overhead_ms"].get<double>());
  std::printf("    lower bound by precision policy:");
  for (const auto& [policy, ms] : m["lower_bound_ms_by_precision"].items())
    std::printf("  %s %.4f ms", policy.c_str(), ms.get<double>());
  std::printf("\n");
  std::printf("    top kernels by modelled time (of %zu):\n      %-30s %-17s %6s %12s %12s %10s\n",
              m["kernels"].get<size_t>(), "kernel", "class", "calls", "MFLOP", "KB", "us");
  for (const auto& r : m["top_kernels"])
    std::printf("      %-30s %-17s %6.1f %12.3f %12.1f %10.2f\n",
                r["kernel"].get<std::string>().c_str(), r["class"].get<std::string>().c_str(),
                r["calls"].get<double>(), r["flops"].get<double>() * 1e-6,
                r["bytes"].get<double>() * 1e-3, r["modelled_us"].get<double>());
}

int run(const Options& o) {
  kiln::Device device = kiln::Device::cpu;
  if (o.device == "auto") {
    device = kiln::cuda_available() ? kiln::Device::cuda : kiln::Device::cpu;
  } else {
    device = kiln::parse_device(o.device);
    if (device == kiln::Device::cuda && !kiln::cuda_available()) {
      std::printf("no GPU: %s (nothing measured)\n", kiln::cuda_unavailable_reason().c_str());
      return 0;
    }
  }
  const std::string device_name =
      device == kiln::Device::cuda ? kiln::cuda_device_name() : std::string("cpu");
  Bench bench(o, device);
  nlohmann::json out = {{"device", kiln::device_name(device)},
                        {"device_name", device_name},
                        {"input", o.input},
                        {"batch", o.batch},
                        {"width", o.width},
                        {"precision", o.precision},
                        {"params", bench.params()},
                        {"omp_threads", env_or("OMP_NUM_THREADS", "default")}};
  std::printf(
      "kiln_bench_train: fer_cnn x%g (%lld parameters), input %s, batch %d, %s (%s), %d "
      "steps after %d warm-up\n",
      o.width, static_cast<long long>(bench.params()), o.input.c_str(), o.batch,
      kiln::device_name(device), device_name.c_str(), o.steps, o.warmup);
  std::fflush(stdout);
  if (o.resident) {
    out["resident"] = bench.resident();
    std::printf("  resident data : %8.2f ms/step  %9.1f images/s\n",
                out["resident"]["step_ms"].get<double>(),
                out["resident"]["images_per_s"].get<double>());
    std::fflush(stdout);
  }
  if (o.loader) {
    out["loader"] = bench.loader();
    std::printf(
        "  data::Loader  : %8.2f ms/step  %9.1f images/s  (synthetic set of %zu made in "
        "%.2f s, not timed)\n",
        out["loader"]["step_ms"].get<double>(), out["loader"]["images_per_s"].get<double>(),
        out["loader"]["dataset_images"].get<size_t>(),
        out["loader"]["dataset_seconds"].get<double>());
    std::fflush(stdout);
  }
  if (o.counts && device == kiln::Device::cuda) {
    out["counts"] = bench.counts();
    for (const char* name : {"eager_step", "graph_step"}) {
      const auto& c = out["counts"][name];
      if (c.contains("refused")) {
        std::printf("  counts, %-10s: refused: %s\n", name,
                    c["refused"].get<std::string>().c_str());
        continue;
      }
      std::printf("  counts, %-10s: per step ", name);
      if (c.contains("kernel_launches_per_step"))
        std::printf("%.1f kernel launches, %.1f graph launches, %.1f host syncs, ",
                    c["kernel_launches_per_step"].get<double>(),
                    c["graph_launches_per_step"].get<double>(),
                    c["host_synchronizations_per_step"].get<double>());
      else
        std::printf(
            "(host syncs: counted by kiln_bench_train_emu; kernel and graph launches: in the cost "
            "model below) ");
      std::printf("%.1f device allocations; peak device memory %s\n",
                  c["device_allocations_per_step"].get<double>(),
                  kiln::byte_count(c["device_bytes_peak"].get<uint64_t>()).c_str());
      print_cost_model(c["cost_model"]);
    }
    std::fflush(stdout);
  }
  if (o.breakdown) {
    out["breakdown"] = bench.breakdown();
    const auto& b = out["breakdown"];
    std::printf("  per layer (synchronised), ms per step:\n  %3s  %-66s %9s %9s\n", "#", "layer",
                "forward", "backward");
    for (const auto& r : b["layers"])
      std::printf("  %3d  %-66s %9.3f %9.3f\n", r["index"].get<int>(),
                  r["layer"].get<std::string>().c_str(), r["forward_ms"].get<double>(),
                  r["backward_ms"].get<double>());
    std::printf("  zero_grad %.3f ms, loss %.3f ms, optimizer %.3f ms; total %.2f ms\n",
                b["zero_grad_ms"].get<double>(), b["loss_ms"].get<double>(),
                b["optimizer_ms"].get<double>(), b["total_ms"].get<double>());
  }
  if (!o.json.empty()) kiln::write_file_atomic(o.json, out.dump(2) + "\n");
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  CLI::App app{"Kiln: images/s of the flagship's training step"};
  app.add_option("--device", o.device, "cpu | cuda | auto")
      ->check(CLI::IsMember({"cpu", "cuda", "auto"}));
  app.add_option("--input", o.input, "CxHxW: 1x48x48 or 3x128x128");
  app.add_option("--batch,--batch-size", o.batch, "batch size")->check(CLI::PositiveNumber);
  app.add_option("--width", o.width, "width multiplier (1 = the report's network)")
      ->check(CLI::PositiveNumber);
  app.add_option("--steps", o.steps, "timed steps")->check(CLI::PositiveNumber);
  app.add_option("--warmup", o.warmup, "untimed steps first")->check(CLI::NonNegativeNumber);
  app.add_option("--seed", o.seed, "seed");
  app.add_option("--precision", o.precision,
                 "the cost model's precision of the convolutions and linear layers (a model: the "
                 "step itself runs as the library does)")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}));
  app.add_flag("--tf32-linear", o.tf32_linear,
               "with --precision tf32: model the linear layers in TF32 too");
  app.add_option("--top-kernels", o.top_kernels, "kernels listed by modelled time")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--json", o.json, "also write the figures to this JSON file");
  bool no_resident = false, no_loader = false, no_breakdown = false, no_counts = false;
  app.add_flag("--no-resident", no_resident, "skip the resident-data measurement");
  app.add_flag("--no-loader", no_loader, "skip the data::Loader measurement");
  app.add_flag("--no-breakdown", no_breakdown, "skip the per-layer breakdown");
  app.add_flag("--no-counts", no_counts, "skip the per-step counts (CUDA)");
  CLI11_PARSE(app, argc, argv);
  o.resident = !no_resident;
  o.loader = !no_loader;
  o.breakdown = !no_breakdown;
  o.counts = !no_counts;
  try {
    return run(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_bench_train: %s\n", e.what());
    return 1;
  }
}
