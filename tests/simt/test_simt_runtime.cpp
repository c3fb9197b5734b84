// tests/simt/test_simt_runtime.cpp — the emulator's CUDA runtime shim, its schedules, argument
// passing, and exceptions thrown inside kernels.
#include <catch2/catch.hpp>

#include <cuda_runtime.h>

#include <cmath>
#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/simt/schedule.h"
#include "tests/simt/kernel_error.h"
#include "tests/simt/simt_only_kernels.h"
#include "tests/simt/simt_test_kernels.h"
#include "tests/support/device_buffer.h"
#include "tests/support/every_order.h"

namespace kt = kiln::simt_test;
using kiln::test::DeviceBuffer;

TEST_CASE("runtime shim: memory, copies, memset", "[simt]") {
  float* d = nullptr;
  REQUIRE(cudaMalloc(reinterpret_cast<void**>(&d), 64 * sizeof(float)) == cudaSuccess);
  REQUIRE(d != nullptr);
  REQUIRE(reinterpret_cast<std::uintptr_t>(d) % 256 == 0);
  std::vector<float> h(64);
  REQUIRE(cudaMemcpy(h.data(), d, 64 * sizeof(float), cudaMemcpyDeviceToHost) == cudaSuccess);
  for (float v : h) REQUIRE(std::isnan(v));  // fresh device memory is 0xFF-filled
  REQUIRE(cudaMemset(d, 0, 64 * sizeof(float)) == cudaSuccess);
  std::vector<float> src(64, 2.5f);
  cudaStream_t s = nullptr;
  // A blocking stream: its copies are ordered after the cudaMemset queued on the legacy stream (a
  // cudaStreamNonBlocking stream would race with it; the check stream mode shows that).
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamDefault) == cudaSuccess);
  REQUIRE(cudaMemcpyAsync(d + 8, src.data(), 8 * sizeof(float), cudaMemcpyHostToDevice, s) ==
          cudaSuccess);
  REQUIRE(cudaMemsetAsync(d + 16, 0xFF, 4, s) == cudaSuccess);
  REQUIRE(cudaStreamSynchronize(s) == cudaSuccess);
  REQUIRE(cudaMemcpy(h.data(), d, 64 * sizeof(float), cudaMemcpyDefault) == cudaSuccess);
  CHECK(h[7] == 0.0f);
  CHECK(h[8] == 2.5f);
  CHECK(h[15] == 2.5f);
  CHECK(std::isnan(h[16]));
  CHECK(h[17] == 0.0f);
  REQUIRE(cudaStreamDestroy(s) == cudaSuccess);
  REQUIRE(cudaFree(d) == cudaSuccess);
  REQUIRE(cudaFree(nullptr) == cudaSuccess);

  void* pinned = nullptr;
  REQUIRE(cudaMallocHost(&pinned, 100) == cudaSuccess);
  REQUIRE(cudaFreeHost(pinned) == cudaSuccess);
}

TEST_CASE("runtime shim: errors are returned and remembered, not thrown", "[simt]") {
  int x = 0;
  CHECK(cudaFree(&x) == cudaErrorInvalidValue);
  CHECK(cudaPeekAtLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaSuccess);
  CHECK(cudaSetDevice(1) == cudaErrorInvalidDevice);
  (void)cudaGetLastError();
  CHECK(std::string(cudaGetErrorName(cudaErrorInvalidDevice)) == "cudaErrorInvalidDevice");
  CHECK(std::string(cudaGetErrorString(cudaSuccess)) == "no error");
}

