// train/graph_step.cpp — the graph-captured CUDA step (see graph_step.h).
#include "train/graph_step.h"

#include <cmath>
#include <string>

#include "core/memory.h"

namespace kiln {

GraphStep::GraphStep(Sequential& net, Optimizer& optimizer, const LrSchedule& schedule,
                     const GraphStepOptions& options)
    : net_(net), optimizer_(optimizer), schedule_(schedule), options_(options) {
  KILN_CHECK(std::isfinite(options.clip) && options.clip >= 0,
             "GraphStep: clip must be a finite number >= 0 (0: off), got ", options.clip);
  KILN_CHECK(optimizer.params().device() == Device::cuda,
             "GraphStep: the model must be on the CUDA device (move it with to(Device::cuda) "
             "before building the optimizer), or use EagerStep on the CPU");
  coefficients_.resize(optimizer.coefficient_bytes());
}

GraphStep::~GraphStep() {
  optimizer_.set_device_coefficients(nullptr);
}

std::vector<uint64_t> GraphStep::counter_values() {
  std::vector<uint64_t> v;
  for (const CounterRef& c : net_.counters()) v.push_back(*c.value);
  return v;
}

void GraphStep::run(const data::Batch& batch, Metrics& metrics) {
  StreamGuard on(stream_.get());
  lr_ = schedule_.lr(optimizer_.steps());
  optimizer_.set_lr(lr_);
  optimizer_.next_coefficients(coefficients_.data());
  batch_.upload(batch, Device::cuda, metrics.synchronizations(), coefficients_.data(),
                coefficients_.size());
  optimizer_.set_device_coefficients(batch_.extra());
  auto body = [&] {
    device_step(net_, criterion_, optimizer_, batch_, options_.clip, grad_not_finite_);
  };
  const std::pair<int64_t, int> key{batch.size, batch_.target()};
  auto graph = graphs_.find(key);
  if (graph != graphs_.end()) {
    graph->second.graph.launch(stream_.get());
    optimizer_.set_steps(optimizer_.steps() + 1);  // what the captured update did on the host
    ++replays_;
    metrics.add(graph->second.loss, graph->second.correct,
                options_.clip > 0 ? &grad_not_finite_ : nullptr);
    return;
  }
  if (planned_.count(batch.size) != 0) {
    // Captured now (the update's host side, steps() + 1, happens during the capture), then run.
    Captured c{CudaGraph::capture(stream_.get(), body), Tensor(), Tensor()};
    // Views sharing the buffers the captured forward wrote.
    c.loss = criterion_.loss_tensor().view(criterion_.loss_tensor().shape());
    c.correct = criterion_.correct_tensor().view(criterion_.correct_tensor().shape());
    c.graph.launch(stream_.get());
    graphs_.emplace(key, std::move(c));
    ++replays_;
  } else {
    const std::vector<uint64_t> counters = counter_values();
    const uint64_t allocations = allocation_stats().device_allocations;
    body();
    ++eager_;
    if (counter_values() != counters) {
      std::string names;
      const std::vector<CounterRef> refs = net_.counters();
      for (size_t i = 0; i < refs.size(); ++i)
        if (i >= counters.size() || *refs[i].value != counters[i])
          names += (names.empty() ? "" : ", ") + refs[i].name;
      KILN_FAIL("GraphStep: the network keeps per-step state on the host (its counters ", names,
                " advance every step, e.g. dropout's random-stream offset), which a replayed "
                "graph cannot advance; train this network with EagerStep");
    }
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
