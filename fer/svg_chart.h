// Small SVG charts written by hand, for the HTML report (fer/report.h): a line chart and a
// heatmap. No JavaScript, no external fonts or stylesheets: the output is a string of
// inline SVG that any browser draws and that tests can read back.
//
// Both charts mark what they draw so a test (or a curious reader of the page source) can
// find the numbers: the plot area is <rect class="plot-area" x y width height> with the
// axis ranges in data-x-min/data-x-max/data-y-min/data-y-max, each series is a
// <polyline class="..." data-series="name">, each heatmap cell a
// <rect class="cell" data-row data-col data-value> plus its <text class="cell">.
#pragma once

#include <limits>
#include <string>
#include <vector>

namespace fer::svg {

// Escapes & < > " ' so that any text is safe inside HTML/SVG text and attribute values.
std::string escape(const std::string& text);

// "%.*f", or "n/a" for NaN: the way the report shows a number.
std::string fixed(double value, int decimals);

// "%.9g" (what fer::Json writes for a number), "NaN" for NaN: the exact value, for data-
// attributes.
std::string exact(double value);

// A colour from a categorical palette (Tableau 10: distinct, readable on white) -- the
// seven FER classes get seven different hues. Wraps around after 10.
const char* series_color(int index);

// The colour of t in [0, 1] on a white-to-dark-blue sequential scale (ColorBrewer Blues),
// as "#rrggbb". t is clamped.
std::string blues(double t);

struct Ticks {
  std::vector<double> values;
  int decimals = 0;  // digits after the point that tell the ticks apart (-1: use %g)
};

// About `target` "nice" ticks (steps of 1, 2 or 5 times a power of ten) from the
// multiple of the step at or below lo to the one at or above hi. integers: the step is
// at least 1 (epochs). Formats each tick with format_tick().
Ticks nice_ticks(double lo, double hi, int target, bool integers = false);
std::string format_tick(double value, int decimals);

constexpr double kAuto = std::numeric_limits<double>::quiet_NaN();

struct Series {
  std::string name;     // legend text (plain text; escaped when drawn)
  std::vector<double> x, y;
  std::string color;    // CSS colour; empty: series_color(position in the chart)
  bool dashed = false;
  bool markers = false;  // a dot on every point (for short series such as epochs)
  std::string css_class = "series";
  // Extra attributes for the polyline, already escaped, e.g. ` data-auc="0.93"`.
  std::string attributes;
};

struct LineChart {
  std::string id;  // the <svg id>; also prefixes nothing else, so ids stay unique per page
  std::string title, x_label, y_label;
  int plot_width = 380, plot_height = 240;  // the plot area; margins and legend come on top
  // Fixed axis ranges; kAuto takes x from the data exactly and extends y to nice ticks.
  double x_min = kAuto, x_max = kAuto, y_min = kAuto, y_max = kAuto;
  bool integer_x = false;  // x ticks at whole numbers only (epochs)
  // Legend in rows under the chart instead of a column to its right: narrower charts
  // (several fit side by side) when the series are few and their names short.
  bool legend_below = false;
  std::vector<Series> series;
};

// The chart as one <svg> element: title on top, y axis title on the left, gridlines at the
// ticks, the series as polylines (a gap where a value is not finite), the legend outside
// the plot area (right of it, or below) so it never covers a curve.
std::string line_chart(const LineChart& chart);

struct Heatmap {
  std::string id, title;
  std::string row_title, col_title;  // e.g. "true class", "predicted class"
  std::vector<std::string> row_labels, col_labels;
  std::vector<std::vector<double>> values;     // rows x cols: the colour of each cell
  std::vector<std::vector<std::string>> text;  // rows x cols: what each cell shows
  double v_max = kAuto;  // value drawn darkest (0 is white); kAuto: the largest value
  int cell = 52;         // side of a cell in pixels
};

// The matrix as one <svg>: row labels on the left, column labels below (slanted so long
// class names fit), a colour bar on the right. Throws fer::Error on mismatched shapes.
std::string heatmap(const Heatmap& map);

}  // namespace fer::svg
