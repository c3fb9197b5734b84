// kernels/cpu/linear.cpp — CPU reference of the fully connected layer (plain loops; the double
// instance is the oracle). x [N][IN], w [OUT][IN], b [OUT], y [N][OUT].
//
//   forward:          y[n][o]   = b[o] + Σ_i x[n][i] · w[o][i]         (y = x · wᵀ + b)
//   backward-data:    dx[n][i]  = Σ_o dy[n][o] · w[o][i]               (dx = dy · w, overwritten)
//   backward-weight:  dw[o][i] += Σ_n dy[n][o] · x[n][i]               (dw += dyᵀ · x, accumulated)
//                     db[o]    += Σ_n dy[n][o]                         (accumulated)
#include "kernels/linear.h"

namespace kiln::cpu {

template <typename T>
void linear_forward(T* y, const T* x, const T* w, const T* b, const LinearShape& s) {
  for (int n = 0; n < s.n; ++n) {
    const T* xn = x + static_cast<int64_t>(n) * s.in;  // [IN]
    for (int o = 0; o < s.out; ++o) {
      const T* wo = w + static_cast<int64_t>(o) * s.in;  // [IN]
      T acc = b != nullptr ? b[o] : T(0);
      for (int i = 0; i < s.in; ++i) acc += xn[i] * wo[i];
      y[static_cast<int64_t>(n) * s.out + o] = acc;
    }
  }
}

template <typename T>
void linear_backward_data(T* dx, const T* dy, const T* w, const LinearShape& s) {
  for (int n = 0; n < s.n; ++n) {
    const T* dyn = dy + static_cast<int64_t>(n) * s.out;  // [OUT]
    for (int i = 0; i < s.in; ++i) {
      T acc = 0;
      for (int o = 0; o < s.out; ++o) acc += dyn[o] * w[static_cast<int64_t>(o) * s.in + i];
      dx[static_cast<int64_t>(n) * s.in + i] = acc;
    }
  }
}

template <typename T>
void linear_backward_weight(T* dw, T* db, const T* dy, const T* x, const LinearShape& s) {
  for (int o = 0; o < s.out; ++o) {
    for (int i = 0; i < s.in; ++i) {
      T acc = 0;
      for (int n = 0; n < s.n; ++n)
        acc += dy[static_cast<int64_t>(n) * s.out + o] * x[static_cast<int64_t>(n) * s.in + i];
      dw[static_cast<int64_t>(o) * s.in + i] += acc;
    }
    if (db != nullptr) {
      T acc = 0;
      for (int n = 0; n < s.n; ++n) acc += dy[static_cast<int64_t>(n) * s.out + o];
      db[o] += acc;
    }
  }
}

#define KILN_INSTANTIATE_LINEAR(T)                                                       \
  template void linear_forward<T>(T*, const T*, const T*, const T*, const LinearShape&); \
  template void linear_backward_data<T>(T*, const T*, const T*, const LinearShape&);     \
  template void linear_backward_weight<T>(T*, T*, const T*, const T*, const LinearShape&);
KILN_INSTANTIATE_LINEAR(float)
KILN_INSTANTIATE_LINEAR(double)
#undef KILN_INSTANTIATE_LINEAR

}  // namespace kiln::cpu
