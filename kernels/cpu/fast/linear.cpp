// kernels/cpu/fast/linear.cpp — the float CPU fast path of the fully connected layer: each pass is
// one sgemm (kernels/cpu/fast/gemm.h: OpenBLAS when present, plain loops otherwise), the bias terms
// plain loops around it.
// Same contract as the reference in kernels/cpu/linear.cpp; tested against its double instance.
//
//   forward          y = x · wᵀ + b   sgemm(no, T)  M=N   N=OUT K=IN  y pre-set to b, beta 1
//   backward-data    dx = dy · w      sgemm(no, no) M=N   N=IN  K=OUT beta 0: overwritten
//   backward-weight  dw += dyᵀ · x    sgemm(T, no)  M=OUT N=IN  K=N   beta 1: accumulated
//                    db += Σ_n dy[n]
#include "kernels/linear.h"

#include <cstdint>

#include "kernels/cpu/fast/gemm.h"

namespace kiln::cpu::fast {

void linear_forward(float* y, const float* x, const float* w, const float* b,
                    const LinearShape& s) {
  // y starts as the bias (or 0) broadcast over the batch, then the GEMM accumulates onto it.
  for (int n = 0; n < s.n; ++n) {
    float* yn = y + static_cast<int64_t>(n) * s.out;  // [OUT]
    for (int o = 0; o < s.out; ++o) yn[o] = b != nullptr ? b[o] : 0.f;
  }
  sgemm(false, true, s.n, s.out, s.in, 1.f, x, s.in, w, s.in, 1.f, y, s.out);
}

void linear_backward_data(float* dx, const float* dy, const float* w, const LinearShape& s) {
  sgemm(false, false, s.n, s.in, s.out, 1.f, dy, s.out, w, s.in, 0.f, dx, s.in);
}

void linear_backward_weight(float* dw, float* db, const float* dy, const float* x,
                            const LinearShape& s) {
  sgemm(true, false, s.out, s.in, s.n, 1.f, dy, s.out, x, s.in, 1.f, dw, s.in);
  if (db == nullptr) return;
  // Column sums of dy [N][OUT], summed apart from db and then added, as the reference does, so a
  // large db does not swallow the small terms. N·OUT is tiny beside the GEMM: plain loops.
  for (int o = 0; o < s.out; ++o) {
    float acc = 0.f;
    for (int n = 0; n < s.n; ++n) acc += dy[static_cast<int64_t>(n) * s.out + o];
    db[o] += acc;
  }
}

}  // namespace kiln::cpu::fast
