// core/simt/schedule.h — how the SIMT emulator orders threads and blocks (the "checking modes").
//
// Between two barriers (or warp operations) a CUDA thread's instructions may interleave with its
// block-mates' in any order. The emulator runs each thread until it blocks, in a chosen order:
//   forward  — thread 0 first, then 1, 2, ...
//   reverse  — the last thread first;
//   random   — a permutation drawn anew before every pass from `seed` and the block index
//              (deterministic: the same seed gives the same interleaving on every run).
// Blocks are claimed in index order, or in reverse order when `reverse_blocks` is set.
// A kernel with a missing __syncthreads gives different results in different orders; "every order"
// in Kiln's tests is the three schedules every_order() returns (docs/design.md §1).
//
// The process-wide default comes from KILN_SIMT_ORDER=forward|reverse|random[:seed] (random also
// reverses the block order, as the third every-order run does); set_schedule() overrides it.
// This header is plain C++ (no CUDA built-ins), so ordinary test code can include it.
#pragma once

#include <array>
#include <cstdint>
#include <string>

namespace kiln::simt {

enum class ThreadOrder { kForward, kReverse, kRandom };

struct Schedule {
  ThreadOrder threads = ThreadOrder::kForward;
  bool reverse_blocks = false;
  std::uint64_t seed = 0x5eed;  // used by ThreadOrder::kRandom only
};

// The schedule used by subsequent launches (process-wide; do not change it while a kernel runs).
void set_schedule(const Schedule& schedule);
Schedule schedule();

// "forward", "reverse", "random:<seed>", with "+reversed-blocks" when blocks are reversed.
std::string to_string(const Schedule& schedule);

// The three runs of "every order": threads forward; threads reversed; seeded-random threads with
// blocks reversed.
std::array<Schedule, 3> every_order(std::uint64_t seed = 0x5eed);

// Sets a schedule for the lifetime of the object and restores the previous one afterwards.
class ScopedSchedule {
 public:
  explicit ScopedSchedule(const Schedule& s) : saved_(schedule()) { set_schedule(s); }
  ~ScopedSchedule() { set_schedule(saved_); }
  ScopedSchedule(const ScopedSchedule&) = delete;
  ScopedSchedule& operator=(const ScopedSchedule&) = delete;

 private:
  Schedule saved_;
};

// Number of OS worker threads that run blocks: KILN_SIMT_WORKERS, else the hardware threads (at
// most 3 in the race-detector build, KILN_TSAN: see docs/simt.md).
int worker_count();

// ---- streams (docs/simt.md, "Streams") ------------------------------------------------------------
// How queued device work (launches, cudaMemcpyAsync, cudaMemsetAsync, event records, ...) runs:
//   kAsync  (default) as on a GPU: off the host thread, in stream order, with CUDA's synchronisation
//           rules; queued work starts when the host first synchronises on or queries anything, so a
//           host read without a synchronisation reliably sees the old contents;
//   kCheck  adversarial: only the work a synchronisation needs runs, and independent streams run the
//           most recently queued first, so a missing event or stream synchronisation shows;
//   kSync   every call completes before it returns and a kernel's exception reaches the launch's
//           caller (the emulator's behaviour before streams were asynchronous; for debugging).
// The process-wide default comes from KILN_SIMT_STREAMS=async|check|sync.
enum class StreamMode { kAsync, kCheck, kSync };

// Waits for all queued work (as cudaDeviceSynchronize), then switches.
void set_stream_mode(StreamMode mode);
StreamMode stream_mode();
const char* to_string(StreamMode mode);  // "async", "check", "sync"

class ScopedStreamMode {
 public:
  explicit ScopedStreamMode(StreamMode m) : saved_(stream_mode()) { set_stream_mode(m); }
  ~ScopedStreamMode() { set_stream_mode(saved_); }
  ScopedStreamMode(const ScopedStreamMode&) = delete;
  ScopedStreamMode& operator=(const ScopedStreamMode&) = delete;

 private:
  StreamMode saved_;
};

// ---- counts (docs/simt.md, "Counts") ------------------------------------------------------------
// Process-wide, monotonic; a test or a benchmark takes the difference around the code it measures.
//   kernel_launches        grids queued to run (a grid that fails its launch checks, or one recorded
//                          by a stream capture, is not counted; each kernel node of a launched
//                          graph is);
//   graph_launches         cudaGraphLaunch calls;
//   host_synchronizations  host waits on device work: every call of cudaStreamSynchronize,
//                          cudaEventSynchronize, cudaDeviceSynchronize, a synchronous cudaMemcpy or
//                          cudaMemset, cudaFree/cudaFreeHost, cudaStreamDestroy (whether or not the
//                          work had finished: the call is the wait), and every cudaEventQuery or
//                          cudaStreamQuery that finds the work pending (a polling loop is a wait).
struct DeviceCounts {
  std::uint64_t kernel_launches = 0, host_synchronizations = 0, graph_launches = 0;
};
DeviceCounts counts();

// The message of the device's sticky error — the first failure of queued work (an exception thrown
// by a kernel, a barrier no thread can pass, ...) — or "" when there is none. While it is set,
// queued work is skipped and synchronising calls return cudaErrorLaunchFailure.
std::string device_error();
// Forgets the sticky error, so that a test can go on after provoking one (on a GPU the process would
// have to start again).
void clear_device_error();

}  // namespace kiln::simt
