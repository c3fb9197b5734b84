// analysis/image.cpp — RGB images, colour maps, PNG encoding (stb_image_write) and atomic files.
#include "analysis/image.h"

#include <stb/stb_image_write.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"
#include "io/file.h"

namespace kiln::analysis {

Image::Image(int width, int height, Rgb fill) : width_(width), height_(height) {
  KILN_CHECK(width > 0 && height > 0, "Image: size must be positive, got ", width, "x", height);
  pixels_.resize(size_t(width) * size_t(height) * 3);
  for (size_t i = 0; i < pixels_.size(); i += 3) {
    pixels_[i] = fill.r;
    pixels_[i + 1] = fill.g;
    pixels_[i + 2] = fill.b;
  }
}

Rgb Image::at(int x, int y) const {
  const uint8_t* p = &pixels_[(size_t(y) * size_t(width_) + size_t(x)) * 3];
  return {p[0], p[1], p[2]};
}

void Image::set(int x, int y, Rgb c) {
  uint8_t* p = &pixels_[(size_t(y) * size_t(width_) + size_t(x)) * 3];
  p[0] = c.r;
  p[1] = c.g;
  p[2] = c.b;
}

void Image::paste(const Image& src, int x, int y) {
  for (int sy = 0; sy < src.height(); ++sy) {
    const int dy = y + sy;
    if (dy < 0 || dy >= height_) continue;
    for (int sx = 0; sx < src.width(); ++sx) {
      const int dx = x + sx;
      if (dx >= 0 && dx < width_) set(dx, dy, src.at(sx, sy));
    }
  }
}

Image Image::upscaled(int factor) const {
  KILN_CHECK(factor >= 1, "Image::upscaled: factor must be >= 1, got ", factor);
  Image out(width_ * factor, height_ * factor);
  for (int y = 0; y < out.height(); ++y)
    for (int x = 0; x < out.width(); ++x) out.set(x, y, at(x / factor, y / factor));
  return out;
}

namespace {

// Nine evenly spaced samples of each map; between them the colour is interpolated linearly. The
// samples are matplotlib's (inferno, Blues), rounded to bytes.
using Table = std::array<Rgb, 9>;
constexpr Table kInferno = {{{0, 0, 4},
                             {31, 12, 72},
                             {85, 15, 109},
                             {136, 34, 106},
                             {186, 54, 85},
                             {227, 89, 51},
                             {249, 140, 10},
                             {249, 201, 50},
                             {252, 255, 164}}};
constexpr Table kBlues = {{{247, 251, 255},
                           {222, 235, 247},
                           {198, 219, 239},
                           {158, 202, 225},
                           {107, 174, 214},
                           {66, 146, 198},
                           {33, 113, 181},
                           {8, 81, 156},
                           {8, 48, 107}}};

Rgb lerp_table(const Table& t, double v) {
  const double pos = v * double(t.size() - 1);
  const int i = std::min(int(pos), int(t.size()) - 2);
  const double f = pos - i;
  auto mix = [f](uint8_t a, uint8_t b) { return uint8_t(std::lround(a + (b - a) * f)); };
  return {mix(t[i].r, t[i + 1].r), mix(t[i].g, t[i + 1].g), mix(t[i].b, t[i + 1].b)};
}

double unit(double v, Range r) {
  const double t = (v - r.lo) / (r.hi - r.lo);
  return std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
}

uint8_t byte_of(double t) {
  return uint8_t(std::lround(std::clamp(t, 0.0, 1.0) * 255.0));
}

}  // namespace

Rgb color_at(ColorMap map, double t) {
  t = std::isfinite(t) ? std::clamp(t, 0.0, 1.0) : 0.0;
  switch (map) {
    case ColorMap::gray: {
      const uint8_t v = byte_of(t);
      return {v, v, v};
    }
    case ColorMap::inferno:
      return lerp_table(kInferno, t);
    case ColorMap::blues:
      return lerp_table(kBlues, t);
  }
  KILN_FAIL("color_at: unknown colour map");
}

Range min_max(const float* values, int64_t n) {
  KILN_CHECK(n > 0, "min_max: empty array");
  double lo = values[0], hi = values[0];
  for (int64_t i = 1; i < n; ++i) {
    lo = std::min(lo, double(values[i]));
    hi = std::max(hi, double(values[i]));
  }
  if (!(hi > lo)) hi = lo + 1;
  return {lo, hi};
}

Range quantile_range(const float* values, int64_t n, double lo_q, double hi_q) {
  KILN_CHECK(n > 0, "quantile_range: empty array");
  KILN_CHECK(0 <= lo_q && lo_q < hi_q && hi_q <= 1, "quantile_range: need 0 <= lo_q < hi_q <= 1");
  std::vector<float> v(values, values + n);
  std::sort(v.begin(), v.end());
  auto q = [&](double p) { return double(v[size_t(std::lround(p * double(n - 1)))]); };
  Range r{q(lo_q), q(hi_q)};
  if (!(r.hi > r.lo)) return min_max(values, n);
  return r;
}

Image colorize(const float* values, int h, int w, Range range, ColorMap map) {
  Image out(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) out.set(x, y, color_at(map, unit(values[y * w + x], range)));
  return out;
}

Image picture(const float* values, int h, int w, int c, Range range, ColorMap map) {
  KILN_CHECK(c == 1 || c == 3, "picture: channels must be 1 or 3, got ", c);
  if (c == 1) return colorize(values, h, w, range, map);
  Image out(w, h);
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const float* p = values + (size_t(y) * w + x) * 3;
      out.set(x, y,
              {byte_of(unit(p[0], range)), byte_of(unit(p[1], range)), byte_of(unit(p[2], range))});
    }
  return out;
}

