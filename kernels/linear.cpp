// kernels/linear.cpp — functional API of the fully connected layer: checks shapes, dtypes and
// devices, then dispatches (CPU f64: the reference loops; CPU f32: the sgemm fast path; CUDA f32:
// kiln::cuda::). x [N][IN], w [OUT][IN], b [OUT], y [N][OUT]. dx overwritten; dw, db accumulated.
// A precision other than fp32 rounds the GEMM's inputs (and, bf16, y and dx) around the same CPU
// code; on CUDA it runs the tensor-core kernels (kernels/linear_tc.h), bf16 on converted copies
// (kernels/precision.h).
#include "kernels/linear.h"

#include <limits>

#include "kernels/checks.h"
#include "kernels/linear_tc.h"
#include "kernels/precision.h"

namespace kiln {
namespace {

// The raw level indexes with int: every extent must fit.
int as_int(const char* op, const char* name, const Tensor& t, int dim) {
  const int64_t v = t.size(dim);
  KILN_CHECK(v <= std::numeric_limits<int>::max(), detail::describe(op, name, t), ": dimension ",
             dim, " is too large");
  return static_cast<int>(v);
}

// N, IN, OUT from an activation [N][IN] and a weight [OUT][IN].
LinearShape shape_of(const char* op, const char* x_name, const Tensor& x, const char* w_name,
                     const Tensor& w) {
  detail::check_rank(op, x_name, x, 2);
  detail::check_rank(op, w_name, w, 2);
  KILN_CHECK(x.size(1) == w.size(1), op, ": ", x_name, " ", x.str(), " has ", x.size(1),
             " features but ", w_name, " ", w.str(), " expects ", w.size(1), " ([out][in])");
  return LinearShape{as_int(op, x_name, x, 0), as_int(op, w_name, w, 1), as_int(op, w_name, w, 0)};
}

}  // namespace

void linear_forward(Tensor& y, const Tensor& x, const Tensor& w, const Tensor* b, Precision pr) {
  constexpr const char* op = "linear_forward";
  const LinearShape s = shape_of(op, "x", x, "w", w);
  detail::check_shape(op, "y", y, {s.n, s.out});
  if (b != nullptr) detail::check_shape(op, "b", *b, {s.out});
  const Device device = detail::check_float_same(op, {{"y", &y}, {"x", &x}, {"w", &w}, {"b", b}});
  detail::on_device(
      op, device,
      [&] {
        if (y.dtype() == DType::f64) {
          cpu::linear_forward(y.data<double>(), detail::rounded_operand<double>(pr, x, 0),
                              detail::rounded_operand<double>(pr, w, 1),
                              b != nullptr ? b->data<double>() : nullptr, s);
          detail::round_output<double>(pr, y);
        } else {
          cpu::fast::linear_forward(y.data<float>(), detail::rounded_operand<float>(pr, x, 0),
                                    detail::rounded_operand<float>(pr, w, 1),
                                    b != nullptr ? b->data<float>() : nullptr, s);
          detail::round_output<float>(pr, y);
        }
      },
      [&] {
        const Stream st = current_stream();
        const float* bias = b != nullptr ? b->data<float>() : nullptr;
        detail::cuda_activation_op(
            pr, y.data<float>(), y.numel(), x.data<float>(), x.numel(), w.data<float>(), w.numel(),
            st,
            [&] {
              cuda::linear_forward(y.data<float>(), x.data<float>(), w.data<float>(), bias, s, st);
            },
            [&] {
              cuda::linear_forward_tf32(y.data<float>(), x.data<float>(), w.data<float>(), bias, s,
                                        st);
            },
            [&](std::uint16_t* y16, const std::uint16_t* x16, const std::uint16_t* w16) {
              cuda::linear_forward_bf16(y16, x16, w16, bias, s, st);
            });
      });
}

void linear_backward_data(Tensor& dx, const Tensor& dy, const Tensor& w, Precision pr) {
  constexpr const char* op = "linear_backward_data";
  const LinearShape s = shape_of(op, "dx", dx, "w", w);
  detail::check_shape(op, "dy", dy, {s.n, s.out});
  const Device device = detail::check_float_same(op, {{"dx", &dx}, {"dy", &dy}, {"w", &w}});
  detail::on_device(
      op, device,
      [&] {
        if (dx.dtype() == DType::f64) {
          cpu::linear_backward_data(dx.data<double>(), detail::rounded_operand<double>(pr, dy, 0),
                                    detail::rounded_operand<double>(pr, w, 1), s);
          detail::round_output<double>(pr, dx);
        } else {
          cpu::fast::linear_backward_data(dx.data<float>(),
                                          detail::rounded_operand<float>(pr, dy, 0),
                                          detail::rounded_operand<float>(pr, w, 1), s);
          detail::round_output<float>(pr, dx);
        }
      },
      [&] {
        const Stream st = current_stream();
        detail::cuda_activation_op(
            pr, dx.data<float>(), dx.numel(), dy.data<float>(), dy.numel(), w.data<float>(),
            w.numel(), st,
            [&] {
              cuda::linear_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), s,
                                         st);
            },
            [&] {
              cuda::linear_backward_data_tf32(dx.data<float>(), dy.data<float>(), w.data<float>(),
                                              s, st);
            },
            [&](std::uint16_t* dx16, const std::uint16_t* dy16, const std::uint16_t* w16) {
              cuda::linear_backward_data_bf16(dx16, dy16, w16, s, st);
            });
      });
}

void linear_backward_weight(Tensor& dw, Tensor* db, const Tensor& dy, const Tensor& x,
                            Precision pr) {
  constexpr const char* op = "linear_backward_weight";
  const LinearShape s = shape_of(op, "x", x, "dw", dw);
  detail::check_shape(op, "dy", dy, {s.n, s.out});
  if (db != nullptr) detail::check_shape(op, "db", *db, {s.out});
  const Device device =
      detail::check_float_same(op, {{"dw", &dw}, {"db", db}, {"dy", &dy}, {"x", &x}});
  detail::on_device(
      op, device,
      [&] {
        if (dw.dtype() == DType::f64) {
          cpu::linear_backward_weight(dw.data<double>(),
                                      db != nullptr ? db->data<double>() : nullptr,
                                      detail::rounded_operand<double>(pr, dy, 0),
                                      detail::rounded_operand<double>(pr, x, 1), s);
        } else {
          cpu::fast::linear_backward_weight(dw.data<float>(),
                                            db != nullptr ? db->data<float>() : nullptr,
                                            detail::rounded_operand<float>(pr, dy, 0),
                                            detail::rounded_operand<float>(pr, x, 1), s);
        }
      },
      [&] {
        const Stream st = current_stream();
        float* dbias = db != nullptr ? db->data<float>() : nullptr;
        detail::cuda_parameter_grad_op(
            pr, dy.data<float>(), dy.numel(), x.data<float>(), x.numel(), st,
            [&] {
              cuda::linear_backward_weight(dw.data<float>(), dbias, dy.data<float>(),
                                           x.data<float>(), s, st);
            },
            [&] {
              cuda::linear_backward_weight_tf32(dw.data<float>(), dbias, dy.data<float>(),
                                                x.data<float>(), s, st);
            },
            [&](const std::uint16_t* dy16, const std::uint16_t* x16) {
              cuda::linear_backward_weight_bf16(dw.data<float>(), dbias, dy16, x16, s, st);
            });
      });
}

}  // namespace kiln
