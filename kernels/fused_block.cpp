// kernels/fused_block.cpp — functional API of the fused block batchnorm → LeakyReLU → max pooling →
// dropout (kernels/fused_block.h): check shapes, dtypes and devices, throwing a message that names
// the op and every tensor's shape; then dispatch: CPU f64 and f32 → kiln::cpu::, CUDA f32 →
// kiln::cuda:: on the current stream (core/stream.h).
#include "kernels/fused_block.h"

#include <ostream>

#include "kernels/checks.h"
#include "kernels/conv2d_tc.h"
#include "kernels/precision.h"

namespace kiln {
namespace {

// The parameters at the end of every message: written only when a check fails.
struct FusedParamsText {
  const FusedBlockParams* p;
  void operator()(std::ostream& os) const {
    os << "eps " << p->eps << ", momentum " << p->momentum << ", slope " << p->slope << ", kernel "
       << p->pool.kh << "x" << p->pool.kw << ", stride " << p->pool.stride_h << "x"
       << p->pool.stride_w << ", pad " << p->pool.pad_h << "x" << p->pool.pad_w << ", p " << p->p;
  }
};
using FusedCall = detail::Call<FusedParamsText>;

// Checks everything the two ops share and returns the raw shape. x_like: [N, H, W, C]; pooled:
// the tensors of the pooled shape (y or dy); channels: the [C] tensors.
FusedBlockShape check_fused(const FusedCall& call, const char* op, const Tensor& x_like,
                            std::initializer_list<detail::NamedTensor> activations,
                            const Tensor& pooled, const Tensor& argmax,
                            std::initializer_list<detail::NamedTensor> channels,
                            const FusedBlockParams& p, Device* device) {
  for (size_t i = 0; i < call.count; ++i)
    KILN_CHECK(call.tensors[i].second->defined(), call, ": ", call.tensors[i].first,
               " is undefined");
  *device = detail::check_float_same(op, activations);
  KILN_CHECK(*device != Device::cpu || p.offset.at == nullptr, call,
             ": dropout's offset lives in device memory, which the CPU path cannot read; pass it "
             "as a number (PhiloxOffset(value)) for CPU tensors");
  for (auto& [name, t] : channels)
    KILN_CHECK(t->device() == *device && t->dtype() == x_like.dtype(), call, ": ", name,
               " must be ", dtype_name(x_like.dtype()), " on ", device_name(*device), " like x");
  KILN_CHECK(argmax.dtype() == DType::u8 && argmax.device() == *device, call,
             ": argmax must be u8 on the device of x");
  KILN_CHECK(p.eps > 0 && p.momentum >= 0 && p.momentum <= 1, call,
             ": need eps > 0 and momentum in [0, 1]");
  KILN_CHECK(p.slope > 0, call,
             ": the negative slope must be positive (the backward takes LeakyReLU's sign from "
             "its input)");
  KILN_CHECK(p.p >= 0.f && p.p < 1.f, call, ": dropout's p must be in [0, 1)");
  FusedBlockShape s;
  s.pool = detail::pool_shape(call, x_like, p.pool);
  KILN_CHECK(x_like.numel() / s.pool.c >= 2, call,
             ": one value per channel; training needs at least 2 (as PyTorch)");
  for (auto& [name, t] : activations)
    if (t != &pooled)
      KILN_CHECK(t->shape() == x_like.shape(), call, ": ", name, " must have the shape of x, ",
                 x_like.shape().str());
  const Shape out{s.pool.n, s.pool.out_h(), s.pool.out_w(), s.pool.c};
  KILN_CHECK(pooled.shape() == out && argmax.shape() == out, call,
             ": the pooled tensors must have shape ", out.str());
  for (auto& [name, t] : channels)
    KILN_CHECK(t->numel() == s.pool.c, call, ": ", name, " must have ", s.pool.c,
               " elements, one per channel of x");
  s.eps = p.eps;
  s.momentum = p.momentum;
  s.slope = p.slope;
  s.p = p.p;
  s.seed = p.seed;
  s.offset = p.offset;
  s.stats_ready = p.stats_ready;
  return s;
}

}  // namespace

void fused_block_forward(Tensor& y, Tensor& argmax, Tensor& save_mean, Tensor& save_invstd,
                         Tensor& running_mean, Tensor& running_var, const Tensor& x,
                         const Tensor& gamma, const Tensor& beta, const FusedBlockParams& p) {
  const char* op = "fused_block_forward";
  const detail::NamedTensor tensors[] = {{"y", &y},
                                         {"argmax", &argmax},
                                         {"save_mean", &save_mean},
                                         {"save_invstd", &save_invstd},
                                         {"running_mean", &running_mean},
                                         {"running_var", &running_var},
                                         {"x", &x},
                                         {"gamma", &gamma},
                                         {"beta", &beta}};
  const FusedCall call = detail::make_call(op, tensors, FusedParamsText{&p});
  Device device;
  const FusedBlockShape s = check_fused(call, op, x, {{"x", &x}, {"y", &y}}, y, argmax,
                                        {{"save_mean", &save_mean},
                                         {"save_invstd", &save_invstd},
                                         {"running_mean", &running_mean},
                                         {"running_var", &running_var},
                                         {"gamma", &gamma},
                                         {"beta", &beta}},
                                        p, &device);
  detail::on_device(
      op, device,
      [&] {
        KILN_CHECK(!s.stats_ready, call,
                   ": stats_ready is for the CUDA device, where conv2d_forward_batch_stats wrote "
                   "the statistics; on the CPU leave it false");
        if (x.dtype() == DType::f64) {
          cpu::fused_block_forward(y.data<double>(), argmax.data<uint8_t>(),
                                   save_mean.data<double>(), save_invstd.data<double>(),
                                   running_mean.data<double>(), running_var.data<double>(),
                                   x.data<double>(), gamma.data<double>(), beta.data<double>(), s);
        } else {
          cpu::fused_block_forward(y.data<float>(), argmax.data<uint8_t>(), save_mean.data<float>(),
                                   save_invstd.data<float>(), running_mean.data<float>(),
                                   running_var.data<float>(), x.data<float>(), gamma.data<float>(),
                                   beta.data<float>(), s);
        }
      },
      [&] {
        cuda::fused_block_forward(y.data<float>(), argmax.data<uint8_t>(), save_mean.data<float>(),
                                  save_invstd.data<float>(), running_mean.data<float>(),
                                  running_var.data<float>(), x.data<float>(), gamma.data<float>(),
                                  beta.data<float>(), s, current_stream());
      });
}

void fused_block_backward(Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& dy,
                          const Tensor& argmax, const Tensor& x, const Tensor& gamma,
                          const Tensor& beta, const Tensor& save_mean, const Tensor& save_invstd,
                          const FusedBlockParams& p) {
  const char* op = "fused_block_backward";
  const detail::NamedTensor tensors[] = {{"dx", &dx},
                                         {"dgamma", &dgamma},
                                         {"dbeta", &dbeta},
                                         {"dy", &dy},
                                         {"argmax", &argmax},
                                         {"x", &x},
                                         {"gamma", &gamma},
                                         {"beta", &beta},
                                         {"save_mean", &save_mean},
                                         {"save_invstd", &save_invstd}};
  const FusedCall call = detail::make_call(op, tensors, FusedParamsText{&p});
  Device device;
  const FusedBlockShape s =
      check_fused(call, op, x, {{"x", &x}, {"dx", &dx}, {"dy", &dy}}, dy, argmax,
                  {{"dgamma", &dgamma},
                   {"dbeta", &dbeta},
                   {"gamma", &gamma},
                   {"beta", &beta},
                   {"save_mean", &save_mean},
                   {"save_invstd", &save_invstd}},
                  p, &device);
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::fused_block_backward(dx.data<double>(), dgamma.data<double>(), dbeta.data<double>(),
                                    dy.data<double>(), argmax.data<uint8_t>(), x.data<double>(),
                                    gamma.data<double>(), beta.data<double>(),
                                    save_mean.data<double>(), save_invstd.data<double>(), s);
        } else {
          cpu::fused_block_backward(dx.data<float>(), dgamma.data<float>(), dbeta.data<float>(),
                                    dy.data<float>(), argmax.data<uint8_t>(), x.data<float>(),
                                    gamma.data<float>(), beta.data<float>(),
                                    save_mean.data<float>(), save_invstd.data<float>(), s);
        }
      },
      [&] {
        cuda::fused_block_backward(dx.data<float>(), dgamma.data<float>(), dbeta.data<float>(),
                                   dy.data<float>(), argmax.data<uint8_t>(), x.data<float>(),
                                   gamma.data<float>(), beta.data<float>(), save_mean.data<float>(),
                                   save_invstd.data<float>(), s, current_stream());
      });
}

