// analysis/plot.cpp — line charts, heat maps and picture grids drawn on a Canvas.
#include "analysis/plot.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "analysis/canvas.h"
#include "core/error.h"

namespace kiln::analysis {
namespace {

constexpr Rgb kInk = {30, 30, 30};
constexpr Rgb kGrid = {225, 225, 225};
constexpr Rgb kAxis = {90, 90, 90};

std::string format_tick(double v, double step, bool percent) {
  char buf[32];
  if (percent) {
    const double p = v * 100, s = step * 100;
    const int decimals = s >= 1 ? 0 : int(std::ceil(-std::log10(s)));
    std::snprintf(buf, sizeof buf, "%.*f%%", decimals, p);
  } else {
    const int decimals = step >= 1 ? 0 : int(std::ceil(-std::log10(step) - 1e-9));
    std::snprintf(buf, sizeof buf, "%.*f", decimals, std::abs(v) < step * 1e-6 ? 0.0 : v);
  }
  return buf;
}

struct Box {
  double x, y, w, h;
};

// One chart panel: axes, grid, series, legend inside the plot area where it covers fewest points.
void draw_line_chart(Canvas& cv, const LineChart& chart, Box panel) {
  const double left = 72, right = 18, top = 38, bottom = 56;
  const Box plot{panel.x + left, panel.y + top, panel.w - left - right, panel.h - top - bottom};

  double xlo = std::numeric_limits<double>::infinity(), xhi = -xlo;
  double ylo = xlo, yhi = -xlo;
  for (const Series& s : chart.series) {
    KILN_CHECK(s.x.size() == s.y.size(), "line chart '", chart.title, "': series '", s.name,
               "' has ", s.x.size(), " x values and ", s.y.size(), " y values");
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      xlo = std::min(xlo, s.x[i]);
      xhi = std::max(xhi, s.x[i]);
      ylo = std::min(ylo, s.y[i]);
      yhi = std::max(yhi, s.y[i]);
    }
  }
  if (!std::isfinite(xlo)) xlo = 0, xhi = 1, ylo = 0, yhi = 1;  // no data: empty axes
  if (chart.y_min) ylo = *chart.y_min;
  if (chart.y_max) yhi = *chart.y_max;
  if (!(xhi > xlo)) xhi = xlo + 1;
  if (!(yhi > ylo)) yhi = ylo + (ylo == 0 ? 1 : std::abs(ylo) * 0.1);
  if (!chart.y_min || !chart.y_max) {
    const double pad = 0.05 * (yhi - ylo);
    if (!chart.y_min) ylo -= pad;
    if (!chart.y_max) yhi += pad;
  }
  std::vector<double> yt = nice_ticks(ylo, yhi, 6);
  if (!chart.y_min) ylo = std::min(ylo, yt.front());
  if (!chart.y_max) yhi = std::max(yhi, yt.back());
  std::vector<double> xt = nice_ticks(xlo, xhi, 8);
  if (chart.x_integer) {
    std::vector<double> keep;
    for (double t : xt)
      if (std::abs(t - std::round(t)) < 1e-9) keep.push_back(t);
    xt = keep.empty() ? std::vector<double>{xlo, xhi} : keep;
  }
  auto px = [&](double x) { return plot.x + (x - xlo) / (xhi - xlo) * plot.w; };
  auto py = [&](double y) { return plot.y + plot.h - (y - ylo) / (yhi - ylo) * plot.h; };

  cv.text(panel.x + panel.w / 2, panel.y + 24, chart.title,
          {.size = 15, .color = kInk, .bold = true, .h = HAlign::center});
  const double ystep = yt.size() > 1 ? yt[1] - yt[0] : 1;
  for (double t : yt) {
    if (t < ylo - 1e-12 || t > yhi + 1e-12) continue;
    cv.line(plot.x, py(t), plot.x + plot.w, py(t), kGrid, 1);
    cv.line(plot.x - 5, py(t), plot.x, py(t), kAxis, 1);
    cv.text(plot.x - 8, py(t), format_tick(t, ystep, chart.y_percent),
            {.size = 12, .color = kInk, .h = HAlign::right, .v = VAlign::middle});
  }
  const double xstep = xt.size() > 1 ? xt[1] - xt[0] : 1;
  for (double t : xt) {
    if (t < xlo - 1e-12 || t > xhi + 1e-12) continue;
    cv.line(px(t), plot.y, px(t), plot.y + plot.h, kGrid, 1);
    cv.line(px(t), plot.y + plot.h, px(t), plot.y + plot.h + 5, kAxis, 1);
    cv.text(px(t), plot.y + plot.h + 8, format_tick(t, xstep, false),
            {.size = 12, .color = kInk, .h = HAlign::center, .v = VAlign::top});
  }
  cv.stroke_rect(plot.x, plot.y, plot.w, plot.h, kAxis, 1);
  cv.text(plot.x + plot.w / 2, panel.y + panel.h - 10, chart.x_label,
          {.size = 13, .color = kInk, .h = HAlign::center, .v = VAlign::bottom});
  cv.text(panel.x + 16, plot.y + plot.h / 2, chart.y_label,
          {.size = 13, .color = kInk, .h = HAlign::center, .v = VAlign::middle, .angle_deg = 90});

