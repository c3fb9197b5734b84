// core/simt/executor.cpp — runs a CUDA grid on the CPU (the heart of the SIMT emulator).
//
// Model (docs/simt.md):
//   - every CUDA thread is a fiber; a fiber loops "run the kernel; mark done; yield", so fibers are
//     reused by every block and launch that runs on the same OS thread (fibers never move between
//     OS threads: g++ caches thread-local addresses);
//   - all threads of a block run on one OS thread, under that thread's Executor: a pass resumes every
//     runnable thread in the schedule's order, each running until it blocks at a barrier or a warp
//     operation or returns; then resolve() completes whatever can complete (warp groups whose lanes
//     have all arrived, then a barrier every thread reached at one site) — or, when nothing can,
//     reports the sites and thread ids instead of hanging;
//   - blocks are claimed from an atomic counter by the launching thread and a persistent pool of
//     helper threads;
//   - an exception thrown by a kernel thread aborts its block (the other threads are unwound with
//     ForcedUnwind, so their destructors run) and fails the queued grid: the device's sticky error
//     (device_queue.h), or an exception for the caller of the launch in the sync stream mode.
// Race detector (KILN_SIMT_TSAN: the build is compiled with -fsanitize=thread, except this file,
// whose bookkeeping must stay invisible to ThreadSanitizer): each fiber is a TSan fiber (an
// identity of its own); an executor has kIdentitySets sets of fibers and runs consecutive blocks
// on different sets, so two blocks that follow each other on one OS thread share no identity; the
// shared-memory arena is mapped afresh for every block. Switches are announced with
// __tsan_switch_to_fiber(no_sync), so the only happens-before edges between CUDA threads are those
// CUDA gives, expressed as release/acquire on tokens: barriers, warp rendezvous, atomics after a
// fence, launch start and end (docs/simt.md, "Race detector").
#include <sys/mman.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <mutex>
#include <sstream>
#include <thread>
#include <vector>

#include "core/error.h"
#include "device_queue.h"
#include "fiber.h"
#include "simt.h"

#if defined(KILN_SIMT_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(KILN_SIMT_TSAN)
#include <sanitizer/tsan_interface.h>
// Exported by libtsan but not declared in GCC 12's <sanitizer/tsan_interface.h>: the calling
// context's accesses between the two calls are not recorded.
extern "C" void __tsan_ignore_thread_begin();
extern "C" void __tsan_ignore_thread_end();
#endif

#if defined(KILN_SIMT_TSAN)
// Defaults of the race-detector build (TSAN_OPTIONS overrides them): a report fails the process
// (exit code 66) instead of being printed and forgotten.
extern "C" const char* __tsan_default_options() {
  return "halt_on_error=1:exitcode=66";
}
#endif

