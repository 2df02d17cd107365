#include "diagnostics/doctor.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <stdexcept>

#include "core/error.h"
#include "diagnostics/layer_stats.h"
#include "io/files.h"

namespace cn {

using json = nlohmann::json;

namespace {

// row[name] = num / den; a zero denominator gives null with a status.
void set_ratio(json& row, const std::string& name, double num, double den) {
  if (den == 0) {
    row[name] = nullptr;
    row[name + "_status"] = "zero denominator";
  } else {
    set_metric(row, name, num / den);
  }
}

std::string value_text(double v) {
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

}  // namespace

template <class T>
Doctor<T>::Doctor(const Config& config, Sequential<T>& model)
    : config_(config), model_(model), alarms_(config.alarms, config.optim) {
  const size_t L = model_.size();
  layers_.resize(L);
  weight_seg_.assign(L, -1);
  bias_seg_.assign(L, -1);
  const auto& segs = model_.layout().segments;
  for (size_t k = 0; k < segs.size(); ++k) {
    const size_t i = static_cast<size_t>(segs[k].layer);
    if (segs[k].is_bias)
      bias_seg_[i] = static_cast<int64_t>(k);
    else
      weight_seg_[i] = static_cast<int64_t>(k);
  }
  for (size_t i = 0; i < L; ++i)
    if (model_.layer(i).kind() == LayerKind::linear) last_linear_ = static_cast<int64_t>(i);
  const int64_t W = std::max<int64_t>(config_.alarms.dead_window, 1);
  int64_t max_width = model_.n_inputs();
  for (size_t i = 0; i < L; ++i) {
    const Layer<T>& l = model_.layer(i);
    max_width = std::max(max_width, l.out_features());
    if (const ActParams* a = l.activation(); a && act_can_die(a->kind))
      layers_[i].active.assign(static_cast<size_t>(W * l.out_features()), 0);
  }
  const int64_t P = model_.layout().total;
  prev_params_.resize(static_cast<size_t>(P));
  if (model_.device() != Device::cpu) {
    host_params_.resize(static_cast<size_t>(P));
    host_grads_.resize(static_cast<size_t>(P));
    scratch_x_.resize(static_cast<size_t>(config_.data.batch_size * max_width));
    scratch_y_.resize(static_cast<size_t>(config_.data.batch_size * max_width));
  }
  stats_rows_.reserve(L);
}

template <class T>
const T* Doctor<T>::host(const T* p, int64_t n, std::vector<T>& scratch) {
  if (model_.device() == Device::cpu) return p;
  if (static_cast<int64_t>(scratch.size()) < n) scratch.resize(static_cast<size_t>(n));
  device_copy(Device::cpu, scratch.data(), model_.device(), p, static_cast<size_t>(n) * sizeof(T));
  return scratch.data();
}

template <class T>
bool Doctor<T>::before_update(int64_t step, double loss, const ClipResult& clip, bool logged, int64_t batch_n) {
  alarms_.observe_step(step, clip.norm_before);
  bool first = false;
  if (!nonfinite_seen_ && (!std::isfinite(loss) || !std::isfinite(clip.norm_before))) {
    trace_nonfinite(step, loss, clip, batch_n);
    nonfinite_seen_ = first = true;
  }
  window_loss_ += loss;
  ++window_steps_;
  pending_logged_ = logged;
  pending_step_ = step;
  if (!logged) return first;

  CN_CHECK_MSG(batch_n > 0, "Doctor::before_update: batch_n must be positive");
  logged_grad_norm_ = clip.norm_before;
  const int64_t P = model_.layout().total;
  const auto& segs = model_.layout().segments;
  device_copy(Device::cpu, prev_params_.data(), model_.device(), model_.params().data(),
              static_cast<size_t>(P) * sizeof(T));
  const T* G = host(model_.grads().data(), P, host_grads_);
  const T* W = prev_params_.data();
  for (size_t i = 0; i < model_.size(); ++i) {
    LayerScratch& s = layers_[i];
    if (weight_seg_[i] >= 0) {
      const ParamSegment& g = segs[static_cast<size_t>(weight_seg_[i])];
      s.grad_l2 = l2_norm(G + g.offset, g.size());
      s.grad_linf = linf_norm(G + g.offset, g.size());
      s.w_before = l2_norm(W + g.offset, g.size());
      const bool hidden_linear =
          model_.layer(i).kind() == LayerKind::linear && static_cast<int64_t>(i) != last_linear_ && g.rows >= 2;
      const T* b = bias_seg_[i] >= 0 ? W + segs[static_cast<size_t>(bias_seg_[i])].offset : nullptr;
      s.unit_spread = hidden_linear ? unit_spread(W + g.offset, b, g.rows, g.cols) : std::nan("");
    }
    if (bias_seg_[i] >= 0) {
      const ParamSegment& g = segs[static_cast<size_t>(bias_seg_[i])];
      s.bias_grad_l2 = l2_norm(G + g.offset, g.size());
      s.bias_grad_linf = linf_norm(G + g.offset, g.size());
      s.b_before = l2_norm(W + g.offset, g.size());
    }
    const Layer<T>& l = model_.layer(i);
    if (const ActParams* a = l.activation()) {
      const int64_t F = l.out_features(), n = batch_n * F;
      const T* x = host(model_.layer_input(i), n, scratch_x_);
      const T* y = host(model_.layer_output(i), n, scratch_y_);
      const MeanVar mv = mean_var(y, n);
      s.act_mean = mv.mean;
      s.act_var = mv.var;
      s.pre_act_var = mean_var(x, n).var;
      if (act_can_die(a->kind)) {
        const int64_t Wn = static_cast<int64_t>(s.active.size()) / F;
        units_active(x, batch_n, F, s.active.data() + static_cast<int64_t>(s.ring_pos) * F);
        s.ring_pos = static_cast<int>((s.ring_pos + 1) % Wn);
        s.ring_count = static_cast<int>(std::min<int64_t>(s.ring_count + 1, Wn));
        int64_t dead = 0;
        for (int64_t f = 0; f < F; ++f) {
          bool any = false;
          for (int k = 0; k < s.ring_count && !any; ++k) any = s.active[static_cast<size_t>(k * F + f)] != 0;
          if (!any) ++dead;
        }
        s.dead_share = static_cast<double>(dead) / static_cast<double>(F);
        s.dead_window_used = s.ring_count;
      }
      if (act_saturates(a->kind)) s.saturated_share = saturated_share(*a, x, y, batch_n, F);
    }
    if (i > 0) {
      const int64_t n = batch_n * l.in_features();
      s.input_grad_mean = mean_abs(host(model_.output_grad(i - 1), n, scratch_x_), n);
    }
  }
  return first;
}

template <class T>
void Doctor<T>::after_update(int64_t step, bool logged) {
  const bool was_logged = logged && pending_logged_ && pending_step_ == step;
  pending_logged_ = false;
  last_update_step_ = step;
  if (!was_logged) return;

  const int64_t P = model_.layout().total;
  const auto& segs = model_.layout().segments;
  const T* Wn = host(model_.params().data(), P, host_params_);
  const T* Wb = prev_params_.data();
  if (!nonfinite_seen_) {
    for (const ParamSegment& g : segs) {
      int64_t at = 0;
      if (!all_finite(Wn + g.offset, g.size(), &at)) {
        const double v = static_cast<double>(Wn[g.offset + at]);
        alarms_.report_nonfinite(step, g.layer, "update", g.name, v,
                                 "non-finite value (" + value_text(v) + ") first seen after the update of step " +
                                     std::to_string(step) + ": layer " + std::to_string(g.layer) + " (" +
                                     model_.layer(static_cast<size_t>(g.layer)).type() + ") " + g.name);
        nonfinite_seen_ = true;
        break;
      }
    }
  }

  double grad_sum = 0;
  for (size_t i = 0; i < model_.size(); ++i)
    if (weight_seg_[i] >= 0) grad_sum += layers_[i].grad_l2;

  std::vector<LayerObservation> obs;
  for (size_t i = 0; i < model_.size(); ++i) {
    const LayerScratch& s = layers_[i];
    const Layer<T>& l = model_.layer(i);
    LayerObservation o;
    o.layer = static_cast<int64_t>(i);
    json row = json::object();
    row["step"] = step;
    row["layer"] = static_cast<int64_t>(i);
    row["kind"] = "step";
    row["type"] = l.type();
    if (weight_seg_[i] >= 0) {
      const ParamSegment& g = segs[static_cast<size_t>(weight_seg_[i])];
      const double wn = l2_norm(Wn + g.offset, g.size());
      const double du = l2_distance(Wn + g.offset, Wb + g.offset, g.size());
      set_metric(row, "grad_l2", s.grad_l2);
      set_metric(row, "grad_linf", s.grad_linf);
      set_metric(row, "weight_norm", wn);
      set_metric(row, "weight_rms", wn / std::sqrt(static_cast<double>(g.size())));
      set_ratio(row, "grad_rel", s.grad_l2, s.w_before);
      set_ratio(row, "grad_share", s.grad_l2, grad_sum);
      set_ratio(row, "update_ratio", du, s.w_before);
      o.grad_l2 = s.grad_l2;
      o.grad_rel = s.w_before > 0 ? s.grad_l2 / s.w_before : std::nan("");
      o.update_ratio = s.w_before > 0 ? du / s.w_before : std::nan("");
      o.weight_rms = wn / std::sqrt(static_cast<double>(g.size()));
      o.linear = l.kind() == LayerKind::linear;
      if (!std::isnan(s.unit_spread)) {
        set_metric(row, "unit_spread", s.unit_spread);
        o.unit_spread = s.unit_spread;
      }
    }
    if (bias_seg_[i] >= 0) {
      const ParamSegment& g = segs[static_cast<size_t>(bias_seg_[i])];
      set_metric(row, "bias_grad_l2", s.bias_grad_l2);
      set_metric(row, "bias_grad_linf", s.bias_grad_linf);
      set_metric(row, "bias_norm", l2_norm(Wn + g.offset, g.size()));
      set_ratio(row, "bias_update_ratio", l2_distance(Wn + g.offset, Wb + g.offset, g.size()), s.b_before);
    }
    if (const ActParams* a = l.activation()) {
      set_metric(row, "act_mean", s.act_mean);
      set_metric(row, "act_var", s.act_var);
      set_metric(row, "pre_act_var", s.pre_act_var);
      o.pre_act_var = s.pre_act_var;
      if (act_can_die(a->kind)) {
        set_metric(row, "dead_share", s.dead_share);
        row["dead_window"] = s.dead_window_used;
        o.dead_share = s.dead_share;
      }
      if (act_saturates(a->kind)) {
        set_metric(row, "saturated_share", s.saturated_share);
        o.saturated_share = s.saturated_share;
      }
    }
    if (i > 0) {
      set_metric(row, "input_grad_mean", s.input_grad_mean);
    } else {
      row["input_grad_mean"] = nullptr;
      row["input_grad_mean_status"] = "not computed (network input)";
    }
    stats_rows_.push_back(std::move(row));
    obs.push_back(o);
  }
  const double mean_loss = window_steps_ > 0 ? window_loss_ / static_cast<double>(window_steps_) : std::nan("");
  alarms_.observe_logged(step, mean_loss, logged_grad_norm_, obs);
  window_loss_ = 0;
  window_steps_ = 0;
}

template <class T>
bool Doctor<T>::observe_initial(double loss, const ClipResult& clip, int64_t batch_n) {
  const std::vector<LayerScratch> kept = layers_;
  const double kept_loss = window_loss_;
  const int64_t kept_steps = window_steps_, kept_last = last_update_step_;
  const size_t first_row = stats_rows_.size();
  window_loss_ = 0;
  window_steps_ = 0;
  const bool first = before_update(0, loss, clip, true, batch_n);
  after_update(0, true);
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i].active = kept[i].active;
    layers_[i].ring_pos = kept[i].ring_pos;
    layers_[i].ring_count = kept[i].ring_count;
  }
  window_loss_ = kept_loss;
  window_steps_ = kept_steps;
  last_update_step_ = kept_last;  // the NaN trace blames no update for what the initialisation holds
  for (size_t r = first_row; r < stats_rows_.size(); ++r)
    for (const char* name : {"update_ratio", "bias_update_ratio"}) {
      json& row = stats_rows_[r];
      if (!row.contains(name)) continue;
      row[name] = nullptr;
      row[std::string(name) + "_status"] = "no update at step 0";
    }
  return first;
}

