// tests/simt/device_buffer.h — a minimal RAII device buffer for the emulator's tests.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "core/cuda_check.h"
#include "core/simt/schedule.h"

namespace kiln::simt_test {

template <typename T>
class DeviceBuffer {
 public:
  explicit DeviceBuffer(std::size_t n) : n_(n) {
    KILN_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p_), n * sizeof(T)));
  }
  explicit DeviceBuffer(const std::vector<T>& host) : DeviceBuffer(host.size()) { upload(host); }
  ~DeviceBuffer() { cudaFree(p_); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;

  T* get() const { return p_; }
  std::size_t size() const { return n_; }
  void upload(const std::vector<T>& host) {
    KILN_CUDA_CHECK(cudaMemcpy(p_, host.data(), n_ * sizeof(T), cudaMemcpyHostToDevice));
  }
  void fill_bytes(int byte) { KILN_CUDA_CHECK(cudaMemset(p_, byte, n_ * sizeof(T))); }
  std::vector<T> download() const {
    std::vector<T> host(n_);
    KILN_CUDA_CHECK(cudaMemcpy(host.data(), p_, n_ * sizeof(T), cudaMemcpyDeviceToHost));
    return host;
  }

 private:
  T* p_ = nullptr;
  std::size_t n_;
};

// Runs `launch`, then synchronises the device, and returns the message of the kiln::Error either
// threw ("" when none). A kernel's failure is sticky and surfaces at the synchronisation (in the
// synchronous stream mode at the launch); it is cleared afterwards, so the next test starts clean.
inline std::string kernel_error_of(const std::function<void()>& launch) {
  std::string msg;
  try {
    launch();
    KILN_CUDA_CHECK(cudaDeviceSynchronize());
  } catch (const kiln::Error& e) {
    msg = e.what();
  }
  kiln::simt::clear_device_error();
  return msg;
}

}  // namespace kiln::simt_test
