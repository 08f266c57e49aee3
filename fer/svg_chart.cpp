// Hand-written SVG line charts and heatmaps. See fer/svg_chart.h.
#include "fer/svg_chart.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "fer/error.h"

namespace fer::svg {

namespace {

// Browsers do not tell us how wide a string is before drawing it; this is a generous
// average advance for a sans-serif font (most glyphs are 0.5-0.6 em), used to reserve
// room for labels and the legend.
double text_width(const std::string& s, double font_size) {
  size_t glyphs = 0;
  for (unsigned char c : s)
    if ((c & 0xC0) != 0x80) ++glyphs;  // count UTF-8 code points, not bytes
  return static_cast<double>(glyphs) * font_size * 0.6;
}

std::string px(double v) {  // a coordinate: two decimals are finer than any screen
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f", v);
  std::string s = buf;
  // "12.50" -> "12.5", "12.00" -> "12": shorter pages, same positions.
  s.erase(s.find_last_not_of('0') + 1);
  if (s.back() == '.') s.pop_back();
  if (s == "-0") s = "0";
  return s;
}

const char* kTextColor = "#222";
const char* kMutedColor = "#555";
const char* kGridColor = "#e3e3e3";
const char* kFrameColor = "#9a9a9a";

std::string svg_open(const std::string& id, const std::string& css_class, double width,
                     double height) {
  std::string out = "<svg xmlns=\"http://www.w3.org/2000/svg\"";
  if (!id.empty()) out += " id=\"" + escape(id) + "\"";
  out += " class=\"" + css_class + "\" width=\"" + px(width) + "\" height=\"" + px(height) +
         "\" viewBox=\"0 0 " + px(width) + " " + px(height) +
         "\" font-family=\"system-ui, -apple-system, 'Segoe UI', Roboto, 'DejaVu Sans', "
         "sans-serif\" font-size=\"12\">\n";
  return out;
}

std::string text(double x, double y, const std::string& content, const std::string& extra) {
  return "<text x=\"" + px(x) + "\" y=\"" + px(y) + "\"" + extra + ">" + escape(content) +
         "</text>\n";
}

// Largest and smallest finite value of a list of vectors.
void finite_range(const std::vector<const std::vector<double>*>& lists, double& lo, double& hi) {
  lo = std::numeric_limits<double>::infinity();
  hi = -lo;
  for (const auto* list : lists)
    for (double v : *list)
      if (std::isfinite(v)) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
}

// A range of zero width cannot be mapped to pixels; widen it around the value.
void widen_if_flat(double& lo, double& hi, bool integers) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    lo = 0;
    hi = 1;
  } else if (hi <= lo) {
    const double pad = integers ? 1.0 : (lo != 0 ? std::fabs(lo) * 0.1 : 1.0);
    lo -= pad;
    hi += pad;
  }
}

}  // namespace

std::string escape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string fixed(double value, int decimals) {
  if (std::isnan(value)) return "n/a";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string exact(double value) {
  if (std::isnan(value)) return "NaN";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", value);
  return buf;
}

const char* series_color(int index) {
  static const char* const palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  const int n = static_cast<int>(sizeof palette / sizeof palette[0]);
  return palette[((index % n) + n) % n];
}

std::string blues(double t) {
  // ColorBrewer "Blues", 9 classes, interpolated linearly in RGB.
  static const int stops[9][3] = {{247, 251, 255}, {222, 235, 247}, {198, 219, 239},
                                  {158, 202, 225}, {107, 174, 214}, {66, 146, 198},
                                  {33, 113, 181},  {8, 81, 156},    {8, 48, 107}};
  if (!std::isfinite(t)) t = 0;
  t = std::clamp(t, 0.0, 1.0) * 8;
  const int i = std::min(static_cast<int>(t), 7);
  const double f = t - i;
  char buf[8];
  int rgb[3];
  for (int c = 0; c < 3; ++c)
    rgb[c] = static_cast<int>(std::lround(stops[i][c] + f * (stops[i + 1][c] - stops[i][c])));
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", rgb[0], rgb[1], rgb[2]);
  return buf;
}

Ticks nice_ticks(double lo, double hi, int target, bool integers) {
  FER_CHECK(std::isfinite(lo) && std::isfinite(hi) && lo <= hi, "nice_ticks: bad range [", lo,
            ", ", hi, "]");
  target = std::max(target, 2);
  const double span = hi > lo ? hi - lo : (lo != 0 ? std::fabs(lo) : 1.0);
  const double raw = span / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;  // the first of 1, 2, 5, 10 (x power) not below the raw step
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * power >= raw * (1 - 1e-9)) {
      step = m * power;
      break;
    }
  if (integers) step = std::max(step, 1.0);

  Ticks t;
  // The number of decimals that writes the step exactly (0.25 -> 2); very small steps
  // switch to %g so 1e-5 is not "0.00001".
  t.decimals = 0;
  for (double s = step; t.decimals < 10 && std::fabs(s - std::round(s)) > 1e-6 * s;
       s *= 10)
    ++t.decimals;
  if (t.decimals > 4) t.decimals = -1;
  const double first = std::floor(lo / step + 1e-9) * step;
  const double last = std::ceil(hi / step - 1e-9) * step;
  for (int i = 0; first + i * step <= last + step * 1e-6 && i < 1000; ++i) {
    double v = first + i * step;
    if (std::fabs(v) < step * 1e-9) v = 0;  // no "-0.0"
    t.values.push_back(v);
  }
  if (t.values.size() == 1) t.values.push_back(t.values[0] + step);
  return t;
}