namespace kiln::simt {

namespace {

// ---- schedule ---------------------------------------------------------------------------------

Schedule schedule_from_env() {
  Schedule s;
  const char* env = std::getenv("KILN_SIMT_ORDER");
  if (env == nullptr || *env == '\0') return s;
  std::string v(env);
  if (v == "forward") return s;
  if (v == "reverse") {
    s.threads = ThreadOrder::kReverse;
    return s;
  }
  if (v.rfind("random", 0) == 0) {
    s.threads = ThreadOrder::kRandom;
    s.reverse_blocks = true;
    if (v.size() > 7 && v[6] == ':') s.seed = std::strtoull(v.c_str() + 7, nullptr, 0);
    return s;
  }
  KILN_FAIL("KILN_SIMT_ORDER must be forward, reverse or random[:seed], not '", v, "'");
}

std::mutex& schedule_mutex() {
  static std::mutex m;
  return m;
}
Schedule& schedule_storage() {
  static Schedule s = schedule_from_env();
  return s;
}

}  // namespace

void set_schedule(const Schedule& s) {
  std::lock_guard<std::mutex> lock(schedule_mutex());
  schedule_storage() = s;
}

Schedule schedule() {
  std::lock_guard<std::mutex> lock(schedule_mutex());
  return schedule_storage();
}

std::string to_string(const Schedule& s) {
  std::string r = s.threads == ThreadOrder::kForward   ? "forward"
                  : s.threads == ThreadOrder::kReverse ? "reverse"
                                                       : "random:" + std::to_string(s.seed);
  if (s.reverse_blocks) r += "+reversed-blocks";
  return r;
}

std::array<Schedule, 3> every_order(std::uint64_t seed) {
  return {Schedule{ThreadOrder::kForward, false, seed},
          Schedule{ThreadOrder::kReverse, false, seed}, Schedule{ThreadOrder::kRandom, true, seed}};
}

int worker_count() {
#if defined(KILN_SIMT_TSAN)
  // GCC 12's ThreadSanitizer dies beyond 8128 live threads ("Thread limit exceeded", measured) and
  // each worker keeps up to 2 x 1024 fibers (two identity sets of a 1024-thread block).
  constexpr int kMaxWorkers = 3;
  const char* const limit_reason = " (the race-detector build: ThreadSanitizer's thread limit)";
#else
  constexpr int kMaxWorkers = 1024;
  const char* const limit_reason = "";
#endif
  static const int n = [&] {
    if (const char* env = std::getenv("KILN_SIMT_WORKERS"); env != nullptr && *env != '\0') {
      const int w = std::atoi(env);
      KILN_CHECK(w >= 1 && w <= kMaxWorkers, "KILN_SIMT_WORKERS must be in [1, ", kMaxWorkers, "]",
                 limit_reason, ", not '", env, "'");
      return w;
    }
    return std::clamp(static_cast<int>(std::thread::hardware_concurrency()), 1, kMaxWorkers);
  }();
  return n;
}

namespace detail {

namespace {

#if defined(KILN_SIMT_ASAN)
constexpr std::size_t kStackBytes = 256 * 1024;  // ASan's redzones grow every frame
constexpr std::size_t kRedzone = 64;             // between shared variables, poisoned
#elif defined(KILN_SIMT_TSAN)
constexpr std::size_t kStackBytes = 128 * 1024;  // instrumented frames are larger
constexpr std::size_t kRedzone = 0;
// Fresh TSan identities per block would cost ~0.4 ms of CPU per CUDA thread (measured: creating a
// GCC 12 TSan fiber zeroes a ThreadState of several hundred KiB in fresh pages), hours for the
// parity suite; so identities are reused, rotating over this many sets (docs/simt.md).
constexpr int kIdentitySets = 2;
#else
constexpr std::size_t kStackBytes = 64 * 1024;
constexpr std::size_t kRedzone = 0;
#endif
// Stack tops are staggered by (fiber index % 128) cache lines: with every top at the same offset
// modulo the page (and stacks a power of two apart) the hot top lines of a 1024-thread block would
// compete for a few cache sets. Measured: 72 -> ~45 ns per thread for 1024-thread blocks.
constexpr std::size_t kColorLines = 128;
#if defined(KILN_SIMT_TSAN)
// The arena starts with the block's synchronisation tokens (addresses TSan keys its sync objects
// by; they live in the arena so that unmapping it forgets them with the block): two barrier tokens
// (barrier generations alternate), two per warp for full-warp rendezvous, then two per thread for
// rendezvous of a partial mask.
constexpr std::size_t kLaneTokens = 1024;
constexpr std::size_t kTokenBytes = kLaneTokens + 2 * 8 * kMaxThreadsPerBlock;
#else
constexpr std::size_t kTokenBytes = 0;
#endif
constexpr std::size_t kArenaBytes =
    (2 * kMaxSharedPerBlock + 64 * 1024 + kTokenBytes + 4095) / 4096 * 4096;

// Thrown into the still-suspended threads of a block that failed, to unwind their stacks.
// Deliberately not a std::exception: kernel code catching std::exception must not swallow it.
struct ForcedUnwind {};

enum class State : std::uint8_t { kRunnable, kBarrier, kWarp, kDone };

struct Site {
  const char* file = "";
  int line = 0;
  bool operator==(const Site& o) const {
    return line == o.line && (file == o.file || std::strcmp(file, o.file) == 0);
  }
};

struct AsyncCopy {
  void* dst;
  const void* src;
  std::size_t bytes;
  std::uint64_t group;
};

class Executor;

struct Fiber {
  Executor* ex = nullptr;
  std::unique_ptr<FiberStack> stack;
  void* sp = nullptr;
  void* asan_fake = nullptr;
  State state = State::kDone;
  std::uint32_t tid = 0;  // linear thread id in the block
  uint3 idx{};
  // What the thread waits for, and the result it receives.
  Site site;
  SyncKind sync_kind = SyncKind::kBarrier;
  WarpKind warp_kind = WarpKind::kSyncWarp;
  unsigned mask = 0;
  int width = 32;
  int arg = 0;
  std::uint64_t value = 0;
  std::uint64_t result = 0;
  // cp.async: queued copies; groups [first_group, next_group) are committed but not yet waited.
  std::vector<AsyncCopy> async;
  std::uint64_t first_group = 0;
  std::uint64_t next_group = 0;
#if defined(KILN_SIMT_TSAN)
  void* tsan = nullptr;        // this fiber's TSan identity
  bool fenced = false;         // a __threadfence* ran: later atomics release (race_fence)
  std::uint32_t barriers = 0;  // barriers passed: selects the barrier token
  std::uint32_t warp_ops = 0;  // partial-mask warp operations arrived at: selects a lane token
  std::uint32_t full_ops = 0;  // full-warp operations arrived at: selects the warp token
  unsigned peers = 0;          // lanes of the completed warp group (set by the scheduler)
  unsigned peer_parity = 0;    // bit k: the token lane k released into for that group
  char name[48] = {};
#endif
};

struct Job {
  LaunchSpec spec;
  void (*invoke)(void*);
  void* packed;
  Schedule sched;
  std::uint32_t nthreads;
  std::uint64_t nblocks;
  std::atomic<std::uint64_t> next{0};
  std::atomic<bool> failed{false};
  // Race detector: the launcher releases start_token before any block runs and every CUDA thread
  // acquires it when it starts; every CUDA thread releases done_token when it ends and the launcher
  // acquires it after the last block.
  char start_token = 0;
  char done_token = 0;
  std::mutex error_mutex;
  std::exception_ptr error;

  void fail(std::exception_ptr e) {
    std::lock_guard<std::mutex> lock(error_mutex);
    if (!error) error = std::move(e);
    failed.store(true);
  }
};

std::string tid_ranges(const std::vector<std::uint32_t>& tids) {
  std::ostringstream os;
  for (std::size_t i = 0; i < tids.size();) {
    std::size_t j = i;
    while (j + 1 < tids.size() && tids[j + 1] == tids[j] + 1) ++j;
    if (i > 0) os << ",";
    os << tids[i];
    if (j > i) os << "-" << tids[j];
    i = j + 1;
  }
  return os.str();
}

const char* warp_kind_name(WarpKind k) {
  switch (k) {
    case WarpKind::kSyncWarp:
      return "__syncwarp";
    case WarpKind::kShflIdx:
      return "__shfl_sync";
    case WarpKind::kShflUp:
      return "__shfl_up_sync";
    case WarpKind::kShflDown:
      return "__shfl_down_sync";
    case WarpKind::kShflXor:
      return "__shfl_xor_sync";
    case WarpKind::kBallot:
      return "__ballot_sync";
    case WarpKind::kAny:
      return "__any_sync";
    case WarpKind::kAll:
      return "__all_sync";
    case WarpKind::kReduceAddU:
      return "__reduce_add_sync";
    case WarpKind::kReduceMinU:
    case WarpKind::kReduceMinI:
      return "__reduce_min_sync";
    case WarpKind::kReduceMaxU:
    case WarpKind::kReduceMaxI:
      return "__reduce_max_sync";
    case WarpKind::kReduceAnd:
      return "__reduce_and_sync";
    case WarpKind::kReduceOr:
      return "__reduce_or_sync";
    case WarpKind::kReduceXor:
      return "__reduce_xor_sync";
    case WarpKind::kGather:
      return "warp-collective instruction (mma.sync / ldmatrix)";
  }
  return "warp operation";
}

const char* sync_kind_name(SyncKind k) {
  switch (k) {
    case SyncKind::kBarrier:
      return "__syncthreads";
    case SyncKind::kCount:
      return "__syncthreads_count";
    case SyncKind::kAnd:
      return "__syncthreads_and";
    case SyncKind::kOr:
      return "__syncthreads_or";
  }
  return "__syncthreads";
}

extern "C" void kiln_simt_fiber_main(void* fiber);

// One per OS thread that runs blocks; owns that thread's fibers and shared-memory arena.
class Executor {
 public:
  Executor() { map_arena(); }
  ~Executor() {
#if defined(KILN_SIMT_ASAN)
    ASAN_UNPOISON_MEMORY_REGION(arena_, kArenaBytes);
#endif
    munmap(arena_, kArenaBytes);
  }
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;

