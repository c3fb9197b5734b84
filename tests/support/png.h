// tests/support/png.h — decoding the PNGs Kiln writes, to check them as pictures.
#pragma once

#include <stb/stb_image.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

namespace kiln::test {

struct Decoded {
  int width = 0, height = 0, channels = 0;
  std::vector<uint8_t> pixels;  // [H][W][channels]
  // Standard deviation of all samples: 0 for a uniform picture.
  double stddev() const {
    double s = 0, s2 = 0;
    for (uint8_t p : pixels) s += p, s2 += double(p) * p;
    const double n = double(pixels.size()), m = s / n;
    return std::sqrt(std::max(0.0, s2 / n - m * m));
  }
  // Fraction of pixels that are not (near) white.
  double inked() const {
    size_t ink = 0;
    for (size_t i = 0; i + 2 < pixels.size(); i += size_t(channels))
      if (pixels[i] < 235 || pixels[i + 1] < 235 || pixels[i + 2] < 235) ++ink;
    return double(ink) / (double(pixels.size()) / channels);
  }
};

inline Decoded decode_png(const std::vector<uint8_t>& bytes) {
  Decoded d;
  uint8_t* p =
      stbi_load_from_memory(bytes.data(), int(bytes.size()), &d.width, &d.height, &d.channels, 3);
  if (!p) return d;
  d.channels = 3;
  d.pixels.assign(p, p + size_t(d.width) * d.height * 3);
  stbi_image_free(p);
  return d;
}

inline Decoded decode_png_file(const std::string& path) {
  Decoded d;
  uint8_t* p = stbi_load(path.c_str(), &d.width, &d.height, &d.channels, 3);
  if (!p) return d;
  d.channels = 3;
  d.pixels.assign(p, p + size_t(d.width) * d.height * 3);
  stbi_image_free(p);
  return d;
}

}  // namespace kiln::test
