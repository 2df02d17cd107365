// Per-layer verdicts of a trained run (docs/capacity.md, "Verdicts"): too few neurons, too
// many, a redundant layer, a problem layer (exploding, frozen, ill-conditioned, saturated),
// or fix the initialisation — each with its evidence: the values, the thresholds, the rule
// and the step they come from. The model-side evidence is measured on the run's last
// checkpoint (activations on the validation split, unit and layer ablation); the
// training-side evidence is read from eval.jsonl, stats.jsonl and alarms.jsonl.
#pragma once
#include <string>

#include <nlohmann/json.hpp>

namespace cn {

// The thresholds of the rules (docs/capacity.md, "Verdicts", gives each rule).
struct VerdictThresholds {
  double rank_full = 0.7;        // too_few: effective rank / units at or above this ...
  double unit_cost = 0.02;       // ... and the median unit's cut raises the loss by this share or more ...
  double plateau = 0.1;          // ... and the last quarter of evaluations improved val_loss by less than this
  double rank_sparse = 0.5;      // too_many: effective rank / units at or below this ...
  int64_t spare_min = 4;         // ... with at least this many units beyond the effective rank
  double redundant_cost = 0.01;  // redundant: removing the block raises the loss by less than this share
};

// RUN_DIR's verdicts: {"run", "checkpoint", "step", "thresholds", "layers": [{"layer",
// "block", "units", "verdicts": [{"kind", "rule", "evidence", "from_step"}]}]}.
nlohmann::json run_verdicts(const std::string& run_dir, const VerdictThresholds& t = {});

// One line per verdict, for people.
std::string verdict_table(const nlohmann::json& verdicts);

}  // namespace cn
