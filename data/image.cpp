// data/image.cpp — image decoding (stb_image, compiled into Kiln by data/stb_image.cpp), the
// decoded-size cap, and conversion.
#include "data/image.h"

#include <stb/stb_image.h>

#include <algorithm>
#include <charconv>
#include <climits>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <cmath>
#include <memory>

#include "core/error.h"
#include "io/file.h"

namespace kiln::data {
namespace {

// Filter taps of a 1-D resize from `in` to `out` samples: for output i, taps[i] lists
// (source index, weight) with weights summing to 1.
struct Taps {
  std::vector<int> first;             // [out] first source index
  std::vector<std::vector<float>> w;  // [out][k] weights of sources first..first+k-1
};

Taps triangle_taps(int in, int out) {
  Taps t;
  t.first.resize(size_t(out));
  t.w.resize(size_t(out));
  const double scale = double(in) / out;
  const double support = std::max(1.0, scale);  // widen the triangle when shrinking
  for (int i = 0; i < out; ++i) {
    const double center = (i + 0.5) * scale;  // in source pixel units, centres at j + 0.5
    int lo = int(std::floor(center - support)), hi = int(std::ceil(center + support));
    lo = std::max(lo, 0);
    hi = std::min(hi, in - 1);
    std::vector<float> w;
    double sum = 0;
    for (int j = lo; j <= hi; ++j) {
      double x = std::abs((j + 0.5 - center) / support);
      double v = std::max(0.0, 1.0 - x);
      w.push_back(float(v));
      sum += v;
    }
    if (sum <= 0) {  // cannot happen for in >= 1, but keep the output defined
      w.assign(1, 1.0f);
      lo = std::clamp(int(center), 0, in - 1);
      sum = 1;
    }
    for (float& v : w) v = float(v / sum);
    // Drop leading zero weights so `first` is the first contributing source.
    while (w.size() > 1 && w.front() == 0.0f) {
      w.erase(w.begin());
      ++lo;
    }
    t.first[size_t(i)] = lo;
    t.w[size_t(i)] = std::move(w);
  }
  return t;
}

// Converts channels only: [h][w][src_c] -> [h][w][dst_c] floats.
std::vector<float> convert_channels(const uint8_t* src, int src_c, int h, int w, int dst_c) {
  std::vector<float> out(size_t(h) * w * dst_c);
  const size_t n = size_t(h) * w;
  for (size_t i = 0; i < n; ++i) {
    const uint8_t* p = src + i * src_c;
    float* q = out.data() + i * dst_c;
    const bool gray = src_c <= 2;  // gray or gray+alpha
    if (dst_c == 1) {
      q[0] = gray ? float(p[0]) : 0.299f * p[0] + 0.587f * p[1] + 0.114f * p[2];
    } else {
      for (int c = 0; c < 3; ++c) q[c] = float(gray ? p[0] : p[c]);
    }
  }
  return out;
}

}  // namespace

void convert_image(uint8_t* out, const ImageSpec& spec, const uint8_t* src, int src_c, int src_h,
                   int src_w) {
  KILN_CHECK(spec.channels == 1 || spec.channels == 3,
             "image conversion: target channels must be 1 or 3, got ", spec.channels);
  KILN_CHECK(spec.height > 0 && spec.width > 0, "image conversion: target size ", spec.height, "x",
             spec.width, " is empty");
  KILN_CHECK(src_c >= 1 && src_c <= 4, "image conversion: source has ", src_c,
             " channels (1 to 4 supported)");
  KILN_CHECK(src_h > 0 && src_w > 0, "image conversion: source image is empty");
  // Resize in as few channels as the result needs: a gray source going to RGB is resized once and
  // replicated afterwards (same result, a third of the work).
  const int C = (src_c <= 2) ? 1 : spec.channels;
  std::vector<float> img = convert_channels(src, src_c, src_h, src_w, C);
  std::vector<float> resized;
  if (src_h == spec.height && src_w == spec.width) {
    resized = std::move(img);
  } else {
    // Separable: rows first (width), then columns (height). Taps depend only on the sizes, so
    // each thread keeps the last pair it built (data sets are mostly one size).
    thread_local int cached_in_w = -1, cached_out_w = -1, cached_in_h = -1, cached_out_h = -1;
    thread_local Taps tx, ty;
    if (cached_in_w != src_w || cached_out_w != spec.width) {
      tx = triangle_taps(src_w, spec.width);
      cached_in_w = src_w, cached_out_w = spec.width;
    }
    if (cached_in_h != src_h || cached_out_h != spec.height) {
      ty = triangle_taps(src_h, spec.height);
      cached_in_h = src_h, cached_out_h = spec.height;
    }
    std::vector<float> mid(size_t(src_h) * spec.width * C, 0.0f);  // [src_h][W][C]
    for (int y = 0; y < src_h; ++y)
      for (int x = 0; x < spec.width; ++x) {
        const auto& w = tx.w[size_t(x)];
        const float* in = &img[(size_t(y) * src_w + tx.first[size_t(x)]) * C];
        float* m = &mid[(size_t(y) * spec.width + x) * C];
        for (size_t k = 0; k < w.size(); ++k)
          for (int c = 0; c < C; ++c) m[c] += w[k] * in[k * C + c];
      }
    resized.assign(size_t(spec.height) * spec.width * C, 0.0f);  // [H][W][C]
    const size_t row = size_t(spec.width) * C;
    for (int y = 0; y < spec.height; ++y) {
      const auto& w = ty.w[size_t(y)];
      float* r = &resized[size_t(y) * row];
      for (size_t k = 0; k < w.size(); ++k) {
        const float* m = &mid[(ty.first[size_t(y)] + k) * row];
        for (size_t i = 0; i < row; ++i) r[i] += w[k] * m[i];
      }
    }
  }
  const size_t n = size_t(spec.height) * spec.width;
  for (size_t i = 0; i < n; ++i)
    for (int c = 0; c < spec.channels; ++c) {
      float v = resized[i * C + (C == 1 ? 0 : c)];
      out[i * spec.channels + c] = uint8_t(std::lround(std::clamp(v, 0.0f, 255.0f)));
    }
}

namespace {

uint64_t limit_from_environment(const char* name, uint64_t fallback) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return fallback;
  uint64_t n = 0;
  const char* end = v + std::strlen(v);
  const auto [stop, ec] = std::from_chars(v, end, n);
  KILN_CHECK(ec == std::errc() && stop == end && n > 0, "the environment variable ", name, "='", v,
             "' is not a positive integer: set it to the limit you want, or unset it for the "
             "default ",
             fallback);
  return n;
}

std::string megabytes(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f MB", double(bytes) / 1e6);
  return buf;
}

}  // namespace

