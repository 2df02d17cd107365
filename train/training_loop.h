// One training run from start (or resume) to the report (docs/design.md §1): the step loop around
// the Engine, with evaluation, early stopping, model and curvature checkpoints, the doctor's
// rows and the progress line. train() (train/trainer.h) builds one and runs it.
#pragma once
#include <cstdint>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>

#include "diagnostics/curvature_checkpoint.h"
#include "train/curvature_worker.h"
#include "train/engine.h"
#include "train/growth.h"
#include "train/progress.h"
#include "train/run_dir.h"
#include "train/trainer.h"

namespace cn {

template <class T>
class TrainingLoop {
 public:
  // Sets the run up: the engine, a resume's checkpoint and truncation, config.toml,
  // meta.json, the logs and the curvature engine. `config` is the run's (a resume's
  // resolved against the saved one); `run_dir` exists.
  TrainingLoop(Config config, const TrainOptions& options, const std::string& run_dir, bool resuming);
  TrainingLoop(const TrainingLoop&) = delete;
  TrainingLoop& operator=(const TrainingLoop&) = delete;
  ~TrainingLoop();

  // Trains to the end, an early stop, a non-finite stop or an interruption; then the test
  // evaluation, meta.json's end and the report.
  TrainSummary run();

 private:
  void resume();
  void start_run_dir();
  void start_curvature();
  void first_checkpoints();
  // Step 0 of a fresh run: the doctor's statistics of the initialisation and the
  // validation evaluation, before the first update; false when a non-finite value stops
  // the run there.
  bool initial_statistics();
  // One update and what follows it; false when the run ends here.
  bool iteration();
  void finish();

  bool has_curvature() const { return curvature_ || curvature_worker_; }
  void log_row(RunLog kind, const nlohmann::json& row) { dir_.log(kind, row); }
  void log_metrics(int64_t s);
  void show_progress(int64_t s, bool last);
  void drain_doctor();
  void curvature_arrived(const CurvatureOutput& out);
  // Logs what the worker finished; with `wait`, first waits for everything queued.
  void collect_curvature(bool wait);
  void model_checkpoint(bool curvature_due, bool scheduled);
  // False when a stop asked for during it abandoned it (CPU path; nothing of it is kept).
  bool curvature_checkpoint();
  // The checkpoint of step s at the given model state, without the budget's test.
  bool curvature_checkpoint(int64_t s, ModelSnapshot snapshot);
  // Curvature checkpoints still to come after step s; and the warning about large dense blocks.
  int64_t curvature_checkpoints_after(int64_t s) const;
  void warn_curvature_cost();
  void evaluate_val();
  // [growth]: the plateau watch after a validation evaluation and the growth it starts
  // (docs/capacity.md, "Growth"); the doctor and the curvature engine follow the new model.
  void maybe_grow(double val_loss);

  Config config_;
  const TrainOptions& options_;
  const bool resuming_;
  bool finished_ = false;  // a resume of a run that has ended: nothing runs, nothing changes
  Progress progress_;
  Device device_ = Device::cpu;
  double t_start_ = 0;
  Engine<T> e_;
  RunDir dir_;
  nlohmann::json meta_;
  // On the CPU a curvature checkpoint runs in the loop (unless TrainOptions::curvature_worker);
  // on CUDA on a worker thread with its own context, while training goes on (its results
  // are logged when they arrive).
  std::unique_ptr<CurvatureCheckpoint> curvature_;
  std::unique_ptr<CurvatureWorker> curvature_worker_;
  // A resume: the curvature checkpoints still running at the save, computed again first.
  std::vector<CurvatureJob> resumed_curvature_;
  int64_t curv_every_ = 0, eval_every_ = 0, ckpt_every_ = 0;
  bool early_ = false, es_higher_ = false;
  std::string es_metric_;
  double curv_seconds_ = 0;
  // The worker: how long the loop waited for its results (model checkpoints, the end).
  double curv_wait_seconds_ = 0;
  // A batch loss has been read (on CUDA the first is read at the first logging step).
  bool loss_read_ = false;
  // The CPU path computes checkpoints in the loop: their time there, kept out of training's
  // rate for the ETA, and when the running one began.
  double curv_in_loop_seconds_ = 0, curv_started_ = 0;
  bool abandonable_ = false;
  int64_t curv_done_ = 0;
  nlohmann::json curv_steps_ = nlohmann::json::array(), curv_skipped_ = nlohmann::json::array();
  // The loss since the last logged step (the metrics row's "loss").
  double window_loss_ = 0;
  int64_t window_steps_ = 0, window_items_ = 0;
  double last_log_t_ = 0, last_val_ = 0, loop_start_ = 0;
  // A resumed run's earlier parts: their wall time (meta.json's wall_s adds it) and the
  // time_s its metrics continue from.
  double earlier_wall_s_ = 0, earlier_time_s_ = 0;
  nlohmann::json start_time_;
  int64_t first_step_ = 0;
  TrainSummary sum_;
  std::unique_ptr<Growth<T>> growth_;  // null without [growth] enabled
  JsonLinesWriter growth_log_;         // growth.jsonl: one row per growth event
};

extern template class TrainingLoop<float>;
extern template class TrainingLoop<double>;

}  // namespace cn
