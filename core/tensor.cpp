// core/tensor.cpp — see tensor.h.
#include "core/tensor.h"

#include <cstring>
#include <new>
#include <sstream>

#include "core/bytes.h"
#include "core/error.h"

namespace kiln {

size_t dtype_size(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return 4;
    case DType::f64:
      return 8;
    case DType::i32:
      return 4;
    case DType::u8:
      return 1;
  }
  return 0;
}

const char* dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32:
      return "f32";
    case DType::f64:
      return "f64";
    case DType::i32:
      return "i32";
    case DType::u8:
      return "u8";
  }
  return "?";
}

Shape::Shape(std::initializer_list<int64_t> dims) : Shape(std::vector<int64_t>(dims)) {}

Shape::Shape(const std::vector<int64_t>& dims) {
  KILN_CHECK(dims.size() <= kMaxDims, "a Tensor has at most ", kMaxDims, " dimensions, got ",
             dims.size());
  rank_ = static_cast<int>(dims.size());
  for (int i = 0; i < rank_; ++i) dims_[i] = dims[i];
  for (int i = 0; i < rank_; ++i)
    KILN_CHECK(dims_[i] > 0, "every extent of a shape must be positive, got ", str());
}

int64_t Shape::operator[](int i) const {
  KILN_CHECK(i >= 0 && i < rank_, "dimension ", i, " out of range for shape ", str());
  return dims_[i];
}

int64_t Shape::numel() const {
  int64_t n = 1;
  for (int i = 0; i < rank_; ++i) n *= dims_[i];
  return n;
}

bool Shape::operator==(const Shape& o) const {
  if (rank_ != o.rank_) return false;
  for (int i = 0; i < rank_; ++i)
    if (dims_[i] != o.dims_[i]) return false;
  return true;
}

std::string Shape::str() const {
  std::ostringstream os;
  os << "[";
  for (int i = 0; i < rank_; ++i) os << (i ? ", " : "") << dims_[i];
  os << "]";
  return os.str();
}

namespace {

// The storage of a new tensor; an allocation failure names the tensor (its shape and dtype) as
// well as the size, so that "out of memory" says what was being allocated.
std::shared_ptr<Buffer> tensor_storage(const Shape& shape, DType dtype, Device device) {
  uint64_t bytes = 0;
  KILN_CHECK(!__builtin_mul_overflow(uint64_t(shape.numel()), uint64_t(dtype_size(dtype)), &bytes),
             "a ", shape.str(), " ", dtype_name(dtype),
             " tensor has more bytes than 64 bits count");
  try {
    return std::make_shared<Buffer>(static_cast<size_t>(bytes), device);
  } catch (const Error& e) {
    KILN_FAIL(e.what(), " for a ", shape.str(), " ", dtype_name(dtype), " tensor");
  } catch (const std::bad_alloc&) {
    KILN_FAIL("out of host memory allocating ", byte_count(bytes), " for a ", shape.str(), " ",
              dtype_name(dtype), " tensor");
  }
}

}  // namespace

Tensor::Tensor(Shape shape, DType dtype, Device device)
    : storage_(tensor_storage(shape, dtype, device)),
      shape_(shape),
      dtype_(dtype),
      device_(device) {}

Tensor Tensor::zeros(Shape shape, DType dtype, Device device) {
  Tensor t(shape, dtype, device);
  t.fill(0.0);
  return t;
}

Tensor Tensor::full(Shape shape, double value, DType dtype, Device device) {
  Tensor t(shape, dtype, device);
  t.fill(value);
  return t;
}

template <typename T>
Tensor Tensor::from_vector(Shape shape, const std::vector<T>& values, Device device) {
  KILN_CHECK(static_cast<int64_t>(values.size()) == shape.numel(), "from_vector: ", values.size(),
             " values for shape ", shape.str());
  Tensor t(shape, dtype_of<T>(), device);
  copy_bytes(t.raw(), device, values.data(), Device::cpu, t.bytes());
  return t;
}

std::string Tensor::str() const {
  if (!defined()) return "(undefined tensor)";
  return shape_.str() + " " + dtype_name(dtype_) + " " + device_name(device_);
}

void* Tensor::raw() {
  KILN_CHECK(defined(), "access to an undefined tensor");
  KILN_CHECK(!read_only_, "write access to ", str(),
             ", a read-only view (taken from a const Tensor): write through the tensor it views, "
             "or clone() it");
  return static_cast<char*>(storage_->data()) + offset_bytes_;
}

const void* Tensor::raw() const {
  KILN_CHECK(defined(), "access to an undefined tensor");
  return static_cast<const char*>(storage_->data()) + offset_bytes_;
}