TEST_CASE("runtime shim: device, properties, events", "[simt]") {
  int count = 0, dev = -1;
  REQUIRE(cudaGetDeviceCount(&count) == cudaSuccess);
  CHECK(count == 1);
  REQUIRE(cudaSetDevice(0) == cudaSuccess);
  REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
  CHECK(dev == 0);
  cudaDeviceProp prop;
  REQUIRE(cudaGetDeviceProperties(&prop, 0) == cudaSuccess);
  CHECK(std::string(prop.name) == "Kiln SIMT emulator");
  CHECK(prop.warpSize == 32);
  CHECK(prop.maxThreadsPerBlock == 1024);
  CHECK(prop.major == 9);
  CHECK(prop.multiProcessorCount == kiln::simt::worker_count());
  std::size_t free_bytes = 0, total = 0;
  REQUIRE(cudaMemGetInfo(&free_bytes, &total) == cudaSuccess);
  CHECK(total > 0);
  CHECK(free_bytes <= total);

  cudaEvent_t a, b;
  REQUIRE(cudaEventCreate(&a) == cudaSuccess);
  REQUIRE(cudaEventCreate(&b) == cudaSuccess);
  REQUIRE(cudaEventRecord(a, nullptr) == cudaSuccess);
  REQUIRE(cudaEventRecord(b, nullptr) == cudaSuccess);
  REQUIRE(cudaEventSynchronize(b) == cudaSuccess);
  float ms = -1.0f;
  REQUIRE(cudaEventElapsedTime(&ms, a, b) == cudaSuccess);
  CHECK(ms >= 0.0f);
  REQUIRE(cudaEventDestroy(a) == cudaSuccess);
  REQUIRE(cudaEventDestroy(b) == cudaSuccess);
  CHECK(cudaDeviceSynchronize() == cudaSuccess);
}

TEST_CASE("sync stream mode: an exception thrown in a kernel reaches the caller of the launch",
          "[simt]") {
  kiln::simt::ScopedStreamMode sync(kiln::simt::StreamMode::kSync);
  for (const auto& s : kiln::simt::every_order()) {
    kiln::simt::ScopedSchedule scope(s);
    INFO(kiln::simt::to_string(s));
    try {
      kt::throwing(77);
      FAIL("no exception");
    } catch (const kiln::Error& e) {
      CHECK(std::string(e.what()) == "thread 77 of block 1 refuses");
      CHECK(std::string(e.file()).find("simt_only_kernels.cu") != std::string::npos);
    }
    CHECK(kiln::simt::device_error() == "");  // not sticky in this mode
    kt::throwing(-1);                         // and the emulator still works afterwards
  }
}

TEST_CASE("an exception thrown in a kernel is sticky and reported with its message at the sync",
          "[simt]") {
  for (auto mode : {kiln::simt::StreamMode::kAsync, kiln::simt::StreamMode::kCheck}) {
    kiln::simt::ScopedStreamMode scope(mode);
    INFO(kiln::simt::to_string(mode));
    DeviceBuffer<float> out(8);
    out.fill_bytes(0);
    kt::throwing(77);  // queued fine: the launch itself succeeds
    CHECK(cudaPeekAtLastError() == cudaSuccess);
    kt::args(out.get(), 1, kt::ByValue{{1, 1}});  // queued after the failure: skipped
    CHECK(cudaDeviceSynchronize() == cudaErrorLaunchFailure);
    const std::string msg = kiln::simt::device_error();
    CHECK(msg.find("thread 77 of block 1 refuses") != std::string::npos);
    CHECK(msg.find("simt_only_kernels.cu:") != std::string::npos);
    // Sticky: every synchronising call, and cudaGetLastError (which does not clear it), reports it.
    CHECK(cudaStreamSynchronize(nullptr) == cudaErrorLaunchFailure);
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    CHECK(cudaGetLastError() == cudaErrorLaunchFailure);
    // KILN_CUDA_CHECK carries the kernel's own message.
    try {
      out.download();
      FAIL("no exception");
    } catch (const kiln::Error& e) {
      const std::string what = e.what();
      CHECK(what.find("cudaErrorLaunchFailure") != std::string::npos);
      CHECK(what.find("thread 77 of block 1 refuses") != std::string::npos);
    }
    kiln::simt::clear_device_error();
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
    CHECK(cudaGetLastError() == cudaSuccess);
    const auto r = out.download();
    CHECK(r[0] == 0.0f);  // the launch queued after the failure never ran
    kt::throwing(-1);     // and the emulator works again
    CHECK(cudaDeviceSynchronize() == cudaSuccess);
  }
}

TEST_CASE("kernel arguments are converted and copied by value", "[simt]") {
  DeviceBuffer<float> out(8);
  kt::ByValue v{{10, 1}};
  kt::args(out.get(), 2, v);
  const auto r = out.download();
  for (int t = 0; t < 8; ++t) CHECK(r[t] == 2.0f * (10 + t + 1));
  CHECK(v.values[0] == 10);
}