bool conv2d_forward_batch_stats(Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                                Tensor& running_mean, Tensor& running_var, const Tensor& x,
                                const Tensor& w, const Tensor* b, const Conv2dParams& p, double eps,
                                double momentum) {
  // fp32 and tf32 (PyTorch's convolution default); bf16's convolution writes bf16 outputs through
  // a conversion, so its statistics come from the separate pass.
  if (x.device() != Device::cuda || x.dtype() != DType::f32 || p.precision == Precision::bf16)
    return false;
  const char* op = "conv2d_forward_batch_stats";
  const Device device = detail::check_float_same(op, {{"y", &y}, {"x", &x}, {"w", &w}, {"b", b}});
  const detail::NamedTensor tensors[] = {{"y", &y}, {"x", &x}, {"w", &w}, {"b", b}};
  const auto call = detail::make_call(op, tensors);
  const Conv2dShape s = detail::conv_shape(call, x, w, p);
  const Shape out{s.n, s.out_h(), s.out_w(), s.c_out};
  KILN_CHECK(y.shape() == out, call, ": y must have shape ", out.str());
  KILN_CHECK(b == nullptr || b->shape() == Shape({s.c_out}), call, ": b must have shape [", s.c_out,
             "]");
  for (const Tensor* t : {&save_mean, &save_invstd, &running_mean, &running_var})
    KILN_CHECK(
        t->defined() && t->device() == device && t->dtype() == DType::f32 && t->numel() == s.c_out,
        op, ": the batchnorm statistics must be f32 [", s.c_out, "] on the device of x");
  KILN_CHECK(y.numel() / s.c_out >= 2, op,
             ": one value per channel; training needs at least 2 (as PyTorch)");
  KILN_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, op,
             ": need eps > 0 and momentum in [0, 1]");
  // The device is CUDA here (the CPU returned false above); on_device keeps the CUDA calls out of
  // a build without CUDA.
  detail::on_device(
      op, device, [] {},
      [&] {
        const Stream st = current_stream();
        float* const stats[] = {save_mean.data<float>(), save_invstd.data<float>(),
                                running_mean.data<float>(), running_var.data<float>()};
        const float* bias = b ? b->data<float>() : nullptr;
        if (p.precision == Precision::fp32) {
          cuda::conv2d_forward_batch_stats(y.data<float>(), stats[0], stats[1], stats[2], stats[3],
                                           x.data<float>(), w.data<float>(), bias, s, eps, momentum,
                                           st);
        } else if (cuda::conv2d_tc_suits(s)) {
          cuda::conv2d_forward_tf32_batch_stats(y.data<float>(), stats[0], stats[1], stats[2],
                                                stats[3], x.data<float>(), w.data<float>(), bias, s,
                                                eps, momentum, st);
        } else {
          // The first layer, as conv2d_forward runs it in tf32: the fp32 direct kernel on operands
          // rounded as the CPU rounds them (kernels/precision.h).
          const cuda::RoundedOperands r = cuda::rounded_operands(
              p.precision, x.data<float>(), x.numel(), w.data<float>(), w.numel(), st);
          cuda::conv2d_forward_batch_stats(y.data<float>(), stats[0], stats[1], stats[2], stats[3],
                                           r.a, r.b, bias, s, eps, momentum, st);
        }
      });
  return true;
}

}  // namespace kiln
