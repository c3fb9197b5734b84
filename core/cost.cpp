// core/cost.cpp — the cost model's recorder and arithmetic (see cost.h).
#include "core/cost.h"

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <utility>

#include "core/error.h"

namespace kiln::cost {

namespace {

struct State {
  std::mutex mutex;
  bool recording = false;
  std::vector<Entry> entries;
  int64_t launch_base = 0;  // detail::g_launches when the Recorder started (or was cleared)
  int64_t graph_launches = 0;
};
State& state() {
  static State s;
  return s;
}

}  // namespace

void detail::record(const Entry& e) {
  if (t_capture != nullptr) {
    t_capture->entries.push_back(e);
    return;
  }
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (s.recording) s.entries.push_back(e);
}

void begin_capture() {
  KILN_CHECK(detail::t_capture == nullptr,
             "cost::begin_capture: a capture is already in progress on this thread");
  detail::t_capture = new Captured;
  detail::g_listeners.fetch_add(1);
}

Captured end_capture() {
  KILN_CHECK(detail::t_capture != nullptr,
             "cost::end_capture: no capture in progress on this thread");
  const std::unique_ptr<Captured> c(detail::t_capture);
  detail::t_capture = nullptr;
  detail::g_listeners.fetch_sub(1);
  return std::move(*c);
}

void replay(const Captured& c) {
  if (detail::t_capture != nullptr) {  // a graph launched into a capture joins the outer graph
    Captured& outer = *detail::t_capture;
    outer.entries.insert(outer.entries.end(), c.entries.begin(), c.entries.end());
    outer.launches += c.launches;
    return;
  }
  if (!listening()) return;
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.recording) return;
  ++s.graph_launches;
  detail::g_launches.fetch_add(c.launches);
  for (Entry e : c.entries) {
    e.graph_node = true;
    s.entries.push_back(e);
  }
}

Recorder::Recorder() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  KILN_CHECK(!s.recording,
             "cost::Recorder: another Recorder is alive; one at a time (destroy the first)");
  s.recording = true;
  s.entries.clear();
  s.launch_base = detail::g_launches.load();
  s.graph_launches = 0;
  detail::g_listeners.fetch_add(1);
}

Recorder::~Recorder() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.recording = false;
  detail::g_listeners.fetch_sub(1);
}

std::vector<Entry> Recorder::entries() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.entries;
}
int64_t Recorder::launches() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return detail::g_launches.load() - s.launch_base;
}
int64_t Recorder::graph_launches() const {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.graph_launches;
}
void Recorder::clear() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.entries.clear();
  s.launch_base = detail::g_launches.load();
  s.graph_launches = 0;
}

// ---- the model ------------------------------------------------------------------------------------

const char* class_name(Class c) {
  switch (c) {
    case Class::tf32_tensor:
      return "TF32 tensor core";
    case Class::bf16_tensor:
      return "BF16 tensor core";
    case Class::fp32_simt:
      break;
  }
  return "fp32 SIMT";
}

namespace {
Class class_of(Precision p) {
  return p == Precision::tf32   ? Class::tf32_tensor
         : p == Precision::bf16 ? Class::bf16_tensor
                                : Class::fp32_simt;
}
}  // namespace

Class class_of(const Entry& e, const PrecisionPolicy& as_if) {
  if (e.op == Op::simt) return Class::fp32_simt;
  if (e.precision != Precision::fp32) return class_of(e.precision);
  return class_of(e.op == Op::conv ? as_if.conv() : as_if.linear());
}

KernelTime time_of(const Entry& e, Class c, const Machine& m) {
  const double peak = c == Class::tf32_tensor   ? m.tf32_flops
                      : c == Class::bf16_tensor ? m.bf16_flops
                                                : m.fp32_flops;
  return {e.flops / peak, e.bytes / m.dram_bytes, e.graph_node ? m.graph_node_s : m.launch_s};
}

StepModel model_step(const std::vector<Entry>& entries, int64_t launches, int64_t graph_launches,
                     int steps, const PrecisionPolicy& as_if, const Machine& m) {
  KILN_CHECK(steps > 0, "cost::model_step: steps must be > 0, got ", steps);
  const double per = 1.0 / steps;
  StepModel out;
  using Key = std::pair<std::string, int>;
  std::map<Key, ModelRow> rows;
  for (const Entry& e : entries) {
    const Class c = class_of(e, as_if);
    const KernelTime t = time_of(e, c, m);
    out.flops[int(c)] += e.flops * per;
    out.bytes += e.bytes * per;
    out.arithmetic_s += std::max(t.compute_s, t.memory_s) * per;
    out.launch_s += t.launch_s * per;
    if (e.graph_node) out.graph_nodes += per;
    ModelRow& r = rows[Key{e.kernel, int(c)}];
    r.kernel = e.kernel;
    r.cls = c;
    r.calls += per;
    r.flops += e.flops * per;
    r.bytes += e.bytes * per;
    r.seconds += t.total() * per;
  }
  out.graph_launches = double(graph_launches) * per;
  out.launch_s += out.graph_launches * m.graph_launch_s;
  out.launches = double(launches) * per;
  out.uncosted_launches = double(launches - int64_t(entries.size())) * per;
  for (auto& [key, r] : rows) out.rows.push_back(std::move(r));
  std::stable_sort(out.rows.begin(), out.rows.end(),
                   [](const ModelRow& a, const ModelRow& b) { return a.seconds > b.seconds; });
  return out;
}

}  // namespace kiln::cost
