// tests/fuzz/fuzz_fer_csv.cpp — the FER2013 CSV reader on arbitrary text. A kiln::Error is the
// reader refusing bad input (fine); anything else that escapes, or a sanitizer report, is a bug.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/error.h"
#include "data/fer_csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  try {
    // Small images keep each execution cheap; the parse is the same at any size.
    kiln::data::parse_fer_csv(text, "fuzz.csv", kiln::data::ImageSpec{1, 8, 8}, 1);
  } catch (const kiln::Error&) {
  }
  return 0;
}
