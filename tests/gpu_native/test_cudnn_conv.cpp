// tests/gpu_native/test_cudnn_conv.cpp — kiln::cuda::conv2d_* against cuDNN on a real GPU ([gpu]).
//
// Same layouts on both sides: NHWC tensors, filters in cuDNN's NHWC filter format [K][R][S][C]
// (= Kiln's [C_out][KH][KW][C_in]). cuDNN runs in CUDNN_FMA_MATH (no TF32 tensor cores), so both
// sides compute in fp32 with FMA and differ only in summation order: each is within
// (K + 8)·2⁻²⁴·Σ|a·b| of the exact value, so they agree within twice that. Σ|a·b| is obtained by
// running cuDNN on |x|, |w|, |dy|. dw and db accumulate on both sides (cuDNN with beta = 1) from
// the same sentinel.
#include <catch2/catch.hpp>

#if defined(KILN_HAVE_CUDNN)
#include <cudnn.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/tensor.h"
#include "kernels/conv2d.h"
#include "tests/support/compare.h"
#include "tests/support/cudnn.h"
#include "tests/support/random.h"
#include "tests/support/tensors.h"

namespace {

using kiln::Conv2dShape;
using kiln::Device;
using kiln::Tensor;
using namespace kiln::test;

// cuDNN descriptors of one convolution, plus a workspace.
struct Cudnn {
  cudnnHandle_t h{};
  cudnnTensorDescriptor_t x{}, y{}, b{};
  cudnnFilterDescriptor_t w{};
  cudnnConvolutionDescriptor_t conv{};
  explicit Cudnn(const Conv2dShape& s) {
    CUDNN_OK(cudnnCreate(&h));
    CUDNN_OK(cudnnCreateTensorDescriptor(&x));
    CUDNN_OK(cudnnCreateTensorDescriptor(&y));
    CUDNN_OK(cudnnCreateTensorDescriptor(&b));
    CUDNN_OK(cudnnCreateFilterDescriptor(&w));
    CUDNN_OK(cudnnCreateConvolutionDescriptor(&conv));
    CUDNN_OK(
        cudnnSetTensor4dDescriptor(x, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n, s.c_in, s.h, s.w));
    CUDNN_OK(cudnnSetTensor4dDescriptor(y, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n, s.c_out,
                                        s.out_h(), s.out_w()));
    CUDNN_OK(cudnnSetTensor4dDescriptor(b, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, 1, s.c_out, 1, 1));
    CUDNN_OK(cudnnSetFilter4dDescriptor(w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NHWC, s.c_out, s.c_in,
                                        s.kh, s.kw));
    CUDNN_OK(cudnnSetConvolution2dDescriptor(conv, s.pad_h, s.pad_w, s.stride_h, s.stride_w, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    CUDNN_OK(cudnnSetConvolutionMathType(conv, CUDNN_FMA_MATH));
  }
  ~Cudnn() {
    cudnnDestroyConvolutionDescriptor(conv);
    cudnnDestroyFilterDescriptor(w);
    cudnnDestroyTensorDescriptor(b);
    cudnnDestroyTensorDescriptor(y);
    cudnnDestroyTensorDescriptor(x);
    cudnnDestroy(h);
  }
  void forward(float* yp, const float* xp, const float* wp) {
    cudnnConvolutionFwdAlgoPerf_t perf[8];
    int count = 0;
    CUDNN_OK(cudnnGetConvolutionForwardAlgorithm_v7(h, x, w, conv, y, 8, &count, perf));
    REQUIRE(count > 0);
    size_t bytes = 0;
    CUDNN_OK(cudnnGetConvolutionForwardWorkspaceSize(h, x, w, conv, y, perf[0].algo, &bytes));
    Tensor ws({static_cast<int64_t>(bytes / 4 + 1)}, kiln::DType::f32, Device::cuda);
    const float one = 1.f, zero = 0.f;
    CUDNN_OK(cudnnConvolutionForward(h, &one, x, xp, w, wp, conv, perf[0].algo, ws.data<float>(),
                                     bytes, &zero, y, yp));
  }
  void backward_data(float* dxp, const float* dyp, const float* wp) {
    cudnnConvolutionBwdDataAlgoPerf_t perf[8];
    int count = 0;
    CUDNN_OK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, w, y, conv, x, 8, &count, perf));
    REQUIRE(count > 0);
    size_t bytes = 0;
    CUDNN_OK(cudnnGetConvolutionBackwardDataWorkspaceSize(h, w, y, conv, x, perf[0].algo, &bytes));
    Tensor ws({static_cast<int64_t>(bytes / 4 + 1)}, kiln::DType::f32, Device::cuda);
    const float one = 1.f, zero = 0.f;
    CUDNN_OK(cudnnConvolutionBackwardData(h, &one, w, wp, y, dyp, conv, perf[0].algo,
                                          ws.data<float>(), bytes, &zero, x, dxp));
  }
  // dw += ∂, db += Σ dy (beta = 1: accumulate, as Kiln does).
  void backward_filter(float* dwp, float* dbp, const float* dyp, const float* xp) {
    cudnnConvolutionBwdFilterAlgoPerf_t perf[8];
    int count = 0;
    CUDNN_OK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(h, x, y, conv, w, 8, &count, perf));
    REQUIRE(count > 0);
    size_t bytes = 0;
    CUDNN_OK(
        cudnnGetConvolutionBackwardFilterWorkspaceSize(h, x, y, conv, w, perf[0].algo, &bytes));
    Tensor ws({static_cast<int64_t>(bytes / 4 + 1)}, kiln::DType::f32, Device::cuda);
    const float one = 1.f;
    CUDNN_OK(cudnnConvolutionBackwardFilter(h, &one, x, xp, y, dyp, conv, perf[0].algo,
                                            ws.data<float>(), bytes, &one, w, dwp));
    CUDNN_OK(cudnnConvolutionBackwardBias(h, &one, y, dyp, &one, b, dbp));
  }
};

