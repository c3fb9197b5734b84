// analysis/canvas.cpp — Canvas over Cairo's image and SVG surfaces.
//
// Cairo is a required dependency (CMakeLists.txt finds it with pkg-config; cmake/deps.sh installs
// libcairo2-dev), so there is no build without it.
#include "analysis/canvas.h"

#include <cairo-svg.h>
#include <cairo.h>

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace kiln::analysis {

struct Canvas::State {
  cairo_surface_t* surface = nullptr;
  cairo_t* cr = nullptr;
  bool svg = false;
  bool finished = false;
  std::string svg_text;  // filled by the SVG surface's write callback

  ~State() {
    if (cr) cairo_destroy(cr);
    if (surface) cairo_surface_destroy(surface);
  }
};

namespace {

void set_color(cairo_t* cr, Rgb c) {
  cairo_set_source_rgb(cr, c.r / 255.0, c.g / 255.0, c.b / 255.0);
}

cairo_status_t append_svg(void* closure, const unsigned char* data, unsigned int length) {
  static_cast<std::string*>(closure)->append(reinterpret_cast<const char*>(data), length);
  return CAIRO_STATUS_SUCCESS;
}

void select_font(cairo_t* cr, double size, bool bold) {
  cairo_select_font_face(cr, "DejaVu Sans", CAIRO_FONT_SLANT_NORMAL,
                         bold ? CAIRO_FONT_WEIGHT_BOLD : CAIRO_FONT_WEIGHT_NORMAL);
  cairo_set_font_size(cr, size);
}

}  // namespace

Canvas::Canvas(int width, int height, bool svg)
    : state_(std::make_unique<State>()), width_(width), height_(height) {
  KILN_CHECK(width > 0 && height > 0, "Canvas: size must be positive, got ", width, "x", height);
  state_->svg = svg;
  if (svg) {
    state_->surface =
        cairo_svg_surface_create_for_stream(append_svg, &state_->svg_text, width, height);
  } else {
    state_->surface = cairo_image_surface_create(CAIRO_FORMAT_RGB24, width, height);
  }
  KILN_CHECK(cairo_surface_status(state_->surface) == CAIRO_STATUS_SUCCESS,
             "Canvas: Cairo cannot create a ", width, "x", height,
             " surface: ", cairo_status_to_string(cairo_surface_status(state_->surface)));
  state_->cr = cairo_create(state_->surface);
  set_color(state_->cr, {255, 255, 255});
  cairo_paint(state_->cr);
}

Canvas Canvas::raster(int width, int height) {
  return Canvas(width, height, false);
}
Canvas Canvas::svg(int width, int height) {
  return Canvas(width, height, true);
}
Canvas::Canvas(Canvas&&) noexcept = default;
Canvas& Canvas::operator=(Canvas&&) noexcept = default;
Canvas::~Canvas() = default;

void Canvas::line(double x0, double y0, double x1, double y1, Rgb color, double width,
                  bool dashed) {
  polyline({{x0, y0}, {x1, y1}}, color, width, dashed);
}

void Canvas::polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double width,
                      bool dashed) {
  KILN_CHECK(!state_->finished, "Canvas: drawing after the picture was taken");
  if (points.size() < 2) return;
  cairo_t* cr = state_->cr;
  cairo_save(cr);
  set_color(cr, color);
  cairo_set_line_width(cr, width);
  cairo_set_line_join(cr, CAIRO_LINE_JOIN_ROUND);
  if (dashed) {
    const double dash[] = {6 * width / 2, 4 * width / 2};
    cairo_set_dash(cr, dash, 2, 0);
  }
  cairo_move_to(cr, points[0].first, points[0].second);
  for (size_t i = 1; i < points.size(); ++i) cairo_line_to(cr, points[i].first, points[i].second);
  cairo_stroke(cr);
  cairo_restore(cr);
}

void Canvas::fill_rect(double x, double y, double w, double h, Rgb color) {
  KILN_CHECK(!state_->finished, "Canvas: drawing after the picture was taken");
  set_color(state_->cr, color);
  cairo_rectangle(state_->cr, x, y, w, h);
  cairo_fill(state_->cr);
}

void Canvas::stroke_rect(double x, double y, double w, double h, Rgb color, double width) {
  KILN_CHECK(!state_->finished, "Canvas: drawing after the picture was taken");
  set_color(state_->cr, color);
  cairo_set_line_width(state_->cr, width);
  cairo_rectangle(state_->cr, x, y, w, h);
  cairo_stroke(state_->cr);
}

