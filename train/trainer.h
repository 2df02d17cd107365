// The trainer loop (docs/design.md §1): steps, evaluation, early stopping, checkpoints and resume,
// the logs of the run directory. A library API: the CLI and the C++ examples both call it.
#pragma once
#include <cstdint>
#include <functional>
#include <iosfwd>
#include <memory>
#include <optional>
#include <string>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "diagnostics/curvature_checkpoint.h"

namespace cn {

struct TrainOptions {
  std::string out_dir;          // the run directory (must not exist or be empty); "" = runs/<UTC>-<name>
  std::string resume_dir;       // continue this run from its last checkpoint
  bool config_given = true;     // with resume: a CONFIG was given on the command line
  std::string device;           // overrides train.device when not empty
  std::ostream* out = nullptr;  // progress and messages (default std::cout)
  int progress = -1;            // 1: live line, 0: plain periodic lines, -1: by isatty(stdout)
  // Asked before each update with the number of the step it completes; true = stop after
  // it: write a checkpoint (its curvature runs on resume), skip the final test evaluation,
  // and return with `interrupted` set. The CLI answers it from SIGINT and SIGTERM.
  std::function<bool(int64_t step)> should_stop;
  // Curvature checkpoints on a worker thread on the CPU too, as on CUDA (where they always
  // are): training goes on while they run. Off by default on the CPU, whose checkpoints
  // share the training's cores.
  bool curvature_worker = false;
};

struct TrainSummary {
  std::string run_dir;
  int64_t steps = 0;
  double last_loss = 0;
  nlohmann::json final_eval;  // the last evaluation row (test when there is a test split)
  bool early_stopped = false;
  bool nonfinite = false;
  bool interrupted = false;  // should_stop ended it; resume continues it
  double wall_s = 0;
};

// Trains per the config; writes the run directory. InputError for bad input (exit 2).
TrainSummary train(const Config& config, const TrainOptions& options);

// Evaluates a checkpoint (a checkpoints/step_N directory, or a run directory: its last
// checkpoint) on a split ("train" | "val" | "test") of the run's data; the row eval.jsonl
// would hold.
nlohmann::json evaluate_checkpoint(const std::string& path, const std::string& split, const std::string& device);

// `curvnet hessian`: the curvature of a saved checkpoint (a checkpoints/step_N directory,
// or a run directory: its last one). Empty options keep the run's [diagnostics] values.
struct HessianOptions {
  std::vector<CurvatureKind> kinds;
  std::vector<int64_t> layers;
  std::string split = "train";  // the curvature batch: the first batch_size samples of this split
  int64_t batch_size = 0;
  std::optional<DiagMode> mode;
  std::string device;  // auto | cpu | cuda; "" = the run's train.device
  double tau_rel = 0;  // > 0: overrides diagnostics.tau_rel
};
CurvatureOutput checkpoint_curvature(const std::string& path, const HessianOptions& options);

// One training step at a time, for tests and embedding: the same code train() runs.
class StepRunner {
 public:
  StepRunner(const Config& config);
  ~StepRunner();
  double step();  // one update; returns the batch loss
  int64_t steps_done() const;
  int64_t num_params() const;
  std::vector<double> parameters() const;  // flat, as float64

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace cn
