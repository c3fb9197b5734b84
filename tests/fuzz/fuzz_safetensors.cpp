// tests/fuzz/fuzz_safetensors.cpp — the safetensors reader on arbitrary bytes: either a
// kiln::Error or a file whose every tensor holds exactly the bytes its dtype and shape need.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "core/error.h"
#include "io/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  try {
    const kiln::StFile file = kiln::parse_safetensors(bytes, "fuzz.safetensors");
    size_t total = 0;
    for (const kiln::StTensor& t : file.tensors) total += t.bytes.size();
    if (total > size) std::abort();  // the tensors can never hold more than the file
  } catch (const kiln::Error&) {
  }
  return 0;
}
