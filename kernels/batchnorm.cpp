// kernels/batchnorm.cpp — functional API of batch normalisation (docs/design.md §3): check shapes,
// dtypes and devices, throwing a message that names the op and every tensor's shape; then dispatch:
// CPU f64 and f32 → kiln::cpu:: plain loops (OpenMP inside), CUDA f32 → kiln::cuda:: on the current
// stream. x is any rank ≥ 2 with channels last, seen as [M][C]; every per-channel tensor has
// C elements.
#include "kernels/batchnorm.h"

#include <vector>

#include "kernels/checks.h"

namespace kiln {
namespace {

using Named = std::initializer_list<detail::NamedTensor>;

// Checks one device and dtype for all, the activations' shape (that of x) and the per-channel
// tensors' size; returns the [M][C] view of x. Every message starts "op(x [..], y [..], ...)".
BatchNormShape check_batchnorm(const char* op, const Tensor& x, Named activations, Named channels,
                               Device* device) {
  std::vector<detail::NamedTensor> all(activations);
  all.insert(all.end(), channels.begin(), channels.end());
  const detail::Call<> call{op, all.data(), all.size()};
  for (auto& [name, t] : all) KILN_CHECK(t->defined(), call, ": ", name, " is undefined");
  *device = detail::check_float_same(op, activations);
  for (auto& [name, t] : channels)
    KILN_CHECK(t->device() == *device && t->dtype() == x.dtype(), call, ": ", name, " must be ",
               dtype_name(x.dtype()), " on ", device_name(*device), " like x");
  KILN_CHECK(x.rank() >= 2, call, ": x must have at least 2 dimensions, channels last");
  for (auto& [name, t] : activations)
    KILN_CHECK(t->shape() == x.shape(), call, ": ", name, " must have the shape of x, ",
               x.shape().str());
  BatchNormShape s;
  s.c = static_cast<int>(x.size(x.rank() - 1));
  s.m = x.numel() / s.c;
  for (auto& [name, t] : channels)
    KILN_CHECK(t->numel() == s.c, call, ": ", name, " must have ", s.c,
               " elements, one per channel of x");
  return s;
}

// A [2][C] per-channel pair of `dtype` on `device`, for the synchronised halves.
void check_pairs(const char* op, const char* name, const Tensor& t, DType dtype, Device device,
                 int c) {
  KILN_CHECK(t.defined() && t.dtype() == dtype && t.device() == device && t.numel() == 2 * c, op,
             ": ", name, " must be ", dtype_name(dtype), " [", 2 * c, "] on ", device_name(device),
             " (two values per channel), got ",
             t.defined() ? t.str() : std::string("an undefined tensor"));
}

// The synchronised halves run on CUDA only (the CPU's are BatchNorm2d's host loops).
template <typename Cuda>
void sync_on_device(const char* op, Device device, Cuda cuda) {
  detail::on_device(
      op, device,
      [&] {
        KILN_FAIL(op,
                  ": a CUDA op (on the CPU, BatchNorm2d synchronises in its own host loops); "
                  "move the tensors to Device::cuda");
      },
      cuda);
}

}  // namespace

void batchnorm_moments(Tensor& moments, const Tensor& x) {
  const char* op = "batchnorm_moments";
  Device device;
  const BatchNormShape s = check_batchnorm(op, x, {{"x", &x}}, {}, &device);
  check_pairs(op, "moments", moments, DType::f64, device, s.c);
  sync_on_device(op, device, [&] {
    cuda::batchnorm_moments(moments.data<double>(), x.data<float>(), s, current_stream());
  });
}

void batchnorm_normalize(Tensor& y, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                         const Tensor& mean, const Tensor& invstd) {
  const char* op = "batchnorm_normalize";
  Device device;
  const BatchNormShape s = check_batchnorm(
      op, x, {{"x", &x}, {"y", &y}},
      {{"gamma", &gamma}, {"beta", &beta}, {"mean", &mean}, {"invstd", &invstd}}, &device);
  sync_on_device(op, device, [&] {
    cuda::batchnorm_normalize(y.data<float>(), x.data<float>(), gamma.data<float>(),
                              beta.data<float>(), mean.data<float>(), invstd.data<float>(), s,
                              current_stream());
  });
}

void batchnorm_grad_sums(Tensor& dgamma, Tensor& dbeta, Tensor& sums, const Tensor& dy,
                         const Tensor& x, const Tensor& mean, const Tensor& invstd) {
  const char* op = "batchnorm_grad_sums";
  Device device;
  const BatchNormShape s = check_batchnorm(
      op, x, {{"x", &x}, {"dy", &dy}},
      {{"dgamma", &dgamma}, {"dbeta", &dbeta}, {"mean", &mean}, {"invstd", &invstd}}, &device);
  check_pairs(op, "sums", sums, DType::f64, device, s.c);
  sync_on_device(op, device, [&] {
    cuda::batchnorm_grad_sums(dgamma.data<float>(), dbeta.data<float>(), sums.data<double>(),
                              dy.data<float>(), x.data<float>(), mean.data<float>(),
                              invstd.data<float>(), s, current_stream());
  });
}

void batchnorm_backward_dx(Tensor& dx, const Tensor& dy, const Tensor& x, const Tensor& gamma,
                           const Tensor& mean, const Tensor& invstd, const Tensor& coef) {
  const char* op = "batchnorm_backward_dx";
  Device device;
  const BatchNormShape s =
      check_batchnorm(op, x, {{"x", &x}, {"dy", &dy}, {"dx", &dx}},
                      {{"gamma", &gamma}, {"mean", &mean}, {"invstd", &invstd}}, &device);
  check_pairs(op, "coef", coef, x.dtype(), device, s.c);
  sync_on_device(op, device, [&] {
    cuda::batchnorm_backward_dx(dx.data<float>(), dy.data<float>(), x.data<float>(),
                                gamma.data<float>(), mean.data<float>(), invstd.data<float>(),
                                coef.data<float>(), s, current_stream());
  });
}

void batchnorm_forward_train(Tensor& y, Tensor& save_mean, Tensor& save_invstd,
                             Tensor& running_mean, Tensor& running_var, const Tensor& x,
                             const Tensor& gamma, const Tensor& beta, double eps, double momentum) {
  const char* op = "batchnorm_forward_train";
  Device device;
  const BatchNormShape s = check_batchnorm(op, x, {{"x", &x}, {"y", &y}},
                                           {{"save_mean", &save_mean},
                                            {"save_invstd", &save_invstd},
                                            {"running_mean", &running_mean},
                                            {"running_var", &running_var},
                                            {"gamma", &gamma},
                                            {"beta", &beta}},
                                           &device);
  KILN_CHECK(s.m >= 2, op, ": x ", x.str(),
             " has one value per channel; training needs at least 2 (as PyTorch)");
  KILN_CHECK(eps > 0 && momentum >= 0 && momentum <= 1, op, ": x ", x.str(),
             ": need eps > 0 and momentum in [0, 1], got eps ", eps, ", momentum ", momentum);
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::batchnorm_forward_train(y.data<double>(), save_mean.data<double>(),
                                       save_invstd.data<double>(), running_mean.data<double>(),
                                       running_var.data<double>(), x.data<double>(),
                                       gamma.data<double>(), beta.data<double>(), s, eps, momentum);
        } else {
          cpu::batchnorm_forward_train(y.data<float>(), save_mean.data<float>(),
                                       save_invstd.data<float>(), running_mean.data<float>(),
                                       running_var.data<float>(), x.data<float>(),
                                       gamma.data<float>(), beta.data<float>(), s, eps, momentum);
        }
      },
      [&] {
        cuda::batchnorm_forward_train(
            y.data<float>(), save_mean.data<float>(), save_invstd.data<float>(),
            running_mean.data<float>(), running_var.data<float>(), x.data<float>(),
            gamma.data<float>(), beta.data<float>(), s, eps, momentum, current_stream());
      });
}

