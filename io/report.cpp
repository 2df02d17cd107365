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

#include "config/config.h"
#include "config/kinds.h"
#include "config/layer_kind.h"
#include "core/error.h"
#include "io/files.h"
#include "io/report_run.h"
#include "io/report_spectra.h"
#include "io/report_svg.h"
#include "io/run_layout.h"
#include "io/safetensors.h"

namespace cn {
namespace {

using namespace report;

// Series of `key` per layer from per-layer rows (stats.jsonl).
std::vector<Series> per_layer(const std::vector<json>& rows, const std::string& key) {
  std::map<int, Series> by_layer;
  for (const json& r : rows) {
    double st, v;
    if (!get_step(r, &st) || !get_num(r, key, &v)) continue;
    const int layer = get_layer(r);
    Series& s = by_layer[layer];
    s.label = layer_name(layer);
    s.pts.emplace_back(st, v);
  }
  std::vector<Series> out;
  for (auto& [layer, s] : by_layer) out.push_back(std::move(s));
  return out;
}

// ---- alarms -------------------------------------------------------------------------------

const std::vector<std::string>& known_rules() { return alarm_rule_names(); }

std::string rule_color(const std::string& rule, std::map<std::string, size_t>& extra) {
  const auto& rules = known_rules();
  const auto it = std::find(rules.begin(), rules.end(), rule);
  if (it != rules.end()) return series_style(static_cast<size_t>(it - rules.begin())).color;
  if (!extra.count(rule)) extra[rule] = extra.size();
  return series_style(rules.size() + extra[rule]).color;
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
  std::vector<LegendEntry> entries;
  std::set<std::string> seen;
  for (const json& a : alarms) {
    double st;
    if (!get_step(a, &st)) continue;
    const int layer = get_layer(a);
    const size_t r = static_cast<size_t>(std::find(rows.begin(), rows.end(), layer) - rows.begin());
    const std::string rule = get_str(a, "rule", "alarm");
    const std::string col = rule_color(rule, extra);
    if (seen.insert(rule).second) entries.push_back({rule, col, ""});
    std::string msg = get_str(a, "message");
    double v, th;
    if (get_num(a, "value", &v)) msg += (msg.empty() ? "" : "; ") + std::string("value ") + num(v);
    if (get_num(a, "threshold", &th)) msg += ", threshold " + num(th);
    s << "<circle class=\"mark alarm\" data-rule=\"" << esc(rule) << "\" cx=\"" << fx(kL + pw * x.frac(st))
      << "\" cy=\"" << fx(kT + 5 + rowh * (r + 0.5)) << "\" r=\"4.5\" fill=\"" << col << "\"><title>step "
      << step_str(st) << ", " << esc(layer_name(layer)) << ": " << esc(rule) << (msg.empty() ? "" : " — ") << esc(msg)
      << "</title></circle>\n";
  }
  s << legend(entries, kL + pw + 12, false);
  s << "</svg>\n";
  return s.str();
}

std::string section_status(const Run& r) {
  const auto [status, headline] = run_status(r);
  std::ostringstream s;
  s << "<section id=\"status\" class=\"status\" data-section=\"status\" data-status=\"" << status << "\">\n";
  s << "<p class=\"headline\">" << esc(headline) << "</p>\n";
  const Divergence d = find_divergence(r);
  if (d.found) {
    s << "<p data-divergence=\"" << step_str(d.step) << "\">First non-finite value";
    if (!d.tensor.empty()) s << ": tensor <code>" << esc(d.tensor) << "</code>";
    if (!d.pass.empty()) s << " in the " << esc(d.pass) << " pass";
    if (d.layer >= 0) s << " (layer " << d.layer << ")";
    s << ".";
    if (!d.message.empty()) s << " " << esc(d.message) << ".";
    s << " The loss below is drawn up to that step.</p>\n";
  }
  std::vector<RuleGroup> groups = group_alarms(r.alarms.rows);
  groups.erase(std::remove_if(groups.begin(), groups.end(), [](const RuleGroup& g) { return g.rule == "nonfinite"; }),
               groups.end());
  if (!groups.empty()) {
    s << "<table data-table=\"alarm-groups\"><tr><th>rule</th><th>layers</th><th>first step</th><th>times</th>"
         "<th>advice</th><th>first message</th></tr>\n";
    for (const RuleGroup& g : groups)
      s << "<tr data-rule=\"" << esc(g.rule) << "\"><td class=\"bad\">" << esc(g.rule) << "</td><td>"
        << esc(layers_text(g.layers)) << "</td><td class=\"num\">" << (g.first < DBL_MAX ? step_str(g.first) : "")
        << "</td><td class=\"num\">" << g.count << "</td><td class=\"advice\">"
        << (g.advice.empty() ? "—" : esc(g.advice)) << "</td><td>" << esc(g.message) << "</td></tr>\n";
    s << "</table>\n";
  }
  s << "</section>\n";
  return s.str();
}

std::vector<std::pair<std::string, std::string>> summary_rows(const Run& r) {
  std::vector<std::pair<std::string, std::string>> rows;
  if (r.has_config) {
    const Config& c = r.config;
    rows.emplace_back("architecture", architecture_text(r));
    rows.emplace_back("loss", enum_name(kLossKinds, c.loss.kind));
    rows.emplace_back("optimiser", optimiser_text(c));
    rows.emplace_back("learning rate", num(c.optim.lr));
    rows.emplace_back("schedule", schedule_text(c.schedule));
    std::string data = c.data.dataset + ", batch " + std::to_string(c.data.batch_size);
    const std::string source = meta_text(r.meta, "data_source");
    if (!source.empty()) data += " (" + source + ")";
    rows.emplace_back("data", data);
  } else {
    rows.emplace_back("config", r.config_problem.empty() ? "no config.toml" : r.config_problem);
  }
  if (r.has_config && !r.config_problem.empty()) rows.emplace_back("config", r.config_problem);
  std::string run;
  for (const char* k : {"steps", "n_params", "device", "dtype", "seed", "threads", "wall_s"}) {
    const std::string v = meta_text(r.meta, k);
    if (!v.empty()) run += (run.empty() ? "" : ", ") + std::string(k) + " " + v;
  }
  if (!run.empty()) rows.emplace_back("run", run);
  const std::string version = meta_text(r.meta, "version"), rev = meta_text(r.meta, "git_revision");
  if (!version.empty()) rows.emplace_back("curvnet", version + (rev.empty() ? "" : " (" + rev + ")"));
  double st, v;
  if (!r.metrics.rows.empty()) {
    const json& last = r.metrics.rows.back();
    if (get_step(last, &st) && get_num(last, "loss", &v))
      rows.emplace_back("last train loss", num(v) + " at step " + step_str(st));
  }
  for (const std::string split : {"val", "test"}) {
    const json* last = nullptr;
    for (const json& e : r.eval.rows)
      if (get_str(e, "split") == split) last = &e;
    if (!last) continue;
    std::string text;
    for (auto it = last->begin(); it != last->end(); ++it) {
      if (it.key() == "split" || it.key() == "epoch" || it.key() == "step" || !it->is_number()) continue;
      text += (text.empty() ? "" : ", ") + it.key() + " " + num(it->get<double>());
    }
    if (get_step(*last, &st)) text += " at step " + step_str(st);
    rows.emplace_back("last " + split, text);
  }
  rows.emplace_back("run directory", r.dir);
  return rows;
}

// Train loss (metrics.jsonl) and eval losses (eval.jsonl) with the primary metric on the right
// axis, in one figure; a diverged run gets a marker at the step it stopped.
std::string quality_plot(const Run& r, std::string* out_primary) {
  std::vector<Series> ser;
  Series train{"train loss", {}, "#1f77b4", ""};
  for (const json& m : r.metrics.rows) {
    double st, v;
    if (get_step(m, &st) && get_num(m, "loss", &v)) train.pts.emplace_back(st, v);
  }
  ser.push_back(train);
  std::map<std::string, Series> split_loss;
  for (const json& e : r.eval.rows) {
    double st, v;
    if (!get_step(e, &st) || !get_num(e, "loss", &v)) continue;
    const std::string split = get_str(e, "split", "eval");
    Series& sr = split_loss[split];
    sr.label = split + " loss";
    sr.color = split_color(split);
    sr.dash = "7 3";
    sr.pts.emplace_back(st, v);
  }
  for (auto& [k, sr] : split_loss) ser.push_back(sr);
  bool positive = true;
  for (const auto& sr : ser)
    for (const auto& p : sr.pts) positive = positive && p.second > 0;
  const std::string primary = primary_metric(eval_metrics(r.eval.rows));
  *out_primary = primary;
  if (!primary.empty()) {
    std::map<std::string, Series> by_split;
    for (const json& e : r.eval.rows) {
      double st, v;
      if (!get_step(e, &st) || !get_num(e, primary, &v)) continue;
      const std::string split = get_str(e, "split", "eval");
      Series& sr = by_split[split];
      sr.label = split + " " + primary;
      sr.color = split_color(split);
      sr.right = true;
      sr.pts.emplace_back(st, v);
    }
    for (auto& [k, sr] : by_split) ser.push_back(sr);
  }
  PlotOpts o{"quality", "loss and " + (primary.empty() ? std::string("quality") : primary), "loss",
             positive ? Scale::log : Scale::linear, false};
  o.y2label = primary;
  o.y2_unit_interval = is_unit_metric(primary);
  const Divergence d = find_divergence(r);
  if (d.found) o.markers.push_back({d.step, "diverged at step " + step_str(d.step)});
  return plot_or_nodata(o, ser);
}

std::string section_loss(const Run& r) {
  std::ostringstream s;
  s << "<section id=\"loss\" data-section=\"loss\"><h2>Loss and quality</h2>\n<div class=\"cols\">\n";
  std::string primary;
  s << quality_plot(r, &primary);
  const std::vector<std::string> names = eval_metrics(r.eval.rows);
  if (names.empty()) s << nodata("quality metrics (eval.jsonl)");
  // The other metrics in one figure: metric × split, each its own style.
  std::vector<Series> other;
  for (const std::string& m : names) {
    if (m == primary) continue;
    std::map<std::string, Series> by_split;
    for (const json& e : r.eval.rows) {
      double st, v;
      if (!get_step(e, &st) || !get_num(e, m, &v)) continue;
      const std::string split = get_str(e, "split", "eval");
      by_split[split].label = split + " " + m;
      by_split[split].pts.emplace_back(st, v);
    }
    for (auto& [k, sr] : by_split) other.push_back(sr);
  }
  if (!other.empty()) {
    bool unit = true;
    for (const Series& sr : other)
      for (const auto& p : sr.pts) unit = unit && p.second >= 0 && p.second <= 1;
    s << plot_or_nodata({"quality/other", "other quality metrics", "value", Scale::linear, unit}, other);
  }
  Series lr{"lr", {}, "#2ca02c", ""};
  Series gn{"grad_norm (before clipping)", {}, "#1f77b4", ""}, gc{"grad_norm_clipped", {}, "#ff7f0e", "7 3"};
  for (const json& m : r.metrics.rows) {
    double st, v;
    if (!get_step(m, &st)) continue;
    if (get_num(m, "lr", &v)) lr.pts.emplace_back(st, v);
    if (get_num(m, "grad_norm", &v)) gn.pts.emplace_back(st, v);
    if (get_num(m, "grad_norm_clipped", &v)) gc.pts.emplace_back(st, v);
  }
  s << plot_or_nodata({"lr", "learning rate", "lr", Scale::linear, false}, {lr});
  s << plot_or_nodata({"grad_norm", "whole-network gradient norm", "‖g‖₂", Scale::log, false}, {gn, gc});
  s << "</div>\n</section>\n";
  return s.str();
}

std::string section_depth(const Run& r) {
  std::ostringstream s;
  s << "<section id=\"depth\" data-section=\"depth\"><h2>Against depth: first and last logged step</h2>\n";
  if (r.stats.rows.empty()) {
    s << nodata("per-layer statistics (stats.jsonl)") << "</section>\n";
    return s.str();
  }
  s << "<p>Per layer, at the first logged step (dashed; step 0 is the initialisation) and the last (solid): the "
       "variance of each activation layer's output (<code>act_var</code>; its input, the pre-activation, as "
       "<code>pre_act_var</code> when logged) and the gradient norm of each layer's "
       "weights (<code>grad_l2</code>). A variance falling layer by layer at step 0 is a signal that dies with "
       "depth; a gradient norm falling towards the input, gradients that vanish.</p>\n<div class=\"cols\">\n";
  std::vector<Series> av, gl;
  depth_series(depth_profile(r.stats, "act_var"), "output ", "#1f77b4", &av);
  depth_series(depth_profile(r.stats, "pre_act_var"), "input ", "#ff7f0e", &av);
  depth_series(depth_profile(r.stats, "grad_l2"), "", "#d62728", &gl);
  s << plot_or_nodata(depth_opts("depth/act_var", "activation variance against depth", "variance"), av);
  s << plot_or_nodata(depth_opts("depth/grad_l2", "gradient norm against depth", "‖∇W‖₂"), gl);
  s << "</div>\n</section>\n";
  return s.str();
}

std::string section_layers(const Log& stats) {
  std::ostringstream s;
  s << "<section id=\"layers\" data-section=\"layers\"><h2>Layers: gradients and updates</h2>\n";
  if (stats.rows.empty()) {
    s << nodata("per-layer statistics (stats.jsonl)") << "</section>\n";
    return s.str();
  }
  s << "<div class=\"cols\">\n";
  s << plot_or_nodata({"layer/grad_l2", "gradient norm per layer", "‖∇W‖₂", Scale::log, false},
                      per_layer(stats.rows, "grad_l2"));
  s << plot_or_nodata({"layer/update_ratio", "update ratio per layer", "‖Δw‖/‖w‖", Scale::log, false},
                      per_layer(stats.rows, "update_ratio"));
  s << plot_or_nodata({"layer/weight_norm", "weight norm per layer", "‖W‖₂", Scale::log, false},
                      per_layer(stats.rows, "weight_norm"));
  s << "</div>\n";
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
  s << "<div class=\"cols\">\n";
  s << plot_or_nodata({"activation/dead_share", "dead units (share per layer)", "dead share", Scale::linear, true},
                      per_layer(stats.rows, "dead_share"));
  s << plot_or_nodata(
      {"activation/saturated_share", "saturated units (share per layer)", "saturated share", Scale::linear, true},
      per_layer(stats.rows, "saturated_share"));
  s << "</div>\n";
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
  s << "<div class=\"cols\">\n";
  s << plot_or_nodata({"curvature/lambda_max", "largest eigenvalue λmax", "λmax", Scale::symlog, false},
                      series_of("lambda_max"));
  s << plot_or_nodata({"curvature/condition", "condition number", "κ", Scale::log, false}, series_of("condition"));
  s << "</div>\n";
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
      s << "<h3>" << esc(kind) << "</h3><div class=\"cols\" data-kind=\"" << esc(kind) << "\">\n";
      current_kind = kind;
    }
    const std::string name = "singular_values/" + kind + (layer < 0 ? "" : "/layer" + std::to_string(layer));
    const std::string title = kind + " singular values" + (layer < 0 ? "" : ", layer " + std::to_string(layer));
    const std::string svg = values_heatmap(name, title, steps, "singular value");
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
       "<th>threshold</th><th>message</th><th>advice</th></tr>\n";
  size_t shown = 0;
  for (const json& a : alarms.rows) {
    if (++shown > 500) break;
    double st = NAN, v = NAN, th = NAN;
    get_step(a, &st);
    const bool hv = get_num(a, "value", &v), ht = get_num(a, "threshold", &th);
    s << "<tr><td class=\"num\">" << (std::isfinite(st) ? step_str(st) : "") << "</td><td>"
      << esc(layer_name(get_layer(a))) << "</td><td>" << esc(get_str(a, "rule")) << "</td><td class=\"num\">"
      << (hv ? num(v) : "") << "</td><td class=\"num\">" << (ht ? num(th) : "") << "</td><td>"
      << esc(get_str(a, "message")) << "</td><td>" << esc(get_str(a, "advice")) << "</td></tr>\n";
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

// The capacity verdicts `curvnet verdict` wrote (docs/capacity.md, "Verdicts"), with their evidence.
std::string section_capacity(const std::string& run_dir) {
  std::ostringstream s;
  s << "<section id=\"capacity\" data-section=\"capacity\"><h2>Capacity verdicts</h2>\n";
  const std::string path = run_dir + "/" + kVerdictsFile;
  json v;
  try {
    if (std::filesystem::exists(path)) v = json::parse(read_file(path));
  } catch (const std::exception&) {
    v = json();
  }
  if (!v.is_object() || !v.contains("layers")) {
    s << "<p class=\"nodata\">no capacity verdicts yet: <code>curvnet verdict RUN_DIR</code> computes them "
         "(too few / too many neurons, redundant layer, problem layer, fix initialisation)</p>\n</section>\n";
    return s.str();
  }
  s << "<p>From the checkpoint at step " << v.value("step", int64_t{0})
    << " and the run's logs; the rules and thresholds are in docs/capacity.md (Verdicts).</p>\n";
  s << "<table data-table=\"capacity\"><tr><th>layer</th><th>units</th><th>verdict</th><th>from step</th>"
       "<th>rule</th><th>evidence</th></tr>\n";
  for (const json& l : v["layers"])
    for (const json& x : l.value("verdicts", json::array())) {
      const std::string kind = x.value("kind", "");
      s << "<tr data-layer=\"" << l.value("layer", int64_t{0}) << "\"><td>" << l.value("layer", int64_t{0})
        << "</td><td class=\"num\">" << l.value("units", int64_t{0}) << "</td><td class=\"verdict "
        << (kind == "healthy" ? "healthy" : "bad") << "\">" << esc(kind) << "</td><td class=\"num\">"
        << x.value("from_step", int64_t{0}) << "</td><td>" << esc(x.value("rule", "")) << "</td><td><code>"
        << esc(x.contains("evidence") ? x["evidence"].dump() : "") << "</code></td></tr>\n";
    }
  s << "</table>\n</section>\n";
  return s.str();
}

}  // namespace

void check_run_dir(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec) || !std::filesystem::exists(RunLayout(path).metrics_log(), ec))
    throw InputError(path + ": not a run directory (expected a directory with metrics.jsonl)");
}

