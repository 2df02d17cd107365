// The report's drawing kit: rows, formatting, axes, line plots (see report_svg.h).
#include "io/report_svg.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "io/files.h"

namespace cn::report {

// ---- rows ---------------------------------------------------------------------------------

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

std::string get_str(const json& row, const std::string& key, const std::string& fallback) {
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

std::string percent(double share) {
  char buf[32];
  const double p = 100 * share;
  std::snprintf(buf, sizeof buf, p != 0 && std::fabs(p) < 0.1 ? "%.2g%%" : "%.1f%%", p);
  return buf;
}

std::string nodata(const std::string& what) {
  return "<p class=\"nodata\" data-nodata=\"" + esc(what) + "\">" + esc(what) + ": no data</p>\n";
}

// ---- series styles ------------------------------------------------------------------------

Style series_style(size_t i) {
  static const char* palette[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                                  "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};
  static const char* dashes[] = {"", "7 3", "2 2"};
  return {palette[i % 10], dashes[i % 3]};
}

// ---- axes ---------------------------------------------------------------------------------

bool Axis::valid(double v) const { return std::isfinite(v) && (scale != Scale::log || v > 0); }
double Axis::t(double v) const {
  switch (scale) {
    case Scale::log:
      return std::log10(v);
    case Scale::symlog:
      return (v < 0 ? -1 : 1) * std::log10(1 + std::fabs(v) / c);
    default:
      return v;
  }
}
double Axis::inv(double u) const {
  switch (scale) {
    case Scale::log:
      return std::pow(10.0, u);
    case Scale::symlog:
      return (u < 0 ? -1 : 1) * c * (std::pow(10.0, std::fabs(u)) - 1);
    default:
      return u;
  }
}

void Axis::fit(double tmin, double tmax, bool pad) {
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

std::vector<std::pair<double, std::string>> Axis::ticks() const {
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

std::string svg_open(const std::string& name, const std::string& title, double w, double h) {
  return "<svg class=\"plot\" data-plot=\"" + esc(name) + "\" viewBox=\"0 0 " + fx(w) + " " + fx(h) + "\" width=\"" +
         fx(w) + "\" height=\"" + fx(h) + "\" role=\"img\" aria-label=\"" + esc(title) + "\">\n" +
         "<text class=\"title\" x=\"" + fx(kL) + "\" y=\"18\">" + esc(title) + "</text>\n";
}

// ---- line plots ---------------------------------------------------------------------------

namespace {

// Axes frame, grid and labels for a plot area at (kL, kT) of size pw x ph.
std::string draw_axes(const Axis& x, const Axis& y, double pw, double ph, const PlotOpts& o,
                      const std::string& ylabel) {
  std::ostringstream s;
  for (const auto& [v, label] : spaced_ticks(y, ph, 13)) {
    const double py = kT + ph * (1 - y.frac(v));
    s << "<line class=\"grid\" x1=\"" << fx(kL) << "\" x2=\"" << fx(kL + pw) << "\" y1=\"" << fx(py) << "\" y2=\""
      << fx(py) << "\"/><text class=\"tick\" x=\"" << fx(kL - 5) << "\" y=\"" << fx(py + 4) << "\" text-anchor=\"end\">"
      << esc(label) << "</text>\n";
  }
  std::vector<std::pair<double, std::string>> xt;
  if (o.x_integer_ticks) {
    const double lo = std::ceil(x.inv(x.lo)), hi = std::floor(x.inv(x.hi));
    const double every = std::max(1.0, std::ceil((hi - lo + 1) / 16));
    for (double v = lo; v <= hi; v += every) xt.emplace_back(v, step_str(v));
  } else {
    xt = spaced_ticks(x, pw, 40);
  }
  const bool is_step = o.xlabel == "step";
  for (auto& [v, label] : xt) {
    if ((is_step || o.x_integer_ticks) && std::fabs(v - std::round(v)) > 1e-6) continue;  // steps are whole
    if (v == 0) v = 0;                                                                    // no "-0"
    if (o.x_integer_ticks) label = step_str(v);
    const double px = kL + pw * x.frac(v);
    s << "<line class=\"grid\" x1=\"" << fx(px) << "\" x2=\"" << fx(px) << "\" y1=\"" << fx(kT) << "\" y2=\""
      << fx(kT + ph) << "\"/><text class=\"tick\" x=\"" << fx(px) << "\" y=\"" << fx(kT + ph + 15)
      << "\" text-anchor=\"middle\">" << esc(is_step ? step_str(v) : label) << "</text>\n";
  }
  s << "<rect class=\"frame\" x=\"" << fx(kL) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(pw) << "\" height=\""
    << fx(ph) << "\"/>\n";
  s << "<text class=\"label\" x=\"" << fx(kL + pw / 2) << "\" y=\"" << fx(kT + ph + 34) << "\" text-anchor=\"middle\">"
    << esc(o.xlabel) << "</text>\n";
  s << "<text class=\"label\" transform=\"translate(14," << fx(kT + ph / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(ylabel) << "</text>\n";
  return s.str();
}

// Sorts by x, drops points the scale cannot draw, thins long series (the last point kept).
void prepare(Series& s, const Axis& y) {
  std::vector<std::pair<double, double>> keep;
  for (const auto& p : s.pts)
    if (std::isfinite(p.first) && y.valid(p.second)) keep.push_back(p);
  std::stable_sort(keep.begin(), keep.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
  if (keep.size() > 1500) {
    std::vector<std::pair<double, double>> thin;
    const size_t stride = (keep.size() + 1499) / 1500;
    for (size_t i = 0; i < keep.size(); i += stride) thin.push_back(keep[i]);
    if (thin.back() != keep.back()) thin.push_back(keep.back());
    keep.swap(thin);
  }
  s.pts.swap(keep);
}

}  // namespace

std::string legend(const std::vector<LegendEntry>& entries, double x0, bool line) {
  std::ostringstream s;
  const size_t shown = std::min<size_t>(entries.size(), 16);
  for (size_t i = 0; i < shown; ++i) {
    const double y = kT + 6 + 15 * i;
    const LegendEntry& e = entries[i];
    if (line)
      s << "<line class=\"legend\" x1=\"" << fx(x0) << "\" x2=\"" << fx(x0 + 22) << "\" y1=\"" << fx(y + 5)
        << "\" y2=\"" << fx(y + 5) << "\" stroke=\"" << e.color << "\" stroke-width=\"2\""
        << (e.dash.empty() ? "" : " stroke-dasharray=\"" + e.dash + "\"") << "/>";
    else
      s << "<rect class=\"legend\" x=\"" << fx(x0) << "\" y=\"" << fx(y) << "\" width=\"10\" height=\"10\" fill=\""
        << e.color << "\"/>";
    s << "<text class=\"legend-text\" x=\"" << fx(x0 + (line ? 27 : 15)) << "\" y=\"" << fx(y + 9) << "\">"
      << esc(e.label) << "</text>\n";
  }
  if (entries.size() > shown)
    s << "<text class=\"legend-text\" x=\"" << fx(x0) << "\" y=\"" << fx(kT + 6 + 15 * shown + 9) << "\">… "
      << entries.size() - shown << " more</text>\n";
  return s.str();
}

std::string line_plot(const PlotOpts& o, std::vector<Series> series) {
  Axis x, y, y2;
  y.scale = o.yscale;
  if (y.scale == Scale::symlog) {
    std::vector<double> all;
    for (const auto& s : series)
      for (const auto& p : s.pts) all.push_back(p.second);
    y.c = symlog_threshold(all);
  }
  double xmin = DBL_MAX, xmax = -DBL_MAX, ymin = DBL_MAX, ymax = -DBL_MAX, y2min = DBL_MAX, y2max = -DBL_MAX;
  size_t drawable = 0, drawable2 = 0;
  for (auto& s : series) {
    const Axis& ax = s.right ? y2 : y;
    prepare(s, ax);
    for (const auto& p : s.pts) {
      xmin = std::min(xmin, p.first);
      xmax = std::max(xmax, p.first);
      double& lo = s.right ? y2min : ymin;
      double& hi = s.right ? y2max : ymax;
      lo = std::min(lo, ax.t(p.second));
      hi = std::max(hi, ax.t(p.second));
      ++(s.right ? drawable2 : drawable);
    }
  }
  if (drawable + drawable2 == 0) return "";
  for (const Marker& m : o.markers)
    if (std::isfinite(m.x)) {
      xmin = std::min(xmin, m.x);
      xmax = std::max(xmax, m.x);
    }
  if (drawable == 0) {  // only right-axis data: a neutral left axis
    ymin = 0;
    ymax = 1;
  }
  if (o.unit_interval) {
    ymin = std::min(ymin, 0.0);
    ymax = std::max(ymax, 1.0);
  }
  x.fit(xmin, xmax, o.x_integer_ticks);
  if (!(xmax > xmin)) x.fit(xmin - 1, xmax + 1, false);
  y.fit(ymin, ymax, !o.unit_interval);
  if (drawable2 > 0) {
    if (o.y2_unit_interval) {
      y2min = std::min(y2min, 0.0);
      y2max = std::max(y2max, 1.0);
    }
    y2.fit(y2min, y2max, !o.y2_unit_interval);
  }
  const double pw = kW - kL - kR, ph = kH - kT - kB;

  std::ostringstream s;
  s << svg_open(o.name, o.title, kW, kH);
  s << draw_axes(x, y, pw, ph, o,
                 o.ylabel + (o.yscale == Scale::log      ? " (log)"
                             : o.yscale == Scale::symlog ? " (symlog)"
                                                         : ""));
  if (drawable2 > 0) {  // right axis: ticks and label just right of the frame
    for (const auto& [v, label] : spaced_ticks(y2, ph, 13)) {
      const double py = kT + ph * (1 - y2.frac(v));
      s << "<line class=\"tickmark\" x1=\"" << fx(kL + pw) << "\" x2=\"" << fx(kL + pw + 4) << "\" y1=\"" << fx(py)
        << "\" y2=\"" << fx(py) << "\"/><text class=\"tick\" x=\"" << fx(kL + pw + 6) << "\" y=\"" << fx(py + 4)
        << "\">" << esc(label) << "</text>\n";
    }
    s << "<text class=\"label\" transform=\"translate(" << fx(kL + pw + 46) << "," << fx(kT + ph / 2)
      << ") rotate(90)\" text-anchor=\"middle\">" << esc(o.y2label) << " (right axis)</text>\n";
  }
  auto px = [&](double v) { return kL + pw * x.frac(v); };
  for (const Marker& m : o.markers) {
    if (!std::isfinite(m.x)) continue;
    s << "<line class=\"marker\" x1=\"" << fx(px(m.x)) << "\" x2=\"" << fx(px(m.x)) << "\" y1=\"" << fx(kT)
      << "\" y2=\"" << fx(kT + ph) << "\"/>";
    // The label on whichever side of the line has room.
    const bool left = px(m.x) - kL > pw / 2;
    s << "<text class=\"marker-text\" x=\"" << fx(px(m.x) + (left ? -4 : 4)) << "\" y=\"" << fx(kT + 12)
      << "\" text-anchor=\"" << (left ? "end" : "start") << "\">" << esc(m.label) << "</text>\n";
  }
  std::vector<LegendEntry> entries;
  for (size_t i = 0; i < series.size(); ++i) {
    const Series& sr = series[i];
    if (sr.pts.empty()) continue;
    Style st = series_style(i);
    if (!sr.color.empty()) st = {sr.color, sr.dash};
    entries.push_back({sr.label + (sr.right && drawable > 0 ? " (right)" : ""), st.color, st.dash});
    const Axis& ax = sr.right ? y2 : y;
    auto py = [&](double v) { return kT + ph * (1 - ax.frac(v)); };
    if (sr.pts.size() > 1) {
      s << "<path class=\"mark line\" data-series=\"" << esc(sr.label) << "\" fill=\"none\" stroke=\"" << st.color
        << "\"" << (st.dash.empty() ? "" : " stroke-dasharray=\"" + st.dash + "\"") << " d=\"";
      for (size_t k = 0; k < sr.pts.size(); ++k)
        s << (k ? " L" : "M") << fx(px(sr.pts[k].first)) << " " << fx(py(sr.pts[k].second));
      s << "\"><title>" << esc(sr.label) << "</title></path>\n";
    }
    if (sr.pts.size() <= 60)
      for (const auto& p : sr.pts)
        s << "<circle class=\"mark point\" data-series=\"" << esc(sr.label) << "\" cx=\"" << fx(px(p.first))
          << "\" cy=\"" << fx(py(p.second)) << "\" r=\"2.6\" fill=\"" << st.color << "\"><title>" << esc(sr.label)
          << ": " << esc(o.xlabel) << " "
          << (o.xlabel == "step" || o.x_integer_ticks ? step_str(p.first) : num(p.first)) << ", " << num(p.second)
          << "</title></circle>\n";
  }
  s << legend(entries, kL + pw + (drawable2 > 0 ? 58 : 12), true);
  s << "</svg>\n";
  return s.str();
}

std::string plot_or_nodata(const PlotOpts& o, std::vector<Series> series) {
  const std::string svg = line_plot(o, std::move(series));
  return svg.empty() ? nodata(o.title) : "<figure>" + svg + "</figure>\n";
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

}  // namespace cn::report