void batchnorm_forward_eval(Tensor& y, const Tensor& x, const Tensor& gamma, const Tensor& beta,
                            const Tensor& running_mean, const Tensor& running_var, double eps) {
  const char* op = "batchnorm_forward_eval";
  Device device;
  const BatchNormShape s = check_batchnorm(op, x, {{"x", &x}, {"y", &y}},
                                           {{"gamma", &gamma},
                                            {"beta", &beta},
                                            {"running_mean", &running_mean},
                                            {"running_var", &running_var}},
                                           &device);
  KILN_CHECK(eps > 0, op, ": x ", x.str(), ": need eps > 0, got ", eps);
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::batchnorm_forward_eval(y.data<double>(), x.data<double>(), gamma.data<double>(),
                                      beta.data<double>(), running_mean.data<double>(),
                                      running_var.data<double>(), s, eps);
        } else {
          cpu::batchnorm_forward_eval(y.data<float>(), x.data<float>(), gamma.data<float>(),
                                      beta.data<float>(), running_mean.data<float>(),
                                      running_var.data<float>(), s, eps);
        }
      },
      [&] {
        cuda::batchnorm_forward_eval(y.data<float>(), x.data<float>(), gamma.data<float>(),
                                     beta.data<float>(), running_mean.data<float>(),
                                     running_var.data<float>(), s, eps, current_stream());
      });
}

