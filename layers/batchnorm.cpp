// layers/batchnorm.cpp — see batchnorm.h.
#include "layers/batchnorm.h"

#include <cmath>
#include <sstream>
#include <utility>
#include <vector>

#include "core/error.h"

namespace kiln {

BatchNorm2d::BatchNorm2d(int channels, double eps, double momentum)
    : channels_(channels), eps_(eps), momentum_(momentum) {
  KILN_CHECK(channels_ > 0, "BatchNorm2d: channels must be positive, got ", channels_);
  weight_ = make_param("weight", {channels_}, ParamInit::constant(1.0));
  bias_ = make_param("bias", {channels_}, ParamInit::constant(0.0));
  running_mean_ = Tensor::zeros({channels_});
  running_var_ = Tensor::full({channels_}, 1.0);
  init(0);
}

std::string BatchNorm2d::describe() const {
  std::ostringstream os;
  os << "BatchNorm2d(" << channels_ << ", eps=" << eps_ << ", momentum=" << momentum_ << ")";
  return os.str();
}

Shape BatchNorm2d::output_shape(const Shape& x) const {
  KILN_CHECK(x.rank() >= 2 && x[x.rank() - 1] == channels_, describe(), ": expected an input with ",
             channels_, " channels last, got ", x.str());
  return x;
}

std::vector<ParamRef> BatchNorm2d::params() {
  return {ref(weight_), ref(bias_)};
}

std::vector<BufferRef> BatchNorm2d::buffers() {
  return {{"running_mean", &running_mean_, nullptr},
          {"running_var", &running_var_, nullptr},
          {"num_batches_tracked", nullptr, &num_batches_tracked_}};
}

void BatchNorm2d::reset_buffers() {
  fill_tensor(running_mean_, 0.0);
  fill_tensor(running_var_, 1.0);
  num_batches_tracked_ = 0;
}

void BatchNorm2d::release_workspaces() {
  save_mean_ = Tensor();
  save_invstd_ = Tensor();
  scratch_dgamma_ = Tensor();
  scratch_dbeta_ = Tensor();
  sync_pairs_ = Tensor();
  sync_coef_ = Tensor();
  dx_scratch_.release();
}

void BatchNorm2d::forward_impl(const Tensor& x, Tensor& y, Mode mode) {
  if (mode == Mode::eval) {
    batchnorm_forward_eval(y, x, weight_.value, bias_.value, running_mean_, running_var_, eps_);
    return;
  }
  // Synchronised, the global batch needs two values (checked on the global count).
  KILN_CHECK(reducer_ || x.numel() / channels_ > 1, describe(),
             ": training needs more than one value per channel (got input ", x.str(),
             "); use a batch larger than 1 or Mode::eval");
  if (!save_mean_.defined()) {
    save_mean_ = Tensor({channels_}, dtype_, device_);
    save_invstd_ = Tensor({channels_}, dtype_, device_);
  }
  if (reducer_) {
    if (dtype_ == DType::f64) {
      forward_synced<double>(x, y);
    } else {
      forward_synced<float>(x, y);
    }
    ++num_batches_tracked_;
    return;
  }
  batchnorm_forward_train(y, save_mean_, save_invstd_, running_mean_, running_var_, x,
                          weight_.value, bias_.value, eps_, momentum_);
  ++num_batches_tracked_;
}

void BatchNorm2d::backward_impl(const Tensor& dy, const Tensor& x, Tensor* dx, bool param_grads,
                                Mode mode) {
  if (mode == Mode::eval) {
    if (dx) batchnorm_backward_eval(*dx, dy, weight_.value, running_var_, eps_);
    return;
  }
  if (!dx && !param_grads) return;
  Tensor* dgamma = &weight_.grad;
  Tensor* dbeta = &bias_.grad;
  if (!param_grads) {
    if (!scratch_dgamma_.defined()) {
      scratch_dgamma_ = Tensor({channels_}, dtype_, device_);
      scratch_dbeta_ = Tensor({channels_}, dtype_, device_);
    }
    dgamma = &scratch_dgamma_;
    dbeta = &scratch_dbeta_;
  }
  // The fused kernel always writes dx; without a caller's buffer it goes to a workspace.
  Tensor* out = dx;
  if (!out) out = &dx_scratch_.get(x.shape(), dtype_, device_);
  if (reducer_) {
    if (dtype_ == DType::f64) {
      backward_synced<double>(*out, *dgamma, *dbeta, dy, x);
    } else {
      backward_synced<float>(*out, *dgamma, *dbeta, dy, x);
    }
    return;
  }
  batchnorm_backward(*out, *dgamma, *dbeta, dy, x, weight_.value, save_mean_, save_invstd_);
}

// ---- synchronised statistics (x seen as [M][C], M = N·H·W on this rank) -------------------------
// On the CPU: host loops. On CUDA: the per-channel values come from the device (kernels/
// batchnorm.h's synchronised halves) and only [C]-sized vectors cross to the host, to be merged
// across the ranks there, in the same order and formulas as the host path.

namespace {
// The host copy of a device tensor, or a view of a host one; back() writes a copy back.
Tensor on_host(const Tensor& t) {
  return t.is_cuda() ? t.to(Device::cpu) : t.view(t.shape());
}
Tensor on_host(Tensor& t) {
  return t.is_cuda() ? t.to(Device::cpu) : t.view(t.shape());
}
void back(Tensor& t, const Tensor& host) {
  if (t.is_cuda()) t.copy_from(host);
}
}  // namespace

Tensor& BatchNorm2d::sync_pairs() {
  KILN_CHECK(dtype_ == DType::f32, describe(),
             ": a synchronised batchnorm on CUDA runs in f32 (convert with to(DType::f32))");
  if (!sync_pairs_.defined()) sync_pairs_ = Tensor({2 * int64_t(channels_)}, DType::f64, device_);
  return sync_pairs_;
}

// The device's [2][C] f64 values, on the host.
static std::vector<double> to_host_vector(const Tensor& pairs) {
  return pairs.to(Device::cpu).to_vector<double>();
}

template <typename T>
void BatchNorm2d::forward_synced(const Tensor& x_in, Tensor& y) {
  const int64_t C = channels_, M = x_in.numel() / C;
  const bool device = x_in.is_cuda();
  const Tensor x = device ? Tensor() : x_in.view(x_in.shape());
  const T* xp = device ? nullptr : x.data<T>();
  // This rank's count, mean and M2 per channel: on the device from shifted sums, or two passes
  // over its own values on the host.
  std::vector<double> mean(size_t(C), 0.0), m2(size_t(C), 0.0);
  if (device) {
    batchnorm_moments(sync_pairs(), x_in);
    const std::vector<double> moments = to_host_vector(sync_pairs_);
    mean.assign(moments.begin(), moments.begin() + C);
    m2.assign(moments.begin() + C, moments.end());
  } else {
    for (int64_t i = 0; i < M; ++i)
      for (int64_t c = 0; c < C; ++c) mean[size_t(c)] += double(xp[i * C + c]);
    for (double& m : mean) m /= double(M);
    for (int64_t i = 0; i < M; ++i)
      for (int64_t c = 0; c < C; ++c) {
        const double d = double(xp[i * C + c]) - mean[size_t(c)];
        m2[size_t(c)] += d * d;
      }
  }
  // Global count and mean: Σ n_r and Σ n_r·mean_r.
  std::vector<double> buf(static_cast<size_t>(C) + 1);
  buf[0] = double(M);
  for (int64_t c = 0; c < C; ++c) buf[size_t(c) + 1] = double(M) * mean[size_t(c)];
  reducer_(buf.data(), C + 1);
  const double total = buf[0];
  KILN_CHECK(total > 1, describe(),
             ": training needs more than one value per channel in the "
             "global batch");
  std::vector<double> mu(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) mu[size_t(c)] = buf[size_t(c) + 1] / total;
  // Global M2 (Chan): Σ_r M2_r + n_r (mean_r − μ)².
  std::vector<double> m2g(static_cast<size_t>(C));
  for (int64_t c = 0; c < C; ++c) {
    const double d = mean[size_t(c)] - mu[size_t(c)];
    m2g[size_t(c)] = m2[size_t(c)] + double(M) * d * d;
  }
  reducer_(m2g.data(), C);
  share_ = double(M) / total;

  Tensor rm = on_host(running_mean_), rv = on_host(running_var_);
  Tensor sm({C}, dtype_), si({C}, dtype_);
  T *rmp = rm.data<T>(), *rvp = rv.data<T>();
  T *smp = sm.data<T>(), *sip = si.data<T>();
  for (int64_t c = 0; c < C; ++c) {
    const double var = m2g[size_t(c)] / total;
    smp[c] = T(mu[size_t(c)]);
    sip[c] = T(1.0 / std::sqrt(var + eps_));
    rmp[c] = T((1 - momentum_) * double(rmp[c]) + momentum_ * mu[size_t(c)]);
    rvp[c] = T((1 - momentum_) * double(rvp[c]) + momentum_ * var * total / (total - 1));
  }
  save_mean_.copy_from(sm);
  save_invstd_.copy_from(si);
  back(running_mean_, rm);
  back(running_var_, rv);
  if (device) {
    batchnorm_normalize(y, x_in, weight_.value, bias_.value, save_mean_, save_invstd_);
    return;
  }
  const T *g = weight_.value.data<T>(), *b = bias_.value.data<T>();
  T* yp = y.data<T>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t c = 0; c < C; ++c)
      yp[i * C + c] =
          T(double(g[c]) * (double(xp[i * C + c]) - mu[size_t(c)]) * double(sip[c]) + double(b[c]));
}

