// tests/data/test_image_limits.cpp — image decoding against hostile files: a header that declares
// a huge image is refused before decoding, with its dimensions, the cap and how to raise it; the
// caps come from the environment; only regular files are read.
#include <catch2/catch.hpp>

#include <stb/stb_image_write.h>
#include <sys/stat.h>

#include <cstdlib>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/image.h"
#include "tests/support/temp_dir.h"

using Catch::Matchers::Contains;
using kiln::data::decode_image;
using kiln::data::ImageLimits;
using kiln::data::ImageSpec;

namespace {

// A side x side gray PNG whose pixel i is i * 9 % 256.
std::string png(int side) {
  std::vector<uint8_t> px(size_t(side) * side);
  for (size_t i = 0; i < px.size(); ++i) px[i] = uint8_t(i * 9 % 256);
  std::string out;
  auto sink = [](void* ctx, void* data, int n) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(n));
  };
  REQUIRE(stbi_write_png_to_func(sink, &out, side, side, 1, px.data(), side) != 0);
  return out;
}

// The same PNG with the width and height in its IHDR chunk replaced (stb_image does not check
// the chunk's CRC, so the header is believed).
std::string declare(std::string p, uint32_t w, uint32_t h) {
  for (int i = 0; i < 4; ++i) {
    p[size_t(16 + i)] = char((w >> (24 - 8 * i)) & 0xff);
    p[size_t(20 + i)] = char((h >> (24 - 8 * i)) & 0xff);
  }
  return p;
}

struct ScopedEnv {
  std::string name;
  ScopedEnv(const char* n, const char* v) : name(n) { ::setenv(n, v, 1); }
  ~ScopedEnv() { ::unsetenv(name.c_str()); }
};

}  // namespace

TEST_CASE("images: a small file declaring a huge image is refused before decoding", "[cpu][data]") {
  // Regression: a 389 KB PNG declaring 20000x20000 took 1.9 GB.
  const std::string small = png(4);
  const std::vector<uint8_t> ok = decode_image(small, "ok.png", ImageSpec{1, 4, 4});
  for (size_t i = 0; i < 16; ++i) REQUIRE(int(ok[i]) == int(i * 9 % 256));
  CHECK_THROWS_WITH(decode_image(declare(small, 20000, 20000), "huge.png", ImageSpec{}),
                    Contains("huge.png") && Contains("20000x20000") &&
                        Contains("400000000 pixels") && Contains("limit of 50000000") &&
                        Contains("KILN_MAX_IMAGE_PIXELS"));
  ImageLimits bytes_only;
  bytes_only.max_bytes = 15;
  CHECK_THROWS_WITH(decode_image(small, "b.png", ImageSpec{}, bytes_only),
                    Contains("b.png") && Contains("4x4x1") && Contains("KILN_MAX_IMAGE_BYTES"));
  ImageLimits pixels_only;
  pixels_only.max_pixels = 16;
  CHECK_NOTHROW(decode_image(small, "p.png", ImageSpec{1, 4, 4}, pixels_only));
  CHECK_THROWS_WITH(decode_image("certainly not an image", "x.gif", ImageSpec{}),
                    Contains("cannot decode image 'x.gif'"));
}

