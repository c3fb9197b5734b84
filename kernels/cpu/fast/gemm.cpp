// kernels/cpu/fast/gemm.cpp — see gemm.h.
#include "kernels/cpu/fast/gemm.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <mutex>

#if KILN_HAVE_OPENBLAS
#include <cblas.h>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace kiln::cpu::fast {
namespace {

// One block of C on the calling thread.
void sgemm_serial(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
                  int lda, const float* b, int ldb, float beta, float* c, int ldc) {
#if KILN_HAVE_OPENBLAS
  if (k > 0) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  // Plain loops (also k == 0, which BLAS implementations treat unevenly): C row by row, the terms
  // added in order p = 0..k-1.
  for (int i = 0; i < m; ++i) {
    float* ci = c + int64_t(i) * ldc;
    for (int j = 0; j < n; ++j) ci[j] = beta == 0.f ? 0.f : beta * ci[j];
    for (int p = 0; p < k; ++p) {
      const float aip = alpha * (trans_a ? a[int64_t(p) * lda + i] : a[int64_t(i) * lda + p]);
      if (trans_b)
        for (int j = 0; j < n; ++j) ci[j] += aip * b[int64_t(j) * ldb + p];
      else
        for (int j = 0; j < n; ++j) ci[j] += aip * b[int64_t(p) * ldb + j];
    }
  }
}

bool in_parallel() {
#ifdef _OPENMP
  return omp_in_parallel() != 0;
#else
  return false;
#endif
}

std::atomic<GemmRecorder> recorder{nullptr};

// One block of C: rows row0.. (or columns col0..) of the whole product, recorded if asked.
void run_block(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a,
               int lda, const float* b, int ldb, float beta, float* c, int ldc, int row0,
               int col0) {
  if (const GemmRecorder record = recorder.load(std::memory_order_acquire))
    record({trans_a, trans_b, m, n, k, lda, ldb, ldc, alpha, beta, row0, col0});
  sgemm_serial(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// The number of blocks, from the shape alone: a power of two (so 2, 4, 8 or 16 threads share them
// evenly), each block at least kMinBlockFlops of work (below that, waking a thread costs more than
// it saves) and kMinBlockExtent rows or columns wide, at most kMaxBlocks.
int block_count(int extent, double flops) {
  constexpr double kMinBlockFlops = 1 << 21;
  constexpr int kMinBlockExtent = 16;
  constexpr int kMaxBlocks = 16;
  const double limit = std::min(flops / kMinBlockFlops, double(extent / kMinBlockExtent));
  int blocks = 1;
  while (blocks * 2 <= kMaxBlocks && blocks * 2 <= limit) blocks *= 2;
  return blocks;
}

}  // namespace

void set_gemm_recorder(GemmRecorder r) {
  recorder.store(r, std::memory_order_release);
}

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
#if KILN_HAVE_OPENBLAS
  static std::once_flag single_threaded_blas;
  std::call_once(single_threaded_blas, [] { openblas_set_num_threads(1); });
#endif
  // Split the longer side of C; the split never cuts the reduction over K.
  const bool split_rows = m >= n;
  const int extent = split_rows ? m : n;
  const int blocks = block_count(extent, 2.0 * m * n * std::max(k, 1));
  if (blocks == 1) {
    run_block(trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc, 0, 0);
    return;
  }
  // Inside a parallel region (conv's groups) the calling thread runs the blocks in turn.
#pragma omp parallel for schedule(static) if (!in_parallel())
  for (int t = 0; t < blocks; ++t) {
    const int lo = int(int64_t(extent) * t / blocks), hi = int(int64_t(extent) * (t + 1) / blocks);
    if (split_rows)  // rows lo..hi of C come from rows lo..hi of op(A)
      run_block(trans_a, trans_b, hi - lo, n, k, alpha, trans_a ? a + lo : a + int64_t(lo) * lda,
                lda, b, ldb, beta, c + int64_t(lo) * ldc, ldc, lo, 0);
    else  // columns lo..hi of C come from columns lo..hi of op(B)
      run_block(trans_a, trans_b, m, hi - lo, k, alpha, a, lda,
                trans_b ? b + int64_t(lo) * ldb : b + lo, ldb, beta, c + lo, ldc, 0, lo);
  }
}

}  // namespace kiln::cpu::fast
