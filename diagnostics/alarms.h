// The alarm rules of the training doctor (docs/spec.md §4; docs/design.md §5's fixed rule names;
// docs/doctor.md defines each rule, its threshold and its config key). The engine sees
// plain numbers (per step, per logged step and layer) and typed curvature metrics (per
// curvature row) and emits
// alarms.jsonl rows: step, layer (null for the network), rule, value, threshold, message.
//
// An alarm fires on the transition into the alarm state: a rule keyed by (rule, layer,
// Hessian kind) fires when its condition becomes true and is re-armed only after an
// evaluation finds it false again. A statistic without a value (NaN: not applicable or not
// finite) leaves the state unchanged. Every row carries the rule's `advice`
// (alarm_rule_advice(), config/kinds.h).
//
// Causes before symptoms (docs/doctor.md "Which rule speaks"): while the run diverges
// (nonfinite, network grad_explosion) only grad_explosion is evaluated on logged steps; while a
// cause rule is active (symmetric_units, signal_collapse, dead_units, saturation) the symptom
// rules vanishing_by_depth, exploding_by_depth, frozen_layer, grad_vanishing and loss_plateau
// are held (their condition counts as false), and each symptom rule is held while one before it
// in that list is active.
#pragma once
#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "config/enum_table.h"
#include "diagnostics/spectral_metrics.h"

namespace cn {

// outlier: at least this many earlier values of a layer's own history, and at least this many
// layers with such a history (for the network-wide shift), before a comparison is made; the
// standard deviation (of log10 values) is floored at kOutlierStdFloor decades.
inline constexpr int kOutlierMinHistory = 5;
inline constexpr int kOutlierMinLayers = 2;
inline constexpr double kOutlierStdFloor = 0.1;
// Per-step events waiting for the next take_rows() (fixed storage; more are counted as
// dropped and reported in the summary).
inline constexpr int kPendingCapacity = 256;

// What the rules see about one layer at a logged step; NaN = not applicable.
struct LayerObservation {
  int64_t layer = 0;
  double grad_l2 = std::numeric_limits<double>::quiet_NaN();       // ‖∇W‖₂ of the weight
  double grad_rel = std::numeric_limits<double>::quiet_NaN();      // ‖∇W‖₂ / ‖W‖₂
  double update_ratio = std::numeric_limits<double>::quiet_NaN();  // ‖ΔW‖₂ / ‖W‖₂
  double weight_rms = std::numeric_limits<double>::quiet_NaN();    // ‖W‖_F / √n
  double dead_share = std::numeric_limits<double>::quiet_NaN();
  double saturated_share = std::numeric_limits<double>::quiet_NaN();
  bool linear = false;  // a Linear layer: the depth rules compare these layers' grad_l2
  // symmetric_units: ‖[W b] − mean row‖_F / ‖[W b]‖_F of a hidden Linear layer (0 for a zero
  // matrix; NaN for the last Linear layer, whose units get different gradients anyway)
  double unit_spread = std::numeric_limits<double>::quiet_NaN();
  double pre_act_var = std::numeric_limits<double>::quiet_NaN();  // activation layers: variance of the input
};

// What the curvature rules see of one curvature row (a diagnostics.jsonl row holds the same
// values): its block, its kind and its metrics. Rows without a spectrum (diag,
// fisher_diag) leave every metric absent; full_top has lambda_max and lambda_min.
struct CurvatureObservation {
  int64_t layer = -1;  // -1: the whole network (full_top)
  CurvatureKind kind = CurvatureKind::loss;
  SpectralMetrics metrics;
  std::optional<double> preconditioned_lambda_max;  // full_top, adaptive optimisers
};

// The stability limit of the full Hessian's λmax for an optimiser at learning rate lr
// (docs/doctor.md): sgd 2/η; momentum (heavy ball, β) (2+2β)/η; nesterov (2+2β)/((1+2β)η);
// adagrad, rmsprop 2/η and adam, adamw, nadam, amsgrad (2+2β₁)/((1−β₁)η), both for the
// preconditioned λmax. `preconditioned` tells which λmax the limit is for.
double sharpness_limit(const OptimConfig& optim, double lr, bool* preconditioned);

class AlarmEngine {
 public:
  AlarmEngine(const AlarmsConfig& config, const OptimConfig& optim);

