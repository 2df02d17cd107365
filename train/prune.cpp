#include "train/prune.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <numeric>
#include <sstream>

#include "core/error.h"
#include "io/files.h"
#include "io/run_layout.h"
#include "train/engine.h"
#include "train/run_dir.h"
#include "train/surgery.h"

namespace cn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// A model copy for the saliencies: the curvature engine never touches the training model's
// caches (on CUDA its recorded graphs hold their addresses).
template <class T>
struct Probe {
  Sequential<T> net;
  Loss<T> loss;
  HvpEngine<T> eng;
  Buffer<T> x, t;
  CurvatureBatch<T> batch;
  Probe(const HostModel& m, LossKind kind, Device d, const std::vector<double>& xs, const std::vector<double>& ts,
        int64_t N, const PassCtx& ctx)
      : net(m.specs, m.n_inputs, d), loss(kind), eng(net, loss) {
    net.reserve(N, 1);
    const std::vector<T> p(m.params.begin(), m.params.end());
    device_copy(d, net.params().data(), Device::cpu, p.data(), p.size() * sizeof(T));
    for (size_t i = 0; i < net.size(); ++i)
      for (const StateView<T>& s : net.layer(i).state()) {
        const std::vector<double>& v = m.buffers.at(std::to_string(i) + "." + s.name);
        const std::vector<T> c(v.begin(), v.end());
        device_copy(s.device, s.data, Device::cpu, c.data(), c.size() * sizeof(T));
      }
    x = Buffer<T>(static_cast<int64_t>(xs.size()), d);
    t = Buffer<T>(static_cast<int64_t>(ts.size()), d);
    const std::vector<T> xc(xs.begin(), xs.end()), tc(ts.begin(), ts.end());
    device_copy(d, x.data(), Device::cpu, xc.data(), xc.size() * sizeof(T));
    device_copy(d, t.data(), Device::cpu, tc.data(), tc.size() * sizeof(T));
    batch = CurvatureBatch<T>{ctx, x.data(), t.data(), N};
  }
};

// The k entries of `candidates` with the smallest saliency (ties: the lower index).
std::vector<int64_t> lowest(const std::vector<int64_t>& candidates, const std::vector<double>& saliency, int64_t k) {
  std::vector<int64_t> order = candidates;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return saliency[a] < saliency[b]; });
  order.resize(static_cast<size_t>(std::min<int64_t>(k, static_cast<int64_t>(order.size()))));
  return order;
}

// The next Linear layer after `layer` (the consumer of its units); -1 when none.
int64_t consumer_of(const std::vector<LayerSpec>& specs, int64_t layer) {
  for (size_t i = static_cast<size_t>(layer) + 1; i < specs.size(); ++i)
    if (specs[i].type == LayerKind::linear) return static_cast<int64_t>(i);
  return -1;
}

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(6);
  s << v;
  return s.str();
}

template <class T>
class Pruner {
 public:
  Pruner(const PruneOptions& o, const Config& config, Device device)
      : o_(o), config_(config), device_(device), out_(o.out ? *o.out : std::cout) {}
  PruneSummary run();

 private:
  struct Track {  // one pruned layer
    int64_t layer = 0;
    int64_t total = 0;  // units (neuron) or weights (weight) at the start
    int64_t removed = 0;
    std::vector<int64_t> orig;  // neuron: the original index of each current unit
    std::string skipped;        // why the layer is not pruned ("" = pruned)
    std::string method;         // how its saliencies were measured
    json removed_list = json::array();
  };
  struct State {
    Config config;
    HostModel model;
    TrainState st;
    std::vector<Track> tracks;
    json eval;
  };