void batchnorm_backward(Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& dy,
                        const Tensor& x, const Tensor& gamma, const Tensor& save_mean,
                        const Tensor& save_invstd) {
  const char* op = "batchnorm_backward";
  Device device;
  const BatchNormShape s = check_batchnorm(op, x, {{"x", &x}, {"dx", &dx}, {"dy", &dy}},
                                           {{"dgamma", &dgamma},
                                            {"dbeta", &dbeta},
                                            {"gamma", &gamma},
                                            {"save_mean", &save_mean},
                                            {"save_invstd", &save_invstd}},
                                           &device);
  detail::on_device(
      op, device,
      [&] {
        if (x.dtype() == DType::f64) {
          cpu::batchnorm_backward(dx.data<double>(), dgamma.data<double>(), dbeta.data<double>(),
                                  dy.data<double>(), x.data<double>(), gamma.data<double>(),
                                  save_mean.data<double>(), save_invstd.data<double>(), s);
        } else {
          cpu::batchnorm_backward(dx.data<float>(), dgamma.data<float>(), dbeta.data<float>(),
                                  dy.data<float>(), x.data<float>(), gamma.data<float>(),
                                  save_mean.data<float>(), save_invstd.data<float>(), s);
        }
      },
      [&] {
        cuda::batchnorm_backward(dx.data<float>(), dgamma.data<float>(), dbeta.data<float>(),
                                 dy.data<float>(), x.data<float>(), gamma.data<float>(),
                                 save_mean.data<float>(), save_invstd.data<float>(), s,
                                 current_stream());
      });
}

void batchnorm_backward_eval(Tensor& dx, const Tensor& dy, const Tensor& gamma,
                             const Tensor& running_var, double eps) {
  const char* op = "batchnorm_backward_eval";
  Device device;
  const BatchNormShape s =
      check_batchnorm(op, dy, {{"dy", &dy}, {"dx", &dx}},
                      {{"gamma", &gamma}, {"running_var", &running_var}}, &device);
  KILN_CHECK(eps > 0, op, ": dy ", dy.str(), ": need eps > 0, got ", eps);
  detail::on_device(
      op, device,
      [&] {
        if (dy.dtype() == DType::f64) {
          cpu::batchnorm_backward_eval(dx.data<double>(), dy.data<double>(), gamma.data<double>(),
                                       running_var.data<double>(), s, eps);
        } else {
          cpu::batchnorm_backward_eval(dx.data<float>(), dy.data<float>(), gamma.data<float>(),
                                       running_var.data<float>(), s, eps);
        }
      },
      [&] {
        cuda::batchnorm_backward_eval(dx.data<float>(), dy.data<float>(), gamma.data<float>(),
                                      running_var.data<float>(), s, eps, current_stream());
      });
}

}  // namespace kiln