template <typename T>
T* Tensor::data() {
  KILN_CHECK(dtype_ == dtype_of<T>(), "tensor ", str(), " accessed as ", dtype_name(dtype_of<T>()));
  return static_cast<T*>(raw());
}

template <typename T>
const T* Tensor::data() const {
  KILN_CHECK(dtype_ == dtype_of<T>(), "tensor ", str(), " accessed as ", dtype_name(dtype_of<T>()));
  return static_cast<const T*>(raw());
}

Tensor Tensor::clone() const {
  return to(device_);
}

Tensor Tensor::to(Device device) const {
  KILN_CHECK(defined(), "to(): undefined tensor");
  Tensor t(shape_, dtype_, device);
  copy_bytes(t.raw(), device, raw(), device_, bytes());
  return t;
}

Tensor Tensor::alias(Shape shape, int64_t offset, bool read_only) const {
  Tensor t;
  t.storage_ = storage_;
  t.offset_bytes_ = offset_bytes_ + static_cast<size_t>(offset) * dtype_size(dtype_);
  t.read_only_ = read_only;
  t.shape_ = shape;
  t.dtype_ = dtype_;
  t.device_ = device_;
  return t;
}

namespace {
void check_view(const Tensor& t, const Shape& shape) {
  KILN_CHECK(shape.numel() == t.numel(), "view: cannot view ", t.str(), " as ", shape.str(),
             " (element counts differ)");
}
void check_slice(const Tensor& t, int64_t offset, const Shape& shape) {
  KILN_CHECK(offset >= 0 && offset + shape.numel() <= t.numel(), "slice: ", shape.str(),
             " at offset ", offset, " does not fit in ", t.str());
}
}  // namespace

Tensor Tensor::view(Shape shape) {
  check_view(*this, shape);
  return alias(shape, 0, read_only_);
}

Tensor Tensor::view(Shape shape) const {
  check_view(*this, shape);
  return alias(shape, 0, true);
}

Tensor Tensor::slice(int64_t offset, Shape shape) {
  check_slice(*this, offset, shape);
  return alias(shape, offset, read_only_);
}

Tensor Tensor::slice(int64_t offset, Shape shape) const {
  check_slice(*this, offset, shape);
  return alias(shape, offset, true);
}

namespace {
template <typename T>
void fill_host(void* p, int64_t n, double value) {
  T* q = static_cast<T*>(p);
  for (int64_t i = 0; i < n; ++i) q[i] = static_cast<T>(value);
}
void fill_typed(void* p, DType dtype, int64_t n, double value) {
  switch (dtype) {
    case DType::f32:
      fill_host<float>(p, n, value);
      break;
    case DType::f64:
      fill_host<double>(p, n, value);
      break;
    case DType::i32:
      fill_host<int32_t>(p, n, value);
      break;
    case DType::u8:
      fill_host<uint8_t>(p, n, value);
      break;
  }
}
}  // namespace

void Tensor::fill(double value) {
  if (device_ == Device::cpu) {
    fill_typed(raw(), dtype_, numel(), value);
    return;
  }
  // Filling the device is rare (initialisation): stage it through the host.
  Tensor host(shape_, dtype_, Device::cpu);
  fill_typed(host.raw(), dtype_, numel(), value);
  copy_from(host);
}

void Tensor::copy_from(const Tensor& src) {
  KILN_CHECK(src.shape_ == shape_ && src.dtype_ == dtype_, "copy_from: source ", src.str(),
             " does not match destination ", str());
  copy_bytes(raw(), device_, src.raw(), src.device_, bytes());
}

template <typename T>
std::vector<T> Tensor::to_vector() const {
  KILN_CHECK(dtype_ == dtype_of<T>(), "to_vector: tensor ", str(), " read as ",
             dtype_name(dtype_of<T>()));
  std::vector<T> out(static_cast<size_t>(numel()));
  copy_bytes(out.data(), Device::cpu, raw(), device_, bytes());
  return out;
}

#define KILN_TENSOR_INSTANTIATE(T)                                              \
  template Tensor Tensor::from_vector<T>(Shape, const std::vector<T>&, Device); \
  template T* Tensor::data<T>();                                                \
  template const T* Tensor::data<T>() const;                                    \
  template std::vector<T> Tensor::to_vector<T>() const;
KILN_TENSOR_INSTANTIATE(float)
KILN_TENSOR_INSTANTIATE(double)
KILN_TENSOR_INSTANTIATE(int32_t)
KILN_TENSOR_INSTANTIATE(uint8_t)
#undef KILN_TENSOR_INSTANTIATE

}  // namespace kiln
