// What the report reads from a run directory, and the parts the run report and the comparison
// page share: the run's status, what was trained, profiles against depth, the page's head.
// Internal to io/report*.cpp.
#pragma once
#include <cfloat>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "io/report_spectra.h"
#include "io/report_svg.h"

namespace cn::report {

// Everything the report reads from one run directory.
struct Run {
  std::string dir, name;
  Log metrics, eval, stats, diag, alarms;
  json meta = json::object();
  std::string config_text;
  std::string config_problem;  // why config.toml could not be read, or the keys left out
  bool has_config = false;
  Config config;
  Spectra spectra, singular;
  std::vector<std::string> problems;
};

// The run's config.toml as a Config. A run written by a newer curvnet may hold keys this one
// does not know: each such line is left out (and named in config_problem).
void parse_run_config(Run* r);
Run load_run(const std::string& dir);

// Where a run stopped at a non-finite value: the `nonfinite` alarm (traced tensor and pass),
// else the first metrics row whose loss is not finite.
struct Divergence {
  bool found = false;
  double step = 0;
  int layer = -1;
  std::string pass, tensor, message;
};
Divergence find_divergence(const Run& r);

struct RuleGroup {
  std::string rule;
  std::set<int> layers;
  double first = DBL_MAX;  // the first step it fired at
  size_t count = 0;
  std::string advice, message;
};
// Alarms grouped by rule, in order of first firing.
std::vector<RuleGroup> group_alarms(const std::vector<json>& alarms);
std::string layers_text(const std::set<int>& layers);
// "healthy" | "alarms" | "diverged" | "unknown" (no alarms.jsonl), and the one-line headline.
std::pair<std::string, std::string> run_status(const Run& r);

std::string architecture_text(const Run& r);
std::string optimiser_text(const Config& c);
std::string schedule_text(const ScheduleConfig& s);
std::string meta_text(const json& meta, const std::string& key);
std::string json_scalar_text(const json& v);
std::string kv_table(const std::vector<std::pair<std::string, std::string>>& rows, const std::string& name);

// Eval metric columns other than loss, in order of first appearance; the primary one
// (accuracy, else r2, else the first).
std::vector<std::string> eval_metrics(const std::vector<json>& rows);
std::string primary_metric(const std::vector<std::string>& names);
bool is_unit_metric(const std::string& m);
std::string split_color(const std::string& split);

// `key` per layer at the first and the last logged step that carry it (stats.jsonl).
struct DepthProfile {
  double first_step = 0, last_step = 0;
  std::map<int, double> first, last;
};
DepthProfile depth_profile(const Log& stats, const std::string& key);
// Series "PREFIXstep N" over layer index: the first step dashed, the last solid.
void depth_series(const DepthProfile& p, const std::string& prefix, const std::string& color, std::vector<Series>* out);
PlotOpts depth_opts(const std::string& name, const std::string& title, const std::string& ylabel);

// <!DOCTYPE html> up to <body>, with the report's style sheet.
std::string page_head(const std::string& title);

}  // namespace cn::report
