// tests/tensor_core/layout_kernels.cu — one-hot drivers of the emulated mma and ldmatrix
// (contracts: layout_kernels.h). Only the wrappers' own maps place anything here: the registers
// are built element by element through pack_fragment, and read back raw.
#include "core/device_code.h"

#include <type_traits>

#include "core/error.h"
#include "core/launch.h"
#include "core/tensor_core.h"
#include "tests/tensor_core/layout_kernels.h"

namespace kiln::tc_test {

namespace {

__device__ float one_hot(int lane, int sel_lane, int sel_elem, int i) {
  if (sel_lane == OneHot::kAll) return 1.0f;
  return sel_lane == lane && sel_elem == i ? 1.0f : 0.0f;
}

template <class S>
__global__ void mma_one_hot_kernel(float* __restrict__ d, const OneHot* __restrict__ specs,
                                   int runs) {
  const int lane = static_cast<int>(threadIdx.x % 32);
  for (int r = 0; r < runs; ++r) {
    const OneHot h = specs[r];
    std::uint32_t ar[S::kARegs], br[S::kBRegs];
    kiln::tc::pack_fragment<S>(ar, [&](int i) { return one_hot(lane, h.a_lane, h.a_elem, i); });
    kiln::tc::pack_fragment<S>(br, [&](int i) { return one_hot(lane, h.b_lane, h.b_elem, i); });
    float c[4], acc[4];
    for (int i = 0; i < 4; ++i) c[i] = one_hot(lane, h.c_lane, h.c_elem, i);
    if constexpr (std::is_same_v<S, kiln::tc::MmaTf32>)
      kiln::tc::mma_tf32_m16n8k8(acc, ar, br, c);
    else
      kiln::tc::mma_bf16_m16n8k16(acc, ar, br, c);
    for (int i = 0; i < 4; ++i) d[(r * 32 + lane) * 4 + i] = acc[i];
  }
}

struct alignas(16) Rows {
  std::uint16_t e[4 * 64];  // up to 4 stacked 8×8 matrices
};

template <int N, bool kTrans>
__global__ void ldmatrix_one_hot_kernel(std::uint32_t* __restrict__ out) {
  KILN_SHARED(Rows, s, );
  const int lane = static_cast<int>(threadIdx.x % 32);
  for (int run = 0; run < 64 * N; ++run) {
    for (int e = lane; e < 64 * N; e += 32) s.e[e] = e == run ? kMarker : 0;
    __syncwarp();
    const int j = lane / 8, r = lane % 8;
    const std::uint16_t* row =
        lane < 8 * N ? &s.e[8 * kiln::tc::Ldmatrix::row_lane(j, r)] : nullptr;
    std::uint32_t v[N];
    if constexpr (kTrans)
      kiln::tc::ldmatrix_trans<N>(v, row);
    else
      kiln::tc::ldmatrix<N>(v, row);
    for (int k = 0; k < N; ++k) out[(run * 32 + lane) * 4 + k] = v[k];
    __syncwarp();  // every lane has read before the next run rewrites the rows
  }
}

}  // namespace

void mma_one_hot(bool bf16, float* d, const OneHot* specs, int runs) {
  if (bf16)
    kiln::launch({dim3(1), dim3(32), 0, nullptr}, mma_one_hot_kernel<kiln::tc::MmaBf16>, d, specs,
                 runs);
  else
    kiln::launch({dim3(1), dim3(32), 0, nullptr}, mma_one_hot_kernel<kiln::tc::MmaTf32>, d, specs,
                 runs);
}

void ldmatrix_one_hot(std::uint32_t* out, int matrices, bool trans) {
  KILN_CHECK(matrices == 1 || matrices == 2 || matrices == 4,
             "ldmatrix loads 1, 2 or 4 matrices, not ", matrices);
  const LaunchConfig cfg{dim3(1), dim3(32), 0, nullptr};
  if (matrices == 1)
    trans ? kiln::launch(cfg, ldmatrix_one_hot_kernel<1, true>, out)
          : kiln::launch(cfg, ldmatrix_one_hot_kernel<1, false>, out);
  else if (matrices == 2)
    trans ? kiln::launch(cfg, ldmatrix_one_hot_kernel<2, true>, out)
          : kiln::launch(cfg, ldmatrix_one_hot_kernel<2, false>, out);
  else
    trans ? kiln::launch(cfg, ldmatrix_one_hot_kernel<4, true>, out)
          : kiln::launch(cfg, ldmatrix_one_hot_kernel<4, false>, out);
}

}  // namespace kiln::tc_test
