#include "train/training_loop.h"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "core/error.h"
#include "diagnostics/doctor.h"
#include "diagnostics/layer_stats.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "io/tensorboard.h"

namespace cn {

using json = nlohmann::json;

namespace {

bool higher_is_better(const std::string& metric) {
  return metric == "val_accuracy" || metric == "val_f1" || metric == "val_auc" || metric == "val_r2" ||
         metric == "val_precision" || metric == "val_recall";
}

// A model checkpoint does not wait for the curvature checkpoints still running on the
// worker: their model states are saved beside it, and a resume computes them again.
constexpr const char* kPendingCurvatureFile = "curvature_pending.safetensors";

void save_pending_curvature(const std::string& path, const std::vector<CurvatureJob>& jobs) {
  SafetensorsWriter w;
  std::string steps;
  for (const CurvatureJob& j : jobs) {
    const std::string at = "step_" + std::to_string(j.step) + ".";
    const ModelSnapshot& s = j.snapshot;
    const auto n = [](const std::vector<double>& v) { return std::vector<int64_t>{static_cast<int64_t>(v.size())}; };
    w.add<double>(at + "params", n(s.params), s.params);
    for (const auto& [name, b] : s.buffers) w.add<double>(at + "buffer." + name, n(b), b);
    w.add<double>(at + "preconditioner", n(s.preconditioner), s.preconditioner);
    w.add<double>(at + "lr", {}, &s.lr);
    w.add<double>(at + "momentum", {}, &s.momentum);
    w.metadata(at + "optimizer", enum_name(kOptimKinds, s.optimizer));
    steps += (steps.empty() ? "" : ",") + std::to_string(j.step);
  }
  w.metadata("steps", steps);
  w.metadata("format", "curvnet-pending-curvature");
  w.write(path);
}

// The jobs of a checkpoint at `step` (none without the file), in step order; each model
// state must hold the model's `n_params` values (its preconditioner none or as many).
std::vector<CurvatureJob> load_pending_curvature(const std::string& path, int64_t step, int64_t n_params) {
  std::vector<CurvatureJob> jobs;
  if (!std::filesystem::exists(path)) return jobs;
  const SafetensorsFile f = load_safetensors(path);
  std::istringstream steps(f.meta("steps"));
  for (std::string tok; std::getline(steps, tok, ',');) {
    CurvatureJob j;
    try {
      size_t used = 0;
      j.step = std::stoll(tok, &used);
      if (used != tok.size()) throw std::invalid_argument(tok);
    } catch (const std::exception&) {
      throw InputError(path + ": metadata \"steps\": '" + tok + "' is not a step number");
    }
    if (j.step < 0 || j.step >= step || (!jobs.empty() && j.step <= jobs.back().step))
      throw InputError(path + ": metadata \"steps\": step " + tok +
                       " is not an earlier step in increasing order (the checkpoint is at step " +
                       std::to_string(step) + ")");
    const std::string at = "step_" + std::to_string(j.step) + ".";
    ModelSnapshot& s = j.snapshot;
    s.params = f.get<double>(at + "params");
    for (const auto& [name, t] : f.tensors)
      if (name.rfind(at + "buffer.", 0) == 0) s.buffers[name.substr(at.size() + 7)] = f.get<double>(name);
    s.preconditioner = f.get<double>(at + "preconditioner");
    const auto wrong = [&](const std::vector<double>& v) { return static_cast<int64_t>(v.size()) != n_params; };
    if (wrong(s.params) || (!s.preconditioner.empty() && wrong(s.preconditioner)))
      throw InputError(path + ": " + at + (wrong(s.params) ? "params" : "preconditioner") + " has " +
                       std::to_string(wrong(s.params) ? s.params.size() : s.preconditioner.size()) +
                       " values; expected the model's " + std::to_string(n_params));
    s.lr = f.get<double>(at + "lr", {})[0];
    s.momentum = f.get<double>(at + "momentum", {})[0];
    s.optimizer = parse_enum(kOptimKinds, f.meta(at + "optimizer"), path + ": metadata " + at + "optimizer");
    jobs.push_back(std::move(j));
  }
  return jobs;
}

// Applies train.threads; the run's clock starts here.
double start_clock(const Config& config) {
  if (config.train.threads > 0) omp_set_num_threads(static_cast<int>(config.train.threads));
  return now_s();
}

}  // namespace

template <class T>
TrainingLoop<T>::TrainingLoop(Config config, const TrainOptions& o, const std::string& run_dir, bool resuming)
    : config_(std::move(config)),
      options_(o),
      resuming_(resuming),
      progress_(o.out ? *o.out : std::cout, o.progress >= 0 ? o.progress == 1 : isatty(STDOUT_FILENO)),
      device_(resolve_device(o.device.empty() ? enum_name(kDeviceChoices, config_.train.device) : o.device)),
      t_start_(start_clock(config_)),
      e_(config_, device_),
      dir_(run_dir) {
  e_.doctor = std::make_unique<Doctor<T>>(config_, *e_.model);
  if (config_.growth.enabled) {
    if (device_ != Device::cpu)
      throw InputError(
          "growth.enabled: growing the model during training runs on the CPU backend; expected "
          "train.device = \"cpu\" (or --device cpu)");
    growth_ = std::make_unique<Growth<T>>(config_, *e_.model);
  }
  // Resolve the defaults that depend on the data (one epoch) and record them.
  if (!config_.train.eval_every) config_.train.eval_every = e_.steps_per_epoch;
  if (!config_.checkpoint.every) config_.checkpoint.every = e_.steps_per_epoch;
  // cosine's horizon is the first start's total: written down, so an extension cannot
  // silently train on at min_lr (docs/optimisers.md, "Schedules").
  if (!resuming_ && config_.schedule.kind == ScheduleKind::cosine && config_.schedule.total_steps == 0)
    config_.schedule.total_steps = total_step_count(config_.train, e_.steps_per_epoch);
  if (resuming_) resume();
  if (finished_) return;
  start_run_dir();
  start_curvature();
  window_loss_ = e_.st.log_window_loss;
  window_steps_ = e_.st.log_window_steps;
  eval_every_ = *config_.train.eval_every;
  ckpt_every_ = *config_.checkpoint.every;
  early_ = config_.train.patience > 0;
  es_metric_ = enum_name(kStopMetrics, config_.train.early_stopping_metric);
  es_higher_ = higher_is_better(es_metric_);
  first_checkpoints();
}

template <class T>
TrainingLoop<T>::~TrainingLoop() = default;

// Continues from the last complete checkpoint: its model, optimiser, data order and doctor,
// and the run directory cut back to what it held at that save.
template <class T>
void TrainingLoop<T>::resume() {
  const std::string& run_dir = dir_.root();
  const auto steps = dir_.layout().complete_checkpoints();
  if (steps.empty())
    throw InputError("--resume " + run_dir +
                     ": no complete checkpoint under checkpoints/ (checkpoint.every = 0: nothing to resume from; "
                     "start a new run with --out)");
  const std::string dir = dir_.layout().checkpoint(steps.back());
  if (growth_ && std::filesystem::exists(dir + "/growth.json")) {  // the model as it had grown by then
    try {
      growth_->restore(json::parse(read_file(dir + "/growth.json")), e_);
    } catch (const json::exception& err) {
      throw InputError(dir + "/growth.json: " + err.what() + " (expected the growth state a checkpoint saves)");
    }
    e_.doctor = std::make_unique<Doctor<T>>(config_, *e_.model);
  }
  e_.load_checkpoint(dir);
  const std::string state_path = dir + "/" + RunLayout::kStateFile;
  if (!e_.st.doctor.empty()) {  // checked before anything in the run directory changes
    try {
      e_.doctor->restore(json::parse(e_.st.doctor));
    } catch (const std::exception& err) {
      throw InputError(state_path + ": metadata \"doctor\": " + err.what() +
                       " (expected the doctor state this run's model and config save)");
    }
  }
  e_.total_steps = total_step_count(config_.train, e_.steps_per_epoch);
  const int64_t s = e_.st.step;
  // A total below the steps done would cut nothing and train nothing, yet record the
  // smaller total in config.toml: refused before anything changes.
  if (s > e_.total_steps)
    throw InputError("--resume " + run_dir + ": " + (config_.train.steps > 0 ? "train.steps" : "train.epochs") +
                     " gives " + std::to_string(e_.total_steps) + " steps but the run is at step " + std::to_string(s) +
                     "; the total can only grow");
  if (config_.schedule.kind == ScheduleKind::cosine) {
    const int64_t horizon = config_.schedule.total_steps > 0 ? config_.schedule.total_steps : e_.st.first_total_steps;
    if (e_.total_steps > horizon)
      throw InputError("--resume " + run_dir + ": the cosine schedule ends at step " + std::to_string(horizon) +
                       " (schedule.total_steps) and would train steps " + std::to_string(horizon + 1) + "-" +
                       std::to_string(e_.total_steps) + " at min_lr; re-plan it with --set schedule.total_steps=" +
                       std::to_string(e_.total_steps) + " (the rest of the cosine stretches to the new end)");
  }
  if (s == e_.total_steps ||
      (config_.train.patience > 0 && e_.st.evals_without_improvement >= config_.train.patience)) {
    finished_ = true;  // nothing to train: the run directory stays as it is
    return;
  }
  // A damaged events file the cut could not read past is refused before anything changes.
  for (const std::string& f : dir_.layout().event_files()) tfevents::read_records(f);
  const RunDir::Earlier earlier = dir_.earlier(s);  // before the logs are cut back
  earlier_wall_s_ = earlier.wall_s;
  earlier_time_s_ = earlier.time_s;
  start_time_ = earlier.start_time;
  dir_.remove_temporaries();
  // A curvature checkpoint at the saved step runs after the save; it is run again (unless
  // this run has none), so what it logged goes too.
  // So do those still running when it was saved, from the model states saved with it.
  const bool curvature_on = config_.diagnostics.every > 0;
  if (curvature_on)
    resumed_curvature_ = load_pending_curvature(dir + "/" + kPendingCurvatureFile, s, e_.model->layout().total);
  std::vector<int64_t> again;
  for (const CurvatureJob& j : resumed_curvature_) again.push_back(j.step);
  dir_.truncate_for_resume(s, e_.st.curvature_due && curvature_on, again);
  if (growth_ && std::filesystem::exists(dir_.root() + "/growth.jsonl"))
    truncate_after_step(dir_.root() + "/growth.jsonl", s);
  progress_.message("resuming " + run_dir + " from step " + std::to_string(s));
}

template <class T>
void TrainingLoop<T>::start_run_dir() {
  dir_.write_config(config_);
  save_data_record(e_.data, config_.data.dataset, dir_.layout().data_record());
  meta_ = {{"version", CURVNET_VERSION},
           {"git_revision", CURVNET_GIT_REV},
           {"device", device_name(device_)},
           {"dtype", enum_name(kDTypes, config_.train.dtype)},
           {"seed", config_.train.seed},
           {"threads", omp_get_max_threads()},
           {"dataset", config_.data.dataset},
           {"data_source", e_.data.source},
           {"n_params", e_.model->layout().total},
           {"start_time", start_time_.is_string() ? start_time_ : json(utc_now("%Y-%m-%dT%H:%M:%SZ"))},
           {"end_time", nullptr}};
  if (device_ == Device::cuda) meta_["gpu"] = cuda_device_description();
  if (resuming_) meta_["wall_s"] = earlier_wall_s_;  // the earlier parts' until this one ends
  dir_.write_meta(meta_);
  dir_.open_logs(config_.diagnostics.every > 0);
  if (growth_) growth_log_.open(dir_.root() + "/growth.jsonl");
}

template <class T>
void TrainingLoop<T>::start_curvature() {
  curv_every_ = config_.diagnostics.every;
  if (curv_every_ <= 0) return;
  if (device_ == Device::cuda || options_.curvature_worker) {
    Engine<T>& e = e_;
    curvature_worker_ = std::make_unique<CurvatureWorker>([&e] { return e.curvature(); });
  } else {
    curvature_ = e_.curvature();
    // The live line names the block being computed, and a stop asked for abandons the
    // checkpoint between blocks (the resume computes it again: docs/design.md §5). Not at
    // the last step, whose curvature ends the run.
    curvature_->set_block_hook([this](const CurvatureBlock& b) {
      std::ostringstream line;
      line << "curvature step " << b.step << ": " << (b.layer < 0 ? "network" : "layer " + std::to_string(b.layer))
           << " " << enum_name(kCurvatureKinds, b.kind);
      if (b.layer >= 0)
        line << " ("
             << (b.dense ? "dense " + std::to_string(b.n_params) + "x" + std::to_string(b.n_params)
                         : std::to_string(b.n_params) + " parameters")
             << ")";
      line << " " << b.index + 1 << "/" << b.count << ", " << fmt_duration(now_s() - curv_started_);
      progress_.update(line.str(), true);
      return !(abandonable_ && options_.should_stop && options_.should_stop(b.step + 1) && b.step < e_.total_steps);
    });
  }
  warn_curvature_cost();
}

// A dense block costs p Hessian-vector products, p² values and an O(p³) eigendecomposition
// at every checkpoint: said before the run, with the way out.
template <class T>
void TrainingLoop<T>::warn_curvature_cost() {
  constexpr int64_t kLargeDense = 4096;
  for (size_t i = 0; i < e_.model->size(); ++i) {
    const int64_t p = e_.model->layer(i).num_params();
    const auto& only = config_.diagnostics.layers;
    if (p <= kLargeDense || p > config_.diagnostics.dense_max_params ||
        (!only.empty() && std::find(only.begin(), only.end(), static_cast<int64_t>(i)) == only.end()))
      continue;
    for (const CurvatureKind k : config_.diagnostics.kinds)
      if (k == CurvatureKind::loss || k == CurvatureKind::ggn)
        progress_.message("curvature: layer " + std::to_string(i) + "'s " + enum_name(kCurvatureKinds, k) +
                          " block is dense " + std::to_string(p) + "x" + std::to_string(p) + " (" +
                          std::to_string(p * p * 8 >> 20) + " MiB, " + std::to_string(p) +
                          " Hessian-vector products and an O(p^3) eigendecomposition per checkpoint); "
                          "diagnostics.dense_max_params below " +
                          std::to_string(p) + " takes it iteratively");
  }
}

template <class T>
int64_t TrainingLoop<T>::curvature_checkpoints_after(int64_t s) const {
  if (curv_every_ <= 0) return 0;
  const int64_t total = e_.total_steps;
  return total / curv_every_ - s / curv_every_ + (total % curv_every_ != 0 && s < total ? 1 : 0);
}

// A fresh run: the messages, step_0's checkpoints (the initialisation). A resumed one: the
// saved step's curvature checkpoint, which ran after the save.
template <class T>
void TrainingLoop<T>::first_checkpoints() {
  if (!resuming_) {
    progress_.message("run directory: " + dir_.root());
    progress_.message("data: " + config_.data.dataset + " train " + std::to_string(e_.data.train.n) + " val " +
                      std::to_string(e_.data.val.n) + " test " + std::to_string(e_.data.test.n) + ", " +
                      std::to_string(e_.model->layout().total) + " parameters, " + device_name(device_) + " " +
                      enum_name(kDTypes, config_.train.dtype) + ", " + std::to_string(e_.total_steps) + " steps");
    if (!initial_statistics()) return;
    if (ckpt_every_ > 0) model_checkpoint(has_curvature(), true);
    if (has_curvature()) curvature_checkpoint();
    drain_doctor();
  } else if (has_curvature()) {
    for (CurvatureJob& j : resumed_curvature_) curvature_checkpoint(j.step, std::move(j.snapshot));
    resumed_curvature_.clear();
    if (e_.st.curvature_due) curvature_checkpoint();
  }
}

// The first batch's forward and backward pass as step 0's would run it (the same Dropout
// mask, keyed by the step; no running statistics move; no update, gradient noise or
// clipping), so the statistics describe the initialisation and the training that follows
// draws exactly what it would without them. The evaluation at step 0 counts for no early
// stopping.
template <class T>
bool TrainingLoop<T>::initial_statistics() {
  const int64_t n = std::min(e_.batch, e_.data.train.n);
  e_.ensure_order(0);
  double loss = 0;
  {
    RunningStatsFreeze<T> frozen(*e_.model);
    loss = e_.forward_backward(e_.training_ctx(0), 0, n);
  }
  const int64_t P = e_.model->layout().total;
  std::vector<T> g(static_cast<size_t>(P));
  device_copy(Device::cpu, g.data(), device_, e_.model->grads().data(), g.size() * sizeof(T));
  ClipResult clip;
  clip.norm_before = clip.norm_after = l2_norm(g.data(), P);
  const bool stop = e_.doctor->observe_initial(loss, clip, n) && config_.train.on_nonfinite == OnNonfinite::stop;
  if (stop) {
    drain_doctor();
    e_.halted = sum_.nonfinite = true;
    return false;
  }
  if (eval_every_ > 0 && e_.data.val.n > 0) log_row(RunLog::eval, e_.evaluate(e_.data.val, "val"));
  return true;
}

template <class T>
void TrainingLoop<T>::drain_doctor() {
  for (const json& row : e_.doctor->take_stats_rows()) log_row(RunLog::stats, row);
  for (const json& row : e_.doctor->take_alarm_rows()) {
    dir_.alarm(row);
    if (row.value("rule", "") == "nonfinite") progress_.message("alarm: " + row.value("message", ""));
  }
}

template <class T>
void TrainingLoop<T>::curvature_arrived(const CurvatureOutput& out) {
  for (const json& row : out.rows) log_row(RunLog::diagnostics, row);
  dir_.flush_diagnostics();
  e_.doctor->on_curvature(out.step, out.observations, e_.lr_at(out.step));
  dir_.add_step_spectra(out.step, out.spectra);
  curv_seconds_ += out.seconds;
  ++curv_done_;
}

template <class T>
void TrainingLoop<T>::collect_curvature(bool wait) {
  if (!curvature_worker_) return;
  if (!wait) {
    for (const CurvatureOutput& out : curvature_worker_->take_finished()) curvature_arrived(out);
    return;
  }
  const double t0 = now_s();
  const std::vector<CurvatureOutput> done = curvature_worker_->finish();
  curv_wait_seconds_ += now_s() - t0;  // the loop stood still this long (meta.json)
  for (const CurvatureOutput& out : done) curvature_arrived(out);
}

// Everything the logs hold up to this step is written and flushed before the save, and
// the state saved with it continues them, so a run resumed from here writes what the
// uninterrupted run would. `curvature_due`: this step's curvature checkpoint runs after
// the save (a resume runs it again). A checkpoint taken only because the run was
// interrupted (not `scheduled`) adds no weight spectra, so the resumed run's logs are
// the uninterrupted run's.
template <class T>
void TrainingLoop<T>::model_checkpoint(bool curvature_due, bool scheduled) {
  if (scheduled) {
    std::map<std::string, std::vector<double>> spectra;
    for (const json& row : e_.doctor->on_checkpoint(e_.st.step, &spectra)) log_row(RunLog::stats, row);
    dir_.add_step_spectra(e_.st.step, spectra);
  }
  // Earlier steps' curvature: what has arrived is in the logs and the doctor state saved
  // here; what is still running is not waited for: its model states are saved with the
  // checkpoint, and a resume from here computes it again (docs/design.md §5).
  std::vector<CurvatureJob> unfinished;
  if (curvature_worker_)
    for (const CurvatureOutput& out : curvature_worker_->take_finished(&unfinished)) curvature_arrived(out);
  drain_doctor();
  dir_.flush();
  e_.st.log_window_loss = window_loss_;
  e_.st.log_window_steps = window_steps_;
  e_.st.curvature_due = curvature_due;
  e_.st.doctor = e_.doctor->state().dump();
  if (growth_) {  // written first: a complete checkpoint of a growing run always has it
    std::filesystem::create_directories(dir_.layout().checkpoint(e_.st.step));
    write_file_atomic(dir_.layout().checkpoint(e_.st.step) + "/growth.json", growth_->state(*e_.model).dump(2) + "\n");
    growth_log_.flush();
  }
  const std::string ckpt = dir_.layout().checkpoint(e_.st.step), pending = ckpt + "/" + kPendingCurvatureFile;
  std::filesystem::create_directories(ckpt);
  if (!unfinished.empty())
    save_pending_curvature(pending, unfinished);  // before the state file that completes the checkpoint
  else
    std::filesystem::remove(pending);  // one an earlier save of this step left
  e_.save_checkpoint(ckpt);
}

// A curvature checkpoint at step s (the parameters of step_s). With a budget, it is
// skipped when it would lift the curvature share of the wall time above the budget
// (its cost estimated by the finished ones).
template <class T>
bool TrainingLoop<T>::curvature_checkpoint() {
  const int64_t s = e_.st.step;
  if (config_.diagnostics.budget > 0 && curv_done_ > 0) {
    const double elapsed = now_s() - t_start_;
    const double estimate = curv_seconds_ / static_cast<double>(curv_done_);
    if (curv_seconds_ + estimate > config_.diagnostics.budget * (elapsed + estimate)) {
      curv_skipped_.push_back(s);
      return true;
    }
  }
  return curvature_checkpoint(s, e_.snapshot());
}

template <class T>
bool TrainingLoop<T>::curvature_checkpoint(int64_t s, ModelSnapshot snapshot) {
  if (curvature_worker_) {
    curv_steps_.push_back(s);
    curvature_worker_->submit(s, std::move(snapshot));
    return true;
  }
  curv_started_ = now_s();
  try {
    curvature_arrived(curvature_->run(s, snapshot));
  } catch (const CurvatureAbandoned&) {
    progress_.message("curvature step " + std::to_string(s) + " abandoned: a stop was asked for");
    return false;
  }
  curv_steps_.push_back(s);
  const double dt = now_s() - curv_started_;
  if (loop_start_ > 0 && curv_started_ >= loop_start_) curv_in_loop_seconds_ += dt;
  if (curv_done_ == 1 && dt >= 2.0)
    progress_.message("curvature step " + std::to_string(s) + " took " + fmt_duration(dt) + "; " +
                      std::to_string(curvature_checkpoints_after(s)) + " more at diagnostics.every = " +
                      std::to_string(curv_every_) + " (diagnostics.budget caps their share of the time)");
  return true;
}

template <class T>
void TrainingLoop<T>::evaluate_val() {
  if (e_.data.val.n == 0) return;
  json row = e_.evaluate(e_.data.val, "val");
  log_row(RunLog::eval, row);
  const std::string key = es_metric_.substr(4);
  if (row.contains(key) && row[key].is_number()) {
    last_val_ = row[key].get<double>();
    if (early_) {
      const bool better =
          !e_.st.has_best || (es_higher_ ? last_val_ > e_.st.best_metric : last_val_ < e_.st.best_metric);
      if (better) {
        e_.st.best_metric = last_val_;
        e_.st.has_best = true;
        e_.st.evals_without_improvement = 0;
      } else {
        ++e_.st.evals_without_improvement;
      }
    }
  }
  sum_.final_eval = row;
  if (growth_ && row.contains("loss") && row["loss"].is_number()) maybe_grow(row["loss"].get<double>());
}

template <class T>
void TrainingLoop<T>::maybe_grow(double val_loss) {
  if (!growth_->observe(val_loss) || e_.st.step >= e_.total_steps) return;
  drain_doctor();  // the rows of the model that was
  const json row = growth_->grow(e_, val_loss);
  growth_log_.write(row);
  e_.doctor = std::make_unique<Doctor<T>>(config_, *e_.model);
  if (curvature_) start_curvature();
  progress_.message("growth at step " + std::to_string(e_.st.step) + ": layer " +
                    std::to_string(row["layer"].get<int64_t>()) + " " + std::to_string(row["from"].get<int64_t>()) +
                    " -> " + std::to_string(row["to"].get<int64_t>()) + " units (" + row["init"].get<std::string>() +
                    ")");
}

template <class T>
void TrainingLoop<T>::log_metrics(int64_t s) {
  const double t = now_s();
  json row = {{"step", s},
              {"epoch", (s - 1) / e_.steps_per_epoch},
              {"lr", e_.lr_at(s - 1)},
              {"clipped", e_.last_clip.clipped},
              {"time_s", earlier_time_s_ + (t - t_start_)}};
  set_metric(row, "loss", window_loss_ / static_cast<double>(window_steps_));
  set_metric(row, "grad_norm", e_.last_clip.norm_before);
  set_metric(row, "grad_norm_clipped", e_.last_clip.norm_after);
  row["items_per_s"] = t > last_log_t_ ? static_cast<double>(window_items_) / (t - last_log_t_) : 0.0;
  log_row(RunLog::metrics, row);
  window_loss_ = 0;
  window_steps_ = window_items_ = 0;
  last_log_t_ = t;
}

template <class T>
void TrainingLoop<T>::show_progress(int64_t s, bool last) {
  // Training's own rate; the curvature checkpoints to come are added at their mean cost.
  const double elapsed = now_s() - loop_start_ - curv_in_loop_seconds_;
  const double rate = static_cast<double>(s - first_step_) / std::max(elapsed, 1e-9);
  double eta = static_cast<double>(e_.total_steps - s) / std::max(rate, 1e-9);
  if (curvature_ && curv_done_ > 0)  // on CUDA they overlap training
    eta += static_cast<double>(curvature_checkpoints_after(s)) * curv_seconds_ / static_cast<double>(curv_done_);
  std::ostringstream line;
  line << "epoch " << (s - 1) / e_.steps_per_epoch + 1 << " step " << s << "/" << e_.total_steps;
  // On CUDA the losses are read at the logging cadence: no loss is shown before the first read.
  if (loss_read_) line << " loss " << std::setprecision(4) << sum_.last_loss;
  if (std::isfinite(last_val_)) line << " " << es_metric_ << " " << std::setprecision(4) << last_val_;
  line << " " << std::fixed << std::setprecision(0) << rate * static_cast<double>(e_.batch) << " items/s ETA "
       << fmt_duration(eta);
  progress_.update(line.str(), last);
}

template <class T>
bool TrainingLoop<T>::iteration() {
  // Steps after which the host reads the model must read their losses too (CUDA).
  const int64_t next = e_.st.step + 1;
  auto due = [next](int64_t every) { return every > 0 && next % every == 0; };
  // A stop asked for (SIGINT/SIGTERM in the CLI) takes effect after this update.
  const bool stop_asked = options_.should_stop && options_.should_stop(next) && next < e_.total_steps;
  e_.step(due(eval_every_) || due(ckpt_every_) || due(curv_every_) || stop_asked);
  for (const double l : e_.step_losses) {
    sum_.last_loss = l;
    window_loss_ += l;
    ++window_steps_;
  }
  loss_read_ = loss_read_ || !e_.step_losses.empty();
  e_.step_losses.clear();
  const int64_t s = e_.st.step;  // updates done
  window_items_ += std::min(e_.batch, e_.data.train.n - ((s - 1) % e_.steps_per_epoch) * e_.batch);
  if (e_.halted) {
    drain_doctor();
    sum_.nonfinite = true;
    return false;
  }
  const bool last = s == e_.total_steps;
  if (s % config_.train.log_every == 0 || last) log_metrics(s);
  if ((eval_every_ > 0 && s % eval_every_ == 0) || (last && eval_every_ > 0)) evaluate_val();
  const bool stop_early = early_ && e_.st.evals_without_improvement >= config_.train.patience;
  // A step that ends the run anyway is not an interruption (a resume from it would train on).
  bool interrupt = stop_asked && !stop_early;
  const bool curvature_now = has_curvature() && (s % curv_every_ == 0 || last || stop_early);
  const bool scheduled_checkpoint = ckpt_every_ > 0 && (s % ckpt_every_ == 0 || last || stop_early);
  bool checkpoint_now = scheduled_checkpoint || (ckpt_every_ > 0 && interrupt);
  if (checkpoint_now) model_checkpoint(curvature_now, scheduled_checkpoint);
  abandonable_ = true;  // only here: a checkpoint computed again on resume must finish
  const bool abandoned = curvature_now && !(interrupt && checkpoint_now) && !curvature_checkpoint();
  abandonable_ = false;
  if (abandoned) {  // when not computed here, the resume runs it
    // Abandoned by a stop: as if the stop had come before it, so the resume computes it.
    interrupt = true;
    if (!checkpoint_now && ckpt_every_ > 0) model_checkpoint(true, false);
    checkpoint_now = ckpt_every_ > 0;
  }
  collect_curvature(false);
  drain_doctor();
  show_progress(s, last);
  if (interrupt) {
    sum_.interrupted = true;
    progress_.message("interrupted after step " + std::to_string(s) +
                      (checkpoint_now ? "; continue with: curvnet train --resume " + dir_.root()
                                      : "; checkpoints are off (checkpoint.every = 0), so it cannot be resumed"));
    return false;
  }
  if (stop_early) {
    sum_.early_stopped = true;
    progress_.message("early stopping: " + es_metric_ + " did not improve for " +
                      std::to_string(config_.train.patience) + " evaluations");
    return false;
  }
  return true;
}

template <class T>
TrainSummary TrainingLoop<T>::run() {
  sum_.run_dir = dir_.root();
  if (finished_) {
    sum_.steps = e_.st.step;
    sum_.early_stopped = e_.st.step < e_.total_steps;
    progress_.message("the run " + dir_.root() + " has finished at step " + std::to_string(e_.st.step) +
                      (sum_.early_stopped ? " (early stopping)" : "") +
                      "; nothing to do (to train on, raise train.steps or train.epochs)");
    return sum_;
  }
  last_log_t_ = now_s();
  window_items_ = 0;
  last_val_ = std::nan("");
  loop_start_ = now_s();
  first_step_ = e_.st.step;
  while (!e_.halted && e_.st.step < e_.total_steps)
    if (!iteration()) break;
  finish();
  return sum_;
}

template <class T>
void TrainingLoop<T>::finish() {
  // The test evaluation runs while the worker computes the last step's curvature.
  if (e_.data.test.n > 0 && !sum_.nonfinite && !sum_.interrupted) {
    json row = e_.evaluate(e_.data.test, "test");
    log_row(RunLog::eval, row);
    sum_.final_eval = row;
  }
  collect_curvature(true);
  drain_doctor();
  dir_.close();
  progress_.message("alarms: " + e_.doctor->summary());
  if (has_curvature()) {
    meta_["curvature_steps"] = curv_steps_;
    meta_["curvature_skipped_steps"] = curv_skipped_;
    meta_["curvature_seconds"] = curv_seconds_;
    if (curvature_worker_) meta_["curvature_wait_s"] = curv_wait_seconds_;
  }
  sum_.steps = e_.st.step;
  sum_.wall_s = now_s() - t_start_;
  meta_["end_time"] = utc_now("%Y-%m-%dT%H:%M:%SZ");
  meta_["steps"] = e_.st.step;
  meta_["interrupted"] = sum_.interrupted;
  meta_["wall_s"] = earlier_wall_s_ + sum_.wall_s;
  if (growth_) {
    growth_log_.close();
    meta_["growth"] = growth_->state(*e_.model);
    meta_["n_params_final"] = e_.model->layout().total;
  }
  dir_.write_meta(meta_);
  dir_.write_report();
  progress_.message("report: " + dir_.layout().report());
}

template class TrainingLoop<float>;
template class TrainingLoop<double>;

}  // namespace cn