  void start();
  void check_layers();
  std::unique_ptr<Engine<T>> engine_for(const Config& c, const HostModel& m, const TrainState& st) const;
  std::unique_ptr<Probe<T>> probe(const HostModel& m) const;
  // Removes `k` more units/weights of the track's layer from the current engine.
  void remove(Track& t, int64_t k);
  // Hutchinson's size limit and random stream for the saliencies of this round.
  SaliencyOptions saliency_options() const {
    SaliencyOptions so;
    so.dense_max = config_.diagnostics.dense_max_params;
    so.seed = config_.train.seed;
    so.step = static_cast<uint64_t>(e_->st.step);
    return so;
  }
  void remove_units(Track& t, int64_t k);
  void remove_weights(Track& t, int64_t k);
  json evaluate();
  json round_row(int64_t round, const json& eval, double rise, bool accepted, double seconds) const;
  void write_run(const State& good, const PruneSummary& s);

  PruneOptions o_;
  Config config_;
  Device device_;
  std::ostream& out_;
  std::unique_ptr<Engine<T>> e_;
  std::vector<Track> tracks_;
  std::vector<double> batch_x_, batch_t_;
  int64_t batch_n_ = 0;
  std::vector<json> curve_;
};

template <class T>
std::unique_ptr<Engine<T>> Pruner<T>::engine_for(const Config& c, const HostModel& m, const TrainState& st) const {
  auto e = std::make_unique<Engine<T>>(c, device_);
  e->st = st;
  write_host_model(*e, m);
  e->ensure_order(e->st.epoch);
  return e;
}

template <class T>
std::unique_ptr<Probe<T>> Pruner<T>::probe(const HostModel& m) const {
  PassCtx ctx;
  ctx.device = device_;
  ctx.training = config_.diagnostics.mode == DiagMode::train;
  ctx.dropout_key = philox_key(config_.train.seed, RngStream::curvature);
  ctx.step = static_cast<uint64_t>(e_->st.step);
  return std::make_unique<Probe<T>>(m, config_.loss.kind, device_, batch_x_, batch_t_, batch_n_, ctx);
}

template <class T>
void Pruner<T>::start() {
  const std::string ckpt = resolve_checkpoint(o_.run_dir);
  e_ = std::make_unique<Engine<T>>(config_, device_);
  e_->load_checkpoint(ckpt);
  if (e_->data.val.n == 0)
    throw InputError("prune " + o_.run_dir + ": data set '" + config_.data.dataset +
                     "' has no validation split (data.val_fraction = 0); pruning stops on the validation loss");
  const Dataset& tr = e_->data.train;
  batch_n_ = std::min<int64_t>(config_.diagnostics.batch_size, tr.n);
  batch_x_.assign(tr.x.begin(), tr.x.begin() + batch_n_ * tr.d);
  batch_t_.assign(e_->train_targets.begin(), e_->train_targets.begin() + batch_n_ * e_->shape.target_width);
  check_layers();
}

template <class T>
void Pruner<T>::check_layers() {
  const std::vector<LayerSpec>& specs = e_->model->specs();
  std::vector<int64_t> layers = o_.layers;
  const bool neuron = o_.granularity == PruneGranularity::neuron;
  if (layers.empty())
    for (size_t i = 0; i < specs.size(); ++i)
      if (specs[i].type == LayerKind::linear && (!neuron || consumer_of(specs, static_cast<int64_t>(i)) >= 0))
        layers.push_back(static_cast<int64_t>(i));
  for (int64_t l : layers) {
    const std::string name = "--layers " + std::to_string(l);
    if (l < 0 || l >= static_cast<int64_t>(specs.size()))
      throw InputError(name + ": the model has layers 0.." + std::to_string(specs.size() - 1));
    if (specs[l].type != LayerKind::linear)
      throw InputError(name + ": layer " + std::to_string(l) + " is " + layer_kind_name(specs[l].type) +
                       "; expected a linear layer");
    if (neuron && consumer_of(specs, l) < 0)
      throw InputError(name + ": layer " + std::to_string(l) +
                       " is the output layer; its units are the task's outputs (prune it with --granularity weight)");
    for (const Track& t : tracks_)
      if (t.layer == l) throw InputError(name + ": repeated");
    Track t;
    t.layer = l;
    const Layer<T>& layer = e_->model->layer(static_cast<size_t>(l));
    t.total = neuron ? layer.out_features() : layer.out_features() * layer.in_features();
    if (neuron) {
      t.orig.resize(static_cast<size_t>(t.total));
      std::iota(t.orig.begin(), t.orig.end(), 0);
    }
    tracks_.push_back(t);
  }
}