template <class T>
void Doctor<T>::trace_nonfinite(int64_t step, double loss, const ClipResult& clip, int64_t batch_n) {
  std::vector<T> buf;
  double bad = 0;
  auto finite_at = [&](const T* p, int64_t n) {
    if (!p || n <= 0) return true;
    buf.resize(static_cast<size_t>(n));
    device_copy(Device::cpu, buf.data(), model_.device(), p, static_cast<size_t>(n) * sizeof(T));
    int64_t at = 0;
    if (all_finite(buf.data(), n, &at)) return true;
    bad = static_cast<double>(buf[static_cast<size_t>(at)]);
    return false;
  };
  auto report = [&](int64_t at_step, int64_t layer, const std::string& pass, const std::string& tensor) {
    std::string where =
        layer < 0 ? std::string("the network")
                  : "layer " + std::to_string(layer) + " (" + model_.layer(static_cast<size_t>(layer)).type() + ")";
    alarms_.report_nonfinite(at_step, layer, pass, tensor, bad,
                             "non-finite value (" + value_text(bad) + ") first seen in the " + pass +
                                 " pass: " + where + " " + tensor + " at step " + std::to_string(at_step));
  };
  const auto& segs = model_.layout().segments;
  const int64_t L = static_cast<int64_t>(model_.size());
  const T* P = model_.params().data();
  const T* G = model_.grads().data();
  if (batch_n <= 0) batch_n = 0;

  if (!std::isfinite(loss)) {
    if (!finite_at(model_.layer_input(0), batch_n * model_.n_inputs())) return report(step, 0, "forward", "input");
    for (int64_t i = 0; i < L; ++i) {
      for (const ParamSegment& g : segs)
        if (g.layer == i && !finite_at(P + g.offset, g.size())) {
          if (last_update_step_ >= 0) return report(last_update_step_, i, "update", g.name);
          return report(step, i, "forward", g.name);
        }
      if (!finite_at(model_.layer_output(static_cast<size_t>(i)),
                     batch_n * model_.layer(static_cast<size_t>(i)).out_features()))
        return report(step, i, "forward", "output");
    }
    bad = loss;
    return report(step, -1, "forward", "loss");
  }
  for (int64_t i = L - 1; i >= 0; --i) {
    const Layer<T>& l = model_.layer(static_cast<size_t>(i));
    if (i == L - 1 && !finite_at(model_.output_grad(static_cast<size_t>(i)), batch_n * l.out_features()))
      return report(step, i, "backward", "output_grad");
    for (const ParamSegment& g : segs)
      if (g.layer == i && !finite_at(G + g.offset, g.size())) return report(step, i, "backward", g.name + ".grad");
    if (i > 0 && !finite_at(model_.output_grad(static_cast<size_t>(i - 1)), batch_n * l.in_features()))
      return report(step, i, "backward", "input_grad");
  }
  bad = clip.norm_before;
  report(step, -1, "backward", "grad_norm");
}

