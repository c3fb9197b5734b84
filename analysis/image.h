// analysis/image.h — the RGB pictures the analysis draws, and how they become files.
//
// Every figure Kiln produces ends as an `Image`: 8-bit RGB, rows top to bottom ([H][W][3]). Pixel
// grids (saliency maps, filter pictures, feature maps) are built here directly from float arrays
// through a colour map; charts with text are drawn by Cairo (analysis/canvas.h) and land here too.
// PNGs are encoded by stb_image_write (Debian's libstb), in memory, so the same bytes go to a file
// or into the HTML report as a data URI. Files are written to a temporary name and renamed, so an
// interrupted run never leaves half a picture behind (docs/design.md §6).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace kiln::analysis {

struct Rgb {
  uint8_t r = 0, g = 0, b = 0;
};

class Image {
 public:
  Image() = default;
  Image(int width, int height, Rgb fill = {255, 255, 255});
  int width() const { return width_; }
  int height() const { return height_; }
  bool empty() const { return width_ == 0; }
  Rgb at(int x, int y) const;
  void set(int x, int y, Rgb c);
  const uint8_t* data() const { return pixels_.data(); }  // [H][W][3]
  uint8_t* data() { return pixels_.data(); }

  // Copies `src` with its top-left corner at (x, y); parts outside this image are clipped.
  void paste(const Image& src, int x, int y);
  // Nearest-neighbour enlargement by an integer factor (pixels stay visible as squares).
  Image upscaled(int factor) const;

 private:
  int width_ = 0, height_ = 0;
  std::vector<uint8_t> pixels_;
};

// Colour maps for scalars in [0, 1] (values outside are clamped).
enum class ColorMap {
  gray,     // black -> white: inputs, filter pictures of one-channel models, feature maps
  inferno,  // black -> purple -> orange -> pale yellow: saliency (perceptually uniform)
  blues,    // white -> dark blue: confusion-matrix cells
};
Rgb color_at(ColorMap map, double t);

// How a float array is stretched to [0, 1] before the colour map.
struct Range {
  double lo = 0, hi = 1;
};
// The min..max of `n` values (a constant array gets a range of width 1 so it maps to one colour).
Range min_max(const float* values, int64_t n);
// lo..hi between the `lo_q` and `hi_q` quantiles: a few extreme values then do not wash out
// the rest.
Range quantile_range(const float* values, int64_t n, double lo_q, double hi_q);

// An [h][w] array through a colour map.
Image colorize(const float* values, int h, int w, Range range, ColorMap map);
// An [h][w][c] array (c = 1 or 3) as a picture: one channel through `map`, three as RGB, each
// stretched by the same `range`.
Image picture(const float* values, int h, int w, int c, Range range, ColorMap map = ColorMap::gray);
// `base` with `heat` blended over it: out = (1 - a) * base + a * heat, with a = alpha * weight,
// where weight is the heat value's own brightness so that cold regions leave the base visible.
Image overlay(const Image& base, const Image& heat, const float* heat_values, Range heat_range,
              double alpha);

// PNG bytes of `image` (stb_image_write), and a file written through a temporary name.
std::vector<uint8_t> encode_png(const Image& image);
void write_png(const std::string& path, const Image& image);
// Creates path's folder if needed, then writes `bytes` with kiln::write_file_atomic.
void write_file(const std::string& path, std::string_view bytes);
std::string read_file(const std::string& path);

// Standard base64 (RFC 4648, with padding), for data URIs.
std::string base64(std::string_view bytes);
std::string base64(const std::vector<uint8_t>& bytes);

}  // namespace kiln::analysis