template <class T>
void Pruner<T>::remove(Track& t, int64_t k) {
  if (o_.granularity == PruneGranularity::neuron)
    remove_units(t, k);
  else
    remove_weights(t, k);
}

template <class T>
void Pruner<T>::remove_units(Track& t, int64_t k) {
  HostModel m = read_host_model(*e_);
  const int64_t layer = t.layer, O = m.specs[layer].out;
  const int64_t consumer = consumer_of(m.specs, layer);
  std::vector<int64_t> units(static_cast<size_t>(O));
  std::iota(units.begin(), units.end(), 0);
  std::vector<double> saliency(static_cast<size_t>(O)), error(static_cast<size_t>(O), 0.0);
  auto pr = probe(m);
  if (o_.criterion == PruneCriterion::obs) {
    // A unit's removal is its column of the consuming layer set to 0; the surgeon corrects
    // the rest of that layer (its exact block, damped and inverted once per batch).
    const int64_t I = O, Oc = m.specs[consumer].out, pc = Oc * I + Oc;
    const std::vector<T> Hb = loss_block(pr->eng, pr->batch, static_cast<size_t>(consumer));
    const std::vector<double> H(Hb.begin(), Hb.end());
    const int64_t off = pr->net.layer_offset(static_cast<size_t>(consumer));
    std::vector<double> w(m.params.begin() + off, m.params.begin() + off + pc);
    std::vector<int64_t> free;
    for (int64_t j = 0; j < pc; ++j)
      if (m.mask.empty() || m.mask[off + j] != 0) free.push_back(j);
    const ObsInverse inv = obs_inverse(H, pc, free, o_.obs_damping);
    auto column = [&](int64_t u) {
      std::vector<int64_t> S;
      for (int64_t o = 0; o < Oc; ++o)
        if (m.mask.empty() || m.mask[off + o * I + u] != 0) S.push_back(o * I + u);
      return S;
    };
    for (int64_t u = 0; u < O; ++u) saliency[u] = obs_group_saliency(inv, w, column(u));
    const std::vector<int64_t> chosen = lowest(units, saliency, k);
    std::vector<int64_t> S;
    for (int64_t u : chosen)
      for (int64_t q : column(u)) S.push_back(q);
    obs_remove(inv, w, S);
    std::copy(w.begin(), w.end(), m.params.begin() + off);
    t.method = "exact_block, damping " + fmt(inv.damping);
  } else {
    const SaliencyOptions so = saliency_options();
    const Saliency s =
        unit_saliency(pr->eng, pr->batch, static_cast<size_t>(layer), static_cast<size_t>(consumer), o_.criterion, so);
    saliency = s.value;
    error = s.error;
    t.method = s.method;
  }
  const std::vector<int64_t> chosen = lowest(units, saliency, k);
  std::vector<char> drop(static_cast<size_t>(O), 0);
  for (int64_t u : chosen) {
    drop[u] = 1;
    t.removed_list.push_back({{"unit", t.orig[u]},
                              {"saliency", json_number(saliency[u])},
                              {"error", json_number(error[u])},
                              {"step", e_->st.step}});
  }
  std::vector<int64_t> keep, orig;
  for (int64_t u = 0; u < O; ++u)
    if (!drop[u]) {
      keep.push_back(u);
      orig.push_back(t.orig[u]);
    }
  t.orig = orig;
  t.removed += static_cast<int64_t>(chosen.size());
  const HostModel narrower = relayout(m, UnitMap{{layer, keep}});
  const TrainState st = e_->st;
  config_ = config_with_specs(config_, narrower.specs);
  e_ = engine_for(config_, narrower, st);
}

