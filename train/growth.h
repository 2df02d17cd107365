// Growth in training (docs/capacity.md, "Growth"): when the validation loss stops improving,
// a hidden Linear layer gets `growth.units` new units. Their incoming weights follow
// growth.init, their outgoing weights start at zero (the network computes exactly what it
// computed before), and the optimiser state is carried by element, the new elements with
// their own step count (Optimizer::relayout).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "train/engine.h"

namespace cn {

// The model with Linear layer `li` widened by k = b_in.size() units: the old parameters
// where they were, the new rows of li's weight from w_in (k × in_features, row-major) and
// its bias from b_in, and zero new columns in the next Linear layer's weight. `source`
// gets, per element of the new flat buffer, its index in the old one (−1 for a new one).
template <class T>
std::unique_ptr<Sequential<T>> widened_model(const Sequential<T>& model, size_t li, const std::vector<double>& w_in,
                                             const std::vector<double>& b_in, std::vector<int64_t>* source);

// Moves the engine onto `grown` (the model `source` maps into): the optimiser state
// follows by element, new elements born at the engine's current step.
template <class T>
void adopt_model(Engine<T>& e, std::unique_ptr<Sequential<T>> grown, const std::vector<int64_t>& source);

// The layers that may grow: growth.layers, or every Linear layer except the last. Each must
// be a Linear layer followed (past Dropout) by an activation and then a Linear layer; an
// InputError names growth.layers otherwise.
std::vector<size_t> growable_layers(const GrowthConfig& g, const std::vector<LayerSpec>& specs);

// A checkpoint of a growing run holds growth.json (the widths it had grown to): the
// engine's model widened to them before the checkpoint's tensors load. Nothing without it.
template <class T>
void widen_to_checkpoint(Engine<T>& e, const Config& config, const std::string& checkpoint_dir);

template <class T>
class Growth {
 public:
  explicit Growth(const Config& config, const Sequential<T>& model);
  // After a validation evaluation: true when the loss has not improved by min_delta
  // (relative to the best) for growth.patience evaluations and some layer can still grow.
  bool observe(double val_loss);
  // Grows one layer of the engine's model; the growth.jsonl row.
  nlohmann::json grow(Engine<T>& e, double val_loss);
  // The plateau counters and the current widths (growth.json in a checkpoint), and back:
  // restore widens the engine's model to the saved widths (its values come from the
  // checkpoint loaded next).
  nlohmann::json state(const Sequential<T>& model) const;
  void restore(const nlohmann::json& s, Engine<T>& e);

 private:
  size_t choose(Engine<T>& e, nlohmann::json* evidence);
  GrowthConfig g_;
  uint64_t seed_ = 0;
  std::vector<size_t> layers_;
  double best_ = 0;
  bool has_best_ = false;
  int64_t since_ = 0, events_ = 0;
  std::vector<int64_t> widths_;  // of layers_, kept current
};

extern template class Growth<float>;
extern template class Growth<double>;

}  // namespace cn
