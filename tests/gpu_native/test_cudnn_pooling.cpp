// tests/gpu_native/test_cudnn_pooling.cpp — kiln::cuda max pooling against cuDNN's max pooling on
// a real GPU ([gpu]; built only into kiln_tests_gpu_native, which exits 77 — skipped — without a
// GPU).
//
// Inputs are distinct random values (no ties, whose routing cuDNN leaves open), so y and dx must
// match exactly for non-overlapping windows; the overlapping case uses
// CUDNN_POOLING_MAX_DETERMINISTIC and allows float rounding of the summed gradients.
#include <catch2/catch.hpp>

#if defined(KILN_HAVE_CUDNN)

#include <cudnn.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/pooling.h"
#include "tests/support/compare.h"
#include "tests/support/cudnn.h"
#include "tests/support/random.h"

namespace {

using kiln::Device;
using kiln::Tensor;
using namespace kiln::test;

}  // namespace

TEST_CASE("cuda::maxpool2d forward/backward agree with cuDNN (NHWC)", "[gpu]") {
  std::vector<kiln::Pool2dShape> shapes;
  auto add = [&](int n, int h, int w, int c, int k, int stride, int pad) {
    kiln::Pool2dShape s;
    s.n = n, s.h = h, s.w = w, s.c = c, s.kh = s.kw = k, s.stride_h = s.stride_w = stride;
    s.pad_h = s.pad_w = pad;
    shapes.push_back(s);
  };
  add(8, 48, 48, 64, 2, 2, 0);  // the flagship's five pooling layers at batch 8
  add(8, 24, 24, 128, 2, 2, 0);
  add(8, 12, 12, 256, 2, 2, 0);
  add(8, 6, 6, 512, 2, 2, 0);
  add(8, 3, 3, 512, 2, 2, 0);
  add(2, 9, 7, 3, 2, 2, 0);     // odd channels and sizes
  add(2, 15, 15, 16, 3, 2, 1);  // overlapping, padded
  CudnnHandle dnn;
  for (const kiln::Pool2dShape& s : shapes) {
    INFO("x [" << s.n << "," << s.h << "," << s.w << "," << s.c << "] k " << s.kh << " stride "
               << s.stride_h << " pad " << s.pad_h);
    const bool overlap = s.kh > s.stride_h;
    const int oh = s.out_h(), ow = s.out_w();
    const int64_t in = static_cast<int64_t>(s.n) * s.h * s.w * s.c;
    const int64_t out = static_cast<int64_t>(s.n) * oh * ow * s.c;
    TensorDesc x_desc, y_desc;
    CUDNN_OK(cudnnSetTensor4dDescriptor(x_desc.d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n, s.c,
                                        s.h, s.w));
    CUDNN_OK(cudnnSetTensor4dDescriptor(y_desc.d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n, s.c, oh,
                                        ow));
    PoolDesc pool;
    CUDNN_OK(cudnnSetPooling2dDescriptor(
        pool.d, overlap ? CUDNN_POOLING_MAX_DETERMINISTIC : CUDNN_POOLING_MAX,
        CUDNN_NOT_PROPAGATE_NAN, s.kh, s.kw, s.pad_h, s.pad_w, s.stride_h, s.stride_w));

    const Tensor x = uniform_tensor({in}, 11, Device::cuda, -3.f, 3.f);
    const Tensor dy = uniform_tensor({out}, 12, Device::cuda, -1.f, 1.f);
    Tensor y({out}, kiln::DType::f32, Device::cuda), dx({in}, kiln::DType::f32, Device::cuda);
    Tensor argmax({out}, kiln::DType::u8, Device::cuda);
    kiln::cuda::maxpool2d_forward(y.data<float>(), argmax.data<uint8_t>(), x.data<float>(), s,
                                  nullptr);
    kiln::cuda::maxpool2d_backward(dx.data<float>(), dy.data<float>(), argmax.data<uint8_t>(), s,
                                   nullptr);

    Tensor cy({out}, kiln::DType::f32, Device::cuda), cdx({in}, kiln::DType::f32, Device::cuda);
    const float one = 1.f, zero = 0.f;
    CUDNN_OK(cudnnPoolingForward(dnn.d, pool.d, &one, x_desc.d, x.data<float>(), &zero, y_desc.d,
                                 cy.data<float>()));
    CUDNN_OK(cudnnPoolingBackward(dnn.d, pool.d, &one, y_desc.d, cy.data<float>(), y_desc.d,
                                  dy.data<float>(), x_desc.d, x.data<float>(), &zero, x_desc.d,
                                  cdx.data<float>()));
    expect_rel("y", y, cy, 0);
    expect_rel("dx", dx, cdx, overlap ? 1e-6 : 0);
  }
}

#endif  // KILN_HAVE_CUDNN