TEST_CASE("schedules: names, every_order, scoped override", "[simt]") {
  const auto orders = kiln::simt::every_order(42);
  CHECK(kiln::simt::to_string(orders[0]) == "forward");
  CHECK(kiln::simt::to_string(orders[1]) == "reverse");
  CHECK(kiln::simt::to_string(orders[2]) == "random:42+reversed-blocks");
  const auto before = kiln::simt::schedule();
  {
    kiln::simt::ScopedSchedule scope(orders[2]);
    CHECK(kiln::simt::schedule().threads == kiln::simt::ThreadOrder::kRandom);
    CHECK(kiln::simt::schedule().reverse_blocks);
  }
  CHECK(kiln::simt::to_string(kiln::simt::schedule()) == kiln::simt::to_string(before));
}

TEST_CASE("invalid launch configurations are errors", "[simt]") {
  DeviceBuffer<float> out(2048);
  CHECK_THROWS_AS(kt::reverse_chunks(out.get(), out.get(), 2048, 2048), kiln::Error);  // > 1024
  CHECK_THROWS_AS(kt::reverse_chunks(out.get(), out.get(), 0, 1), kiln::Error);        // grid 0
}

TEST_CASE("every_order helpers compare bitwise and name the order", "[simt]") {
  kiln::test::EveryOrder<std::vector<float>> runs;
  runs.names = {"forward", "reverse", "random"};
  runs.results = {std::vector<float>{1, NAN, 3}, std::vector<float>{1, NAN, 3},
                  std::vector<float>{1, NAN, 4}};
  CHECK(kiln::test::first_difference(runs) ==
        "order random differs from order forward at index 2: 4 vs 3");
  runs.results[2][2] = 3;
  CHECK(kiln::test::first_difference(runs) == "");
  int calls = 0;
  auto scalar = kiln::test::run_in_every_order([&] { return ++calls; });
#if defined(KILN_SIMT_TSAN)
  // The race-detector build runs one order and copies its result (tests/support/every_order.h).
  CHECK(calls == 1);
  CHECK(kiln::test::first_difference(scalar) == "");
  CHECK(scalar.names[2] == "forward (race detector: one order)");
#else
  CHECK(calls == 3);
  CHECK(kiln::test::first_difference(scalar) != "");
#endif
}

// A launch beyond the device's limits fails as on a GPU: the CUDA error is recorded and kiln::launch
// throws it, with a message that names the kernel and the limit.
TEST_CASE("launch limits: grid and block dimensions beyond the device's are refused", "[simt]") {
  struct Case {
    dim3 grid, block;
    const char* what;
  };
  const Case bad[] = {
      {dim3(0), dim3(32), "grid 0x1x1"},
      {dim3(1, 0), dim3(32), "grid 1x0x1"},
      {dim3(1, 65536), dim3(32), "grid 1x65536x1"},
      {dim3(1, 1, 65536), dim3(32), "grid 1x1x65536"},
      {dim3(1), dim3(0), "block 0x1x1"},
      {dim3(1), dim3(1025), "block 1025x1x1"},
      {dim3(1), dim3(1, 1025), "block 1x1025x1"},
      {dim3(1), dim3(1, 1, 65), "block 1x1x65"},
      {dim3(1), dim3(64, 32), "block 64x32x1"},  // each dimension allowed, 2048 threads are not
  };
  for (const Case& c : bad) {
    INFO(c.what);
    try {
      kt::empty(c.grid, c.block, 0);
      FAIL("launched");
    } catch (const kiln::Error& e) {
      const std::string m = e.what();
      CHECK(m.find("cudaErrorInvalidConfiguration") != std::string::npos);
      CHECK(m.find(c.what) != std::string::npos);
      CHECK(m.find("outside the device's limits") != std::string::npos);
    }
    CHECK(cudaGetLastError() == cudaSuccess);  // kiln::launch consumed the error
  }
  // The edges themselves are allowed (grid x may pass 65535; its limit, 2^31 − 1, is too many
  // blocks to run here).
  for (const Case& c : {Case{dim3(70000), dim3(1), ""}, Case{dim3(1, 65535), dim3(1), ""},
                        Case{dim3(1, 1, 65535), dim3(1), ""}, Case{dim3(1), dim3(1024), ""},
                        Case{dim3(1), dim3(1, 1024), ""}, Case{dim3(1), dim3(1, 1, 64), ""},
                        Case{dim3(1), dim3(32, 32), ""}})
    CHECK_NOTHROW(kt::empty(c.grid, c.block, 0));
}

