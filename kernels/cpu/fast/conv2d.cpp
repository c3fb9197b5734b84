// kernels/cpu/fast/conv2d.cpp — the float CPU convolution users train with: im2col + sgemm.
//
// With P = OH·OW output positions per sample and K = KH·KW·C_in, im2col lays one sample out as
// cols [P][K] (row (oh, ow), column (i·KW + j)·C_in + ci, the index relation of docs/math.md §1,
// zeros in the padding). Since w [C_out][KH][KW][C_in] is w [C_out][K] row-major, the three ops are
//   GEMMs: forward          y [P][C_out]   = cols · wᵀ (+ b)
//   backward-data    dcols [P][K]   = dy · w,      then col2im adds dcols back onto dx
//   backward-filter  dw [C_out][K] += dyᵀ · cols,  db += column sums of dy
// A 1×1 kernel with stride 1 and no padding needs no im2col: cols is x itself.
//
// Blocks and threads (OpenMP; gemm.h explains why OpenBLAS runs single-threaded): the batch is
// cut into groups of G samples, G chosen from the shape alone so a group's GEMM has at least a few
// hundred rows while its columns stay small enough for the cache, and the number of groups rounded
// up to a multiple of kBalance (when the batch allows) so 2, 4 or 8 threads get equal shares. Each
// thread takes whole groups: im2col into its own buffer, then one sgemm on that thread — the
// columns are used while they are still in cache. With fewer groups than threads (a batch of one),
// the groups run in turn and sgemm shares each GEMM's blocks among the threads. Backward-filter is
// a sum over the batch: groups are dealt to kBalance slots (contiguous runs of groups), each slot
// accumulates its own partial dw/db, and the partials are added to dw/db in slot order.
// Nothing in the plan depends on the number of threads, only who runs which group or block, so
// every thread count makes the same BLAS calls and the same sums: the same bits.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "kernels/conv2d.h"
#include "kernels/cpu/fast/gemm.h"