std::string render_report(const std::string& run_dir) {
  const Run r = load_run(run_dir);
  std::ostringstream h;
  h << page_head("curvnet report: " + r.name);
  h << "<h1>curvnet run report: " << esc(r.name) << "</h1>\n";
  h << section_status(r);
  h << "<nav><a href=\"#loss\">loss</a> · <a href=\"#depth\">depth</a> · <a href=\"#spectra\">spectra</a> · "
       "<a href=\"#layers\">layers</a> · <a href=\"#activations\">activations</a> · <a href=\"#curvature\">curvature"
       "</a> · <a href=\"#singular\">singular values</a> · <a href=\"#alarms\">alarms</a> · <a href=\"#verdicts\">"
       "verdicts</a> · <a href=\"#capacity\">capacity</a> · <a href=\"#config\">config</a></nav>\n";
  h << "<section id=\"summary\" data-section=\"summary\"><h2>What was trained</h2>\n"
    << kv_table(summary_rows(r), "summary") << "</section>\n";
  if (r.metrics.rows.empty() && r.eval.rows.empty()) {
    const Divergence d = find_divergence(r);
    h << "<section id=\"loss\" data-section=\"loss\"><h2>Loss and quality</h2>\n"
      << nodata("training metrics (metrics.jsonl)");
    if (d.found)
      h << "<p class=\"bad\">The run diverged at step " << step_str(d.step)
        << " before its first logged step (train.log_every), so no loss was logged.</p>\n";
    h << "</section>\n";
  } else
    h << section_loss(r);
  h << section_depth(r);
  h << section_spectra(r.spectra, r.problems, r.diag.rows);
  h << section_layers(r.stats);
  h << section_activations(r.stats);
  h << section_curvature(r.diag);
  h << section_singular(r.singular);
  h << section_alarms(r.alarms);
  h << section_verdicts(r.stats, r.diag, r.alarms);
  h << section_capacity(run_dir);
  if (!r.config_text.empty())
    h << "<section id=\"config\" data-section=\"config\"><h2>Resolved config</h2>\n<details><summary>config.toml"
         "</summary><pre>"
      << esc(r.config_text) << "</pre></details></section>\n";
  h << "</body>\n</html>\n";
  return h.str();
}

void write_report(const std::string& run_dir, const std::string& out_file) {
  write_file_atomic(out_file.empty() ? RunLayout(run_dir).report() : out_file, render_report(run_dir));
}

}  // namespace cn