TEST_CASE("images: a JPEG Huffman table with more than 256 codes is refused", "[cpu][data]") {
  // Regression (found by tests/fuzz): Debian's stb_image 2.27 wrote past its Huffman table.
  std::string jpeg("\xFF\xD8\xFF\xC4\x00\x13\x00", 7);  // SOI, DHT of 19 bytes, table 0
  jpeg += std::string(16, '\x11');                      // 16 counts of 17: 272 codes
  jpeg += std::string(272, '\x01') + "\xFF\xD9";
  CHECK_THROWS_WITH(decode_image(jpeg, "t.jpg", ImageSpec{}),
                    Contains("t.jpg") && Contains("declares 272 codes"));
  // The file may end inside the table: stb reads the missing counts as 0, and so does the check.
  const std::string cut = std::string("\xFF\xD8\xFF\xC4\x01\x00\x00", 7) + std::string(8, '\x40');
  CHECK_THROWS_WITH(decode_image(cut, "cut.jpg", ImageSpec{}), Contains("declares 512 codes"));
  // stb also reads a start marker after 0xFF fill bytes.
  CHECK_THROWS_WITH(decode_image("\xFF\xFF" + cut.substr(1), "fill.jpg", ImageSpec{}),
                    Contains("declares 512 codes"));
  // A valid JPEG still decodes (tests/data/test_image_folder.cpp decodes many more).
  std::string ok;
  auto sink = [](void* ctx, void* data, int n) {
    static_cast<std::string*>(ctx)->append(static_cast<const char*>(data), size_t(n));
  };
  std::vector<uint8_t> px(64, 100);
  REQUIRE(stbi_write_jpg_to_func(sink, &ok, 8, 8, 1, px.data(), 95) != 0);
  const std::vector<uint8_t> img = decode_image(ok, "ok.jpg", ImageSpec{1, 8, 8});
  for (uint8_t v : img) REQUIRE(std::abs(int(v) - 100) <= 2);
}

TEST_CASE("images: a PNG chunk longer than the file is refused before stb allocates it",
          "[cpu][data]") {
  // Regression (found by tests/fuzz): stb_image allocated an IDAT chunk's declared length
  // (805 MB from a 90-byte file) before checking the file held it.
  const std::string p = png(4);
  // The first chunk after the signature is IHDR (13 bytes); the next one is the image data.
  const size_t idat = 8 + 12 + 13;
  REQUIRE(p.substr(idat + 4, 4) == "IDAT");
  std::string bad = p;
  bad[idat] = '\x30';  // its length becomes 0x30000000 + the real one
  CHECK_THROWS_WITH(decode_image(bad, "c.png", ImageSpec{}), Contains("c.png") &&
                                                                 Contains("PNG chunk 'IDAT'") &&
                                                                 Contains("left in the file"));
  CHECK_NOTHROW(decode_image(p, "ok.png", ImageSpec{}));
  // An empty IDAT before the real one (stb would memcpy to its null buffer).
  const std::string empty =
      p.substr(0, idat) + std::string(4, '\0') + "IDAT" + std::string(4, '\0') + p.substr(idat);
  CHECK_THROWS_WITH(decode_image(empty, "e.png", ImageSpec{}), Contains("(IDAT) is empty"));
}

TEST_CASE("images: the caps are raised or lowered through the environment", "[cpu][data]") {
  {
    ScopedEnv e("KILN_MAX_IMAGE_PIXELS", "15");
    CHECK(ImageLimits::from_environment().max_pixels == 15);
    CHECK_THROWS_WITH(decode_image(png(4), "e.png", ImageSpec{}),
                      Contains("4x4") && Contains("limit of 15 pixels"));
  }
  {
    ScopedEnv e("KILN_MAX_IMAGE_BYTES", "1000000000");
    CHECK(ImageLimits::from_environment().max_bytes == 1000000000);
  }
  for (const char* bad : {"abc", "-5", "0", "12x"}) {
    ScopedEnv e("KILN_MAX_IMAGE_PIXELS", bad);
    CHECK_THROWS_WITH(ImageLimits::from_environment(),
                      Contains("KILN_MAX_IMAGE_PIXELS") && Contains("not a positive integer"));
  }
  CHECK(ImageLimits::from_environment().max_pixels == ImageLimits{}.max_pixels);
}

TEST_CASE("images: only regular files are read", "[cpu][data]") {
  kiln::test::TempDir dir;
  const std::string fifo = (dir / "fifo.png");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(kiln::data::load_image(fifo, ImageSpec{}), Contains("FIFO"));
  CHECK_THROWS_WITH(kiln::data::load_image("/dev/zero", ImageSpec{}), Contains("character device"));
}