template <class T>
void Pruner<T>::remove_weights(Track& t, int64_t k) {
  HostModel m = read_host_model(*e_);
  if (m.mask.empty()) m.mask.assign(m.params.size(), 1.0);
  const int64_t layer = t.layer, O = m.specs[layer].out;
  auto pr = probe(m);
  const int64_t off = pr->net.layer_offset(static_cast<size_t>(layer));
  const int64_t I = pr->net.layer(static_cast<size_t>(layer)).in_features(), p = O * I + O;
  std::vector<int64_t> candidates;  // the weights still free (biases stay)
  for (int64_t j = 0; j < O * I; ++j)
    if (m.mask[off + j] != 0) candidates.push_back(j);
  std::vector<double> saliency(static_cast<size_t>(p), 0.0), error(static_cast<size_t>(p), 0.0);
  std::vector<int64_t> chosen;
  if (o_.criterion == PruneCriterion::obs) {
    const std::vector<T> Hb = loss_block(pr->eng, pr->batch, static_cast<size_t>(layer));
    const std::vector<double> H(Hb.begin(), Hb.end());
    std::vector<double> w(m.params.begin() + off, m.params.begin() + off + p);
    std::vector<int64_t> free = candidates;
    for (int64_t o = 0; o < O; ++o) free.push_back(O * I + o);
    const ObsInverse inv = obs_inverse(H, p, free, o_.obs_damping);
    for (int64_t j : candidates) saliency[j] = obs_group_saliency(inv, w, {j});
    chosen = lowest(candidates, saliency, k);
    obs_remove(inv, w, chosen);
    std::copy(w.begin(), w.end(), m.params.begin() + off);
    t.method = "exact_block, damping " + fmt(inv.damping);
  } else {
    const SaliencyOptions so = saliency_options();
    const Saliency s = param_saliency(pr->eng, pr->batch, static_cast<size_t>(layer), o_.criterion, so);
    saliency = s.value;
    error = s.error;
    t.method = s.method;
    chosen = lowest(candidates, saliency, k);
  }
  for (int64_t j : chosen) {
    m.mask[off + j] = 0.0;
    m.params[off + j] = 0.0;
    t.removed_list.push_back({{"weight", j},
                              {"saliency", json_number(saliency[j])},
                              {"error", json_number(error[j])},
                              {"step", e_->st.step}});
  }
  t.removed += static_cast<int64_t>(chosen.size());
  write_host_model(*e_, m);
}

template <class T>
json Pruner<T>::evaluate() {
  json row = e_->evaluate(e_->data.val, "val");
  return row;
}

template <class T>
json Pruner<T>::round_row(int64_t round, const json& eval, double rise, bool accepted, double seconds) const {
  json row;
  row["round"] = round;
  row["step"] = e_->st.step;
  row["criterion"] = enum_name(kPruneCriteria, o_.criterion);
  row["granularity"] = enum_name(kPruneGranularities, o_.granularity);
  int64_t total = 0, removed = 0;
  json layers = json::array();
  for (const Track& t : tracks_) {
    if (!t.skipped.empty()) continue;
    total += t.total;
    removed += t.removed;
    layers.push_back(
        {{"layer", t.layer},
         {"total", t.total},
         {"removed", t.removed},
         {"remaining", t.total - t.removed},
         {"removed_share", t.total > 0 ? static_cast<double>(t.removed) / static_cast<double>(t.total) : 0.0},
         {"method", t.method}});
  }
  row["removed"] = removed;
  row["total"] = total;
  row["removed_share"] = total > 0 ? static_cast<double>(removed) / static_cast<double>(total) : 0.0;
  for (const auto& [key, value] : eval.items())
    if (key != "step" && key != "epoch" && key != "split") row["val_" + key] = value;
  row["rise"] = json_number(rise);
  row["accepted"] = accepted;
  row["time_s"] = seconds;
  row["layers"] = layers;
  return row;
}