// Debian 12's stb_image (2.27) builds a JPEG Huffman table without checking that its 16 code
// counts sum to at most 256, and then writes past the table (an out-of-bounds write the fuzzer
// found; stb_image 2.28 checks it). The DHT segments are checked here before stb sees the file.
// Returns "" or what is wrong. Walks the markers, including those between the scans of a
// progressive JPEG; entropy-coded data ends at a 0xFF that is not a stuffed 0x00 or a restart.
std::string check_jpeg_huffman_tables(std::string_view b) {
  auto byte = [&](size_t i) { return i < b.size() ? uint8_t(b[i]) : uint8_t(0); };
  // The start-of-image marker, after any number of 0xFF fill bytes (stb accepts them too).
  size_t at = 1;
  while (byte(0) == 0xFF && at < b.size() && byte(at) == 0xFF) ++at;
  if (byte(0) != 0xFF || byte(at) != 0xD8) return {};  // not a JPEG
  ++at;
  while (at + 1 < b.size()) {
    if (byte(at) != 0xFF) {  // entropy-coded data after a scan
      ++at;
      continue;
    }
    const uint8_t m = byte(at + 1);
    if (m == 0xFF) {  // fill byte
      ++at;
      continue;
    }
    if (m == 0x00 || (m >= 0xD0 && m <= 0xD7) || m == 0x01) {  // stuffed byte, restart, TEM
      at += 2;
      continue;
    }
    if (m == 0xD9) break;  // end of image
    if (at + 3 >= b.size()) break;
    const size_t length = size_t(byte(at + 2)) << 8 | byte(at + 3);  // includes its two bytes
    if (m == 0xC4) {
      // As stb reads it: tables until the segment's length is used up, bytes past the end of
      // the file read as 0.
      size_t p = at + 4;
      for (int64_t left = int64_t(length) - 2; left > 0;) {
        size_t codes = 0;
        for (size_t i = 1; i <= 16; ++i) codes += byte(p + i);
        if (codes > 256)
          return "a JPEG Huffman table declares " + std::to_string(codes) +
                 " codes, more than the 256 a table can hold";
        p += 17 + codes;
        left -= int64_t(17 + codes);
      }
    }
    at += 2 + length;
  }
  return {};
}

