// bench/flagship.h — the flagship network's layer shapes (layers/fer_cnn.h), for the kernel
// benchmarks: five blocks conv 3x3 pad 1 -> batchnorm -> LeakyReLU -> maxpool 2x2 -> dropout, then
// linear 512*s -> 1024 -> 512 -> 7, every hidden width scaled by the width multiplier.
#pragma once

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/conv2d.h"
#include "kernels/linear.h"
#include "kernels/pooling.h"
#include "layers/fer_cnn.h"

namespace kiln::bench {

// One input preset of the report: 1x48x48 (FER2013) or 3x128x128.
struct Input {
  int channels, height, width;
  std::string name() const {
    return std::to_string(channels) + "x" + std::to_string(height) + "x" + std::to_string(width);
  }
};
inline const std::vector<Input>& inputs() {
  static const std::vector<Input> all{{1, 48, 48}, {3, 128, 128}};
  return all;
}

// The conv layer `block` (0..4) at batch n: its input is the pooled output of the block before.
inline Conv2dShape conv_shape(const Input& in, int n, int block, double width = 1.0) {
  const std::vector<int> w = fer_cnn_widths(width);
  Conv2dShape s;
  s.n = n;
  s.h = in.height >> block;
  s.w = in.width >> block;
  s.c_in = block == 0 ? in.channels : w[block - 1];
  s.c_out = w[block];
  s.kh = s.kw = 3;
  s.pad_h = s.pad_w = 1;
  return s;
}

// The 2x2 pooling after conv `block`: input is the conv's output.
inline Pool2dShape pool_shape(const Input& in, int n, int block, double width = 1.0) {
  const Conv2dShape c = conv_shape(in, n, block, width);
  Pool2dShape p;
  p.n = n;
  p.h = c.out_h();
  p.w = c.out_w();
  p.c = c.c_out;
  return p;
}

// The three linear layers (0..2): 512*s -> 1024 -> 512 -> 7, s the pixels left after five poolings.
inline LinearShape linear_shape(const Input& in, int n, int layer, double width = 1.0,
                                int classes = 7) {
  const std::vector<int> w = fer_cnn_widths(width);
  const int pixels = (in.height >> 5) * (in.width >> 5);
  const int dims[4] = {w[4] * pixels, w[5], w[6], classes};
  return LinearShape{n, dims[layer], dims[layer + 1]};
}

inline double conv_flops(const Conv2dShape& s) {
  return 2.0 * s.n * s.out_h() * s.out_w() * s.c_out * s.c_in * s.kh * s.kw;
}
inline double linear_flops(const LinearShape& s) {
  return 2.0 * s.n * s.in * s.out;
}

// The flagship's parameter count (conv weights and biases, batchnorm gamma and beta, linear
// weights and biases), for the optimizer benchmarks.
inline int64_t param_count(const Input& in, double width = 1.0) {
  int64_t total = 0;
  for (int b = 0; b < 5; ++b) {
    const Conv2dShape s = conv_shape(in, 1, b, width);
    total += int64_t(s.c_out) * 9 * s.c_in + s.c_out + 2 * s.c_out;
  }
  for (int l = 0; l < 3; ++l) {
    const LinearShape s = linear_shape(in, 1, l, width);
    total += int64_t(s.out) * s.in + s.out;
  }
  return total;
}

}  // namespace kiln::bench