  for (const Series& s : chart.series) {
    std::vector<std::pair<double, double>> pts;
    for (size_t i = 0; i < s.x.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) pts.push_back({px(s.x[i]), py(s.y[i])});
    cv.polyline(pts, s.color, 2.2, s.dashed);
    if (s.markers && pts.size() <= 60)
      for (auto [x, y] : pts) cv.fill_circle(x, y, pts.size() <= 25 ? 3.2 : 2.2, s.color);
    if (pts.size() == 1) cv.fill_circle(pts[0].first, pts[0].second, 3.5, s.color);
  }

  // The legend goes to the corner of the plot that covers the fewest data points.
  if (chart.series.empty()) return;
  double lw = 0;
  for (const Series& s : chart.series) lw = std::max(lw, cv.text_width(s.name, 12));
  lw += 44;
  const double lh = 8 + 18.0 * double(chart.series.size());
  const Box corners[4] = {{plot.x + plot.w - lw - 8, plot.y + 8, lw, lh},
                          {plot.x + plot.w - lw - 8, plot.y + plot.h - lh - 8, lw, lh},
                          {plot.x + 8, plot.y + 8, lw, lh},
                          {plot.x + 8, plot.y + plot.h - lh - 8, lw, lh}};
  int best = 0, best_count = std::numeric_limits<int>::max();
  for (int c = 0; c < 4; ++c) {
    int count = 0;
    const Box& b = corners[c];
    for (const Series& s : chart.series)
      for (size_t i = 0; i < s.x.size(); ++i) {
        const double x = px(s.x[i]), y = py(s.y[i]);
        if (x >= b.x - 6 && x <= b.x + b.w + 6 && y >= b.y - 6 && y <= b.y + b.h + 6) ++count;
      }
    if (count < best_count) best = c, best_count = count;
  }
  const Box& b = corners[best];
  cv.fill_rect(b.x, b.y, b.w, b.h, {255, 255, 255});
  cv.stroke_rect(b.x, b.y, b.w, b.h, {200, 200, 200}, 1);
  for (size_t i = 0; i < chart.series.size(); ++i) {
    const Series& s = chart.series[i];
    const double y = b.y + 13 + 18.0 * double(i);
    cv.line(b.x + 8, y, b.x + 34, y, s.color, 2.2, s.dashed);
    cv.text(b.x + 40, y, s.name, {.size = 12, .color = kInk, .v = VAlign::middle});
  }
}

void draw_line_charts(Canvas& cv, const std::vector<LineChart>& panels, int panel_w, int panel_h) {
  for (size_t i = 0; i < panels.size(); ++i)
    draw_line_chart(cv, panels[i], Box{double(i) * panel_w, 0, double(panel_w), double(panel_h)});
}

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int target) {
  KILN_CHECK(hi > lo && target >= 2, "nice_ticks: need hi > lo and target >= 2");
  const double raw = (hi - lo) / double(target - 1);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = 10 * mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw * 0.999) {
      step = m * mag;
      break;
    }
  std::vector<double> ticks;
  const double first = std::floor(lo / step + 1e-9) * step;
  for (double t = first; t < hi + step - 1e-9 * step; t += step) ticks.push_back(t);
  return ticks;
}

Image line_charts_png(const std::vector<LineChart>& panels, int panel_w, int panel_h) {
  KILN_CHECK(!panels.empty(), "line_charts_png: no panels");
  Canvas cv = Canvas::raster(panel_w * int(panels.size()), panel_h);
  draw_line_charts(cv, panels, panel_w, panel_h);
  return cv.to_image();
}

std::string line_charts_svg(const std::vector<LineChart>& panels, int panel_w, int panel_h) {
  KILN_CHECK(!panels.empty(), "line_charts_svg: no panels");
  Canvas cv = Canvas::svg(panel_w * int(panels.size()), panel_h);
  draw_line_charts(cv, panels, panel_w, panel_h);
  return cv.to_svg();
}

