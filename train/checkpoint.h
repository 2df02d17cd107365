// Checkpoints (docs/design.md §5): checkpoints/step_N/model.safetensors holds parameters and
// buffers under nn.Sequential's state_dict names; state.safetensors holds the optimiser
// state, the step, the epoch, the seed, the epoch's data order, early-stopping state, and
// what the logs continue from: the training loss since the last logged step, whether this
// step's curvature checkpoint is still to run, and the doctor's state (JSON in the
// "doctor" metadata entry). Checkpoints without the last three resume with them empty.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "io/run_layout.h"
#include "layers/model.h"
#include "optim/optimizer.h"

namespace cn {

// model.safetensors: "i.weight" [out, in] for Linear, [features] for BatchNorm; "i.bias";
// "i.running_mean", "i.running_var", "i.num_batches_tracked" (int64 scalar).
template <class T>
void save_model(const Sequential<T>& model, const std::string& path);
// Loads into a model of the same architecture; InputError naming the file and tensor on a
// missing tensor or a shape mismatch. Any floating dtype is accepted.
template <class T>
void load_model(Sequential<T>& model, const std::string& path);

struct TrainState {
  int64_t step = 0;   // updates done
  int64_t epoch = 0;  // epoch of the next update
  uint64_t seed = 0;
  std::vector<int64_t> data_order;  // the permutation of the current epoch
  double best_metric = 0;           // early stopping
  bool has_best = false;
  int64_t evals_without_improvement = 0;
  int64_t first_total_steps = 0;  // the run's total at its first start (schedule horizon)
  double log_window_loss = 0;     // summed batch losses since the last logged step
  int64_t log_window_steps = 0;
  bool curvature_due = false;  // this step's curvature checkpoint runs after the save
  std::string doctor;          // Doctor::state() as JSON text; "" = none
  // Weight pruning's mask (docs/capacity.md §re-layout): 0/1 per parameter, applied after
  // every update; empty = none. Saved as "prune.mask" (float64, layout.total).
  std::vector<double> param_mask;
};

// RUN/data.safetensors: what it takes to rebuild the splits outside curvnet — the source
// rows of each split ("train_rows", "val_rows", "test_rows", int64) and the standardisation
// ("feature_mean", "feature_std", float64; absent when data.standardize is off): a split's
// input is (x[rows] − feature_mean) / feature_std. Metadata: "dataset", "source".
void save_data_record(const Splits& splits, const std::string& dataset, const std::string& path);

template <class T>
void save_state(Optimizer<T>& optimizer, const TrainState& state, const std::string& path);
// InputError naming the file and the field on a counter out of range (negative, a flag
// other than 0/1, a count above `step`) or a non-finite loss; Engine::load_checkpoint checks
// `step` against the step_N directory and `epoch` against `step`.
template <class T>
TrainState load_state(Optimizer<T>& optimizer, const std::string& path);

// The steps of the complete checkpoints under run_dir/checkpoints (both files present),
// ascending; and a checkpoint's directory. The names are RunLayout's (io/run_layout.h, which
// also has resolve_checkpoint).
inline std::vector<int64_t> list_checkpoints(const std::string& run_dir) {
  return RunLayout(run_dir).complete_checkpoints();
}
inline std::string checkpoint_dir(const std::string& run_dir, int64_t step) {
  return RunLayout(run_dir).checkpoint(step);
}

}  // namespace cn
