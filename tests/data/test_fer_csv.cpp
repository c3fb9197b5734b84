// tests/data/test_fer_csv.cpp — the FER2013 CSV reader: good files and every kind of bad row, and
// the pixel conversion it shares with the image-folder reader.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include <sys/stat.h>

#include "core/error.h"
#include "data/fer_csv.h"
#include "data/image.h"
#include "tests/support/temp_dir.h"
#include "tests/support/thread_counts.h"

using Catch::Matchers::Contains;
using kiln::data::Dataset;
using kiln::data::ImageSpec;
using kiln::data::load_fer_csv;
using kiln::test::TempDir;

namespace {

// Pixels of a recognisable side x side image: value (row * 7 + col * 3 + seed) % 256.
std::vector<int> pattern(int side, int seed) {
  std::vector<int> v;
  for (int y = 0; y < side; ++y)
    for (int x = 0; x < side; ++x) v.push_back((y * 7 + x * 3 + seed) % 256);
  return v;
}

std::string join(const std::vector<int>& v) {
  std::string s;
  for (size_t i = 0; i < v.size(); ++i) {
    if (i) s += ' ';  // not `(i ? " " : "") + ...`: g++ 12 -O2 warns falsely there (-Wrestrict)
    s += std::to_string(v[i]);
  }
  return s;
}

std::string row(int label, const std::vector<int>& px, const std::string& usage) {
  return std::to_string(label) + "," + join(px) + "," + usage + "\n";
}

const std::string kHeader = "emotion,pixels,Usage\n";

// Loading `text` must throw a kiln::Error whose message contains every one of `parts`.
void expect_error(const std::string& text, std::vector<std::string> parts) {
  TempDir dir;
  std::string path = dir.write("fer.csv", text);
  try {
    load_fer_csv(path, ImageSpec{});
    FAIL("no error for a bad CSV; expected: " << parts[0]);
  } catch (const kiln::Error& e) {
    std::string msg = e.what();
    INFO("message: " << msg);
    for (const std::string& p : parts) CHECK_THAT(msg, Contains(p));
  }
}

}  // namespace

TEST_CASE("FER CSV: Usage picks the split, pixels and labels are kept exactly", "[cpu][data]") {
  TempDir dir;
  std::string text = kHeader;
  const char* usages[] = {"Training", "Training", "PublicTest", "PrivateTest", "Training"};
  for (int i = 0; i < 5; ++i) text += row(i, pattern(48, i), usages[i]);
  std::string path = dir.write("fer.csv", text);
  auto s = load_fer_csv(path, ImageSpec{1, 48, 48});
  REQUIRE(s.train.size() == 3);
  REQUIRE(s.val.size() == 1);
  REQUIRE(s.test.size() == 1);
  CHECK(s.train.labels == std::vector<int32_t>{0, 1, 4});
  CHECK(s.val.labels == std::vector<int32_t>{2});
  CHECK(s.test.labels == std::vector<int32_t>{3});
  CHECK(s.train.class_names == kiln::data::fer_class_names());
  CHECK(s.train.spec() == ImageSpec{1, 48, 48});
  auto want = pattern(48, 4);
  for (size_t k = 0; k < want.size(); ++k) {
    INFO("pixel " << k);
    REQUIRE(int(s.train.image(2)[k]) == want[k]);
  }
}

TEST_CASE("FER CSV: header variants, CRLF, quotes, blank lines, no Usage column", "[cpu][data]") {
  TempDir dir;
  // Columns in another order, quoted pixels, Windows line ends, a trailing blank line.
  std::string text = "Usage,emotion,pixels\r\n";
  for (int i = 0; i < 20; ++i)
    text += "Training," + std::to_string(i % 2 ? 3 : 5) + ",\"" + join(pattern(4, i)) + "\"\r\n";
  text += "PublicTest,6," + join(pattern(4, 99)) + "\r\n\r\n";
  auto s = load_fer_csv(dir.write("a.csv", text), ImageSpec{1, 4, 4});
  CHECK(s.train.size() == 20);
  CHECK(s.val.size() == 1);
  CHECK(s.val.labels[0] == 6);

  // Without Usage: a stratified, seeded 90/10 split of the rows.
  std::string plain = "emotion,pixels\n";
  for (int i = 0; i < 20; ++i)
    plain += std::to_string(i % 2 ? 3 : 5) + "," + join(pattern(4, i)) + "\n";
  std::string path = dir.write("b.csv", plain);
  auto a = load_fer_csv(path, ImageSpec{1, 4, 4}, 7);
  auto b = load_fer_csv(path, ImageSpec{1, 4, 4}, 7);
  CHECK(a.train.size() == 18);
  REQUIRE(a.val.size() == 2);
  CHECK(a.val.class_counts()[3] == 1);
  CHECK(a.val.class_counts()[5] == 1);
  CHECK(a.val.pixels == b.val.pixels);  // same seed, same split
}

