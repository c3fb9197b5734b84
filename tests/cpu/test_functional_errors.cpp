// tests/cpu/test_functional_errors.cpp — bad arguments to the functional API of conv2d, batchnorm,
// max pooling and LeakyReLU throw kiln::Error with a message naming the op and the shapes.
#include <catch2/catch.hpp>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/activation.h"
#include "kernels/batchnorm.h"
#include "kernels/conv2d.h"
#include "kernels/pooling.h"

using Catch::Contains;
using kiln::Device;
using kiln::DType;
using kiln::Tensor;

TEST_CASE("zero-sized dimensions are rejected when the tensor is made", "[cpu]") {
  CHECK_THROWS_WITH(Tensor({2, 0, 5, 3}), Contains("positive") && Contains("[2, 0, 5, 3]"));
  CHECK_THROWS_AS(Tensor({0}), kiln::Error);
}

TEST_CASE("conv2d rejects bad arguments, naming the op and the shapes", "[cpu]") {
  Tensor x({2, 5, 5, 3}), w({4, 3, 3, 3}), b({4}), y({2, 3, 3, 4});
  CHECK_NOTHROW(kiln::conv2d_forward(y, x, w, &b, {}));
  // Wrong channel count between x and w.
  Tensor w2({4, 3, 3, 2});
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x, w2, &b, {}),
                    Contains("conv2d_forward") && Contains("[2, 5, 5, 3]") &&
                        Contains("[4, 3, 3, 2]") && Contains("input channels"));
  // Output of the wrong shape (padding 1 would keep 5x5).
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x, w, &b, {1, 1, 1, 1}), Contains("conv2d_forward") &&
                                                                         Contains("[2, 3, 3, 4]") &&
                                                                         Contains("[2, 5, 5, 4]"));
  // Bias of the wrong size.
  Tensor b3({3});
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x, w, &b3, {}),
                    Contains("conv2d_forward") && Contains("b [3]"));
  // Mixed dtypes, and a dtype that is not floating point.
  Tensor x64({2, 5, 5, 3}, DType::f64);
  CHECK_THROWS_WITH(
      kiln::conv2d_forward(y, x64, w, &b, {}),
      Contains("conv2d_forward") && Contains("f64") && Contains("f32") && Contains("[2, 5, 5, 3]"));
  Tensor xi({2, 5, 5, 3}, DType::i32), yi({2, 3, 3, 4}, DType::i32), wi({4, 3, 3, 3}, DType::i32);
  CHECK_THROWS_WITH(kiln::conv2d_forward(yi, xi, wi, nullptr, {}),
                    Contains("conv2d_forward") && Contains("i32"));
  // Not NHWC 4-D; stride 0; a kernel larger than the padded input.
  Tensor x3({5, 5, 3});
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x3, w, &b, {}),
                    Contains("conv2d_forward") && Contains("[5, 5, 3]"));
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x, w, &b, {0, 1, 0, 0}),
                    Contains("conv2d_forward") && Contains("stride"));
  Tensor wbig({4, 7, 7, 3});
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x, wbig, &b, {}), Contains("conv2d_forward") &&
                                                                  Contains("[4, 7, 7, 3]") &&
                                                                  Contains("does not fit"));
  // Backward ops check dy against the shape implied by dx / x and w.
  Tensor dx({2, 5, 5, 3}), dy_bad({2, 4, 3, 4}), dw({4, 3, 3, 3});
  CHECK_THROWS_WITH(
      kiln::conv2d_backward_data(dx, dy_bad, w, {}),
      Contains("conv2d_backward_data") && Contains("[2, 4, 3, 4]") && Contains("[2, 3, 3, 4]"));
  CHECK_THROWS_WITH(kiln::conv2d_backward_filter(dw, &b, dy_bad, x, {}),
                    Contains("conv2d_backward_filter") && Contains("[2, 4, 3, 4]"));
  Tensor dw2({4, 3, 3, 5});
  CHECK_THROWS_WITH(
      kiln::conv2d_backward_filter(dw2, &b, y, x, {}),
      Contains("conv2d_backward_filter") && Contains("[4, 3, 3, 5]") && Contains("input channels"));
}

