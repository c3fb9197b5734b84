// kernels/tc_gemm_tile.cuh — the tensor-core GEMM tile engine (mma.sync, sm_80+): the main loop
// that the tensor-core linear kernels (kernels/linear_tc.cu) and, later, the implicit-GEMM
// convolutions share. docs/kernels.md "Tensor-core GEMM tile" describes it; docs/tensor-cores.md
// the instructions.
//
// C[M][N] = epilogue(Σ_k A[m][k]·B[k][n]) with fp32 accumulators. Element type T of A and B in
// global and shared memory: float (TF32 math: every element rounded by cvt.rna.tf32.f32 as it is
// taken into a fragment) or std::uint16_t holding bf16 bits (BF16 math).
//
// The kernel is three parts, so that each can be replaced alone (Hopper's wgmma + TMA will replace
// the main loop and the loaders' copy instruction, not the kernel):
//   loaders   — where A and B live (plain matrices here; implicit-GEMM views of NHWC tensors for
//               the convolutions); each copies its operand's k-tile into a shared-memory stage;
//   mainloop  — the multi-stage cp.async pipeline and the warp-level mma.sync over the stages;
//   epilogue  — a functor the block's threads call with their Accumulators (store + bias today;
//               batchnorm statistics, activation, loss later). It may use barriers: every thread
//               of the block calls it.
//
// Block tile BM×BN = 64×64, k-tile BK = 64 bytes of k (16 floats, 32 bf16), 4 warps in 2×2, each a
// 32×32 warp tile of 2 (m) × 4 (n) mma shapes of 16×8. HMMA per k-tile per block:
// BM·BN·BK / (16·8·k_mma) = 64 (k_mma = 8 for TF32, 16 for BF16).
//
// Shared memory: kStages = 3 stages of both operands (one cp.async group per stage in flight while
// the block multiplies another). An operand tile is stored as its rows arrive from global memory:
//   K-major  (A[m][k] or B as w[n][k], k contiguous): [BMN][BK + 16 bytes];
//   MN-major (A as dy[k][m], B as w[k][n]):          [BK][BMN + 8 elements].
// Why these pads give no bank conflicts (32 banks of 4 bytes; ldmatrix reads 8 rows of 16 bytes
// per phase, i.e. it is conflict-free when the 8 row addresses fall in distinct 16-byte slots of
// a 128-byte line):
//   K-major: a row is BK + 16 bytes = 80 bytes = 5 slots; rows r = 0..7 start at slot 5r mod 8 —
//     all distinct (5 is odd). Both precisions read K-major tiles with ldmatrix (a tf32 element is
//     two b16 halves; non-transposed ldmatrix gives lane 4g+t the 32-bit word t of row g, exactly
//     the tf32 A/B fragment).
//   MN-major, BF16: a row is (64 + 8)·2 = 144 bytes = 9 slots: 9r mod 8 distinct; ldmatrix.trans.
//   MN-major, TF32: ldmatrix.trans has no 32-bit form, so each lane loads its fragment elements
//     with plain 32-bit loads: lane 4g+t reads row k0 + t (+4i), column c0 + g; a row is 72 floats,
//     72 ≡ 8 (mod 32), so the bank is 8t + g + const — 32 distinct banks.
// 16-byte chunks land at 16-byte aligned shared addresses in every layout (cp.async's rule).
//
// The pipeline (one __syncthreads per k-tile):
//   prologue: tiles 0 .. kStages−2 are issued into stages 0 .. kStages−2, one commit each;
//   step t:   cp_async_wait<kStages−2>  (this thread's copies of tile t have landed),
//             __syncthreads             (everyone's have; and every thread has finished step t−1,
//                                        the last reader of stage (t−1) mod kStages),
//             issue tile t + kStages − 1 into stage (t − 1) mod kStages, commit (an empty group
//             past the end keeps the count),
//             multiply stage t mod kStages.
// Elements outside the operand (m, n or k past the end) are stored as zeros by plain stores
// instead of copies; a chunk is copied by cp.async only when it is whole and 16-byte aligned in
// global memory (the loader's `vec`), else element by element — the same results either way.
#pragma once

#include "core/device_code.h"

#include <cstdint>
#include <type_traits>

#include "core/async_copy.h"
#include "core/rounding.h"
#include "core/tensor_core.h"

