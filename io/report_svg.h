// The report's drawing kit (io/report.h): reading JSON-lines rows, number formatting, axes,
// line plots and series styles as inline SVG. Internal to io/report*.cpp.
#pragma once
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace cn::report {

using json = nlohmann::json;

// ---- rows ---------------------------------------------------------------------------------

struct Log {
  bool exists = false;
  std::vector<json> rows;
};
Log read_log(const std::string& path);

bool get_num(const json& row, const std::string& key, double* out);  // finite numbers only
bool get_step(const json& row, double* step);
int get_layer(const json& row);  // -1 for null/missing (a row about the whole network)
std::string get_str(const json& row, const std::string& key, const std::string& fallback = "");
std::string layer_name(int layer);
bool is_uint(const std::string& s);

// ---- formatting -----------------------------------------------------------------------------

std::string esc(const std::string& s);
std::string fx(double v);        // an SVG coordinate
std::string num(double v);       // a value for people (%.4g)
std::string step_str(double s);  // an integer step
std::string percent(double share);
std::string nodata(const std::string& what);

// ---- series styles ------------------------------------------------------------------------
// Series i gets colour i mod 10 (Tableau 10) and dash pattern i mod 3: neighbours differ in
// both, and the first 30 series are all distinct pairs.
struct Style {
  std::string color, dash;  // dash "" = solid
};
Style series_style(size_t i);
constexpr size_t kDistinctStyles = 30;

// ---- axes ---------------------------------------------------------------------------------

enum class Scale { linear, log, symlog };

struct Axis {
  Scale scale = Scale::linear;
  double c = 1;           // symlog: linear threshold
  double lo = 0, hi = 1;  // in transformed units

  bool valid(double v) const;
  double t(double v) const;
  double inv(double u) const;
  double frac(double v) const { return (t(v) - lo) / (hi - lo); }  // 0 at lo, 1 at hi
  void fit(double tmin, double tmax, bool pad);
  std::vector<std::pair<double, std::string>> ticks() const;
};

// Ticks no closer than `min_px` on an axis `length_px` long; 0 is kept first.
std::vector<std::pair<double, std::string>> spaced_ticks(const Axis& axis, double length_px, double min_px);
// The symlog threshold for a set of values: the decade of the smallest non-zero |v|, but no
// more than 8 decades under the largest.
double symlog_threshold(const std::vector<double>& values);

// ---- line plots ---------------------------------------------------------------------------

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> pts;  // (x, y)
  std::string color;                           // "" = the plot's style for the series' index
  std::string dash;                            // with color: its dash pattern
  bool right = false;                          // drawn against the right axis
};

struct Marker {  // a vertical line at x with a label (e.g. the step a run diverged)
  double x;
  std::string label;
};

struct PlotOpts {
  PlotOpts() = default;
  PlotOpts(std::string name_, std::string title_, std::string ylabel_, Scale yscale_ = Scale::linear,
           bool unit_interval_ = false)
      : name(std::move(name_)),
        title(std::move(title_)),
        ylabel(std::move(ylabel_)),
        yscale(yscale_),
        unit_interval(unit_interval_) {}
  std::string name, title, ylabel;
  Scale yscale = Scale::linear;
  bool unit_interval = false;  // include [0, 1]
  std::string xlabel = "step";
  bool x_integer_ticks = false;  // x is a layer index: integer ticks
  std::string y2label;           // the right axis (series with right = true); linear
  bool y2_unit_interval = false;
  std::vector<Marker> markers;
};

constexpr double kW = 760, kH = 300, kL = 74, kR = 200, kT = 30, kB = 44;

std::string svg_open(const std::string& name, const std::string& title, double w, double h);
// Legend entries: label, colour, dash; `line` draws a line sample, else a square.
struct LegendEntry {
  std::string label, color, dash;
};
std::string legend(const std::vector<LegendEntry>& entries, double x0, bool line);

// A line plot; "" when no series has a point that the scale can draw.
std::string line_plot(const PlotOpts& o, std::vector<Series> series);
// The plot in a <figure>, or the "no data" line.
std::string plot_or_nodata(const PlotOpts& o, std::vector<Series> series);

// Viridis, u in [0, 1].
std::string viridis(double u);

}  // namespace cn::report
