// kernels/cpu/fast/conv2d.cpp — the float CPU convolution users train with: im2col + sgemm.
//
// With P = OH·OW output positions per sample and K = KH·KW·C_in, im2col lays one sample out as
// cols [P][K] (row (oh, ow), column (i·KW + j)·C_in + ci, the index relation of docs/math.md §1, zeros
// in the padding). Since w [C_out][KH][KW][C_in] is w [C_out][K] row-major, the three ops are GEMMs:
//   forward          y [P][C_out]   = cols · wᵀ (+ b)
//   backward-data    dcols [P][K]   = dy · w,      then col2im adds dcols back onto dx
//   backward-filter  dw [C_out][K] += dyᵀ · cols,  db += column sums of dy
// A 1×1 kernel with stride 1 and no padding needs no im2col: cols is x itself.
//
// Threads: the batch is processed in chunks of B samples whose columns fit a bounded buffer. OpenMP
// runs over the B samples of a chunk for im2col/col2im; one sgemm with M = B·P covers the chunk and
// OpenBLAS threads it. (Debian's OpenBLAS is the pthreads build: sgemm called from inside OpenMP
// threads would contend for its one thread pool, so the two kinds of parallel code take turns.)
// Deterministic: the GEMMs of dw accumulate chunk after chunk in batch order, db sums in a fixed order.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/cpu/fast/gemm.h"

namespace kiln::cpu::fast {
namespace {

constexpr int64_t kChunkFloats = int64_t(1) << 22;  // 16 MiB of columns per chunk

// A grow-only column buffer per calling thread: a steady-state training step allocates nothing.
float* column_buffer(int64_t floats) {
  thread_local std::vector<float> buffer;
  if (static_cast<int64_t>(buffer.size()) < floats) buffer.resize(static_cast<size_t>(floats));
  return buffer.data();
}

struct Plan {
  int64_t p = 0;        // output positions per sample, OH·OW
  int64_t k = 0;        // reduction length, KH·KW·C_in
  int chunk = 1;        // samples per GEMM
  bool direct = false;  // 1×1, stride 1, no padding: x is its own column matrix
};

Plan make_plan(const Conv2dShape& s) {
  Plan plan;
  plan.p = static_cast<int64_t>(s.out_h()) * s.out_w();
  plan.k = static_cast<int64_t>(s.kh) * s.kw * s.c_in;
  plan.direct = s.kh == 1 && s.kw == 1 && s.stride_h == 1 && s.stride_w == 1 && s.pad_h == 0 &&
                s.pad_w == 0;
  const int64_t fits = std::max<int64_t>(1, kChunkFloats / std::max<int64_t>(1, plan.p * plan.k));
  plan.chunk = static_cast<int>(std::min<int64_t>(s.n, fits));
  return plan;
}

// cols [P][K] of one sample x [H][W][C_in].
void im2col(float* cols, const float* x, const Conv2dShape& s) {
  const int OH = s.out_h(), OW = s.out_w();
  const size_t tap_bytes = sizeof(float) * s.c_in;
  for (int oh = 0; oh < OH; ++oh)
    for (int ow = 0; ow < OW; ++ow) {
      float* row = cols + (int64_t(oh) * OW + ow) * s.kh * s.kw * s.c_in;
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

// The column matrix of samples [n0, n0 + count): x itself when direct, else im2col'd into `buffer`.
const float* columns(float* buffer, const float* x, int n0, int count, const Plan& plan,
                     const Conv2dShape& s) {
  const int64_t image = int64_t(s.h) * s.w * s.c_in;
  if (plan.direct) return x + n0 * image;
#pragma omp parallel for schedule(static)
  for (int b = 0; b < count; ++b) im2col(buffer + b * plan.p * plan.k, x + (n0 + b) * image, s);
  return buffer;
}

}  // namespace

void conv2d_forward(float* y, const float* x, const float* w, const float* b,
                    const Conv2dShape& s) {
  const Plan plan = make_plan(s);
  float* buffer = plan.direct ? nullptr : column_buffer(plan.chunk * plan.p * plan.k);
  for (int n0 = 0; n0 < s.n; n0 += plan.chunk) {
    const int count = std::min(plan.chunk, s.n - n0);
    const int64_t rows = count * plan.p;
    float* yc = y + n0 * plan.p * s.c_out;  // [rows][C_out]
    if (b != nullptr)
      for (int64_t r = 0; r < rows; ++r) std::memcpy(yc + r * s.c_out, b, sizeof(float) * s.c_out);
    const float* cols = columns(buffer, x, n0, count, plan, s);
    sgemm(false, true, int(rows), s.c_out, int(plan.k), 1.f, cols, int(plan.k), w, int(plan.k),
          b != nullptr ? 1.f : 0.f, yc, s.c_out);
  }
}

void conv2d_backward_data(float* dx, const float* dy, const float* w, const Conv2dShape& s) {
  const Plan plan = make_plan(s);
  const int64_t image = int64_t(s.h) * s.w * s.c_in;
  if (plan.direct) {  // dx [N·H·W][C_in] = dy · w
    sgemm(false, false, int(s.n * plan.p), s.c_in, s.c_out, 1.f, dy, s.c_out, w, s.c_in, 0.f, dx,
          s.c_in);
    return;
  }
  float* dcols = column_buffer(plan.chunk * plan.p * plan.k);
  for (int n0 = 0; n0 < s.n; n0 += plan.chunk) {
    const int count = std::min(plan.chunk, s.n - n0);
    sgemm(false, false, int(count * plan.p), int(plan.k), s.c_out, 1.f, dy + n0 * plan.p * s.c_out,
          s.c_out, w, int(plan.k), 0.f, dcols, int(plan.k));
#pragma omp parallel for schedule(static)
    for (int b = 0; b < count; ++b) col2im(dx + (n0 + b) * image, dcols + b * plan.p * plan.k, s);
  }
}

void conv2d_backward_filter(float* dw, float* db, const float* dy, const float* x,
                            const Conv2dShape& s) {
  const Plan plan = make_plan(s);
  float* buffer = plan.direct ? nullptr : column_buffer(plan.chunk * plan.p * plan.k);
  for (int n0 = 0; n0 < s.n; n0 += plan.chunk) {
    const int count = std::min(plan.chunk, s.n - n0);
    const float* cols = columns(buffer, x, n0, count, plan, s);
    sgemm(true, false, s.c_out, int(plan.k), int(count * plan.p), 1.f, dy + n0 * plan.p * s.c_out,
          s.c_out, cols, int(plan.k), 1.f, dw, int(plan.k));
  }
  if (db == nullptr) return;
  std::vector<double> sum(s.c_out, 0.0);
  const int64_t rows = s.n * plan.p;
  for (int64_t r = 0; r < rows; ++r)
    for (int co = 0; co < s.c_out; ++co) sum[co] += dy[r * s.c_out + co];
  for (int co = 0; co < s.c_out; ++co) db[co] = static_cast<float>(db[co] + sum[co]);
}

}  // namespace kiln::cpu::fast
