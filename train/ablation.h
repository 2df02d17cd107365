// Layer and unit ablation of a trained run (docs/capacity.md, "Ablation"): each hidden block
// (a Linear layer with the activation, Dropout and BatchNorm layers before the next Linear)
// is taken out — replaced by the identity when its input and output widths agree, else by a
// bridging affine map fitted by least squares on training samples and folded into the next
// Linear layer — and the loss change ΔL_remove is measured on a split, before and after
// fine-tuning; for one hidden Linear layer, each unit's ΔL when its output is cut.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "layers/model.h"

namespace cn {

struct AblationOptions {
  int64_t finetune = 0;          // steps of the run's optimiser (fresh state, constant optim.lr); 0 = none
  std::optional<int64_t> layer;  // a hidden Linear layer: per-unit contributions
  std::string split = "val";     // where the losses are measured
  int64_t fit_samples = 1024;    // training samples (file order) the bridge is fitted on
  bool whole_layers = true;      // the "layer" rows (false: only the units of `layer`)
};

// The ablation.jsonl rows: one "layer" row per hidden block, then (with options.layer) one
// "unit" row per unit of that layer. Every row has "kind", "layer" and the losses.
std::vector<nlohmann::json> ablate_run(const std::string& checkpoint, const AblationOptions& options);

// The affine map (B: b × a, c: b) minimising Σ_n ‖B x_n + c − y_n‖² over N samples x (N×a)
// and y (N×b), by the normal equations with a ridge of 1e-10 × the mean diagonal (a
// rank-deficient input still gives a solution). Row-major B, then c.
void fit_affine(const std::vector<double>& x, const std::vector<double>& y, int64_t N, int64_t a, int64_t b,
                std::vector<double>* B, std::vector<double>* c);

// The layer specs without block [li, lj) and the parameters of the result (the flat buffer
// of `model` minus the block's, with Linear lj replaced by W_lj B and W_lj c + b_lj).
// B = identity, c = 0 when the widths agree.
template <class T>
std::vector<LayerSpec> ablated_specs(const Sequential<T>& model, size_t li, size_t lj);

// A table for people: one line per row.
std::string ablation_table(const std::vector<nlohmann::json>& rows);

}  // namespace cn
