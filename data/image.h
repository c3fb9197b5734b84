// data/image.h — decoding one image file and converting pixels to a model's input shape.
//
// Conversion is the same for every source: channels first (RGB -> gray by ITU-R BT.601 luma, as
// PIL's "L" mode; gray -> RGB by replication; alpha dropped), then a separable resize with the
// triangle (bilinear) filter, widened when shrinking so that downscaling averages instead of
// aliasing (the rule PIL's BILINEAR follows); pixel centres at (i + 0.5), as PyTorch's
// align_corners=False.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "data/dataset.h"

namespace kiln::data {

// Converts an [src_h][src_w][src_c] image (src_c in 1..4: gray, gray+alpha, RGB, RGBA) to `spec`,
// writing spec.pixels() bytes to `out`.
void convert_image(uint8_t* out, const ImageSpec& spec, const uint8_t* src, int src_c, int src_h,
                   int src_w);

// The largest image decoded: the size an image's header declares is checked before decoding
// (a 389 KB PNG can declare 20000x20000, 1.2 GB decoded). The defaults can be raised with the
// environment variables KILN_MAX_IMAGE_PIXELS and KILN_MAX_IMAGE_BYTES (positive integers).
struct ImageLimits {
  uint64_t max_pixels = 50'000'000;  // width x height
  uint64_t max_bytes = 200'000'000;  // width x height x channels of the decoded 8-bit image
  static ImageLimits from_environment();
};

// Decodes a png/jpg/bmp (anything stb_image reads) and converts it to `spec`: [H][W][C] bytes.
// Throws kiln::Error naming the file when it is missing, not a regular file, does not decode, or
// declares an image larger than the limits (the message gives its dimensions, the limit and how
// to raise it).
std::vector<uint8_t> load_image(const std::string& path, const ImageSpec& spec);
// The same from the file's bytes; `name` names it in errors.
std::vector<uint8_t> decode_image(std::string_view bytes, const std::string& name,
                                  const ImageSpec& spec,
                                  const ImageLimits& limits = ImageLimits::from_environment());
inline std::vector<uint8_t> load_image(const std::string& path, int channels, int height,
                                       int width) {
  return load_image(path, ImageSpec{channels, height, width});
}

}  // namespace kiln::data
