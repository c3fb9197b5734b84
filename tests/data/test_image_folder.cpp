// tests/data/test_image_folder.cpp — image folders: png/jpg/bmp written here with stb_image_write,
// both layouts, the class mapping rules, load_image, and the bad inputs.
#include <catch2/catch.hpp>

#include <stb/stb_image_write.h>

#include <cstdio>
#include <filesystem>
#include <string>
#include <vector>

#include "core/error.h"
#include "data/image.h"
#include "data/image_folder.h"
#include "tests/support/temp_dir.h"
#include "tests/support/thread_counts.h"

using Catch::Matchers::Contains;
using kiln::data::ImageSpec;
using kiln::data::load_image;
using kiln::data::load_image_folder;
using kiln::test::TempDir;

namespace {

// A constant-colour image of `c` channels, h x w.
std::vector<uint8_t> solid(int h, int w, std::vector<uint8_t> colour) {
  std::vector<uint8_t> px;
  for (int i = 0; i < h * w; ++i) px.insert(px.end(), colour.begin(), colour.end());
  return px;
}

// Writes an image file; the format follows the extension.
void write_image(const std::filesystem::path& p, int h, int w, const std::vector<uint8_t>& colour) {
  std::filesystem::create_directories(p.parent_path());
  auto px = solid(h, w, colour);
  int c = int(colour.size());
  std::string ext = p.extension().string();
  int ok = 0;
  if (ext == ".png") ok = stbi_write_png(p.c_str(), w, h, c, px.data(), w * c);
  if (ext == ".bmp") ok = stbi_write_bmp(p.c_str(), w, h, c, px.data());
  if (ext == ".jpg" || ext == ".JPG") ok = stbi_write_jpg(p.c_str(), w, h, c, px.data(), 95);
  REQUIRE(ok != 0);
}

}  // namespace

TEST_CASE("image folder: FER-named class folders, mixed formats, 90/10 split", "[cpu][data]") {
  TempDir dir;
  // "happy" (png, RGB), "Sad" (bmp, gray, any case), "0" (jpg, RGB): 10 images each.
  for (int i = 0; i < 10; ++i) {
    // std::string(...) first: g++ 12 -O2 warns falsely on "literal" + std::string (-Wrestrict).
    const std::string n = std::to_string(i);
    write_image(dir.path() / "happy" / (std::string("h") += n + ".png"), 10, 12, {200, 100, 50});
    write_image(dir.path() / "Sad" / (std::string("s") += n + ".bmp"), 48, 48, {30});
    write_image(dir.path() / "0" / (std::string("a") += n + ".JPG"), 20, 20, {90, 90, 90});
  }
  dir.write("happy/notes.txt", "not an image: ignored");
  dir.write(".hidden/x.txt", "ignored");

  auto s = load_image_folder(dir.str(), ImageSpec{1, 48, 48}, 3);
  CHECK(s.train.class_names == kiln::data::fer_class_names());
  CHECK(s.train.size() == 27);
  CHECK(s.val.size() == 3);
  CHECK(s.test.empty());
  auto counts = s.val.class_counts();
  CHECK(counts[0] == 1);  // "0" -> angry
  CHECK(counts[3] == 1);  // "happy"
  CHECK(counts[4] == 1);  // "Sad"
  for (size_t i = 0; i < s.train.size(); ++i) {
    int want = s.train.labels[i] == 3 ? 124 : s.train.labels[i] == 4 ? 30 : 90;
    int tol = s.train.labels[i] == 0 ? 3 : 0;  // jpg is lossy
    const uint8_t* img = s.train.image(i);
    for (size_t k = 0; k < s.train.image_bytes(); ++k) {
      INFO("image " << i << " label " << s.train.labels[i] << " pixel " << k);
      REQUIRE(std::abs(int(img[k]) - want) <= tol);
    }
  }
  // Deterministic from the seed.
  auto again = load_image_folder(dir.str(), ImageSpec{1, 48, 48}, 3);
  CHECK(again.val.labels == s.val.labels);
  CHECK(again.train.pixels == s.train.pixels);
  // Converted to RGB at another size too.
  auto rgb = load_image_folder(dir.str(), ImageSpec{3, 16, 16}, 3);
  CHECK(rgb.train.spec() == ImageSpec{3, 16, 16});
  for (size_t i = 0; i < rgb.train.size(); ++i)
    if (rgb.train.labels[i] == 3) {
      const uint8_t* p = rgb.train.image(i);
      CHECK((int(p[0]) == 200 && int(p[1]) == 100 && int(p[2]) == 50));
    }
}