TEST_CASE("batchnorm rejects bad arguments, naming the op and the shapes", "[cpu]") {
  Tensor x({2, 3, 3, 4}), y({2, 3, 3, 4}), g({4}), b({4}), rm({4}), rv({4}), sm({4}), si({4});
  CHECK_NOTHROW(kiln::batchnorm_forward_train(y, sm, si, rm, rv, x, g, b));
  // Wrong channel count of a per-channel tensor.
  Tensor g5({5});
  CHECK_THROWS_WITH(kiln::batchnorm_forward_train(y, sm, si, rm, rv, x, g5, b),
                    Contains("batchnorm_forward_train") && Contains("gamma [5]") &&
                        Contains("[2, 3, 3, 4]") && Contains("4 elements"));
  // Output shape differs from x.
  Tensor y2({2, 3, 4, 3});
  CHECK_THROWS_WITH(
      kiln::batchnorm_forward_eval(y2, x, g, b, rm, rv),
      Contains("batchnorm_forward_eval") && Contains("[2, 3, 4, 3]") && Contains("[2, 3, 3, 4]"));
  // A per-channel tensor of another dtype.
  Tensor rv64({4}, DType::f64);
  CHECK_THROWS_WITH(kiln::batchnorm_forward_train(y, sm, si, rm, rv64, x, g, b),
                    Contains("batchnorm_forward_train") && Contains("running_var [4] f64"));
  // Activations of mixed dtypes.
  Tensor dy64({2, 3, 3, 4}, DType::f64), dx({2, 3, 3, 4}), dg({4}), db({4});
  CHECK_THROWS_WITH(kiln::batchnorm_backward(dx, dg, db, dy64, x, g, sm, si),
                    Contains("batchnorm_backward") && Contains("f64") && Contains("[2, 3, 3, 4]"));
  // One value per channel cannot be trained on (PyTorch refuses too).
  Tensor x1({1, 4}), y1({1, 4});
  CHECK_THROWS_WITH(kiln::batchnorm_forward_train(y1, sm, si, rm, rv, x1, g, b),
                    Contains("batchnorm_forward_train") && Contains("[1, 4]"));
  // Rank 1 has no channel axis to normalise over.
  Tensor xr({4}), yr({4});
  CHECK_THROWS_WITH(kiln::batchnorm_forward_eval(yr, xr, g, b, rm, rv),
                    Contains("batchnorm_forward_eval") && Contains("x [4]"));
  CHECK_THROWS_WITH(kiln::batchnorm_forward_train(y, sm, si, rm, rv, x, g, b, 1e-5, 1.5),
                    Contains("batchnorm_forward_train") && Contains("momentum"));
  CHECK_THROWS_WITH(kiln::batchnorm_backward_eval(dx, x, g5, rv),
                    Contains("batchnorm_backward_eval") && Contains("gamma [5]"));
}

