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

  // loss_spike: loss above (1 + δ) × the minimum of the previous W logged losses.
  if (c_.loss_spike_delta > 0 && finite(loss)) {
    if (!loss_window_.empty()) {
      const double m = *std::min_element(loss_window_.begin(), loss_window_.end());
      const double thr = (1.0 + c_.loss_spike_delta) * m;
      if (transition(key_of(AlarmRule::loss_spike, -1), loss > thr))
        emit(step, -1, AlarmRule::loss_spike, loss, thr,
             "loss " + fmt(loss) + " above (1 + " + fmt(c_.loss_spike_delta) + ") x its minimum " + fmt(m) +
                 " over the last " + std::to_string(loss_window_.size()) + " logged steps",
             {{"running_min", m}});
    }
    if (static_cast<int64_t>(loss_window_.size()) >= c_.loss_spike_window) loss_window_.erase(loss_window_.begin());
    loss_window_.push_back(loss);
  }

  // grad_vanishing: network gradient norm below grad_norm_low while the loss is still high.
  if (c_.grad_norm_low > 0 && finite(grad_norm)) {
    if (transition(key_of(AlarmRule::grad_vanishing, -1), grad_norm < c_.grad_norm_low && high))
      emit(step, -1, AlarmRule::grad_vanishing, grad_norm, c_.grad_norm_low,
           "gradient norm " + fmt(grad_norm) + " below grad_norm_low " + fmt(c_.grad_norm_low) + " while the loss " +
               fmt(loss) + " is still high");
  }

  for (const LayerObservation& o : layers) {
    const int64_t L = o.layer;
    auto threshold_rule = [&](AlarmRule rule, double value, double thr, bool above, bool extra_cond,
                              const std::string& what) {
      if (thr <= 0 || !finite(value)) return;
      const bool cond = (above ? value > thr : value < thr) && extra_cond;
      if (transition(key_of(rule, L), cond))
        emit(
            step, L, rule, value, thr,
            "layer " + std::to_string(L) + ": " + what + " " + fmt(value) + (above ? " above " : " below ") + fmt(thr));
    };
    threshold_rule(AlarmRule::grad_explosion, o.grad_l2, c_.grad_norm_high, true, true, "weight-gradient norm");
    threshold_rule(AlarmRule::frozen_layer, o.grad_l2, c_.frozen_grad_low, false, high,
                   "weight-gradient norm (loss still high)");
    threshold_rule(AlarmRule::dead_units, o.dead_share, c_.dead_share_high, true, true, "share of dead units");
    threshold_rule(AlarmRule::saturation, o.saturated_share, c_.saturation_high, true, true,
                   "share of saturated units");
    threshold_rule(AlarmRule::update_ratio, o.update_ratio, c_.update_ratio_high, true, true, "update ratio");
    threshold_rule(AlarmRule::weight_norm, o.weight_rms, c_.weight_norm_high, true, true, "weight RMS");
  }

  // outlier: log10 grad_rel against the other layers and against the layer's own history.
  if (c_.sigma > 0) {
    std::vector<std::pair<int64_t, double>> vals;
    for (const LayerObservation& o : layers)
      if (finite(o.grad_rel) && o.grad_rel > 0) vals.push_back({o.layer, std::log10(o.grad_rel)});
    for (const auto& [L, x] : vals) {
      std::vector<double> others;
      for (const auto& [M, y] : vals)
        if (M != L) others.push_back(y);
      if (static_cast<int>(others.size()) >= kOutlierMinLayers) {
        const MeanStd ms = mean_std(others);
        const double z = std::fabs(x - ms.mean) / std::max(ms.std, kOutlierStdFloor);
        if (transition(key_of(AlarmRule::outlier, L, "layers"), z > c_.sigma))
          emit(step, L, AlarmRule::outlier, z, c_.sigma,
               "layer " + std::to_string(L) + ": relative gradient " + fmt(std::pow(10.0, x)) + " is " + fmt(z) +
                   " standard deviations (log10) from the other layers",
               {{"statistic", "grad_rel"}, {"reference", "layers"}});
      }
      std::vector<double>& h = history_[L];
      if (static_cast<int>(h.size()) >= kOutlierMinHistory) {
        const MeanStd ms = mean_std(h);
        const double z = std::fabs(x - ms.mean) / std::max(ms.std, kOutlierStdFloor);
        if (transition(key_of(AlarmRule::outlier, L, "history"), z > c_.sigma))
          emit(step, L, AlarmRule::outlier, z, c_.sigma,
               "layer " + std::to_string(L) + ": relative gradient " + fmt(std::pow(10.0, x)) + " is " + fmt(z) +
                   " standard deviations (log10) from its last " + std::to_string(h.size()) + " logged values",
               {{"statistic", "grad_rel"}, {"reference", "history"}});
      }
      if (static_cast<int64_t>(h.size()) >= c_.outlier_window) h.erase(h.begin());
      h.push_back(x);
    }
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
          {"by_rule", by_rule_},
          {"layers_by_rule", layers_by_rule_},
          {"total", total_},
          {"dropped", dropped_}};
}

void AlarmEngine::restore(const json& s) {
  state_.clear();
  for (const json& key : s.at("active")) state_[key.get<std::string>()] = true;
  explosion_active_ = s.at("explosion_active").get<bool>();
  first_loss_ = s.at("first_loss").is_null() ? std::nan("") : s.at("first_loss").get<double>();
  loss_window_ = s.at("loss_window").get<std::vector<double>>();
  history_.clear();
  for (const auto& [layer, h] : s.at("history").items()) history_[std::stoll(layer)] = h.get<std::vector<double>>();
  by_rule_ = s.at("by_rule").get<std::array<int64_t, kAlarmRuleCount>>();
  layers_by_rule_ = s.at("layers_by_rule").get<std::array<std::vector<int64_t>, kAlarmRuleCount>>();
  total_ = s.at("total").get<int64_t>();
  dropped_ = s.at("dropped").get<int64_t>();
  n_pending_ = 0;
  rows_.clear();
}

std::string AlarmEngine::summary() const {
  const int64_t total = total_ + n_pending_;
  if (total == 0 && dropped_ == 0) return "no alarms";
  std::ostringstream os;
  os << total << (total == 1 ? " alarm: " : " alarms: ");
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
  return os.str();
}

}  // namespace cn