namespace kiln::cuda::tc_tile {

enum class Major { kK, kMN };  // which index of an operand tile is contiguous

template <class T>
struct Config {
  static_assert(std::is_same_v<T, float> || std::is_same_v<T, std::uint16_t>,
                "tensor-core tiles take float (TF32 math) or bf16 bits (std::uint16_t)");
  static constexpr bool kTf32 = std::is_same_v<T, float>;
  using Mma = std::conditional_t<kTf32, tc::MmaTf32, tc::MmaBf16>;
  static constexpr int BM = 64, BN = 64;
  static constexpr int kVec = 16 / static_cast<int>(sizeof(T));  // elements per 16-byte chunk
  static constexpr int BK = 4 * kVec;                            // 64 bytes of k
  static constexpr int kStages = 3;
  static constexpr int kWarpsM = 2, kWarpsN = 2, kThreads = 32 * kWarpsM * kWarpsN;
  static constexpr int WM = BM / kWarpsM, WN = BN / kWarpsN;          // 32×32 warp tile
  static constexpr int kTilesM = WM / Mma::M, kTilesN = WN / Mma::N;  // 2 × 4 mma shapes
  static constexpr int kLdK = BK + kVec;  // K-major row (elements): BK + 16 bytes
  static constexpr int kLdMN = BM + 8;    // MN-major row (elements); BM == BN
  static constexpr int kStageElems = BM * kLdK > BK* kLdMN ? BM* kLdK : BK* kLdMN;
  static constexpr int kHmmaPerKTile = BM * BN * BK / (Mma::M * Mma::N * Mma::K);
  static_assert(BM == BN, "one MN-major row length serves A and B");
  static_assert((kStageElems * sizeof(T)) % 16 == 0, "stages stay 16-byte aligned");
};

// Both operands' stages (each stage sized for either layout).
template <class T>
struct alignas(16) SharedStages {
  T a[Config<T>::kStages][Config<T>::kStageElems];
  T b[Config<T>::kStages][Config<T>::kStageElems];
};

template <class T>
__device__ __forceinline__ T zero_element() {
  return T(0);  // +0.0f, or bf16 bits 0x0000 (+0)
}

// One 16-byte chunk of a stage: elements src[0 .. kVec) where index j < valid, zeros after.
// cp.async when the whole chunk is valid and `vec` (16-byte aligned source), else plain copies.
template <class T>
__device__ __forceinline__ void copy_chunk(T* dst, const T* src, int valid, bool vec) {
  constexpr int kVec = Config<T>::kVec;
  if (vec && valid >= kVec) {
    cp_async_16(dst, src);
    return;
  }
#pragma unroll
  for (int j = 0; j < kVec; ++j) dst[j] = j < valid ? src[j] : zero_element<T>();
}

// ---- loaders ----------------------------------------------------------------------------------
// A loader keeps its own k position and provides
//   static constexpr Major kMajor;  the layout it stores;
//   load(T* stage):                  issues (cp.async) or stores its operand's current k-tile into
//                                    `stage`, then advances by BK.
// Each of the block's kThreads threads copies 2 of the tile's 256 chunks.

// The chunks of a K-major tile (BM rows × BK k, 4 chunks per row) a thread copies: chunk(i) for
// i < kPerThread is row chunk(i) / kChunksPerRow, k offset (chunk(i) % kChunksPerRow)·kVec.
template <class T>
struct KMajorChunks {
  using Cfg = Config<T>;
  static constexpr Major kMajor = Major::kK;
  static constexpr int kChunksPerRow = Cfg::BK / Cfg::kVec;  // 4
  static constexpr int kPerThread = Cfg::BM * kChunksPerRow / Cfg::kThreads;
  __device__ static int chunk(int i) { return static_cast<int>(threadIdx.x) + i * Cfg::kThreads; }
};

// Rows of a row-major matrix P[rows][ld] read along k (k contiguous): A of y = x·wᵀ (x), B of the
// same (w), A of dx = dy·w (dy). vec: ld % kVec == 0 and P 16-byte aligned.
template <class T>
struct RowsLoader : KMajorChunks<T> {
  using Cfg = Config<T>;
  using Base = KMajorChunks<T>;
  const T* row_ptr[Base::kPerThread];  // nullptr for rows past the end
  int k, k_end;
  bool vec;
  __device__ RowsLoader(const T* p, int64_t ld, int rows, int row0, int k_begin, int k_end_,
                        bool vec_)
      : k(k_begin), k_end(k_end_), vec(vec_) {
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const int r = row0 + Base::chunk(i) / Base::kChunksPerRow;
      row_ptr[i] = r < rows ? p + static_cast<int64_t>(r) * ld : nullptr;
    }
  }
  __device__ void load(T* stage) {
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const int c = Base::chunk(i), r = c / Base::kChunksPerRow,
                kk = (c % Base::kChunksPerRow) * Cfg::kVec;
      const int valid = row_ptr[i] != nullptr ? k_end - (k + kk) : 0;
      copy_chunk(stage + r * Cfg::kLdK + kk, row_ptr[i] + (row_ptr[i] != nullptr ? k + kk : 0),
                 valid, vec);
    }
    k += Cfg::BK;
  }
};

