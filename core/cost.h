// core/cost.h — the cost model: what each kernel launch must compute and move, and the lower bound
// that puts on a step's time on an H200. A model, not a measurement (docs/cost-model.md).
//
// Every CUDA launcher states the cost of the launch it makes, from the shapes it already has:
//
//   cost::gemm("conv2d_forward", cost::Op::conv, Precision::fp32, m, n, k, bytes);  // 2mnk flops
//   cost::simt("leaky_relu_forward", flops, bytes);
//
// FLOPs are the op's arithmetic (a GEMM: 2·m·n·k; element-wise ops: their few operations per
// element), by instruction class; bytes are its compulsory DRAM traffic: every input read once,
// every output written once (an accumulated output is read and written), caches assumed perfect.
// The same figures come out of the nvcc build and the emulated one (no GPU is needed to compute a
// model), and nothing is computed unless a Recorder (or a graph capture) is listening: when none is,
// a call is one relaxed atomic load.
//
// kiln::launch calls cost::launched() for each kernel it launches, so a Recorder also knows how many
// launches had no cost entry (the model's coverage; it must be zero). A CudaGraph keeps the entries
// made while it was captured and replays them, as graph nodes, at each launch, so a graph-captured
// step has the same entries as the eager one, only cheaper to launch.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

#include "core/precision.h"

namespace kiln::cost {

// What a kernel's arithmetic runs on: the CUDA cores in fp32 (simt), or a convolution's or a
// linear layer's GEMM, whose instruction class follows its precision (fp32: the CUDA cores; tf32,
// bf16: the tensor cores). Which is which matters for modelling another precision (class_of).
enum class Op { simt, conv, linear };

// One kernel launch's cost. `kernel` is a string literal (the launcher's name).
struct Entry {
  const char* kernel = "";
  Op op = Op::simt;
  Precision precision = Precision::fp32;  // as launched
  double flops = 0;
  double bytes = 0;
  bool graph_node = false;  // launched as a node of a CUDA graph (replayed), not on its own
};

constexpr int64_t f32(int64_t n) {
  return n * 4;
}  // bytes of n floats

// What one CUDA graph's capture recorded; CudaGraph keeps it and replays it at each launch.
struct Captured {
  std::vector<Entry> entries;
  int64_t launches = 0;
};

// The hooks' state. Inline (header-only) where kiln::launch reads it, so that code launching its
// own kernels without linking the library (the emulator's tests) still links.
namespace detail {
inline std::atomic<int> g_listeners{0};             // Recorders alive + graph captures in progress
inline std::atomic<int64_t> g_launches{0};          // launches while listening, outside captures
inline thread_local Captured* t_capture = nullptr;  // this thread's capture in progress, if any
void record(const Entry& e);
}  // namespace detail

// Whether anything listens; the hooks below do nothing otherwise.
inline bool listening() {
  return detail::g_listeners.load(std::memory_order_relaxed) != 0;
}

inline void record(const char* kernel, Op op, Precision precision, double flops, double bytes) {
  if (listening()) detail::record({kernel, op, precision, flops, bytes, false});
}
// A GEMM-shaped kernel: C[m][n] = A[m][k] · B[k][n], 2·m·n·k flops, `bytes` moved.
inline void gemm(const char* kernel, Op op, Precision precision, int64_t m, int64_t n, int64_t k,
                 int64_t bytes) {
  if (listening())
    detail::record(
        {kernel, op, precision, 2.0 * double(m) * double(n) * double(k), double(bytes), false});
}
// An fp32 kernel on the CUDA cores.
inline void simt(const char* kernel, int64_t flops, int64_t bytes) {
  if (listening())
    detail::record({kernel, Op::simt, Precision::fp32, double(flops), double(bytes), false});
}
// Called by kiln::launch for every kernel launched.
inline void launched() {
  if (!listening()) return;
  if (detail::t_capture != nullptr)
    ++detail::t_capture->launches;
  else
    detail::g_launches.fetch_add(1, std::memory_order_relaxed);
}
// Between these two, this thread's entries and launches go to the capture, not to a Recorder:
// nothing captured runs until the graph is launched.
void begin_capture();
Captured end_capture();
// A graph launch: one graph launch, and its entries and launches as graph nodes.
void replay(const Captured& c);

// Collects every entry, launch and graph launch from its construction to its destruction (or
// clear()). One at a time in a process.
class Recorder {
 public:
  Recorder();
  ~Recorder();
  Recorder(const Recorder&) = delete;
  Recorder& operator=(const Recorder&) = delete;

  std::vector<Entry> entries() const;
  int64_t launches() const;        // kernel launches, graph nodes included
  int64_t graph_launches() const;  // CudaGraph launches
  void clear();
};

// ---- the model ------------------------------------------------------------------------------------

// The machine modelled. Peaks from NVIDIA's H200 datasheet (dense, no sparsity); the launch costs
// are assumptions (typical figures for a kernel launched from the host, and for a node of a graph).
struct Machine {
  std::string name = "H200 (datasheet peaks, dense)";
  double fp32_flops = 67e12;     // fp32 on the CUDA cores, FLOP/s
  double tf32_flops = 495e12;    // TF32 tensor cores
  double bf16_flops = 990e12;    // BF16 tensor cores
  double dram_bytes = 4.8e12;    // HBM3e, bytes/s
  double launch_s = 4e-6;        // each kernel launched on its own (assumed)
  double graph_node_s = 1e-6;    // each kernel node of a graph launch (assumed)
  double graph_launch_s = 4e-6;  // each graph launch (assumed, as a kernel launch)
};

enum class Class { fp32_simt, tf32_tensor, bf16_tensor };
const char* class_name(Class c);  // "fp32 SIMT", "TF32 tensor core", "BF16 tensor core"

// The instruction class an entry is modelled in when the model's convolutions and linear layers
// run at `as_if`'s precisions: a conv or linear GEMM launched in fp32 takes the policy's precision
// (tf32 or bf16 on the tensor cores); one launched on the tensor cores keeps its own; simt kernels
// stay fp32 SIMT.
Class class_of(const Entry& e, const PrecisionPolicy& as_if);

// One entry's modelled time: max(flops / peak of its class, bytes / DRAM bandwidth) plus its launch
// cost (a graph node's or a kernel launch's).
struct KernelTime {
  double compute_s = 0, memory_s = 0, launch_s = 0;
  double total() const { return (compute_s > memory_s ? compute_s : memory_s) + launch_s; }
};
KernelTime time_of(const Entry& e, Class c, const Machine& m);

// The entries of one kernel (launcher) and class, summed over its calls (all shapes).
struct ModelRow {
  std::string kernel;
  Class cls = Class::fp32_simt;
  double calls = 0, flops = 0, bytes = 0, seconds = 0;  // per step
};

// A step's model: totals per step over `steps` steps' entries.
struct StepModel {
  double flops[3] = {0, 0, 0};  // per Class
  double bytes = 0;
  double launches = 0, graph_nodes = 0, graph_launches = 0, uncosted_launches = 0;
  double arithmetic_s = 0;  // Σ max(compute, memory)
  double launch_s = 0;      // Σ launch costs
  double lower_bound_s() const { return arithmetic_s + launch_s; }
  std::vector<ModelRow> rows;  // by modelled time, largest first
};
// `launches` and `graph_launches` are what the Recorder counted over the same steps.
StepModel model_step(const std::vector<Entry>& entries, int64_t launches, int64_t graph_launches,
                     int steps, const PrecisionPolicy& as_if, const Machine& m = {});

}  // namespace kiln::cost
