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
#include "tests/simt/device_buffer.h"
#include "tests/simt/simt_only_kernels.h"
#include "tests/simt/simt_test_kernels.h"
#include "tests/support/every_order.h"

namespace kt = kiln::simt_test;
using kiln::simt_test::DeviceBuffer;

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
  REQUIRE(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) == cudaSuccess);
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

TEST_CASE("an exception thrown in a kernel reaches the caller of the launch", "[simt]") {
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
    kt::throwing(-1);  // and the emulator still works afterwards
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
