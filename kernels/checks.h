// kernels/checks.h — argument checks and device dispatch shared by the functional API
// (kernels/<family>.cpp). Each check throws kiln::Error naming the op and the tensors' shapes,
// dtypes and devices. A check that passes builds no string: KILN_CHECK evaluates its message parts
// only when the condition fails, and a message head that names a whole call (Call below) is an
// object written into the message then, not a string built up front.
#pragma once

#include <cstddef>
#include <initializer_list>
#include <ostream>
#include <string>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "core/tensor.h"
#include "kernels/conv2d.h"
#include "kernels/pooling.h"

namespace kiln::detail {

using NamedTensor = std::pair<const char*, const Tensor*>;

// The head of a message naming a whole call, "op(a [2, 3] f32 cpu, b undefined, <extra>)": the
// tensors in order (null entries, absent optional tensors, are left out), then what `extra` writes
// (the op's parameters, e.g. "stride 1x1, pad 0x0"), after ", " when a tensor came before it.
// Written only when streamed, so pass it to KILN_CHECK as a message part.
struct NoExtra {
  void operator()(std::ostream&) const {}
};

template <typename Extra = NoExtra>
struct Call {
  const char* op;
  const NamedTensor* tensors;
  size_t count;
  Extra extra = {};

  friend std::ostream& operator<<(std::ostream& os, const Call& c) {
    os << c.op << "(";
    const char* sep = "";
    for (size_t i = 0; i < c.count; ++i) {
      const auto& [name, t] = c.tensors[i];
      if (t == nullptr) continue;
      os << sep << name << " " << (t->defined() ? t->str() : std::string("undefined"));
      sep = ", ";
    }
    if constexpr (!std::is_same_v<Extra, NoExtra>) {
      os << sep;
      c.extra(os);
    }
    return os << ")";
  }
};

template <size_t N, typename Extra = NoExtra>
Call<Extra> make_call(const char* op, const NamedTensor (&tensors)[N], Extra extra = {}) {
  return {op, tensors, N, extra};
}

// Throws the error of a CUDA request in a build without CUDA.
[[noreturn]] inline void fail_cuda_not_built(const char* op) {
  KILN_FAIL(op, ": Kiln was built without CUDA; reconfigure with -DKILN_CUDA=ON");
}

// Runs the op's CPU body or its CUDA body by device and returns what it returns. In a build
// without CUDA the CUDA body is never called (so nothing it names is needed at link time), and
// asking for the CUDA device throws fail_cuda_not_built's error.
template <typename CpuBody, typename CudaBody>
decltype(auto) on_device(const char* op, Device device, CpuBody&& cpu_body, CudaBody&& cuda_body) {
  if (device != Device::cuda) return cpu_body();
#if KILN_WITH_CUDA
  (void)op;
  return cuda_body();
#else
  (void)cuda_body;
  fail_cuda_not_built(op);
#endif
}

// "op: name [2, 3] f32 cpu" for an error message.
inline std::string describe(const char* op, const char* name, const Tensor& t) {
  return std::string(op) + ": " + name + " " + t.str();
}

inline void check_defined(const char* op, const char* name, const Tensor& t) {
  KILN_CHECK(t.defined(), op, ": ", name, " is an undefined tensor");
}

inline void check_rank(const char* op, const char* name, const Tensor& t, int rank) {
  check_defined(op, name, t);
  KILN_CHECK(t.rank() == rank, describe(op, name, t), " must have ", rank, " dimensions");
}

inline void check_shape(const char* op, const char* name, const Tensor& t, const Shape& expected) {
  check_defined(op, name, t);
  KILN_CHECK(t.shape() == expected, describe(op, name, t), " must have shape ", expected.str());
}

inline void check_numel(const char* op, const char* name, const Tensor& t, int64_t n) {
  check_defined(op, name, t);
  KILN_CHECK(t.numel() == n, describe(op, name, t), " must have ", n, " elements");
}

// All tensors on one device with one floating dtype (f32 on CUDA); returns that device.
inline Device check_float_same(const char* op,
                               std::initializer_list<std::pair<const char*, const Tensor*>> ts) {
  const Tensor* first = nullptr;
  const char* first_name = "";
  for (auto& [name, t] : ts) {
    if (t == nullptr) continue;
    check_defined(op, name, *t);
    if (first == nullptr) {
      first = t;
      first_name = name;
      KILN_CHECK(t->dtype() == DType::f32 || t->dtype() == DType::f64, describe(op, name, *t),
                 ": expected f32 or f64");
      KILN_CHECK(!(t->is_cuda() && t->dtype() == DType::f64), describe(op, name, *t),
                 ": the CUDA device computes in f32 only");
      continue;
    }
    KILN_CHECK(t->device() == first->device(), op, ": ", name, " is on ", device_name(t->device()),
               " but ", first_name, " is on ", device_name(first->device()), " (", t->str(), " vs ",
               first->str(), ")");
    KILN_CHECK(t->dtype() == first->dtype(), op, ": ", name, " is ", dtype_name(t->dtype()),
               " but ", first_name, " is ", dtype_name(first->dtype()), " (", t->str(), " vs ",
               first->str(), ")");
  }
  KILN_CHECK(first != nullptr, op, ": no tensors");
  return first->device();
}

inline void check_dtype(const char* op, const char* name, const Tensor& t, DType dtype) {
  check_defined(op, name, t);
  KILN_CHECK(t.dtype() == dtype, describe(op, name, t), " must be ", dtype_name(dtype));
}

inline void check_device(const char* op, const char* name, const Tensor& t, Device device) {
  check_defined(op, name, t);
  KILN_CHECK(t.device() == device, describe(op, name, t), " must be on ", device_name(device));
}

// The max-pooling shape from the input extents [N, H, W, C] and the window; checks the window
// (maxpool2d_* and fused_block_*). Every message starts with `call`.
template <typename Extra>
Pool2dShape pool_shape(const Call<Extra>& call, const Tensor& x_like, const Pool2dParams& p) {
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

// Shape of the convolution from the input extents [N, H, W, C_in] and the filter w; checks that the
// parameters make sense and the kernel fits the padded input (conv2d_* and
// conv2d_forward_batch_stats). Every message starts with `call`.
template <typename Extra>
Conv2dShape conv_shape(const Call<Extra>& call, const Tensor& x_like, const Tensor& w,
                       const Conv2dParams& p) {
  KILN_CHECK(x_like.rank() == 4, call, ": activations must be 4-D [N, H, W, C] (NHWC)");
  KILN_CHECK(w.rank() == 4, call, ": w must be 4-D [C_out, KH, KW, C_in]");
  KILN_CHECK(p.stride_h >= 1 && p.stride_w >= 1 && p.pad_h >= 0 && p.pad_w >= 0, call,
             ": strides must be >= 1 and padding >= 0");
  Conv2dShape s;
  s.n = static_cast<int>(x_like.size(0));
  s.h = static_cast<int>(x_like.size(1));
  s.w = static_cast<int>(x_like.size(2));
  s.c_in = static_cast<int>(x_like.size(3));
  s.c_out = static_cast<int>(w.size(0));
  s.kh = static_cast<int>(w.size(1));
  s.kw = static_cast<int>(w.size(2));
  s.stride_h = p.stride_h;
  s.stride_w = p.stride_w;
  s.pad_h = p.pad_h;
  s.pad_w = p.pad_w;
  KILN_CHECK(w.size(3) == s.c_in, call, ": input channels differ: ", s.c_in, " in the activation, ",
             w.size(3), " in w");
  KILN_CHECK(s.h + 2 * s.pad_h >= s.kh && s.w + 2 * s.pad_w >= s.kw, call, ": the ", s.kh, "x",
             s.kw, " kernel does not fit the padded ", s.h, "x", s.w, " input");
  return s;
}

}  // namespace kiln::detail
