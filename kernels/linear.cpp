// kernels/linear.cpp — functional API of the fully connected layer: checks shapes, dtypes and
// devices, then dispatches (CPU f64: the reference loops; CPU f32: the sgemm fast path; CUDA f32:
// kiln::cuda::). x [N][IN], w [OUT][IN], b [OUT], y [N][OUT]. dx overwritten; dw, db accumulated.
// A precision other than fp32 rounds the GEMM's inputs (and, bf16, y and dx) around the same CPU
// code (kernels/precision.h); on CUDA it goes through detail::check_cuda_precision.
#include "kernels/linear.h"

#include <limits>

#include "kernels/checks.h"
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
        detail::check_cuda_precision(op, pr);
        cuda::linear_forward(y.data<float>(), x.data<float>(), w.data<float>(),
                             b != nullptr ? b->data<float>() : nullptr, s, current_stream());
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
        detail::check_cuda_precision(op, pr);
        cuda::linear_backward_data(dx.data<float>(), dy.data<float>(), w.data<float>(), s,
                                   current_stream());
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
        detail::check_cuda_precision(op, pr);
        cuda::linear_backward_weight(dw.data<float>(), db != nullptr ? db->data<float>() : nullptr,
                                     dy.data<float>(), x.data<float>(), s, current_stream());
      });
}

}  // namespace kiln