  static Executor& current_thread() {
    thread_local Executor ex;
    return ex;
  }

  // The executor whose kernel thread is running on this OS thread, or null outside kernels.
  static Executor* running() {
    return running_;
  }
  Fiber* fiber() const {
    return current_;
  }

  // Runs one block to completion; returns the error that aborted it, if any.
  std::exception_ptr run_block(const Job& job, std::uint64_t block_linear);

  // ---- called from kernel threads (on their fiber) ----
  void block_until_resumed(Fiber* f) {
    switch_to_scheduler(f);
    if (aborting_) throw ForcedUnwind{};
  }
  void* shared_variable(const void* key, std::size_t bytes, std::size_t align);
  void* dynamic_shared() const {
    return dynamic_;
  }
  bool is_shared(const void* p, std::size_t bytes) const {
    const auto* c = static_cast<const unsigned char*>(p);
    return c >= arena_ + kTokenBytes && c <= arena_ + arena_used_ &&
           bytes <= static_cast<std::size_t>(arena_ + arena_used_ - c);
  }
  int nthreads() const {
    return static_cast<int>(nthreads_);
  }
  void count_waiting(State s) {
    (s == State::kBarrier ? n_barrier_ : n_warp_)++;
  }
#if defined(KILN_SIMT_TSAN)
  // Release at arrival, acquire at departure: barrier generations alternate between two tokens,
  // so a thread that already passed this barrier and arrived at the next one releases into the
  // other token, not into the one its block-mates are still acquiring from.
  void* barrier_token(const Fiber* f) const {
    return arena_ + 8 * (f->barriers & 1u);
  }
  void* warp_token(std::uint32_t tid, unsigned parity) const {
    return arena_ + 16 + 8 * (2 * (tid / 32) + parity);
  }
  void* lane_token(std::uint32_t tid, unsigned parity) const {
    return arena_ + kLaneTokens + 8 * (2 * tid + parity);
  }
#endif

  void fiber_main(Fiber* f);

 private:
  void ensure_fibers(std::uint32_t n);
  void resume(Fiber* f);
  void switch_to_scheduler(Fiber* f);
  void build_order();
  bool resolve();  // true when something completed; throws kiln::Error on a deadlock
  bool resolve_warps();
  void complete_warp_group(std::uint32_t base, unsigned mask);
  [[noreturn]] void report_stuck(const std::string& reason);
  void abort_block();
  void* arena_alloc(std::size_t bytes, std::size_t align);
  void map_arena();
#if defined(KILN_SIMT_TSAN)
  void* sched_tsan_ = nullptr;  // the OS thread's own TSan context
  // The other identity sets (fibers_ is the one in use); run_block rotates them.
  std::vector<std::unique_ptr<Fiber>> other_sets_[kIdentitySets - 1];
#endif

  static thread_local Executor* running_;

  void* sched_sp_ = nullptr;
  const void* sched_stack_bottom_ = nullptr;  // for ASan, learnt at the first switch
  std::size_t sched_stack_size_ = 0;
  std::vector<std::unique_ptr<Fiber>> fibers_;
  Fiber* current_ = nullptr;

  // The block being run.
  const Job* job_ = nullptr;
  uint3 block_idx_{};
  std::uint32_t nthreads_ = 0;
  std::uint32_t n_done_ = 0, n_barrier_ = 0, n_warp_ = 0;
  bool aborting_ = false;
  std::exception_ptr error_;
  std::vector<std::uint32_t> order_;
  std::uint64_t rng_ = 0;

