// kernels/cpu/fast/gemm.h — the single-precision GEMM the CPU fast path is built on (conv through
// im2col, linear): OpenBLAS's cblas_sgemm when Kiln is built with it (KILN_HAVE_OPENBLAS), else plain
// loops with OpenMP over the rows of C.
#pragma once

namespace kiln::cpu::fast {

// Row-major: C[M][N] = alpha · op(A)[M][K] · op(B)[K][N] + beta · C.
// op(A) = A stored [M][K] (lda ≥ K), or with trans_a, A stored [K][M] (lda ≥ M) and transposed;
// op(B) likewise ([K][N], ldb ≥ N; or [N][K], ldb ≥ K). beta == 0 overwrites C without reading it
// (NaN in C does not leak). Deterministic for a given build and thread count.
void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc);

}  // namespace kiln::cpu::fast
