// tests/gpu_native/test_cudnn_softmax.cpp — kiln::cuda::softmax_cross_entropy against cuDNN's
// log-softmax on a real GPU ([gpu]; built only into kiln_tests_gpu_native, which exits 77 — skipped
// — without a GPU).
//
// cuDNN computes log ŷ (CUDNN_SOFTMAX_LOG over each sample's K classes); the loss −mean log ŷ_label
// and the gradient (ŷ − y)/N are formed from it on the host and compared with Kiln's fused kernel,
// for the flagship's 7 classes at the training batch (256) and a ragged one.
#include <catch2/catch.hpp>

#if defined(KILN_HAVE_CUDNN)

#include <cudnn.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "core/tensor.h"
#include "kernels/softmax_xent.h"
#include "tests/support/compare.h"
#include "tests/support/cudnn.h"
#include "tests/support/random.h"

namespace {

using kiln::Device;
using kiln::Tensor;
using namespace kiln::test;

}  // namespace

TEST_CASE("cuda::softmax_cross_entropy agrees with cuDNN's log-softmax", "[gpu]") {
  CudnnHandle dnn;
  for (int n : {256, 1000}) {
    const int k = 7;
    INFO("n=" << n << " classes=" << k);
    const Tensor logits =
        uniform_tensor({static_cast<int64_t>(n) * k}, 21, Device::cuda, -8.f, 8.f);
    std::vector<int32_t> labels(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) labels[static_cast<size_t>(i)] = (i * 5 + 3) % k;
    const Tensor lab = Tensor::from_vector<int32_t>({n}, labels, Device::cuda);
    Tensor loss({1}, kiln::DType::f32, Device::cuda), dz({n * k}, kiln::DType::f32, Device::cuda);
    Tensor correct({n}, kiln::DType::i32, Device::cuda);
    kiln::cuda::softmax_cross_entropy(loss.data<float>(), dz.data<float>(), correct.data<int32_t>(),
                                      logits.data<float>(), lab.data<int32_t>(),
                                      kiln::SoftmaxXentShape{n, k}, nullptr);

    TensorDesc desc;
    CUDNN_OK(cudnnSetTensor4dDescriptor(desc.d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, k, 1, 1));
    Tensor logp({n * k}, kiln::DType::f32, Device::cuda);
    const float one = 1.f, zero = 0.f;
    CUDNN_OK(cudnnSoftmaxForward(dnn.d, CUDNN_SOFTMAX_LOG, CUDNN_SOFTMAX_MODE_INSTANCE, &one,
                                 desc.d, logits.data<float>(), &zero, desc.d, logp.data<float>()));
    const std::vector<float> lp = logp.to_vector<float>(), z = logits.to_vector<float>();
    double ref_loss = 0;
    std::vector<double> ref_dz(static_cast<size_t>(n * k));
    std::vector<int32_t> ref_correct(static_cast<size_t>(n));
    for (int i = 0; i < n; ++i) {
      const int label = labels[static_cast<size_t>(i)];
      ref_loss -= lp[static_cast<size_t>(i * k + label)];
      int best = 0;
      for (int j = 0; j < k; ++j) {
        const size_t o = static_cast<size_t>(i * k + j);
        ref_dz[o] = (std::exp(static_cast<double>(lp[o])) - (j == label ? 1.0 : 0.0)) / n;
        if (z[o] > z[static_cast<size_t>(i * k + best)]) best = j;
      }
      ref_correct[static_cast<size_t>(i)] = best == label ? 1 : 0;
    }
    ref_loss /= n;
    const std::vector<float> got_loss = loss.to_vector<float>();
    kiln::test::expect_close("loss", got_loss.data(), &ref_loss, 1,
                             1e-5 * (1 + std::fabs(ref_loss)), 0);
    kiln::test::expect_close("dlogits", dz.to_vector<float>(), ref_dz, 1e-5 / n, 0);
    CHECK(correct.to_vector<int32_t>() == ref_correct);
  }
}

#endif  // KILN_HAVE_CUDNN
