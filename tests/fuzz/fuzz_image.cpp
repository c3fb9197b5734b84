// tests/fuzz/fuzz_image.cpp — image decoding (stb_image, compiled with the sanitizers and the
// fuzzer's coverage) and conversion on arbitrary bytes. The caps are lowered from their defaults
// so that one execution stays small; their logic is the same (tests/data/test_image_limits.cpp).
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "data/image.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  kiln::data::ImageLimits limits;
  limits.max_pixels = 1 << 20;
  limits.max_bytes = 4 << 20;
  try {
    kiln::data::decode_image(bytes, "fuzz.img", kiln::data::ImageSpec{3, 16, 16}, limits);
  } catch (const kiln::Error&) {
  }
  return 0;
}