  // Every step, without allocating: the network gradient norm before clipping
  // (grad_explosion, layer null). Non-finite values are left to report_nonfinite.
  void observe_step(int64_t step, double grad_norm);
  // Each logged step: `loss` = the mean training loss since the previous logged step (the
  // metrics.jsonl loss), `grad_norm` = the network gradient norm of this step, and the
  // per-layer observations (grad_explosion and frozen_layer per layer, grad_vanishing,
  // loss_spike, loss_plateau, dead_units, saturation, update_ratio, weight_norm, outlier,
  // vanishing_by_depth, exploding_by_depth, symmetric_units). signal_collapse is evaluated at
  // the first call only, which is meant to be the statistics of step 0 (before any update).
  void observe_logged(int64_t step, double loss, double grad_norm, const std::vector<LayerObservation>& layers);
  // The rows of a curvature checkpoint (docs/spec.md §3 metrics): ill_conditioned,
  // spectrum_at_zero, saddle (loss Hessians: kinds loss and full_top), sharpness_edge
  // (kind full_top; preconditioned_lambda_max for adaptive optimisers).
  void observe_curvature(int64_t step, const std::vector<CurvatureObservation>& rows, double lr);
  // The NaN trace: one nonfinite row (layer -1 = the network) with the pass and tensor.
  void report_nonfinite(int64_t step, int64_t layer, const std::string& pass, const std::string& tensor, double value,
                        const std::string& message);

  // The alarm rows since the last call, in the order the events happened.
  std::vector<nlohmann::json> take_rows();
  // "none", or "3 alarms: grad_explosion ×2 (layer 4), loss_spike ×1" followed by one line
  // per rule that fired: "  try for grad_explosion: <advice>" (advice_lines()).
  std::string summary() const;
  // "try for <rule>: <advice>", one per rule that fired, in rule order.
  std::vector<std::string> advice_lines() const;
  int64_t count() const { return total_; }
  int64_t count(AlarmRule rule) const { return by_rule_[static_cast<int>(rule)]; }

  // What later alarms depend on (rule states, the loss window, the outlier histories, the
  // counts), for a checkpoint taken after take_rows(); restore() of it makes a resumed run
  // raise exactly the alarms the uninterrupted run would. restore() throws
  // nlohmann::json::exception on a malformed state.
  nlohmann::json state() const;
  void restore(const nlohmann::json& state);

 private:
  struct Pending {
    int64_t step = 0;
    double value = 0, threshold = 0;
  };
  void flush_pending();
  // Updates the state of `key`; true on the transition into the alarm state.
  bool transition(const std::string& key, bool condition);
  void emit(int64_t step, int64_t layer, AlarmRule rule, double value, double threshold, const std::string& message,
            nlohmann::json extra = nlohmann::json::object());
  bool loss_high(double loss) const;
  // True when some (rule, layer, kind) state of `rule` is active.
  bool any_active(AlarmRule rule) const;
  void observe_depth(int64_t step, const std::vector<LayerObservation>& layers, bool held);
  void observe_signal(int64_t step, const std::vector<LayerObservation>& layers);
  void observe_outlier(int64_t step, const std::vector<LayerObservation>& layers, bool held);

  AlarmsConfig c_;
  OptimConfig optim_;
  std::map<std::string, bool> state_;
  bool explosion_active_ = false;
  std::array<Pending, kPendingCapacity> pending_{};
  int n_pending_ = 0;
  int64_t dropped_ = 0;
  std::vector<nlohmann::json> rows_;
  std::array<int64_t, kAlarmRuleCount> by_rule_{};
  std::array<std::vector<int64_t>, kAlarmRuleCount> layers_by_rule_;
  int64_t total_ = 0;
  double first_loss_ = std::numeric_limits<double>::quiet_NaN();
  std::vector<double> loss_window_;                 // the last loss_spike_window logged losses
  std::map<int64_t, std::vector<double>> history_;  // outlier: log10 grad_rel per layer
  bool diverged_ = false;  // a network grad_explosion, and the loss not yet back (docs/doctor.md)
  double recover_loss_ = std::numeric_limits<double>::quiet_NaN();  // the lowest logged loss before it
  double best_loss_ = std::numeric_limits<double>::quiet_NaN();     // the lowest logged loss outside divergence
  int64_t plateau_count_ = 0;                                       // loss_plateau: logged steps with a finite loss
  std::vector<double> plateau_first_, plateau_recent_;              // loss_plateau: the first and the last h losses
  bool signal_checked_ = false;                                     // signal_collapse: evaluated (first observation)
};

}  // namespace cn