void check(const std::string& what, const Tensor& got, const Tensor& ref, const Tensor& mag,
           int64_t k) {
  const std::vector<float> g = got.to_vector<float>(), r = ref.to_vector<float>();
  const double atol =
      2.0 * (static_cast<double>(k) + 8.0) * kU * kiln::test::max_abs(mag.to_vector<float>());
  kiln::test::expect_close(what, g, r, atol, 4 * kU);
}

Conv2dShape shape(int n, int h, int w, int ci, int co, int k, int stride, int pad) {
  Conv2dShape s;
  s.n = n, s.h = h, s.w = w, s.c_in = ci, s.c_out = co, s.kh = k, s.kw = k;
  s.stride_h = s.stride_w = stride, s.pad_h = s.pad_w = pad;
  return s;
}

}  // namespace

TEST_CASE("conv2d agrees with cuDNN (fp32, no TF32) on the flagship's layers", "[gpu][conv2d]") {
  // The flagship at batch 16 (48×48 input), plus odd shapes through the general and scalar paths.
  const std::vector<Conv2dShape> shapes = {
      shape(16, 48, 48, 1, 64, 3, 1, 1),    shape(16, 24, 24, 64, 128, 3, 1, 1),
      shape(16, 12, 12, 128, 256, 3, 1, 1), shape(16, 6, 6, 256, 512, 3, 1, 1),
      shape(16, 3, 3, 512, 512, 3, 1, 1),   shape(3, 17, 13, 3, 24, 5, 2, 2),
      shape(2, 15, 11, 6, 10, 3, 2, 0),     shape(4, 20, 20, 32, 48, 1, 1, 0),
  };
  uint32_t seed = 7;
  for (const Conv2dShape& s : shapes) {
    INFO("shape n=" << s.n << " " << s.h << "x" << s.w << " " << s.c_in << "->" << s.c_out << " k"
                    << s.kh << " s" << s.stride_h << " p" << s.pad_h);
    const int64_t xn = int64_t{s.n} * s.h * s.w * s.c_in;
    const int64_t yn = int64_t{s.n} * s.out_h() * s.out_w() * s.c_out;
    const int64_t wn = int64_t{s.c_out} * s.kh * s.kw * s.c_in;
    const auto xv = uniform_floats(xn, seed++, -1.f, 1.f),
               wv = uniform_floats(wn, seed++, -1.f, 1.f);
    const auto dyv = uniform_floats(yn, seed++, -1.f, 1.f);
    Tensor x = kiln::test::device_tensor(xv), w = kiln::test::device_tensor(wv),
           dy = kiln::test::device_tensor(dyv);
    Tensor xa = kiln::test::device_tensor(abs_of(xv)), wa = kiln::test::device_tensor(abs_of(wv)),
           dya = kiln::test::device_tensor(abs_of(dyv));
    Cudnn cd(s);

    Tensor y({yn}, kiln::DType::f32, Device::cuda), y_ref({yn}, kiln::DType::f32, Device::cuda),
        y_mag({yn}, kiln::DType::f32, Device::cuda);
    y.fill(std::nan(""));
    kiln::cuda::conv2d_forward(y.data<float>(), x.data<float>(), w.data<float>(), nullptr, s,
                               nullptr);
    cd.forward(y_ref.data<float>(), x.data<float>(), w.data<float>());
    cd.forward(y_mag.data<float>(), xa.data<float>(), wa.data<float>());
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    check("y", y, y_ref, y_mag, int64_t{s.kh} * s.kw * s.c_in);

    Tensor dx({xn}, kiln::DType::f32, Device::cuda), dx_ref({xn}, kiln::DType::f32, Device::cuda),
        dx_mag({xn}, kiln::DType::f32, Device::cuda);
    dx.fill(std::nan(""));
    kiln::cuda::conv2d_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), s,
                                     nullptr);
    cd.backward_data(dx_ref.data<float>(), dy.data<float>(), w.data<float>());
    cd.backward_data(dx_mag.data<float>(), dya.data<float>(), wa.data<float>());
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    check("dx", dx, dx_ref, dx_mag, int64_t{s.kh} * s.kw * s.c_out);

    Tensor dw = Tensor::full({wn}, 0.5, kiln::DType::f32, Device::cuda);
    Tensor dw_ref = Tensor::full({wn}, 0.5, kiln::DType::f32, Device::cuda);
    Tensor dw_mag = Tensor::full({wn}, 0.0, kiln::DType::f32, Device::cuda);
    Tensor db = Tensor::full({s.c_out}, -0.25, kiln::DType::f32, Device::cuda);
    Tensor db_ref = Tensor::full({s.c_out}, -0.25, kiln::DType::f32, Device::cuda);
    Tensor db_mag = Tensor::full({s.c_out}, 0.0, kiln::DType::f32, Device::cuda);
    kiln::cuda::conv2d_backward_filter(dw.data<float>(), db.data<float>(), dy.data<float>(),
                                       x.data<float>(), s, nullptr);
    cd.backward_filter(dw_ref.data<float>(), db_ref.data<float>(), dy.data<float>(),
                       x.data<float>());
    cd.backward_filter(dw_mag.data<float>(), db_mag.data<float>(), dya.data<float>(),
                       xa.data<float>());
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
    const int64_t k = int64_t{s.n} * s.out_h() * s.out_w();
    check("dw", dw, dw_ref, dw_mag, k);
    check("db", db, db_ref, db_mag, k);
  }
}

#endif  // KILN_HAVE_CUDNN
