// core/bytes.h — a byte count as error messages show it.
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

// "1.9 MB (1900000 bytes)", or "640 bytes" below a megabyte.
std::string byte_count(uint64_t bytes);

}  // namespace kiln