template <class T>
json Doctor<T>::state() const {
  json dead = json::object();
  for (size_t i = 0; i < layers_.size(); ++i) {
    const LayerScratch& s = layers_[i];
    if (s.active.empty()) continue;
    std::string active(s.active.size(), '0');  // one character per flag keeps the state small
    for (size_t k = 0; k < s.active.size(); ++k)
      if (s.active[k]) active[k] = '1';
    dead[std::to_string(i)] = {{"active", active}, {"pos", s.ring_pos}, {"count", s.ring_count}};
  }
  return {{"alarms", alarms_.state()},
          {"dead_windows", dead},
          {"window_loss", json_number(window_loss_)},
          {"window_steps", window_steps_},
          {"last_update_step", last_update_step_},
          {"nonfinite_seen", nonfinite_seen_}};
}

template <class T>
void Doctor<T>::restore(const json& state) {
  alarms_.restore(state.at("alarms"));
  const json& dead = state.at("dead_windows");
  for (auto it = dead.begin(); it != dead.end(); ++it) {
    const std::string& layer = it.key();
    const json& d = it.value();
    const size_t i = std::stoul(layer);
    if (i >= layers_.size() || layers_[i].active.empty())
      throw std::invalid_argument("dead_windows: layer " + layer + " has no dead-unit window in this model");
    LayerScratch& s = layers_[i];
    const std::string flags = d.at("active").get<std::string>();
    if (flags.find_first_not_of("01") != std::string::npos)
      throw std::invalid_argument("dead_windows: layer " + layer + " flags are not a string of 0 and 1");
    std::vector<uint8_t> active(flags.size());
    for (size_t k = 0; k < flags.size(); ++k) active[k] = flags[k] == '1';
    if (active.size() != s.active.size())
      throw std::invalid_argument("dead_windows: layer " + layer + " holds " + std::to_string(active.size()) +
                                  " flags, expected " + std::to_string(s.active.size()) +
                                  " (alarms.dead_window x units)");
    const int windows = static_cast<int>(active.size() / static_cast<size_t>(model_.layer(i).out_features()));
    s.active = std::move(active);
    s.ring_pos = d.at("pos").get<int>();
    s.ring_count = d.at("count").get<int>();
    if (s.ring_pos < 0 || s.ring_pos >= windows || s.ring_count < 0 || s.ring_count > windows)
      throw std::invalid_argument("dead_windows: layer " + layer + " position or count outside the window");
  }
  window_loss_ = state.at("window_loss").is_null() ? std::nan("") : state.at("window_loss").get<double>();
  window_steps_ = state.at("window_steps").get<int64_t>();
  last_update_step_ = state.at("last_update_step").get<int64_t>();
  nonfinite_seen_ = state.at("nonfinite_seen").get<bool>();
}

