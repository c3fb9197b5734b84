// kernels/cpu/fast/gemm.h — the single-precision GEMM the CPU fast path is built on (conv through
// im2col, linear): OpenBLAS's cblas_sgemm when Kiln is built with it (KILN_HAVE_OPENBLAS), else
// plain loops.
//
// Blocks and threads: sgemm cuts C into blocks of rows (or of columns, when C is wide) whose number
// and bounds follow from (m, n, k) alone, and makes one single-threaded BLAS call per block. The
// number of OpenMP threads only decides who runs which block: outside a parallel region the blocks
// are shared among the threads, inside one (conv's per-group loop) the calling thread runs them in
// turn. Either way the same BLAS calls happen, so the bits of C never depend on the thread count —
// a BLAS may round differently for a different M (OpenBLAS on AVX-512 does), so cutting C by the
// thread count would. OpenBLAS's own thread pool is set to one thread on first use: two thread pools
// would spin against each other on a small machine.
#pragma once

namespace kiln::cpu::fast {

// Row-major: C[M][N] = alpha · op(A)[M][K] · op(B)[K][N] + beta · C.
// op(A) = A stored [M][K] (lda ≥ K), or with trans_a, A stored [K][M] (lda ≥ M) and transposed;
// op(B) likewise ([K][N], ldb ≥ N; or with trans_b, [N][K], ldb ≥ K). beta == 0 overwrites C
// without reading it (NaN in C does not leak). Each element of C is reduced over K by one call in a
// fixed order, so results repeat bit for bit from run to run and for any number of threads.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

// Test-only: one block's BLAS-level call, as sgemm makes it. row0/col0: the block's place in C.
struct GemmCall {
  bool trans_a, trans_b;
  int m, n, k, lda, ldb, ldc;
  float alpha, beta;
  int row0, col0;
};
using GemmRecorder = void (*)(const GemmCall&);
// While a recorder is set, every block call is reported to it, from whichever thread runs the
// block (the recorder must be thread-safe). nullptr (the default) stops recording.
void set_gemm_recorder(GemmRecorder recorder);

}  // namespace kiln::cpu::fast