// The chunks of an MN-major tile (BK k-rows × 64 columns) a thread copies: chunk(i) for
// i < kPerThread is k-row krow(i), columns col() .. col() + kVec − 1 — the same columns for every i
// (kChunksPerRow divides the block's threads).
template <class T>
struct MNMajorChunks {
  using Cfg = Config<T>;
  static constexpr Major kMajor = Major::kMN;
  static constexpr int kChunksPerRow = Cfg::BM / Cfg::kVec;  // 16 (float) or 8 (bf16)
  static constexpr int kPerThread = Cfg::BK * kChunksPerRow / Cfg::kThreads;
  static_assert(Cfg::kThreads % kChunksPerRow == 0, "a thread's chunks share their columns");
  __device__ static int krow(int i) {
    return (static_cast<int>(threadIdx.x) + i * Cfg::kThreads) / kChunksPerRow;
  }
  __device__ static int col() {
    return (static_cast<int>(threadIdx.x) % kChunksPerRow) * Cfg::kVec;
  }
};

// k-rows of a row-major matrix P[k][ld] read along m/n (m or n contiguous): B of dx = dy·w (w),
// both operands of dw = dyᵀ·x. vec: ld % kVec == 0 and P 16-byte aligned.
template <class T>
struct KRowsLoader : MNMajorChunks<T> {
  using Cfg = Config<T>;
  using Base = MNMajorChunks<T>;
  const T* p;
  int64_t ld;
  int k, k_end, col0, cols;
  bool vec;
  __device__ KRowsLoader(const T* p_, int64_t ld_, int cols_, int col0_, int k_begin, int k_end_,
                         bool vec_)
      : p(p_), ld(ld_), k(k_begin), k_end(k_end_), col0(col0_), cols(cols_), vec(vec_) {}
  __device__ void load(T* stage) {
#pragma unroll
    for (int i = 0; i < Base::kPerThread; ++i) {
      const int kr = Base::krow(i), cc = Base::col();
      const int valid = k + kr < k_end ? cols - (col0 + cc) : 0;
      const T* src = valid > 0 ? p + static_cast<int64_t>(k + kr) * ld + col0 + cc : p;
      copy_chunk(stage + kr * Cfg::kLdMN + cc, src, valid, vec);
    }
    k += Cfg::BK;
  }
};

// ---- fragments from a stage -------------------------------------------------------------------
// A warp's fragments of one mma k-step kk (element offset k0 = kk·Mma::K inside the stage).

// The tf32 bits of a 32-bit word that holds an fp32 (cvt.rna: the TF32 rounding of the inputs).
__device__ __forceinline__ std::uint32_t tf32_from_word(std::uint32_t w) {
  return tc::cvt_tf32(bits_float(w));
}

// A fragment of the 16-row slice at m0 (rows of the stage), k0: a[4] in the mma's order.
template <class T, Major kMajor>
__device__ __forceinline__ void load_a(std::uint32_t (&a)[4], const T* stage, int m0, int k0) {
  using Cfg = Config<T>;
  const int lane = static_cast<int>(threadIdx.x) % 32, j = lane / 8, r = lane % 8;
  if constexpr (kMajor == Major::kMN && Cfg::kTf32) {
    // Stored [k][m], 32-bit elements: no transposing ldmatrix, so plain loads.
#pragma unroll
    for (int i = 0; i < 4; ++i) {
      const tc::RowCol p = tc::MmaTf32::a(lane, i);  // (m, k) = (g + 8(i%2), t + 4(i/2))
      a[i] = tc::cvt_tf32(stage[(k0 + p.col) * Cfg::kLdMN + m0 + p.row]);
    }
  } else {
    if constexpr (kMajor == Major::kK) {
      // Matrix j = rows m0 + 8·(j%2) .. +7, k-half j/2 (16 bytes): register j is the mma's a[j]
      // (tf32: (g + 8(j%2), t + 4(j/2)); bf16: rows likewise, k = 2t + h + 8(j/2)).
      tc::ldmatrix<4>(a, stage + (m0 + r + 8 * (j % 2)) * Cfg::kLdK + k0 + Cfg::kVec * (j / 2));
    } else {
      // bf16 stored [k][m]: matrix j = k rows k0 + 8·(j/2) .., columns m0 + 8·(j%2) .., transposed.
      tc::ldmatrix_trans<4>(a, stage + (k0 + r + 8 * (j / 2)) * Cfg::kLdMN + m0 + 8 * (j % 2));
    }
    if constexpr (Cfg::kTf32) {
#pragma unroll
      for (int i = 0; i < 4; ++i) a[i] = tf32_from_word(a[i]);
    }
  }
}