Image heat_maps_png(const std::vector<HeatMap>& panels, int cell_px) {
  KILN_CHECK(!panels.empty(), "heat_maps_png: no panels");
  // Measure on a scratch canvas so that every panel gets room for its longest class name.
  Canvas probe = Canvas::raster(8, 8);
  const double name_size = std::clamp(cell_px * 0.2, 11.0, 14.0);
  std::vector<double> widths;
  double panel_h = 0;
  std::vector<double> label_w, col_h;
  for (const HeatMap& m : panels) {
    const size_t rows = m.row_names.size(), cols = m.col_names.size();
    KILN_CHECK(
        rows > 0 && cols > 0 && m.shade.size() == rows * cols && m.cells.size() == rows * cols,
        "heat map '", m.title, "': ", rows, " rows x ", cols, " cols, but ", m.shade.size(),
        " shades and ", m.cells.size(), " cell texts");
    double lw = 0, cw = 0;
    for (const auto& n : m.row_names) lw = std::max(lw, probe.text_width(n, name_size));
    for (const auto& n : m.col_names) cw = std::max(cw, probe.text_width(n, name_size));
    // Column names are turned 45 degrees when they do not fit under their cell.
    const double ch = cw > cell_px - 6 ? cw * 0.72 + 12 : name_size + 10;
    label_w.push_back(lw + 40);
    col_h.push_back(ch);
    widths.push_back(lw + 40 + double(cols) * cell_px + 30);
    panel_h = std::max(panel_h, 44 + double(rows) * cell_px + ch + 34);
  }
  double total_w = 0;
  for (double w : widths) total_w += w;
  Canvas cv = Canvas::raster(int(std::ceil(total_w)), int(std::ceil(panel_h)));
  double x0 = 0;
  for (size_t p = 0; p < panels.size(); ++p) {
    const HeatMap& m = panels[p];
    const int rows = int(m.row_names.size()), cols = int(m.col_names.size());
    const double gx = x0 + label_w[p], gy = 44;
    cv.text(gx + cols * cell_px / 2.0, 26, m.title,
            {.size = 15, .color = kInk, .bold = true, .h = HAlign::center});
    const double value_size = std::clamp(cell_px * 0.22, 9.0, 15.0);
    for (int r = 0; r < rows; ++r) {
      for (int c = 0; c < cols; ++c) {
        const double s = m.shade[size_t(r * cols + c)];
        const double x = gx + c * cell_px, y = gy + r * cell_px;
        cv.fill_rect(x, y, cell_px, cell_px, color_at(ColorMap::blues, s));
        const Rgb ink = s > 0.55 ? Rgb{255, 255, 255} : kInk;
        cv.text(x + cell_px / 2.0, y + cell_px / 2.0, m.cells[size_t(r * cols + c)],
                {.size = value_size,
                 .color = ink,
                 .bold = r == c,
                 .h = HAlign::center,
                 .v = VAlign::middle});
      }
      cv.text(gx - 8, gy + (r + 0.5) * cell_px, m.row_names[size_t(r)],
              {.size = name_size, .color = kInk, .h = HAlign::right, .v = VAlign::middle});
    }
    cv.stroke_rect(gx, gy, cols * cell_px, rows * cell_px, kAxis, 1);
    const double by = gy + rows * cell_px;
    const bool turned = col_h[p] > name_size + 10;
    for (int c = 0; c < cols; ++c) {
      const double cx = gx + (c + 0.5) * cell_px;
      if (turned)
        cv.text(cx + 4, by + 8, m.col_names[size_t(c)],
                {.size = name_size,
                 .color = kInk,
                 .h = HAlign::right,
                 .v = VAlign::top,
                 .angle_deg = 45});
      else
        cv.text(cx, by + 6, m.col_names[size_t(c)],
                {.size = name_size, .color = kInk, .h = HAlign::center, .v = VAlign::top});
    }
    cv.text(gx + cols * cell_px / 2.0, by + col_h[p] + 20, m.col_axis,
            {.size = 13, .color = kInk, .bold = true, .h = HAlign::center, .v = VAlign::bottom});
    cv.text(x0 + 14, gy + rows * cell_px / 2.0, m.row_axis,
            {.size = 13,
             .color = kInk,
             .bold = true,
             .h = HAlign::center,
             .v = VAlign::middle,
             .angle_deg = 90});
    x0 += widths[p];
  }
  return cv.to_image();
}