TEST_CASE("FER CSV: any square size is resized, gray is replicated to RGB", "[cpu][data]") {
  TempDir dir;
  std::string text =
      kHeader + row(3, std::vector<int>(16, 77), "Training") + row(4, pattern(4, 0), "PublicTest");
  std::string path = dir.write("fer.csv", text);
  auto big = load_fer_csv(path, ImageSpec{1, 48, 48});
  for (size_t k = 0; k < big.train.image_bytes(); ++k) REQUIRE(big.train.image(0)[k] == 77);
  auto rgb = load_fer_csv(path, ImageSpec{3, 4, 4});
  auto want = pattern(4, 0);
  for (size_t p = 0; p < 16; ++p)
    for (int c = 0; c < 3; ++c) REQUIRE(int(rgb.val.image(0)[p * 3 + c]) == want[p]);
}

TEST_CASE("FER CSV: every bad input names the file, the line and the problem", "[cpu][data]") {
  const std::string good = row(0, pattern(48, 0), "Training");
  SECTION("missing file") {
    CHECK_THROWS_WITH(load_fer_csv("/nonexistent/kiln/fer.csv", ImageSpec{}),
                      Contains("does not exist") && Contains("/nonexistent/kiln/fer.csv"));
  }
  SECTION("empty file") {
    expect_error("", {"is empty", "header"});
  }
  SECTION("header only") {
    expect_error(kHeader, {"no rows"});
  }
  SECTION("no header") {
    expect_error(good + good, {"fer.csv:1:", "emotion,pixels,Usage"});
  }
  SECTION("truncated row: a field missing") {
    expect_error(kHeader + good + "0," + join(pattern(48, 1)) + "\n", {"fer.csv:3:", "truncated"});
  }
  SECTION("truncated row: pixels cut short") {
    auto px = pattern(48, 1);
    px.resize(1000);
    expect_error(kHeader + good + good + row(2, px, "Training"),
                 {"fer.csv:4:", "1000 pixels", "2304", "truncated"});
  }
  SECTION("non-integer pixel") {
    std::string bad = "0," + join(pattern(48, 1)).replace(0, 1, "1.5") + ",Training\n";
    expect_error(kHeader + good + bad, {"fer.csv:3:", "pixel 1", "'1.5'", "not an integer"});
  }
  SECTION("pixel out of range") {
    auto px = pattern(48, 1);
    px[10] = 256;
    expect_error(kHeader + good + row(1, px, "Training"),
                 {"fer.csv:3:", "pixel 11", "256", "0..255"});
  }
  SECTION("label outside 0..6") {
    expect_error(kHeader + good + row(7, pattern(48, 1), "Training"),
                 {"fer.csv:3:", "emotion 7", "outside 0..6"});
  }
  SECTION("label not a number") {
    expect_error(kHeader + "happy," + join(pattern(48, 1)) + ",Training\n",
                 {"fer.csv:2:", "'happy'", "0..6"});
  }
  SECTION("pixel count not a square") {
    expect_error(kHeader + row(0, std::vector<int>(2303, 1), "Training"),
                 {"fer.csv:2:", "2303 pixels", "not a perfect square"});
  }
  SECTION("unknown Usage") {
    expect_error(kHeader + good + row(1, pattern(48, 1), "Holdout"),
                 {"fer.csv:3:", "'Holdout'", "Training, PublicTest or PrivateTest"});
  }
  SECTION("no Training rows") {
    expect_error(kHeader + row(1, pattern(48, 1), "PublicTest"), {"no Training rows"});
  }
  SECTION("the first bad line is reported even when many are bad") {
    std::string text = kHeader;
    for (int i = 0; i < 600; ++i) text += good;
    text += row(9, pattern(48, 1), "Training");  // line 602
    for (int i = 0; i < 600; ++i) text += row(8, pattern(48, 1), "Training");
    expect_error(text, {"fer.csv:602:", "emotion 9"});
  }
}

