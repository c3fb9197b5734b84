// tests/gpu_native/test_cudnn_batchnorm.cpp — kiln::cuda batchnorm against cuDNN's spatial
// batchnorm on a real GPU ([gpu]; built only into kiln_tests_gpu_native, which exits 77 — skipped —
// without a GPU).
//
// cuDNN's legacy batchnorm (deprecated in cuDNN 9, hence -Wno-deprecated-declarations on
// kiln_tests_gpu_native) has the same conventions as Kiln: biased variance to normalise, unbiased
// for the running variance, running = (1 − factor)·running + factor·batch, saved inverse std; with
// betaParamDiff = 1 it accumulates dgamma/dbeta as Kiln does. Tolerances are relative to the
// largest magnitude of each output (both sides are float with their own summation orders).
#include <catch2/catch.hpp>

#if defined(KILN_HAVE_CUDNN)

#include <cudnn.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/batchnorm.h"
#include "tests/support/compare.h"
#include "tests/support/cudnn.h"
#include "tests/support/random.h"

namespace {

using kiln::Device;
using kiln::Tensor;
using namespace kiln::test;

struct Shape4 {
  int n, h, w, c;
};

}  // namespace

TEST_CASE("cuda::batchnorm forward/backward agree with cuDNN (NHWC, spatial)", "[gpu]") {
  const std::vector<Shape4> shapes = {
      {8, 48, 48, 64}, {8, 24, 24, 128}, {8, 12, 12, 256},
      {8, 6, 6, 512},  {8, 3, 3, 512},   {3, 7, 5, 3},  // odd channel count: scalar path
  };
  constexpr double kEps = 1e-5, kMomentum = 0.1;
  CudnnHandle dnn;
  for (const Shape4& s : shapes) {
    INFO("x [" << s.n << "," << s.h << "," << s.w << "," << s.c << "]");
    const int64_t m = static_cast<int64_t>(s.n) * s.h * s.w, total = m * s.c;
    TensorDesc x_desc, bn_desc;
    CUDNN_OK(cudnnSetTensor4dDescriptor(x_desc.d, CUDNN_TENSOR_NHWC, CUDNN_DATA_FLOAT, s.n, s.c,
                                        s.h, s.w));
    CUDNN_OK(cudnnDeriveBNTensorDescriptor(bn_desc.d, x_desc.d, CUDNN_BATCHNORM_SPATIAL));

    const Tensor x = uniform_tensor({total}, 1, Device::cuda, -1.f, 3.f);
    const Tensor dy = uniform_tensor({total}, 2, Device::cuda, -1.f, 1.f);
    const Tensor gamma = uniform_tensor({s.c}, 3, Device::cuda, 0.5f, 1.5f);
    const Tensor beta = uniform_tensor({s.c}, 4, Device::cuda, -1.f, 1.f);
    const Tensor rm0 = uniform_tensor({s.c}, 5, Device::cuda, -1.f, 1.f),
                 rv0 = uniform_tensor({s.c}, 6, Device::cuda, 0.5f, 1.5f);
    const Tensor dg0 = uniform_tensor({s.c}, 7, Device::cuda, -1.f, 1.f),
                 db0 = uniform_tensor({s.c}, 8, Device::cuda, -1.f, 1.f);

    // Kiln.
    Tensor y({total}, kiln::DType::f32, Device::cuda), sm({s.c}, kiln::DType::f32, Device::cuda),
        si({s.c}, kiln::DType::f32, Device::cuda), dx({total}, kiln::DType::f32, Device::cuda);
    Tensor rm = rm0.clone(), rv = rv0.clone(), dg = dg0.clone(), db = db0.clone();
    kiln::cuda::batchnorm_forward_train(y.data<float>(), sm.data<float>(), si.data<float>(),
                                        rm.data<float>(), rv.data<float>(), x.data<float>(),
                                        gamma.data<float>(), beta.data<float>(), {m, s.c}, kEps,
                                        kMomentum, nullptr);
    kiln::cuda::batchnorm_backward(dx.data<float>(), dg.data<float>(), db.data<float>(),
                                   dy.data<float>(), x.data<float>(), gamma.data<float>(),
                                   sm.data<float>(), si.data<float>(), {m, s.c}, nullptr);
    Tensor ye({total}, kiln::DType::f32, Device::cuda);
    kiln::cuda::batchnorm_forward_eval(ye.data<float>(), x.data<float>(), gamma.data<float>(),
                                       beta.data<float>(), rm0.data<float>(), rv0.data<float>(),
                                       {m, s.c}, kEps, nullptr);

    // cuDNN.
    Tensor cy({total}, kiln::DType::f32, Device::cuda), csm({s.c}, kiln::DType::f32, Device::cuda),
        csi({s.c}, kiln::DType::f32, Device::cuda), cdx({total}, kiln::DType::f32, Device::cuda);
    Tensor crm = rm0.clone(), crv = rv0.clone(), cdg = dg0.clone(), cdb = db0.clone();
    const float one = 1.f, zero = 0.f;
    CUDNN_OK(cudnnBatchNormalizationForwardTraining(
        dnn.d, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc.d, x.data<float>(), x_desc.d,
        cy.data<float>(), bn_desc.d, gamma.data<float>(), beta.data<float>(), kMomentum,
        crm.data<float>(), crv.data<float>(), kEps, csm.data<float>(), csi.data<float>()));
    CUDNN_OK(cudnnBatchNormalizationBackward(
        dnn.d, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &one, x_desc.d, x.data<float>(),
        x_desc.d, dy.data<float>(), x_desc.d, cdx.data<float>(), bn_desc.d, gamma.data<float>(),
        cdg.data<float>(), cdb.data<float>(), kEps, csm.data<float>(), csi.data<float>()));
    Tensor cye({total}, kiln::DType::f32, Device::cuda);
    CUDNN_OK(cudnnBatchNormalizationForwardInference(
        dnn.d, CUDNN_BATCHNORM_SPATIAL, &one, &zero, x_desc.d, x.data<float>(), x_desc.d,
        cye.data<float>(), bn_desc.d, gamma.data<float>(), beta.data<float>(), rm0.data<float>(),
        rv0.data<float>(), kEps));

    expect_rel("y", y, cy, 1e-5);
    expect_rel("save_mean", sm, csm, 1e-5);
    expect_rel("save_invstd", si, csi, 1e-5);
    expect_rel("running_mean", rm, crm, 1e-5);
    expect_rel("running_var", rv, crv, 1e-5);
    expect_rel("dx", dx, cdx, 1e-4);
    expect_rel("dgamma", dg, cdg, 1e-4);
    expect_rel("dbeta", db, cdb, 1e-4);
    expect_rel("y (eval)", ye, cye, 1e-5);
  }
}

#endif  // KILN_HAVE_CUDNN
