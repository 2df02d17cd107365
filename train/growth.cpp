#include "train/growth.h"
#include "train/surgery.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <numeric>

#include "core/error.h"
#include "core/philox.h"
#include "io/files.h"
#include "kernels/activation.h"
#include "train/capacity_stats.h"

namespace cn {

using json = nlohmann::json;

namespace {

template <class T>
std::vector<double> host_params(const Sequential<T>& m) {
  std::vector<T> h(static_cast<size_t>(m.layout().total));
  device_copy(Device::cpu, h.data(), m.device(), m.params().data(), h.size() * sizeof(T));
  return std::vector<double>(h.begin(), h.end());
}

// The next Linear layer after `li` and the activation between them (past Dropout).
size_t next_linear(const std::vector<LayerSpec>& specs, size_t li) {
  for (size_t j = li + 1; j < specs.size(); ++j)
    if (specs[j].type == LayerKind::linear) return j;
  return specs.size();
}
size_t activation_after(const std::vector<LayerSpec>& specs, size_t li) {
  for (size_t j = li + 1; j < specs.size() && specs[j].type != LayerKind::linear; ++j)
    if (is_activation(specs[j].type)) return j;
  return specs.size();
}

// Mean L2 norm of the rows (units) of Linear layer li's weight: the scale new rows take.
template <class T>
double mean_row_norm(const Sequential<T>& m, size_t li, const std::vector<double>& p) {
  const int64_t off = m.layer_offset(li), O = m.layer(li).out_features(), I = m.layer(li).in_features();
  double s = 0;
  for (int64_t o = 0; o < O; ++o) {
    double r = 0;
    for (int64_t i = 0; i < I; ++i) r += p[off + o * I + i] * p[off + o * I + i];
    s += std::sqrt(r);
  }
  const double mean = s / static_cast<double>(O);
  return mean > 0 ? mean : std::sqrt(2.0);  // an all-zero layer: He's row norm for unit-variance inputs
}

// Row `d` rescaled to norm r (a zero row stays zero).
void set_row(std::vector<double>& w, int64_t row, int64_t I, const double* d, double r) {
  double n2 = 0;
  for (int64_t i = 0; i < I; ++i) n2 += d[i] * d[i];
  const double f = n2 > 0 ? r / std::sqrt(n2) : 0.0;
  for (int64_t i = 0; i < I; ++i) w[row * I + i] = d[i] * f;
}

}  // namespace

template <class T>
std::unique_ptr<Sequential<T>> widened_model(const Sequential<T>& model, size_t li, const std::vector<double>& w_in,
                                             const std::vector<double>& b_in, std::vector<int64_t>* source) {
  std::vector<LayerSpec> specs = model.specs();
  CN_CHECK(li < specs.size() && specs[li].type == LayerKind::linear);
  const int64_t k = static_cast<int64_t>(b_in.size()), I = model.layer(li).in_features();
  const int64_t O = model.layer(li).out_features();
  CN_CHECK(static_cast<int64_t>(w_in.size()) == k * I);
  // The same unit map as pruning (docs/capacity.md §re-layout): layer li keeps its O units
  // and gains k new ones (-1).
  std::vector<int64_t> units(static_cast<size_t>(O + k), -1);
  for (int64_t u = 0; u < O; ++u) units[static_cast<size_t>(u)] = u;
  Relayout plan = plan_relayout(specs, model.n_inputs(), UnitMap{{static_cast<int64_t>(li), units}});
  auto grown = std::make_unique<Sequential<T>>(plan.specs, model.n_inputs(), model.device());
  const ParamLayout& L = grown->layout();
  CN_CHECK(plan.new_total == L.total);
  *source = std::move(plan.source);
  const std::vector<double> p_old = host_params(model);
  std::vector<double> p(static_cast<size_t>(L.total), 0.0);  // the next layer's new columns stay 0
  for (int64_t i = 0; i < L.total; ++i)
    if ((*source)[i] >= 0) p[i] = p_old[(*source)[i]];
  for (const ParamSegment& s : L.segments) {
    if (s.layer != static_cast<int64_t>(li)) continue;
    for (int64_t r = 0; r < k; ++r)
      if (s.is_bias)
        p[s.offset + O + r] = b_in[r];
      else
        for (int64_t i = 0; i < I; ++i) p[s.offset + (O + r) * I + i] = w_in[r * I + i];
  }
  std::vector<T> cast(p.begin(), p.end());
  device_copy(grown->device(), grown->params().data(), Device::cpu, cast.data(), cast.size() * sizeof(T));
  // Running statistics of the layers whose width did not change (growable layers have no
  // BatchNorm of their own).
  for (size_t i = 0; i < grown->size(); ++i) {
    grown->layer(i).reset_state();
    auto to = grown->layer(i).state();
    auto from = const_cast<Sequential<T>&>(model).layer(i).state();
    for (size_t j = 0; j < to.size() && j < from.size(); ++j)
      if (to[j].size == from[j].size)
        device_copy(to[j].device, to[j].data, from[j].device, from[j].data,
                    static_cast<size_t>(to[j].size) * sizeof(T));
  }
  return grown;
}

template <class T>
void adopt_model(Engine<T>& e, std::unique_ptr<Sequential<T>> grown, const std::vector<int64_t>& source) {
  grown->reserve(std::max<int64_t>(e.batch, e.eval_chunk()));
  e.optimizer->relayout(grown->layout(), source, e.st.step);
  e.model = std::move(grown);
}

std::vector<size_t> growable_layers(const GrowthConfig& g, const std::vector<LayerSpec>& specs) {
  std::vector<size_t> out;
  if (g.layers.empty()) {
    for (size_t i = 0; i < specs.size(); ++i)
      if (specs[i].type == LayerKind::linear && next_linear(specs, i) < specs.size()) out.push_back(i);
  } else {
    for (int64_t l : g.layers) out.push_back(static_cast<size_t>(l));
  }
  for (size_t li : out) {
    const std::string where = "growth.layers: layer " + std::to_string(li);
    if (li >= specs.size() || specs[li].type != LayerKind::linear || next_linear(specs, li) >= specs.size())
      throw InputError(where + " is not a hidden Linear layer (expected a Linear layer followed by another)");
    for (size_t j = li + 1; j < next_linear(specs, li); ++j)
      if (specs[j].type == LayerKind::batchnorm)
        throw InputError(where + " is followed by BatchNorm (layer " + std::to_string(j) +
                         "), whose statistics a new unit would not have; expected Linear -> activation [-> dropout]");
    if (activation_after(specs, li) >= specs.size())
      throw InputError(where + " has no activation before the next Linear layer");
  }
  return out;
}

template <class T>
Growth<T>::Growth(const Config& config, const Sequential<T>& model)
    : g_(config.growth), seed_(config.train.seed), layers_(growable_layers(config.growth, model.specs())) {
  for (size_t li : layers_) widths_.push_back(model.layer(li).out_features());
}

template <class T>
bool Growth<T>::observe(double val_loss) {
  if (!std::isfinite(val_loss)) return false;
  const bool improved = !has_best_ || val_loss < best_ - g_.min_delta * std::abs(best_);
  if (improved) {
    best_ = val_loss;
    has_best_ = true;
    since_ = 0;
  } else {
    ++since_;
  }
  bool room = false;
  for (int64_t w : widths_) room = room || w < g_.max_width;
  return since_ >= g_.patience && room;
}

template <class T>
size_t Growth<T>::choose(Engine<T>& e, json* evidence) {
  const size_t L = layers_.size();
  if (g_.select == GrowthSelect::round_robin) {
    for (size_t j = 0; j < L; ++j) {
      const size_t c = (static_cast<size_t>(events_) + j) % L;
      if (widths_[c] < g_.max_width) return c;
    }
    CN_CHECK(false);
  }
  // rank_ratio: the layer whose activations use the most of their width.
  const BatchView v = view_batch(e, e.data.train, g_.batch_size, false);
  size_t best = L;
  double best_ratio = -1;
  json ratios = json::object();
  for (size_t c = 0; c < L; ++c) {
    const size_t a = activation_after(e.model->specs(), layers_[c]);
    const double ratio = activation_effective_rank(v.outputs[a], v.n, widths_[c]) / static_cast<double>(widths_[c]);
    ratios[std::to_string(layers_[c])] = ratio;
    if (widths_[c] < g_.max_width && ratio > best_ratio) {
      best_ratio = ratio;
      best = c;
    }
  }
  (*evidence)["rank_ratio"] = ratios;
  return best;
}

template <class T>
json Growth<T>::grow(Engine<T>& e, double val_loss) {
  json row = {{"step", e.st.step}, {"event", events_}, {"select", enum_name(kGrowthSelects, g_.select)}};
  const size_t c = choose(e, &row);
  const size_t li = layers_[c];
  const std::vector<LayerSpec>& specs = e.model->specs();
  const int64_t I = e.model->layer(li).in_features(), O = widths_[c];
  const int64_t k = std::min(g_.units, g_.max_width - O);
  const bool needs_grads = g_.init == GrowthInit::random_restart;
  const BatchView v = view_batch(e, e.data.train, g_.batch_size, needs_grads);
  const std::vector<double>& H = li == 0 ? v.input : v.outputs[li - 1];  // the layer's input, n × I
  const double r = mean_row_norm(*e.model, li, host_params(*e.model));
  PhiloxDraw rng(seed_, RngStream::growth, static_cast<uint32_t>(events_), 0);
  std::vector<double> w(static_cast<size_t>(k * I), 0.0), b(static_cast<size_t>(k), 0.0);
  std::vector<double> mean(static_cast<size_t>(I), 0.0);
  for (int64_t n = 0; n < v.n; ++n)
    for (int64_t i = 0; i < I; ++i) mean[i] += H[n * I + i] / static_cast<double>(v.n);
  auto sample_rows = [&](const std::vector<int64_t>& picks) {
    std::vector<double> d(static_cast<size_t>(I));
    for (int64_t u = 0; u < k; ++u) {
      for (int64_t i = 0; i < I; ++i) d[i] = H[picks[u] * I + i] - mean[i];
      set_row(w, u, I, d.data(), r);
    }
    row["samples"] = picks;
  };
  switch (g_.init) {
    case GrowthInit::random_subsample: {
      std::vector<int64_t> idx(static_cast<size_t>(v.n));
      std::iota(idx.begin(), idx.end(), 0);
      for (int64_t u = 0; u < k && u < v.n; ++u)
        std::swap(idx[u], idx[u + static_cast<int64_t>(rng.below(static_cast<uint64_t>(v.n - u)))]);
      idx.resize(static_cast<size_t>(std::min(k, v.n)));
      while (static_cast<int64_t>(idx.size()) < k) idx.push_back(idx[idx.size() % static_cast<size_t>(v.n)]);
      sample_rows(idx);
      break;
    }
    case GrowthInit::highest_loss: {
      std::vector<int64_t> idx(static_cast<size_t>(v.n));
      std::iota(idx.begin(), idx.end(), 0);
      std::stable_sort(idx.begin(), idx.end(),
                       [&](int64_t a, int64_t c2) { return v.sample_loss[a] > v.sample_loss[c2]; });
      idx.resize(static_cast<size_t>(std::min(k, v.n)));
      while (static_cast<int64_t>(idx.size()) < k) idx.push_back(idx[idx.size() % static_cast<size_t>(v.n)]);
      sample_rows(idx);
      break;
    }
    case GrowthInit::input_subset: {
      const int64_t m = std::max<int64_t>(1, std::llround(std::sqrt(static_cast<double>(I))));
      json inputs = json::array();
      for (int64_t u = 0; u < k; ++u) {
        std::vector<int64_t> idx(static_cast<size_t>(I));
        std::iota(idx.begin(), idx.end(), 0);
        for (int64_t j = 0; j < m; ++j)
          std::swap(idx[j], idx[j + static_cast<int64_t>(rng.below(static_cast<uint64_t>(I - j)))]);
        idx.resize(static_cast<size_t>(m));
        for (int64_t i : idx) w[u * I + i] = rng.normal() * r / std::sqrt(static_cast<double>(m));
        inputs.push_back(idx);
      }
      row["inputs"] = inputs;
      break;
    }
    case GrowthInit::random_restart: {
      // kRestarts random candidates per new unit; the k kept are those whose outgoing
      // weights would get the largest gradient, ‖Σ_n δ_n a_n‖ / n with δ the loss gradient
      // at the next Linear layer's output: the first-order gain of adding the unit.
      constexpr int64_t kRestarts = 4;
      const size_t lj = next_linear(specs, li), a = activation_after(specs, li);
      const ActParams act = activation_params(specs[a]);
      const int64_t Q = e.model->layer(lj).out_features();
      const std::vector<double>& delta = v.grads[lj];
      std::vector<std::pair<double, int64_t>> gains;
      std::vector<double> cand(static_cast<size_t>(kRestarts * k * I));
      for (auto& x : cand) x = rng.normal() * r / std::sqrt(static_cast<double>(I));
      for (int64_t j = 0; j < kRestarts * k; ++j) {
        std::vector<double> g(static_cast<size_t>(Q), 0.0);
        for (int64_t n = 0; n < v.n; ++n) {
          double z = 0;
          for (int64_t i = 0; i < I; ++i) z += H[n * I + i] * cand[j * I + i];
          const double an = act_f(act, z);
          for (int64_t q = 0; q < Q; ++q) g[q] += delta[n * Q + q] * an;
        }
        double norm = 0;
        for (double x : g) norm += x * x;
        gains.emplace_back(std::sqrt(norm) / static_cast<double>(v.n), j);
      }
      std::stable_sort(gains.begin(), gains.end(), [](const auto& x, const auto& y) { return x.first > y.first; });
      json kept = json::array();
      for (int64_t u = 0; u < k; ++u) {
        std::copy_n(cand.begin() + gains[u].second * I, I, w.begin() + u * I);
        kept.push_back(gains[u].first);
      }
      row["gains"] = kept;
      break;
    }
  }
  std::vector<int64_t> source;
  adopt_model(e, widened_model(*e.model, li, w, b, &source), source);
  widths_[c] += k;
  since_ = 0;
  ++events_;
  row.update({{"layer", li},
              {"from", O},
              {"to", O + k},
              {"init", enum_name(kGrowthInits, g_.init)},
              {"val_loss", val_loss},
              {"n_params", e.model->layout().total}});
  return row;
}

template <class T>
json Growth<T>::state(const Sequential<T>& model) const {
  json widths = json::object();
  for (size_t c = 0; c < layers_.size(); ++c) widths[std::to_string(layers_[c])] = widths_[c];
  return {{"widths", widths}, {"best", best_}, {"has_best", has_best_}, {"since", since_}, {"events", events_}};
}

template <class T>
void Growth<T>::restore(const json& s, Engine<T>& e) {
  for (size_t c = 0; c < layers_.size(); ++c) {
    const size_t li = layers_[c];
    const int64_t target = s.at("widths").at(std::to_string(li)).get<int64_t>();
    const int64_t cur = e.model->layer(li).out_features();
    if (target < cur || target > std::max(g_.max_width, cur))
      throw InputError("growth.json: layer " + std::to_string(li) + " width " + std::to_string(target) +
                       " is outside [" + std::to_string(cur) + ", growth.max_width]");
    if (target > cur) {
      const int64_t k = target - cur, I = e.model->layer(li).in_features();
      std::vector<int64_t> source;
      adopt_model(e,
                  widened_model(*e.model, li, std::vector<double>(static_cast<size_t>(k * I), 0.0),
                                std::vector<double>(static_cast<size_t>(k), 0.0), &source),
                  source);
    }
    widths_[c] = target;
  }
  best_ = s.at("best").get<double>();
  has_best_ = s.at("has_best").get<bool>();
  since_ = s.at("since").get<int64_t>();
  events_ = s.at("events").get<int64_t>();
}

template <class T>
void widen_to_checkpoint(Engine<T>& e, const Config& config, const std::string& checkpoint_dir) {
  const std::string path = checkpoint_dir + "/growth.json";
  if (!config.growth.enabled || !std::filesystem::exists(path)) return;
  try {
    Growth<T>(config, *e.model).restore(json::parse(read_file(path)), e);
  } catch (const json::exception& err) {
    throw InputError(path + ": " + err.what() + " (expected the growth state a checkpoint saves)");
  }
}

template void widen_to_checkpoint<float>(Engine<float>&, const Config&, const std::string&);
template void widen_to_checkpoint<double>(Engine<double>&, const Config&, const std::string&);
template std::unique_ptr<Sequential<float>> widened_model<float>(const Sequential<float>&, size_t,
                                                                 const std::vector<double>&, const std::vector<double>&,
                                                                 std::vector<int64_t>*);
template std::unique_ptr<Sequential<double>> widened_model<double>(const Sequential<double>&, size_t,
                                                                   const std::vector<double>&,
                                                                   const std::vector<double>&, std::vector<int64_t>*);
template void adopt_model<float>(Engine<float>&, std::unique_ptr<Sequential<float>>, const std::vector<int64_t>&);
template void adopt_model<double>(Engine<double>&, std::unique_ptr<Sequential<double>>, const std::vector<int64_t>&);
template class Growth<float>;
template class Growth<double>;

}  // namespace cn
