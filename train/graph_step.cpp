// train/graph_step.cpp — the graph-captured CUDA step (see graph_step.h).
#include "train/graph_step.h"

#include <cmath>
#include <cstring>
#include <optional>
#include <string>

#include "core/memory.h"

namespace kiln {
namespace {

// Points every device-readable counter at its slot in the step's device bytes for the lifetime of
// the guard, so that only the step's own (eager or captured) kernels read the slots: a forward the
// user runs between steps takes its offsets as numbers again.
class CounterSlots {
 public:
  CounterSlots(const std::vector<CounterRef>& counters, const void* device_bytes)
      : counters_(counters) {
    const auto* slot = static_cast<const uint64_t*>(device_bytes);
    for (const CounterRef& c : counters_)
      if (c.device != nullptr) *c.device = slot++;
  }
  ~CounterSlots() {
    for (const CounterRef& c : counters_)
      if (c.device != nullptr) *c.device = nullptr;
  }
  CounterSlots(const CounterSlots&) = delete;
  CounterSlots& operator=(const CounterSlots&) = delete;

 private:
  const std::vector<CounterRef>& counters_;
};

}  // namespace

GraphStep::GraphStep(Sequential& net, Optimizer& optimizer, const LrSchedule& schedule,
                     const GraphStepOptions& options)
    : net_(net), optimizer_(optimizer), schedule_(schedule), options_(options) {
  KILN_CHECK(std::isfinite(options.clip) && options.clip >= 0,
             "GraphStep: clip must be a finite number >= 0 (0: off), got ", options.clip);
  KILN_CHECK(optimizer.params().device() == Device::cuda,
             "GraphStep: the model must be on the CUDA device (move it with to(Device::cuda) "
             "before building the optimizer), or use EagerStep on the CPU");
  counters_at_ = (optimizer.coefficient_bytes() + 7) / 8 * 8;
}

GraphStep::~GraphStep() {
  optimizer_.set_device_coefficients(nullptr);
}

template <typename F>
GraphStep::Advance GraphStep::run_counted(const std::vector<CounterRef>& counters,
                                          const std::vector<int64_t*>& scalars, F&& body) {
  std::vector<uint64_t> before;
  for (const CounterRef& c : counters) before.push_back(*c.value);
  std::vector<int64_t> scalars_before;
  for (const int64_t* v : scalars) scalars_before.push_back(*v);
  body();
  Advance advance;
  std::string host_state, twice;
  for (size_t i = 0; i < counters.size(); ++i) {
    advance.counters.push_back(*counters[i].value - before[i]);
    if (advance.counters.back() == 0) continue;
    std::string& names = counters[i].device == nullptr ? host_state : twice;
    if (counters[i].device != nullptr && advance.counters.back() == 1) continue;
    names += (names.empty() ? "" : ", ") + counters[i].name;
  }
  KILN_CHECK(host_state.empty(),
             "GraphStep: the network keeps per-step state on the host (its "
             "counters ",
             host_state,
             " advance every step and have no device slot, see "
             "CounterRef::device), which a replayed graph cannot advance; train this network "
             "with EagerStep");
  KILN_CHECK(twice.empty(), "GraphStep: the counters ", twice,
             " advanced more than once in one step (a layer run twice per step?), but their "
             "device slot holds one value per step; train this network with EagerStep");
  for (size_t i = 0; i < scalars.size(); ++i)
    advance.scalars.push_back(*scalars[i] - scalars_before[i]);
  return advance;
}

void GraphStep::run(const data::Batch& batch, Metrics& metrics) {
  // A replay runs no host code: a backward hook would run once, during the capture.
  KILN_CHECK(!net_.on_layer_backward,
             "GraphStep: the network has a backward hook (Sequential::on_layer_backward, e.g. "
             "data parallelism's gradient all-reduce), host code that a replayed graph would not "
             "run; train this network with EagerStep");
  StreamGuard on(stream_.get());
  if (allocation_stats().device_allocations != allocations_seen_) {
    // Device memory was allocated since the last step (a validation pass, say): if it grew a
    // buffer the graphs use, their addresses are stale. Plan and capture again.
    graphs_.clear();
    planned_.clear();
  }
  struct Seen {  // the allocation count this step leaves, however it ends
    uint64_t& seen;
    ~Seen() { seen = allocation_stats().device_allocations; }
  } seen{allocations_seen_};
  lr_ = schedule_.lr(optimizer_.steps());
  optimizer_.set_lr(lr_);
  const std::vector<CounterRef> counters = net_.counters();
  // The integer buffers (BatchNorm2d's num_batches_tracked): host counts that no kernel reads.
  std::vector<int64_t*> scalars;
  for (const BufferRef& b : net_.buffers())
    if (b.scalar != nullptr) scalars.push_back(b.scalar);
  size_t slots = 0;
  for (const CounterRef& c : counters) slots += c.device != nullptr ? 1 : 0;
  extra_.assign(counters_at_ + slots * sizeof(uint64_t), 0);
  optimizer_.next_coefficients(extra_.data());
  unsigned char* slot = extra_.data() + counters_at_;
  for (const CounterRef& c : counters) {
    if (c.device == nullptr) continue;
    std::memcpy(slot, c.value, sizeof(uint64_t));
    slot += sizeof(uint64_t);
  }
  batch_.upload(batch, Device::cuda, metrics.synchronizations(), extra_.data(), extra_.size());
  optimizer_.set_device_coefficients(batch_.extra());
  const CounterSlots pointed(counters,
                             static_cast<const unsigned char*>(batch_.extra()) + counters_at_);
  auto body = [&] {
    device_step(net_, criterion_, optimizer_, batch_, options_.clip, grad_not_finite_);
  };
  const std::pair<int64_t, int> key{batch.size, batch_.target()};
  auto graph = graphs_.find(key);
  if (graph != graphs_.end()) {
    graph->second.graph.launch(stream_.get());
    // What the captured step did on the host: the update's step count, the counters' and the
    // integer buffers' advance.
    optimizer_.set_steps(optimizer_.steps() + 1);
    const Advance& advance = graph->second.advance;
    KILN_CHECK(
        advance.counters.size() == counters.size() && advance.scalars.size() == scalars.size(),
        "GraphStep: the network's counters or buffers changed since the capture; build a "
        "new GraphStep for the changed network");
    for (size_t i = 0; i < counters.size(); ++i) *counters[i].value += advance.counters[i];
    for (size_t i = 0; i < scalars.size(); ++i) *scalars[i] += advance.scalars[i];
    ++replays_;
    metrics.add(graph->second.loss, graph->second.correct,
                options_.clip > 0 ? &grad_not_finite_ : nullptr);
    return;
  }
  if (planned_.count(batch.size) != 0) {
    // Captured now (the update's host side, steps() + 1, and the counters' advance happen during
    // the capture), then run.
    std::optional<CudaGraph> captured;
    Advance advance = run_counted(
        counters, scalars, [&] { captured.emplace(CudaGraph::capture(stream_.get(), body)); });
    // Views sharing the buffers the captured forward wrote.
    Captured c{
        std::move(*captured), criterion_.loss_tensor().view(criterion_.loss_tensor().shape()),
        criterion_.correct_tensor().view(criterion_.correct_tensor().shape()), std::move(advance)};
    c.graph.launch(stream_.get());
    graphs_.emplace(key, std::move(c));
    ++replays_;
  } else {
    const uint64_t allocations = allocation_stats().device_allocations;
    (void)run_counted(counters, scalars, body);
    ++eager_;
    if (allocation_stats().device_allocations == allocations) {
      planned_.insert(batch.size);
    } else {
      graphs_.clear();  // a buffer grew: the addresses captured before may have moved
      planned_.clear();
    }
  }
  metrics.add(criterion_.loss_tensor(), criterion_.correct_tensor(),
              options_.clip > 0 ? &grad_not_finite_ : nullptr);
}

}  // namespace kiln