TEST_CASE("maxpool rejects bad arguments, naming the op and the shapes", "[cpu]") {
  Tensor x({2, 6, 6, 3}), y({2, 3, 3, 3}), a({2, 3, 3, 3}, DType::u8);
  CHECK_NOTHROW(kiln::maxpool2d_forward(y, a, x, {}));
  // A window of more than 256 elements does not fit the uint8 argmax.
  Tensor xl({1, 20, 20, 1}), yl({1, 4, 5, 1}), al({1, 4, 5, 1}, DType::u8);
  CHECK_THROWS_WITH(kiln::maxpool2d_forward(yl, al, xl, {17, 16, 1, 1, 0, 0}),
                    Contains("maxpool2d_forward") && Contains("[1, 20, 20, 1]") &&
                        Contains("272") && Contains("256"));
  // argmax must be u8.
  Tensor af({2, 3, 3, 3});
  CHECK_THROWS_WITH(kiln::maxpool2d_forward(y, af, x, {}),
                    Contains("maxpool2d_forward") && Contains("argmax [2, 3, 3, 3] f32"));
  // Output of the wrong shape.
  Tensor y4({2, 4, 4, 3}), a4({2, 4, 4, 3}, DType::u8);
  CHECK_THROWS_WITH(kiln::maxpool2d_forward(y4, a4, x, {}), Contains("maxpool2d_forward") &&
                                                                Contains("[2, 4, 4, 3]") &&
                                                                Contains("[2, 3, 3, 3]"));
  // Padding larger than half the window (a window could hold only padding).
  CHECK_THROWS_WITH(kiln::maxpool2d_forward(y, a, x, {2, 2, 2, 2, 2, 2}),
                    Contains("maxpool2d_forward") && Contains("padding"));
  // Mixed dtypes; backward with a dy of the wrong shape.
  Tensor y64({2, 3, 3, 3}, DType::f64);
  CHECK_THROWS_WITH(kiln::maxpool2d_forward(y64, a, x, {}),
                    Contains("maxpool2d_forward") && Contains("f64") && Contains("f32"));
  Tensor dx({2, 6, 6, 3}), dy({2, 3, 3, 2});
  CHECK_THROWS_WITH(kiln::maxpool2d_backward(dx, dy, a, {}), Contains("maxpool2d_backward") &&
                                                                 Contains("[2, 3, 3, 2]") &&
                                                                 Contains("[2, 6, 6, 3]"));
}

TEST_CASE("leaky_relu rejects bad arguments, naming the op and the shapes", "[cpu]") {
  Tensor x({4, 5}), y({5, 4}), y64({4, 5}, DType::f64), xi({4, 5}, DType::i32);
  CHECK_THROWS_WITH(kiln::leaky_relu_forward(y, x),
                    Contains("leaky_relu_forward") && Contains("[5, 4]") && Contains("[4, 5]"));
  CHECK_THROWS_WITH(kiln::leaky_relu_forward(y64, x),
                    Contains("leaky_relu_forward") && Contains("f64") && Contains("[4, 5]"));
  CHECK_THROWS_WITH(kiln::leaky_relu_forward(xi, xi),
                    Contains("leaky_relu_forward") && Contains("i32"));
  Tensor dx({4, 5}), dy({4, 6});
  CHECK_THROWS_WITH(kiln::leaky_relu_backward(dx, dy, x),
                    Contains("leaky_relu_backward") && Contains("[4, 6]"));
}

TEST_CASE("ops reject a mix of devices, and f64 on the CUDA device", "[cpu]") {
  if (!kiln::cuda_available()) {
    // Without a CUDA device no CUDA tensor can be made, so no op can be handed one.
    CHECK_THROWS_AS(Tensor({2, 2}, DType::f32, Device::cuda), kiln::Error);
    return;
  }
  Tensor x({2, 5, 5, 3}), w({4, 3, 3, 3}, DType::f32, Device::cuda), y({2, 3, 3, 4});
  CHECK_THROWS_WITH(kiln::conv2d_forward(y, x, w, nullptr, {}),
                    Contains("conv2d_forward") && Contains("cuda") && Contains("cpu") &&
                        Contains("[4, 3, 3, 3]"));
  Tensor xc({4, 5}, DType::f32, Device::cuda), yc({4, 5});
  CHECK_THROWS_WITH(kiln::leaky_relu_forward(yc, xc),
                    Contains("leaky_relu_forward") && Contains("cuda") && Contains("[4, 5]"));
  Tensor x64({4, 5}, DType::f64, Device::cuda), y64({4, 5}, DType::f64, Device::cuda);
  CHECK_THROWS_WITH(kiln::leaky_relu_forward(y64, x64),
                    Contains("leaky_relu_forward") && Contains("f32 only"));
}
