// The training doctor (docs/spec.md §2 and §4; docs/doctor.md): per-layer statistics at the logging
// cadence, weight and gradient spectra at checkpoints, the NaN trace and the alarm rules.
//
// The trainer calls, for each optimiser step s (the number it writes to metrics.jsonl for
// that update) with `logged` = whether s is a logged step:
//   forward, loss, backward, noise, clipping
//   doctor.before_update(s, loss, clip, logged, n)   // n = the batch's sample count
//   optimiser update
//   doctor.after_update(s, logged)
//   on logged steps: write take_stats_rows() to stats.jsonl and take_alarm_rows() to alarms.jsonl
// plus on_checkpoint() at model checkpoints and on_curvature() after each curvature checkpoint.
// A fresh run first calls observe_initial() with the first batch's pass, before step 1
// (docs/doctor.md, "Step 0").
//
// Cost: on a step that is not logged, before_update compares two scalars the step already
// has (the loss and the gradient norm before clipping) and after_update does nothing; neither
// allocates nor reads device memory. Logged steps copy the parameters, gradients and the
// activation caches to the host (CUDA) and compute the statistics there.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "diagnostics/alarms.h"
#include "layers/model.h"
#include "optim/optimizer.h"

namespace cn {

template <class T>
class Doctor {
 public:
  Doctor(const Config& config, Sequential<T>& model);

  // After backward and clipping, before the optimiser update of step `step`; `batch_n` = the
  // batch's sample count (the rows of the model's forward caches that hold this batch).
  // Every step: the loss and the network gradient norm (grad_explosion; the non-finite
  // check). Returns true when the first non-finite value of the run appeared at this step:
  // the NaN trace then names the first layer and tensor holding one, and the pass
  // ("forward" for the loss and activations, "backward" for gradients, "update" for weights
  // an earlier update made non-finite) in a nonfinite alarm row (take_alarm_rows()).
  // Logged steps: gradient, activation and input-gradient statistics, and a copy of the
  // parameters for the update ratio.
  bool before_update(int64_t step, double loss, const ClipResult& clip, bool logged, int64_t batch_n);
  // After the optimiser update: on logged steps the update ratios, weight norms, the
  // non-finite check of the weights ("update" pass), the stats rows and the logged-step
  // alarm rules.
  void after_update(int64_t step, bool logged);
  // Step 0, before the first update: the statistics of the initialisation on the first
  // batch (its loss and gradient before any clipping) as a logged step 0 (stats rows, the
  // logged-step alarm rules; update ratios are null with a status). The dead-unit windows
  // and the loss window of the later logged steps are left as they were, so the rows after
  // step 0 are those of a run without it. Returns true as before_update does.
  bool observe_initial(double loss, const ClipResult& clip, int64_t batch_n);

  // stats.jsonl rows gathered since the last call (per logged step, one row per layer).
  std::vector<nlohmann::json> take_stats_rows();
  // alarms.jsonl rows since the last call.
  std::vector<nlohmann::json> take_alarm_rows();

  // At a checkpoint: singular values of each Linear layer's weight and of its current
  // gradient (the last step's, after clipping), numerical and stable rank, the correlation
  // of the two spectra and the similarity with the next Linear layer's weight spectrum.
  // Returns stats rows (kind "spectrum") and fills `spectra` (when given) with
  // "weights.<layer>.singular_values" and "grads.<layer>.singular_values".
  std::vector<nlohmann::json> on_checkpoint(int64_t step, std::map<std::string, std::vector<double>>* spectra);

  // Curvature rows (diagnostics.jsonl) at learning rate `lr`: ill_conditioned,
  // spectrum_at_zero, saddle, sharpness_edge.
  void on_curvature(int64_t step, const std::vector<CurvatureObservation>& rows, double lr);

  // What later statistics and alarms depend on (the alarm engine's state, the dead-unit
  // windows, the loss since the last logged step, the non-finite trace), for a checkpoint
  // taken after take_stats_rows() and take_alarm_rows(). restore() takes what state() gave
  // for the same model and config; nlohmann::json::exception on a malformed state.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

  std::string summary() const { return alarms_.summary(); }
  bool nonfinite_seen() const { return nonfinite_seen_; }
  const AlarmEngine& alarms() const { return alarms_; }

 private:
  struct LayerScratch {
    // Statistics gathered in before_update, completed in after_update.
    double grad_l2 = 0, grad_linf = 0, bias_grad_l2 = 0, bias_grad_linf = 0, w_before = 0, b_before = 0;
    double act_mean = 0, act_var = 0, pre_act_var = 0, dead_share = 0, saturated_share = 0, input_grad_mean = 0;
    double unit_spread = std::numeric_limits<double>::quiet_NaN();  // hidden Linear layers
    int dead_window_used = 0;
    std::vector<uint8_t> active;  // dead_window × F ring of per-unit activity
    int ring_pos = 0, ring_count = 0;
  };
  const T* host(const T* p, int64_t n, std::vector<T>& scratch);
  void trace_nonfinite(int64_t step, double loss, const ClipResult& clip, int64_t batch_n);

  Config config_;
  Sequential<T>& model_;
  AlarmEngine alarms_;
  std::vector<LayerScratch> layers_;
  std::vector<int64_t> weight_seg_, bias_seg_;  // per layer: index into layout().segments, -1 = none
  int64_t last_linear_ = -1;                    // the output layer: its units are not interchangeable
  std::vector<T> prev_params_, host_params_, host_grads_, scratch_x_, scratch_y_;
  std::vector<nlohmann::json> stats_rows_;
  double window_loss_ = 0;
  int64_t window_steps_ = 0;
  double logged_grad_norm_ = 0;
  bool pending_logged_ = false;
  int64_t pending_step_ = -1;
  int64_t last_update_step_ = -1;
  bool nonfinite_seen_ = false;
};

}  // namespace cn
