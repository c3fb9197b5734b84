// cub/util_shim.cuh — helpers shared by Kiln's CUB shims (emulated build only; see cub.cuh).
#pragma once

#include <cstring>
#include <type_traits>

namespace cub {
namespace kiln_shim {

// A value that shows misuse: all bits set (NaN for floating point, -1 for signed integers).
template <typename T>
inline T poison() {
  static_assert(std::is_trivially_copyable_v<T>, "CUB shims handle trivially copyable types");
  T v;
  std::memset(static_cast<void*>(&v), 0xFF, sizeof(T));
  return v;
}

struct Plus {
  template <typename T>
  T operator()(const T& a, const T& b) const {
    return a + b;
  }
};

inline int linear_tid(int dim_x, int dim_y) {
  return static_cast<int>(threadIdx.x) +
         dim_x * (static_cast<int>(threadIdx.y) + dim_y * static_cast<int>(threadIdx.z));
}

}  // namespace kiln_shim
}  // namespace cub
