// kernels/cpu/fast/gemm.cpp — see gemm.h.
#include "kernels/cpu/fast/gemm.h"

#include <cstdint>

#if KILN_HAVE_OPENBLAS
#include <cblas.h>
#endif

namespace kiln::cpu::fast {

void sgemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
           const float* b, int ldb, float beta, float* c, int ldc) {
  if (m <= 0 || n <= 0) return;
#if KILN_HAVE_OPENBLAS
  if (k > 0) {
    cblas_sgemm(CblasRowMajor, trans_a ? CblasTrans : CblasNoTrans,
                trans_b ? CblasTrans : CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
    return;
  }
#endif
  // Plain loops (also the k == 0 case, which BLAS implementations treat unevenly): each row of C
  // is one thread's, its terms added in order p = 0..k-1, so the result is deterministic.
#pragma omp parallel for schedule(static) if (int64_t(m) * n * k >= (1 << 16))
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

}  // namespace kiln::cpu::fast
