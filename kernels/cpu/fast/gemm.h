// kernels/cpu/fast/gemm.h — the single-precision GEMM the CPU fast path is built on (conv through
// im2col, linear): OpenBLAS's cblas_sgemm when Kiln is built with it (KILN_HAVE_OPENBLAS), else
// plain loops.
//
// Threads: all of the fast path's parallelism is OpenMP's. Called outside a parallel region, sgemm
// splits C into one block of rows (or of columns, when C is wide) per OpenMP thread, each block one
// single-threaded BLAS call; called inside one (conv's per-sample loop), it runs on the calling
// thread. OpenBLAS's own thread pool is therefore set to one thread on first use: two thread pools
// would spin against each other on a small machine.
#pragma once

namespace kiln::cpu::fast {

// Row-major: C[M][N] = alpha · op(A)[M][K] · op(B)[K][N] + beta · C.
// op(A) = A stored [M][K] (lda ≥ K), or with trans_a, A stored [K][M] (lda ≥ M) and transposed;
// op(B) likewise ([K][N], ldb ≥ N; or with trans_b, [N][K], ldb ≥ K). beta == 0 overwrites C
// without reading it (NaN in C does not leak). Each element of C is reduced over K by one thread in
// a fixed order, so results repeat bit for bit from run to run.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace kiln::cpu::fast