TEST_CASE("image folder: other names are sorted alphabetically, train/val/test layout",
          "[cpu][data]") {
  TempDir dir;
  for (const char* split : {"train", "validation", "test"})
    for (const char* cls : {"dog", "Zebra", "cat"})
      write_image(dir.path() / split / cls / "x.png", 8, 8, {uint8_t(cls[0])});
  write_image(dir.path() / "train" / "dog" / "y.png", 8, 8, {uint8_t('d')});
  auto s = load_image_folder(dir.str(), ImageSpec{1, 8, 8});
  // Byte order: "Zebra" < "cat" < "dog".
  CHECK(s.train.class_names == std::vector<std::string>{"Zebra", "cat", "dog"});
  CHECK(s.train.size() == 4);
  CHECK(s.val.size() == 3);
  CHECK(s.test.size() == 3);
  for (const auto* d : {&s.train, &s.val, &s.test})
    for (size_t i = 0; i < d->size(); ++i)
      CHECK(int(d->image(i)[0]) == int(d->class_names[size_t(d->labels[i])][0]));

  SECTION("a FER name among other names does not keep its FER index") {
    TempDir mixed;
    write_image(mixed.path() / "happy" / "a.png", 4, 4, {1});
    write_image(mixed.path() / "confused" / "a.png", 4, 4, {2});
    auto m = load_image_folder(mixed.str(), ImageSpec{1, 4, 4});
    CHECK(m.train.class_names == std::vector<std::string>{"confused", "happy"});
  }
}

TEST_CASE("load_image converts one file for predict", "[cpu][data]") {
  TempDir dir;
  write_image(dir.path() / "face.png", 96, 64, {10, 20, 30, 255});
  auto gray = load_image((dir / "face.png"), 1, 48, 48);
  REQUIRE(gray.size() == 48 * 48);
  CHECK(int(gray[100]) == 18);  // 0.299*10 + 0.587*20 + 0.114*30 = 18.2
  auto rgb = load_image((dir / "face.png"), ImageSpec{3, 128, 128});
  REQUIRE(rgb.size() == 3 * 128 * 128);
  CHECK((int(rgb[0]) == 10 && int(rgb[1]) == 20 && int(rgb[2]) == 30));
}

TEST_CASE("image folder: bad inputs give clear errors", "[cpu][data]") {
  TempDir dir;
  SECTION("missing directory") {
    CHECK_THROWS_WITH(load_image_folder((dir / "nope"), ImageSpec{}),
                      Contains("does not exist") && Contains("nope"));
  }
  SECTION("no class folders") {
    write_image(dir.path() / "loose.png", 4, 4, {1});
    CHECK_THROWS_WITH(load_image_folder(dir.str(), ImageSpec{}), Contains("no class sub-folders"));
  }
  SECTION("a folder with no images") {
    write_image(dir.path() / "happy" / "a.png", 4, 4, {1});
    dir.write("sad/readme.txt", "no images here");
    CHECK_THROWS_WITH(load_image_folder(dir.str(), ImageSpec{}),
                      Contains("sad") && Contains("contains no images"));
  }
  SECTION("a corrupt image names the file") {
    write_image(dir.path() / "happy" / "a.png", 4, 4, {1});
    std::string bad = dir.write("happy/broken.png", "\x89PNG\r\n\x1a\n this is not a png");
    CHECK_THROWS_WITH(load_image_folder(dir.str(), ImageSpec{}),
                      Contains(bad) && Contains("corrupt"));
    CHECK_THROWS_WITH(load_image(bad, ImageSpec{}), Contains(bad) && Contains("corrupt"));
  }
  SECTION("a missing image file") {
    CHECK_THROWS_WITH(load_image((dir / "none.png"), ImageSpec{}), Contains("does not exist"));
  }
}

TEST_CASE("image folder: the first corrupt file in sorted order is named, for any thread count",
          "[cpu][data]") {
  TempDir dir;
  for (int i = 0; i < 40; ++i) {
    char name[16];
    std::snprintf(name, sizeof name, "%02d.png", i);
    for (const char* c : {"happy", "sad"}) write_image(dir.path() / c / name, 4, 4, {uint8_t(i)});
  }
  const std::string first = dir.write("happy/17.png", "not a png");
  dir.write("happy/31.png", "not a png");
  dir.write("sad/02.png", "not a png");
  kiln::test::at_thread_counts({1, 3, 8}, [&](int threads) {
    INFO(threads << " threads");
    CHECK_THROWS_WITH(load_image_folder(dir.str(), ImageSpec{}),
                      Contains(first) && Contains("corrupt"));
  });
}
