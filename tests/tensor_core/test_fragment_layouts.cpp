// tests/tensor_core/test_fragment_layouts.cpp — the fragment layouts of core/tensor_core.h against
// an independent oracle: CUTLASS's cute, whose layouts tests/tensor_core/cute_layouts.cu evaluated
// at build time into KILN_CUTE_LAYOUTS. Two kinds of check, for every shape Kiln uses (tf32
// m16n8k8, bf16 m16n8k16; ldmatrix x1, x2, x4, plain and .trans):
//   - behaviour: the emulated instructions are driven with one-hot inputs (one element set per
//     run) and the test reads where each lands in the lanes' registers, then compares with where
//     cute says it must land. For an mma: a one-hot A element with B all ones lights exactly the D
//     elements of its row; a one-hot B element with A all ones those of its column; a one-hot pair
//     lights the one D element (row of A, column of B) exactly when their k agree; a one-hot C
//     element comes out in the same register of D. For ldmatrix: each element of the matrices
//     arrives in exactly the register half cute names.
//   - the maps themselves (MmaTf32/MmaBf16::a, b, c and Ldmatrix::element, row_lane), which kernels
//     place their operands by, equal cute's element for element (behaviour alone cannot see a
//     permutation of k applied to A and B together).
#include <catch2/catch.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "core/tensor_core_layout.h"
#include "tests/support/device_buffer.h"
#include "tests/tensor_core/layout_kernels.h"

namespace kiln::tc {
// For Catch2's comparisons and messages (found by argument-dependent lookup).
bool operator==(RowCol x, RowCol y) {
  return x.row == y.row && x.col == y.col;
}
std::ostream& operator<<(std::ostream& os, RowCol p) {
  return os << "(" << p.row << "," << p.col << ")";
}
}  // namespace kiln::tc

using kiln::test::DeviceBuffer;
using kiln::tc::RowCol;
using kiln::tc_test::OneHot;

namespace {

// cute's facts: (op, what, lane, element) → coordinate; see cute_layouts.cu for the format.
struct Oracle {
  std::map<std::tuple<std::string, char, int, int>, std::vector<int>> facts;

  static const Oracle& get() {
    static const Oracle o = load(KILN_CUTE_LAYOUTS);
    return o;
  }
  static Oracle load(const std::string& path) {
    std::ifstream in(path);
    if (!in) FAIL("cannot read the cute layout oracle " << path << " (built by kiln_cute_layouts)");
    Oracle o;
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream ls(line);
      std::string op;
      char what = 0;
      int lane = 0, elem = 0;
      ls >> op >> what >> lane;
      if (what != 'S') ls >> elem;
      std::vector<int> coord;
      for (int v; ls >> v;) coord.push_back(v);
      o.facts[{op, what, lane, elem}] = coord;
    }
    return o;
  }
  // The coordinate, or a test failure naming the missing fact.
  const std::vector<int>& at(const std::string& op, char what, int lane, int elem = 0) const {
    const auto it = facts.find({op, what, lane, elem});
    if (it == facts.end())
      FAIL("the cute oracle has no " << op << " " << what << " lane " << lane << " element "
                                     << elem);
    return it->second;
  }
  RowCol rc(const std::string& op, char what, int lane, int elem) const {
    const auto& v = at(op, what, lane, elem);
    REQUIRE(v.size() == 2);
    return {v[0], v[1]};
  }
};

template <class S>
void check_mma_maps(const std::string& op) {
  const Oracle& o = Oracle::get();
  for (int lane = 0; lane < 32; ++lane) {
    for (int i = 0; i < S::kAElems; ++i) CHECK(S::a(lane, i) == o.rc(op, 'A', lane, i));
    for (int i = 0; i < S::kBElems; ++i) CHECK(S::b(lane, i) == o.rc(op, 'B', lane, i));
    for (int i = 0; i < S::kCElems; ++i) CHECK(S::c(lane, i) == o.rc(op, 'C', lane, i));
  }
}

