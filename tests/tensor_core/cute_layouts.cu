// tests/tensor_core/cute_layouts.cu — the oracle of the fragment-layout test: CUTLASS's cute
// evaluates its own layouts of the instructions Kiln wraps (core/tensor_core.h) and this program
// writes them down as (lane, element) → matrix coordinate. Host code only, compiled by nvcc (cute's
// headers need it) and run at build time; no GPU is involved. CUTLASS is a test oracle here, never
// part of the library.
//
// Output, one line per fact (the format test_fragment_layouts.cpp reads):
//   <op> A|B|C <lane> <element> <row> <col>   mma: A as (m, k), B as (k, n), C as (m, n);
//                                              element i of the lane's fragment (cute's value i)
//   <op> D <lane> <element> <matrix> <row> <col>   ldmatrix: where the lane's 16-bit element e
//                                              (register e/2, half e%2) comes from
//   <op> S <lane> <matrix> <row>              ldmatrix: the row the lane's address names
// cute's conventions: an mma's A layout maps (thread, value) to m + M·k, B to n + N·k, C to
// m + M·n; an ldmatrix's layouts map (thread, value bit) to a bit of the 8·count rows of 128 bits.
#include <cute/atom/copy_traits_sm75.hpp>
#include <cute/atom/mma_traits_sm80.hpp>

#include <cstdio>

namespace {

using namespace cute;

FILE* out = nullptr;

template <class Traits>
void mma(const char* op) {
  using Shape = typename Traits::Shape_MNK;
  constexpr int M = size<0>(Shape{}), N = size<1>(Shape{});
  const typename Traits::ALayout a{};
  const typename Traits::BLayout b{};
  const typename Traits::CLayout c{};
  // For the build log: cute's own notation, e.g. ((_4,_8),(_2,_2)):((_16,_1),(_8,_64)).
  std::printf("%s: A ", op);
  print(a);
  std::printf(", B ");
  print(b);
  std::printf(", C ");
  print(c);
  std::printf("\n");
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < size<1>(a); ++i) {
      const int x = a(lane, i);
      std::fprintf(out, "%s A %d %d %d %d\n", op, lane, i, x % M, x / M);
    }
    for (int i = 0; i < size<1>(b); ++i) {
      const int x = b(lane, i);
      std::fprintf(out, "%s B %d %d %d %d\n", op, lane, i, x / N, x % N);  // (k, n)
    }
    for (int i = 0; i < size<1>(c); ++i) {
      const int x = c(lane, i);
      std::fprintf(out, "%s C %d %d %d %d\n", op, lane, i, x % M, x / M);
    }
  }
}

template <class Op>
void ldmatrix(const char* op, int matrices) {
  using Traits = Copy_Traits<Op>;
  const typename Traits::SrcLayout src{};
  const typename Traits::DstLayout dst{};
  for (int lane = 0; lane < 32; ++lane) {
    if (lane < 8 * matrices) {
      const int row = src(lane, 0) / 128;
      std::fprintf(out, "%s S %d %d %d\n", op, lane, row / 8, row % 8);
    }
    for (int e = 0; e < 2 * matrices; ++e) {
      const int element = dst(lane, 16 * e) / 16;  // index into the stacked 8·count × 8 rows
      std::fprintf(out, "%s D %d %d %d %d %d\n", op, lane, e, element / 64, element % 64 / 8,
                   element % 8);
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s OUTPUT\n", argv[0]);
    return 2;
  }
  out = std::fopen(argv[1], "w");
  if (out == nullptr) {
    std::perror(argv[1]);
    return 1;
  }
  mma<MMA_Traits<SM80_16x8x8_F32TF32TF32F32_TN>>("tf32_m16n8k8");
  mma<MMA_Traits<SM80_16x8x16_F32BF16BF16F32_TN>>("bf16_m16n8k16");
  ldmatrix<SM75_U32x1_LDSM_N>("ldmatrix_x1", 1);
  ldmatrix<SM75_U32x2_LDSM_N>("ldmatrix_x2", 2);
  ldmatrix<SM75_U32x4_LDSM_N>("ldmatrix_x4", 4);
  ldmatrix<SM75_U16x2_LDSM_T>("ldmatrix_trans_x1", 1);
  ldmatrix<SM75_U16x4_LDSM_T>("ldmatrix_trans_x2", 2);
  ldmatrix<SM75_U16x8_LDSM_T>("ldmatrix_trans_x4", 4);
  return std::fclose(out) == 0 ? 0 : 1;
}
