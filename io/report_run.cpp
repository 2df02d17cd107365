// What the report reads from a run directory and the parts both pages share (report_run.h).
#include "io/report_run.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <filesystem>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <vector>

#include "config/kinds.h"
#include "config/layer_kind.h"
#include "io/files.h"
#include "io/run_layout.h"

namespace cn::report {

// ---- page --------------------------------------------------------------------------------

namespace {
const char* kStyle = R"CSS(
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 20px auto;
       max-width: 1560px; color: #222; padding: 0 16px; }
h1 { font-size: 22px; } h2 { font-size: 18px; border-bottom: 1px solid #ddd; padding-bottom: 4px; margin-top: 28px; }
h3 { font-size: 15px; }
figure { margin: 6px 0; min-width: 0; }
figcaption { font-size: 12px; color: #444; margin: 2px 8px 0 8px; }
figcaption.caveat { color: #8a4b00; }
.cols { display: grid; grid-template-columns: repeat(2, minmax(0, 1fr)); gap: 8px 24px; align-items: start; }
@media (max-width: 1000px) { .cols { grid-template-columns: minmax(0, 1fr); } }
svg.plot { background: #fff; display: block; width: 100%; height: auto; }
svg .grid { stroke: #e6e6e6; stroke-width: 1; }
svg .frame { fill: none; stroke: #999; }
svg .heat-bg { fill: #f4f4f4; }
svg .tickmark { stroke: #999; }
svg .marker { stroke: #b42318; stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .marker-text { fill: #b42318; font-weight: 600; }
svg text { font-size: 11px; fill: #333; }
svg .title { font-size: 13px; font-weight: 600; }
svg .label { font-size: 12px; }
svg .panel { font-size: 11px; fill: #666; font-style: italic; }
svg .bar-label { font-size: 11px; font-weight: 600; }
svg .bar-label.inside { fill: #fff; }
svg path.line { stroke-width: 1.8; }
svg rect.bar, svg rect.legend.bar { fill: #4c72b0; }
svg rect.bar.zero { fill: #555; }
svg rect.bar.neg { fill: #c44e52; }
svg .outline, svg rect.legend.outline { fill: none; stroke: #222; stroke-width: 1; stroke-dasharray: 3 2; }
.nodata { color: #888; font-style: italic; }
table { border-collapse: collapse; font-size: 13px; margin: 8px 0; }
td, th { border: 1px solid #ddd; padding: 3px 8px; text-align: left; vertical-align: top; }
th { background: #f6f6f6; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.healthy { color: #1a7f37; font-weight: 600; }
.bad { color: #b42318; font-weight: 600; }
.status { border: 2px solid #999; border-radius: 6px; padding: 10px 16px; margin: 12px 0; }
.status[data-status="healthy"] { border-color: #1a7f37; background: #f0f9f2; }
.status[data-status="alarms"] { border-color: #b54708; background: #fffaeb; }
.status[data-status="diverged"] { border-color: #b42318; background: #fef3f2; }
.status .headline { font-size: 18px; font-weight: 700; margin: 2px 0 6px 0; }
.status table { background: #fff; }
pre { background: #f6f6f6; padding: 8px; overflow-x: auto; font-size: 12px; }
nav { font-size: 13px; margin: 6px 0; }
)CSS";
}  // namespace

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

// The run's config.toml as a Config. A run written by a newer curvnet may hold keys this one
// does not know: each such line is left out (and named) so the rest still reads.
void parse_run_config(Run* r) {
  static const std::regex unknown(R"(^config\.toml:(\d+): ([^:]+): unknown key)");
  std::vector<std::string> lines;
  std::istringstream in(r->config_text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  std::vector<std::string> ignored;
  for (int attempt = 0; attempt < 32; ++attempt) {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    try {
      r->config = parse_config(text, "config.toml");
      r->has_config = true;
      if (!ignored.empty()) {
        r->config_problem = "keys this curvnet does not know, left out:";
        for (const std::string& k : ignored) r->config_problem += " " + k;
      }
      return;
    } catch (const std::exception& e) {
      std::smatch m;
      const std::string what = e.what();
      const size_t line = std::regex_search(what, m, unknown) ? std::stoul(m[1].str()) : 0;
      if (line == 0 || line > lines.size()) {
        r->config_problem = "unreadable: " + what;
        std::replace(r->config_problem.begin(), r->config_problem.end(), '\n', ' ');
        return;
      }
      ignored.push_back(m[2].str());
      lines[line - 1] = "";
    }
  }
}

Run load_run(const std::string& dir) {
  Run r;
  const RunLayout run(dir);
  r.dir = dir;
  r.name = std::filesystem::path(dir).filename().string();
  if (r.name.empty() || r.name == ".") r.name = std::filesystem::absolute(dir).parent_path().filename().string();
  r.metrics = read_log(run.metrics_log());
  r.eval = read_log(run.eval_log());
  r.stats = read_log(run.stats_log());
  r.diag = read_log(run.diagnostics_log());
  r.alarms = read_log(run.alarms_log());
  try {
    const json meta = json::parse(read_file(run.meta()));
    if (meta.is_object()) r.meta = meta;
  } catch (const std::exception&) {}
  try {
    r.config_text = read_file(run.config());
  } catch (const std::exception&) {}
  if (!r.config_text.empty()) parse_run_config(&r);
  r.spectra = read_spectra(run.root(), &r.singular, &r.problems);
  return r;
}

// ---- the answer first: the status box ------------------------------------------------------

Divergence find_divergence(const Run& r) {
  Divergence d;
  for (const json& a : r.alarms.rows)
    if (get_str(a, "rule") == "nonfinite" && get_step(a, &d.step)) {
      d.found = true;
      d.layer = get_layer(a);
      d.pass = get_str(a, "pass");
      d.tensor = get_str(a, "tensor");
      d.message = get_str(a, "message");
      return d;
    }
  for (const json& m : r.metrics.rows) {
    double v;
    const auto it = m.find("loss");
    if (it != m.end() && !get_num(m, "loss", &v) && get_step(m, &d.step)) {
      d.found = true;
      d.message = "train loss " + get_str(m, "loss_status", "not finite") + " at step " + step_str(d.step);
      return d;
    }
  }
  return d;
}

// Alarms grouped by rule, in order of first firing.
std::vector<RuleGroup> group_alarms(const std::vector<json>& alarms) {
  std::map<std::string, RuleGroup> by_rule;
  for (const json& a : alarms) {
    const std::string rule = get_str(a, "rule", "alarm");
    RuleGroup& g = by_rule[rule];
    g.rule = rule;
    g.layers.insert(get_layer(a));
    ++g.count;
    double st;
    const bool earlier = get_step(a, &st) && st < g.first;
    if (earlier) g.first = st;
    const std::string advice = get_str(a, "advice"), message = get_str(a, "message");
    if (!advice.empty() && (g.advice.empty() || earlier)) g.advice = advice;
    if (!message.empty() && (g.message.empty() || earlier)) g.message = message;
  }
  std::vector<RuleGroup> out;
  for (auto& [rule, g] : by_rule) out.push_back(std::move(g));
  std::stable_sort(out.begin(), out.end(), [](const RuleGroup& a, const RuleGroup& b) { return a.first < b.first; });
  return out;
}

std::string layers_text(const std::set<int>& layers) {
  std::string t;
  for (int l : layers) t += (t.empty() ? "" : ", ") + (l < 0 ? std::string("network") : std::to_string(l));
  return t;
}

// "healthy" | "alarms" | "diverged" | "unknown" (no alarms.jsonl), and the one-line headline.
std::pair<std::string, std::string> run_status(const Run& r) {
  const Divergence d = find_divergence(r);
  if (d.found) return {"diverged", "diverged at step " + step_str(d.step)};
  if (!r.alarms.exists) return {"unknown", "no alarms.jsonl: the run's health is unknown"};
  if (r.alarms.rows.empty()) return {"healthy", "healthy: no alarms"};
  std::string rules;
  for (const RuleGroup& g : group_alarms(r.alarms.rows)) rules += (rules.empty() ? "" : ", ") + g.rule;
  return {"alarms",
          std::to_string(r.alarms.rows.size()) + " alarm" + (r.alarms.rows.size() == 1 ? "" : "s") + ": " + rules};
}

// ---- what was trained ----------------------------------------------------------------------

std::string list_text(const std::vector<int64_t>& v) {
  std::string t;
  for (int64_t x : v) t += (t.empty() ? "" : ", ") + std::to_string(x);
  return "[" + t + "]";
}

// Layer widths in → ... → out from the checkpoint rows of stats.jsonl (rows × cols per layer).
std::string widths_text(const Log& stats) {
  std::map<int, std::pair<int64_t, int64_t>> shape;
  for (const json& r : stats.rows) {
    double rows, cols;
    if (get_num(r, "rows", &rows) && get_num(r, "cols", &cols))
      shape[get_layer(r)] = {static_cast<int64_t>(rows), static_cast<int64_t>(cols)};
  }
  if (shape.empty()) return "";
  std::string t = std::to_string(shape.begin()->second.second);
  for (const auto& [layer, rc] : shape) t += " → " + std::to_string(rc.first);
  return t;
}

std::string architecture_text(const Run& r) {
  const ModelConfig& m = r.config.model;
  std::string t;
  if (!m.layers.empty()) {
    for (const LayerSpec& l : m.layers) {
      std::string one = enum_name(kLayerKinds, l.type);
      if (l.type == LayerKind::linear) one += "(" + std::to_string(l.out) + ")";
      if (l.type == LayerKind::dropout) one += "(" + num(l.p) + ")";
      t += (t.empty() ? "" : " → ") + one;
    }
  } else {
    t = "MLP, hidden " + list_text(m.hidden) + ", " + enum_name(kLayerKinds, m.activation);
    if (m.batchnorm) t += ", BatchNorm";
    if (m.dropout > 0) t += ", dropout " + num(m.dropout);
  }
  t += "; init " + std::string(enum_name(kInits, m.init)) + ", bias " + enum_name(kInits, m.bias_init);
  const std::string w = widths_text(r.stats);
  if (!w.empty()) t += "; widths " + w;
  return t;
}

std::string optimiser_text(const Config& c) {
  const OptimConfig& o = c.optim;
  std::string t = enum_name(kOptimKinds, o.name);
  switch (o.name) {
    case OptimKind::momentum:
    case OptimKind::nesterov:
      t += ", momentum " + num(o.momentum);
      break;
    case OptimKind::adam:
    case OptimKind::adamw:
    case OptimKind::nadam:
    case OptimKind::amsgrad:
      t += ", betas (" + num(o.beta1) + ", " + num(o.beta2) + "), eps " + num(o.eps);
      break;
    case OptimKind::rmsprop:
      t += ", alpha " + num(o.alpha) + ", eps " + num(o.eps);
      break;
    default:
      break;
  }
  if (o.weight_decay > 0) t += ", weight decay " + num(o.weight_decay);
  if (o.l1 > 0) t += ", L1 " + num(o.l1);
  for (const PerLayerOptim& p : o.per_layer)
    if (p.lr_scale != 1.0) t += ", layer " + std::to_string(p.layer) + " lr × " + num(p.lr_scale);
  if (c.clip.mode != ClipMode::none) t += "; clip " + std::string(enum_name(kClipModes, c.clip.mode));
  return t;
}

std::string schedule_text(const ScheduleConfig& s) {
  std::string t = enum_name(kScheduleKinds, s.kind);
  if (s.kind == ScheduleKind::step || s.kind == ScheduleKind::exponential)
    t += ", gamma " + num(s.gamma) + (s.kind == ScheduleKind::step ? ", every " + std::to_string(s.step_size) : "");
  if (s.kind == ScheduleKind::cosine || s.kind == ScheduleKind::cosine_restarts)
    t += ", min lr " + num(s.min_lr) + (s.total_steps > 0 ? ", over " + std::to_string(s.total_steps) + " steps" : "");
  if (s.warmup_steps > 0) t += ", warm-up " + std::to_string(s.warmup_steps) + " steps";
  return t;
}

std::string meta_text(const json& meta, const std::string& key) {
  const auto it = meta.find(key);
  return it == meta.end() || it->is_null() || it->is_object() || it->is_array() ? "" : json_scalar_text(*it);
}

// ---- loss and quality -------------------------------------------------------------------------

// The primary quality metric: accuracy, else r2, else the first eval metric.
std::string primary_metric(const std::vector<std::string>& names) {
  for (const char* m : {"accuracy", "r2"})
    if (std::find(names.begin(), names.end(), m) != names.end()) return m;
  return names.empty() ? "" : names.front();
}

bool is_unit_metric(const std::string& m) {
  return m == "accuracy" || m == "precision" || m == "recall" || m == "f1" || m == "auc";
}

std::string split_color(const std::string& split) {
  return split == "val" ? "#ff7f0e" : split == "test" ? "#d62728" : "#9467bd";
}

// ---- against depth ------------------------------------------------------------------------

DepthProfile depth_profile(const Log& stats, const std::string& key) {
  DepthProfile p;
  double lo = DBL_MAX, hi = -DBL_MAX;
  for (const json& r : stats.rows) {
    double st, v;
    if (get_layer(r) < 0 || !get_step(r, &st) || !get_num(r, key, &v)) continue;
    lo = std::min(lo, st);
    hi = std::max(hi, st);
  }
  if (lo > hi) return p;
  p.first_step = lo;
  p.last_step = hi;
  for (const json& r : stats.rows) {
    double st, v;
    if (get_layer(r) < 0 || !get_step(r, &st) || !get_num(r, key, &v)) continue;
    if (st == lo) p.first[get_layer(r)] = v;
    if (st == hi) p.last[get_layer(r)] = v;
  }
  return p;
}

// Series "step N" over layer index for the first (dashed) and last (solid) rows.
void depth_series(const DepthProfile& p, const std::string& prefix, const std::string& color,
                  std::vector<Series>* out) {
  if (p.first.empty()) return;
  Series last{prefix + "step " + step_str(p.last_step), {}, color, ""};
  for (const auto& [l, v] : p.last) last.pts.emplace_back(l, v);
  if (p.first_step < p.last_step) {
    Series first{prefix + "step " + step_str(p.first_step), {}, color, "7 3"};
    for (const auto& [l, v] : p.first) first.pts.emplace_back(l, v);
    out->push_back(first);
  }
  out->push_back(last);
}

PlotOpts depth_opts(const std::string& name, const std::string& title, const std::string& ylabel) {
  PlotOpts o{name, title, ylabel, Scale::log, false};
  o.xlabel = "layer";
  o.x_integer_ticks = true;
  return o;
}

std::string page_head(const std::string& title) {
  return "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
         "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>" +
         esc(title) + "</title>\n<style>" + kStyle + "</style>\n</head>\n<body>\n";
}

}  // namespace cn::report
