// layers/dropout.cpp — see dropout.h.
#include "layers/dropout.h"

#include <sstream>

#include "core/error.h"

namespace kiln {

Dropout::Dropout(double p, uint64_t seed) : p_(p), seed_(seed) {
  KILN_CHECK(p_ >= 0.0 && p_ < 1.0, "Dropout: p must be in [0, 1), got ", p_);
}

std::string Dropout::describe() const {
  std::ostringstream os;
  os << "Dropout(p=" << p_ << ")";
  return os.str();
}

void Dropout::set_placement(int64_t stride, int64_t first) {
  KILN_CHECK(stride >= 1 && first >= 0 && first < stride, "Dropout::set_placement: stride ", stride,
             ", first ", first, ": need 0 <= first < stride");
  stride_ = stride;
  first_ = first;
}

DropoutSamples Dropout::samples(const Tensor& x) const {
  if (stride_ == 1 || x.rank() == 0 || x.size(0) == 0) return {};
  return {x.numel() / x.size(0), stride_, first_};
}

std::vector<CounterRef> Dropout::counters() {
  return {{"dropout_seed", &seed_}, {"dropout_offset", &next_offset_, &device_offset_}};
}

PhiloxOffset Dropout::offset() const {
  return device_offset_ != nullptr ? PhiloxOffset::device(device_offset_)
                                   : PhiloxOffset(used_offset_);
}

void Dropout::forward_impl(const Tensor& x, Tensor& y, Mode mode) {
  if (mode == Mode::eval || p_ == 0.0) {
    y.copy_from(x);
    return;
  }
  used_offset_ = next_offset_++;
  dropout_forward(y, x, static_cast<float>(p_), seed_, offset(), samples(x));
}

void Dropout::backward_impl(const Tensor& dy, const Tensor&, Tensor* dx, bool, Mode mode) {
  if (!dx) return;
  if (mode == Mode::eval || p_ == 0.0) {
    dx->copy_from(dy);
    return;
  }
  dropout_backward(*dx, dy, static_cast<float>(p_), seed_, offset(), samples(dy));
}

}  // namespace kiln
