// The report's eigenvalue spectra: point masses about τ, drawn as they are (report_spectra.h).
#include "io/report_spectra.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <tuple>

#include "config/kinds.h"
#include "core/error.h"
#include "io/run_layout.h"
#include "io/safetensors.h"
#include "io/spectra_series.h"

namespace cn::report {

Spectra read_spectra(const std::string& run_dir, Spectra* singular, std::vector<std::string>* problems) {
  Spectra out;
  std::vector<std::pair<int64_t, SafeTensorMap>> steps;
  try {
    steps = read_run_spectra(run_dir);
  } catch (const Error& e) {
    problems->push_back(e.what());
  }
  for (const auto& [step, tensors] : steps) {
    const std::string path = run_dir + "/spectra (step " + std::to_string(step) + ")";
    try {
      for (const auto& [name, t] : tensors) {
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
        static const std::vector<std::string> kept = {"eigenvalues", "ritz_nodes",   "ritz_weights", "ritz_probe_steps",
                                                      "tau",         "density_grid", "density"};
        if (std::find(kept.begin(), kept.end(), what) == kept.end()) continue;
        std::vector<double> v = safetensor_values<double>(t, path, name);
        BlockSpectrum& b = out[{kind, layer}][step];
        if (what == "eigenvalues") b.eigenvalues = std::move(v);
        if (what == "ritz_nodes") b.ritz_nodes = std::move(v);
        if (what == "ritz_weights") b.ritz_weights = std::move(v);
        if (what == "ritz_probe_steps") b.ritz_probe_steps = std::move(v);
        if (what == "tau" && v.size() == 1 && std::isfinite(v[0]) && v[0] >= 0) b.tau = v[0];
        if (what == "density_grid") b.grid = std::move(v);
        if (what == "density") b.density = std::move(v);
      }
    } catch (const Error& e) {
      problems->push_back(e.what());
    }
  }
  return out;
}

namespace {

// Mean and standard error over probes of the share of each probe's weight where `in` holds.
template <class Pred>
double probe_stderr(const std::vector<std::pair<double, double>>& atoms, const std::vector<size_t>& counts, Pred in) {
  std::vector<double> shares;
  size_t at = 0;
  for (size_t c : counts) {
    double w = 0, w_in = 0;
    for (size_t k = at; k < at + c; ++k) {
      w += atoms[k].second;
      if (in(atoms[k].first)) w_in += atoms[k].second;
    }
    at += c;
    if (w > 0) shares.push_back(w_in / w);
  }
  const double p = static_cast<double>(shares.size());
  if (shares.size() < 2) return -1;
  double mean = 0, var = 0;
  for (double s : shares) mean += s / p;
  for (double s : shares) var += (s - mean) * (s - mean) / (p - 1);
  return std::sqrt(var / p);
}

}  // namespace

bool spectrum_mass(const BlockSpectrum& b, double diag_tau, SpectrumMass* out) {
  SpectrumMass m;
  std::vector<size_t> counts;  // Ritz nodes per probe
  if (!b.eigenvalues.empty()) {
    m.source = "eigenvalues";
    for (double v : b.eigenvalues)
      if (std::isfinite(v)) m.atoms.emplace_back(v, 1.0);
  } else if (!b.ritz_nodes.empty() && b.ritz_nodes.size() == b.ritz_weights.size()) {
    m.source = "ritz";
    bool all_finite = true;
    for (size_t i = 0; i < b.ritz_nodes.size(); ++i)
      if (std::isfinite(b.ritz_nodes[i]) && std::isfinite(b.ritz_weights[i]) && b.ritz_weights[i] >= 0)
        m.atoms.emplace_back(b.ritz_nodes[i], b.ritz_weights[i]);
      else
        all_finite = false;
    double total = 0;
    for (double c : b.ritz_probe_steps) total += c;
    if (all_finite && b.ritz_probe_steps.size() >= 2 && total == static_cast<double>(m.atoms.size()))
      for (double c : b.ritz_probe_steps) counts.push_back(static_cast<size_t>(c));
  } else {
    return false;
  }
  double total = 0, max_abs = 0;
  for (const auto& [v, w] : m.atoms) {
    total += w;
    max_abs = std::max(max_abs, std::fabs(v));
  }
  if (!(total > 0)) return false;
  for (auto& a : m.atoms) a.second /= total;
  m.n = m.atoms.size();
  if (b.tau >= 0) {
    m.tau = b.tau;
    m.tau_source = "spectra file";
  } else if (diag_tau >= 0) {
    m.tau = diag_tau;
    m.tau_source = "diagnostics.jsonl";
  } else {
    m.tau = max_abs * static_cast<double>(m.n) * DBL_EPSILON;
    m.tau_source = "max|λ|·n·ε";
  }
  const double tau = m.tau;
  for (const auto& [v, w] : m.atoms) {
    if (std::fabs(v) <= tau)
      m.zero_share += w;
    else if (v < 0)
      m.negative_share += w;
    else
      m.positive_share += w;
  }
  if (!counts.empty()) {
    m.probes = counts.size();
    m.zero_share_se = probe_stderr(m.atoms, counts, [tau](double v) { return std::fabs(v) <= tau; });
    m.negative_share_se = probe_stderr(m.atoms, counts, [tau](double v) { return v < -tau; });
  }
  *out = std::move(m);
  return true;
}

namespace {

constexpr int kBins = 40;

// Shares per log10|λ| bin of the atoms beyond τ on one side (sign +1 or -1).
std::vector<double> side_bins(const SpectrumMass& m, int sign, double a, double b) {
  std::vector<double> bins(kBins, 0.0);
  for (const auto& [v, w] : m.atoms) {
    if (std::fabs(v) <= m.tau || (v < 0 ? -1 : 1) != sign) continue;
    const int k = static_cast<int>(std::floor((std::log10(std::fabs(v)) - a) / (b - a) * kBins));
    bins[std::min(kBins - 1, std::max(0, k))] += w;
  }
  return bins;
}

std::string share_text(double share, double se) { return percent(share) + (se >= 0 ? " ± " + percent(se) : ""); }

}  // namespace

std::string spectrum_figure(const std::string& name, const std::string& title, const SpectrumMass& last,
                            int64_t last_step, const SpectrumMass* first, int64_t first_step) {
  std::vector<const SpectrumMass*> drawn = {&last};
  if (first) drawn.push_back(first);
  // The log10|λ| range of the mass beyond τ, over the drawn checkpoints.
  double a = DBL_MAX, b = -DBL_MAX;
  bool negative = false;
  for (const SpectrumMass* m : drawn)
    for (const auto& [v, w] : m->atoms) {
      if (std::fabs(v) <= m->tau || w <= 0) continue;
      a = std::min(a, std::log10(std::fabs(v)));
      b = std::max(b, std::log10(std::fabs(v)));
      negative = negative || v < 0;
    }
  const bool beyond = a <= b;
  if (!beyond) a = b = 0;
  if (b - a < 1e-9) {
    a -= 0.5;
    b += 0.5;
  } else {
    b += 1e-9 * (b - a);  // the largest value inside the last bin
  }
  std::vector<std::vector<double>> pos, neg;
  double min_share = 1;
  for (const SpectrumMass* m : drawn) {
    pos.push_back(side_bins(*m, +1, a, b));
    neg.push_back(side_bins(*m, -1, a, b));
    for (const auto* bins : {&pos.back(), &neg.back()})
      for (double s : *bins)
        if (s > 0) min_share = std::min(min_share, s);
    if (m->zero_share > 0) min_share = std::min(min_share, m->zero_share);
  }
  // Log share axis from a decade under the smallest drawn share (at most 1e-6) to 1.
  const double lf = std::max(-6.0, std::floor(std::log10(min_share) - 0.3));

  constexpr double W = 760, zc = 64, gap = 22, php = 170, R = 170;
  const double phn = negative ? 120 : 0;
  const double H = kT + php + phn + 48;
  const double x0 = kL + zc + gap, x1 = W - R, yb = kT + php;
  auto hgt = [&](double share, double panel) {
    return share > 0 ? panel * std::max(0.0, (std::log10(share) - lf) / -lf) : 0.0;
  };
  auto xof = [&](double lg) { return x0 + (x1 - x0) * (lg - a) / (b - a); };

  std::ostringstream s;
  std::string open = svg_open(name, title, W, H);
  open.insert(4, " data-step=\"" + std::to_string(last_step) + "\" data-tau=\"" + num(last.tau) +
                     "\" data-zero-share=\"" + num(last.zero_share) + "\" data-negative-share=\"" +
                     num(last.negative_share) + "\" data-positive-share=\"" + num(last.positive_share) + "\"");
  s << open;
  // Share axis (log) on the left, for the zero bar and the λ > τ panel; mirrored below.
  for (int e = static_cast<int>(lf); e <= 0; ++e) {
    const double y = yb - hgt(std::pow(10.0, e), php);
    s << "<line class=\"grid\" x1=\"" << fx(kL) << "\" x2=\"" << fx(x1) << "\" y1=\"" << fx(y) << "\" y2=\"" << fx(y)
      << "\"/><text class=\"tick\" x=\"" << fx(kL - 5) << "\" y=\"" << fx(y + 4) << "\" text-anchor=\"end\">"
      << num(std::pow(10.0, e)) << "</text>\n";
    if (negative) {
      const double yn = yb + hgt(std::pow(10.0, e), phn);
      s << "<line class=\"grid\" x1=\"" << fx(x0) << "\" x2=\"" << fx(x1) << "\" y1=\"" << fx(yn) << "\" y2=\""
        << fx(yn) << "\"/><text class=\"tick\" x=\"" << fx(x0 - 5) << "\" y=\"" << fx(yn + 4)
        << "\" text-anchor=\"end\">" << num(std::pow(10.0, e)) << "</text>\n";
    }
  }
  s << "<text class=\"label\" transform=\"translate(14," << fx(kT + php / 2)
    << ") rotate(-90)\" text-anchor=\"middle\">share of the spectrum (log)</text>\n";
  s << "<rect class=\"frame\" x=\"" << fx(kL) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(zc) << "\" height=\""
    << fx(php) << "\"/><rect class=\"frame\" x=\"" << fx(x0) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(x1 - x0)
    << "\" height=\"" << fx(php + phn) << "\"/>\n";
  s << "<text class=\"panel\" x=\"" << fx(x0 + 4) << "\" y=\"" << fx(kT + 12) << "\">λ &gt; τ</text>\n";
  if (negative)
    s << "<line class=\"frame\" x1=\"" << fx(x0) << "\" x2=\"" << fx(x1) << "\" y1=\"" << fx(yb) << "\" y2=\"" << fx(yb)
      << "\"/><text class=\"panel\" x=\"" << fx(x0 + 4) << "\" y=\"" << fx(yb + phn - 5) << "\">λ &lt; −τ</text>\n";
  // The zero bar.
  const double zh = hgt(last.zero_share, php);
  s << "<rect class=\"mark bar zero\" data-share=\"" << num(last.zero_share) << "\" x=\"" << fx(kL + 10) << "\" y=\""
    << fx(yb - zh) << "\" width=\"" << fx(zc - 20) << "\" height=\"" << fx(zh) << "\"><title>step " << last_step
    << ": |λ| ≤ τ = " << num(last.tau) << ": " << share_text(last.zero_share, last.zero_share_se)
    << "</title></rect>\n";
  const bool inside = zh > 16;  // the label inside a tall bar, else above it
  s << "<text class=\"bar-label" << (inside ? " inside" : "") << "\" x=\"" << fx(kL + zc / 2) << "\" y=\""
    << fx(inside ? yb - zh + 13 : yb - zh - 4) << "\" text-anchor=\"middle\">" << esc(percent(last.zero_share))
    << "</text>\n";
  s << "<text class=\"tick\" x=\"" << fx(kL + zc / 2) << "\" y=\"" << fx(yb + phn + 15)
    << "\" text-anchor=\"middle\">|λ| ≤ τ</text>\n";
  // Bars beyond τ: the last checkpoint filled, the first as an outline.
  const double bw = (x1 - x0) / kBins;
  for (size_t d = 0; d < drawn.size(); ++d) {
    const bool outline = d == 1;
    const std::string cls = outline ? "mark outline" : "mark bar";
    const int64_t step = outline ? first_step : last_step;
    for (int side : {+1, -1}) {
      const auto& bins = side > 0 ? pos[d] : neg[d];
      for (int k = 0; k < kBins; ++k) {
        if (bins[k] <= 0) continue;
        const double h = hgt(bins[k], side > 0 ? php : phn);
        const double lo = std::pow(10.0, a + (b - a) * k / kBins), hi = std::pow(10.0, a + (b - a) * (k + 1) / kBins);
        s << "<rect class=\"" << cls << (side > 0 ? " pos" : " neg") << "\" data-share=\"" << num(bins[k]) << "\" x=\""
          << fx(x0 + bw * k) << "\" y=\"" << fx(side > 0 ? yb - h : yb) << "\" width=\"" << fx(bw) << "\" height=\""
          << fx(h) << "\"><title>step " << step << ": " << (side > 0 ? "λ in [" : "−λ in [") << num(lo) << ", "
          << num(hi) << "): " << percent(bins[k]) << "</title></rect>\n";
      }
    }
    if (outline && first->zero_share > 0) {
      const double y = yb - hgt(first->zero_share, php);
      s << "<path class=\"mark outline zero\" d=\"M" << fx(kL + 6) << " " << fx(y) << " L" << fx(kL + zc - 6) << " "
        << fx(y) << "\"><title>step " << first_step << ": |λ| ≤ τ: " << percent(first->zero_share)
        << "</title></path>\n";
    }
  }
  if (!beyond)
    s << "<text class=\"panel\" x=\"" << fx((x0 + x1) / 2) << "\" y=\"" << fx(kT + php / 2)
      << "\" text-anchor=\"middle\">no mass beyond τ</text>\n";
  // log10|λ| ticks at whole decades (or the two ends when the range is under a decade).
  std::vector<double> ticks;
  for (int e = static_cast<int>(std::ceil(a)); e <= static_cast<int>(std::floor(b)); ++e) ticks.push_back(e);
  const size_t every = std::max<size_t>(1, (ticks.size() + 7) / 8);
  if (ticks.size() < 2 && beyond) ticks = {a, b};
  for (size_t i = 0; i < ticks.size(); i += (ticks.size() > 2 ? every : 1)) {
    const double x = xof(ticks[i]);
    s << "<line class=\"tickmark\" x1=\"" << fx(x) << "\" x2=\"" << fx(x) << "\" y1=\"" << fx(yb + phn) << "\" y2=\""
      << fx(yb + phn + 4) << "\"/><text class=\"tick\" x=\"" << fx(x) << "\" y=\"" << fx(yb + phn + 15)
      << "\" text-anchor=\"middle\">" << num(std::pow(10.0, ticks[i])) << "</text>\n";
  }
  s << "<text class=\"label\" x=\"" << fx((x0 + x1) / 2) << "\" y=\"" << fx(yb + phn + 34)
    << "\" text-anchor=\"middle\">|λ| (log)</text>\n";
  // Legend and the shares.
  const double lx = x1 + 12;
  double ly = kT + 6;
  s << "<rect class=\"legend bar\" x=\"" << fx(lx) << "\" y=\"" << fx(ly) << "\" width=\"10\" height=\"10\"/>"
    << "<text class=\"legend-text\" x=\"" << fx(lx + 15) << "\" y=\"" << fx(ly + 9) << "\">step " << last_step
    << "</text>\n";
  if (first) {
    ly += 15;
    s << "<rect class=\"legend outline\" x=\"" << fx(lx) << "\" y=\"" << fx(ly) << "\" width=\"10\" height=\"10\"/>"
      << "<text class=\"legend-text\" x=\"" << fx(lx + 15) << "\" y=\"" << fx(ly + 9) << "\">step " << first_step
      << " (outline)</text>\n";
  }
  const std::vector<std::string> lines = {
      "τ = " + num(last.tau), "|λ| ≤ τ: " + share_text(last.zero_share, last.zero_share_se),
      "λ > τ: " + percent(last.positive_share), "λ < −τ: " + share_text(last.negative_share, last.negative_share_se)};
  ly += 10;
  for (const std::string& line : lines) {
    ly += 15;
    s << "<text class=\"legend-text\" x=\"" << fx(lx) << "\" y=\"" << fx(ly) << "\">" << esc(line) << "</text>\n";
  }
  s << "</svg>\n";
  return s.str();
}

std::string density_fallback_figure(const std::string& name, const std::string& title, const BlockSpectrum& b,
                                    int64_t step) {
  if (b.grid.empty() || b.grid.size() != b.density.size()) return "";
  Series d{"step " + std::to_string(step), {}, "#1f77b4", ""};
  for (size_t i = 0; i < b.grid.size(); ++i) d.pts.emplace_back(b.grid[i], b.density[i]);
  PlotOpts o;
  o.name = name;
  o.title = title + " (smoothed estimate)";
  o.ylabel = "density";
  o.xlabel = "eigenvalue";
  std::string svg = line_plot(o, {d});
  if (svg.empty()) return "";
  svg.insert(4, " data-fallback=\"density\"");
  return svg;
}

std::string values_heatmap(const std::string& name, const std::string& title,
                           const std::map<int64_t, BlockSpectrum>& steps, const std::string& what) {
  constexpr int kHeatBins = 48;
  std::vector<double> all;
  for (const auto& [step, sp] : steps)
    for (double v : sp.eigenvalues)
      if (std::isfinite(v)) all.push_back(v);
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
  const double pad = 1e-6 * (tmax - tmin);  // the extremes fall inside the outer bins
  y.lo = tmin - pad;
  y.hi = tmax + pad;
  auto bin_of = [&](double v) {
    return std::min(kHeatBins - 1, std::max(0, static_cast<int>(std::floor(y.frac(v) * kHeatBins))));
  };
  struct Column {
    int64_t step;
    std::vector<double> share;
    double n;
  };
  std::vector<Column> cols;
  for (const auto& [step, sp] : steps) {
    Column c{step, std::vector<double>(kHeatBins, 0.0), 0};
    for (double v : sp.eigenvalues)
      if (std::isfinite(v)) {
        c.share[bin_of(v)] += 1;
        c.n += 1;
      }
    if (c.n <= 0) continue;
    for (double& v : c.share) v /= c.n;
    cols.push_back(std::move(c));
  }
  if (cols.empty()) return "";
  auto unit = [](double share) { return std::min(1.0, std::max(0.0, (std::log10(share) + 4) / 4)); };
  constexpr double W = 760, H = 280, R = 130;
  const double pw = W - kL - R, ph = H - kT - kB;
  const double cw = pw / cols.size(), bh = ph / kHeatBins;
  std::ostringstream s;
  s << svg_open(name, title, W, H);
  s << "<rect class=\"frame heat-bg\" x=\"" << fx(kL) << "\" y=\"" << fx(kT) << "\" width=\"" << fx(pw)
    << "\" height=\"" << fx(ph) << "\"/>\n";
  for (size_t ci = 0; ci < cols.size(); ++ci) {
    const Column& c = cols[ci];
    for (int b = 0; b < kHeatBins; ++b) {
      if (c.share[b] <= 0) continue;
      const double lo = y.inv(y.lo + (y.hi - y.lo) * b / kHeatBins),
                   hi = y.inv(y.lo + (y.hi - y.lo) * (b + 1) / kHeatBins);
      s << "<rect class=\"mark cell\" x=\"" << fx(kL + cw * ci) << "\" y=\"" << fx(kT + ph - bh * (b + 1))
        << "\" width=\"" << fx(std::max(cw, 0.5)) << "\" height=\"" << fx(bh) << "\" fill=\""
        << viridis(unit(c.share[b])) << "\"><title>step " << c.step << ": " << esc(what) << " in [" << num(lo) << ", "
        << num(hi) << "): " << std::llround(c.share[b] * c.n) << " of " << step_str(c.n) << ", "
        << num(100 * c.share[b]) << "%</title></rect>\n";
    }
  }
  for (const auto& [v, label] : spaced_ticks(y, ph, 13)) {
    const double py = kT + ph * (1 - y.frac(v));
    s << "<line class=\"tickmark\" x1=\"" << fx(kL - 4) << "\" x2=\"" << fx(kL) << "\" y1=\"" << fx(py) << "\" y2=\""
      << fx(py) << "\"/><text class=\"tick\" x=\"" << fx(kL - 6) << "\" y=\"" << fx(py + 4) << "\" text-anchor=\"end\">"
      << esc(label) << "</text>\n";
  }
  const size_t every = std::max<size_t>(1, (cols.size() + 9) / 10);
  for (size_t ci = 0; ci < cols.size(); ci += every)
    s << "<text class=\"tick\" x=\"" << fx(kL + cw * (ci + 0.5)) << "\" y=\"" << fx(kT + ph + 15)
      << "\" text-anchor=\"middle\">" << cols[ci].step << "</text>\n";
  s << "<text class=\"label\" x=\"" << fx(kL + pw / 2) << "\" y=\"" << fx(kT + ph + 34)
    << "\" text-anchor=\"middle\">checkpoint step</text>\n";
  s << "<text class=\"label\" transform=\"translate(14," << fx(kT + ph / 2) << ") rotate(-90)\" text-anchor=\"middle\">"
    << esc(what) << " (symlog, linear within " << esc(num(y.c)) << ")</text>\n";
  const double bx = kL + pw + 20;  // colour bar: share per bin, 1e-4 .. 1 (log)
  for (int k = 0; k < 20; ++k)
    s << "<rect class=\"colorbar\" x=\"" << fx(bx) << "\" y=\"" << fx(kT + ph * k / 20.0) << "\" width=\"12\" height=\""
      << fx(ph / 20.0 + 0.5) << "\" fill=\"" << viridis(1 - (k + 1) / 20.0 + 0.025) << "\"/>\n";
  for (int e = 0; e >= -4; --e)
    s << "<text class=\"tick\" x=\"" << fx(bx + 16) << "\" y=\"" << fx(kT + ph * (-e) / 4.0 + 4) << "\">"
      << num(std::pow(10.0, e)) << "</text>\n";
  s << "<text class=\"tick\" x=\"" << fx(bx) << "\" y=\"" << fx(kT - 6) << "\">share</text>\n";
  s << "</svg>\n";
  return s.str();
}

std::string section_spectra(const Spectra& spectra, const std::vector<std::string>& problems,
                            const std::vector<json>& diag_rows) {
  std::ostringstream s;
  s << "<section id=\"spectra\" data-section=\"spectra\"><h2>Eigenvalue spectra</h2>\n";
  s << "<p>Each block's spectrum at its last checkpoint (bars) and its first (outline), as point masses: the "
       "eigenvalues of a dense block, or the Gauss quadrature of the iterative method (Ritz nodes with their "
       "weights, averaged over probes). The mass at |λ| ≤ τ is its own bar with its share; the rest is on a "
       "log|λ| axis, λ &gt; τ above and λ &lt; −τ below (no lower panel when no mass is negative). Nothing is "
       "smoothed.</p>\n";
  for (const std::string& p : problems) s << "<p class=\"nodata\">unreadable: " << esc(p) << "</p>\n";
  if (spectra.empty()) {
    s << nodata("spectra (spectra/step_N.safetensors)") << "</section>\n";
    return s.str();
  }
  std::map<std::tuple<std::string, int, int64_t>, const json*> diag;
  for (const json& r : diag_rows) {
    double st;
    if (get_step(r, &st)) diag[{get_str(r, "kind"), get_layer(r), static_cast<int64_t>(st)}] = &r;
  }
  auto diag_tau = [&](const std::string& kind, int layer, int64_t step) {
    const auto it = diag.find({kind, layer, step});
    double t;
    return it != diag.end() && get_num(*it->second, "tau", &t) && t >= 0 ? t : -1.0;
  };
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
  s << "<div class=\"cols\">\n";
  for (const auto& key : keys) {
    const auto& [kind, layer] = key;
    const auto& steps = spectra.at(key);
    const std::string name = "spectrum/" + kind + (layer < 0 ? "" : "/layer" + std::to_string(layer));
    const std::string title = kind + (layer < 0 ? " (whole network)" : ", layer " + std::to_string(layer));
    // The last and the first checkpoint that carry a spectrum.
    const std::pair<const int64_t, BlockSpectrum>* last = nullptr;
    const std::pair<const int64_t, BlockSpectrum>* first = nullptr;
    SpectrumMass last_m, first_m;
    for (auto it = steps.rbegin(); it != steps.rend() && !last; ++it)
      if (spectrum_mass(it->second, diag_tau(kind, layer, it->first), &last_m)) last = &*it;
    for (auto it = steps.begin(); last && it != steps.end() && it->first < last->first && !first; ++it)
      if (spectrum_mass(it->second, diag_tau(kind, layer, it->first), &first_m)) first = &*it;
    if (last) {
      s << "<figure>"
        << spectrum_figure(name, title, last_m, last->first, first ? &first_m : nullptr, first ? first->first : 0);
      s << "<figcaption>step " << last->first << ": "
        << (last_m.source == "eigenvalues"
                ? std::to_string(last_m.n) + " eigenvalues (dense)"
                : std::to_string(last_m.n) + " Ritz nodes" +
                      (last_m.probes ? " of " + std::to_string(last_m.probes) + " probes" : "") +
                      " (Gauss quadrature; ± is the probes' standard error)")
        << "; τ = " << esc(num(last_m.tau)) << " (" << esc(last_m.tau_source) << ").";
      const auto d = diag.find({kind, layer, last->first});
      double nz, ng, se;
      if (d != diag.end() && get_num(*d->second, "near_zero_share", &nz)) {
        const json& row = *d->second;
        s << " Its diagnostics.jsonl row: near_zero_share " << esc(num(nz));
        if (get_num(row, "near_zero_share_stderr", &se)) s << " ± " << esc(num(se));
        if (get_num(row, "negative_share", &ng)) s << ", negative_share " << esc(num(ng));
        if (get_num(row, "negative_share_stderr", &se)) s << " ± " << esc(num(se));
        s << ".";
      }
      s << "</figcaption></figure>\n";
      continue;
    }
    const auto old = std::find_if(steps.rbegin(), steps.rend(), [](const auto& e) { return !e.second.grid.empty(); });
    const std::string svg = old == steps.rend() ? "" : density_fallback_figure(name, title, old->second, old->first);
    if (svg.empty()) {
      s << nodata(title);
      continue;
    }
    s << "<figure>" << svg << "<figcaption class=\"caveat\">Smoothed estimate from an older run (a kernel density "
      << "over Ritz values, step " << old->first << "): the smoothing spreads mass across zero and to both signs, "
      << "so it does not show the share at zero or the sign of the spectrum.</figcaption></figure>\n";
  }
  s << "</div>\n</section>\n";
  return s.str();
}

}  // namespace cn::report