TEST_CASE("launch limits: more than 48 KiB of dynamic shared memory needs the kernel's attribute",
          "[simt]") {
  auto message = [](size_t bytes) -> std::string {
    try {
      kt::empty(dim3(1), dim3(32), bytes);
    } catch (const kiln::Error& e) {
      return e.what();
    }
    return "";
  };
  const void* k = kt::empty_kernel_address();
  CHECK(message(48 * 1024).empty());  // the default limit itself
  const std::string m = message(48 * 1024 + 1);
  CHECK(m.find("cudaErrorInvalidValue") != std::string::npos);
  CHECK(m.find("49153 bytes of dynamic shared memory") != std::string::npos);
  CHECK(m.find("exceed its limit of 49152 (the default)") != std::string::npos);
  CHECK(m.find("cudaFuncAttributeMaxDynamicSharedMemorySize") != std::string::npos);
  CHECK(cudaGetLastError() == cudaSuccess);
  // The attribute raises the limit for this kernel, up to the device's 227 KiB and no further.
  REQUIRE(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 100 * 1024) ==
          cudaSuccess);
  CHECK(message(100 * 1024).empty());
  CHECK(message(100 * 1024 + 16).find("exceed its limit of 102400;") != std::string::npos);
  CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024) ==
        cudaSuccess);
  CHECK(message(227 * 1024).empty());
  CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 227 * 1024 + 1) ==
        cudaErrorInvalidValue);
  CHECK(cudaGetLastError() == cudaErrorInvalidValue);
  CHECK(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, -1) ==
        cudaErrorInvalidValue);
  CHECK(cudaFuncSetAttribute(nullptr, cudaFuncAttributeMaxDynamicSharedMemorySize, 1024) ==
        cudaErrorInvalidDeviceFunction);
  (void)cudaGetLastError();
  CHECK(message(227 * 1024).empty());  // a refused attribute left the last good one in force
  REQUIRE(cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, 48 * 1024) ==
          cudaSuccess);
  CHECK(!message(48 * 1024 + 1).empty());
}

// Static shared memory is known only once the block declares it: the sum is checked then.
TEST_CASE("launch limits: static + dynamic shared memory is held to 227 KiB", "[simt]") {
  // The block fails as it runs: in the asynchronous stream mode the error is the device's sticky
  // error, reported with its message by the next synchronising call.
  CHECK(kiln::simt_test::kernel_error_of([] { kt::static_plus_dynamic(27 * 1024); }).empty());
  CHECK(kiln::simt_test::kernel_error_of([] {
          kt::static_plus_dynamic(27 * 1024 + 16);
        }).find("more than 232448 bytes of shared memory (static + dynamic)") != std::string::npos);
}

TEST_CASE("launch limits: a block larger than the kernel's KILN_LAUNCH_BOUNDS is refused",
          "[simt]") {
  auto message = [](void (*run)(dim3), dim3 block) -> std::string {
    try {
      run(block);
    } catch (const kiln::Error& e) {
      return e.what();
    }
    return "";
  };
  CHECK(message(kt::bounded_128, dim3(128)).empty());
  CHECK(message(kt::bounded_128, dim3(32, 4)).empty());
  CHECK(message(kt::bounded_128, dim3(1)).empty());
  for (dim3 block : {dim3(129), dim3(160), dim3(16, 9), dim3(1024)}) {
    const std::string m = message(kt::bounded_128, block);
    INFO(m);
    CHECK(m.find("cudaErrorLaunchOutOfResources") != std::string::npos);
    CHECK(m.find("exceeds the kernel's launch bounds (128 threads, KILN_LAUNCH_BOUNDS)") !=
          std::string::npos);
  }
  // A bound that is a template parameter is read per instantiation.
  CHECK(message(kt::bounded_template_256, dim3(256)).empty());
  const std::string m = message(kt::bounded_template_256, dim3(288));
  CHECK(m.find("block 288x1x1 (288 threads)") != std::string::npos);
  CHECK(m.find("launch bounds (256 threads") != std::string::npos);
  // A kernel without launch bounds takes any block the device allows.
  CHECK_NOTHROW(kt::empty(dim3(1), dim3(1024), 0));
  CHECK(cudaGetLastError() == cudaSuccess);
}
