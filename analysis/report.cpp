// analysis/report.cpp — the HTML page builder.
#include "analysis/report.h"

#include <regex>

#include "core/error.h"

namespace kiln::analysis {
namespace {

constexpr const char* kStyle = R"(
body { font-family: "DejaVu Sans", Verdana, sans-serif; color: #222; background: #fafafa;
       margin: 0 auto; max-width: 1500px; padding: 24px 32px; line-height: 1.45; }
h1 { margin-bottom: 0; } .subtitle { color: #666; margin-top: 4px; }
h2 { border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 36px; }
figure { display: flex; flex-wrap: wrap; gap: 24px; align-items: flex-start; margin: 16px 0 28px;
         background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 16px; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { flex: 1 1 300px; min-width: 260px; font-size: 14px; }
figcaption h3 { margin: 0 0 8px; font-size: 16px; }
table { border-collapse: collapse; margin: 12px 0 24px; background: #fff; font-size: 14px; }
caption { text-align: left; font-weight: bold; padding-bottom: 6px; }
th, td { border: 1px solid #ddd; padding: 4px 10px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
table.settings td { text-align: left; }
th { background: #f0f0f0; }
)";

std::string paragraphs(const std::string& text) {
  std::string out, para;
  size_t start = 0;
  while (start <= text.size()) {
    size_t end = text.find("\n\n", start);
    if (end == std::string::npos) end = text.size();
    para = text.substr(start, end - start);
    if (!para.empty()) out += "<p>" + html_escape(para) + "</p>\n";
    start = end + 2;
  }
  return out;
}

}  // namespace

std::string html_escape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

HtmlReport::HtmlReport(std::string title, std::string subtitle)
    : title_(std::move(title)), subtitle_(std::move(subtitle)) {}

void HtmlReport::heading(const std::string& text) {
  body_ += "<h2>" + html_escape(text) + "</h2>\n";
}

void HtmlReport::paragraph(const std::string& text) {
  body_ += paragraphs(text);
}

void HtmlReport::key_values(const std::string& caption,
                            const std::vector<std::pair<std::string, std::string>>& rows) {
  body_ += "<table class=\"settings\">\n<caption>" + html_escape(caption) + "</caption>\n";
  for (const auto& [k, v] : rows)
    body_ += "<tr><th>" + html_escape(k) + "</th><td>" + html_escape(v) + "</td></tr>\n";
  body_ += "</table>\n";
}

void HtmlReport::table(const std::string& caption, const std::vector<std::string>& header,
                       const std::vector<std::vector<std::string>>& rows) {
  body_ += "<table>\n<caption>" + html_escape(caption) + "</caption>\n<tr>";
  for (const auto& h : header) body_ += "<th>" + html_escape(h) + "</th>";
  body_ += "</tr>\n";
  for (const auto& row : rows) {
    KILN_CHECK(row.size() == header.size(), "HtmlReport::table '", caption, "': a row has ",
               row.size(), " cells for ", header.size(), " columns");
    body_ += "<tr>";
    for (const auto& cell : row) body_ += "<td>" + html_escape(cell) + "</td>";
    body_ += "</tr>\n";
  }
  body_ += "</table>\n";
}

void HtmlReport::add_figure(const std::string& title, const std::string& src, int width,
                            const std::string& how_to_read) {
  ++figures_;
  body_ += "<figure id=\"figure-" + std::to_string(figures_) + "\">\n<img src=\"" + src +
           "\" alt=\"" + html_escape(title) + "\"" +
           (width > 0 ? " width=\"" + std::to_string(width) + "\"" : "") + ">\n<figcaption><h3>" +
           html_escape(title) + "</h3>\n" + paragraphs(how_to_read) + "</figcaption>\n</figure>\n";
}

void HtmlReport::figure(const std::string& title, const Image& image,
                        const std::string& how_to_read) {
  add_figure(title, "data:image/png;base64," + base64(encode_png(image)), image.width(),
             how_to_read);
}

void HtmlReport::figure_svg(const std::string& title, const std::string& svg,
                            const std::string& how_to_read) {
  // The SVG's own width attribute sizes the picture; "pt" and "px" agree for Cairo's output.
  int width = 0;
  std::smatch m;
  if (std::regex_search(svg, m, std::regex(R"re(width="([0-9.]+)(pt|px)?")re")))
    width = int(std::stod(m[1].str()));
  add_figure(title, "data:image/svg+xml;base64," + base64(svg), width, how_to_read);
}

std::string HtmlReport::html() const {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
         "<link rel=\"icon\" href=\"data:,\">\n<title>" +
         html_escape(title_) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n<h1>" +
         html_escape(title_) + "</h1>\n" +
         (subtitle_.empty() ? "" : "<p class=\"subtitle\">" + html_escape(subtitle_) + "</p>\n") +
         body_ + "</body>\n</html>\n";
}

void HtmlReport::write(const std::string& path) const {
  write_file(path, html());
}

}  // namespace kiln::analysis
