// `curvnet prune` (docs/capacity.md §prune): remove a share of a run's weights or units,
// fine-tune, evaluate on the validation split, and repeat until the validation loss rises
// by more than max_rise over the unpruned model; the last good state becomes an ordinary
// run directory (resume, eval, hessian and report accept it) with the pruning curve
// (prune.jsonl) and the removed indices (prune.json).
#pragma once
#include <cstdint>
#include <iosfwd>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diagnostics/saliency.h"

namespace cn {

struct PruneOptions {
  std::string run_dir;  // the source run (its last checkpoint)
  std::string out_dir;  // the pruned run directory (must not exist or be empty); "" = RUN_DIR-pruned
  PruneCriterion criterion = PruneCriterion::obd;
  PruneGranularity granularity = PruneGranularity::neuron;
  double step_share = 0.1;      // share of each layer's original units/weights removed per round
  int64_t finetune = 100;       // optimiser steps after each removal
  double max_rise = 0.02;       // stop when (val_loss − base) / |base| exceeds this
  std::vector<int64_t> layers;  // Linear layer indices; empty = every hidden Linear (neuron) or every Linear (weight)
  std::string device;           // auto | cpu | cuda; "" = the run's train.device
  double obs_damping = 1e-4;    // λ relative to the block's mean |diagonal|, raised ×10 until Cholesky succeeds
  std::ostream* out = nullptr;  // one line per round and per skipped layer (default std::cout)
};

struct PruneSummary {
  std::string out_dir;
  int64_t rounds = 0;  // accepted removal rounds
  double base_val_loss = 0, final_val_loss = 0, rise = 0;
  std::string stop_reason;      // "max_rise" | "nothing_left" | "all_removed"
  std::vector<int64_t> widths;  // the hidden Linear layers' widths after pruning
  nlohmann::json record;        // prune.json
};

// InputError (exit 2) for a bad RUN_DIR, option or layer index.
PruneSummary prune(const PruneOptions& options);

}  // namespace cn