std::string format_tick(double value, int decimals) {
  char buf[64];
  if (decimals < 0)
    std::snprintf(buf, sizeof buf, "%g", value);
  else
    std::snprintf(buf, sizeof buf, "%.*f", decimals, value);
  return buf;
}

std::string line_chart(const LineChart& chart) {
  for (const Series& s : chart.series)
    FER_CHECK(s.x.size() == s.y.size(), "line chart '", chart.title, "': series '", s.name,
              "' has ", s.x.size(), " x values but ", s.y.size(), " y values");

  // Axis ranges: fixed ones as given; x from the data exactly (the first and last epoch
  // touch the frame); y from the data, widened to the nice ticks around it.
  std::vector<const std::vector<double>*> xs, ys;
  for (const Series& s : chart.series) {
    xs.push_back(&s.x);
    ys.push_back(&s.y);
  }
  double x_lo, x_hi, y_lo, y_hi;
  finite_range(xs, x_lo, x_hi);
  finite_range(ys, y_lo, y_hi);
  if (!std::isnan(chart.x_min)) x_lo = chart.x_min;
  if (!std::isnan(chart.x_max)) x_hi = chart.x_max;
  widen_if_flat(x_lo, x_hi, chart.integer_x);
  const bool y_fixed = !std::isnan(chart.y_min) && !std::isnan(chart.y_max);
  if (!std::isnan(chart.y_min)) y_lo = chart.y_min;
  if (!std::isnan(chart.y_max)) y_hi = chart.y_max;
  widen_if_flat(y_lo, y_hi, false);

  const Ticks x_ticks = nice_ticks(x_lo, x_hi, std::max(2, chart.plot_width / 60),
                                   chart.integer_x);
  Ticks y_ticks = nice_ticks(y_lo, y_hi, std::max(2, chart.plot_height / 45));
  if (!y_fixed) {
    if (std::isnan(chart.y_min)) y_lo = y_ticks.values.front();
    if (std::isnan(chart.y_max)) y_hi = y_ticks.values.back();
  }

  // Margins from the labels they hold.
  const double tick_font = 12, label_font = 13, title_font = 15;
  double y_label_width = 0;
  for (double v : y_ticks.values)
    y_label_width = std::max(y_label_width, text_width(format_tick(v, y_ticks.decimals), tick_font));
  const double x0 = 8 + label_font + 10 + y_label_width + 8;  // y title, gap, tick labels, gap
  const double y0 = 40;
  const double w = chart.plot_width, h = chart.plot_height;
  // Legend entries: a 22 px line sample, a gap, the name. Right of the plot area in one
  // column, or below the x axis title in rows that wrap at the plot's width.
  struct Entry { double x, y; };
  std::vector<Entry> entries;
  double width = x0 + w + 16, height = y0 + h + 50;
  if (chart.legend_below) {
    double lx = x0, ly = y0 + h + 68;
    for (const Series& s : chart.series) {
      const double item = 30 + text_width(s.name, tick_font) + 22;
      if (lx > x0 && lx + item - 22 > x0 + w) {  // wrap to a new row
        lx = x0;
        ly += 20;
      }
      entries.push_back({lx, ly});
      lx += item;
    }
    if (!entries.empty()) height = ly + 14;
  } else {
    double legend_width = 0;
    for (const Series& s : chart.series)
      legend_width = std::max(legend_width, text_width(s.name, tick_font));
    const double legend_x = x0 + w + 18;
    for (size_t i = 0; i < chart.series.size(); ++i) entries.push_back({legend_x, y0 + 10 + 20.0 * i});
    if (!entries.empty()) {
      width = legend_x + 30 + legend_width + 12;
      height = std::max(height, entries.back().y + 20);
    }
  }

  auto map_x = [&](double x) { return x0 + (x - x_lo) / (x_hi - x_lo) * w; };
  auto map_y = [&](double y) { return y0 + h - (y - y_lo) / (y_hi - y_lo) * h; };
  auto inside = [](double v, double lo, double hi) {
    const double eps = (hi - lo) * 1e-9;
    return v >= lo - eps && v <= hi + eps;
  };

  std::string out = svg_open(chart.id, "chart line-chart", width, height);
  out += text(x0 + w / 2, 22, chart.title,
              " text-anchor=\"middle\" font-size=\"" + px(title_font) +
                  "\" font-weight=\"600\" fill=\"" + kTextColor + "\" class=\"title\"");
  out += "<rect class=\"plot-area\" x=\"" + px(x0) + "\" y=\"" + px(y0) + "\" width=\"" + px(w) +
         "\" height=\"" + px(h) + "\" data-x-min=\"" + exact(x_lo) + "\" data-x-max=\"" +
         exact(x_hi) + "\" data-y-min=\"" + exact(y_lo) + "\" data-y-max=\"" + exact(y_hi) +
         "\" fill=\"#fff\" stroke=\"none\"/>\n";

  // Gridlines and tick labels.
  out += "<g class=\"grid\" stroke=\"" + std::string(kGridColor) + "\" stroke-width=\"1\">\n";
  for (double v : x_ticks.values)
    if (inside(v, x_lo, x_hi))
      out += "<line x1=\"" + px(map_x(v)) + "\" y1=\"" + px(y0) + "\" x2=\"" + px(map_x(v)) +
             "\" y2=\"" + px(y0 + h) + "\"/>\n";
  for (double v : y_ticks.values)
    if (inside(v, y_lo, y_hi))
      out += "<line x1=\"" + px(x0) + "\" y1=\"" + px(map_y(v)) + "\" x2=\"" + px(x0 + w) +
             "\" y2=\"" + px(map_y(v)) + "\"/>\n";
  out += "</g>\n<g class=\"ticks\" fill=\"" + std::string(kMutedColor) + "\">\n";
  for (double v : x_ticks.values)
    if (inside(v, x_lo, x_hi))
      out += text(map_x(v), y0 + h + 17, format_tick(v, x_ticks.decimals),
                  " text-anchor=\"middle\"");
  for (double v : y_ticks.values)
    if (inside(v, y_lo, y_hi))
      out += text(x0 - 7, map_y(v) + 4, format_tick(v, y_ticks.decimals),
                  " text-anchor=\"end\"");
  out += "</g>\n";
  out += "<rect x=\"" + px(x0) + "\" y=\"" + px(y0) + "\" width=\"" + px(w) + "\" height=\"" +
         px(h) + "\" fill=\"none\" stroke=\"" + kFrameColor + "\"/>\n";

  // Axis titles.
  out += text(x0 + w / 2, y0 + h + 40, chart.x_label,
              " text-anchor=\"middle\" font-size=\"" + px(label_font) + "\" fill=\"" +
                  kTextColor + "\" class=\"x-label\"");
  const double ty = y0 + h / 2, tx = 8 + label_font;
  out += text(tx, ty, chart.y_label,
              " text-anchor=\"middle\" font-size=\"" + px(label_font) + "\" fill=\"" +
                  kTextColor + "\" class=\"y-label\" transform=\"rotate(-90 " + px(tx) + " " +
                  px(ty) + ")\"");

  // Series: one polyline per run of finite points.
  for (size_t si = 0; si < chart.series.size(); ++si) {
    const Series& s = chart.series[si];
    const std::string color = s.color.empty() ? series_color(static_cast<int>(si)) : s.color;
    const std::string style = " fill=\"none\" stroke=\"" + color +
                              "\" stroke-width=\"2\" stroke-linejoin=\"round\"" +
                              (s.dashed ? " stroke-dasharray=\"6 4\"" : "");
    std::string points, dots;
    auto flush = [&]() {
      if (points.empty()) return;
      out += "<polyline class=\"" + escape(s.css_class) + "\" data-series=\"" + escape(s.name) +
             "\"" + s.attributes + style + " points=\"" + points + "\"/>\n";
      points.clear();
    };
    for (size_t i = 0; i < s.x.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) {
        flush();
        continue;
      }
      const std::string p = px(map_x(s.x[i])) + "," + px(map_y(s.y[i]));
      points += (points.empty() ? "" : " ") + p;
      if (s.markers)
        dots += "<circle cx=\"" + px(map_x(s.x[i])) + "\" cy=\"" + px(map_y(s.y[i])) +
                "\" r=\"3\"/>";
    }
    flush();
    if (!dots.empty()) out += "<g fill=\"" + color + "\">" + dots + "</g>\n";
  }

  // Legend to the right of the plot area: a short line in the series' style, then the name.
  out += "<g class=\"legend\">\n";
  for (size_t si = 0; si < chart.series.size(); ++si) {
    const Series& s = chart.series[si];
    const std::string color = s.color.empty() ? series_color(static_cast<int>(si)) : s.color;
    const double lx = entries[si].x, ly = entries[si].y;
    out += "<line x1=\"" + px(lx) + "\" y1=\"" + px(ly) + "\" x2=\"" + px(lx + 22) + "\" y2=\"" +
           px(ly) + "\" stroke=\"" + color + "\" stroke-width=\"2.5\"" +
           (s.dashed ? " stroke-dasharray=\"6 4\"" : "") + "/>\n";
    out += text(lx + 30, ly + 4, s.name,
                " fill=\"" + std::string(kTextColor) + "\" data-series=\"" + escape(s.name) + "\"");
  }
  out += "</g>\n</svg>\n";
  return out;
}