Image picture_grid_png(const PictureGrid& g) {
  KILN_CHECK(g.rows > 0 && g.cols > 0 && g.cells.size() == size_t(g.rows) * size_t(g.cols),
             "picture grid '", g.title, "': ", g.rows, "x", g.cols, " grid with ", g.cells.size(),
             " cells");
  KILN_CHECK(g.row_labels.empty() || g.row_labels.size() == size_t(g.rows), "picture grid '",
             g.title, "': ", g.row_labels.size(), " row labels for ", g.rows, " rows");
  KILN_CHECK(g.col_labels.empty() || g.col_labels.size() == size_t(g.cols), "picture grid '",
             g.title, "': ", g.col_labels.size(), " column labels for ", g.cols, " columns");
  KILN_CHECK(g.captions.empty() || g.captions.size() == g.cells.size(), "picture grid '", g.title,
             "': ", g.captions.size(), " captions for ", g.cells.size(), " cells");
  Canvas probe = Canvas::raster(8, 8);
  const double label_size = 13, caption_size = std::clamp(g.cell_px * 0.13, 9.0, 12.0);
  double row_w = 0;
  for (const auto& l : g.row_labels) row_w = std::max(row_w, probe.text_width(l, label_size, true));
  // Cells widen to their widest column label or caption, so neighbouring texts never overlap.
  double col_w = 0;
  for (const auto& l : g.col_labels) col_w = std::max(col_w, probe.text_width(l, 12));
  for (const auto& c : g.captions) col_w = std::max(col_w, probe.text_width(c, caption_size));
  const double left = g.row_labels.empty() ? 10 : row_w + 20;
  const double title_h = g.title.empty() ? 8 : 34;
  const double header_h = g.col_labels.empty() ? 0 : 22;
  const double caption_h = g.captions.empty() ? 0 : caption_size + 6;
  const double foot_h = g.footnote.empty() ? 8 : 28;
  const double cell_w = std::max(double(g.cell_px), col_w + 4);
  const double step_x = cell_w + g.gap_px, step_y = g.cell_px + caption_h + g.gap_px;
  const double width =
      std::max(left + g.cols * step_x + 4, probe.text_width(g.title, 15, true) + 20);
  const double height = title_h + header_h + g.rows * step_y + foot_h;
  Canvas cv = Canvas::raster(int(std::ceil(width)), int(std::ceil(height)));
  if (!g.title.empty())
    cv.text(width / 2, 24, g.title, {.size = 15, .color = kInk, .bold = true, .h = HAlign::center});
  const double top = title_h + header_h;
  for (int c = 0; c < int(g.col_labels.size()); ++c)
    cv.text(left + c * step_x + cell_w / 2, top - 6, g.col_labels[size_t(c)],
            {.size = 12, .color = kInk, .h = HAlign::center, .v = VAlign::bottom});
  for (int r = 0; r < g.rows; ++r) {
    const double y = top + r * step_y;
    if (!g.row_labels.empty())
      cv.text(left - 10, y + g.cell_px / 2.0, g.row_labels[size_t(r)],
              {.size = label_size,
               .color = kInk,
               .bold = true,
               .h = HAlign::right,
               .v = VAlign::middle});
    for (int c = 0; c < g.cols; ++c) {
      const size_t i = size_t(r) * size_t(g.cols) + size_t(c);
      const Image& img = g.cells[i];
      const double x = left + c * step_x + (cell_w - g.cell_px) / 2;
      if (!img.empty()) {
        // Fit the picture into the square cell, keeping its aspect ratio.
        const double s = double(g.cell_px) / std::max(img.width(), img.height());
        const double w = img.width() * s, h = img.height() * s;
        cv.image(img, x + (g.cell_px - w) / 2, y + (g.cell_px - h) / 2, w, h);
        // A hairline frame, so that a white picture still shows its extent on the white page.
        cv.stroke_rect(x + (g.cell_px - w) / 2 - 0.5, y + (g.cell_px - h) / 2 - 0.5, w + 1, h + 1,
                       {175, 175, 175}, 1);
      }
      if (!g.captions.empty())
        cv.text(
            x + g.cell_px / 2.0, y + g.cell_px + 3, g.captions[i],
            {.size = caption_size, .color = {70, 70, 70}, .h = HAlign::center, .v = VAlign::top});
    }
  }
  if (!g.footnote.empty())
    cv.text(left, height - 10, g.footnote, {.size = 12, .color = {70, 70, 70}});
  return cv.to_image();
}

}  // namespace kiln::analysis
