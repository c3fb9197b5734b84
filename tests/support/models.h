// tests/support/models.h — small networks of the flagship's kinds of layers, for tests that need a
// whole network (with BatchNorm statistics that are not the initial ones) but not the flagship.
#pragma once

#include <memory>
#include <random>
#include <vector>

#include "core/tensor.h"
#include "layers/activation.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/linear.h"
#include "layers/pooling.h"
#include "layers/sequential.h"

namespace kiln::test {

// Conv(c,6,3,p1) BN LeakyReLU MaxPool(2) Conv(6,8,3,p1) LeakyReLU Flatten Linear(8*h/2*w/2, 3):
// layers 0..7. BatchNorm's running statistics are made non-trivial by a few train-mode forwards.
inline std::unique_ptr<Sequential> small_cnn(int c, int h, int w, DType dtype, uint64_t seed) {
  auto net = std::make_unique<Sequential>();
  net->emplace<Conv2d>(c, 6, 3, 1, 1);
  net->emplace<BatchNorm2d>(6);
  net->emplace<LeakyReLU>(0.01);
  net->emplace<MaxPool2d>(2);
  net->emplace<Conv2d>(6, 8, 3, 1, 1);
  net->emplace<LeakyReLU>(0.01);
  net->emplace<Flatten>();
  net->emplace<Linear>(8 * (h / 2) * (w / 2), 3);
  net->to(dtype);
  net->init(seed);
  net->set_input_shape({1, h, w, c});
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> u(0, 1);
  for (int k = 0; k < 3; ++k) {
    std::vector<double> v(size_t(4 * h * w * c));
    for (double& x : v) x = u(rng);
    if (dtype == DType::f64) {
      const Tensor x = Tensor::from_vector<double>({4, h, w, c}, v);
      net->forward(x, Mode::train);
    } else {
      const Tensor x =
          Tensor::from_vector<float>({4, h, w, c}, std::vector<float>(v.begin(), v.end()));
      net->forward(x, Mode::train);
    }
  }
  return net;
}

}  // namespace kiln::test
