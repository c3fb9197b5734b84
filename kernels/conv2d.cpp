// kernels/conv2d.cpp — functional API of conv2d (docs/design.md §3): check shapes, dtypes and
// devices, throwing a message that names the op and every tensor's shape; then dispatch by device
// and dtype: CPU f64 → kiln::cpu:: plain loops (the oracle), CPU f32 → kiln::cpu::fast:: (im2col +
// sgemm), CUDA f32 → kiln::cuda:: on the current stream. A precision other than fp32 rounds the
// GEMM's inputs (and, bf16, the outputs y and dx) around the same CPU code; on CUDA it runs the
// tensor-core kernels (kernels/conv2d_tc.h), bf16 on converted copies, and the first layer's
// forward on the fp32 direct kernel with rounded operands (kernels/precision.h).
#include "kernels/conv2d.h"

#include <ostream>

#include "kernels/checks.h"
#include "kernels/conv2d_tc.h"
#include "kernels/precision.h"

namespace kiln {
namespace {

// The parameters at the end of every message, "conv2d_forward(y [..], x [..], w [..], b [..],
// stride 1x1, pad 0x0)": written only when a check fails.
struct ConvParamsText {
  const Conv2dParams* p;
  void operator()(std::ostream& os) const {
    os << "stride " << p->stride_h << "x" << p->stride_w << ", pad " << p->pad_h << "x" << p->pad_w;
    if (p->precision != Precision::fp32) os << ", precision " << precision_name(p->precision);
  }
};
using ConvCall = detail::Call<ConvParamsText>;

Shape out_shape(const Conv2dShape& s) {
  return {s.n, s.out_h(), s.out_w(), s.c_out};
}

}  // namespace

void conv2d_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b,
                    const Conv2dParams& p) {
  const char* op = "conv2d_forward";
  const Device device = detail::check_float_same(op, {{"y", &y}, {"x", &x}, {"w", &w}, {"b", b}});
  const detail::NamedTensor tensors[] = {{"y", &y}, {"x", &x}, {"w", &w}, {"b", b}};
  const ConvCall call = detail::make_call(op, tensors, ConvParamsText{&p});
  const Conv2dShape s = conv_shape(call, x, w, p);
  KILN_CHECK(y.shape() == out_shape(s), call, ": y must have shape ", out_shape(s).str());
  KILN_CHECK(b == nullptr || b->shape() == Shape({s.c_out}), call, ": b must have shape [", s.c_out,
             "]");
  detail::on_device(
      op, device,
      [&] {
        const Precision pr = p.precision;
        if (x.dtype() == DType::f64) {
          cpu::conv2d_forward(y.data<double>(), detail::rounded_operand<double>(pr, x, 0),
                              detail::rounded_operand<double>(pr, w, 1),
                              b ? b->data<double>() : nullptr, s);
          detail::round_output<double>(pr, y);
        } else {
          cpu::fast::conv2d_forward(y.data<float>(), detail::rounded_operand<float>(pr, x, 0),
                                    detail::rounded_operand<float>(pr, w, 1),
                                    b ? b->data<float>() : nullptr, s);
          detail::round_output<float>(pr, y);
        }
      },
      [&] {
        const Precision pr = p.precision;
        const Stream st = current_stream();
        const float* bias = b ? b->data<float>() : nullptr;
        if (pr != Precision::fp32 && !cuda::conv2d_tc_suits(s)) {
          // The first layer: the fp32 direct kernel on operands rounded as the CPU rounds them.
          const cuda::RoundedOperands r = cuda::rounded_operands(pr, x.data<float>(), x.numel(),
                                                                 w.data<float>(), w.numel(), st);
          cuda::conv2d_forward(y.data<float>(), r.a, r.b, bias, s, st);
          if (rounds_output(pr))
            cuda::round_values(pr, y.data<float>(), y.data<float>(), y.numel(), nullptr, nullptr, 0,
                               st);
          return;
        }
        detail::cuda_activation_op(
            pr, y.data<float>(), y.numel(), x.data<float>(), x.numel(), w.data<float>(), w.numel(),
            st,
            [&] {
              cuda::conv2d_forward(y.data<float>(), x.data<float>(), w.data<float>(), bias, s, st);
            },
            [&] {
              cuda::conv2d_forward_tf32(y.data<float>(), x.data<float>(), w.data<float>(), bias, s,
                                        st);
            },
            [&](std::uint16_t* y16, const std::uint16_t* x16, const std::uint16_t* w16) {
              cuda::conv2d_forward_bf16(y16, x16, w16, bias, s, st);
            });
      });
}

