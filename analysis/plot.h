// analysis/plot.h — the three kinds of figure the analysis draws: line charts (training curves),
// heat maps with numbers in the cells (confusion matrices), and labelled grids of small pictures
// (saliency maps, filter pictures, feature maps).
//
// Each is described by a plain struct and drawn onto a Canvas (analysis/canvas.h), so the same
// description gives a PNG (`*_png`, an Image for analysis/image.h's encoder) and, for charts,
// an SVG.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "analysis/image.h"

namespace kiln::analysis {

// ---- line charts
// ---------------------------------------------------------------------------------
struct Series {
  std::string name{};  // legend entry
  std::vector<double> x{}, y{};
  Rgb color = {31, 119, 180};
  bool dashed = false;
  bool markers = true;  // a dot at each point (drawn only when there are few points)
};

struct LineChart {
  std::string title{}, x_label{}, y_label{};
  std::vector<Series> series{};
  bool y_percent = false;                  // tick labels as "40%" for values in [0, 1]
  std::optional<double> y_min{}, y_max{};  // fixed ends of the y axis; else from the data, padded
  bool x_integer = true;                   // ticks on whole numbers (epochs)
};

// Charts side by side, each panel `panel_w` x `panel_h` pixels.
Image line_charts_png(const std::vector<LineChart>& panels, int panel_w = 520, int panel_h = 380);
std::string line_charts_svg(const std::vector<LineChart>& panels, int panel_w = 520,
                            int panel_h = 380);

// "Nice" axis ticks covering [lo, hi]: about `target` values at a step of 1, 2 or 5 times a power
// of ten, the first <= lo and the last >= hi.
std::vector<double> nice_ticks(double lo, double hi, int target = 6);

// ---- heat maps
// -----------------------------------------------------------------------------------
struct HeatMap {
  std::string title{}, row_axis{}, col_axis{};  // e.g. "true class", "predicted class"
  std::vector<std::string> row_names{}, col_names{};
  std::vector<double> shade{};  // [rows][cols] in [0, 1]: colour of each cell (ColorMap::blues)
  std::vector<std::string> cells{};  // [rows][cols]: the text written in each cell
};

// Heat maps side by side; every cell is `cell_px` square.
Image heat_maps_png(const std::vector<HeatMap>& panels, int cell_px = 64);

// ---- picture grids
// -------------------------------------------------------------------------------
struct PictureGrid {
  std::string title{};
  int rows = 0, cols = 0;
  std::vector<Image> cells{};             // [rows][cols]; an empty Image leaves its cell blank
  std::vector<std::string> row_labels{};  // [rows] or empty
  std::vector<std::string> col_labels{};  // [cols] or empty: headers above the first row
  std::vector<std::string> captions{};    // [rows][cols] or empty: small text under each cell
  int cell_px = 96;                       // each picture is scaled (nearest) to this square
  int gap_px = 6;
  std::string footnote{};  // one line under the grid (e.g. the colour scale)
};

Image picture_grid_png(const PictureGrid& grid);

}  // namespace kiln::analysis
