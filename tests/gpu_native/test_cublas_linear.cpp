// tests/gpu_native/test_cublas_linear.cpp — kiln::cuda::linear_* against cuBLAS SGEMM on a real
// GPU ([gpu]).
//
// Row-major Kiln buffers are column-major transposes for cuBLAS:
//   y  = x·wᵀ + b   ⇔  yᵀ [out×n]  = wᵀ·xᵀ   : Sgemm(T, N, out, n, in,  w, in, x, in,  y, out)
//   dx = dy·w       ⇔  dxᵀ [in×n]  = wᵀ·dyᵀ  : Sgemm(N, N, in, n, out,  w, in, dy, out, dx, in)
//   dw += dyᵀ·x     ⇔  dwᵀ [in×out] += xᵀ·dy : Sgemm(N, T, in, out, n,  x, in, dy, out, dw, in)
// cuBLAS runs in CUBLAS_PEDANTIC_MATH (fp32, no TF32). Both sides are within (K + 8)·2⁻²⁴·Σ|a·b|
// of the exact value, so they agree within twice that; Σ|a·b| comes from cuBLAS on |inputs|.
// db is compared with the column sums cuBLAS computes as dyᵀ·1.
#include <catch2/catch.hpp>

#include <cublas_v2.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/tensor.h"
#include "kernels/linear.h"
#include "tests/support/compare.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

namespace {

using kiln::Device;
using kiln::LinearShape;
using kiln::Tensor;
using namespace kiln::test;

#define CUBLAS_CHECK(expr)                               \
  do {                                                   \
    cublasStatus_t st_ = (expr);                         \
    INFO(#expr << ": status " << static_cast<int>(st_)); \
    REQUIRE(st_ == CUBLAS_STATUS_SUCCESS);               \
  } while (0)

Tensor zeros(int64_t n) {
  return Tensor::full({n}, 0.0, kiln::DType::f32, Device::cuda);
}

void check(const std::string& what, const Tensor& got, const Tensor& ref, const Tensor& mag,
           int64_t k) {
  const double atol = 2.0 * kiln::test::dot_bound(k, mag.to_vector<float>());
  kiln::test::expect_close(what, got.to_vector<float>(), ref.to_vector<float>(), atol, 4 * kU);
}

struct Blas {
  cublasHandle_t h{};
  Blas() {
    CUBLAS_CHECK(cublasCreate(&h));
    CUBLAS_CHECK(cublasSetMathMode(h, CUBLAS_PEDANTIC_MATH));
  }
  ~Blas() { cublasDestroy(h); }
  // C[m×n] (col-major, ldc) = alpha·op(A)·op(B) + beta·C
  void gemm(cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* a,
            int lda, const float* b, int ldb, float beta, float* c, int ldc) {
    const float one = 1.f;
    CUBLAS_CHECK(cublasSgemm(h, ta, tb, m, n, k, &one, a, lda, b, ldb, &beta, c, ldc));
  }
};

}  // namespace

TEST_CASE("linear agrees with cuBLAS (fp32, no TF32)", "[gpu][linear]") {
  // The flagship's linear layers at batch 256, and odd sizes through the scalar and edge paths.
  const std::vector<LinearShape> shapes = {
      {256, 512, 1024}, {256, 1024, 512}, {256, 512, 7}, {37, 301, 45}, {1, 1, 1}, {4096, 64, 96},
  };
  uint32_t seed = 11;
  Blas blas;
  for (const LinearShape& s : shapes) {
    INFO("shape n=" << s.n << " in=" << s.in << " out=" << s.out);
    const auto xv = uniform_floats(int64_t{s.n} * s.in, seed++, -1.f, 1.f);
    const auto wv = uniform_floats(int64_t{s.out} * s.in, seed++, -1.f, 1.f);
    const auto bv = uniform_floats(s.out, seed++, -1.f, 1.f);
    const auto dyv = uniform_floats(int64_t{s.n} * s.out, seed++, -1.f, 1.f);
    Tensor x = kiln::test::device_tensor(xv), w = kiln::test::device_tensor(wv),
           dy = kiln::test::device_tensor(dyv);
    Tensor xa = kiln::test::device_tensor(abs_of(xv)), wa = kiln::test::device_tensor(abs_of(wv)),
           dya = kiln::test::device_tensor(abs_of(dyv));
    const int64_t yn = int64_t{s.n} * s.out, xn = int64_t{s.n} * s.in, wn = int64_t{s.out} * s.in;

    // Forward, with bias: cuBLAS starts from y = broadcast b (beta = 1).
    std::vector<float> b_rows(static_cast<size_t>(yn));
    for (int64_t i = 0; i < yn; ++i)
      b_rows[static_cast<size_t>(i)] = bv[static_cast<size_t>(i % s.out)];
    std::vector<float> b_abs_rows = abs_of(b_rows);
    Tensor b = kiln::test::device_tensor(bv), y = zeros(yn),
           y_ref = kiln::test::device_tensor(b_rows), y_mag = kiln::test::device_tensor(b_abs_rows);
    y.fill(std::nan(""));
    kiln::cuda::linear_forward(y.data<float>(), x.data<float>(), w.data<float>(), b.data<float>(),
                               s, nullptr);
    blas.gemm(CUBLAS_OP_T, CUBLAS_OP_N, s.out, s.n, s.in, w.data<float>(), s.in, x.data<float>(),
              s.in, 1.f, y_ref.data<float>(), s.out);
    blas.gemm(CUBLAS_OP_T, CUBLAS_OP_N, s.out, s.n, s.in, wa.data<float>(), s.in, xa.data<float>(),
              s.in, 1.f, y_mag.data<float>(), s.out);
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    check("y", y, y_ref, y_mag, s.in);

    Tensor dx = zeros(xn), dx_ref = zeros(xn), dx_mag = zeros(xn);
    dx.fill(std::nan(""));
    kiln::cuda::linear_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), s,
                                     nullptr);
    blas.gemm(CUBLAS_OP_N, CUBLAS_OP_N, s.in, s.n, s.out, w.data<float>(), s.in, dy.data<float>(),
              s.out, 0.f, dx_ref.data<float>(), s.in);
    blas.gemm(CUBLAS_OP_N, CUBLAS_OP_N, s.in, s.n, s.out, wa.data<float>(), s.in, dya.data<float>(),
              s.out, 0.f, dx_mag.data<float>(), s.in);
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    check("dx", dx, dx_ref, dx_mag, s.out);

