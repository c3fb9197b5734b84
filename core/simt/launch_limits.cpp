// core/simt/launch_limits.cpp — what a GPU checks before it starts a grid, checked the same way:
// the grid's and the block's dimensions against the device's (core/simt/device_limits.h), the
// block's size against the kernel's launch bounds (KILN_LAUNCH_BOUNDS), and the dynamic shared
// memory against the kernel's MaxDynamicSharedMemorySize attribute (48 KiB until
// cudaFuncSetAttribute raises it, at most the device's 227 KiB). A refused launch records the CUDA
// error a GPU returns — cudaErrorInvalidConfiguration for dimensions,
// cudaErrorLaunchOutOfResources for a block beyond the launch bounds, cudaErrorInvalidValue for
// shared memory — and a message naming the kernel and the limit; kiln::launch throws it.
// The per-kernel attribute table is keyed by the kernel's address, as CUDA's is.
#include <cuda_runtime.h>
#include <cxxabi.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <unordered_map>

#include "core/error.h"
#include "simt.h"

namespace kiln::simt {
namespace detail {
namespace {

using ::kiln::detail::concat;

struct KernelAttributes {
  std::size_t max_dynamic_shared = kDefaultMaxDynamicShared;
};

struct AttributeTable {
  std::mutex mu;
  std::unordered_map<const void*, KernelAttributes> by_kernel;
};
AttributeTable& attribute_table() {
  static AttributeTable* t = new AttributeTable;  // never destroyed: launches may run during exit
  return *t;
}

KernelAttributes attributes_of(const void* kernel) {
  AttributeTable& t = attribute_table();
  std::lock_guard<std::mutex> lock(t.mu);
  const auto it = t.by_kernel.find(kernel);
  return it == t.by_kernel.end() ? KernelAttributes{} : it->second;
}

thread_local std::string launch_error;

// The block size KILN_LAUNCH_BOUNDS recorded in the kernel's code (simt.h): max_threads / 32
// one-byte NOPs (0x90) at its entry, after the endbr64 that -fcf-protection puts first; 0 when the
// kernel has no launch bounds. The NOP encoding is x86-64's: elsewhere no bound is read.
std::uint32_t launch_bound_of(const void* kernel) {
#if defined(__x86_64__)
  const auto* code = static_cast<const unsigned char*>(kernel);
  constexpr unsigned char kEndbr64[] = {0xf3, 0x0f, 0x1e, 0xfa};
  if (std::memcmp(code, kEndbr64, sizeof kEndbr64) == 0) code += sizeof kEndbr64;
  std::uint32_t nops = 0;
  while (nops < kMaxThreadsPerBlock / 32 && code[nops] == 0x90) ++nops;
  return nops * 32;
#else
  (void)kernel;
  return 0;
#endif
}

// The kernel's name when the dynamic symbol table has it (kernels in libkiln.so), else its address;
// then its parameter types, from simt::launch's __PRETTY_FUNCTION__
// ("... [with KArgs = {float*, const float*, int}; Args = ...]").
std::string kernel_name(const void* kernel, const char* signature) {
  std::string name = concat("the kernel at ", kernel);
  Dl_info info{};
  if (dladdr(kernel, &info) != 0 && info.dli_sname != nullptr && info.dli_saddr == kernel) {
    int status = 0;
    char* demangled = abi::__cxa_demangle(info.dli_sname, nullptr, nullptr, &status);
    name = concat("kernel ", status == 0 ? demangled : info.dli_sname);
    std::free(demangled);
    return name;
  }
  const std::string s = signature;
  const std::string key = "KArgs = {";
  const std::size_t begin = s.find(key);
  const std::size_t end = begin == std::string::npos ? begin : s.find("};", begin);
  if (end != std::string::npos)
    name += concat(" (parameters ", s.substr(begin + key.size(), end - begin - key.size()), ")");
  return name;
}

// The launch listing (docs/simt.md, "Listing the launches"): with KILN_SIMT_LIST_LAUNCHES set in
// the environment, every launch that passes its checks writes one line to stderr — the kernel's
// name, or for a kernel the dynamic symbol table lacks (a static library's local symbols) its
// object file and offset there, which `addr2line -f -C -e <object> <offset>` turns into a name —
// then the grid and block. Off by default: one getenv, read once.
void list_launch(const void* kernel, const char* signature, const LaunchSpec& spec) {
  static const bool on = std::getenv("KILN_SIMT_LIST_LAUNCHES") != nullptr;
  if (!on) return;
  Dl_info info{};
  const bool found = dladdr(kernel, &info) != 0 && info.dli_fname != nullptr;
  const auto offset = found ? reinterpret_cast<std::uintptr_t>(kernel) -
                                  reinterpret_cast<std::uintptr_t>(info.dli_fbase)
                            : std::uintptr_t{0};
  const dim3 g = spec.grid, b = spec.block;
  std::fprintf(stderr, "simt launch: %s at %s+0x%jx grid %ux%ux%u block %ux%ux%u\n",
               kernel_name(kernel, signature).c_str(), found ? info.dli_fname : "?",
               static_cast<std::uintmax_t>(offset), g.x, g.y, g.z, b.x, b.y, b.z);
}

bool refuse(cudaError_t error, std::string message) {
  launch_error = std::move(message);
  record_error(error);
  return false;
}

}  // namespace

bool launch_allowed(const void* kernel, const char* signature, const LaunchSpec& spec) {
  const dim3 g = spec.grid, b = spec.block;
  const auto dims = [](dim3 d) { return concat(d.x, "x", d.y, "x", d.z); };
  if (g.x < 1 || g.y < 1 || g.z < 1 || g.x > kMaxGridDimX || g.y > kMaxGridDimYZ ||
      g.z > kMaxGridDimYZ)
    return refuse(cudaErrorInvalidConfiguration,
                  concat("SIMT emulator: grid ", dims(g), " of ", kernel_name(kernel, signature),
                         " is outside the device's limits (x 1..", kMaxGridDimX, ", y and z 1..",
                         kMaxGridDimYZ, ")"));
  if (b.x < 1 || b.y < 1 || b.z < 1 || b.x > kMaxBlockDimXY || b.y > kMaxBlockDimXY ||
      b.z > kMaxBlockDimZ || std::uint64_t{b.x} * b.y * b.z > kMaxThreadsPerBlock)
    return refuse(cudaErrorInvalidConfiguration,
                  concat("SIMT emulator: block ", dims(b), " of ", kernel_name(kernel, signature),
                         " is outside the device's limits (x and y 1..", kMaxBlockDimXY, ", z 1..",
                         kMaxBlockDimZ, ", at most ", kMaxThreadsPerBlock, " threads in all)"));
  const std::uint32_t threads = b.x * b.y * b.z, bound = launch_bound_of(kernel);
  if (bound != 0 && threads > bound)
    return refuse(cudaErrorLaunchOutOfResources,
                  concat("SIMT emulator: block ", dims(b), " (", threads, " threads) of ",
                         kernel_name(kernel, signature), " exceeds the kernel's launch bounds (",
                         bound, " threads, KILN_LAUNCH_BOUNDS)"));
  const KernelAttributes a = attributes_of(kernel);
  if (spec.shared_bytes > a.max_dynamic_shared)
    return refuse(
        cudaErrorInvalidValue,
        concat("SIMT emulator: ", spec.shared_bytes, " bytes of dynamic shared memory for ",
               kernel_name(kernel, signature), " exceed its limit of ", a.max_dynamic_shared,
               a.max_dynamic_shared == kDefaultMaxDynamicShared ? " (the default)" : "",
               "; a kernel opts in to more, up to ", kMaxSharedPerBlock,
               ", with cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, "
               "bytes) before it is launched"));
  list_launch(kernel, signature, spec);
  return true;
}

cudaError_t set_kernel_attribute(const void* kernel, cudaFuncAttribute attribute, int value) {
  if (kernel == nullptr) return cudaErrorInvalidDeviceFunction;
  if (attribute != cudaFuncAttributeMaxDynamicSharedMemorySize)
    return cudaSuccess;  // the others (carveout, cluster shape, ...) change nothing here
  if (value < 0 || static_cast<std::size_t>(value) > kMaxSharedPerBlock)
    return cudaErrorInvalidValue;
  AttributeTable& t = attribute_table();
  std::lock_guard<std::mutex> lock(t.mu);
  t.by_kernel[kernel].max_dynamic_shared = static_cast<std::size_t>(value);
  return cudaSuccess;
}

}  // namespace detail

const char* last_launch_error() {
  return detail::launch_error.c_str();
}

}  // namespace kiln::simt
