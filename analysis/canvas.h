// analysis/canvas.h — a small drawing surface over Cairo, for figures with axes and text.
//
// Cairo (Debian's libcairo2) draws antialiased lines, rectangles and text and writes both raster
// and SVG surfaces from the same calls, so one drawing routine produces a figure's PNG (through
// analysis/image.h, i.e. stb_image_write) and its SVG. Text uses Cairo's own font selection
// (fontconfig, "DejaVu Sans", which Debian installs with fontconfig). Coordinates are in pixels,
// origin top left, y down. The Cairo types stay out of this header.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "analysis/image.h"

namespace kiln::analysis {

enum class HAlign { left, center, right };
enum class VAlign { top, middle, baseline, bottom };

struct TextStyle {
  double size = 13;  // pixels
  Rgb color = {30, 30, 30};
  bool bold = false;
  HAlign h = HAlign::left;
  VAlign v = VAlign::baseline;
  double angle_deg = 0;  // counter-clockwise rotation about the anchor (-90: reading upwards)
};

class Canvas {
 public:
  // A raster canvas (white background) or an SVG one, `width` x `height` pixels.
  static Canvas raster(int width, int height);
  static Canvas svg(int width, int height);
  Canvas(Canvas&&) noexcept;
  Canvas& operator=(Canvas&&) noexcept;
  ~Canvas();

  int width() const { return width_; }
  int height() const { return height_; }

  void line(double x0, double y0, double x1, double y1, Rgb color, double width = 1,
            bool dashed = false);
  void polyline(const std::vector<std::pair<double, double>>& points, Rgb color, double width = 1,
                bool dashed = false);
  void fill_rect(double x, double y, double w, double h, Rgb color);
  void stroke_rect(double x, double y, double w, double h, Rgb color, double width = 1);
  void fill_circle(double x, double y, double radius, Rgb color);
  void text(double x, double y, const std::string& s, const TextStyle& style = {});
  double text_width(const std::string& s, double size, bool bold = false);
  // Draws `image` scaled to w x h with nearest-neighbour sampling (pixels stay crisp squares).
  void image(const Image& image, double x, double y, double w, double h);

  // The finished picture: the raster as an Image, the SVG as its document text. Drawing after
  // either call is an error.
  Image to_image();
  std::string to_svg();

 private:
  struct State;
  Canvas(int width, int height, bool svg);
  std::unique_ptr<State> state_;
  int width_ = 0, height_ = 0;
};

}  // namespace kiln::analysis