template <class T>
std::vector<json> Doctor<T>::take_stats_rows() {
  std::vector<json> out;
  out.swap(stats_rows_);
  return out;
}

template <class T>
std::vector<json> Doctor<T>::take_alarm_rows() {
  return alarms_.take_rows();
}

template <class T>
std::vector<json> Doctor<T>::on_checkpoint(int64_t step, std::map<std::string, std::vector<double>>* spectra) {
  const auto& segs = model_.layout().segments;
  const int64_t P = model_.layout().total;
  std::vector<T> p(static_cast<size_t>(P)), g(static_cast<size_t>(P));
  device_copy(Device::cpu, p.data(), model_.device(), model_.params().data(), static_cast<size_t>(P) * sizeof(T));
  device_copy(Device::cpu, g.data(), model_.device(), model_.grads().data(), static_cast<size_t>(P) * sizeof(T));
  const double eps = std::numeric_limits<T>::epsilon();

  struct Spec {
    size_t layer;
    std::vector<double> w, g;
  };
  std::vector<Spec> specs;
  for (size_t i = 0; i < model_.size(); ++i) {
    if (model_.layer(i).kind() != LayerKind::linear || weight_seg_[i] < 0) continue;
    const ParamSegment& s = segs[static_cast<size_t>(weight_seg_[i])];
    std::vector<double> wd(p.begin() + s.offset, p.begin() + s.offset + s.size());
    std::vector<double> gd(g.begin() + s.offset, g.begin() + s.offset + s.size());
    const bool wf = all_finite(wd.data(), s.size()), gf = all_finite(gd.data(), s.size());
    specs.push_back({i, wf ? singular_values(wd.data(), s.rows, s.cols) : std::vector<double>{},
                     gf ? singular_values(gd.data(), s.rows, s.cols) : std::vector<double>{}});
  }
  std::vector<json> rows;
  for (size_t k = 0; k < specs.size(); ++k) {
    const Spec& sp = specs[k];
    const ParamSegment& s = segs[static_cast<size_t>(weight_seg_[sp.layer])];
    json row = json::object();
    row["step"] = step;
    row["layer"] = static_cast<int64_t>(sp.layer);
    row["kind"] = "spectrum";
    row["type"] = layer_kind_name(LayerKind::linear);
    row["rows"] = s.rows;
    row["cols"] = s.cols;
    auto put = [&](const std::string& prefix, const std::vector<double>& sv) {
      if (sv.empty()) {
        for (const char* m : {"sigma_max", "sigma_min", "numerical_rank", "stable_rank"}) {
          row[prefix + m] = nullptr;
          row[prefix + m + "_status"] = "non-finite values";
        }
        return;
      }
      const SingularSummary sum = summarize_singular_values(sv, s.rows, s.cols, eps);
      set_metric(row, prefix + "sigma_max", sum.sigma_max);
      set_metric(row, prefix + "sigma_min", sum.sigma_min);
      row[prefix + "numerical_rank"] = sum.numerical_rank;
      if (std::isnan(sum.stable_rank)) {
        row[prefix + "stable_rank"] = nullptr;
        row[prefix + "stable_rank_status"] = "zero matrix";
      } else {
        set_metric(row, prefix + "stable_rank", sum.stable_rank);
      }
    };
    put("", sp.w);
    put("grad_", sp.g);
    const double corr = pearson_correlation(sp.w, sp.g);
    if (std::isnan(corr)) {
      row["weight_grad_corr"] = nullptr;
      row["weight_grad_corr_status"] =
          sp.w.empty() || sp.g.empty() ? "non-finite values" : "constant or too short spectrum";
    } else {
      row["weight_grad_corr"] = corr;
    }
    if (k + 1 < specs.size()) {
      row["next_layer"] = static_cast<int64_t>(specs[k + 1].layer);
      const double sim = spectrum_similarity(sp.w, specs[k + 1].w);
      if (std::isnan(sim)) {
        row["spectrum_similarity"] = nullptr;
        row["spectrum_similarity_status"] = "zero or non-finite spectrum";
      } else {
        row["spectrum_similarity"] = sim;
      }
    }
    rows.push_back(std::move(row));
    if (spectra) {
      (*spectra)["weights." + std::to_string(sp.layer) + ".singular_values"] = sp.w;
      (*spectra)["grads." + std::to_string(sp.layer) + ".singular_values"] = sp.g;
    }
  }
  return rows;
}

template <class T>
void Doctor<T>::on_curvature(int64_t step, const std::vector<CurvatureObservation>& rows, double lr) {
  alarms_.observe_curvature(step, rows, lr);
}

template class Doctor<float>;
template class Doctor<double>;

}  // namespace cn
