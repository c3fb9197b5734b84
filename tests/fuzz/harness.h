// tests/fuzz/harness.h — what the checkpoint harnesses share.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "core/error.h"
#include "layers/fer_cnn.h"
#include "optim/checkpoint.h"

namespace kiln::fuzz {

// The tiny fer_cnn the state loaders load into, and make_corpus writes the seeds of: width
// 1/1024 makes every hidden width 1, so a whole checkpoint is a few KB.
inline const FerCnnConfig kTinyFerCnn{1, 32, 32, 7, 1.0 / 1024};

inline Sequential& tiny_fer_cnn() {
  static auto net = make_fer_cnn(kTinyFerCnn, 1);
  return *net;
}

// The input read as a safetensors file, or nullopt when the reader refuses it (a kiln::Error).
inline std::optional<StFile> read_or_refuse(const uint8_t* data, size_t size, const char* name) {
  try {
    return parse_safetensors(std::string_view(reinterpret_cast<const char*>(data), size), name);
  } catch (const Error&) {
    return std::nullopt;
  }
}

}  // namespace kiln::fuzz