    // Backward-weight accumulates on both sides from the same sentinel; db = dyᵀ·1.
    Tensor dw = Tensor::full({wn}, 0.5, kiln::DType::f32, Device::cuda);
    Tensor dw_ref = Tensor::full({wn}, 0.5, kiln::DType::f32, Device::cuda), dw_mag = zeros(wn);
    Tensor db = Tensor::full({s.out}, -0.25, kiln::DType::f32, Device::cuda);
    Tensor db_ref = Tensor::full({s.out}, -0.25, kiln::DType::f32, Device::cuda);
    Tensor db_mag = zeros(s.out);
    Tensor ones = Tensor::full({s.n}, 1.0, kiln::DType::f32, Device::cuda);
    kiln::cuda::linear_backward_weight(dw.data<float>(), db.data<float>(), dy.data<float>(),
                                       x.data<float>(), s, nullptr);
    blas.gemm(CUBLAS_OP_N, CUBLAS_OP_T, s.in, s.out, s.n, x.data<float>(), s.in, dy.data<float>(),
              s.out, 1.f, dw_ref.data<float>(), s.in);
    blas.gemm(CUBLAS_OP_N, CUBLAS_OP_T, s.in, s.out, s.n, xa.data<float>(), s.in, dya.data<float>(),
              s.out, 1.f, dw_mag.data<float>(), s.in);
    blas.gemm(CUBLAS_OP_N, CUBLAS_OP_N, s.out, 1, s.n, dy.data<float>(), s.out, ones.data<float>(),
              s.n, 1.f, db_ref.data<float>(), s.out);
    blas.gemm(CUBLAS_OP_N, CUBLAS_OP_N, s.out, 1, s.n, dya.data<float>(), s.out, ones.data<float>(),
              s.n, 1.f, db_mag.data<float>(), s.out);
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    check("dw", dw, dw_ref, dw_mag, s.n);
    check("db", db, db_ref, db_mag, s.n);
  }
}