TEST_CASE("convert_image: channels and bilinear resize", "[cpu][data]") {
  using kiln::data::convert_image;
  SECTION("RGB to gray uses BT.601 luma; gray to RGB replicates; alpha is dropped") {
    const uint8_t rgba[4] = {200, 100, 50, 9};
    uint8_t gray = 0;
    convert_image(&gray, ImageSpec{1, 1, 1}, rgba, 4, 1, 1);
    CHECK(int(gray) == 124);  // 0.299*200 + 0.587*100 + 0.114*50 = 124.2
    uint8_t rgb[3] = {0, 0, 0};
    convert_image(rgb, ImageSpec{3, 1, 1}, rgba, 4, 1, 1);
    CHECK((int(rgb[0]) == 200 && int(rgb[1]) == 100 && int(rgb[2]) == 50));
    const uint8_t g = 42;
    convert_image(rgb, ImageSpec{3, 1, 1}, &g, 1, 1, 1);
    CHECK((int(rgb[0]) == 42 && int(rgb[1]) == 42 && int(rgb[2]) == 42));
  }
  SECTION("upscaling matches PyTorch's bilinear, align_corners=False") {
    // F.interpolate(torch.tensor([[[[0., 255.]]]]), size=(1, 4), mode="bilinear",
    //               align_corners=False) -> [0, 63.75, 191.25, 255]
    const uint8_t src[2] = {0, 255};
    uint8_t out[4] = {1, 1, 1, 1};
    convert_image(out, ImageSpec{1, 1, 4}, src, 1, 1, 2);
    CHECK(std::vector<int>(out, out + 4) == std::vector<int>{0, 64, 191, 255});
  }
  SECTION("shrinking averages: a 1-pixel checkerboard becomes flat gray") {
    std::vector<uint8_t> src(16 * 16);
    for (int y = 0; y < 16; ++y)
      for (int x = 0; x < 16; ++x) src[size_t(y * 16 + x)] = (x + y) % 2 ? 255 : 0;
    std::vector<uint8_t> out(16, 0);
    convert_image(out.data(), ImageSpec{1, 4, 4}, src.data(), 1, 16, 16);
    for (uint8_t v : out) CHECK(std::abs(int(v) - 128) <= 2);
  }
  SECTION("bad arguments") {
    const uint8_t px = 0;
    uint8_t out = 0;
    CHECK_THROWS_AS(convert_image(&out, ImageSpec{2, 1, 1}, &px, 1, 1, 1), kiln::Error);
    CHECK_THROWS_AS(convert_image(&out, ImageSpec{1, 1, 1}, &px, 5, 1, 1), kiln::Error);
  }
}

TEST_CASE("load_dataset picks the source by what the path is", "[cpu][data]") {
  TempDir dir;
  std::string csv = dir.write("fer.csv", kHeader + row(3, pattern(48, 0), "Training") +
                                             row(4, pattern(48, 1), "PublicTest"));
  auto s = kiln::data::load_dataset(csv, ImageSpec{1, 48, 48}, 0);
  CHECK(s.train.size() == 1);
  CHECK(s.val.size() == 1);
  CHECK_THROWS_WITH(kiln::data::load_dataset((dir / "missing"), ImageSpec{}, 0),
                    Contains("does not exist") && Contains("synthetic"));
}

