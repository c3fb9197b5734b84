// core/tensor_core_layout.h — the fragment layouts of the tensor-core instructions in
// core/tensor_core.h (where they are described): which matrix element each lane's register holds.
// Kernels place operands and results by these maps, the SIMT emulator's mma and ldmatrix compute
// with them, and host code (tests) can read them.
#pragma once

#include "core/host_device.h"

namespace kiln::tc {

struct RowCol {
  int row, col;
};

// mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32
struct MmaTf32 {
  static constexpr int M = 16, N = 8, K = 8;
  static constexpr int kAElems = 4, kBElems = 2, kCElems = 4;  // per lane
  static constexpr int kARegs = 4, kBRegs = 2;                 // 32-bit registers per lane
  KILN_HD static constexpr RowCol a(int lane, int i) {
    return {lane / 4 + 8 * (i % 2), lane % 4 + 4 * (i / 2)};
  }
  KILN_HD static constexpr RowCol b(int lane, int i) { return {lane % 4 + 4 * i, lane / 4}; }
  KILN_HD static constexpr RowCol c(int lane, int i) {
    return {lane / 4 + 8 * (i / 2), 2 * (lane % 4) + i % 2};
  }
};

// mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32
struct MmaBf16 {
  static constexpr int M = 16, N = 8, K = 16;
  static constexpr int kAElems = 8, kBElems = 4, kCElems = 4;
  static constexpr int kARegs = 4, kBRegs = 2;
  KILN_HD static constexpr RowCol a(int lane, int i) {
    return {lane / 4 + 8 * ((i / 2) % 2), 2 * (lane % 4) + i % 2 + 8 * (i / 4)};
  }
  KILN_HD static constexpr RowCol b(int lane, int i) {
    return {2 * (lane % 4) + i % 2 + 8 * (i / 2), lane / 4};
  }
  KILN_HD static constexpr RowCol c(int lane, int i) { return MmaTf32::c(lane, i); }
};

// ldmatrix.sync.aligned.m8n8.x{1,2,4}{.trans}.shared.b16
struct Ldmatrix {
  // The lane whose address names row `row` of matrix `matrix`.
  KILN_HD static constexpr int row_lane(int matrix, int row) { return 8 * matrix + row; }
  // Element h (0: bits 0..15, 1: bits 16..31) of a lane's register j comes from matrix j at:
  KILN_HD static constexpr RowCol element(int lane, int h, bool trans) {
    return trans ? RowCol{2 * (lane % 4) + h, lane / 4} : RowCol{lane / 4, 2 * (lane % 4) + h};
  }
};

}  // namespace kiln::tc
