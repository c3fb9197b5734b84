// kernels/activation.cpp — functional API of LeakyReLU (docs/design.md §3): check shapes, dtypes
// and devices, throwing a message that names the op and every tensor's shape; then dispatch:
// CPU f64 and f32 → kiln::cpu:: plain loops (OpenMP inside), CUDA f32 → kiln::cuda:: on the
// current stream (core/stream.h). In place (y and x the same tensor) is allowed.
#include "kernels/activation.h"

#include <cmath>
#include <string>

#include "kernels/checks.h"

namespace kiln {

void leaky_relu_forward(Tensor& y, const Tensor& x, double slope) {
  const char* op = "leaky_relu_forward";
  const Device device = detail::check_float_same(op, {{"y", &y}, {"x", &x}});
  KILN_CHECK(y.shape() == x.shape(), op, "(y ", y.str(), ", x ", x.str(),
             "): y must have the shape of x");
  KILN_CHECK(std::isfinite(slope), op, "(y ", y.str(), ", x ", x.str(), "): slope ", slope,
             " is not finite");
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::leaky_relu_forward(y.data<double>(), x.data<double>(), x.numel(), slope);
        } else {
          cpu::leaky_relu_forward(y.data<float>(), x.data<float>(), x.numel(), slope);
        }
      },
      [&] {
        cuda::leaky_relu_forward(y.data<float>(), x.data<float>(), x.numel(), slope,
                                 current_stream());
      });
}

void leaky_relu_backward(Tensor& dx, const Tensor& dy, const Tensor& x, double slope) {
  const char* op = "leaky_relu_backward";
  const Device device = detail::check_float_same(op, {{"dx", &dx}, {"dy", &dy}, {"x", &x}});
  KILN_CHECK(dx.shape() == x.shape() && dy.shape() == x.shape(), op, "(dx ", dx.str(), ", dy ",
             dy.str(), ", x ", x.str(), "): dx, dy and x must have one shape");
  KILN_CHECK(std::isfinite(slope), op, "(dx ", dx.str(), ", x ", x.str(), "): slope ", slope,
             " is not finite");
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::leaky_relu_backward(dx.data<double>(), dy.data<double>(), x.data<double>(),
                                   x.numel(), slope);
        } else {
          cpu::leaky_relu_backward(dx.data<float>(), dy.data<float>(), x.data<float>(), x.numel(),
                                   slope);
        }
      },
      [&] {
        cuda::leaky_relu_backward(dx.data<float>(), dy.data<float>(), x.data<float>(), x.numel(),
                                  slope, current_stream());
      });
}

}  // namespace kiln
