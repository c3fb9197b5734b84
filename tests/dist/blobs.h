// tests/dist/blobs.h — the small labelled data set the dist tests train on: 1×4×4 images of three
// classes (a bright row at 1 + label over a patterned background), n of them.
#pragma once

#include <cstdint>
#include <vector>

#include "data/loader.h"

namespace kiln::test {

inline data::Dataset blobs(int n) {
  data::Dataset d = data::Dataset::with_spec({1, 4, 4}, {"a", "b", "c"});
  std::vector<uint8_t> img(16);
  for (int i = 0; i < n; ++i) {
    const int label = i % 3;
    for (int p = 0; p < 16; ++p) img[size_t(p)] = uint8_t((i * 37 + p * 11) % 60);
    for (int x = 0; x < 4; ++x) img[size_t((1 + label) * 4 + x)] = 220;
    d.push_back(img.data(), label);
  }
  return d;
}

}  // namespace kiln::test