namespace kiln::cpu::fast {
namespace {

constexpr int64_t kGroupRows = 512;        // aim for at least this many GEMM rows per group
constexpr int64_t kGroupFloats = 1 << 20;  // and at most 4 MiB of columns per group
constexpr int kBalance = 8;  // groups come in multiples of it; backward-filter's partial sums

// Only for scheduling (groups in parallel, or in turn with sgemm's blocks in parallel): the work
// done, and so the result, is the same either way.
#ifdef _OPENMP
int max_threads() {
  return omp_get_max_threads();
}
#else
int max_threads() {
  return 1;
}
#endif

// A grow-only buffer per thread (OpenMP's worker threads persist): a steady-state training step
// allocates nothing.
float* thread_buffer(int64_t floats) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
}

struct Plan {
  int64_t p = 0;        // output positions per sample, OH·OW
  int64_t k = 0;        // reduction length, KH·KW·C_in
  int64_t image = 0;    // input elements per sample, H·W·C_in
  int group = 1;        // samples per GEMM
  int groups = 1;       // ceil(N / group)
  bool direct = false;  // 1×1, stride 1, no padding: x is its own column matrix
};

// From the shape alone, never the thread count: the GEMMs' sizes (and so their rounding) follow.
Plan make_plan(const Conv2dShape& s) {
  Plan plan;
  plan.p = static_cast<int64_t>(s.out_h()) * s.out_w();
  plan.k = static_cast<int64_t>(s.kh) * s.kw * s.c_in;
  plan.image = static_cast<int64_t>(s.h) * s.w * s.c_in;
  plan.direct =
      s.kh == 1 && s.kw == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 && s.pad_w == 0;
  const int64_t by_rows = (kGroupRows + plan.p - 1) / plan.p;
  const int64_t by_cache = std::max<int64_t>(1, kGroupFloats / (plan.p * plan.k));
  int64_t group = std::clamp<int64_t>(std::min(by_rows, by_cache), 1, s.n);
  const int64_t groups = (s.n + group - 1) / group;
  const int64_t balanced = std::min<int64_t>(s.n, (groups + kBalance - 1) / kBalance * kBalance);
  group = (s.n + balanced - 1) / balanced;
  plan.group = static_cast<int>(group);
  plan.groups = static_cast<int>((s.n + group - 1) / group);
  return plan;
}

// cols [P][K] of one sample x [H][W][C_in].
void im2col(float* cols, const float* x, const Conv2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  const size_t tap_bytes = sizeof(float) * s.c_in;
  for (int oh = 0; oh < OH; ++oh)
    for (int ow = 0; ow < OW; ++ow) {
      float* row = cols + (int64_t(oh) * OW + ow) * s.kh * s.kw * s.c_in;
      if (s.c_in == 1) {  // one float per tap (a network's first layer): no memcpy call per tap
        for (int i = 0; i < s.kh; ++i) {
          const int ih = oh * s.stride_h - s.pad_h + i;
          for (int j = 0; j < s.kw; ++j) {
            const int iw = ow * s.stride_w - s.pad_w + j;
            const bool inside = ih >= 0 && ih < s.h && iw >= 0 && iw < s.w;
            row[i * s.kw + j] = inside ? x[int64_t(ih) * s.w + iw] : 0.f;
          }
        }
        continue;
      }
      for (int i = 0; i < s.kh; ++i) {
        const int ih = oh * s.stride_h - s.pad_h + i;
        for (int j = 0; j < s.kw; ++j) {
          const int iw = ow * s.stride_w - s.pad_w + j;
          float* dst = row + (int64_t(i) * s.kw + j) * s.c_in;
          if (ih < 0 || ih >= s.h || iw < 0 || iw >= s.w)
            std::memset(dst, 0, tap_bytes);
          else
            std::memcpy(dst, x + (int64_t(ih) * s.w + iw) * s.c_in, tap_bytes);
        }
      }
    }
}

// dx [H][W][C_in] of one sample = Σ of the columns' entries that im2col would have read from it.
void col2im(float* dx, const float* cols, const Conv2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  std::fill(dx, dx + int64_t(s.h) * s.w * s.c_in, 0.f);
  for (int oh = 0; oh < OH; ++oh)
    for (int ow = 0; ow < OW; ++ow) {
      const float* row = cols + (int64_t(oh) * OW + ow) * s.kh * s.kw * s.c_in;
      for (int i = 0; i < s.kh; ++i) {
        const int ih = oh * s.stride_h - s.pad_h + i;
        if (ih < 0 || ih >= s.h) continue;
        for (int j = 0; j < s.kw; ++j) {
          const int iw = ow * s.stride_w - s.pad_w + j;
          if (iw < 0 || iw >= s.w) continue;
          const float* src = row + (int64_t(i) * s.kw + j) * s.c_in;
          float* dst = dx + (int64_t(ih) * s.w + iw) * s.c_in;
          for (int ci = 0; ci < s.c_in; ++ci) dst[ci] += src[ci];
        }
      }
    }
}

// The column matrix [count·P][K] of samples n0 .. n0+count-1: x itself when direct, else im2col'd
// into this thread's buffer.
const float* group_columns(const float* x, int n0, int count, const Plan& plan,
                           const Conv2dShape& s) {
  if (plan.direct) return x + n0 * plan.image;
  float* cols = thread_buffer(count * plan.p * plan.k);
  for (int b = 0; b < count; ++b) im2col(cols + b * plan.p * plan.k, x + (n0 + b) * plan.image, s);
  return cols;
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b,
                    const Conv2dShape& s) {
  const Plan plan = make_plan(s);
#pragma omp parallel for schedule(static) if (plan.groups >= max_threads())
  for (int g = 0; g < plan.groups; ++g) {
    const int n0 = g * plan.group, count = std::min(plan.group, s.n - n0);
    const int64_t rows = count * plan.p;
    float* yg = y + n0 * plan.p * s.c_out;  // [rows][C_out]
    if (b != nullptr)
      for (int64_t r = 0; r < rows; ++r) std::memcpy(yg + r * s.c_out, b, sizeof(float) * s.c_out);
    const float* cols = group_columns(x, n0, count, plan, s);
    sgemm(false, true, int(rows), s.c_out, int(plan.k), 1.f, cols, int(plan.k), w, int(plan.k),
          b != nullptr ? 1.f : 0.f, yg, s.c_out);
  }
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s) {
  // With stride 1, backward-data is itself a convolution (docs/math.md §1 with oh = ih + P − i):
  // dx = conv(dy, w flipped in space with C_in and C_out swapped, padding K − 1 − P), the same
  // GEMM shape as the forward and no col2im. Worth it once C_in fills a GEMM's columns.
  if (s.stride_h == 1 && s.stride_w == 1 && s.pad_h < s.kh && s.pad_w < s.kw && s.c_in >= 8 &&
      !(s.kh == 1 && s.kw == 1)) {
    thread_local std::vector<float> flipped;  // [C_in][KH][KW][C_out]
    flipped.resize(static_cast<size_t>(s.c_out) * s.kh * s.kw * s.c_in);
    for (int co = 0; co < s.c_out; ++co)
      for (int i = 0; i < s.kh; ++i)
        for (int j = 0; j < s.kw; ++j)
          for (int ci = 0; ci < s.c_in; ++ci)
            flipped[((int64_t(ci) * s.kh + (s.kh - 1 - i)) * s.kw + (s.kw - 1 - j)) * s.c_out +
                    co] = w[((int64_t(co) * s.kh + i) * s.kw + j) * s.c_in + ci];
    Conv2dShape t = s;
    t.h = s.out_h(), t.w = s.out_w(), t.c_in = s.c_out, t.c_out = s.c_in;
    t.pad_h = s.kh - 1 - s.pad_h, t.pad_w = s.kw - 1 - s.pad_w;
    conv2d_forward(dx, dy, flipped.data(), nullptr, t);
    return;
  }
  const Plan plan = make_plan(s);
#pragma omp parallel for schedule(static) if (plan.groups >= max_threads())
  for (int g = 0; g < plan.groups; ++g) {
    const int n0 = g * plan.group, count = std::min(plan.group, s.n - n0);
    const float* dyg = dy + n0 * plan.p * s.c_out;
    if (plan.direct) {  // dx [rows][C_in] = dy · w
      sgemm(false, false, int(count * plan.p), s.c_in, s.c_out, 1.f, dyg, s.c_out, w, s.c_in, 0.f,
            dx + n0 * plan.image, s.c_in);
      continue;
    }
    float* dcols = thread_buffer(count * plan.p * plan.k);
    sgemm(false, false, int(count * plan.p), int(plan.k), s.c_out, 1.f, dyg, s.c_out, w,
          int(plan.k), 0.f, dcols, int(plan.k));
    for (int b = 0; b < count; ++b)
      col2im(dx + (n0 + b) * plan.image, dcols + b * plan.p * plan.k, s);
  }
}

void conv2d_backward_filter(float* dw, float* db, const float* dy, const float* x,
                            const Conv2dShape& s) {
  const Plan plan = make_plan(s);
  const int slots = std::min(kBalance, plan.groups);
  const int64_t dw_size = s.c_out * plan.k;
  // Partial dw [slots][C_out][K] and db [slots][C_out], in the calling thread's storage.
  thread_local std::vector<float> dw_partial;
  thread_local std::vector<double> db_partial;
  dw_partial.resize(static_cast<size_t>(slots * dw_size));
  db_partial.assign(static_cast<size_t>(slots * s.c_out), 0.0);
  float* dwp = dw_partial.data();
  double* dbp = db_partial.data();
#pragma omp parallel for schedule(static) if (slots > 1)
  for (int slot = 0; slot < slots; ++slot) {
    const int g0 = int(int64_t(plan.groups) * slot / slots);
    const int g1 = int(int64_t(plan.groups) * (slot + 1) / slots);
    for (int g = g0; g < g1; ++g) {
      const int n0 = g * plan.group, count = std::min(plan.group, s.n - n0);
      const int64_t rows = count * plan.p;
      const float* dyg = dy + n0 * plan.p * s.c_out;  // [rows][C_out]
      const float* cols = group_columns(x, n0, count, plan, s);
      sgemm(true, false, s.c_out, int(plan.k), int(rows), 1.f, dyg, s.c_out, cols, int(plan.k),
            g == g0 ? 0.f : 1.f, dwp + slot * dw_size, int(plan.k));
      if (db != nullptr)
        for (int64_t r = 0; r < rows; ++r)
          for (int co = 0; co < s.c_out; ++co) dbp[slot * s.c_out + co] += dyg[r * s.c_out + co];
    }
  }
#pragma omp parallel for schedule(static) if (dw_size >= (1 << 16))
  for (int64_t e = 0; e < dw_size; ++e) {
    float sum = dw[e];
    for (int slot = 0; slot < slots; ++slot) sum += dwp[slot * dw_size + e];
    dw[e] = sum;
  }
  if (db == nullptr) return;
  for (int co = 0; co < s.c_out; ++co) {
    double sum = 0.0;
    for (int slot = 0; slot < slots; ++slot) sum += dbp[slot * s.c_out + co];
    db[co] = static_cast<float>(db[co] + sum);
  }
}

}  // namespace kiln::cpu::fast