std::string heatmap(const Heatmap& map) {
  const size_t rows = map.row_labels.size(), cols = map.col_labels.size();
  FER_CHECK(map.values.size() == rows && map.text.size() == rows, "heatmap '", map.title, "': ",
            rows, " row labels but ", map.values.size(), " rows of values and ", map.text.size(),
            " rows of text");
  double v_max = map.v_max;
  for (size_t r = 0; r < rows; ++r) {
    FER_CHECK(map.values[r].size() == cols && map.text[r].size() == cols, "heatmap '", map.title,
              "': row ", r, " has ", map.values[r].size(), " values and ", map.text[r].size(),
              " texts, expected ", cols);
    if (std::isnan(map.v_max))
      for (double v : map.values[r])
        if (std::isfinite(v)) v_max = std::isnan(v_max) ? v : std::max(v_max, v);
  }
  if (!(v_max > 0)) v_max = 1;  // an all-zero matrix: every cell white

  const double font = 12, label_font = 13, title_font = 15, c = map.cell;
  double row_label_width = 0, col_label_width = 0;
  for (const auto& l : map.row_labels) row_label_width = std::max(row_label_width, text_width(l, font));
  for (const auto& l : map.col_labels) col_label_width = std::max(col_label_width, text_width(l, font));
  // Column labels are slanted by 40 degrees: they need sin(40) of their length below the
  // grid and may reach cos(40) of it to the left of their column.
  const double slant = 40 * M_PI / 180;
  const double x0 = std::max(8 + label_font + 10 + row_label_width + 8,
                             col_label_width * std::cos(slant) - c / 2 + 8);
  const double y0 = 40;
  const double grid_w = c * cols, grid_h = c * rows;
  const double below = 10 + col_label_width * std::sin(slant) + 14;  // slanted labels
  const double bar_x = x0 + grid_w + 18, bar_w = 14;
  const std::string top_label = format_tick(v_max, v_max == std::round(v_max) ? 0 : 2);
  const double width = bar_x + bar_w + 8 + std::max(text_width(top_label, font), 20.0) + 10;
  const double height = y0 + grid_h + below + label_font + 14;

  std::string out = svg_open(map.id, "chart heatmap", width, height);
  out += text(x0 + grid_w / 2, 22, map.title,
              " text-anchor=\"middle\" font-size=\"" + px(title_font) +
                  "\" font-weight=\"600\" fill=\"" + kTextColor + "\" class=\"title\"");
  for (size_t r = 0; r < rows; ++r) {
    for (size_t k = 0; k < cols; ++k) {
      const double v = map.values[r][k];
      const double t = std::isfinite(v) ? v / v_max : 0;
      const double x = x0 + c * k, y = y0 + c * r;
      out += "<rect class=\"cell\" data-row=\"" + std::to_string(r) + "\" data-col=\"" +
             std::to_string(k) + "\" data-value=\"" + exact(v) + "\" x=\"" + px(x) + "\" y=\"" +
             px(y) + "\" width=\"" + px(c) + "\" height=\"" + px(c) + "\" fill=\"" + blues(t) +
             "\" stroke=\"#fff\" stroke-width=\"1\"><title>" +
             escape(map.row_labels[r] + " / " + map.col_labels[k] + ": " + map.text[r][k]) +
             "</title></rect>\n";
      // Dark cells get white text; the switch point keeps contrast above ~4.5:1 both ways.
      out += "<text class=\"cell\" data-row=\"" + std::to_string(r) + "\" data-col=\"" +
             std::to_string(k) + "\" x=\"" + px(x + c / 2) + "\" y=\"" + px(y + c / 2 + 4) +
             "\" text-anchor=\"middle\" fill=\"" + (t > 0.55 ? "#fff" : kTextColor) + "\">" +
             escape(map.text[r][k]) + "</text>\n";
    }
  }
  out += "<rect x=\"" + px(x0) + "\" y=\"" + px(y0) + "\" width=\"" + px(grid_w) + "\" height=\"" +
         px(grid_h) + "\" fill=\"none\" stroke=\"" + kFrameColor + "\"/>\n";

  out += "<g class=\"labels\" fill=\"" + std::string(kTextColor) + "\">\n";
  for (size_t r = 0; r < rows; ++r)
    out += text(x0 - 8, y0 + c * r + c / 2 + 4, map.row_labels[r], " text-anchor=\"end\"");
  for (size_t k = 0; k < cols; ++k) {
    const double lx = x0 + c * k + c / 2, ly = y0 + grid_h + 14;
    out += text(lx, ly, map.col_labels[k],
                " text-anchor=\"end\" transform=\"rotate(-40 " + px(lx) + " " + px(ly) + ")\"");
  }
  out += "</g>\n";
  const double ty = y0 + grid_h / 2, tx = 8 + label_font;
  out += text(tx, ty, map.row_title,
              " text-anchor=\"middle\" font-size=\"" + px(label_font) + "\" fill=\"" + kTextColor +
                  "\" transform=\"rotate(-90 " + px(tx) + " " + px(ty) + ")\"");
  out += text(x0 + grid_w / 2, y0 + grid_h + below + label_font, map.col_title,
              " text-anchor=\"middle\" font-size=\"" + px(label_font) + "\" fill=\"" + kTextColor +
                  "\"");

  // Colour bar: 0 at the bottom, v_max at the top, in stacked bands (no gradient ids that
  // could collide between the several SVGs of one page).
  const int bands = 32;
  out += "<g class=\"colour-bar\">\n";
  for (int i = 0; i < bands; ++i) {
    const double band_h = grid_h / bands;
    out += "<rect x=\"" + px(bar_x) + "\" y=\"" + px(y0 + grid_h - band_h * (i + 1)) +
           "\" width=\"" + px(bar_w) + "\" height=\"" + px(band_h + 0.5) + "\" fill=\"" +
           blues((i + 0.5) / bands) + "\"/>";
  }
  out += "\n<rect x=\"" + px(bar_x) + "\" y=\"" + px(y0) + "\" width=\"" + px(bar_w) +
         "\" height=\"" + px(grid_h) + "\" fill=\"none\" stroke=\"" + kFrameColor + "\"/>\n";
  out += text(bar_x + bar_w + 5, y0 + 9, top_label, " fill=\"" + std::string(kMutedColor) + "\"");
  out += text(bar_x + bar_w + 5, y0 + grid_h, "0", " fill=\"" + std::string(kMutedColor) + "\"");
  out += "</g>\n</svg>\n";
  return out;
}

}  // namespace fer::svg