// B fragments of the two 8-column slices at n0 and n0 + 8, k0: b[0] for n0, b[1] for n0 + 8.
template <class T, Major kMajor>
__device__ __forceinline__ void load_b2(std::uint32_t (&b)[2][2], const T* stage, int n0, int k0) {
  using Cfg = Config<T>;
  const int lane = static_cast<int>(threadIdx.x) % 32, j = lane / 8, r = lane % 8;
  if constexpr (kMajor == Major::kMN && Cfg::kTf32) {
#pragma unroll
    for (int h = 0; h < 2; ++h)
#pragma unroll
      for (int i = 0; i < 2; ++i) {
        const tc::RowCol p = tc::MmaTf32::b(lane, i);  // (k, n) = (t + 4i, g)
        b[h][i] = tc::cvt_tf32(stage[(k0 + p.row) * Cfg::kLdMN + n0 + 8 * h + p.col]);
      }
  } else {
    std::uint32_t q[4];
    if constexpr (kMajor == Major::kK) {
      // Stored [n][k]: matrix j = rows n0 + 8·(j/2) .., k-half j%2; register j is b[j/2][j%2].
      tc::ldmatrix<4>(q, stage + (n0 + r + 8 * (j / 2)) * Cfg::kLdK + k0 + Cfg::kVec * (j % 2));
    } else {
      // bf16 stored [k][n]: matrix j = k rows k0 + 8·(j%2) .., columns n0 + 8·(j/2) .., transposed.
      tc::ldmatrix_trans<4>(q, stage + (k0 + r + 8 * (j % 2)) * Cfg::kLdMN + n0 + 8 * (j / 2));
    }
#pragma unroll
    for (int i = 0; i < 4; ++i) b[i / 2][i % 2] = Cfg::kTf32 ? tf32_from_word(q[i]) : q[i];
  }
}

__device__ __forceinline__ void mma(float (&d)[4], const std::uint32_t (&a)[4],
                                    const std::uint32_t (&b)[2], float) {
  tc::mma_tf32_m16n8k8(d, a, b, d);
}
__device__ __forceinline__ void mma(float (&d)[4], const std::uint32_t (&a)[4],
                                    const std::uint32_t (&b)[2], std::uint16_t) {
  tc::mma_bf16_m16n8k16(d, a, b, d);
}

// ---- accumulators and the epilogue's view of them ---------------------------------------------
// acc[mt][nt][i] of a thread is C[m0 + mt·16 + row_i][n0 + nt·8 + col_i], (row_i, col_i) the mma's
// C map (g + 8(i/2), 2t + i%2); (m0, n0) is the warp tile's origin in C.
template <class T>
struct Accumulators {
  using Cfg = Config<T>;
  float acc[Cfg::kTilesM][Cfg::kTilesN][4];
  int m0, n0;
  // f(m, n, value) for every element of the thread with m < M and n < N.
  template <class F>
  __device__ __forceinline__ void for_each(int M, int N, F&& f) const {
    const int lane = static_cast<int>(threadIdx.x) % 32;
#pragma unroll
    for (int mt = 0; mt < Cfg::kTilesM; ++mt)
#pragma unroll
      for (int nt = 0; nt < Cfg::kTilesN; ++nt)
#pragma unroll
        for (int i = 0; i < 4; ++i) {
          const tc::RowCol p = Cfg::Mma::c(lane, i);
          const int m = m0 + mt * Cfg::Mma::M + p.row, n = n0 + nt * Cfg::Mma::N + p.col;
          if (m < M && n < N) f(m, n, acc[mt][nt][i]);
        }
  }
};

