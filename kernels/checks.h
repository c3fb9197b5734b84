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

}  // namespace kiln::detail
