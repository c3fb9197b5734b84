// tests/onnx/test_model.h — the model and inputs the ONNX tests export and import, and the
// tolerance two float32 evaluations of it are held to.
//
// The model is the flagship at width 1/8 on 3x64x64 inputs: five conv blocks of 8..64 channels,
// so the first Linear sees a 2x2x64 activation (its CHW column order matters), with batchnorm
// parameters and running statistics drawn away from their defaults (so folding changes weights).
#pragma once

#include <cmath>
#include <cstdint>
#include <memory>
#include <vector>

#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/fer_cnn.h"
#include "layers/linear.h"

namespace kiln::test {

inline constexpr int kOnnxC = 3, kOnnxH = 64, kOnnxW = 64, kOnnxClasses = 7;

inline std::vector<float> lcg_values(int64_t n, uint32_t seed, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(n));
  uint32_t s = seed;
  for (float& x : v) {
    s = s * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(s >> 8) / 16777216.0f;
  }
  return v;
}

inline std::unique_ptr<Sequential> make_onnx_test_net() {
  auto net = make_fer_cnn(kOnnxC, kOnnxH, kOnnxW, kOnnxClasses, 0.125, 5);
  uint32_t seed = 1;
  for (int i = 0; i < net->size(); ++i) {
    auto* bn = dynamic_cast<BatchNorm2d*>(&(*net)[i]);
    if (!bn) continue;
    const int64_t c = bn->channels();
    for (ParamRef& p : bn->params())  // weight in [0.5, 1.5], bias in [-0.2, 0.2]
      p.value->copy_from(Tensor::from_vector<float>({c}, p.name == "weight"
                                                             ? lcg_values(c, seed++, 0.5f, 1.5f)
                                                             : lcg_values(c, seed++, -0.2f, 0.2f)));
    bn->running_mean().copy_from(
        Tensor::from_vector<float>({c}, lcg_values(c, seed++, -0.5f, 0.5f)));
    bn->running_var().copy_from(Tensor::from_vector<float>({c}, lcg_values(c, seed++, 0.5f, 2.0f)));
  }
  return net;
}

// n images [n][64][64][3] in [0, 1] (Kiln's NHWC input).
inline Tensor onnx_test_input(int n, uint32_t seed = 7) {
  return Tensor::from_vector<float>({n, kOnnxH, kOnnxW, kOnnxC},
                                    lcg_values(int64_t(n) * kOnnxH * kOnnxW * kOnnxC, seed, 0, 1));
}

// NHWC -> NCHW, what an ONNX (PyTorch-style) graph reads.
inline std::vector<float> nhwc_to_nchw(const std::vector<float>& x, int n, int h, int w, int c) {
  std::vector<float> out(x.size());
  for (int i = 0; i < n; ++i)
    for (int y = 0; y < h; ++y)
      for (int xx = 0; xx < w; ++xx)
        for (int k = 0; k < c; ++k)
          out[((size_t(i) * c + k) * h + y) * w + xx] = x[((size_t(i) * h + y) * w + xx) * c + k];
  return out;
}

// The tolerance on the logits of two float32 evaluations of `net` (different summation orders,
// batchnorm folded or not): a dot product of length K in float32 is within K·u of its exact value
// relative to the magnitude of its terms (u = 2^-24, any summation order), and batchnorm applied
// separately or folded into the convolution adds about 2 roundings per element. To first order,
// with each layer's terms of the magnitude of its output (true of these normalised networks), the
// relative errors of the layers add up along the chain: eps = u · Σ_layers (K + 2), K = C_in·k·k
// for a convolution and in_features for a Linear. Each of the two evaluations is within eps, so
// they are compared with |a - b| <= atol + rtol·|b|, atol = 2·eps·max|b|, rtol = 2·eps.
inline double logit_eps(Sequential& net) {
  double sum = 0;
  for (int i = 0; i < net.size(); ++i) {
    if (auto* conv = dynamic_cast<Conv2d*>(&net[i]))
      sum += double(conv->in_channels()) * conv->kernel_size() * conv->kernel_size() + 2;
    if (auto* lin = dynamic_cast<Linear*>(&net[i])) sum += lin->in_features() + 2;
  }
  return std::ldexp(1.0, -24) * sum;
}

}  // namespace kiln::test
