// The run's HTML report: reads the run directory, draws inline SVG (see report.h).
#include "io/report.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/kinds.h"
#include "core/error.h"
#include "io/files.h"
#include "io/run_layout.h"
#include "io/safetensors.h"

namespace cn {
namespace {

using json = nlohmann::json;

// ---- reading the run directory ----------------------------------------------------------

struct Log {
  bool exists = false;
  std::vector<json> rows;
};

Log read_log(const std::string& path) {
  Log log;
  log.rows = read_jsonl(path, &log.exists);
  return log;
}

bool get_num(const json& row, const std::string& key, double* out) {
  const auto it = row.find(key);
  if (it == row.end() || !it->is_number()) return false;
  const double v = it->get<double>();
  if (!std::isfinite(v)) return false;
  *out = v;
  return true;
}

bool get_step(const json& row, double* step) { return get_num(row, "step", step); }

// The layer index; -1 for null/missing (a row about the whole network).
int get_layer(const json& row) {
  const auto it = row.find("layer");
  if (it != row.end() && it->is_number_integer()) return static_cast<int>(it->get<int64_t>());
  return -1;
}

std::string get_str(const json& row, const std::string& key, const std::string& fallback = "") {
  const auto it = row.find(key);
  return it != row.end() && it->is_string() ? it->get<std::string>() : fallback;
}

std::string layer_name(int layer) { return layer < 0 ? "network" : "layer " + std::to_string(layer); }

bool is_uint(const std::string& s) {
  return !s.empty() && s.size() < 19 && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

// ---- formatting -----------------------------------------------------------------------

std::string esc(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
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

std::string fx(double v) {  // a coordinate
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}

std::string num(double v) {  // a value for people
  if (!std::isfinite(v)) return std::isnan(v) ? "nan" : (v > 0 ? "inf" : "-inf");
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.4g", v);
  return buf;
}

std::string step_str(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.0f", s);
  return buf;
}

const char* color(size_t i) {
  static const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
                                  "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#ad494a", "#637939", "#843c39"};
  return palette[i % (sizeof palette / sizeof palette[0])];
}

std::string nodata(const std::string& what) {
  return "<p class=\"nodata\" data-nodata=\"" + esc(what) + "\">" + esc(what) + ": no data</p>\n";
}

// ---- axes ---------------------------------------------------------------------------------

enum class Scale { linear, log, symlog };

struct Axis {
  Scale scale = Scale::linear;
  double c = 1;           // symlog: linear threshold
  double lo = 0, hi = 1;  // in transformed units

  bool valid(double v) const { return std::isfinite(v) && (scale != Scale::log || v > 0); }
  double t(double v) const {
    switch (scale) {
      case Scale::log:
        return std::log10(v);
      case Scale::symlog:
        return (v < 0 ? -1 : 1) * std::log10(1 + std::fabs(v) / c);
      default:
        return v;
    }
  }
  double inv(double u) const {
    switch (scale) {
      case Scale::log:
        return std::pow(10.0, u);
      case Scale::symlog:
        return (u < 0 ? -1 : 1) * c * (std::pow(10.0, std::fabs(u)) - 1);
      default:
        return u;
    }
  }
  // Fraction of the axis length, 0 at lo.
  double frac(double v) const { return (t(v) - lo) / (hi - lo); }

  void fit(double tmin, double tmax, bool pad) {
    if (!(tmax > tmin)) {
      const double w = scale == Scale::linear ? std::max(std::fabs(tmin) * 0.1, 1e-12) : 0.5;
      tmin -= w;
      tmax += w;
    } else if (pad) {
      const double p = 0.04 * (tmax - tmin);
      tmin -= p;
      tmax += p;
    }
    lo = tmin;
    hi = tmax;
  }

  // Tick positions (values) and labels.
  std::vector<std::pair<double, std::string>> ticks() const {
    std::vector<std::pair<double, std::string>> out;
    if (scale == Scale::linear) {
      const double range = hi - lo;
      const double raw = range / 5;
      const double mag = std::pow(10.0, std::floor(std::log10(raw)));
      double step = mag;
      for (double m : {1.0, 2.0, 5.0, 10.0})
        if (raw <= m * mag) {
          step = m * mag;
          break;
        }
      for (double v = std::ceil(lo / step) * step; v <= hi + 1e-9 * range; v += step)
        out.emplace_back(std::fabs(v) < 1e-12 * range ? 0.0 : v, num(std::fabs(v) < 1e-12 * range ? 0.0 : v));
      return out;
    }
    if (scale == Scale::log) {
      const int a = static_cast<int>(std::floor(lo)), b = static_cast<int>(std::ceil(hi));
      const bool fine = hi - lo <= 2.5;  // few decades: 1, 2, 5 x 10^k
      const int every = std::max(1, (b - a + 1 + 7) / 8);
      for (int k = a; k <= b; ++k) {
        if ((k - a) % every != 0) continue;
        for (double m : fine ? std::vector<double>{1, 2, 5} : std::vector<double>{1}) {
          const double v = m * std::pow(10.0, k);
          const double u = std::log10(v);
          if (u >= lo - 1e-9 && u <= hi + 1e-9) out.emplace_back(v, num(v));
        }
      }
      if (out.size() < 2) {  // under a factor of ~2.5: label the ends too
        out.emplace_back(inv(lo), num(inv(lo)));
        out.emplace_back(inv(hi), num(inv(hi)));
      }
      return out;
    }
    // symlog: 0 and +-c*10^k
    std::vector<double> vals;
    if (lo <= 0 && hi >= 0) vals.push_back(0);
    const double top = std::max(std::fabs(lo), std::fabs(hi));
    const int kmax = static_cast<int>(std::ceil(top)) + 1;
    int every = std::max(1, (kmax + 3) / 4);
    for (int k = 0; k <= kmax; k += every)
      for (double s : {1.0, -1.0}) {
        const double v = s * c * std::pow(10.0, k);
        const double u = t(v);
        if (u >= lo && u <= hi) vals.push_back(v);
      }
    std::sort(vals.begin(), vals.end());
    for (double v : vals) out.emplace_back(v, num(v));
    return out;
  }
};

// Ticks no closer than `min_px` on an axis `length_px` long; 0 is kept first.
std::vector<std::pair<double, std::string>> spaced_ticks(const Axis& axis, double length_px, double min_px) {
  std::vector<std::pair<double, std::string>> all = axis.ticks(), kept;
  std::stable_sort(all.begin(), all.end(),
                   [](const auto& a, const auto& b) { return (a.first == 0) > (b.first == 0); });
  std::vector<double> at;
  for (const auto& t : all) {
    const double p = axis.frac(t.first) * length_px;
    if (std::any_of(at.begin(), at.end(), [&](double q) { return std::fabs(p - q) < min_px; })) continue;
    at.push_back(p);
    kept.push_back(t);
  }
  std::sort(kept.begin(), kept.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  return kept;
}

// The symlog threshold for a set of values: the decade of the smallest non-zero |v|, but no
// more than 8 decades under the largest.
double symlog_threshold(const std::vector<double>& values) {
  double mx = 0, mn = DBL_MAX;
  for (double v : values)
    if (std::isfinite(v) && v != 0) {
      mx = std::max(mx, std::fabs(v));
      mn = std::min(mn, std::fabs(v));
    }
  if (mx == 0) return 1;
  mn = std::max(mn, mx * 1e-8);
  return std::pow(10.0, std::floor(std::log10(mn)));
}

// ---- plots ------------------------------------------------------------------------------

struct Series {
  std::string label;
  std::vector<std::pair<double, double>> pts;  // (step, value)
  std::string color;
};

struct PlotOpts {
  std::string name, title, ylabel;
  Scale yscale = Scale::linear;
  bool unit_interval = false;  // include [0, 1]
};

constexpr double kW = 760, kH = 300, kL = 74, kR = 200, kT = 30, kB = 44;

std::string svg_open(const std::string& name, const std::string& title, double w, double h) {
  return "<svg class=\"plot\" data-plot=\"" + esc(name) + "\" viewBox=\"0 0 " + fx(w) + " " + fx(h) + "\" width=\"" +
         fx(w) + "\" height=\"" + fx(h) + "\" role=\"img\" aria-label=\"" + esc(title) + "\">\n" +
         "<text class=\"title\" x=\"" + fx(kL) + "\" y=\"18\">" + esc(title) + "</text>\n";
}

// Axes frame, grid and labels for a plot area at (kL, kT) of size pw x ph.
std::string draw_axes(const Axis& x, const Axis& y, double pw, double ph, const std::string& xlabel,
                      const std::string& ylabel, bool x_is_step) {
  std::ostringstream s;
  for (const auto& [v, label] : spaced_ticks(y, ph, 13)) {
    const double py = kT + ph * (1 - y.frac(v));
    s << "<line class=\"grid\" x1=\"" << fx(kL) << "\" x2=\"" << fx(kL + pw) << "\" y1=\"" << fx(py) << "\" y2=\""
      << fx(py) << "\"/><text class=\"tick\" x=\"" << fx(kL - 5) << "\" y=\"" << fx(py + 4) << "\" text-anchor=\"end\">"
      << esc(label) << "</text>\n";
  }
  for (const auto& [v, label] : spaced_ticks(x, pw, 40)) {
    const double px = kL + pw * x.frac(v);
    s << "<line class=\"grid\" x1=\"" << fx(px) << "\" x2=\"" << fx(px) << "\" y1=\"" << fx(kT) << "\" y2=\""
      << fx(kT + ph) << "\"/><text class=\"tick\" x=\"" << fx(px) << "\" y=\"" << fx(kT + ph + 15)
      << "\" text-anchor=\"middle\">" << esc(x_is_step ? step_str(v) : label) << "</text>\n";
  }
  s << "<rect class=\"frame\" x=\"" << fx(kL) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(pw) << "\" height=\""
    << fx(ph) << "\"/>\n";
  s << "<text class=\"label\" x=\"" << fx(kL + pw / 2) << "\" y=\"" << fx(kT + ph + 34) << "\" text-anchor=\"middle\">"
    << esc(xlabel) << "</text>\n";
  s << "<text class=\"label\" transform=\"translate(14," << fx(kT + ph / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(ylabel) << "</text>\n";
  return s.str();
}

std::string legend(const std::vector<std::pair<std::string, std::string>>& entries, double x0) {
  std::ostringstream s;
  const size_t shown = std::min<size_t>(entries.size(), 16);
  for (size_t i = 0; i < shown; ++i) {
    const double y = kT + 6 + 15 * i;
    s << "<rect class=\"legend\" x=\"" << fx(x0) << "\" y=\"" << fx(y) << "\" width=\"10\" height=\"10\" fill=\""
      << entries[i].second << "\"/><text class=\"legend-text\" x=\"" << fx(x0 + 15) << "\" y=\"" << fx(y + 9) << "\">"
      << esc(entries[i].first) << "</text>\n";
  }
  if (entries.size() > shown)
    s << "<text class=\"legend-text\" x=\"" << fx(x0) << "\" y=\"" << fx(kT + 6 + 15 * shown + 9) << "\">… "
      << entries.size() - shown << " more</text>\n";
  return s.str();
}

// A line plot; "" when no series has a point that the scale can draw.
std::string line_plot(const PlotOpts& o, std::vector<Series> series) {
  Axis x, y;
  y.scale = o.yscale;
  if (y.scale == Scale::symlog) {
    std::vector<double> all;
    for (const auto& s : series)
      for (const auto& p : s.pts) all.push_back(p.second);
    y.c = symlog_threshold(all);
  }
  double xmin = DBL_MAX, xmax = -DBL_MAX, ymin = DBL_MAX, ymax = -DBL_MAX;
  size_t drawable = 0;
  for (auto& s : series) {
    std::vector<std::pair<double, double>> keep;
    for (const auto& p : s.pts)
      if (std::isfinite(p.first) && y.valid(p.second)) keep.push_back(p);
    std::stable_sort(keep.begin(), keep.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    if (keep.size() > 1500) {  // thin long series; keep the last point
      std::vector<std::pair<double, double>> thin;
      const size_t stride = (keep.size() + 1499) / 1500;
      for (size_t i = 0; i < keep.size(); i += stride) thin.push_back(keep[i]);
      if (thin.back() != keep.back()) thin.push_back(keep.back());
      keep.swap(thin);
    }
    s.pts.swap(keep);
    for (const auto& p : s.pts) {
      xmin = std::min(xmin, p.first);
      xmax = std::max(xmax, p.first);
      ymin = std::min(ymin, y.t(p.second));
      ymax = std::max(ymax, y.t(p.second));
      ++drawable;
    }
  }
  if (drawable == 0) return "";
  if (o.unit_interval) {
    ymin = std::min(ymin, 0.0);
    ymax = std::max(ymax, 1.0);
  }
  x.fit(xmin, xmax, false);
  if (!(xmax > xmin)) x.fit(xmin - 1, xmax + 1, false);
  y.fit(ymin, ymax, !o.unit_interval);
  const double pw = kW - kL - kR, ph = kH - kT - kB;

  std::ostringstream s;
  s << svg_open(o.name, o.title, kW, kH);
  s << draw_axes(x, y, pw, ph, "step",
                 o.ylabel + (o.yscale == Scale::log      ? " (log)"
                             : o.yscale == Scale::symlog ? " (symlog)"
                                                         : ""),
                 true);
  std::vector<std::pair<std::string, std::string>> entries;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& sr = series[i];
    if (sr.pts.empty()) continue;
    const std::string col = sr.color.empty() ? color(i) : sr.color;
    entries.emplace_back(sr.label, col);
    auto px = [&](double v) { return kL + pw * x.frac(v); };
    auto py = [&](double v) { return kT + ph * (1 - y.frac(v)); };
    if (sr.pts.size() > 1) {
      s << "<path class=\"mark line\" data-series=\"" << esc(sr.label) << "\" fill=\"none\" stroke=\"" << col
        << "\" d=\"";
      for (size_t k = 0; k < sr.pts.size(); ++k)
        s << (k ? " L" : "M") << fx(px(sr.pts[k].first)) << " " << fx(py(sr.pts[k].second));
      s << "\"><title>" << esc(sr.label) << "</title></path>\n";
    }
    if (sr.pts.size() <= 60)
      for (const auto& p : sr.pts)
        s << "<circle class=\"mark point\" cx=\"" << fx(px(p.first)) << "\" cy=\"" << fx(py(p.second))
          << "\" r=\"2.6\" fill=\"" << col << "\"><title>" << esc(sr.label) << ": step " << step_str(p.first) << ", "
          << num(p.second) << "</title></circle>\n";
  }
  s << legend(entries, kL + pw + 12);
  s << "</svg>\n";
  return s.str();
}

// Plot or "no data" line.
std::string plot_or_nodata(const PlotOpts& o, std::vector<Series> series) {
  const std::string svg = line_plot(o, std::move(series));
  return svg.empty() ? nodata(o.title) : "<figure>" + svg + "</figure>\n";
}

// Series of `key` per layer from per-layer rows (stats.jsonl).
std::vector<Series> per_layer(const std::vector<json>& rows, const std::string& key) {
  std::map<int, Series> by_layer;
  for (const json& r : rows) {
    double st, v;
    if (!get_step(r, &st) || !get_num(r, key, &v)) continue;
    const int layer = get_layer(r);
    Series& s = by_layer[layer];
    s.label = layer_name(layer);
    s.color = layer < 0 ? "#000000" : color(static_cast<size_t>(layer));
    s.pts.emplace_back(st, v);
  }
  std::vector<Series> out;
  for (auto& [layer, s] : by_layer) out.push_back(std::move(s));
  return out;
}

// ---- spectra heat maps ------------------------------------------------------------------

struct SpectrumAtStep {
  std::vector<double> eigenvalues;
  std::vector<double> grid, density;
};

// (kind, layer or -1) → step → spectrum
using Spectra = std::map<std::pair<std::string, int>, std::map<int64_t, SpectrumAtStep>>;

// Eigenvalue spectra (`<kind>.<i>.eigenvalues`, `density_grid`, `density`) and, into
// `singular`, singular values (`weights.<i>.singular_values`, `grads.<i>.singular_values`).
Spectra read_spectra(const std::string& dir, Spectra* singular, std::vector<std::string>* problems) {
  Spectra out;
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) return out;
  for (const auto& [step, path] : step_entries(dir, ".safetensors", /*directories=*/false)) {
    try {
      for (const auto& [name, t] : read_safetensors(path)) {
        const size_t d1 = name.find('.');
        if (d1 == std::string::npos) continue;
        const std::string kind = name.substr(0, d1), rest = name.substr(d1 + 1);
        int layer = -1;
        std::string what = rest;
        const size_t d2 = rest.find('.');
        if (d2 != std::string::npos && is_uint(rest.substr(0, d2))) {
          layer = std::stoi(rest.substr(0, d2));
          what = rest.substr(d2 + 1);
        }
        if (what == "singular_values") {
          (*singular)[{kind, layer}][step].eigenvalues = safetensor_values<double>(t, path, name);
          continue;
        }
        if (what != "eigenvalues" && what != "density_grid" && what != "density") continue;
        std::vector<double> v = safetensor_values<double>(t, path, name);
        SpectrumAtStep& sp = out[{kind, layer}][step];
        (what == "eigenvalues" ? sp.eigenvalues : what == "density_grid" ? sp.grid : sp.density) = std::move(v);
      }
    } catch (const Error& e) {
      problems->push_back(e.what());
    }
  }
  return out;
}

// Viridis, u in [0, 1].
std::string viridis(double u) {
  static const double stops[5][3] = {{68, 1, 84}, {59, 82, 139}, {33, 145, 140}, {94, 201, 98}, {253, 231, 37}};
  u = std::min(1.0, std::max(0.0, u)) * 4;
  const int i = std::min(3, static_cast<int>(u));
  const double f = u - i;
  char buf[8];
  std::snprintf(buf, sizeof buf, "#%02x%02x%02x", static_cast<int>(stops[i][0] + f * (stops[i + 1][0] - stops[i][0])),
                static_cast<int>(stops[i][1] + f * (stops[i + 1][1] - stops[i][1])),
                static_cast<int>(stops[i][2] + f * (stops[i + 1][2] - stops[i][2])));
  return buf;
}

double share_to_unit(double share) { return std::min(1.0, std::max(0.0, (std::log10(share) + 4) / 4)); }

// A heat map of the eigenvalue density over checkpoints on a shared symlog axis; "" when
// no step has a finite eigenvalue or density.
std::string spectrum_heatmap(const std::string& name, const std::string& title,
                             const std::map<int64_t, SpectrumAtStep>& steps, const std::string& what = "eigenvalue") {
  constexpr int kBins = 48;
  std::vector<double> all;
  for (const auto& [step, sp] : steps) {
    if (!sp.eigenvalues.empty()) {
      for (double v : sp.eigenvalues)
        if (std::isfinite(v)) all.push_back(v);
    } else if (!sp.grid.empty() && sp.grid.size() == sp.density.size()) {
      for (size_t i = 0; i < sp.grid.size(); ++i)
        if (std::isfinite(sp.grid[i]) && std::isfinite(sp.density[i]) && sp.density[i] > 0) all.push_back(sp.grid[i]);
    }
  }
  if (all.empty()) return "";
  Axis y;
  y.scale = Scale::symlog;
  double mx = 0;
  for (double v : all) mx = std::max(mx, std::fabs(v));
  y.c = mx > 0 ? std::pow(10.0, std::floor(std::log10(mx)) - 4) : 1.0;
  double tmin = 0, tmax = 0;
  for (double v : all) {
    tmin = std::min(tmin, y.t(v));
    tmax = std::max(tmax, y.t(v));
  }
  if (tmax - tmin < 1e-9) {
    tmin = -1;
    tmax = 1;
  }
  // A hair of room so the extremes fall inside the outer bins.
  const double pad = 1e-6 * (tmax - tmin);
  y.lo = tmin - pad;
  y.hi = tmax + pad;
  auto bin_of = [&](double v) {
    const int b = static_cast<int>(std::floor(y.frac(v) * kBins));
    return std::min(kBins - 1, std::max(0, b));
  };

  struct Column {
    int64_t step;
    std::vector<double> share;
    double n;
    bool from_density;
  };
  std::vector<Column> cols;
  for (const auto& [step, sp] : steps) {
    Column c{step, std::vector<double>(kBins, 0.0), 0, false};
    double total = 0;
    if (!sp.eigenvalues.empty()) {
      for (double v : sp.eigenvalues)
        if (std::isfinite(v)) {
          c.share[bin_of(v)] += 1;
          total += 1;
        }
      c.n = total;
    } else if (!sp.grid.empty() && sp.grid.size() == sp.density.size()) {
      c.from_density = true;
      const size_t m = sp.grid.size();
      for (size_t i = 0; i < m; ++i) {
        if (!std::isfinite(sp.grid[i]) || !std::isfinite(sp.density[i]) || sp.density[i] <= 0) continue;
        const double lo = i > 0 ? sp.grid[i - 1] : sp.grid[i];
        const double hi = i + 1 < m ? sp.grid[i + 1] : sp.grid[i];
        const double width = m > 1 ? std::fabs(hi - lo) / ((i > 0 && i + 1 < m) ? 2 : 1) : 1.0;
        const double w = sp.density[i] * (width > 0 ? width : 1.0);
        c.share[bin_of(sp.grid[i])] += w;
        total += w;
      }
    }
    if (total <= 0) continue;
    for (double& v : c.share) v /= total;
    cols.push_back(std::move(c));
  }
  if (cols.empty()) return "";

  constexpr double W = 760, H = 280, R = 130;
  const double pw = W - kL - R, ph = H - kT - kB;
  const double cw = pw / cols.size(), bh = ph / kBins;
  std::ostringstream s;
  s << svg_open(name, title, W, H);
  s << "<rect class=\"frame heat-bg\" x=\"" << fx(kL) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(pw)
    << "\" height=\"" << fx(ph) << "\"/>\n";
  for (size_t ci = 0; ci < cols.size(); ++ci) {
    const Column& c = cols[ci];
    for (int b = 0; b < kBins; ++b) {
      if (c.share[b] <= 0) continue;
      const double lo = y.inv(y.lo + (y.hi - y.lo) * b / kBins), hi = y.inv(y.lo + (y.hi - y.lo) * (b + 1) / kBins);
      s << "<rect class=\"mark cell\" x=\"" << fx(kL + cw * ci) << "\" y=\"" << fx(kT + ph - bh * (b + 1))
        << "\" width=\"" << fx(std::max(cw, 0.5)) << "\" height=\"" << fx(bh) << "\" fill=\""
        << viridis(share_to_unit(c.share[b])) << "\"><title>step " << c.step << ": λ in [" << num(lo) << ", " << num(hi)
        << "): "
        << (c.from_density
                ? ""
                : std::to_string(static_cast<int64_t>(std::llround(c.share[b] * c.n))) + " of " + step_str(c.n) + ", ")
        << num(100 * c.share[b]) << "%</title></rect>\n";
    }
  }
  // y ticks, the zero line, x labels
  for (const auto& [v, label] : spaced_ticks(y, ph, 13)) {
    const double py = kT + ph * (1 - y.frac(v));
    s << "<line class=\"" << (v == 0 ? "zero" : "tickmark") << "\" x1=\"" << fx(kL - 4) << "\" x2=\""
      << fx(v == 0 ? kL + pw : kL) << "\" y1=\"" << fx(py) << "\" y2=\"" << fx(py) << "\"/><text class=\"tick\" x=\""
      << fx(kL - 6) << "\" y=\"" << fx(py + 4) << "\" text-anchor=\"end\">" << esc(label) << "</text>\n";
  }
  const size_t every = std::max<size_t>(1, (cols.size() + 9) / 10);
  for (size_t ci = 0; ci < cols.size(); ci += every)
    s << "<text class=\"tick\" x=\"" << fx(kL + cw * (ci + 0.5)) << "\" y=\"" << fx(kT + ph + 15)
      << "\" text-anchor=\"middle\">" << cols[ci].step << "</text>\n";
  s << "<text class=\"label\" x=\"" << fx(kL + pw / 2) << "\" y=\"" << fx(kT + ph + 34)
    << "\" text-anchor=\"middle\">checkpoint step</text>\n";
  s << "<text class=\"label\" transform=\"translate(14," << fx(kT + ph / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(what) << " (symlog, linear within ±" << esc(num(y.c)) << ")</text>\n";
  // colour bar: share of the checkpoint's eigenvalues per bin, 1e-4 .. 1 (log)
  const double bx = kL + pw + 20;
  for (int k = 0; k < 20; ++k) {
    const double u0 = 1 - (k + 1) / 20.0;
    s << "<rect class=\"colorbar\" x=\"" << fx(bx) << "\" y=\"" << fx(kT + ph * k / 20.0) << "\" width=\"12\" height=\""
      << fx(ph / 20.0 + 0.5) << "\" fill=\"" << viridis(u0 + 0.025) << "\"/>\n";
  }
  for (int e = 0; e >= -4; --e)
    s << "<text class=\"tick\" x=\"" << fx(bx + 16) << "\" y=\"" << fx(kT + ph * (-e) / 4.0 + 4) << "\">"
      << num(std::pow(10.0, e)) << "</text>\n";
  s << "<text class=\"tick\" x=\"" << fx(bx) << "\" y=\"" << fx(kT - 6) << "\">share</text>\n";
  s << "</svg>\n";
  return s.str();
}

// ---- alarms -------------------------------------------------------------------------------

const std::vector<std::string>& known_rules() { return alarm_rule_names(); }

std::string rule_color(const std::string& rule, std::map<std::string, size_t>& extra) {
  const auto& rules = known_rules();
  const auto it = std::find(rules.begin(), rules.end(), rule);
  if (it != rules.end()) return color(static_cast<size_t>(it - rules.begin()));
  if (!extra.count(rule)) extra[rule] = extra.size();
  return color(rules.size() + extra[rule]);
}

std::string alarm_timeline(const std::vector<json>& alarms) {
  std::set<int> layers;
  double xmin = DBL_MAX, xmax = -DBL_MAX;
  for (const json& a : alarms) {
    double st;
    if (!get_step(a, &st)) continue;
    layers.insert(get_layer(a));
    xmin = std::min(xmin, st);
    xmax = std::max(xmax, st);
  }
  if (layers.empty()) return "";
  std::vector<int> rows(layers.begin(), layers.end());
  Axis x;
  x.fit(xmin, xmax, true);
  if (!(xmax > xmin)) x.fit(xmin - 1, xmax + 1, false);
  const double pw = kW - kL - kR, rowh = 22;
  const double ph = rowh * rows.size() + 10;
  const double H = kT + ph + kB;
  std::ostringstream s;
  s << svg_open("alarms", "alarms over training", kW, H);
  for (size_t r = 0; r < rows.size(); ++r) {
    const double py = kT + 5 + rowh * (r + 0.5);
    s << "<line class=\"grid\" x1=\"" << fx(kL) << "\" x2=\"" << fx(kL + pw) << "\" y1=\"" << fx(py) << "\" y2=\""
      << fx(py) << "\"/><text class=\"tick\" x=\"" << fx(kL - 5) << "\" y=\"" << fx(py + 4) << "\" text-anchor=\"end\">"
      << esc(layer_name(rows[r])) << "</text>\n";
  }
  for (const auto& [v, label] : x.ticks()) {
    const double px = kL + pw * x.frac(v);
    s << "<text class=\"tick\" x=\"" << fx(px) << "\" y=\"" << fx(kT + ph + 15) << "\" text-anchor=\"middle\">"
      << step_str(v) << "</text>\n";
  }
  s << "<rect class=\"frame\" x=\"" << fx(kL) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(pw) << "\" height=\""
    << fx(ph) << "\"/>\n";
  s << "<text class=\"label\" x=\"" << fx(kL + pw / 2) << "\" y=\"" << fx(kT + ph + 34)
    << "\" text-anchor=\"middle\">step</text>\n";
  std::map<std::string, size_t> extra;
  std::vector<std::pair<std::string, std::string>> entries;
  std::set<std::string> seen;
  for (const json& a : alarms) {
    double st;
    if (!get_step(a, &st)) continue;
    const int layer = get_layer(a);
    const size_t r = static_cast<size_t>(std::find(rows.begin(), rows.end(), layer) - rows.begin());
    const std::string rule = get_str(a, "rule", "alarm");
    const std::string col = rule_color(rule, extra);
    if (seen.insert(rule).second) entries.emplace_back(rule, col);
    std::string msg = get_str(a, "message");
    double v, th;
    if (get_num(a, "value", &v)) msg += (msg.empty() ? "" : "; ") + std::string("value ") + num(v);
    if (get_num(a, "threshold", &th)) msg += ", threshold " + num(th);
    s << "<circle class=\"mark alarm\" data-rule=\"" << esc(rule) << "\" cx=\"" << fx(kL + pw * x.frac(st))
      << "\" cy=\"" << fx(kT + 5 + rowh * (r + 0.5)) << "\" r=\"4.5\" fill=\"" << col << "\"><title>step "
      << step_str(st) << ", " << esc(layer_name(layer)) << ": " << esc(rule) << (msg.empty() ? "" : " — ") << esc(msg)
      << "</title></circle>\n";
  }
  s << legend(entries, kL + pw + 12);
  s << "</svg>\n";
  return s.str();
}

// ---- page --------------------------------------------------------------------------------

const char* kStyle = R"CSS(
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 24px auto;
       max-width: 1100px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 32px; }
h3 { font-size: 15px; }
figure { margin: 8px 0; }
svg.plot { background: #fff; display: block; max-width: 100%; height: auto; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .frame { fill: none; stroke: #999; }
svg .heat-bg { fill: #f4f4f4; }
svg .zero { stroke: #fff; stroke-dasharray: 3 3; }
svg .tickmark { stroke: #999; }
svg text { font-size: 11px; fill: #333; }
svg .title { font-size: 13px; font-weight: 600; }
svg .label { font-size: 12px; }
svg path.line { stroke-width: 1.6; }
.nodata { color: #888; font-style: italic; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.healthy { color: #1a7f37; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
.kind-grid figure { display: inline-block; vertical-align: top; }
)CSS";

std::string kv_table(const std::vector<std::pair<std::string, std::string>>& rows, const std::string& name) {
  std::ostringstream s;
  s << "<table data-table=\"" << esc(name) << "\">\n";
  for (const auto& [k, v] : rows) s << "<tr><th>" << esc(k) << "</th><td>" << esc(v) << "</td></tr>\n";
  s << "</table>\n";
  return s.str();
}

std::string json_scalar_text(const json& v) {
  if (v.is_string()) return v.get<std::string>();
  if (v.is_number_float()) return num(v.get<double>());
  return v.dump();
}

// Eval metric columns other than loss, in order of first appearance.
std::vector<std::string> eval_metrics(const std::vector<json>& rows) {
  std::vector<std::string> names;
  for (const json& r : rows)
    for (auto it = r.begin(); it != r.end(); ++it) {
      const std::string& k = it.key();
      if (k == "step" || k == "epoch" || k == "split" || k == "loss" || ends_with(k, "_status")) continue;
      if (!it->is_number() && !it->is_null()) continue;
      if (std::find(names.begin(), names.end(), k) == names.end()) names.push_back(k);
    }
  return names;
}

std::string section_loss(const Log& metrics, const Log& eval) {
  std::ostringstream s;
  s << "<section id=\"loss\" data-section=\"loss\"><h2>Loss and quality</h2>\n";
  std::vector<Series> loss;
  Series train{"train loss", {}, "#1f77b4"};
  for (const json& r : metrics.rows) {
    double st, v;
    if (get_step(r, &st) && get_num(r, "loss", &v)) train.pts.emplace_back(st, v);
  }
  loss.push_back(train);
  std::map<std::string, Series> split_loss;
  for (const json& r : eval.rows) {
    double st, v;
    if (!get_step(r, &st) || !get_num(r, "loss", &v)) continue;
    const std::string split = get_str(r, "split", "eval");
    Series& sr = split_loss[split];
    sr.label = split + " loss";
    sr.color = split == "val" ? "#ff7f0e" : split == "test" ? "#d62728" : "#9467bd";
    sr.pts.emplace_back(st, v);
  }
  for (auto& [k, sr] : split_loss) loss.push_back(sr);
  bool positive = true;
  for (const auto& sr : loss)
    for (const auto& p : sr.pts) positive = positive && p.second > 0;
  s << plot_or_nodata({"loss", "loss", "loss", positive ? Scale::log : Scale::linear, false}, loss);

  const std::vector<std::string> metrics_names = eval_metrics(eval.rows);
  if (metrics_names.empty()) s << nodata("quality metrics (eval.jsonl)");
  for (const std::string& m : metrics_names) {
    std::map<std::string, Series> by_split;
    for (const json& r : eval.rows) {
      double st, v;
      if (!get_step(r, &st) || !get_num(r, m, &v)) continue;
      const std::string split = get_str(r, "split", "eval");
      Series& sr = by_split[split];
      sr.label = split;
      sr.color = split == "val" ? "#ff7f0e" : split == "test" ? "#d62728" : "#9467bd";
      sr.pts.emplace_back(st, v);
    }
    std::vector<Series> ser;
    for (auto& [k, sr] : by_split) ser.push_back(sr);
    const bool unit = m == "accuracy" || m == "precision" || m == "recall" || m == "f1" || m == "auc";
    s << plot_or_nodata({"quality/" + m, m, m, Scale::linear, unit}, ser);
  }

  Series lr{"lr", {}, "#2ca02c"};
  Series gn{"grad_norm (before clipping)", {}, "#1f77b4"}, gc{"grad_norm_clipped", {}, "#ff7f0e"};
  for (const json& r : metrics.rows) {
    double st, v;
    if (!get_step(r, &st)) continue;
    if (get_num(r, "lr", &v)) lr.pts.emplace_back(st, v);
    if (get_num(r, "grad_norm", &v)) gn.pts.emplace_back(st, v);
    if (get_num(r, "grad_norm_clipped", &v)) gc.pts.emplace_back(st, v);
  }
  s << plot_or_nodata({"lr", "learning rate", "lr", Scale::linear, false}, {lr});
  s << plot_or_nodata({"grad_norm", "whole-network gradient norm", "‖g‖₂", Scale::log, false}, {gn, gc});
  s << "</section>\n";
  return s.str();
}

std::string section_layers(const Log& stats) {
  std::ostringstream s;
  s << "<section id=\"layers\" data-section=\"layers\"><h2>Layers: gradients and updates</h2>\n";
  if (stats.rows.empty()) {
    s << nodata("per-layer statistics (stats.jsonl)") << "</section>\n";
    return s.str();
  }
  s << plot_or_nodata({"layer/grad_l2", "gradient norm per layer", "‖∇W‖₂", Scale::log, false},
                      per_layer(stats.rows, "grad_l2"));
  s << plot_or_nodata({"layer/update_ratio", "update ratio per layer", "‖Δw‖/‖w‖", Scale::log, false},
                      per_layer(stats.rows, "update_ratio"));
  s << plot_or_nodata({"layer/weight_norm", "weight norm per layer", "‖W‖₂", Scale::log, false},
                      per_layer(stats.rows, "weight_norm"));
  s << "</section>\n";
  return s.str();
}

std::string section_activations(const Log& stats) {
  std::ostringstream s;
  s << "<section id=\"activations\" data-section=\"activations\"><h2>Activation health</h2>\n";
  if (stats.rows.empty()) {
    s << nodata("activation statistics (stats.jsonl)") << "</section>\n";
    return s.str();
  }
  s << plot_or_nodata({"activation/dead_share", "dead units (share per layer)", "dead share", Scale::linear, true},
                      per_layer(stats.rows, "dead_share"));
  s << plot_or_nodata(
      {"activation/saturated_share", "saturated units (share per layer)", "saturated share", Scale::linear, true},
      per_layer(stats.rows, "saturated_share"));
  s << "</section>\n";
  return s.str();
}

std::string section_curvature(const Log& diag) {
  std::ostringstream s;
  s << "<section id=\"curvature\" data-section=\"curvature\"><h2>Curvature</h2>\n";
  if (diag.rows.empty()) {
    s << nodata("curvature diagnostics (diagnostics.jsonl)") << "</section>\n";
    return s.str();
  }
  auto series_of = [&](const std::string& key) {
    std::map<std::pair<std::string, int>, Series> m;
    for (const json& r : diag.rows) {
      double st, v;
      if (!get_step(r, &st) || !get_num(r, key, &v)) continue;
      const std::string kind = get_str(r, "kind", "?");
      const int layer = get_layer(r);
      Series& sr = m[{kind, layer}];
      sr.label = kind + (layer < 0 ? "" : " L" + std::to_string(layer));
      sr.pts.emplace_back(st, v);
    }
    std::vector<Series> out;
    for (auto& [k, sr] : m) out.push_back(sr);
    return out;
  };
  s << plot_or_nodata({"curvature/lambda_max", "largest eigenvalue λmax", "λmax", Scale::symlog, false},
                      series_of("lambda_max"));
  s << plot_or_nodata({"curvature/condition", "condition number", "κ", Scale::log, false}, series_of("condition"));
  s << "</section>\n";
  return s.str();
}

std::string section_spectra(const Spectra& spectra, const std::vector<std::string>& problems) {
  std::ostringstream s;
  s << "<section id=\"spectra\" data-section=\"spectra\"><h2>Eigenvalue spectra over checkpoints</h2>\n";
  s << "<p>Per checkpoint (column), the share of the layer's eigenvalues in each bin of a symlog axis shared by "
       "all checkpoints of the plot (colour, log scale). From <code>spectra/step_N.safetensors</code>: "
       "<code>&lt;kind&gt;.&lt;layer&gt;.eigenvalues</code>, or the estimated density "
       "(<code>density_grid</code>/<code>density</code>) where no full spectrum was computed.</p>\n";
  for (const std::string& p : problems) s << "<p class=\"nodata\">unreadable: " << esc(p) << "</p>\n";
  if (spectra.empty()) {
    s << nodata("spectra (spectra/step_N.safetensors)") << "</section>\n";
    return s.str();
  }
  // Kinds in the config's order (loss local ggn kfac ... full_top), others after by name.
  static const std::vector<std::string> order = [] {
    std::vector<std::string> o;
    for (CurvatureKind k : {CurvatureKind::loss, CurvatureKind::local, CurvatureKind::ggn, CurvatureKind::kfac,
                            CurvatureKind::fisher_diag, CurvatureKind::diag, CurvatureKind::full_top})
      o.emplace_back(enum_name(kCurvatureKinds, k));
    return o;
  }();
  auto rank = [&](const std::string& k) {
    return static_cast<size_t>(std::find(order.begin(), order.end(), k) - order.begin());
  };
  std::vector<std::pair<std::string, int>> keys;
  for (const auto& [key, steps] : spectra) keys.push_back(key);
  std::stable_sort(keys.begin(), keys.end(), [&](const auto& a, const auto& b) {
    return rank(a.first) != rank(b.first) ? rank(a.first) < rank(b.first) : a < b;
  });
  std::string current_kind;
  for (const auto& key : keys) {
    const auto& [kind, layer] = key;
    const auto& steps = spectra.at(key);
    if (kind != current_kind) {
      if (!current_kind.empty()) s << "</div>\n";
      s << "<h3>" << esc(kind) << "</h3><div class=\"kind-grid\" data-kind=\"" << esc(kind) << "\">\n";
      current_kind = kind;
    }
    const std::string name = "spectrum/" + kind + (layer < 0 ? "" : "/layer" + std::to_string(layer));
    const std::string title = kind + (layer < 0 ? " (whole network)" : ", layer " + std::to_string(layer));
    const std::string svg = spectrum_heatmap(name, title, steps);
    s << (svg.empty() ? nodata(title) : "<figure>" + svg + "</figure>\n");
  }
  if (!current_kind.empty()) s << "</div>\n";
  s << "</section>\n";
  return s.str();
}

std::string section_singular(const Spectra& singular) {
  std::ostringstream s;
  s << "<section id=\"singular\" data-section=\"singular\"><h2>Singular values of weights and gradients</h2>\n";
  if (singular.empty()) {
    s << nodata("singular values (spectra/step_N.safetensors)") << "</section>\n";
    return s.str();
  }
  s << "<p>Per checkpoint, the share of the singular values of each layer's weight and gradient matrices in "
       "each bin (<code>weights.&lt;layer&gt;.singular_values</code>, "
       "<code>grads.&lt;layer&gt;.singular_values</code>).</p>\n";
  std::string current_kind;
  for (const auto& [key, steps] : singular) {
    const auto& [kind, layer] = key;
    if (kind != current_kind) {
      if (!current_kind.empty()) s << "</div>\n";
      s << "<h3>" << esc(kind) << "</h3><div class=\"kind-grid\" data-kind=\"" << esc(kind) << "\">\n";
      current_kind = kind;
    }
    const std::string name = "singular_values/" + kind + (layer < 0 ? "" : "/layer" + std::to_string(layer));
    const std::string title = kind + " singular values" + (layer < 0 ? "" : ", layer " + std::to_string(layer));
    const std::string svg = spectrum_heatmap(name, title, steps, "singular value");
    s << (svg.empty() ? nodata(title) : "<figure>" + svg + "</figure>\n");
  }
  if (!current_kind.empty()) s << "</div>\n";
  s << "</section>\n";
  return s.str();
}

std::string section_alarms(const Log& alarms) {
  std::ostringstream s;
  s << "<section id=\"alarms\" data-section=\"alarms\"><h2>Alarms</h2>\n";
  if (!alarms.exists) {
    s << nodata("alarms (alarms.jsonl)") << "</section>\n";
    return s.str();
  }
  if (alarms.rows.empty()) {
    s << "<p class=\"healthy\">no alarms</p>\n</section>\n";
    return s.str();
  }
  const std::string svg = alarm_timeline(alarms.rows);
  s << (svg.empty() ? nodata("alarms timeline") : "<figure>" + svg + "</figure>\n");
  s << "<details><summary>" << alarms.rows.size() << " alarm" << (alarms.rows.size() == 1 ? "" : "s")
    << "</summary>\n<table data-table=\"alarms\"><tr><th>step</th><th>layer</th><th>rule</th><th>value</th>"
       "<th>threshold</th><th>message</th></tr>\n";
  size_t shown = 0;
  for (const json& a : alarms.rows) {
    if (++shown > 500) break;
    double st = NAN, v = NAN, th = NAN;
    get_step(a, &st);
    const bool hv = get_num(a, "value", &v), ht = get_num(a, "threshold", &th);
    s << "<tr><td class=\"num\">" << (std::isfinite(st) ? step_str(st) : "") << "</td><td>"
      << esc(layer_name(get_layer(a))) << "</td><td>" << esc(get_str(a, "rule")) << "</td><td class=\"num\">"
      << (hv ? num(v) : "") << "</td><td class=\"num\">" << (ht ? num(th) : "") << "</td><td>"
      << esc(get_str(a, "message")) << "</td></tr>\n";
  }
  s << "</table>\n";
  if (alarms.rows.size() > 500) s << "<p>(first 500 shown)</p>\n";
  s << "</details>\n</section>\n";
  return s.str();
}

std::string section_verdicts(const Log& stats, const Log& diag, const Log& alarms) {
  std::ostringstream s;
  s << "<section id=\"verdicts\" data-section=\"verdicts\"><h2>Final per-layer verdicts</h2>\n";
  // The last stats row of each layer, the last loss-Hessian diagnostics, the alarms per layer.
  // Rows of several kinds (per step, per checkpoint) carry different columns: merge them in
  // order so that each column holds its last value.
  std::map<int, json> last_stats;
  for (const json& r : stats.rows) {
    json& m = last_stats[get_layer(r)];
    if (!m.is_object()) m = json::object();
    for (auto it = r.begin(); it != r.end(); ++it)
      if (!it->is_null()) m[it.key()] = *it;
  }
  std::map<int, json> last_diag;
  for (const json& r : diag.rows)
    if (get_str(r, "kind") == enum_name(kCurvatureKinds, CurvatureKind::loss)) last_diag[get_layer(r)] = r;
  struct Fired {
    size_t count = 0;
    double last = -DBL_MAX;
  };
  std::map<int, std::map<std::string, Fired>> fired;
  for (const json& a : alarms.rows) {
    Fired& f = fired[get_layer(a)][get_str(a, "rule", "alarm")];
    ++f.count;
    double st;
    if (get_step(a, &st)) f.last = std::max(f.last, st);
  }
  std::set<int> layers;
  for (const auto& [l, r] : last_stats) layers.insert(l);
  for (const auto& [l, r] : fired) layers.insert(l);
  if (layers.empty()) {
    s << nodata("verdicts (stats.jsonl, alarms.jsonl)") << "</section>\n";
    return s.str();
  }
  s << "<p>From the last values in <code>stats.jsonl</code> per layer and every alarm of the run: \"healthy\" when "
       "no rule fired for the layer, else the rules that fired (times, last step).</p>\n";
  const std::vector<std::string> cols = {"grad_l2", "update_ratio", "weight_norm", "dead_share", "saturated_share"};
  s << "<table data-table=\"verdicts\"><tr><th>layer</th><th>type</th><th>last step</th>";
  for (const auto& c : cols) s << "<th>" << esc(c) << "</th>";
  s << "<th>λmax (loss)</th><th>verdict</th></tr>\n";
  for (int layer : layers) {
    s << "<tr data-layer=\"" << layer << "\"><td>" << esc(layer_name(layer)) << "</td>";
    const auto it = last_stats.find(layer);
    s << "<td>" << esc(it != last_stats.end() ? get_str(it->second, "type") : "") << "</td>";
    double st;
    s << "<td class=\"num\">" << (it != last_stats.end() && get_step(it->second, &st) ? step_str(st) : "") << "</td>";
    for (const auto& c : cols) {
      double v;
      s << "<td class=\"num\">" << (it != last_stats.end() && get_num(it->second, c, &v) ? num(v) : "") << "</td>";
    }
    const auto d = last_diag.find(layer);
    double lm;
    s << "<td class=\"num\">" << (d != last_diag.end() && get_num(d->second, "lambda_max", &lm) ? num(lm) : "")
      << "</td>";
    const auto f = fired.find(layer);
    if (f == fired.end() || f->second.empty()) {
      s << "<td class=\"verdict healthy\">healthy</td>";
    } else {
      std::string text;
      for (const auto& [rule, fr] : f->second) {
        if (!text.empty()) text += ", ";
        text += rule + " (" + std::to_string(fr.count) + "×" +
                (fr.last > -DBL_MAX ? ", last at step " + step_str(fr.last) : "") + ")";
      }
      s << "<td class=\"verdict bad\">" << esc(text) << "</td>";
    }
    s << "</tr>\n";
  }
  s << "</table>\n</section>\n";
  return s.str();
}

std::string section_header(const std::string& run_dir, const Log& metrics, const Log& eval, const Log& alarms) {
  std::ostringstream s;
  std::string name = std::filesystem::path(run_dir).filename().string();
  if (name.empty()) name = std::filesystem::path(run_dir).parent_path().filename().string();
  s << "<h1>curvnet run report: " << esc(name) << "</h1>\n";
  std::vector<std::pair<std::string, std::string>> rows;
  rows.emplace_back("run directory", run_dir);
  try {
    const json meta = json::parse(read_file(RunLayout(run_dir).meta()));
    if (meta.is_object())
      for (auto it = meta.begin(); it != meta.end(); ++it)
        if (!it->is_object() && !it->is_array()) rows.emplace_back(it.key(), json_scalar_text(*it));
  } catch (const std::exception&) {}
  double st, v;
  if (!metrics.rows.empty()) {
    const json& last = metrics.rows.back();
    if (get_step(last, &st)) rows.emplace_back("last logged step", step_str(st));
    if (get_num(last, "loss", &v)) rows.emplace_back("last train loss", num(v));
  }
  for (const std::string split : {"val", "test"}) {
    const json* last = nullptr;
    for (const json& r : eval.rows)
      if (get_str(r, "split") == split) last = &r;
    if (!last) continue;
    std::string text;
    for (auto it = last->begin(); it != last->end(); ++it) {
      if (it.key() == "split" || it.key() == "epoch" || !it->is_number()) continue;
      text += (text.empty() ? "" : ", ") + it.key() + " " +
              (it.key() == "step" ? step_str(it->get<double>()) : num(it->get<double>()));
    }
    rows.emplace_back("last " + split, text);
  }
  if (alarms.exists) rows.emplace_back("alarms", std::to_string(alarms.rows.size()));
  s << kv_table(rows, "summary");
  return s.str();
}

}  // namespace

std::string render_report(const std::string& run_dir) {
  const RunLayout run(run_dir);
  const Log metrics = read_log(run.metrics_log());
  const Log eval = read_log(run.eval_log());
  const Log stats = read_log(run.stats_log());
  const Log diag = read_log(run.diagnostics_log());
  const Log alarms = read_log(run.alarms_log());
  std::vector<std::string> problems;
  Spectra singular;
  const Spectra spectra = read_spectra(run.spectra(), &singular, &problems);

  std::ostringstream h;
  h << "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
       "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>curvnet report: "
    << esc(std::filesystem::path(run_dir).filename().string()) << "</title>\n<style>" << kStyle
    << "</style>\n</head>\n<body>\n";
  h << section_header(run_dir, metrics, eval, alarms);
  h << "<nav><a href=\"#loss\">loss</a> · <a href=\"#layers\">layers</a> · <a href=\"#activations\">activations</a>"
       " · <a href=\"#curvature\">curvature</a> · <a href=\"#spectra\">spectra</a> · <a href=\"#singular\">singular "
       "values</a> · <a href=\"#alarms\">alarms</a>"
       " · <a href=\"#verdicts\">verdicts</a></nav>\n";
  if (metrics.rows.empty() && eval.rows.empty())
    h << "<section id=\"loss\" data-section=\"loss\"><h2>Loss and quality</h2>\n"
      << nodata("training metrics (metrics.jsonl)") << "</section>\n";
  else
    h << section_loss(metrics, eval);
  h << section_layers(stats);
  h << section_activations(stats);
  h << section_curvature(diag);
  h << section_spectra(spectra, problems);
  h << section_singular(singular);
  h << section_alarms(alarms);
  h << section_verdicts(stats, diag, alarms);
  try {
    const std::string config = read_file(RunLayout(run_dir).config());
    h << "<section id=\"config\" data-section=\"config\"><h2>Resolved config</h2>\n<details><summary>config.toml"
         "</summary><pre>"
      << esc(config) << "</pre></details></section>\n";
  } catch (const std::exception&) {}
  h << "</body>\n</html>\n";
  return h.str();
}

void write_report(const std::string& run_dir) {
  write_file_atomic(RunLayout(run_dir).report(), render_report(run_dir));
}

}  // namespace cn