// Runs the one-hot mma runs and compares every D register with expect(run, lane, i).
template <class Expect>
void check_mma_runs(bool bf16, const std::vector<OneHot>& specs, const char* what, Expect expect) {
  const int runs = static_cast<int>(specs.size());
  DeviceBuffer<OneHot> dspecs(specs);
  DeviceBuffer<float> d(static_cast<std::size_t>(runs) * 128);
  d.fill_bytes(0xFF);
  kiln::tc_test::mma_one_hot(bf16, d.get(), dspecs.get(), runs);
  const std::vector<float> got = d.download();
  int bad = 0;
  std::ostringstream first;
  for (int r = 0; r < runs; ++r)
    for (int lane = 0; lane < 32; ++lane)
      for (int i = 0; i < 4; ++i) {
        const float want = expect(r, lane, i), g = got[(r * 32 + lane) * 4 + i];
        if (g != want && bad++ == 0) {
          const OneHot& h = specs[r];
          first << what << ": A (" << h.a_lane << "," << h.a_elem << ") B (" << h.b_lane << ","
                << h.b_elem << ") C (" << h.c_lane << "," << h.c_elem << "): D lane " << lane
                << " element " << i << " is " << g << ", cute says " << want;
        }
      }
  INFO(bad << " D elements differ from cute's layout; first: " << first.str());
  CHECK(bad == 0);
}

template <class S>
void check_mma_behaviour(const std::string& op, bool bf16) {
  const Oracle& o = Oracle::get();
  constexpr int kAll = OneHot::kAll, kNone = OneHot::kNone;
  // cute's maps, read once: A (m, k), B (k, n), C (m, n) of (lane, element).
  RowCol am[32][S::kAElems], bm[32][S::kBElems], cm[32][4];
  for (int l = 0; l < 32; ++l) {
    for (int i = 0; i < S::kAElems; ++i) am[l][i] = o.rc(op, 'A', l, i);
    for (int i = 0; i < S::kBElems; ++i) bm[l][i] = o.rc(op, 'B', l, i);
    for (int i = 0; i < 4; ++i) cm[l][i] = o.rc(op, 'C', l, i);
  }
  const auto a_at = [&](int l, int i) { return am[l][i]; };
  const auto b_at = [&](int l, int i) { return bm[l][i]; };
  const auto c_at = [&](int l, int i) { return cm[l][i]; };

  std::vector<OneHot> rows, cols, cs, pairs;
  for (int l = 0; l < 32; ++l) {
    for (int i = 0; i < S::kAElems; ++i) rows.push_back({l, i, kAll, 0, kNone, 0});
    for (int i = 0; i < S::kBElems; ++i) cols.push_back({kAll, 0, l, i, kNone, 0});
    for (int i = 0; i < 4; ++i) cs.push_back({kNone, 0, kNone, 0, l, i});
  }
  for (int la = 0; la < 32; ++la)
    for (int ia = 0; ia < S::kAElems; ++ia)
      for (int lb = 0; lb < 32; ++lb)
        for (int ib = 0; ib < S::kBElems; ++ib) pairs.push_back({la, ia, lb, ib, kNone, 0});

  check_mma_runs(bf16, rows, "A one-hot, B ones", [&](int r, int lane, int i) {
    return c_at(lane, i).row == a_at(rows[r].a_lane, rows[r].a_elem).row ? 1.0f : 0.0f;
  });
  check_mma_runs(bf16, cols, "A ones, B one-hot", [&](int r, int lane, int i) {
    return c_at(lane, i).col == b_at(cols[r].b_lane, cols[r].b_elem).col ? 1.0f : 0.0f;
  });
  check_mma_runs(bf16, cs, "C one-hot", [&](int r, int lane, int i) {
    return lane == cs[r].c_lane && i == cs[r].c_elem ? 1.0f : 0.0f;
  });
  check_mma_runs(bf16, pairs, "A and B one-hot", [&](int r, int lane, int i) {
    const RowCol a = a_at(pairs[r].a_lane, pairs[r].a_elem);
    const RowCol b = b_at(pairs[r].b_lane, pairs[r].b_elem);
    return a.col == b.row && c_at(lane, i) == RowCol{a.row, b.col} ? 1.0f : 0.0f;
  });
}

