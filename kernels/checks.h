// kernels/checks.h — argument checks shared by the functional API (kernels/<family>.cpp).
// Each throws kiln::Error naming the op and the tensors' shapes, dtypes and devices.
#pragma once

#include <initializer_list>
#include <string>

#include "core/error.h"
#include "core/tensor.h"

namespace kiln::detail {

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

// Throws when the CUDA device is requested in a build without it.
inline void check_cuda_built(const char* op) {
#if !KILN_WITH_CUDA
  KILN_FAIL(op, ": Kiln was built without CUDA; reconfigure with -DKILN_CUDA=ON");
#else
  (void)op;
#endif
}

}  // namespace kiln::detail
