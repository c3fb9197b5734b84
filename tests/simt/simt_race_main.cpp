// tests/simt/simt_race_main.cpp — `simt_race <case>`: runs one planted race or its correct twin
// (simt_race_kernels.cu) in the forward thread order and checks the result against a host loop.
//   missing_sync | missing_sync_ok   shared-memory tree reduction without / with its barriers
//   two_blocks   | two_blocks_ok     neighbouring blocks writing one element / disjoint blocks
//   same_elements | same_elements_ok every block writing elements [0, 64) / disjoint blocks
//   missing_syncwarp[_half] | ..._ok lanes reading a neighbour's shared-memory slot without / with
//                                    __syncwarp (the whole warp; or each half warp, its own mask)
//   no_fence     | no_fence_ok       last-block-done sum without / with __threadfence
//   ldmatrix_unsynced | ..._ok       an ldmatrix of rows the lanes just stored, without / with
//                                    __syncwarp (ldmatrix orders no memory)
// It prints "simt_race <case>: result right" (exit 0) or "... result WRONG" (exit 1) on stderr,
// after anything ThreadSanitizer reported, so one CTest regex can require both the report and the
// right result (tests/simt/CMakeLists.txt).
#include <cstdio>
#include <cstring>
#include <string>

#include "core/simt/schedule.h"
#include "tests/simt/simt_race_kernels.h"

namespace race = kiln::simt_test::race;

namespace {

bool run(const std::string& name) {
  const bool racy = name.size() < 3 || name.compare(name.size() - 3, 3, "_ok") != 0;
  const std::string base = racy ? name : name.substr(0, name.size() - 3);
  if (base == "missing_sync") return race::block_sums(!racy, 4) == race::block_sums_reference(4);
  if (base == "two_blocks")
    return race::doubled(racy ? 1 : 0, 256) == race::doubled_reference(racy ? 1 : 0, 256);
  if (base == "same_elements")
    return race::doubled(racy ? 2 : 0, 256) == race::doubled_reference(racy ? 2 : 0, 256);
  if (base == "missing_syncwarp")
    return race::neighbours(!racy, 32) == race::neighbours_reference(32);
  if (base == "missing_syncwarp_half")
    return race::neighbours(!racy, 16) == race::neighbours_reference(16);
  if (base == "no_fence")
    return race::last_block_sum(!racy, 8) == race::last_block_sum_reference(8);
  if (base == "ldmatrix_unsynced")
    return race::ldmatrix_unsynced(!racy) == race::ldmatrix_unsynced_reference();
  std::fprintf(stderr, "simt_race: unknown case '%s' (see the top of simt_race_main.cpp)\n",
               name.c_str());
  return false;
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s <case> (see the top of simt_race_main.cpp)\n", argv[0]);
    return 2;
  }
  kiln::simt::set_schedule(kiln::simt::Schedule{});  // forward: the order that gives right answers
  const bool right = run(argv[1]);
  std::fprintf(stderr, "simt_race %s: result %s\n", argv[1], right ? "right" : "WRONG");
  std::fflush(stderr);
  return right ? 0 : 1;
}
