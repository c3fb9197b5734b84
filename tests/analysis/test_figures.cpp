// tests/analysis/test_figures.cpp — the pictures: PNG/SVG written, decoded back, right size,
// not blank.
#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <string>

#include "analysis/curves.h"
#include "analysis/image.h"
#include "analysis/metrics.h"
#include "analysis/plot.h"
#include "tests/support/png.h"
#include "tests/support/temp_dir.h"

using namespace kiln::analysis;
using namespace kiln::test;

namespace {

std::string sample_history() {
  std::string csv = "epoch,train_loss,train_acc,val_loss,val_acc,lr,seconds\n";
  for (int e = 1; e <= 12; ++e) {
    const double tl = 1.9 * std::exp(-e / 5.0) + 0.1, vl = 1.9 * std::exp(-e / 4.0) + 0.6;
    const double ta = 1 - 0.8 * std::exp(-e / 5.0), va = 0.6 - 0.4 * std::exp(-e / 4.0);
    csv += std::to_string(e) + "," + std::to_string(tl) + "," + std::to_string(ta) + "," +
           std::to_string(vl) + "," + std::to_string(va) + ",0.001,3.5\n";
  }
  return csv;
}

}  // namespace

TEST_CASE("base64 matches RFC 4648's test vectors", "[cpu]") {
  CHECK(base64(std::string_view("")) == "");
  CHECK(base64(std::string_view("f")) == "Zg==");
  CHECK(base64(std::string_view("fo")) == "Zm8=");
  CHECK(base64(std::string_view("foo")) == "Zm9v");
  CHECK(base64(std::string_view("foob")) == "Zm9vYg==");
  CHECK(base64(std::string_view("fooba")) == "Zm9vYmE=");
  CHECK(base64(std::string_view("foobar")) == "Zm9vYmFy");
}

TEST_CASE("nice_ticks steps by 1, 2 or 5 times a power of ten and covers the range", "[cpu]") {
  const auto t = nice_ticks(0.13, 2.37, 6);
  REQUIRE(t.size() >= 3);
  CHECK(t.front() <= 0.13);
  CHECK(t.back() >= 2.37);
  CHECK(t[1] - t[0] == Approx(0.5));
  const auto p = nice_ticks(0, 1, 6);
  CHECK(p[1] - p[0] == Approx(0.2));
}

TEST_CASE("an Image round-trips through PNG bytes pixel for pixel", "[cpu]") {
  Image img(5, 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x) img.set(x, y, {uint8_t(40 * x), uint8_t(80 * y), 7});
  const auto d = decode_png(encode_png(img));
  REQUIRE(d.width == 5);
  REQUIRE(d.height == 3);
  for (int y = 0; y < 3; ++y)
    for (int x = 0; x < 5; ++x) {
      const uint8_t* p = &d.pixels[size_t(y * 5 + x) * 3];
      CHECK(int(p[0]) == 40 * x);
      CHECK(int(p[1]) == 80 * y);
      CHECK(int(p[2]) == 7);
    }
}

TEST_CASE("colour maps run dark to bright (inferno) and light to dark (blues)", "[cpu]") {
  auto luma = [](Rgb c) { return 0.299 * c.r + 0.587 * c.g + 0.114 * c.b; };
  double prev_i = -1, prev_b = 1e9;
  for (int k = 0; k <= 20; ++k) {
    const double t = k / 20.0;
    const double li = luma(color_at(ColorMap::inferno, t)), lb = luma(color_at(ColorMap::blues, t));
    CHECK(li > prev_i);
    CHECK(lb < prev_b);
    prev_i = li;
    prev_b = lb;
  }
}

TEST_CASE("history.csv is parsed by column name, percentages become fractions", "[cpu]") {
  const auto h = parse_history_csv(
      "epoch,val_acc,train_loss,train_acc,val_loss,lr,seconds\n1,55.5,2.0,40,1.5,0.001,3\n"
      "2,,1.0,60,1.2,0.001,3\n");
  REQUIRE(h.size() == 2);
  CHECK(h[0].epoch == 1);
  CHECK(h[0].val_acc == Approx(0.555));
  CHECK(h[1].train_acc == Approx(0.6));
  CHECK(std::isnan(h[1].val_acc));
  CHECK(h[1].train_loss == 1.0);
}