// ---- the main loop ----------------------------------------------------------------------------
// Accumulates the block's k range (k_tiles steps of BK, both loaders positioned at its start) into
// out.acc (zeroed first); sets out.m0/n0 from the block origin (bm0, bn0). Every thread of the
// block must call it with the same k_tiles (the barriers are block-wide).
template <class T, class LoaderA, class LoaderB>
__device__ __forceinline__ void mainloop(Accumulators<T>& out, LoaderA& la, LoaderB& lb,
                                         SharedStages<T>& sm, int k_tiles, int bm0, int bn0) {
  using Cfg = Config<T>;
  constexpr int S = Cfg::kStages;
  const int warp = static_cast<int>(threadIdx.x) / 32;
  const int wm = (warp / Cfg::kWarpsN) * Cfg::WM, wn = (warp % Cfg::kWarpsN) * Cfg::WN;
  out.m0 = bm0 + wm;
  out.n0 = bn0 + wn;
#pragma unroll
  for (int mt = 0; mt < Cfg::kTilesM; ++mt)
#pragma unroll
    for (int nt = 0; nt < Cfg::kTilesN; ++nt)
#pragma unroll
      for (int i = 0; i < 4; ++i) out.acc[mt][nt][i] = 0.f;
#pragma unroll
  for (int s = 0; s < S - 1; ++s) {
    if (s < k_tiles) {
      la.load(sm.a[s]);
      lb.load(sm.b[s]);
    }
    cp_async_commit();
  }
  for (int t = 0; t < k_tiles; ++t) {
    cp_async_wait<S - 2>();
    __syncthreads();
    const int next = t + S - 1;
    if (next < k_tiles) {
      la.load(sm.a[next % S]);
      lb.load(sm.b[next % S]);
    }
    cp_async_commit();
    const T* as = sm.a[t % S];
    const T* bs = sm.b[t % S];
#pragma unroll
    for (int kk = 0; kk < Cfg::BK / Cfg::Mma::K; ++kk) {
      const int k0 = kk * Cfg::Mma::K;
      std::uint32_t a[Cfg::kTilesM][4], b[Cfg::kTilesN][2];
#pragma unroll
      for (int mt = 0; mt < Cfg::kTilesM; ++mt)
        load_a<T, LoaderA::kMajor>(a[mt], as, wm + mt * Cfg::Mma::M, k0);
#pragma unroll
      for (int np = 0; np < Cfg::kTilesN / 2; ++np) {
        std::uint32_t pair[2][2];
        load_b2<T, LoaderB::kMajor>(pair, bs, wn + np * 2 * Cfg::Mma::N, k0);
#pragma unroll
        for (int h = 0; h < 2; ++h) {
          b[2 * np + h][0] = pair[h][0];
          b[2 * np + h][1] = pair[h][1];
        }
      }
#pragma unroll
      for (int mt = 0; mt < Cfg::kTilesM; ++mt)
#pragma unroll
        for (int nt = 0; nt < Cfg::kTilesN; ++nt) mma(out.acc[mt][nt], a[mt], b[nt], T{});
    }
  }
  cp_async_wait<0>();  // no copy outlives the loop (the last groups are empty)
}

// ---- epilogues --------------------------------------------------------------------------------
// C[m][n] = acc + bias[n] (bias nullable; kAccumulate: C[m][n] += acc instead, no bias), C of
// element type Out: float, or bf16 bits (rounded to nearest even from the fp32 sum).
template <class Out, bool kAccumulate>
struct StoreEpilogue {
  Out* c;
  int64_t ldc;
  int M, N;
  const float* bias;
  template <class T>
  __device__ __forceinline__ void operator()(const Accumulators<T>& a) const {
    a.for_each(M, N, [&](int m, int n, float v) {
      Out* p = c + static_cast<int64_t>(m) * ldc + n;
      if constexpr (kAccumulate) {
        static_assert(std::is_same_v<Out, float>, "accumulating outputs are fp32");
        *p += v;
      } else {
        if (bias != nullptr) v += bias[n];
        if constexpr (std::is_same_v<Out, float>)
          *p = v;
        else
          *p = tc::cvt_bf16(v);
      }
    });
  }
};

// The C origin of block (blockIdx.x, blockIdx.y): rows blockIdx.x·BM.., columns blockIdx.y·BN...
struct Origin {
  int m0, n0;
};
template <class T>
__device__ __forceinline__ Origin block_origin() {
  return {static_cast<int>(blockIdx.x) * Config<T>::BM,
          static_cast<int>(blockIdx.y) * Config<T>::BN};
}

// One block of a tensor-core GEMM kernel: the main loop over [0, K) of the loaders (positioned at
// the block's origin o), then the epilogue.
template <class T, class LoaderA, class LoaderB, class Epilogue>
__device__ __forceinline__ void run_block(const Origin& o, LoaderA& la, LoaderB& lb, int K,
                                          const Epilogue& epi) {
  using Cfg = Config<T>;
  KILN_SHARED(SharedStages<T>, stages, [1]);  // one struct: [1] keeps the macro's dims non-empty
  Accumulators<T> acc;
  mainloop<T>(acc, la, lb, stages[0], (K + Cfg::BK - 1) / Cfg::BK, o.m0, o.n0);
  epi(acc);
}

}  // namespace kiln::cuda::tc_tile
