// kernels/cpu/fused_block.cpp — CPU reference of the fused block batchnorm (training) → LeakyReLU →
// max pooling → dropout (kernels/fused_block.h), plain loops templated on float and double.
//
// Composed from the unfused references so that it equals them bit for bit in both types (the
// double instance is the oracle of the CUDA kernel, the float one also the CPU training path):
//   forward   cpu::batchnorm_batch_stats gives the statistics and the double map x·scale + shift
//             that batchnorm_forward_train applies; each window tap is then rounded to T, passed
//             through LeakyReLU in T and compared as maxpool2d_forward compares (first tap seeds,
//             strictly greater replaces), and the winner is kept or dropped as dropout_forward
//             does. The full-resolution tensors are never stored.
//   backward  g = the routed gradient (dy·keep/(1 − p) added to each argmax position in the
//             scatter order of maxpool2d_backward), times LeakyReLU's slope where bn(x) ≤ 0, then
//             cpu::batchnorm_backward. bn(x) is recomputed with the forward's own double map
//             (batchnorm_batch_stats again, into scratch running statistics), so the sign is the
//             forward's; the full-resolution g is a scratch of this reference only.
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "kernels/fused_block.h"

namespace kiln::cpu {
namespace {

BatchNormShape bn_shape(const Pool2dShape& p) {
  return {static_cast<int64_t>(p.n) * p.h * p.w, p.c};
}

// dropout's factor for element i of the pooled output: 1/(1 − p) when kept, 0 when dropped.
template <typename T>
T keep_factor(const FusedBlockShape& s, int64_t i) {
  const Philox4 r = philox_block(s.seed, s.offset.value, static_cast<uint64_t>(i / 4));
  const bool keep = philox_word_to_uniform(r.v[i % 4]) >= s.p;
  return keep ? T(1) / (T(1) - static_cast<T>(s.p)) : T(0);
}

template <typename T>
T leaky(T v, T slope) {
  return v > T(0) ? v : slope * v;
}

}  // namespace

template <typename T>
void fused_block_forward(T* y, uint8_t* argmax, T* save_mean, T* save_invstd, T* running_mean,
                         T* running_var, const T* x, const T* gamma, const T* beta,
                         const FusedBlockShape& s) {
  const Pool2dShape& p = s.pool;
  const int C = p.c, OH = p.out_h(), OW = p.out_w();
  std::vector<double> scale(C), shift(C);
  batchnorm_batch_stats(save_mean, save_invstd, running_mean, running_var, scale.data(),
                        shift.data(), x, gamma, beta, bn_shape(p), s.eps, s.momentum);
  const T slope = static_cast<T>(s.slope);
  const int64_t rows = static_cast<int64_t>(p.n) * OH;
#pragma omp parallel for schedule(static) if (rows * OW * C >= (1 << 14))
  for (int64_t r = 0; r < rows; ++r) {  // r = n·OH + oh
    const int64_t n = r / OH;
    const int oh = static_cast<int>(r % OH);
    for (int ow = 0; ow < OW; ++ow) {
      const int64_t o = (r * OW + ow) * C;
      for (int c = 0; c < C; ++c) {
        T best = T(0);
        uint8_t pos = 0;
        bool found = false;
        for (int i = 0; i < p.kh; ++i) {
          const int ih = oh * p.stride_h - p.pad_h + i;
          if (ih < 0 || ih >= p.h) continue;
          for (int j = 0; j < p.kw; ++j) {
            const int iw = ow * p.stride_w - p.pad_w + j;
            if (iw < 0 || iw >= p.w) continue;
            const double xv = double(x[((n * p.h + ih) * p.w + iw) * C + c]);
            const T a = leaky(static_cast<T>(xv * scale[c] + shift[c]), slope);
            if (!found || a > best) {
              best = a;
              pos = static_cast<uint8_t>(i * p.kw + j);
              found = true;
            }
          }
        }
        const T k = keep_factor<T>(s, o + c);
        y[o + c] = k != T(0) ? best * k : T(0);
        argmax[o + c] = pos;
      }
    }
  }
}

template <typename T>
void fused_block_backward(T* dx, T* dgamma, T* dbeta, const T* dy, const uint8_t* argmax,
                          const T* x, const T* gamma, const T* beta, const T* save_mean,
                          const T* save_invstd, const FusedBlockShape& s) {
  const Pool2dShape& p = s.pool;
  const BatchNormShape bs = bn_shape(p);
  const int C = p.c, OH = p.out_h(), OW = p.out_w();
  // The forward's map, recomputed from x (momentum 0 into scratch running statistics).
  std::vector<double> scale(C), shift(C);
  std::vector<T> mean(C), invstd(C), run_mean(C, T(0)), run_var(C, T(1));
  batchnorm_batch_stats(mean.data(), invstd.data(), run_mean.data(), run_var.data(), scale.data(),
                        shift.data(), x, gamma, beta, bs, s.eps, 0.0);
  const T slope = static_cast<T>(s.slope);
  const int64_t image = static_cast<int64_t>(p.h) * p.w * C;
  std::vector<T> g(static_cast<size_t>(p.n * image));
#pragma omp parallel for schedule(static) if (p.n * image >= (1 << 14))
  for (int n = 0; n < p.n; ++n) {
    T* gn = g.data() + n * image;
    for (int64_t k = 0; k < image; ++k) gn[k] = T(0);
    for (int oh = 0; oh < OH; ++oh)
      for (int ow = 0; ow < OW; ++ow)
        for (int c = 0; c < C; ++c) {
          const int64_t o = ((static_cast<int64_t>(n) * OH + oh) * OW + ow) * C + c;
          const T k = keep_factor<T>(s, o);
          const T d = k != T(0) ? dy[o] * k : T(0);
          const int i = argmax[o] / p.kw, j = argmax[o] % p.kw;
          const int ih = oh * p.stride_h - p.pad_h + i, iw = ow * p.stride_w - p.pad_w + j;
          gn[(static_cast<int64_t>(ih) * p.w + iw) * C + c] += d;
        }
    const T* xn = x + n * image;
    for (int64_t e = 0; e < image; ++e) {
      const int c = static_cast<int>(e % C);
      const T bn = static_cast<T>(double(xn[e]) * scale[c] + shift[c]);
      gn[e] = bn > T(0) ? gn[e] : slope * gn[e];
    }
  }
  batchnorm_backward(dx, dgamma, dbeta, g.data(), x, gamma, save_mean, save_invstd, bs);
}

#define KILN_INSTANTIATE_FUSED_BLOCK(T)                                                            \
  template void fused_block_forward<T>(T*, uint8_t*, T*, T*, T*, T*, const T*, const T*, const T*, \
                                       const FusedBlockShape&);                                    \
  template void fused_block_backward<T>(T*, T*, T*, const T*, const uint8_t*, const T*, const T*,  \
                                        const T*, const T*, const T*, const FusedBlockShape&);
KILN_INSTANTIATE_FUSED_BLOCK(float)
KILN_INSTANTIATE_FUSED_BLOCK(double)
#undef KILN_INSTANTIATE_FUSED_BLOCK

}  // namespace kiln::cpu