template <class T>
PruneSummary Pruner<T>::run() {
  using clock = std::chrono::steady_clock;
  const auto t0 = clock::now();
  start();
  const double base = evaluate().value("loss", std::nan(""));
  if (!std::isfinite(base)) throw Error("prune: the unpruned model's validation loss is not finite");
  State good{config_, read_host_model(*e_), e_->st, tracks_, evaluate()};
  curve_.push_back(round_row(0, good.eval, 0.0, true, 0.0));
  out_ << "prune: " << o_.run_dir << " at step " << e_->st.step << ", validation loss " << fmt(base) << "\n";
  PruneSummary s;
  s.base_val_loss = base;
  s.stop_reason = "nothing_left";
  for (int64_t round = 1;; ++round) {
    const double share = std::min(1.0, static_cast<double>(round) * o_.step_share);
    bool any = false;
    for (Track& t : tracks_) {
      if (!t.skipped.empty()) continue;
      const int64_t target = std::min<int64_t>(t.total - 1, std::llround(share * static_cast<double>(t.total)));
      if (target <= t.removed) continue;
      if (o_.criterion == PruneCriterion::obs) {
        const int64_t blk =
            o_.granularity == PruneGranularity::neuron ? consumer_of(e_->model->specs(), t.layer) : t.layer;
        const int64_t p = e_->model->layer(static_cast<size_t>(blk)).num_params();
        if (p > config_.diagnostics.dense_max_params) {
          t.skipped =
              "obs needs the exact block of layer " + std::to_string(blk) + " (" + std::to_string(p) +
              " parameters > diagnostics.dense_max_params = " + std::to_string(config_.diagnostics.dense_max_params) +
              ")";
          out_ << "prune: layer " << t.layer << " not pruned: " << t.skipped << "\n";
          continue;
        }
      }
      remove(t, target - t.removed);
      any = true;
    }
    if (!any) break;
    for (int64_t k = 0; k < o_.finetune; ++k) e_->step();
    e_->step_losses.clear();
    const json eval = evaluate();
    const double loss = eval.value("loss", std::nan("")), rise = (loss - base) / std::abs(base);
    const bool accepted = std::isfinite(rise) && rise <= o_.max_rise;
    const double secs = std::chrono::duration<double>(clock::now() - t0).count();
    curve_.push_back(round_row(round, eval, rise, accepted, secs));
    out_ << "prune: round " << round << ", removed share " << fmt(curve_.back()["removed_share"].get<double>())
         << ", validation loss " << fmt(loss) << " (rise " << fmt(100 * rise) << "%)"
         << (accepted ? "" : ": over --max-rise, back to the previous round") << "\n";
    if (!accepted) {
      s.stop_reason = "max_rise";
      break;
    }
    good = State{config_, read_host_model(*e_), e_->st, tracks_, eval};
    s.rounds = round;
    if (share >= 1.0) {
      s.stop_reason = "all_removed";
      break;
    }
  }
  for (const Track& t : tracks_)  // skipped layers are skipped in the kept state too
    for (Track& g : good.tracks)
      if (g.layer == t.layer && !t.skipped.empty()) g.skipped = t.skipped;
  s.final_val_loss = good.eval.value("loss", std::nan(""));
  s.rise = (s.final_val_loss - base) / std::abs(base);
  for (const LayerSpec& l : good.model.specs)
    if (l.type == LayerKind::linear) s.widths.push_back(l.out);
  s.widths.pop_back();
  write_run(good, s);
  s.out_dir = o_.out_dir;
  s.record = json::parse(read_file(RunLayout(o_.out_dir).prune_record()));
  return s;
}

