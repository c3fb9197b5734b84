// tests/analysis/test_report.cpp — the HTML page: self-contained, escaped, every figure embedded.
#include <catch2/catch.hpp>

#include <string>

#include "analysis/plot.h"
#include "analysis/report.h"

using namespace kiln::analysis;

namespace {
size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + 1)) ++n;
  return n;
}
}  // namespace

TEST_CASE("the report embeds every figure as a data URI and escapes text", "[cpu]") {
  HtmlReport r("Run <1>", "a & b");
  r.heading("Curves");
  r.paragraph("first\n\nsecond");
  r.key_values("Configuration", {{"lr", "0.001"}, {"model", "Conv2d(1, 64) -> <BN>"}});
  r.table("Per class", {"class", "recall"}, {{"happy", "0.83"}, {"fear", "0.30"}});
  Image img(10, 10, {200, 10, 10});
  r.figure("A figure", img, "How to read it.");
  LineChart c{.title = "t", .x_label = "x", .y_label = "y"};
  c.series.push_back(Series{.name = "s", .x = {1, 2, 3}, .y = {3, 1, 2}});
  r.figure_svg("A chart", line_charts_svg({c}, 300, 200), "Lines.");
  const std::string html = r.html();
  CHECK(html.rfind("<!DOCTYPE html>", 0) == 0);
  CHECK(html.find("<title>Run &lt;1&gt;</title>") != std::string::npos);
  CHECK(html.find("a &amp; b") != std::string::npos);
  CHECK(html.find("-&gt; &lt;BN&gt;") != std::string::npos);
  CHECK(count(html, "<p>") >= 4);
  CHECK(count(html, "src=\"data:image/png;base64,iVBORw0KGgo") == 1);  // the PNG signature
  CHECK(count(html, "src=\"data:image/svg+xml;base64,") == 1);
  CHECK(html.find("width=\"300\"") != std::string::npos);
  CHECK(count(html, "<figure") == 2);
  CHECK(html.find("<script") == std::string::npos);
  CHECK(html.find("http://") == std::string::npos);  // nothing to fetch
  CHECK(html.find("https://") == std::string::npos);
}
