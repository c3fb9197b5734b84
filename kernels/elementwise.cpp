// kernels/elementwise.cpp — functional API of the small helpers: scale, bias add and the global L2
// norm (fill and copy are Tensor::fill and Tensor::copy_from). Checks, then dispatches (CPU
// f32/f64: kernels/cpu/elementwise.cpp; CUDA f32: kiln::cuda::).
#include "kernels/elementwise.h"

#include <cmath>
#include <limits>

#include "kernels/checks.h"

namespace kiln {

void scale(Tensor& x, double alpha) {
  constexpr const char* op = "scale";
  const Device device = detail::check_float_same(op, {{"x", &x}});
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::scale(x.data<double>(), x.numel(), alpha);
        } else {
          cpu::scale(x.data<float>(), x.numel(), static_cast<float>(alpha));
        }
      },
      [&] {
        cuda::scale(x.data<float>(), x.numel(), static_cast<float>(alpha), current_stream());
      });
}

void bias_add(Tensor& y, const Tensor& b) {
  constexpr const char* op = "bias_add";
  detail::check_defined(op, "y", y);
  KILN_CHECK(y.rank() >= 1, detail::describe(op, "y", y), " needs at least one dimension");
  detail::check_rank(op, "b", b, 1);
  const int64_t c = y.size(y.rank() - 1);
  KILN_CHECK(b.size(0) == c, op, ": b ", b.str(), " must have one value per ", "channel of y ",
             y.str(), " (its last dimension)");
  KILN_CHECK(c <= std::numeric_limits<int>::max(), detail::describe(op, "b", b), ": too large");
  const Device device = detail::check_float_same(op, {{"y", &y}, {"b", &b}});
  const int64_t m = y.numel() / c;
  detail::on_device(
      op, device,
      [&] {
        if (y.dtype() == DType::f64) {
          cpu::bias_add(y.data<double>(), b.data<double>(), m, static_cast<int>(c));
        } else {
          cpu::bias_add(y.data<float>(), b.data<float>(), m, static_cast<int>(c));
        }
      },
      [&] {
        cuda::bias_add(y.data<float>(), b.data<float>(), m, static_cast<int>(c), current_stream());
      });
}

double l2_norm(const Tensor& x) {
  constexpr const char* op = "l2_norm";
  const Device device = detail::check_float_same(op, {{"x", &x}});
  return detail::on_device(
      op, device,
      [&]() -> double {
        if (x.dtype() == DType::f64) {
          double out = 0;
          cpu::l2_norm(&out, x.data<double>(), x.numel());
          return out;
        }
        float out = 0;
        cpu::l2_norm(&out, x.data<float>(), x.numel());
        return out;
      },
      [&]() -> double {
        // The result lives in the stream's workspace too (clipping calls this every step, and a
        // steady-state step allocates no device memory): one request, [result | partials].
        const Stream stream = current_stream();
        const int64_t partials = cuda::l2_norm_workspace_floats(x.numel());
        auto* work = static_cast<float*>(
            workspace(static_cast<size_t>(1 + partials) * sizeof(float), stream));
        cuda::l2_norm(work, x.data<float>(), x.numel(), work + 1, stream);
        // A device → host copy returns once the value has arrived (it synchronises the stream).
        float host = 0;
        copy_bytes(&host, Device::cpu, work, Device::cuda, sizeof(float), stream);
        return host;
      });
}

void clip_by_norm(Tensor& x, double max_norm, Tensor& not_finite) {
  constexpr const char* op = "clip_by_norm";
  KILN_CHECK(max_norm > 0 && std::isfinite(max_norm), op,
             ": max_norm must be a positive number, got ", max_norm);
  const Device device = detail::check_float_same(op, {{"x", &x}});
  detail::check_shape(op, "not_finite", not_finite, {1});
  detail::check_dtype(op, "not_finite", not_finite, DType::i32);
  detail::check_device(op, "not_finite", not_finite, device);
  detail::on_device(
      op, device,
      [&] {
        // optim's clip_grad_norm, with the flag instead of the returned norm.
        const double norm = l2_norm(x);
        const bool finite = std::isfinite(norm);
        not_finite.data<int32_t>()[0] = finite ? 0 : 1;
        const double coef = max_norm / (norm + 1e-6);
        if (finite && coef < 1.0) scale(x, coef);
      },
      [&] {
        // One workspace request: [norm | partials].
        const Stream stream = current_stream();
        const int64_t partials = cuda::l2_norm_workspace_floats(x.numel());
        auto* work = static_cast<float*>(
            workspace(static_cast<size_t>(1 + partials) * sizeof(float), stream));
        cuda::l2_norm(work, x.data<float>(), x.numel(), work + 1, stream);
        cuda::clip_by_norm(x.data<float>(), x.numel(), work, max_norm, not_finite.data<int32_t>(),
                           stream);
      });
}

}  // namespace kiln