TEST_CASE("FER CSV: quoted fields follow RFC 4180", "[cpu][data]") {
  // Regression: quoted fields were kept as views into a vector that reallocated, so a quoted
  // header was rejected and quoted rows read freed memory.
  TempDir dir;
  const std::vector<int> a = pattern(4, 1), b = pattern(4, 2);
  SECTION("quoted header and quoted rows, LF and CRLF") {
    for (const std::string eol : {"\n", "\r\n"}) {
      const std::string text = "\"emotion\",\"pixels\",\"Usage\"" + eol + "\"3\",\"" + join(a) +
                               "\",\"Training\"" + eol + "5,\"" + join(b) + "\",PublicTest" + eol;
      const auto s = load_fer_csv(dir.write("q.csv", text), ImageSpec{1, 4, 4});
      REQUIRE(s.train.size() == 1);
      REQUIRE(s.val.size() == 1);
      CHECK(s.train.labels[0] == 3);
      CHECK(s.val.labels[0] == 5);
      for (size_t k = 0; k < 16; ++k) {
        REQUIRE(int(s.train.image(0)[k]) == a[k]);
        REQUIRE(int(s.val.image(0)[k]) == b[k]);
      }
    }
  }
  SECTION("commas, escaped quotes and line breaks inside quotes") {
    // An extra column whose quoted values hold commas, "" and a line break; line numbers after
    // it still count the break.
    const std::string text = "emotion,\"note, with comma\",pixels,Usage\n" +
                             std::string("2,\"a,b\"\"c\",") + join(a) + ",Training\n" +
                             "4,\"two\nlines\"," + join(b) + ",Training\n" + "9," + "x," + join(b) +
                             ",Training\n";
    try {
      load_fer_csv(dir.write("c.csv", text), ImageSpec{1, 4, 4});
      FAIL("no error for emotion 9");
    } catch (const kiln::Error& e) {
      CHECK_THAT(e.what(), Contains("c.csv:5:") && Contains("emotion 9"));
    }
    const std::string good = text.substr(0, text.rfind("9,x"));
    const auto s = load_fer_csv(dir.write("g.csv", good), ImageSpec{1, 4, 4});
    REQUIRE(s.train.size() + s.val.size() == 2);
  }
  SECTION("unterminated quote names its line") {
    expect_error(
        kHeader + row(0, a, "Training") + "1,\"" + join(b) + ",Training\n" + row(2, a, "Training"),
        {"fer.csv:3:", "unterminated quote"});
    expect_error("\"emotion,pixels,Usage\n" + row(0, a, "Training"),
                 {"fer.csv:1:", "header", "unterminated quote"});
  }
  SECTION("text after a closing quote") {
    expect_error(kHeader + "\"1\"x," + join(a) + ",Training\n", {"fer.csv:2:", "closing quote"});
  }
}

TEST_CASE("FER CSV: emotions that overflow an int are out of range, not wrapped", "[cpu][data]") {
  // Regression: the emotion parser multiplied by 10 without bound (signed overflow, UBSan).
  const std::vector<int> a = pattern(4, 1);
  expect_error(kHeader + "99999999999999999999999," + join(a) + ",Training\n",
               {"fer.csv:2:", "outside 0..6"});
  expect_error(kHeader + "-1," + join(a) + ",Training\n", {"fer.csv:2:", "outside 0..6"});
  expect_error(kHeader + "1x," + join(a) + ",Training\n", {"fer.csv:2:", "not an integer"});
}

TEST_CASE("FER CSV: only regular files are read", "[cpu][data]") {
  TempDir dir;
  const std::string fifo = (dir / "fifo.csv");
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  CHECK_THROWS_WITH(load_fer_csv(fifo, ImageSpec{}),
                    Contains("FIFO") && Contains("not a regular file") && Contains("fifo.csv"));
  CHECK_THROWS_WITH(load_fer_csv("/dev/zero", ImageSpec{}),
                    Contains("character device") && Contains("/dev/zero"));
  CHECK_THROWS_WITH(load_fer_csv(dir.str(), ImageSpec{}), Contains("directory"));
}

TEST_CASE("FER CSV: the same data and the same first error for any thread count", "[cpu][data]") {
  std::string text = kHeader;
  const char* usages[] = {"Training", "PublicTest", "Training", "PrivateTest"};
  for (int i = 0; i < 900; ++i) text += row(i % 7, pattern(6, i), usages[i % 4]);
  std::string bad = text;
  bad += row(9, pattern(6, 1), "Training");  // line 902
  for (int i = 0; i < 300; ++i) bad += row(8, pattern(6, 1), "Holdout");
  const auto parse = [](const std::string& t) {
    return kiln::data::parse_fer_csv(t, "t.csv", ImageSpec{3, 9, 9}, 5);
  };
  const kiln::data::Splits want = parse(text);
  REQUIRE(want.train.size() == 450);
  REQUIRE(want.val.size() == 225);
  REQUIRE(want.test.size() == 225);
  kiln::test::at_thread_counts({1, 3, 8}, [&](int threads) {
    INFO(threads << " threads");
    const kiln::data::Splits s = parse(text);
    CHECK(s.train.pixels == want.train.pixels);
    CHECK(s.val.pixels == want.val.pixels);
    CHECK(s.test.pixels == want.test.pixels);
    CHECK(s.train.labels == want.train.labels);
    CHECK(s.test.labels == want.test.labels);
    CHECK_THROWS_WITH(parse(bad), Contains("t.csv:902: emotion 9 is outside 0..6"));
  });
}