  unsigned char* arena_ = nullptr;
  std::size_t arena_used_ = 0;
  std::size_t shared_total_ = 0;  // bytes handed out to this block, without alignment padding
  void* dynamic_ = nullptr;
  std::vector<std::pair<const void*, void*>> shared_vars_;
  // warp_gather's tables: kGatherBytes per lane, one table per warp of the block.
  std::vector<unsigned char> gather_;
};

thread_local Executor* Executor::running_ = nullptr;

void Executor::map_arena() {
  void* m = mmap(nullptr, kArenaBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  KILN_CHECK(m != MAP_FAILED, "SIMT emulator: cannot map the shared-memory arena");
  arena_ = static_cast<unsigned char*>(m);
}

extern "C" void kiln_simt_fiber_main(void* fiber) {
  auto* f = static_cast<Fiber*>(fiber);
  f->ex->fiber_main(f);
}

void Executor::fiber_main(Fiber* f) {
#if defined(KILN_SIMT_ASAN)
  __sanitizer_finish_switch_fiber(nullptr, &sched_stack_bottom_, &sched_stack_size_);
#endif
  for (;;) {
#if defined(KILN_SIMT_TSAN)
    // The launch's start: what the launcher did before it happens before this CUDA thread.
    __tsan_acquire(const_cast<char*>(&job_->start_token));
#endif
    if (!aborting_) {
      try {
        job_->invoke(job_->packed);
      } catch (const ForcedUnwind&) {
      } catch (...) {
        if (!error_) error_ = std::current_exception();
        aborting_ = true;
      }
    }
#if defined(KILN_SIMT_TSAN)
    // The kernel's end: whatever this CUDA thread did happens before the launch returns.
    __tsan_release(const_cast<char*>(&job_->done_token));
#endif
    f->state = State::kDone;
    ++n_done_;
    switch_to_scheduler(f);
  }
}

void Executor::ensure_fibers(std::uint32_t n) {
  while (fibers_.size() < n) {
    auto f = std::make_unique<Fiber>();
    f->ex = this;
    f->stack = std::make_unique<FiberStack>(kStackBytes + kColorLines * 64);
    f->sp = f->stack->prepare(&kiln_simt_fiber_main, f.get(), fibers_.size() % kColorLines * 64);
#if defined(KILN_SIMT_TSAN)
    // Created from the OS thread's own context, which never acquires from a CUDA thread: the new
    // identity knows nothing of any block.
    f->tsan = __tsan_create_fiber(0);
#endif
    fibers_.push_back(std::move(f));
  }
}

void Executor::resume(Fiber* f) {
  current_ = f;
  ::threadIdx = f->idx;
#if defined(KILN_SIMT_ASAN)
  void* fake = nullptr;
  __sanitizer_start_switch_fiber(&fake, f->stack->lo(), f->stack->size());
  kiln_simt_switch(&sched_sp_, f->sp);
  __sanitizer_finish_switch_fiber(fake, nullptr, nullptr);
#else
#if defined(KILN_SIMT_TSAN)
  __tsan_switch_to_fiber(f->tsan, __tsan_switch_to_fiber_no_sync);
#endif
  kiln_simt_switch(&sched_sp_, f->sp);
#endif
  current_ = nullptr;
}

void Executor::switch_to_scheduler(Fiber* f) {
#if defined(KILN_SIMT_ASAN)
  __sanitizer_start_switch_fiber(&f->asan_fake, sched_stack_bottom_, sched_stack_size_);
  kiln_simt_switch(&f->sp, sched_sp_);
  __sanitizer_finish_switch_fiber(f->asan_fake, &sched_stack_bottom_, &sched_stack_size_);
#else
#if defined(KILN_SIMT_TSAN)
  __tsan_switch_to_fiber(sched_tsan_, __tsan_switch_to_fiber_no_sync);
#endif
  kiln_simt_switch(&f->sp, sched_sp_);
#endif
}

void* Executor::arena_alloc(std::size_t bytes, std::size_t align) {
  align = std::max<std::size_t>(align, 16);
  const std::size_t offset = (arena_used_ + kRedzone + align - 1) / align * align;
  shared_total_ += bytes;
  if (shared_total_ > kMaxSharedPerBlock || offset + bytes + kRedzone > kArenaBytes)
    KILN_FAIL("SIMT emulator: the block uses more than ", kMaxSharedPerBlock,
              " bytes of shared memory (static + dynamic)");
  arena_used_ = offset + bytes;
  unsigned char* p = arena_ + offset;
#if defined(KILN_SIMT_ASAN)
  ASAN_UNPOISON_MEMORY_REGION(p, bytes);
#endif
#if defined(KILN_SIMT_TSAN)
  // The poison fill is the emulator's, not the (first) CUDA thread's that asked: invisible.
  __tsan_ignore_thread_begin();
#endif
  std::memset(p, 0xFF, bytes);
#if defined(KILN_SIMT_TSAN)
  __tsan_ignore_thread_end();
#endif
  return p;
}

void* Executor::shared_variable(const void* key, std::size_t bytes, std::size_t align) {
  for (const auto& [k, p] : shared_vars_)
    if (k == key) return p;
  void* p = arena_alloc(bytes, align);
  shared_vars_.emplace_back(key, p);
  return p;
}

// A fresh seeded permutation of the block's threads (ThreadOrder::kRandom), one per pass.
void Executor::build_order() {
  const std::uint32_t n = nthreads_;
  order_.resize(n);
  for (std::uint32_t i = 0; i < n; ++i) order_[i] = i;
  for (std::uint32_t i = n - 1; i > 0; --i) {
    std::uint64_t z = (rng_ += 0x9e3779b97f4a7c15ull);  // splitmix64
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    std::swap(order_[i], order_[z % (i + 1)]);
  }
}

std::exception_ptr Executor::run_block(const Job& job, std::uint64_t block_linear) {
  const dim3 g = job.spec.grid;
  job_ = &job;
  block_idx_ = uint3{static_cast<unsigned>(block_linear % g.x),
                     static_cast<unsigned>((block_linear / g.x) % g.y),
                     static_cast<unsigned>(block_linear / (std::uint64_t{g.x} * g.y))};
  ::blockIdx = block_idx_;
  ::blockDim = job.spec.block;
  ::gridDim = g;
  nthreads_ = job.nthreads;
  n_done_ = n_barrier_ = n_warp_ = 0;
  aborting_ = false;
  error_ = nullptr;
  rng_ = job.sched.seed * 0x9e3779b97f4a7c15ull + block_linear * 0xda942042e4dd58b5ull + 1;

  // Fresh, poisoned shared memory.
#if defined(KILN_SIMT_TSAN)
  // ThreadSanitizer forgets the shadow and the sync objects (the tokens) of unmapped memory: the
  // new block's shared-memory accesses never meet the previous block's.
  munmap(arena_, kArenaBytes);
  map_arena();
  sched_tsan_ = __tsan_get_current_fiber();
  for (auto& set : other_sets_) std::swap(fibers_, set);
#endif
  arena_used_ = kTokenBytes;
  shared_total_ = 0;
  shared_vars_.clear();
#if defined(KILN_SIMT_ASAN)
  ASAN_POISON_MEMORY_REGION(arena_, kArenaBytes);
#endif
  try {
    dynamic_ = arena_alloc(job.spec.shared_bytes, 16);
  } catch (...) {
    return std::current_exception();
  }

  ensure_fibers(nthreads_);
  const std::size_t gather_bytes = (nthreads_ + 31) / 32 * 32 * std::size_t{kGatherBytes};
  if (gather_.size() < gather_bytes) {
#if defined(KILN_SIMT_TSAN)
    // The tables are the scheduler's (filled by it, read by the lanes): their allocation is not a
    // write of this OS thread that CUDA threads would race with.
    __tsan_ignore_thread_begin();
#endif
    gather_.resize(gather_bytes);
#if defined(KILN_SIMT_TSAN)
    __tsan_ignore_thread_end();
#endif
  }
  const dim3 b = job.spec.block;
  for (std::uint32_t t = 0; t < nthreads_; ++t) {
    Fiber* f = fibers_[t].get();
    f->state = State::kRunnable;
    f->tid = t;
    f->idx = uint3{t % b.x, (t / b.x) % b.y, t / (b.x * b.y)};
    f->async.clear();
    f->first_group = f->next_group = 0;
#if defined(KILN_SIMT_TSAN)
    f->fenced = false;
    f->barriers = f->warp_ops = f->full_ops = 0;
    std::snprintf(f->name, sizeof f->name, "CUDA thread %u of block (%u,%u,%u)", t, block_idx_.x,
                  block_idx_.y, block_idx_.z);
    __tsan_set_fiber_name(f->tsan, f->name);
#endif
  }

  Executor* const outer = running_;
  running_ = this;
  const bool random = job.sched.threads == ThreadOrder::kRandom;
  const bool reverse = job.sched.threads == ThreadOrder::kReverse;
  for (;;) {
    if (random) build_order();
    for (std::uint32_t i = 0; i < nthreads_; ++i) {
      const std::uint32_t t = random ? order_[i] : reverse ? nthreads_ - 1 - i : i;
      Fiber* f = fibers_[t].get();
      if (f->state != State::kRunnable) continue;
      resume(f);
      if (aborting_) break;
    }
    if (aborting_ || n_done_ == nthreads_) break;
    try {
      resolve();
    } catch (...) {
      error_ = std::current_exception();
      aborting_ = true;
      break;
    }
  }
  if (aborting_) abort_block();
  running_ = outer;
#if defined(KILN_SIMT_ASAN)
  ASAN_POISON_MEMORY_REGION(arena_, kArenaBytes);
#endif
  std::exception_ptr e = std::move(error_);
  error_ = nullptr;
  return e;
}

void Executor::abort_block() {
  // Every unfinished thread is resumed once; it throws ForcedUnwind from its wait (or skips the
  // kernel if it never started) and ends up done.
  for (std::uint32_t t = 0; t < nthreads_; ++t) {
    Fiber* f = fibers_[t].get();
    if (f->state != State::kDone) resume(f);
  }
}

bool Executor::resolve() {
  if (n_warp_ > 0 && resolve_warps()) return true;
  const std::uint32_t live = nthreads_ - n_done_;
  if (n_warp_ == 0 && n_barrier_ == live && n_done_ == 0) {
    const Site site = fibers_[0]->site;
    int count = 0;
    bool same = true;
    for (std::uint32_t t = 0; t < nthreads_; ++t) {
      const Fiber* f = fibers_[t].get();
      same = same && f->site == site && f->sync_kind == fibers_[0]->sync_kind;
      count += f->value != 0 ? 1 : 0;
    }
    if (same) {
      const SyncKind kind = fibers_[0]->sync_kind;
      const std::uint64_t r = kind == SyncKind::kCount ? static_cast<std::uint64_t>(count)
                              : kind == SyncKind::kAnd ? (count == static_cast<int>(nthreads_))
                              : kind == SyncKind::kOr  ? (count > 0)
                                                       : 0;
      for (std::uint32_t t = 0; t < nthreads_; ++t) {
        fibers_[t]->result = r;
        fibers_[t]->state = State::kRunnable;
      }
      n_barrier_ = 0;
      return true;
    }
    report_stuck("threads wait at different __syncthreads sites");
  }
  if (n_warp_ == 0 && n_barrier_ > 0)
    report_stuck(
        "a __syncthreads is not reached by every thread of the block (a return before it?)");
  report_stuck(
      "a warp operation whose lanes cannot all arrive (every lane named in the mask must "
      "reach a warp operation of the same kind with the same mask)");
}

bool Executor::resolve_warps() {
  bool progress = false;
  for (std::uint32_t base = 0; base < nthreads_; base += 32) {
    const std::uint32_t lanes = std::min<std::uint32_t>(32, nthreads_ - base);
    unsigned handled = 0;
    for (std::uint32_t l = 0; l < lanes; ++l) {
      const Fiber* f = fibers_[base + l].get();
      if (f->state != State::kWarp || (handled >> l & 1u)) continue;
      const unsigned mask = f->mask;
      handled |= mask;
      bool complete = true;
      for (std::uint32_t k = 0; k < 32 && complete; ++k) {
        if (!(mask >> k & 1u)) continue;
        if (k >= lanes) {
          complete = false;
          break;
        }
        const Fiber* o = fibers_[base + k].get();
        complete = o->state == State::kWarp && o->mask == mask && o->warp_kind == f->warp_kind;
      }
      if (!complete) continue;
      complete_warp_group(base, mask);
      progress = true;
    }
  }
  return progress;
}

void Executor::complete_warp_group(std::uint32_t base, unsigned mask) {
  Fiber* lane[32] = {};
  Fiber* first = nullptr;
  for (unsigned k = 0; k < 32; ++k)
    if (mask >> k & 1u) {
      lane[k] = fibers_[base + k].get();
      if (first == nullptr) first = lane[k];
    }
  const WarpKind kind = first->warp_kind;
  if (kind != WarpKind::kSyncWarp)
    for (unsigned k = 0; k < 32; ++k)
      if (lane[k] != nullptr && !(lane[k]->site == first->site))
        report_stuck(std::string("the lanes of one ") + warp_kind_name(kind) +
                     " group are at different sites");

  std::uint64_t acc = 0;
  switch (kind) {
    case WarpKind::kGather: {
      // Every lane's posted bytes into the warp's table (warp_gather); the result is its address.
      // The copies are the scheduler's, as a shuffle's values are: ThreadSanitizer intercepts
      // memcpy even here, so they are hidden from it explicitly.
      const int bytes = first->arg;
      unsigned char* table = gather_.data() + std::size_t{base} * kGatherBytes;
      for (unsigned k = 0; k < 32; ++k)
        if (lane[k]->arg != bytes)
          report_stuck("the lanes of one warp-collective instruction post different sizes");
#if defined(KILN_SIMT_TSAN)
      __tsan_ignore_thread_begin();
#endif
      for (unsigned k = 0; k < 32; ++k)
        std::memcpy(table + k * kGatherBytes, reinterpret_cast<const void*>(lane[k]->value),
                    static_cast<std::size_t>(bytes));
#if defined(KILN_SIMT_TSAN)
      __tsan_ignore_thread_end();
#endif
      acc = reinterpret_cast<std::uintptr_t>(table);
      break;
    }
    case WarpKind::kBallot:
    case WarpKind::kAny:
    case WarpKind::kAll: {
      unsigned ballot = 0;
      for (unsigned k = 0; k < 32; ++k)
        if (lane[k] != nullptr && lane[k]->value != 0) ballot |= 1u << k;
      acc = kind == WarpKind::kBallot ? ballot
            : kind == WarpKind::kAny  ? (ballot != 0)
                                      : (ballot == mask);
      break;
    }
    case WarpKind::kReduceAddU:
    case WarpKind::kReduceMinU:
    case WarpKind::kReduceMaxU:
    case WarpKind::kReduceMinI:
    case WarpKind::kReduceMaxI:
    case WarpKind::kReduceAnd:
    case WarpKind::kReduceOr:
    case WarpKind::kReduceXor: {
      bool started = false;
      std::uint32_t r = 0;
      for (unsigned k = 0; k < 32; ++k) {
        if (lane[k] == nullptr) continue;
        const auto v = static_cast<std::uint32_t>(lane[k]->value);
        if (!started) {
          r = v;
          started = true;
          continue;
        }
        switch (kind) {
          case WarpKind::kReduceAddU:
            r += v;
            break;
          case WarpKind::kReduceMinU:
            r = std::min(r, v);
            break;
          case WarpKind::kReduceMaxU:
            r = std::max(r, v);
            break;
          case WarpKind::kReduceMinI:
            r = static_cast<std::uint32_t>(
                std::min(static_cast<std::int32_t>(r), static_cast<std::int32_t>(v)));
            break;
          case WarpKind::kReduceMaxI:
            r = static_cast<std::uint32_t>(
                std::max(static_cast<std::int32_t>(r), static_cast<std::int32_t>(v)));
            break;
          case WarpKind::kReduceAnd:
            r &= v;
            break;
          case WarpKind::kReduceOr:
            r |= v;
            break;
          default:
            r ^= v;
            break;
        }
      }
      acc = r;
      break;
    }
    default:
      break;
  }

  for (unsigned k = 0; k < 32; ++k) {
    Fiber* f = lane[k];
    if (f == nullptr) continue;
    switch (kind) {
      case WarpKind::kShflIdx:
      case WarpKind::kShflUp:
      case WarpKind::kShflDown:
      case WarpKind::kShflXor: {
        // PTX ISA, shfl.sync: the `c` operand CUDA passes is ((32 - width) << 8) | clamp, with
        // clamp 0 for up and 31 otherwise; segmask = 32 - width; lanes read outside
        // [minLane, maxLane] read their own value.
        const int l = static_cast<int>(k);
        const int b = f->arg & 31;
        const int segmask = (32 - f->width) & 31;
        const int min_lane = l & segmask;
        const int max_lane = kind == WarpKind::kShflUp ? min_lane : (min_lane | (31 & ~segmask));
        int j = l;
        bool in = true;
        switch (kind) {
          case WarpKind::kShflUp:
            j = l - b;
            in = j >= max_lane;
            break;
          case WarpKind::kShflDown:
            j = l + b;
            in = j <= max_lane;
            break;
          case WarpKind::kShflXor:
            j = l ^ b;
            in = j <= max_lane;
            break;
          default:
            j = min_lane | (b & ~segmask);
            in = j <= max_lane;
            break;
        }
        if (!in) j = l;
        // Reading a lane outside the mask is undefined in CUDA: all ones (NaN) makes it show.
        f->result = lane[j] != nullptr ? lane[j]->value : ~std::uint64_t{0};
        break;
      }
      default:
        f->result = acc;
        break;
    }
#if defined(KILN_SIMT_TSAN)
    f->peers = mask;
    f->peer_parity = 0;
    for (unsigned j = 0; j < 32; ++j)
      if (lane[j] != nullptr) f->peer_parity |= ((lane[j]->warp_ops - 1) & 1u) << j;
#endif
    f->state = State::kRunnable;
    --n_warp_;
  }
}

void Executor::report_stuck(const std::string& reason) {
  // Group the threads by what they wait for, in order of first appearance.
  std::vector<std::pair<std::string, std::vector<std::uint32_t>>> groups;
  Site first_site;
  for (std::uint32_t t = 0; t < nthreads_; ++t) {
    const Fiber* f = fibers_[t].get();
    std::ostringstream key;
    if (f->state == State::kDone) {
      key << "returned from the kernel";
    } else if (f->state == State::kBarrier) {
      key << sync_kind_name(f->sync_kind) << " at " << f->site.file << ":" << f->site.line;
    } else if (f->state == State::kWarp) {
      key << warp_kind_name(f->warp_kind) << " (mask 0x" << std::hex << f->mask << std::dec
          << ") at " << f->site.file << ":" << f->site.line;
    } else {
      key << "runnable";
    }
    if (f->state != State::kDone && first_site.line == 0) first_site = f->site;
    auto it = std::find_if(groups.begin(), groups.end(),
                           [&](const auto& g) { return g.first == key.str(); });
    if (it == groups.end()) {
      groups.emplace_back(key.str(), std::vector<std::uint32_t>{});
      it = groups.end() - 1;
    }
    it->second.push_back(t);
  }
  std::ostringstream msg;
  const dim3 b = job_->spec.block;
  msg << "SIMT emulator: block (" << block_idx_.x << "," << block_idx_.y << "," << block_idx_.z
      << ") of a " << b.x << "x" << b.y << "x" << b.z << " block cannot proceed: " << reason
      << " (thread ids are linear: x + blockDim.x*(y + blockDim.y*z))";
  for (const auto& [what, tids] : groups) msg << "\n  " << what << ": threads " << tid_ranges(tids);
  throw Error("", first_site.file, first_site.line, msg.str());
}

Executor& executor_for_kernel_call(const char* what) {
  Executor* ex = Executor::running();
  if (ex == nullptr || ex->fiber() == nullptr)
    KILN_FAIL("SIMT emulator: ", what, " called outside a kernel");
  return *ex;
}

// ---- worker pool ----------------------------------------------------------------------------

void run_blocks(Job& job) {
  Executor& ex = Executor::current_thread();
  for (;;) {
    if (job.failed.load(std::memory_order_relaxed)) return;
    const std::uint64_t i = job.next.fetch_add(1);
    if (i >= job.nblocks) return;
    const std::uint64_t b = job.sched.reverse_blocks ? job.nblocks - 1 - i : i;
    if (std::exception_ptr e = ex.run_block(job, b)) job.fail(std::move(e));
  }
}

class Pool {
 public:
  explicit Pool(int helpers) {
    for (int i = 0; i < helpers; ++i) threads_.emplace_back([this] { loop(); });
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    work_cv_.notify_all();
    for (auto& t : threads_) t.join();
  }

  int helpers() const { return static_cast<int>(threads_.size()); }

  // Runs the job on the calling thread plus up to `helpers` pool threads.
  void run(Job& job, int helpers) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      job_ = &job;
      wanted_ = helpers;
      ++generation_;
    }
    if (helpers == 1)
      work_cv_.notify_one();
    else
      work_cv_.notify_all();
    run_blocks(job);
    std::unique_lock<std::mutex> lock(mu_);
    // Helpers that have not woken up yet are no longer needed.
    wanted_ = 0;
    job_ = nullptr;
    done_cv_.wait(lock, [&] { return active_ == 0; });
  }