template <class T>
void Pruner<T>::write_run(const State& good, const PruneSummary& s) {
  const RunLayout src(o_.run_dir), dst(o_.out_dir);
  e_ = engine_for(good.config, good.model, good.st);
  Config config = good.config;
  config.train.steps = good.st.step;  // the run is complete at the pruned checkpoint
  RunDir(o_.out_dir).write_config(config);
  for (const std::string& name :
       {src.data_record(), src.meta(), src.metrics_log(), src.stats_log(), src.alarms_log(), src.diagnostics_log()})
    if (fs::exists(name)) fs::copy_file(name, fs::path(o_.out_dir) / fs::path(name).filename());
  for (const auto& entry : fs::directory_iterator(o_.run_dir))
    if (RunLayout::is_event_file_name(entry.path().filename().string()))
      fs::copy_file(entry.path(), fs::path(o_.out_dir) / entry.path().filename());
  if (fs::exists(src.spectra())) fs::copy(src.spectra(), dst.spectra(), fs::copy_options::recursive);
  for (const std::string& log : {dst.metrics_log(), dst.stats_log()})
    if (fs::exists(log)) truncate_after_step(log, good.st.step);
  // eval.jsonl: the source's rows before the pruned step, then the pruned model's.
  {
    std::string text;
    for (const json& row : read_jsonl(src.eval_log()))
      if (!row.contains("step") || !row["step"].is_number() || row["step"].get<int64_t>() < good.st.step)
        text += row.dump() + "\n";
    text += e_->evaluate(e_->data.val, "val").dump() + "\n";
    if (e_->data.test.n > 0) text += e_->evaluate(e_->data.test, "test").dump() + "\n";
    write_file_atomic(dst.eval_log(), text);
  }
  e_->save_checkpoint(dst.checkpoint(good.st.step));
  std::string curve;
  for (const json& row : curve_) curve += row.dump() + "\n";
  write_file_atomic(dst.prune_curve(), curve);
  json rec;
  rec["source"] = o_.run_dir;
  rec["criterion"] = enum_name(kPruneCriteria, o_.criterion);
  rec["granularity"] = enum_name(kPruneGranularities, o_.granularity);
  rec["step_share"] = o_.step_share;
  rec["finetune"] = o_.finetune;
  rec["max_rise"] = o_.max_rise;
  rec["base_val_loss"] = json_number(s.base_val_loss);
  rec["final_val_loss"] = json_number(s.final_val_loss);
  rec["rise"] = json_number(s.rise);
  rec["rounds"] = s.rounds;
  rec["stop_reason"] = s.stop_reason;
  rec["step"] = good.st.step;
  rec["hidden"] = s.widths;
  rec["layers"] = json::array();
  for (const Track& t : good.tracks) {
    json l = {{"layer", t.layer}, {"total", t.total}, {"removed", t.removed}, {"remaining", t.total - t.removed}};
    l["status"] = t.skipped.empty() ? "pruned" : "skipped";
    if (!t.skipped.empty()) l["reason"] = t.skipped;
    if (o_.granularity == PruneGranularity::neuron) l["kept_units"] = t.orig;
    l["removed_list"] = t.removed_list;
    rec["layers"].push_back(l);
  }
  write_file_atomic(dst.prune_record(), rec.dump(1) + "\n");
}

}  // namespace

PruneSummary prune(const PruneOptions& given) {
  PruneOptions o = given;
  if (!fs::exists(RunLayout(o.run_dir).config()))
    throw InputError("prune " + o.run_dir + ": no config.toml (is this a run directory?)");
  if (!(o.step_share > 0 && o.step_share <= 1))
    throw InputError("--step " + fmt(o.step_share) + ": expected a share in (0, 1]");
  if (o.finetune < 0) throw InputError("--finetune " + std::to_string(o.finetune) + ": expected >= 0");
  if (!(o.max_rise >= 0) || !std::isfinite(o.max_rise))
    throw InputError("--max-rise " + fmt(o.max_rise) + ": expected a finite value >= 0");
  const Config config = load_config(RunLayout(o.run_dir).config());
  resolve_checkpoint(o.run_dir);  // InputError when the run has no checkpoint
  if (o.out_dir.empty()) o.out_dir = fs::path(o.run_dir).lexically_normal().string() + "-pruned";
  RunLock lock;
  o.out_dir = RunDir::create(o.out_dir, config.name, lock);
  const Device device = resolve_device(o.device.empty() ? enum_name(kDeviceChoices, config.train.device) : o.device);
  try {
    if (config.train.dtype == DType::float64) return Pruner<double>(o, config, device).run();
    return Pruner<float>(o, config, device).run();
  } catch (const InputError&) {
    lock.release();
    std::error_code ec;
    fs::remove_all(o.out_dir, ec);
    throw;
  }
}

}  // namespace cn