TEST_CASE(
    "history.csv is read as RFC 4180 CSV: quotes, blanks, CRLF, and a bad quote names its line",
    "[cpu]") {
  const auto h = parse_history_csv(
      "\"epoch\", train_loss ,\"val_acc\"\r\n\r\n1, 2.5 ,\"0.25\"\r\n2,\"1.5\",\r\n");
  REQUIRE(h.size() == 2);
  CHECK(h[0].epoch == 1);
  CHECK(h[0].train_loss == 2.5);
  CHECK(h[0].val_acc == 0.25);
  CHECK(h[1].train_loss == 1.5);
  CHECK(std::isnan(h[1].val_acc));
  CHECK(std::isnan(h[1].lr));  // no such column
  CHECK_THROWS_WITH(
      parse_history_csv("epoch,lr\n1,0.1\n2,\"0.1\n"),
      Catch::Contains("history.csv: line 3") && Catch::Contains("unterminated quote"));
  CHECK_THROWS_WITH(parse_history_csv("\n \n"), Catch::Contains("empty document"));
}

TEST_CASE("training curves: PNG 2 panels of 520x380 with ink, SVG document, files on disk",
          "[cpu]") {
  const kiln::test::TempDir tmp("analysis_curves");
  const std::filesystem::path& dir = tmp.path();
  write_file((dir / "history.csv").string(), sample_history());
  update_training_curves((dir / "history.csv").string(), (dir / "curves").string());
  const auto d = decode_png_file((dir / "curves.png").string());
  REQUIRE(d.width == 1040);
  REQUIRE(d.height == 380);
  CHECK(d.stddev() > 20);
  CHECK(d.inked() > 0.02);
  CHECK(d.inked() < 0.5);
  const std::string svg = read_file((dir / "curves.svg").string());
  CHECK(svg.find("<svg") != std::string::npos);
  CHECK(svg.find("</svg>") != std::string::npos);
  CHECK_FALSE(std::filesystem::exists(dir / "curves.png.tmp"));
}

TEST_CASE("confusion heat map: two panels, the diagonal darker than the off-diagonal", "[cpu]") {
  const std::vector<std::string> names = {"angry", "disgust", "fear"};
  // 10 per class, 8 right each.
  std::vector<int> labels, preds;
  for (int c = 0; c < 3; ++c)
    for (int k = 0; k < 10; ++k) labels.push_back(c), preds.push_back(k < 8 ? c : (c + 1) % 3);
  const ConfusionMatrix cm(labels, preds, 3);
  const int cell = 60;
  const Image img = confusion_png(cm, names, cell);
  const auto d = decode_png(encode_png(img));
  REQUIRE(d.width == img.width());
  CHECK(d.width > 2 * 3 * cell);
  CHECK(d.height > 3 * cell);
  CHECK(d.stddev() > 30);
  // Sample the first panel's cells through the image: find the darkest and the lightest cell colour
  // among the blues; a dark diagonal gives a wide spread.
  int dark = 0;
  for (size_t i = 0; i < d.pixels.size(); i += 3)
    if (d.pixels[i + 2] > 90 && d.pixels[i] < 60) ++dark;  // deep blue
  CHECK(dark > 3 * cell * cell);  // at least the six diagonal cells, mostly
}

TEST_CASE("picture grid: every cell drawn at the requested size", "[cpu]") {
  PictureGrid g{.title = "grid", .rows = 2, .cols = 3, .cell_px = 50};
  for (int i = 0; i < 6; ++i) {
    std::vector<float> v(16 * 16);
    for (int p = 0; p < 256; ++p) v[size_t(p)] = float((p * (i + 3)) % 17);
    g.cells.push_back(colorize(v.data(), 16, 16, min_max(v.data(), 256), ColorMap::inferno));
  }
  g.row_labels = {"a", "b"};
  const Image img = picture_grid_png(g);
  CHECK(img.width() >= 3 * 50);
  CHECK(img.height() >= 2 * 50);
  const auto d = decode_png(encode_png(img));
  CHECK(d.stddev() > 30);
}