 private:
  void loop() {
    std::uint64_t seen = 0;
    std::unique_lock<std::mutex> lock(mu_);
    for (;;) {
      work_cv_.wait(
          lock, [&] { return stop_ || (job_ != nullptr && wanted_ > 0 && generation_ != seen); });
      if (stop_) return;
      seen = generation_;
      --wanted_;
      ++active_;
      Job* job = job_;
      lock.unlock();
      run_blocks(*job);
      lock.lock();
      if (--active_ == 0) done_cv_.notify_all();
    }
  }

  std::mutex mu_;
  std::condition_variable work_cv_, done_cv_;
  Job* job_ = nullptr;
  int wanted_ = 0;
  int active_ = 0;
  std::uint64_t generation_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

Pool& pool() {
  static Pool* p = new Pool(worker_count() - 1);  // never destroyed: queued grids may run at exit
  return *p;
}

std::mutex& launch_mutex() {
  static std::mutex m;
  return m;
}

}  // namespace

// ---- entry points used by simt.h ------------------------------------------------------------

int block_barrier(SyncKind kind, int predicate, const char* file, int line) {
  Executor& ex = executor_for_kernel_call("__syncthreads");
  Fiber* f = ex.fiber();
  f->state = State::kBarrier;
  f->sync_kind = kind;
  f->site = Site{file, line};
  f->value = static_cast<std::uint64_t>(predicate != 0);
  ex.count_waiting(State::kBarrier);
#if defined(KILN_SIMT_TSAN)
  __tsan_release(ex.barrier_token(f));
  ex.block_until_resumed(f);
  __tsan_acquire(ex.barrier_token(f));
  ++f->barriers;
#else
  ex.block_until_resumed(f);
#endif
  return static_cast<int>(f->result);
}

std::uint64_t warp_op(WarpKind kind, unsigned mask, std::uint64_t value, int arg, int width,
                      const char* file, int line) {
  Executor& ex = executor_for_kernel_call(warp_kind_name(kind));
  Fiber* f = ex.fiber();
  const unsigned lane = f->tid % 32;
  if (!(mask >> lane & 1u))
    throw Error("", file, line,
                ::kiln::detail::concat("SIMT emulator: ", warp_kind_name(kind), " at ", file, ":",
                                       line, ": the calling lane ", lane, " (thread ", f->tid,
                                       ") is not in its mask 0x", std::hex, mask));
  if (width < 1 || width > 32 || (width & (width - 1)) != 0)
    throw Error(
        "", file, line,
        ::kiln::detail::concat("SIMT emulator: ", warp_kind_name(kind), " at ", file, ":", line,
                               ": width ", width, " is not a power of two in [1, 32]"));
  f->state = State::kWarp;
  f->warp_kind = kind;
  f->mask = mask;
  f->value = value;
  f->arg = arg;
  f->width = width;
  f->site = Site{file, line};
  ex.count_waiting(State::kWarp);
  if (kind == WarpKind::kGather) {  // orders no memory (warp_gather in simt.h)
    ex.block_until_resumed(f);
    return f->result;
  }
#if defined(KILN_SIMT_TSAN)
  // A full warp (every lane takes part in every full-mask operation) shares a token, like a barrier.
  // With a partial mask each lane releases into a token of its own and acquires the tokens of
  // exactly the lanes of its completed group. Tokens alternate per operation, for the reason
  // barrier_token gives.
  if (mask == 0xffffffffu) {
    __tsan_release(ex.warp_token(f->tid, f->full_ops & 1u));
    ex.block_until_resumed(f);
    __tsan_acquire(ex.warp_token(f->tid, f->full_ops & 1u));
    ++f->full_ops;
    return f->result;
  }
  __tsan_release(ex.lane_token(f->tid, f->warp_ops & 1u));
  ++f->warp_ops;
  ex.block_until_resumed(f);
  const std::uint32_t base = f->tid - lane;
  for (unsigned k = 0; k < 32; ++k)
    if (f->peers >> k & 1u) __tsan_acquire(ex.lane_token(base + k, f->peer_parity >> k & 1u));
#else
  ex.block_until_resumed(f);
#endif
  return f->result;
}

#if defined(KILN_SIMT_TSAN)
// The fence model. GCC's ThreadSanitizer ignores fences, and the atomics are relaxed, so without a
// model a correct last-block-done reduction (write partial; __threadfence(); atomicAdd(counter);
// the last block reads every partial) would be reported. A __threadfence* marks the CUDA thread
// as fenced for the rest of the kernel; every atomic of a fenced thread releases the atomic's
// address before it runs (what the thread wrote before the fence is published through that
// address), and every atomic acquires its address after it ran. See docs/simt.md for what this
// can miss.
void race_fence() {
  Executor* ex = Executor::running();
  if (ex != nullptr && ex->fiber() != nullptr) ex->fiber()->fenced = true;
}

void race_atomic_begin(const void* address) {
  Executor* ex = Executor::running();
  if (ex != nullptr && ex->fiber() != nullptr && ex->fiber()->fenced)
    __tsan_release(const_cast<void*>(address));
}

void race_atomic_end(const void* address) {
  __tsan_acquire(const_cast<void*>(address));
}
#endif

const unsigned char* warp_gather(const void* mine, int bytes, const char* file, int line) {
  if (bytes < 1 || bytes > kGatherBytes)
    throw Error("", file, line,
                ::kiln::detail::concat("SIMT emulator: warp_gather at ", file, ":", line, " posts ",
                                       bytes, " bytes; 1 to ", kGatherBytes, " are allowed"));
  return reinterpret_cast<const unsigned char*>(warp_op(WarpKind::kGather, 0xffffffffu,
                                                        reinterpret_cast<std::uintptr_t>(mine),
                                                        bytes, warpSize, file, line));
}

bool is_shared_address(const void* p, std::size_t bytes) {
  return executor_for_kernel_call("is_shared_address").is_shared(p, bytes);
}

void* shared_variable(const void* key, std::size_t bytes, std::size_t align) {
  return executor_for_kernel_call("KILN_SHARED").shared_variable(key, bytes, align);
}

void* dynamic_shared() {
  return executor_for_kernel_call("KILN_DYNAMIC_SHARED").dynamic_shared();
}

void async_copy(void* dst, const void* src, std::size_t bytes) {
  Fiber* f = executor_for_kernel_call("cp.async").fiber();
  f->async.push_back(AsyncCopy{dst, src, bytes, f->next_group});
}

void async_commit() {
  Fiber* f = executor_for_kernel_call("cp.async.commit_group").fiber();
  ++f->next_group;
}

void async_wait(int pending_groups) {
  Fiber* f = executor_for_kernel_call("cp.async.wait_group").fiber();
  const std::uint64_t keep = static_cast<std::uint64_t>(std::max(pending_groups, 0));
  while (f->next_group - f->first_group > keep) {
    const std::uint64_t g = f->first_group++;
    std::size_t out = 0;
    for (const AsyncCopy& c : f->async) {
      if (c.group == g)
        std::memcpy(c.dst, c.src, c.bytes);
      else
        f->async[out++] = c;
    }
    f->async.resize(out);
  }
}

void run_kernel(const LaunchSpec& spec, void (*invoke)(void*), void* packed,
                void (*destroy)(void*)) {
  // The grid, block and shared memory were checked by simt::launch (core/simt/launch_limits.cpp).
  std::shared_ptr<void> params(packed, destroy);
  KILN_CHECK(
      Executor::running() == nullptr,
      "SIMT emulator: a kernel launched another kernel (dynamic parallelism is not emulated)");

  const cudaError_t stream_ok = check_stream(spec.stream);
  KILN_CHECK(stream_ok != cudaErrorNotSupported,
             "SIMT emulator: the per-thread default stream (cudaStreamPerThread) is not emulated; "
             "launch on the legacy stream or on a stream from cudaStreamCreate");
  KILN_CHECK(stream_ok == cudaSuccess, "SIMT emulator: kernel launched on ", spec.stream,
             ", which is not a live stream (destroyed, or never created by cudaStreamCreate)");

  // Everything the grid needs is captured now, at queue time: the schedule in force included.
  // The work builds a fresh Job each time it runs, so a graph can replay it.
  if (const cudaError_t e = capture_check(spec.stream); e != cudaSuccess) {
    record_error(e);
    KILN_FAIL("SIMT emulator: a kernel launch on a stream under capture failed (",
              cudaGetErrorName(e), "): ", capture_error_text(e));
  }
  const Schedule sched = schedule();
  enqueue(
      spec.stream,
      [spec, invoke, packed, sched, params = std::move(params)] {
        Job job;
        job.spec = spec;
        job.invoke = invoke;
        job.packed = packed;
        job.sched = sched;
        job.nthreads = spec.block.x * spec.block.y * spec.block.z;
        job.nblocks = std::uint64_t{spec.grid.x} * spec.grid.y * spec.grid.z;
        std::lock_guard<std::mutex> lock(launch_mutex());
#if defined(KILN_SIMT_TSAN)
        __tsan_release(&job.start_token);
#endif
        const std::uint64_t helpers = std::min<std::uint64_t>(
            static_cast<std::uint64_t>(worker_count() - 1), job.nblocks - 1);
        if (helpers == 0)
          run_blocks(job);
        else
          pool().run(job, static_cast<int>(helpers));
#if defined(KILN_SIMT_TSAN)
        __tsan_acquire(&job.done_token);  // every block has finished: the launch happens before
#endif
        if (job.error) std::rethrow_exception(job.error);
      },
      nullptr, OpKind::kKernel);
}

}  // namespace detail
}  // namespace kiln::simt
