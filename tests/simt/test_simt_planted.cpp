// tests/simt/test_simt_planted.cpp — planted bugs the emulator must catch, each by the mechanism
// docs/design.md §1 names: a missing __syncthreads makes the orders disagree; a return before a
// barrier, barriers at different lines and a warp operation whose lanes cannot all arrive are
// errors naming file:line and the thread ids; memory nothing wrote reads as NaN; a missing cp.async
// wait shows; more than 48 KiB of dynamic shared memory without the kernel's attribute is refused,
// as a GPU refuses it. (The out-of-bounds write is simt_asan_oob_*, run in the sanitizer build.)
#include <catch2/catch.hpp>

#include <cmath>
#include <fstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "tests/simt/kernel_error.h"
#include "tests/simt/simt_only_kernels.h"
#include "tests/simt/simt_test_kernels.h"
#include "tests/support/device_buffer.h"
#include "tests/support/every_order.h"

namespace kt = kiln::simt_test;
using kiln::test::DeviceBuffer;

namespace {

// "simt_test_kernels.cu:<line>" of the first line of the kernel file containing `marker`.
std::string site_of(const std::string& marker) {
  const std::string path = std::string(KILN_SIMT_TEST_DIR) + "/simt_test_kernels.cu";
  std::ifstream in(path);
  std::string line;
  for (int n = 1; std::getline(in, line); ++n)
    if (line.find(marker) != std::string::npos) return "simt_test_kernels.cu:" + std::to_string(n);
  FAIL("marker '" << marker << "' not found in " << path);
  return "";
}

std::string error_of(void (*run)(float*), DeviceBuffer<float>& out) {
  return kiln::simt_test::kernel_error_of([&] { run(out.get()); });
}

}  // namespace

// [racy]: the kernel races on purpose, so the race-detector build (KILN_TSAN) leaves this test out
// and checks the same bug its own way (simt_race_* in tests/simt/CMakeLists.txt).
TEST_CASE("planted: a missing __syncthreads makes the orders disagree", "[simt][racy]") {
  const int n = 256 * 4, blocks = 4;
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = static_cast<float>(i % 17);
  DeviceBuffer<float> dx(x), out(blocks);
  auto racy = kiln::test::run_in_every_order([&] {
    out.fill_bytes(0);
    kt::racy_block_sum(out.get(), dx.get(), n, blocks);
    return out.download();
  });
  const std::string diff = kiln::test::first_difference(racy);
  INFO("orders: " << racy.names[0] << ", " << racy.names[1] << ", " << racy.names[2]);
  CHECK(diff != "");
  // The same data through the correct kernel: all orders agree.
  auto good = kiln::test::run_in_every_order([&] {
    out.fill_bytes(0);
    kt::block_sum(out.get(), dx.get(), n, blocks);
    return out.download();
  });
  CHECK(kiln::test::first_difference(good) == "");
}

TEST_CASE("planted: a return before __syncthreads is reported with file:line and threads",
          "[simt]") {
  DeviceBuffer<float> out(64);
  const std::string msg = kiln::simt_test::kernel_error_of([&] { kt::early_return(out.get(), 5); });
  INFO(msg);
  CHECK(msg.find("not reached by every thread") != std::string::npos);
  CHECK(msg.find(site_of("planted: not reached")) != std::string::npos);
  CHECK(msg.find("__syncthreads at") != std::string::npos);
  CHECK(msg.find(": threads 0-4") != std::string::npos);
  CHECK(msg.find("returned from the kernel: threads 5-63") != std::string::npos);

  // Every thread active: no error, and the emulator is usable again after an error.
  out.fill_bytes(0);
  kt::early_return(out.get(), 64);
  CHECK(out.download()[63] == 1.0f);
}

TEST_CASE("planted: barriers at different lines are reported with both sites", "[simt]") {
  DeviceBuffer<float> out(128);
  const std::string msg = error_of(&kt::divergent_barriers, out);
  INFO(msg);
  CHECK(msg.find("different __syncthreads sites") != std::string::npos);
  CHECK(msg.find(site_of("planted: even warps") + ": threads 0-31,64-95") != std::string::npos);
  CHECK(msg.find(site_of("... odd warps") + ": threads 32-63,96-127") != std::string::npos);
}

TEST_CASE("planted: a shuffle whose lanes cannot all arrive is reported", "[simt]") {
  DeviceBuffer<float> out(32);
  const std::string msg = error_of(&kt::partial_warp_shuffle, out);
  INFO(msg);
  CHECK(msg.find("lanes cannot all arrive") != std::string::npos);
  CHECK(msg.find("__shfl_sync (mask 0xffffffff) at ") != std::string::npos);
  CHECK(msg.find(site_of("planted: lanes 16-31") + ": threads 0-15") != std::string::npos);
  CHECK(msg.find("returned from the kernel: threads 16-31") != std::string::npos);
}

TEST_CASE("planted: reading memory nothing wrote gives NaN", "[simt]") {
  // Shared memory.
  DeviceBuffer<float> out(64);
  out.fill_bytes(0);
  kt::read_unwritten_shared(out.get());
  for (float v : out.download()) REQUIRE(std::isnan(v));
  // Device memory from cudaMalloc.
  DeviceBuffer<float> fresh(100);
  for (float v : fresh.download()) REQUIRE(std::isnan(v));
}

TEST_CASE("planted: a missing cp.async wait shows in the results", "[simt]") {
  for (int tiles : {1, 4}) {
    std::vector<float> x(tiles * 256);
    for (std::size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>(i);
    DeviceBuffer<float> dx(x), out(x.size());
    out.fill_bytes(0);
    kt::async_copy_tiles(out.get(), dx.get(), tiles, /*skip_wait=*/true);
    const auto r = out.download();
    // The last tile was never waited for: its values are poison (one tile) or stale (several).
    bool wrong = false;
    for (int i = (tiles - 1) * 256; i < tiles * 256; ++i) wrong = wrong || !(r[i] == x[i]);
    INFO("tiles " << tiles);
    CHECK(wrong);
    if (tiles == 1) CHECK(std::isnan(r[0]));
  }
}

TEST_CASE("planted: dynamic shared memory over 48 KiB without the attribute is refused", "[simt]") {
  constexpr int n = 16384;  // 64 KiB of floats staged in dynamic shared memory
  std::vector<float> x(n);
  for (int i = 0; i < n; ++i) x[i] = float(i % 7);
  double expected = 0;
  for (float v : x) expected += v;
  DeviceBuffer<float> dx(n), out(1);
  dx.upload(x);
  kt::reset_staged_sum_attribute();
  try {
    kt::staged_sum(out.get(), dx.get(), n, /*opt_in=*/false);
    FAIL("the launch was not refused");
  } catch (const kiln::Error& e) {
    const std::string m = e.what();
    INFO(m);
    CHECK(m.find("cudaErrorInvalidValue") != std::string::npos);
    CHECK(m.find("65536 bytes of dynamic shared memory") != std::string::npos);
    CHECK(m.find("cudaFuncAttributeMaxDynamicSharedMemorySize") != std::string::npos);
  }
  CHECK(std::isnan(out.download()[0]));  // nothing ran
  // The correct launcher opts in first, and the same launch runs.
  kt::staged_sum(out.get(), dx.get(), n, /*opt_in=*/true);
  CHECK(out.download()[0] == float(expected));
  kt::reset_staged_sum_attribute();
}
