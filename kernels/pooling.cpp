// kernels/pooling.cpp — functional API of max pooling (docs/design.md §3): check shapes, dtypes and
// devices, throwing a message that names the op and every tensor's shape; then dispatch:
// CPU f64 and f32 → kiln::cpu:: plain loops (OpenMP inside), CUDA f32 → kiln::cuda:: on the
// current stream (core/stream.h).
#include "kernels/pooling.h"

#include <ostream>

#include "kernels/checks.h"

namespace kiln {
namespace {

// The parameters at the end of every message, "maxpool2d_forward(y [..], argmax [..], x [..],
// kernel 2x2, stride 2x2, pad 0x0)": written only when a check fails.
struct PoolParamsText {
  const Pool2dParams* p;
  void operator()(std::ostream& os) const {
    os << "kernel " << p->kh << "x" << p->kw << ", stride " << p->stride_h << "x" << p->stride_w
       << ", pad " << p->pad_h << "x" << p->pad_w;
  }
};
using PoolCall = detail::Call<PoolParamsText>;

Shape out_shape(const Pool2dShape& s) {
  return {s.n, s.out_h(), s.out_w(), s.c};
}

}  // namespace

void maxpool2d_forward(Tensor& y, Tensor& argmax, const Tensor& x, const Pool2dParams& p) {
  const char* op = "maxpool2d_forward";
  const Device device = detail::check_float_same(op, {{"y", &y}, {"x", &x}});
  detail::check_defined(op, "argmax", argmax);
  const detail::NamedTensor tensors[] = {{"y", &y}, {"argmax", &argmax}, {"x", &x}};
  const PoolCall call = detail::make_call(op, tensors, PoolParamsText{&p});
  KILN_CHECK(argmax.dtype() == DType::u8 && argmax.device() == device, call,
             ": argmax must be u8 on the device of x");
  const Pool2dShape s = detail::pool_shape(call, x, p);
  KILN_CHECK(y.shape() == out_shape(s) && argmax.shape() == out_shape(s), call,
             ": y and argmax must have shape ", out_shape(s).str());
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::maxpool2d_forward(y.data<double>(), argmax.data<uint8_t>(), x.data<double>(), s);
        } else {
          cpu::maxpool2d_forward(y.data<float>(), argmax.data<uint8_t>(), x.data<float>(), s);
        }
      },
      [&] {
        cuda::maxpool2d_forward(y.data<float>(), argmax.data<uint8_t>(), x.data<float>(), s,
                                current_stream());
      });
}

void maxpool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const Pool2dParams& p) {
  const char* op = "maxpool2d_backward";
  const Device device = detail::check_float_same(op, {{"dx", &dx}, {"dy", &dy}});
  detail::check_defined(op, "argmax", argmax);
  const detail::NamedTensor tensors[] = {{"dx", &dx}, {"dy", &dy}, {"argmax", &argmax}};
  const PoolCall call = detail::make_call(op, tensors, PoolParamsText{&p});
  KILN_CHECK(argmax.dtype() == DType::u8 && argmax.device() == device, call,
             ": argmax must be u8 on the device of dy");
  const Pool2dShape s = detail::pool_shape(call, dx, p);
  KILN_CHECK(dy.shape() == out_shape(s) && argmax.shape() == out_shape(s), call,
             ": dy and argmax must have shape ", out_shape(s).str());
  detail::on_device(
      op, device,
      [&] {
        if (dx.dtype() == DType::f64) {
          cpu::maxpool2d_backward(dx.data<double>(), dy.data<double>(), argmax.data<uint8_t>(), s);
        } else {
          cpu::maxpool2d_backward(dx.data<float>(), dy.data<float>(), argmax.data<uint8_t>(), s);
        }
      },
      [&] {
        cuda::maxpool2d_backward(dx.data<float>(), dy.data<float>(), argmax.data<uint8_t>(), s,
                                 current_stream());
      });
}

}  // namespace kiln
