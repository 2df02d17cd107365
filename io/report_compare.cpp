// The page overlaying several runs (report.h: render_comparison).
#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "io/files.h"
#include "io/report.h"
#include "io/report_run.h"
#include "io/report_svg.h"

namespace cn {
namespace {

using namespace report;

// ---- several runs -------------------------------------------------------------------------

// Names that tell the runs apart: the directory names, or the paths when two names are equal.
std::vector<std::string> run_labels(const std::vector<Run>& runs) {
  std::vector<std::string> names;
  for (const Run& r : runs) names.push_back(r.name);
  for (size_t i = 0; i < runs.size(); ++i)
    if (std::count(names.begin(), names.end(), runs[i].name) > 1) names[i] = runs[i].dir;
  return names;
}

std::string comparison_table(const std::vector<Run>& runs, const std::vector<std::string>& labels) {
  std::ostringstream s;
  s << "<table data-table=\"runs\"><tr><th>run</th><th>status</th><th>architecture</th><th>optimiser</th>"
       "<th>lr</th><th>schedule</th><th>last train loss</th><th>last val / test</th></tr>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    const auto [status, headline] = run_status(r);
    s << "<tr data-run=\"" << esc(labels[i]) << "\" data-status=\"" << status << "\"><td>" << esc(labels[i])
      << "</td><td class=\"" << (status == "healthy" ? "healthy" : "bad") << "\">" << esc(headline) << "</td>";
    s << "<td>" << esc(r.has_config ? architecture_text(r) : "") << "</td><td>"
      << esc(r.has_config ? optimiser_text(r.config) : "") << "</td><td class=\"num\">"
      << (r.has_config ? num(r.config.optim.lr) : "") << "</td><td>"
      << esc(r.has_config ? schedule_text(r.config.schedule) : "") << "</td>";
    double v;
    s << "<td class=\"num\">" << (!r.metrics.rows.empty() && get_num(r.metrics.rows.back(), "loss", &v) ? num(v) : "")
      << "</td>";
    std::string q;
    for (const std::string split : {"val", "test"}) {
      const json* last = nullptr;
      for (const json& e : r.eval.rows)
        if (get_str(e, "split") == split) last = &e;
      const std::string m = primary_metric(eval_metrics(r.eval.rows));
      if (last && !m.empty() && get_num(*last, m, &v)) q += (q.empty() ? "" : ", ") + split + " " + m + " " + num(v);
    }
    s << "<td>" << esc(q) << "</td></tr>\n";
  }
  s << "</table>\n";
  return s.str();
}

std::string comparison_plots(const std::vector<Run>& runs, const std::vector<std::string>& labels) {
  std::ostringstream s;
  std::vector<Series> loss, grad, act, lmax;
  std::vector<Marker> markers;
  for (size_t i = 0; i < runs.size(); ++i) {
    const Run& r = runs[i];
    const std::string col = series_style(i).color;
    Series train{labels[i] + " train", {}, col, ""}, val{labels[i] + " val", {}, col, "7 3"};
    for (const json& m : r.metrics.rows) {
      double st, v;
      if (get_step(m, &st) && get_num(m, "loss", &v)) train.pts.emplace_back(st, v);
    }
    for (const json& e : r.eval.rows) {
      double st, v;
      if (get_str(e, "split") == "val" && get_step(e, &st) && get_num(e, "loss", &v)) val.pts.emplace_back(st, v);
    }
    loss.push_back(train);
    loss.push_back(val);
    const Divergence d = find_divergence(r);
    if (d.found) markers.push_back({d.step, labels[i] + " diverged"});
    depth_series(depth_profile(r.stats, "grad_l2"), labels[i] + " ", col, &grad);
    depth_series(depth_profile(r.stats, "act_var"), labels[i] + " ", col, &act);
    // λmax of the first curvature kind each layer has (loss before the others), per layer.
    std::map<int, Series> by_layer;
    std::map<int, std::string> kind_of;
    for (const json& row : r.diag.rows) {
      const std::string kind = get_str(row, "kind");
      const int layer = get_layer(row);
      if (!kind_of.count(layer) || (kind == "loss" && kind_of[layer] != "loss")) {
        kind_of[layer] = kind;
        by_layer[layer].pts.clear();
      }
    }
    for (const json& row : r.diag.rows) {
      double st, v;
      const int layer = get_layer(row);
      if (get_str(row, "kind") != kind_of[layer] || !get_step(row, &st) || !get_num(row, "lambda_max", &v)) continue;
      Series& sr = by_layer[layer];
      sr.label = labels[i] + " " + kind_of[layer] + (layer < 0 ? "" : " L" + std::to_string(layer));
      sr.pts.emplace_back(st, v);
    }
    size_t k = 0;
    for (auto& [l, sr] : by_layer) {
      if (sr.pts.empty()) continue;
      sr.color = col;  // the run's colour, a dash pattern per layer
      sr.dash = series_style(k++).dash;
      lmax.push_back(sr);
    }
  }
  bool positive = true;
  for (const auto& sr : loss)
    for (const auto& p : sr.pts) positive = positive && p.second > 0;
  PlotOpts lo{"compare/loss", "loss (solid: train, dashed: val)", "loss", positive ? Scale::log : Scale::linear, false};
  lo.markers = markers;
  s << "<div class=\"cols\">\n";
  s << plot_or_nodata(lo, loss);
  s << plot_or_nodata({"compare/lambda_max", "largest eigenvalue λmax per layer", "λmax", Scale::symlog, false}, lmax);
  s << plot_or_nodata(
      depth_opts("compare/grad_l2", "gradient norm against depth (dashed: first logged step, solid: last)", "‖∇W‖₂"),
      grad);
  s << plot_or_nodata(
      depth_opts("compare/act_var", "activation variance against depth (dashed: first logged step, solid: last)",
                 "act_var"),
      act);
  s << "</div>\n";
  return s.str();
}

}  // namespace

std::string render_comparison(const std::vector<std::string>& run_dirs) {
  std::vector<Run> runs;
  for (const std::string& d : run_dirs) runs.push_back(load_run(d));
  const std::vector<std::string> labels = run_labels(runs);
  std::ostringstream h;
  h << page_head("curvnet comparison: " + std::to_string(runs.size()) + " runs");
  h << "<h1>curvnet comparison: " << runs.size() << " runs</h1>\n";
  h << "<section id=\"runs\" data-section=\"runs\"><h2>Runs</h2>\n" << comparison_table(runs, labels) << "</section>\n";
  h << "<section id=\"compare\" data-section=\"compare\"><h2>Side by side</h2>\n"
       "<p>One colour per run. Loss: solid train, dashed val. Against depth: dashed the first logged step (step 0 "
       "is the initialisation), solid the last. λmax: each layer's loss Hessian (or the first curvature kind "
       "logged for it) at every curvature checkpoint.</p>\n"
    << comparison_plots(runs, labels) << "</section>\n";
  h << "</body>\n</html>\n";
  return h.str();
}

void write_comparison(const std::vector<std::string>& run_dirs, const std::string& out_file) {
  write_file_atomic(out_file, render_comparison(run_dirs));
}

}  // namespace cn