template <typename T>
void BatchNorm2d::backward_synced(Tensor& dx, Tensor& dgamma, Tensor& dbeta, const Tensor& dy_in,
                                  const Tensor& x_in) {
  const int64_t C = channels_, M = x_in.numel() / C;
  if (x_in.is_cuda()) {
    // This rank's Σdy and Σdy·x̂ (and its dγ, dβ) on the device; the merge as below.
    batchnorm_grad_sums(dgamma, dbeta, sync_pairs(), dy_in, x_in, save_mean_, save_invstd_);
    std::vector<double> sums = to_host_vector(sync_pairs_);
    for (double& s : sums) s *= share_;
    reducer_(sums.data(), 2 * C);
    const double total = double(M) / share_;
    std::vector<float> coef(sums.size());
    for (size_t i = 0; i < sums.size(); ++i) coef[i] = float(sums[i] / share_ / total);
    if (!sync_coef_.defined()) sync_coef_ = Tensor({2 * C}, DType::f32, device_);
    sync_coef_.copy_from(Tensor::from_vector<float>({2 * C}, coef));
    batchnorm_backward_dx(dx, dy_in, x_in, weight_.value, save_mean_, save_invstd_, sync_coef_);
    return;
  }
  const Tensor x = on_host(x_in), dy = on_host(dy_in);
  const Tensor sm = on_host(std::as_const(save_mean_)), si = on_host(std::as_const(save_invstd_)),
               gamma = on_host(std::as_const(weight_.value));
  const T *xp = x.data<T>(), *dyp = dy.data<T>(), *mu = sm.data<T>(), *is = si.data<T>(),
          *g = gamma.data<T>();
  // This rank's Σdy and Σdy·x̂; dγ and dβ are its own (the gradient all-reduce averages them).
  std::vector<double> sums(size_t(2 * C), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const double d = double(dyp[i * C + c]);
      sums[size_t(c)] += d;
      sums[size_t(C + c)] += d * (double(xp[i * C + c]) - double(mu[c])) * double(is[c]);
    }
  Tensor dg = on_host(dgamma), db = on_host(dbeta);
  T *dgp = dg.data<T>(), *dbp = db.data<T>();
  for (int64_t c = 0; c < C; ++c) {
    dgp[c] = T(double(dgp[c]) + sums[size_t(C + c)]);
    dbp[c] = T(double(dbp[c]) + sums[size_t(c)]);
  }
  // Each rank's dy is of its own mean loss; share_ · dy is of the global batch's. The global sums
  // of those, back in this rank's scale (÷ share_), over the global count M / share_.
  for (double& s : sums) s *= share_;
  reducer_(sums.data(), 2 * C);
  const double total = double(M) / share_;
  Tensor dxh(x.shape(), dtype_);
  T* dxp = dxh.data<T>();
  for (int64_t i = 0; i < M; ++i)
    for (int64_t c = 0; c < C; ++c) {
      const double xhat = (double(xp[i * C + c]) - double(mu[c])) * double(is[c]);
      const double mean_dy = sums[size_t(c)] / share_ / total;
      const double mean_dy_xhat = sums[size_t(C + c)] / share_ / total;
      dxp[i * C + c] = T(double(g[c]) * double(is[c]) *
                         (double(dyp[i * C + c]) - mean_dy - xhat * mean_dy_xhat));
    }
  dx.copy_from(dxh);
  back(dgamma, dg);
  back(dbeta, db);
}

}  // namespace kiln
