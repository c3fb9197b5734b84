// analysis/report.h — one self-contained HTML page: headings, text, tables and figures.
//
// Every figure is embedded as a data URI (PNG bytes from analysis/image.h, or SVG text), the style
// sheet is inline and there is no script, so the page is one file that opens anywhere, offline, and
// cannot log a console error. Each figure carries a "how to read it" text beside it (below it on a
// narrow window). All text is HTML-escaped.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "analysis/image.h"

namespace kiln::analysis {

class HtmlReport {
 public:
  explicit HtmlReport(std::string title, std::string subtitle = "");

  void heading(const std::string& text);
  void paragraph(const std::string& text);
  // A two-column table of settings ("learning rate", "0.001").
  void key_values(const std::string& caption,
                  const std::vector<std::pair<std::string, std::string>>& rows);
  void table(const std::string& caption, const std::vector<std::string>& header,
             const std::vector<std::vector<std::string>>& rows);
  // A figure: its title, the picture, and how to read it (plain text; blank lines
  // start paragraphs).
  void figure(const std::string& title, const Image& image, const std::string& how_to_read);
  void figure_svg(const std::string& title, const std::string& svg, const std::string& how_to_read);

  std::string html() const;
  void write(const std::string& path) const;

 private:
  void add_figure(const std::string& title, const std::string& src, int width,
                  const std::string& how_to_read);
  std::string title_, subtitle_;
  std::string body_;
  int figures_ = 0;
};

std::string html_escape(const std::string& text);

}  // namespace kiln::analysis
