#include "diagnostics/alarms.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "io/files.h"

namespace cn {

using json = nlohmann::json;

namespace {

bool finite(double x) { return std::isfinite(x); }

std::string fmt(double x) {
  std::ostringstream os;
  os.precision(4);
  os << x;
  return os.str();
}

std::string layer_text(int64_t layer) { return layer < 0 ? "network" : "layer " + std::to_string(layer); }

std::string key_of(AlarmRule rule, int64_t layer, const std::string& extra = "") {
  return std::string(alarm_rule_name(rule)) + "/" + std::to_string(layer) + "/" + extra;
}

// A metric's value, NaN when absent or not finite (as null in the row).
double num(const std::optional<double>& v) { return v && std::isfinite(*v) ? *v : std::nan(""); }

struct MeanStd {
  double mean = 0, std = 0;
  int n = 0;
};
MeanStd mean_std(const std::vector<double>& v) {
  MeanStd r;
  r.n = static_cast<int>(v.size());
  if (v.empty()) return r;
  for (double x : v) r.mean += x;
  r.mean /= r.n;
  for (double x : v) r.std += (x - r.mean) * (x - r.mean);
  r.std = std::sqrt(r.std / r.n);
  return r;
}

}  // namespace

double sharpness_limit(const OptimConfig& o, double lr, bool* preconditioned) {
  bool pre = false;
  double limit;
  switch (o.name) {
    case OptimKind::sgd:
      limit = 2.0 / lr;
      break;
    case OptimKind::momentum:
      limit = (2.0 + 2.0 * o.momentum) / lr;
      break;
    case OptimKind::nesterov:
      limit = (2.0 + 2.0 * o.momentum) / ((1.0 + 2.0 * o.momentum) * lr);
      break;
    case OptimKind::adagrad:
    case OptimKind::rmsprop:
      pre = true;
      limit = 2.0 / lr;
      break;
    default:  // adam adamw nadam amsgrad: EMA momentum β₁
      pre = true;
      limit = (2.0 + 2.0 * o.beta1) / ((1.0 - o.beta1) * lr);
  }
  if (preconditioned) *preconditioned = pre;
  return limit;
}

AlarmEngine::AlarmEngine(const AlarmsConfig& config, const OptimConfig& optim) : c_(config), optim_(optim) {
  loss_window_.reserve(static_cast<size_t>(std::max<int64_t>(c_.loss_spike_window, 1)));
  rows_.reserve(16);
}

bool AlarmEngine::transition(const std::string& key, bool condition) {
  bool& active = state_[key];
  const bool fire = condition && !active;
  active = condition;
  return fire;
}

bool AlarmEngine::any_active(AlarmRule rule) const {
  const std::string prefix = std::string(alarm_rule_name(rule)) + "/";
  for (auto it = state_.lower_bound(prefix); it != state_.end() && it->first.compare(0, prefix.size(), prefix) == 0;
       ++it)
    if (it->second) return true;
  return false;
}

bool AlarmEngine::loss_high(double loss) const {
  if (!finite(first_loss_) || !finite(loss)) return true;
  return loss > c_.loss_high_ratio * first_loss_;
}

void AlarmEngine::emit(int64_t step, int64_t layer, AlarmRule rule, double value, double threshold,
                       const std::string& message, json extra) {
  json row = json::object();
  row["step"] = step;
  row["layer"] = layer < 0 ? json(nullptr) : json(layer);
  row["rule"] = alarm_rule_name(rule);
  set_metric(row, "value", value);
  if (std::isnan(threshold))
    row["threshold"] = nullptr;
  else
    set_metric(row, "threshold", threshold);
  row["message"] = message;
  row["advice"] = alarm_rule_advice(rule);
  for (auto it = extra.begin(); it != extra.end(); ++it) row[it.key()] = it.value();
  rows_.push_back(std::move(row));
  const int r = static_cast<int>(rule);
  ++by_rule_[r];
  ++total_;
  if (layer >= 0) {
    auto& ls = layers_by_rule_[r];
    if (std::find(ls.begin(), ls.end(), layer) == ls.end()) ls.push_back(layer);
  }
}

void AlarmEngine::observe_step(int64_t step, double grad_norm) {
  if (c_.grad_norm_high <= 0 || !finite(grad_norm)) return;
  const bool cond = grad_norm > c_.grad_norm_high;
  if (cond && !explosion_active_) {
    if (n_pending_ < kPendingCapacity)
      pending_[n_pending_++] = Pending{step, grad_norm, c_.grad_norm_high};
    else
      ++dropped_;
  }
  explosion_active_ = cond;
}

void AlarmEngine::flush_pending() {
  for (int i = 0; i < n_pending_; ++i) {
    const Pending& p = pending_[i];
    if (!diverged_) {  // the run counts as diverged until the loss is back to where it was
      diverged_ = true;
      recover_loss_ = best_loss_;
    }
    emit(p.step, -1, AlarmRule::grad_explosion, p.value, p.threshold,
         "gradient norm " + fmt(p.value) + " above grad_norm_high " + fmt(p.threshold) + " at step " +
             std::to_string(p.step));
  }
  n_pending_ = 0;
}

void AlarmEngine::observe_logged(int64_t step, double loss, double grad_norm,
                                 const std::vector<LayerObservation>& layers) {
  flush_pending();
  if (!finite(first_loss_) && finite(loss)) first_loss_ = loss;
  const bool high = loss_high(loss);
  // A diverging run: its other statistics describe the divergence, which grad_explosion and
  // nonfinite already name. After a network grad_explosion the run counts as diverged until it
  // has recovered (docs/doctor.md "Which rule speaks"): no layer left blown up, dead or
  // saturated by it, and, when there was a logged loss before the explosion, the loss no
  // longer high and back within (1 + loss_spike_delta) x the lowest logged loss before it.
  if (diverged_ && finite(loss)) {
    bool damaged = false;
    for (const LayerObservation& o : layers)
      damaged = damaged ||
                (c_.weight_norm_high > 0 && !(o.weight_rms <= c_.weight_norm_high) && !std::isnan(o.weight_rms)) ||
                (c_.dead_share_high > 0 && o.dead_share > c_.dead_share_high) ||
                (c_.saturation_high > 0 && o.saturated_share > c_.saturation_high);
    const bool loss_back =
        !finite(recover_loss_) || (!loss_high(loss) && loss <= (1.0 + c_.loss_spike_delta) * recover_loss_);
    if (!damaged && loss_back) diverged_ = false;
  }
  if (finite(loss) && !diverged_ && !(loss >= best_loss_)) best_loss_ = loss;
  const bool diverging = diverged_ || explosion_active_ || by_rule_[static_cast<int>(AlarmRule::nonfinite)] > 0;

  auto threshold_rule = [&](const LayerObservation& o, AlarmRule rule, double value, double thr, bool above,
                            bool extra_cond, const std::string& what) {
    if (thr <= 0 || !finite(value)) return;
    const bool cond = (above ? value > thr : value < thr) && extra_cond;
    if (transition(key_of(rule, o.layer), cond))
      emit(step, o.layer, rule, value, thr,
           "layer " + std::to_string(o.layer) + ": " + what + " " + fmt(value) + (above ? " above " : " below ") +
               fmt(thr));
  };

  // Per layer: explosion, the independent threshold rules and the cause rules.
  for (const LayerObservation& o : layers) {
    threshold_rule(o, AlarmRule::grad_explosion, o.grad_l2, c_.grad_norm_high, true, true, "weight-gradient norm");
    threshold_rule(o, AlarmRule::dead_units, o.dead_share, c_.dead_share_high, true, !diverging, "share of dead units");
    threshold_rule(o, AlarmRule::saturation, o.saturated_share, c_.saturation_high, true, !diverging,
                   "share of saturated units");
    // Once sharpness_edge has found the learning rate above the stability limit, large steps
    // are what it already names.
    threshold_rule(o, AlarmRule::update_ratio, o.update_ratio, c_.update_ratio_high, true,
                   !diverging && by_rule_[static_cast<int>(AlarmRule::sharpness_edge)] == 0, "update ratio");
    threshold_rule(o, AlarmRule::weight_norm, o.weight_rms, c_.weight_norm_high, true, !diverging, "weight RMS");
    if (c_.unit_spread_low > 0 && finite(o.unit_spread) &&
        transition(key_of(AlarmRule::symmetric_units, o.layer), o.unit_spread < c_.unit_spread_low && !diverging))
      emit(step, o.layer, AlarmRule::symmetric_units, o.unit_spread, c_.unit_spread_low,
           "layer " + std::to_string(o.layer) + ": its units are identical (spread of the rows of [W b] " +
               fmt(o.unit_spread) + " below " + fmt(c_.unit_spread_low) + ")");
  }
  if (!signal_checked_) observe_signal(step, layers);
  bool explained = diverging || any_active(AlarmRule::symmetric_units) || any_active(AlarmRule::signal_collapse) ||
                   any_active(AlarmRule::dead_units) || any_active(AlarmRule::saturation);

  // Symptom rules, each held while a cause or an earlier symptom is active.
  observe_depth(step, layers, explained);
  explained = explained || any_active(AlarmRule::vanishing_by_depth) || any_active(AlarmRule::exploding_by_depth);

  // frozen_layer: no gradient, or no movement while the other layers move, while the loss is high.
  double max_update = 0;
  for (const LayerObservation& o : layers)
    if (finite(o.update_ratio)) max_update = std::max(max_update, o.update_ratio);
  for (const LayerObservation& o : layers) {
    const bool no_grad = c_.frozen_grad_low > 0 && finite(o.grad_l2) && o.grad_l2 < c_.frozen_grad_low;
    const double thr = c_.frozen_update_low * max_update;
    const bool no_move = c_.frozen_update_low > 0 && max_update > 0 && finite(o.update_ratio) && o.update_ratio < thr;
    if (!finite(o.grad_l2) && !finite(o.update_ratio)) continue;
    if (transition(key_of(AlarmRule::frozen_layer, o.layer), (no_grad || no_move) && high && !explained)) {
      if (no_grad)
        emit(step, o.layer, AlarmRule::frozen_layer, o.grad_l2, c_.frozen_grad_low,
             "layer " + std::to_string(o.layer) + ": weight-gradient norm " + fmt(o.grad_l2) + " below " +
                 fmt(c_.frozen_grad_low) + " while the loss " + fmt(loss) + " is still high",
             {{"statistic", "grad_l2"}});
      else
        emit(step, o.layer, AlarmRule::frozen_layer, o.update_ratio, thr,
             "layer " + std::to_string(o.layer) + ": update ratio " + fmt(o.update_ratio) + " below " +
                 fmt(c_.frozen_update_low) + " x the largest layer's " + fmt(max_update) + " while the loss " +
                 fmt(loss) + " is still high",
             {{"statistic", "update_ratio"}});
    }
  }
  explained = explained || any_active(AlarmRule::frozen_layer);

  // grad_vanishing: network gradient norm below grad_norm_low while the loss is still high.
  if (c_.grad_norm_low > 0 && finite(grad_norm)) {
    if (transition(key_of(AlarmRule::grad_vanishing, -1), grad_norm < c_.grad_norm_low && high && !explained))
      emit(step, -1, AlarmRule::grad_vanishing, grad_norm, c_.grad_norm_low,
           "gradient norm " + fmt(grad_norm) + " below grad_norm_low " + fmt(c_.grad_norm_low) + " while the loss " +
               fmt(loss) + " is still high");
  }
  explained = explained || any_active(AlarmRule::grad_vanishing);

  // loss_plateau: from the N-th logged step on (N = plateau_steps), the mean of the last h =
  // ceil(N/2) logged losses within plateau_delta x |L_init| of L_init, the mean of the first h
  // (means over h logged steps: one logged loss is a mini-batch average and too noisy).
  if (finite(loss)) {
    const size_t h = static_cast<size_t>((c_.plateau_steps + 1) / 2);
    ++plateau_count_;
    if (plateau_first_.size() < h) plateau_first_.push_back(loss);
    if (plateau_recent_.size() >= h) plateau_recent_.erase(plateau_recent_.begin());
    plateau_recent_.push_back(loss);
    if (c_.plateau_delta > 0 && plateau_count_ >= c_.plateau_steps) {
      double init = 0, recent = 0;
      for (double x : plateau_first_) init += x;
      for (double x : plateau_recent_) recent += x;
      init /= static_cast<double>(plateau_first_.size());
      recent /= static_cast<double>(plateau_recent_.size());
      const bool flat = std::fabs(recent - init) <= c_.plateau_delta * std::fabs(init);
      if (transition(key_of(AlarmRule::loss_plateau, -1), flat && !explained))
        emit(step, -1, AlarmRule::loss_plateau, recent, init,
             "loss " + fmt(recent) + " (mean of the last " + std::to_string(h) + " logged steps) within " +
                 fmt(c_.plateau_delta) + " x of its initial level " + fmt(init) + " (mean of the first " +
                 std::to_string(h) + ") after " + std::to_string(plateau_count_) + " logged steps",
             {{"logged_steps", plateau_count_}});
    }
  }

  // loss_spike: loss above (1 + δ) × the minimum of the previous W logged losses, and by more
  // than loss_spike_floor (a rise from 0.025 to 0.039 is noise, not a spike).
  if (c_.loss_spike_delta > 0 && finite(loss)) {
    if (!loss_window_.empty()) {
      const double m = *std::min_element(loss_window_.begin(), loss_window_.end());
      const double thr = std::max((1.0 + c_.loss_spike_delta) * m, m + c_.loss_spike_floor);
      if (transition(key_of(AlarmRule::loss_spike, -1), loss > thr && !diverging))
        emit(step, -1, AlarmRule::loss_spike, loss, thr,
             "loss " + fmt(loss) + " above max((1 + " + fmt(c_.loss_spike_delta) + ") x, " + fmt(c_.loss_spike_floor) +
                 " +) its minimum " + fmt(m) + " over the last " + std::to_string(loss_window_.size()) +
                 " logged steps",
             {{"running_min", m}});
    }
    if (static_cast<int64_t>(loss_window_.size()) >= c_.loss_spike_window) loss_window_.erase(loss_window_.begin());
    loss_window_.push_back(loss);
  }

  // outlier looks for a layer that departs from the rest without a known cause: held while
  // a cause or symptom rule is active.
  observe_outlier(step, layers, explained || any_active(AlarmRule::loss_plateau));
}

// vanishing_by_depth / exploding_by_depth: each Linear layer's weight-gradient norm against
// the last Linear layer's (the first the loss gradient reaches).
void AlarmEngine::observe_depth(int64_t step, const std::vector<LayerObservation>& layers, bool held) {
  const LayerObservation* last = nullptr;
  for (const LayerObservation& o : layers)
    if (o.linear) last = &o;
  if (!last || !finite(last->grad_l2) || last->grad_l2 <= 0) return;
  for (const LayerObservation& o : layers) {
    if (!o.linear || &o == last || !finite(o.grad_l2)) continue;
    const double r = o.grad_l2 / last->grad_l2;
    const std::string ref =
        " x the last Linear layer's (layer " + std::to_string(last->layer) + ", " + fmt(last->grad_l2) + ")";
    if (c_.depth_ratio_low > 0 &&
        transition(key_of(AlarmRule::vanishing_by_depth, o.layer), r < c_.depth_ratio_low && !held))
      emit(step, o.layer, AlarmRule::vanishing_by_depth, r, c_.depth_ratio_low,
           "layer " + std::to_string(o.layer) + ": weight-gradient norm " + fmt(o.grad_l2) + " is " + fmt(r) + ref,
           {{"grad_l2", o.grad_l2}, {"reference_layer", last->layer}});
    if (c_.depth_ratio_high > 0 &&
        transition(key_of(AlarmRule::exploding_by_depth, o.layer), r > c_.depth_ratio_high && !held))
      emit(step, o.layer, AlarmRule::exploding_by_depth, r, c_.depth_ratio_high,
           "layer " + std::to_string(o.layer) + ": weight-gradient norm " + fmt(o.grad_l2) + " is " + fmt(r) + ref,
           {{"grad_l2", o.grad_l2}, {"reference_layer", last->layer}});
  }
}

// signal_collapse: the geometric mean of the per-layer ratio of pre-activation variances
// (v_last / v_first)^(1/(k-1)) over the k >= 3 activation layers, at the first observation.
void AlarmEngine::observe_signal(int64_t step, const std::vector<LayerObservation>& layers) {
  signal_checked_ = true;
  if (c_.collapse_factor <= 0) return;
  std::vector<const LayerObservation*> acts;
  for (const LayerObservation& o : layers)
    if (finite(o.pre_act_var)) acts.push_back(&o);
  if (acts.size() < 3 || acts.front()->pre_act_var <= 0) return;
  const double v0 = acts.front()->pre_act_var, v1 = acts.back()->pre_act_var;
  const double factor = std::pow(std::max(v1, 0.0) / v0, 1.0 / static_cast<double>(acts.size() - 1));
  const int64_t L = acts.back()->layer;
  if (transition(key_of(AlarmRule::signal_collapse, L), factor < c_.collapse_factor)) {
    json vars = json::array();
    for (const LayerObservation* o : acts) vars.push_back(json_number(o->pre_act_var));
    emit(step, L, AlarmRule::signal_collapse, factor, c_.collapse_factor,
         "pre-activation variance shrinks by a factor " + fmt(factor) + " per activation layer, from " + fmt(v0) +
             " (layer " + std::to_string(acts.front()->layer) + ") to " + fmt(v1) + " (layer " + std::to_string(L) +
             ")",
         {{"first_layer", acts.front()->layer}, {"pre_act_var", vars}});
  }
}

// outlier: a rise of a layer's log10 grad_rel above its own history, beyond the network-wide
// shift (the median over layers of the same rise), in units of its history's spread.
void AlarmEngine::observe_outlier(int64_t step, const std::vector<LayerObservation>& layers, bool held) {
  if (c_.sigma <= 0) return;
  struct Val {
    int64_t layer;
    double x, rise = 0, std = 0;
    size_t n = 0;
  };
  std::vector<Val> vals;
  std::vector<double> rises;
  for (const LayerObservation& o : layers) {
    if (!finite(o.grad_rel) || o.grad_rel <= 0) continue;
    Val v{o.layer, std::log10(o.grad_rel)};
    const std::vector<double>& h = history_[o.layer];
    v.n = h.size();
    if (static_cast<int>(h.size()) >= kOutlierMinHistory) {
      const MeanStd ms = mean_std(h);
      v.rise = v.x - ms.mean;
      v.std = std::max(ms.std, kOutlierStdFloor);
      rises.push_back(v.rise);
    }
    vals.push_back(v);
  }
  if (static_cast<int>(rises.size()) >= kOutlierMinLayers) {
    std::sort(rises.begin(), rises.end());
    const size_t m = rises.size();
    const double shift = m % 2 ? rises[m / 2] : 0.5 * (rises[m / 2 - 1] + rises[m / 2]);
    for (const Val& v : vals) {
      if (static_cast<int>(v.n) < kOutlierMinHistory) continue;
      const double z = (v.rise - shift) / v.std;
      if (transition(key_of(AlarmRule::outlier, v.layer, "history"), z > c_.sigma && !held))
        emit(step, v.layer, AlarmRule::outlier, z, c_.sigma,
             "layer " + std::to_string(v.layer) + ": relative gradient " + fmt(std::pow(10.0, v.x)) + " rose " +
                 fmt(z) + " standard deviations (log10) above its last " + std::to_string(v.n) +
                 " logged values, beyond the network-wide shift of " + fmt(shift) + " decades",
             {{"statistic", "grad_rel"}, {"reference", "history"}, {"network_shift", shift}});
    }
  }
  for (const Val& v : vals) {
    std::vector<double>& h = history_[v.layer];
    if (static_cast<int64_t>(h.size()) >= c_.outlier_window) h.erase(h.begin());
    h.push_back(v.x);
  }
}

void AlarmEngine::observe_curvature(int64_t step, const std::vector<CurvatureObservation>& rows, double lr) {
  flush_pending();
  for (const CurvatureObservation& row : rows) {
    const int64_t L = row.layer;
    const CurvatureKind k = row.kind;
    const std::string kind = enum_name(kCurvatureKinds, k);
    const SpectralMetrics& m = row.metrics;
    const std::string where = layer_text(L) + " (" + kind + " Hessian)";
    const json extra = {{"kind", kind}};
    if (m.status == kStatusNotApplicable) continue;
    const bool zero_matrix = m.status == kStatusZeroMatrix;

    // κ over the eigenvalues the tolerance keeps (docs/curvature.md §4), so rank deficiency
    // the construction guarantees never counts; K-FAC: the worse of its two factors (the
    // product's κ is their product).
    const double cond = m.method == "kfac" && m.factor_condition ? *m.factor_condition : num(m.condition);
    if (c_.condition_high > 0 && finite(cond) &&
        transition(key_of(AlarmRule::ill_conditioned, L, kind), cond > c_.condition_high))
      emit(step, L, AlarmRule::ill_conditioned, cond, c_.condition_high,
           where + ": condition number " + fmt(cond) + " over the eigenvalues above tau = " + fmt(m.tau) +
               " exceeds condition_high " + fmt(c_.condition_high),
           extra);

    // Zeros beyond those the structure forces (1 − structural_rank / n); the local Hessian
    // of a piecewise-linear layer is zero by construction: no alarm.
    double nz = num(m.near_zero_share);
    if (!finite(nz) && zero_matrix) nz = 1.0;
    const double forced = m.structural_zero_share(), excess = nz - forced;
    if (c_.near_zero_high > 0 && finite(nz) && !(k == CurvatureKind::local && zero_matrix) &&
        transition(key_of(AlarmRule::spectrum_at_zero, L, kind), excess > c_.near_zero_high))
      emit(step, L, AlarmRule::spectrum_at_zero, excess, c_.near_zero_high,
           where + ": share of eigenvalues near zero " + fmt(nz) + " exceeds the structural zero share " + fmt(forced) +
               " by more than near_zero_high " + fmt(c_.near_zero_high),
           {{"kind", kind}, {"near_zero_share", nz}, {"structural_zero_share", forced}});

    if ((k == CurvatureKind::loss || k == CurvatureKind::full_top) && c_.saddle_symmetry > 0) {
      const double sym = num(m.symmetry), neg = num(m.negative_share);
      if (finite(sym) && finite(neg) &&
          transition(key_of(AlarmRule::saddle, L, kind), sym >= c_.saddle_symmetry && neg >= c_.saddle_negative_share))
        emit(step, L, AlarmRule::saddle, sym, c_.saddle_symmetry,
             where + ": spectrum symmetry " + fmt(sym) + " (negative share " + fmt(neg) + ") marks a saddle point",
             {{"kind", kind}, {"negative_share", neg}});
    }

    if (k == CurvatureKind::full_top && c_.sharpness_fraction > 0 && finite(lr) && lr > 0) {
      bool pre = false;
      const double limit = sharpness_limit(optim_, lr, &pre);
      const double lam = num(pre ? row.preconditioned_lambda_max : m.lambda_max);
      const double thr = c_.sharpness_fraction * limit;
      if (finite(lam) && transition(key_of(AlarmRule::sharpness_edge, L, kind), lam >= thr))
        emit(step, L, AlarmRule::sharpness_edge, lam, thr,
             std::string(pre ? "preconditioned " : "") + "lambda_max " + fmt(lam) + " at or above " +
                 fmt(c_.sharpness_fraction) + " x the stability limit " + fmt(limit) + " of " +
                 enum_name(kOptimKinds, optim_.name) + " at lr " + fmt(lr),
             {{"kind", kind}, {"limit", limit}, {"lr", lr}});
    }
  }
}

void AlarmEngine::report_nonfinite(int64_t step, int64_t layer, const std::string& pass, const std::string& tensor,
                                   double value, const std::string& message) {
  flush_pending();
  emit(step, layer, AlarmRule::nonfinite, value, std::nan(""), message, {{"pass", pass}, {"tensor", tensor}});
}

std::vector<json> AlarmEngine::take_rows() {
  flush_pending();
  std::vector<json> out;
  out.swap(rows_);
  return out;
}

json AlarmEngine::state() const {
  json active = json::array();
  for (const auto& [key, on] : state_)
    if (on) active.push_back(key);
  json history = json::object();
  for (const auto& [layer, h] : history_) history[std::to_string(layer)] = h;
  return {{"active", active},
          {"explosion_active", explosion_active_},
          {"first_loss", json_number(first_loss_)},
          {"loss_window", loss_window_},
          {"history", history},
          {"diverged", diverged_},
          {"recover_loss", json_number(recover_loss_)},
          {"best_loss", json_number(best_loss_)},
          {"plateau_count", plateau_count_},
          {"plateau_first", plateau_first_},
          {"plateau_recent", plateau_recent_},
          {"signal_checked", signal_checked_},
          {"by_rule", by_rule_},
          {"layers_by_rule", layers_by_rule_},
          {"total", total_},
          {"dropped", dropped_}};
}

void AlarmEngine::restore(const json& s) {
  // A state saved by a curvnet with fewer rules resumes too: keys it lacks take their
  // fresh-run values, and per-rule counts are matched by position (rules are only appended).
  auto number_or_nan = [&](const char* key) {
    return !s.contains(key) || s.at(key).is_null() ? std::nan("") : s.at(key).get<double>();
  };
  state_.clear();
  for (const json& key : s.at("active")) state_[key.get<std::string>()] = true;
  explosion_active_ = s.at("explosion_active").get<bool>();
  first_loss_ = number_or_nan("first_loss");
  loss_window_ = s.at("loss_window").get<std::vector<double>>();
  history_.clear();
  for (const auto& [layer, h] : s.at("history").items()) history_[std::stoll(layer)] = h.get<std::vector<double>>();
  diverged_ = s.value("diverged", false);
  recover_loss_ = number_or_nan("recover_loss");
  best_loss_ = number_or_nan("best_loss");
  plateau_count_ = s.value("plateau_count", int64_t{0});
  plateau_first_ = s.value("plateau_first", std::vector<double>{});
  plateau_recent_ = s.value("plateau_recent", std::vector<double>{});
  signal_checked_ = s.value("signal_checked", false);
  const auto counts = s.at("by_rule").get<std::vector<int64_t>>();
  const auto layers = s.at("layers_by_rule").get<std::vector<std::vector<int64_t>>>();
  if (counts.size() > by_rule_.size() || layers.size() > layers_by_rule_.size())
    throw json::other_error::create(501, "more alarm rules than this curvnet knows", &s);
  by_rule_.fill(0);
  for (auto& l : layers_by_rule_) l.clear();
  std::copy(counts.begin(), counts.end(), by_rule_.begin());
  std::copy(layers.begin(), layers.end(), layers_by_rule_.begin());
  total_ = s.at("total").get<int64_t>();
  dropped_ = s.at("dropped").get<int64_t>();
  n_pending_ = 0;
  rows_.clear();
}

std::string AlarmEngine::summary() const {
  const int64_t total = total_ + n_pending_;
  if (total == 0 && dropped_ == 0) return "none";
  std::ostringstream os;
  os << total << " \u2014 ";
  bool first = true;
  for (int r = 0; r < kAlarmRuleCount; ++r) {
    const int64_t n = by_rule_[r] + (r == static_cast<int>(AlarmRule::grad_explosion) ? n_pending_ : 0);
    if (n == 0) continue;
    if (!first) os << ", ";
    first = false;
    os << alarm_rule_name(static_cast<AlarmRule>(r)) << " \u00d7" << n;
    std::vector<int64_t> ls = layers_by_rule_[r];
    std::sort(ls.begin(), ls.end());
    if (!ls.empty()) {
      os << (ls.size() == 1 ? " (layer " : " (layers ");
      for (size_t i = 0; i < ls.size(); ++i) os << (i ? ", " : "") << ls[i];
      os << ")";
    }
  }
  if (dropped_ > 0) os << (first ? "" : ", ") << dropped_ << " more grad_explosion events not recorded";
  for (const std::string& line : advice_lines()) os << "\n  " << line;
  return os.str();
}

std::vector<std::string> AlarmEngine::advice_lines() const {
  std::vector<std::string> out;
  for (int r = 0; r < kAlarmRuleCount; ++r) {
    const bool pending = r == static_cast<int>(AlarmRule::grad_explosion) && n_pending_ > 0;
    if (by_rule_[r] == 0 && !pending) continue;
    const auto rule = static_cast<AlarmRule>(r);
    out.push_back(std::string("try for ") + alarm_rule_name(rule) + ": " + alarm_rule_advice(rule));
  }
  return out;
}

}  // namespace cn
