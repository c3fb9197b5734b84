// core/tensor.h — Kiln's Tensor: up to 4-D, float32/float64 (plus int32/uint8 for labels and pooling
// argmax), on the CPU or the CUDA device.
//
// A Tensor owns or views one buffer on one device. It is move-only: copies are explicit (`clone()`,
// `to(device)`). `view(shape)` and `slice(offset, shape)` share the buffer (the storage stays alive
// while any view does). Shapes print as "[2, 48, 48, 1] f32 cpu" in error messages.
//
// READ-ONLY VIEWS: a view taken from a `const Tensor` is read-only, so `const` cannot be shed by
// taking a view (a `Tensor` returned by value can always be bound to a non-const name, so the
// return type could not carry it). Every write goes through the non-const raw() / data<T>() (and
// fill, copy_from, which use them), and on a read-only view those throw a kiln::Error saying so;
// reading (the const overloads, to(), clone(), to_vector()) works as on any tensor. A view of a
// read-only view is read-only; clone() and to() give writable tensors. The layers use this for the
// views they keep of their const inputs (the saved forward input, Flatten's output).
//
// Every copy of a CUDA tensor (`to`, `clone`, `copy_from`, `fill`, `from_vector`, `to_vector`) is
// kiln::copy_bytes on the calling thread's current stream (core/stream.h): it runs after the work
// queued there so far, and one that involves host memory returns only when it has finished, so a
// host vector read from a device tensor holds the values of every op queued on that stream before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>
#include <vector>

#include "core/memory.h"

namespace kiln {

enum class DType { f32, f64, i32, u8 };

size_t dtype_size(DType dtype);
const char* dtype_name(DType dtype);

template <typename T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::u8;
}

// A shape of 0 to 4 extents; every extent must be > 0.
class Shape {
 public:
  static constexpr int kMaxDims = 4;
  Shape() = default;
  Shape(std::initializer_list<int64_t> dims);
  explicit Shape(const std::vector<int64_t>& dims);
  int rank() const { return rank_; }
  int64_t operator[](int i) const;
  int64_t numel() const;
  bool operator==(const Shape& o) const;
  bool operator!=(const Shape& o) const { return !(*this == o); }
  std::string str() const;  // "[2, 48, 48, 1]"
  std::vector<int64_t> dims() const { return {dims_, dims_ + rank_}; }

 private:
  int64_t dims_[kMaxDims] = {0, 0, 0, 0};
  int rank_ = 0;
};

class Tensor {
 public:
  Tensor() = default;  // an empty tensor: defined() is false
  Tensor(Shape shape, DType dtype = DType::f32, Device device = Device::cpu);
  Tensor(Tensor&&) noexcept = default;
  Tensor& operator=(Tensor&&) noexcept = default;
  Tensor(const Tensor&) = delete;  // copies are explicit: clone(), to()
  Tensor& operator=(const Tensor&) = delete;

  static Tensor zeros(Shape shape, DType dtype = DType::f32, Device device = Device::cpu);
  static Tensor full(Shape shape, double value, DType dtype = DType::f32,
                     Device device = Device::cpu);
  template <typename T>
  static Tensor from_vector(Shape shape, const std::vector<T>& values, Device device = Device::cpu);

  bool defined() const { return storage_ != nullptr; }
  // True for a view taken from a const Tensor (or from another read-only view): no writes.
  bool read_only() const { return read_only_; }
  // How many tensors share this one's storage (it and every view of it alive); 0 when undefined.
  long storage_users() const { return storage_.use_count(); }
  const Shape& shape() const { return shape_; }
  int rank() const { return shape_.rank(); }
  int64_t size(int i) const { return shape_[i]; }
  int64_t numel() const { return shape_.numel(); }
  size_t bytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype_); }
  DType dtype() const { return dtype_; }
  Device device() const { return device_; }
  bool is_cuda() const { return device_ == Device::cuda; }
  std::string str() const;  // "[2, 48, 48, 1] f32 cpu"

  // Typed access to the (host or device) pointer; throws if T does not match dtype(). The non-const
  // overloads (write access) also throw on a read-only view.
  template <typename T>
  T* data();
  template <typename T>
  const T* data() const;
  void* raw();
  const void* raw() const;

  Tensor clone() const;
  Tensor to(Device device) const;
  // Views share the buffer: same numel, new shape. Writable unless this tensor is read-only; the
  // const overloads return read-only views.
  Tensor view(Shape shape);
  Tensor view(Shape shape) const;
  // Flatten all dims after the first: [N, ...] -> [N, rest].
  Tensor flatten() { return view({size(0), numel() / size(0)}); }
  Tensor flatten() const { return view({size(0), numel() / size(0)}); }
  // A view of `shape.numel()` elements starting `offset` elements into this tensor's buffer.
  Tensor slice(int64_t offset, Shape shape);
  Tensor slice(int64_t offset, Shape shape) const;

  // Set every element to `value` (any device). Throws on a read-only view, as copy_from does.
  void fill(double value);
  // Copy `src` (same shape and dtype, any device) into this tensor's buffer.
  void copy_from(const Tensor& src);
  // Copy to a host vector (any device).
  template <typename T>
  std::vector<T> to_vector() const;

 private:
  Tensor alias(Shape shape, int64_t offset, bool read_only) const;

  std::shared_ptr<Buffer> storage_;
  size_t offset_bytes_ = 0;
  bool read_only_ = false;
  Shape shape_;
  DType dtype_ = DType::f32;
  Device device_ = Device::cpu;
};

}  // namespace kiln
