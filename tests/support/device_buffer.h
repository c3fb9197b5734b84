// tests/support/device_buffer.h — the tests' one device buffer: n elements of T in device memory,
// owned (RAII, move-only), filled from and read back into host vectors.
//
// It speaks the CUDA runtime API (cudaMalloc, cudaMemcpy, cudaFree) and nothing of Kiln's tensors,
// so the same class serves the emulator's own tests (linked with the SIMT emulator's runtime shim
// only), the parity tests against the emulated library, and the native GPU tests against the real
// runtime. The copies are the blocking cudaMemcpy on the legacy default stream: an upload waits for
// the stream's earlier work, a download returns once the stream's kernels and the copy are done.
//
// `misaligned` starts the elements one T past the allocation's start, so for T = float they are
// 4 bytes past a 16-byte boundary (cudaMalloc returns 256-byte aligned memory): vectorised kernels
// must then take their scalar paths.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <utility>
#include <vector>

#include "core/cuda_check.h"

namespace kiln::test {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n, bool misaligned = false)
      : n_(n), offset_(misaligned ? 1 : 0) {
    KILN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&base_), (n_ + offset_) * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host, bool misaligned = false)
      : DeviceBuffer(host.size(), misaligned) {
    upload(host);
  }
  ~DeviceBuffer() { cudaFree(base_); }  // a destructor does not throw: a failure here is ignored
  DeviceBuffer(DeviceBuffer&& other) noexcept
      : base_(std::exchange(other.base_, nullptr)), n_(other.n_), offset_(other.offset_) {}
  DeviceBuffer& operator=(DeviceBuffer&& other) noexcept {
    std::swap(base_, other.base_);
    std::swap(n_, other.n_);
    std::swap(offset_, other.offset_);
    return *this;
  }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return base_ + offset_; }  // the first of the n elements
  std::size_t size() const { return n_; }

  // host.size() must be size().
  void upload(const std::vector<T>& host) {
    KILN_CUDA_CHECK(cudaMemcpy(get(), host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  void fill(const T& value) { upload(std::vector<T>(n_, value)); }
  void fill_bytes(int byte) { KILN_CUDA_CHECK(cudaMemset(get(), byte, n_ * sizeof(T))); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    KILN_CUDA_CHECK(cudaMemcpy(host.data(), get(), n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* base_ = nullptr;
  std::size_t n_;
  std::size_t offset_;  // elements between the allocation's start and get()
};

}  // namespace kiln::test