void Canvas::fill_circle(double x, double y, double radius, Rgb color) {
  KILN_CHECK(!state_->finished, "Canvas: drawing after the picture was taken");
  set_color(state_->cr, color);
  cairo_new_sub_path(state_->cr);
  cairo_arc(state_->cr, x, y, radius, 0, 2 * std::numbers::pi);
  cairo_fill(state_->cr);
}

double Canvas::text_width(const std::string& s, double size, bool bold) {
  select_font(state_->cr, size, bold);
  cairo_text_extents_t ext;
  cairo_text_extents(state_->cr, s.c_str(), &ext);
  return ext.x_advance;
}

void Canvas::text(double x, double y, const std::string& s, const TextStyle& style) {
  KILN_CHECK(!state_->finished, "Canvas: drawing after the picture was taken");
  if (s.empty()) return;
  cairo_t* cr = state_->cr;
  cairo_save(cr);
  select_font(cr, style.size, style.bold);
  cairo_text_extents_t ext;
  cairo_text_extents(cr, s.c_str(), &ext);
  cairo_font_extents_t font;
  cairo_font_extents(cr, &font);
  // Offsets from the anchor, in the text's own (rotated) frame.
  double dx = 0, dy = 0;
  if (style.h == HAlign::center) dx = -ext.x_advance / 2;
  if (style.h == HAlign::right) dx = -ext.x_advance;
  if (style.v == VAlign::top) dy = font.ascent;
  if (style.v == VAlign::middle) dy = (font.ascent - font.descent) / 2;
  if (style.v == VAlign::bottom) dy = -font.descent;
  cairo_translate(cr, x, y);
  cairo_rotate(cr, -style.angle_deg * std::numbers::pi / 180);
  set_color(cr, style.color);
  cairo_move_to(cr, dx, dy);
  cairo_show_text(cr, s.c_str());
  cairo_restore(cr);
}

void Canvas::image(const Image& img, double x, double y, double w, double h) {
  KILN_CHECK(!state_->finished, "Canvas: drawing after the picture was taken");
  KILN_CHECK(!img.empty(), "Canvas::image: empty image");
  cairo_surface_t* src = cairo_image_surface_create(CAIRO_FORMAT_RGB24, img.width(), img.height());
  cairo_surface_flush(src);
  unsigned char* dst = cairo_image_surface_get_data(src);
  const int stride = cairo_image_surface_get_stride(src);
  for (int r = 0; r < img.height(); ++r) {
    auto* row = reinterpret_cast<uint32_t*>(dst + size_t(r) * size_t(stride));
    for (int c = 0; c < img.width(); ++c) {
      const Rgb p = img.at(c, r);
      row[c] = uint32_t(p.r) << 16 | uint32_t(p.g) << 8 | uint32_t(p.b);
    }
  }
  cairo_surface_mark_dirty(src);
  cairo_t* cr = state_->cr;
  cairo_save(cr);
  cairo_rectangle(cr, x, y, w, h);
  cairo_clip(cr);
  cairo_translate(cr, x, y);
  cairo_scale(cr, w / img.width(), h / img.height());
  cairo_set_source_surface(cr, src, 0, 0);
  cairo_pattern_set_filter(cairo_get_source(cr), CAIRO_FILTER_NEAREST);
  cairo_paint(cr);
  cairo_restore(cr);
  cairo_surface_destroy(src);
}

Image Canvas::to_image() {
  KILN_CHECK(!state_->svg, "Canvas::to_image: this is an SVG canvas");
  KILN_CHECK(!state_->finished, "Canvas::to_image: already taken");
  state_->finished = true;
  cairo_surface_flush(state_->surface);
  const unsigned char* src = cairo_image_surface_get_data(state_->surface);
  const int stride = cairo_image_surface_get_stride(state_->surface);
  Image out(width_, height_);
  for (int r = 0; r < height_; ++r) {
    const auto* row = reinterpret_cast<const uint32_t*>(src + size_t(r) * size_t(stride));
    for (int c = 0; c < width_; ++c)
      out.set(c, r, {uint8_t(row[c] >> 16), uint8_t(row[c] >> 8), uint8_t(row[c])});
  }
  return out;
}

std::string Canvas::to_svg() {
  KILN_CHECK(state_->svg, "Canvas::to_svg: this is a raster canvas");
  KILN_CHECK(!state_->finished, "Canvas::to_svg: already taken");
  state_->finished = true;
  cairo_destroy(state_->cr);
  state_->cr = nullptr;
  cairo_surface_finish(state_->surface);  // flushes the document through append_svg
  KILN_CHECK(cairo_surface_status(state_->surface) == CAIRO_STATUS_SUCCESS,
             "Canvas::to_svg: Cairo failed: ",
             cairo_status_to_string(cairo_surface_status(state_->surface)));
  return std::move(state_->svg_text);
}

}  // namespace kiln::analysis