void conv2d_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w, const Conv2dParams& p) {
  const char* op = "conv2d_backward_data";
  const Device device = detail::check_float_same(op, {{"dx", &dx}, {"dy", &dy}, {"w", &w}});
  const detail::NamedTensor tensors[] = {{"dx", &dx}, {"dy", &dy}, {"w", &w}};
  const ConvCall call = detail::make_call(op, tensors, ConvParamsText{&p});
  const Conv2dShape s = conv_shape(call, dx, w, p);
  KILN_CHECK(dy.shape() == out_shape(s), call, ": dy must have shape ", out_shape(s).str());
  detail::on_device(
      op, device,
      [&] {
        const Precision pr = p.precision;
        if (dx.dtype() == DType::f64) {
          cpu::conv2d_backward_data(dx.data<double>(), detail::rounded_operand<double>(pr, dy, 0),
                                    detail::rounded_operand<double>(pr, w, 1), s);
          detail::round_output<double>(pr, dx);
        } else {
          cpu::fast::conv2d_backward_data(dx.data<float>(),
                                          detail::rounded_operand<float>(pr, dy, 0),
                                          detail::rounded_operand<float>(pr, w, 1), s);
          detail::round_output<float>(pr, dx);
        }
      },
      [&] {
        const Precision pr = p.precision;
        const Stream st = current_stream();
        detail::cuda_activation_op(
            pr, dx.data<float>(), dx.numel(), dy.data<float>(), dy.numel(), w.data<float>(),
            w.numel(), st,
            [&] {
              cuda::conv2d_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), s,
                                         st);
            },
            [&] {
              cuda::conv2d_backward_data_tf32(dx.data<float>(), dy.data<float>(), w.data<float>(),
                                              s, st);
            },
            [&](std::uint16_t* dx16, const std::uint16_t* dy16, const std::uint16_t* w16) {
              cuda::conv2d_backward_data_bf16(dx16, dy16, w16, s, st);
            });
      });
}

void conv2d_backward_filter(Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x,
                            const Conv2dParams& p) {
  const char* op = "conv2d_backward_filter";
  const Device device =
      detail::check_float_same(op, {{"dw", &dw}, {"db", db}, {"dy", &dy}, {"x", &x}});
  const detail::NamedTensor tensors[] = {{"dw", &dw}, {"db", db}, {"dy", &dy}, {"x", &x}};
  const ConvCall call = detail::make_call(op, tensors, ConvParamsText{&p});
  const Conv2dShape s = conv_shape(call, x, dw, p);
  KILN_CHECK(dy.shape() == out_shape(s), call, ": dy must have shape ", out_shape(s).str());
  KILN_CHECK(db == nullptr || db->shape() == Shape({s.c_out}), call, ": db must have shape [",
             s.c_out, "]");
  detail::on_device(
      op, device,
      [&] {
        const Precision pr = p.precision;
        if (x.dtype() == DType::f64) {
          cpu::conv2d_backward_filter(dw.data<double>(), db ? db->data<double>() : nullptr,
                                      detail::rounded_operand<double>(pr, dy, 0),
                                      detail::rounded_operand<double>(pr, x, 1), s);
        } else {
          cpu::fast::conv2d_backward_filter(dw.data<float>(), db ? db->data<float>() : nullptr,
                                            detail::rounded_operand<float>(pr, dy, 0),
                                            detail::rounded_operand<float>(pr, x, 1), s);
        }
      },
      [&] {
        const Precision pr = p.precision;
        const Stream st = current_stream();
        float* dbias = db ? db->data<float>() : nullptr;
        detail::cuda_parameter_grad_op(
            pr, dy.data<float>(), dy.numel(), x.data<float>(), x.numel(), st,
            [&] {
              cuda::conv2d_backward_filter(dw.data<float>(), dbias, dy.data<float>(),
                                           x.data<float>(), s, st);
            },
            [&] {
              cuda::conv2d_backward_filter_tf32(dw.data<float>(), dbias, dy.data<float>(),
                                                x.data<float>(), s, st);
            },
            [&](const std::uint16_t* dy16, const std::uint16_t* x16) {
              cuda::conv2d_backward_filter_bf16(dw.data<float>(), dbias, dy16, x16, s, st);
            });
      });
}

}  // namespace kiln
