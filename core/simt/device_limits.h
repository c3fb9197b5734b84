// core/simt/device_limits.h — the limits of the emulated device (an sm_90 part, as an H100/H200),
// which every launch is checked against (core/simt/launch_limits.cpp) as a GPU checks it.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kiln::simt::detail {

inline constexpr std::uint32_t kMaxThreadsPerBlock = 1024;  // x·y·z of a block
inline constexpr std::uint32_t kMaxBlockDimXY = 1024;
inline constexpr std::uint32_t kMaxBlockDimZ = 64;
inline constexpr std::uint32_t kMaxGridDimX = 2147483647;  // 2^31 − 1
inline constexpr std::uint32_t kMaxGridDimYZ = 65535;
// Dynamic shared memory a kernel may use without opting in with cudaFuncSetAttribute(kernel,
// cudaFuncAttributeMaxDynamicSharedMemorySize, bytes); and the most a block may have in all
// (static + dynamic), which also caps that attribute.
inline constexpr std::size_t kDefaultMaxDynamicShared = 48 * 1024;
inline constexpr std::size_t kMaxSharedPerBlock = 227 * 1024;

}  // namespace kiln::simt::detail
