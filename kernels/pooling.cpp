// kernels/pooling.cpp — functional API of max pooling (docs/design.md §3): check shapes, dtypes and
// devices, throwing a message that names the op and every tensor's shape; then dispatch:
// CPU f64 and f32 → kiln::cpu:: plain loops (OpenMP inside), CUDA f32 → kiln::cuda:: on the
// current stream (core/stream.h).
#include "kernels/pooling.h"

#include <string>

#include "kernels/checks.h"

namespace kiln {
namespace {

std::string describe_call(const char* op, const char* a, const Tensor& ta, const char* b,
                          const Tensor& tb, const char* c, const Tensor& tc,
                          const Pool2dParams& p) {
  auto str = [](const Tensor& t) { return t.defined() ? t.str() : std::string("undefined"); };
  return std::string(op) + "(" + a + " " + str(ta) + ", " + b + " " + str(tb) + ", " + c + " " +
         str(tc) + ", kernel " + std::to_string(p.kh) + "x" + std::to_string(p.kw) + ", stride " +
         std::to_string(p.stride_h) + "x" + std::to_string(p.stride_w) + ", pad " +
         std::to_string(p.pad_h) + "x" + std::to_string(p.pad_w) + ")";
}

// The pooling shape from the input extents [N, H, W, C]; checks the parameters.
Pool2dShape pool_shape(const std::string& call, const Tensor& x_like, const Pool2dParams& p) {
  KILN_CHECK(x_like.rank() == 4, call, ": activations must be 4-D [N, H, W, C] (NHWC)");
  KILN_CHECK(p.kh >= 1 && p.kw >= 1 && p.stride_h >= 1 && p.stride_w >= 1, call,
             ": kernel and stride must be >= 1");
  KILN_CHECK(p.kh * p.kw <= 256, call, ": a window of ", p.kh * p.kw,
             " elements does not fit the uint8 argmax (at most 256)");
  // PyTorch's rule; it also guarantees every window holds at least one position inside x.
  KILN_CHECK(p.pad_h >= 0 && p.pad_w >= 0 && p.pad_h <= p.kh / 2 && p.pad_w <= p.kw / 2, call,
             ": padding must be between 0 and half the kernel size");
  Pool2dShape s;
  s.n = static_cast<int>(x_like.size(0));
  s.h = static_cast<int>(x_like.size(1));
  s.w = static_cast<int>(x_like.size(2));
  s.c = static_cast<int>(x_like.size(3));
  s.kh = p.kh;
  s.kw = p.kw;
  s.stride_h = p.stride_h;
  s.stride_w = p.stride_w;
  s.pad_h = p.pad_h;
  s.pad_w = p.pad_w;
  KILN_CHECK(s.h + 2 * s.pad_h >= s.kh && s.w + 2 * s.pad_w >= s.kw, call, ": the ", s.kh, "x",
             s.kw, " window does not fit the padded ", s.h, "x", s.w, " input");
  return s;
}

Shape out_shape(const Pool2dShape& s) {
  return {s.n, s.out_h(), s.out_w(), s.c};
}

}  // namespace

void maxpool2d_forward(Tensor& y, Tensor& argmax, const Tensor& x, const Pool2dParams& p) {
  const char* op = "maxpool2d_forward";
  const Device device = detail::check_float_same(op, {{"y", &y}, {"x", &x}});
  detail::check_defined(op, "argmax", argmax);
  const std::string call = describe_call(op, "y", y, "argmax", argmax, "x", x, p);
  KILN_CHECK(argmax.dtype() == DType::u8 && argmax.device() == device, call,
             ": argmax must be u8 on the device of x");
  const Pool2dShape s = pool_shape(call, x, p);
  KILN_CHECK(y.shape() == out_shape(s) && argmax.shape() == out_shape(s), call,
             ": y and argmax must have shape ", out_shape(s).str());
  if (device == Device::cuda) {
#if KILN_WITH_CUDA
    cuda::maxpool2d_forward(y.data<float>(), argmax.data<uint8_t>(), x.data<float>(), s,
                            current_stream());
#else
    detail::check_cuda_built(op);
#endif
  } else if (x.dtype() == DType::f64) {
    cpu::maxpool2d_forward(y.data<double>(), argmax.data<uint8_t>(), x.data<double>(), s);
  } else {
    cpu::maxpool2d_forward(y.data<float>(), argmax.data<uint8_t>(), x.data<float>(), s);
  }
}

void maxpool2d_backward(Tensor& dx, const Tensor& dy, const Tensor& argmax, const Pool2dParams& p) {
  const char* op = "maxpool2d_backward";
  const Device device = detail::check_float_same(op, {{"dx", &dx}, {"dy", &dy}});
  detail::check_defined(op, "argmax", argmax);
  const std::string call = describe_call(op, "dx", dx, "dy", dy, "argmax", argmax, p);
  KILN_CHECK(argmax.dtype() == DType::u8 && argmax.device() == device, call,
             ": argmax must be u8 on the device of dy");
  const Pool2dShape s = pool_shape(call, dx, p);
  KILN_CHECK(dy.shape() == out_shape(s) && argmax.shape() == out_shape(s), call,
             ": dy and argmax must have shape ", out_shape(s).str());
  if (device == Device::cuda) {
#if KILN_WITH_CUDA
    cuda::maxpool2d_backward(dx.data<float>(), dy.data<float>(), argmax.data<uint8_t>(), s,
                             current_stream());
#else
    detail::check_cuda_built(op);
#endif
  } else if (dx.dtype() == DType::f64) {
    cpu::maxpool2d_backward(dx.data<double>(), dy.data<double>(), argmax.data<uint8_t>(), s);
  } else {
    cpu::maxpool2d_backward(dx.data<float>(), dy.data<float>(), argmax.data<uint8_t>(), s);
  }
}

}  // namespace kiln