// stb_image allocates a PNG chunk's declared length before it checks that the file holds it (an
// 800 MB allocation from a 100-byte file, found by the fuzzer), so the chunk layout is checked
// first: after the 8-byte signature, chunks of 4-byte length, 4-byte type, data and 4-byte CRC,
// each within the file. Returns "" or what is wrong.
std::string check_png_chunks(std::string_view b) {
  static constexpr char kSignature[] = "\x89PNG\r\n\x1a\n";
  if (b.substr(0, 8) != std::string_view(kSignature, 8)) return {};  // not a PNG
  size_t at = 8;
  bool seen_data = false;
  while (at + 8 <= b.size()) {
    uint64_t length = 0;
    for (size_t i = 0; i < 4; ++i) length = length << 8 | uint8_t(b[at + i]);
    const std::string_view type = b.substr(at + 4, 4);
    if (length + 12 > b.size() - at)
      return "PNG chunk '" + std::string(type) + "' at byte " + std::to_string(at) + " declares " +
             std::to_string(length) + " bytes, more than the " + std::to_string(b.size() - at) +
             " left in the file";
    if (type == "IEND") break;
    // stb copies an empty first IDAT to its still-null data buffer (memcpy(NULL, p, 0): undefined
    // behaviour, found by the fuzzer); encoders do not write one, so it is refused.
    if (type == "IDAT" && length == 0 && !seen_data)
      return "the PNG's first image data chunk (IDAT) is empty";
    if (type == "IDAT") seen_data = true;
    at += 12 + size_t(length);
  }
  return {};
}

ImageLimits ImageLimits::from_environment() {
  ImageLimits l;
  l.max_pixels = limit_from_environment("KILN_MAX_IMAGE_PIXELS", l.max_pixels);
  l.max_bytes = limit_from_environment("KILN_MAX_IMAGE_BYTES", l.max_bytes);
  return l;
}

std::vector<uint8_t> decode_image(std::string_view bytes, const std::string& name,
                                  const ImageSpec& spec, const ImageLimits& limits) {
  const std::string not_image = "): the file is corrupt or not a png/jpg/bmp; replace or delete it";
  KILN_CHECK(bytes.size() <= uint64_t(INT_MAX), "cannot decode image '", name, "' (", bytes.size(),
             " bytes, more than stb_image reads", not_image);
  for (const std::string& bad : {check_jpeg_huffman_tables(bytes), check_png_chunks(bytes)})
    if (!bad.empty()) KILN_FAIL("cannot decode image '", name, "' (", bad, not_image);
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  const int size = int(bytes.size());
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(data, size, &w, &h, &n)) {
    const char* why = stbi_failure_reason();
    KILN_FAIL("cannot decode image '", name, "' (stb_image: ", why ? why : "unknown error",
              not_image);
  }
  // The size the header declares, checked before anything is decoded: a small file can declare
  // an image of gigabytes.
  const uint64_t pixels = uint64_t(w) * uint64_t(h), decoded = pixels * uint64_t(n);
  KILN_CHECK(pixels <= limits.max_pixels, "image '", name, "' is ", w, "x", h, " (", pixels,
             " pixels), more than the limit of ", limits.max_pixels,
             " pixels: shrink the image, or raise the limit with the environment variable "
             "KILN_MAX_IMAGE_PIXELS=N");
  KILN_CHECK(decoded <= limits.max_bytes, "image '", name, "' is ", w, "x", h, "x", n, " (",
             megabytes(decoded), " decoded), more than the limit of ", megabytes(limits.max_bytes),
             ": shrink the image, or raise the limit with the environment variable "
             "KILN_MAX_IMAGE_BYTES=N");
  int w2 = 0, h2 = 0, n2 = 0;
  std::unique_ptr<stbi_uc, void (*)(void*)> pixels_out(
      stbi_load_from_memory(data, size, &w2, &h2, &n2, 0), stbi_image_free);
  if (!pixels_out) {
    const char* why = stbi_failure_reason();
    KILN_FAIL("cannot decode image '", name, "' (stb_image: ", why ? why : "unknown error",
              not_image);
  }
  KILN_CHECK(w2 == w && h2 == h && n2 == n, "cannot decode image '", name,
             "' (its header and its data disagree on the size", not_image);
  std::vector<uint8_t> out(spec.pixels());
  convert_image(out.data(), spec, pixels_out.get(), n, h, w);
  return out;
}

std::vector<uint8_t> load_image(const std::string& path, const ImageSpec& spec) {
  const std::string bytes = read_regular_file(path, "image file");
  return decode_image(bytes, path, spec);
}

}  // namespace kiln::data
