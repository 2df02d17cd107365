#include "train/verdict.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iomanip>
#include <map>
#include <sstream>

#include "config/config.h"
#include "core/error.h"
#include "io/run_layout.h"
#include "train/ablation.h"
#include "train/capacity_stats.h"

namespace cn {

using json = nlohmann::json;

namespace {

std::vector<json> read_rows(const std::string& path) {
  std::vector<json> rows;
  std::ifstream in(path);
  for (std::string line; std::getline(in, line);) {
    if (line.empty()) continue;
    try {
      rows.push_back(json::parse(line));
    } catch (const json::exception&) {  // a torn last line of a crashed run
    }
  }
  return rows;
}

double num_or_nan(const json& r, const char* k) {
  return r.contains(k) && r[k].is_number() ? r[k].get<double>() : std::nan("");
}

// Per Linear layer: its block [li, lj), and what the checkpoint shows on the validation split
// (the training split when there is none).
struct Block {
  size_t li = 0, lj = 0;
  bool hidden = false;
  int64_t units = 0;
  double effective_rank = std::nan(""), median_unit_cost = std::nan(""), layer_cost = std::nan("");
  std::string method;
};

template <class T>
std::vector<Block> measure(const std::string& ckpt, const Config& config, int64_t* step) {
  auto e = load_checkpoint_engine<T>(ckpt, config);
  *step = e->st.step;
  const Dataset& d = e->data.val.n > 1 ? e->data.val : e->data.train;
  const BatchView v = view_batch(*e, d, e->eval_chunk(), false);
  const std::vector<LayerSpec> specs = e->model->specs();
  std::vector<Block> out;
  for (size_t li = 0; li < specs.size(); ++li) {
    if (specs[li].type != LayerKind::linear) continue;
    Block b;
    b.li = li;
    b.lj = li + 1;
    while (b.lj < specs.size() && specs[b.lj].type != LayerKind::linear) ++b.lj;
    b.hidden = b.lj < specs.size();
    b.units = e->model->layer(li).out_features();
    if (b.hidden) b.effective_rank = activation_effective_rank(v.outputs[b.lj - 1], v.n, b.units);
    out.push_back(b);
  }
  return out;
}

// The rules read from the run's logs: the alarms of a block's layers, mapped to a problem kind.
VerdictKind problem_of(const std::string& rule) {
  if (rule == "grad_explosion" || rule == "exploding_by_depth" || rule == "weight_norm" || rule == "update_ratio")
    return VerdictKind::exploding;
  if (rule == "frozen_layer" || rule == "vanishing_by_depth" || rule == "grad_vanishing") return VerdictKind::frozen;
  if (rule == "ill_conditioned" || rule == "spectrum_at_zero") return VerdictKind::ill_conditioned;
  if (rule == "saturation" || rule == "dead_units") return VerdictKind::saturated;
  if (rule == "symmetric_units" || rule == "signal_collapse") return VerdictKind::fix_init;
  return VerdictKind::healthy;
}

json verdict(VerdictKind k, const std::string& rule, json evidence, int64_t from_step) {
  return {{"kind", enum_name(kVerdictKinds, k)},
          {"rule", rule},
          {"evidence", std::move(evidence)},
          {"from_step", from_step}};
}

// Problem layers: the alarms of the block's layers [li, lj), by kind; a rule that fired at
// step 0 says: fix the initialisation.
void problem_verdicts(size_t li, size_t lj, const std::vector<json>& alarms, json* vs) {
  std::map<VerdictKind, json> problems;
  for (const json& a : alarms) {
    if (!a.contains("layer") || !a["layer"].is_number()) continue;
    const size_t l = a["layer"].get<size_t>();
    if (l < li || l >= lj) continue;
    const std::string rule = a.value("rule", "");
    const int64_t s = a.contains("step") && a["step"].is_number() ? a["step"].get<int64_t>() : 0;
    VerdictKind k = problem_of(rule);
    if (k == VerdictKind::healthy) continue;
    if (s == 0) k = VerdictKind::fix_init;
    json& p = problems[k];
    if (p.is_null()) p = {{"rules", json::object()}, {"first", a}};
    json& count = p["rules"][rule];
    count = count.is_null() ? 1 : count.get<int64_t>() + 1;
  }
  for (auto& [k, p] : problems) {
    const json& first = p["first"];
    vs->push_back(verdict(k, "alarms of the block's layers: " + p["rules"].dump() + " (docs/doctor.md)",
                          {{"alarms", p["rules"]},
                           {"first_rule", first.value("rule", "")},
                           {"first_layer", first["layer"]},
                           {"value", first.contains("value") ? first["value"] : json()},
                           {"threshold", first.contains("threshold") ? first["threshold"] : json()}},
                          first.contains("step") && first["step"].is_number() ? first["step"].get<int64_t>() : 0));
  }
}

// The output layer's width is the task's, so only the alarm rules judge it; its evidence
// holds what is known of it (no empty capacity fields).
json output_layer_verdict(int64_t units, double grad_share, double val_improvement, int64_t step) {
  json evidence = {{"units", units}};
  if (std::isfinite(grad_share)) evidence["grad_share_last_quarter"] = grad_share;
  if (std::isfinite(val_improvement)) evidence["val_improvement_last_quarter"] = val_improvement;
  return verdict(VerdictKind::healthy,
                 "output layer: the capacity rules judge hidden layers; no alarm of its layers fired", evidence, step);
}

}  // namespace

json run_verdicts(const std::string& run_dir, const VerdictThresholds& t) {
  const std::string ckpt = resolve_checkpoint(run_dir);
  const std::string root = checkpoint_run_dir(ckpt);
  const RunLayout layout(root);
  const Config config = load_config(layout.config());
  int64_t step = 0;
  std::vector<Block> blocks =
      config.train.dtype == DType::float64 ? measure<double>(ckpt, config, &step) : measure<float>(ckpt, config, &step);
  // Ablation: the blocks, then each hidden layer's units (up to kMaxUnits of them).
  constexpr int64_t kMaxUnits = 256;
  AblationOptions ao;
  ao.split = "val";
  if (load_config(layout.config()).data.val_fraction <= 0) ao.split = "train";
  for (const json& r : ablate_run(ckpt, ao))
    for (Block& b : blocks)
      if (b.li == r["layer"].get<size_t>()) {
        b.layer_cost = num_or_nan(r, "rel_delta_remove");
        b.method = r["method"].get<std::string>();
      }
  for (Block& b : blocks) {
    if (!b.hidden || b.units > kMaxUnits) continue;
    AblationOptions uo = ao;
    uo.whole_layers = false;
    uo.layer = static_cast<int64_t>(b.li);
    std::vector<double> costs;
    for (const json& r : ablate_run(ckpt, uo)) costs.push_back(num_or_nan(r, "rel_delta_remove"));
    std::sort(costs.begin(), costs.end());
    if (!costs.empty()) b.median_unit_cost = costs[costs.size() / 2];
  }
  // Training-side evidence: the validation curve's last quarter, the gradient shares, the alarms.
  std::vector<std::pair<int64_t, double>> val;
  for (const json& r : read_rows(layout.eval_log()))
    if (r.value("split", "") == "val" && r.contains("loss") && r["loss"].is_number())
      val.emplace_back(r["step"].get<int64_t>(), r["loss"].get<double>());
  double improvement = std::nan("");
  int64_t quarter_step = 0;
  if (val.size() >= 4) {
    const auto& q = val[val.size() - 1 - (val.size() - 1) / 4];
    double best_before = q.second, best_after = q.second;
    for (size_t i = 0; i < val.size(); ++i)
      if (val[i].first <= q.first)
        best_before = std::min(best_before, val[i].second);
      else
        best_after = std::min(best_after, val[i].second);
    improvement = (best_before - best_after) / std::abs(best_before);
    quarter_step = q.first;
  }
  const int64_t last_step = val.empty() ? step : val.back().first;
  std::map<int64_t, std::pair<double, int64_t>> grad_share;  // layer: sum, count over the last quarter
  for (const json& r : read_rows(layout.stats_log()))
    if (r.value("kind", "") == "step" && r.contains("grad_share") && r["grad_share"].is_number() &&
        r["step"].get<int64_t>() >= quarter_step) {
      auto& g = grad_share[r["layer"].get<int64_t>()];
      g.first += r["grad_share"].get<double>();
      ++g.second;
    }
  const std::vector<json> alarms = read_rows(layout.alarms_log());
  const double n_linear = static_cast<double>(blocks.size());

  json layers = json::array();
  for (const Block& b : blocks) {
    json vs = json::array();
    const double ratio = b.hidden ? b.effective_rank / static_cast<double>(b.units) : std::nan("");
    const auto gs = grad_share.find(static_cast<int64_t>(b.li));
    const double share =
        gs != grad_share.end() && gs->second.second > 0 ? gs->second.first / gs->second.second : std::nan("");
    json cap = {{"units", b.units},
                {"effective_rank", b.effective_rank},
                {"rank_ratio", ratio},
                {"median_unit_cost", b.median_unit_cost},
                {"val_improvement_last_quarter", improvement},
                {"last_quarter_from_step", quarter_step}};
    if (b.hidden && ratio >= t.rank_full && b.median_unit_cost >= t.unit_cost && improvement < t.plateau)
      vs.push_back(verdict(VerdictKind::too_few,
                           "effective_rank/units >= " + std::to_string(t.rank_full) +
                               " and median unit cut cost >= " + std::to_string(t.unit_cost) +
                               " and val_loss improvement over the last quarter < " + std::to_string(t.plateau),
                           cap, step));
    if (b.hidden && ratio <= t.rank_sparse &&
        static_cast<double>(b.units) - b.effective_rank >= static_cast<double>(t.spare_min))
      vs.push_back(verdict(VerdictKind::too_many,
                           "effective_rank/units <= " + std::to_string(t.rank_sparse) +
                               " and units - effective_rank >= " + std::to_string(t.spare_min),
                           cap, step));
    if (b.hidden && b.layer_cost < t.redundant_cost)
      vs.push_back(verdict(
          VerdictKind::redundant,
          "removing the block (" + b.method + ") raises the loss by < " + std::to_string(t.redundant_cost) + " of it",
          {{"rel_delta_remove", b.layer_cost},
           {"method", b.method},
           {"grad_share_last_quarter", share},
           {"equal_grad_share", 1.0 / n_linear}},
          step));
    problem_verdicts(b.li, b.lj, alarms, &vs);
    if (vs.empty() && b.hidden) vs.push_back(verdict(VerdictKind::healthy, "no rule fired", cap, step));
    if (vs.empty()) vs.push_back(output_layer_verdict(b.units, share, improvement, step));
    json block = json::array();
    for (size_t k = b.li; k < b.lj; ++k) block.push_back(k);
    layers.push_back({{"layer", b.li},
                      {"block", block},
                      {"units", b.units},
                      {"hidden", b.hidden},
                      {"rel_delta_remove", b.layer_cost},
                      {"verdicts", vs}});
  }
  return {{"run", root},
          {"checkpoint", ckpt},
          {"step", step},
          {"last_eval_step", last_step},
          {"thresholds",
           {{"rank_full", t.rank_full},
            {"unit_cost", t.unit_cost},
            {"plateau", t.plateau},
            {"rank_sparse", t.rank_sparse},
            {"spare_min", t.spare_min},
            {"redundant_cost", t.redundant_cost}}},
          {"layers", layers}};
}

std::string verdict_table(const json& v) {
  std::ostringstream os;
  os << "verdicts of " << v["run"].get<std::string>() << " at step " << v["step"].get<int64_t>() << "\n";
  for (const json& l : v["layers"])
    for (const json& x : l["verdicts"]) {
      os << "layer " << std::setw(3) << l["layer"].get<int64_t>() << " (" << l["units"].get<int64_t>()
         << " units): " << std::left << std::setw(16) << x["kind"].get<std::string>() << std::right << " from step "
         << x["from_step"].get<int64_t>() << "  " << x["rule"].get<std::string>() << "\n"
         << "      evidence: " << x["evidence"].dump() << "\n";
    }
  return os.str();
}

}  // namespace cn