Image overlay(const Image& base, const Image& heat, const float* heat_values, Range heat_range,
              double alpha) {
  KILN_CHECK(base.width() == heat.width() && base.height() == heat.height(),
             "overlay: sizes differ: ", base.width(), "x", base.height(), " vs ", heat.width(), "x",
             heat.height());
  Image out(base.width(), base.height());
  for (int y = 0; y < base.height(); ++y)
    for (int x = 0; x < base.width(); ++x) {
      const double a = alpha * unit(heat_values[y * base.width() + x], heat_range);
      const Rgb b = base.at(x, y), h = heat.at(x, y);
      auto mix = [a](uint8_t p, uint8_t q) { return uint8_t(std::lround((1 - a) * p + a * q)); };
      out.set(x, y, {mix(b.r, h.r), mix(b.g, h.g), mix(b.b, h.b)});
    }
  return out;
}

std::vector<uint8_t> encode_png(const Image& image) {
  KILN_CHECK(!image.empty(), "encode_png: empty image");
  std::vector<uint8_t> bytes;
  auto sink = [](void* context, void* data, int size) {
    auto* out = static_cast<std::vector<uint8_t>*>(context);
    const auto* p = static_cast<const uint8_t*>(data);
    out->insert(out->end(), p, p + size);
  };
  const int ok = stbi_write_png_to_func(sink, &bytes, image.width(), image.height(), 3,
                                        image.data(), image.width() * 3);
  KILN_CHECK(ok != 0, "encode_png: stb_image_write failed on a ", image.width(), "x",
             image.height(), " image");
  return bytes;
}

void write_png(const std::string& path, const Image& image) {
  const std::vector<uint8_t> bytes = encode_png(image);
  write_file(path, std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

void write_file(const std::string& path, std::string_view bytes) {
  const std::filesystem::path target(path);
  if (target.has_parent_path()) std::filesystem::create_directories(target.parent_path());
  write_file_atomic(path, bytes);
}

std::string read_file(const std::string& path) {
  return read_regular_file(path, "file");  // a FIFO or device is refused, not read for ever
}

std::string base64(std::string_view bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = uint32_t(uint8_t(bytes[i])) << 16 | uint32_t(uint8_t(bytes[i + 1])) << 8 |
                       uint32_t(uint8_t(bytes[i + 2]));
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += kAlphabet[(v >> 6) & 63];
    out += kAlphabet[v & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

std::string base64(const std::vector<uint8_t>& bytes) {
  return base64(std::string_view(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
}

}  // namespace kiln::analysis