void check_ldmatrix(const std::string& op, int matrices, bool trans) {
  const Oracle& o = Oracle::get();
  // The maps: the row each used lane names, and where each register half comes from.
  for (int j = 0; j < matrices; ++j)
    for (int r = 0; r < 8; ++r)
      CHECK(o.at(op, 'S', kiln::tc::Ldmatrix::row_lane(j, r)) == std::vector<int>{j, r});
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 2 * matrices; ++e) {
      const RowCol p = kiln::tc::Ldmatrix::element(lane, e % 2, trans);
      CHECK(o.at(op, 'D', lane, e) == std::vector<int>{e / 2, p.row, p.col});
    }
  // Behaviour: run `element` marks element (matrix, row, col) = (element/64, element%64/8, %8).
  DeviceBuffer<std::uint32_t> out(static_cast<std::size_t>(64 * matrices) * 32 * 4);
  out.fill_bytes(0x00);
  kiln::tc_test::ldmatrix_one_hot(out.get(), matrices, trans);
  const std::vector<std::uint32_t> got = out.download();
  int bad = 0;
  std::ostringstream first;
  std::vector<int> source(32 * 8);  // cute: the element index lane's element e comes from
  for (int lane = 0; lane < 32; ++lane)
    for (int e = 0; e < 2 * matrices; ++e) {
      const std::vector<int>& m = o.at(op, 'D', lane, e);
      REQUIRE(m.size() == 3);
      source[lane * 8 + e] = m[0] * 64 + m[1] * 8 + m[2];
    }
  for (int element = 0; element < 64 * matrices; ++element) {
    const std::vector<int> where = {element / 64, element % 64 / 8, element % 8};
    for (int lane = 0; lane < 32; ++lane)
      for (int e = 0; e < 2 * matrices; ++e) {
        const std::uint32_t reg = got[(element * 32 + lane) * 4 + e / 2];
        const std::uint16_t half = static_cast<std::uint16_t>(reg >> (16 * (e % 2)));
        const std::uint16_t want = source[lane * 8 + e] == element ? kiln::tc_test::kMarker : 0;
        if (half != want && bad++ == 0)
          first << "element (matrix " << where[0] << ", row " << where[1] << ", col " << where[2]
                << "): lane " << lane << " element " << e << " holds 0x" << std::hex << half
                << ", cute says 0x" << want;
      }
  }
  INFO(op << ": " << bad << " register halves differ from cute's layout; first: " << first.str());
  CHECK(bad == 0);
}

}  // namespace

TEST_CASE("mma m16n8k8 tf32 fragments are cute's SM80_16x8x8_F32TF32TF32F32_TN", "[simt]") {
  check_mma_maps<kiln::tc::MmaTf32>("tf32_m16n8k8");
  check_mma_behaviour<kiln::tc::MmaTf32>("tf32_m16n8k8", false);
}

TEST_CASE("mma m16n8k16 bf16 fragments are cute's SM80_16x8x16_F32BF16BF16F32_TN", "[simt]") {
  check_mma_maps<kiln::tc::MmaBf16>("bf16_m16n8k16");
  check_mma_behaviour<kiln::tc::MmaBf16>("bf16_m16n8k16", true);
}

TEST_CASE("ldmatrix x1, x2, x4 are cute's SM75_U32x{1,2,4}_LDSM_N", "[simt]") {
  check_ldmatrix("ldmatrix_x1", 1, false);
  check_ldmatrix("ldmatrix_x2", 2, false);
  check_ldmatrix("ldmatrix_x4", 4, false);
}

TEST_CASE("ldmatrix .trans x1, x2, x4 are cute's SM75_U16x{2,4,8}_LDSM_T", "[simt]") {
  check_ldmatrix("ldmatrix_trans_x1", 1, true);
  check_ldmatrix("ldmatrix_trans_x2", 2, true);
  check_ldmatrix("ldmatrix_trans_x4", 4, true);
}
