// The names inside a run directory (docs/design.md §5), in one place for everything that reads or
// writes a run: the trainer (through train/run_dir.h, which adds the writers, the spectra
// merge and the resume truncation), the report, TensorBoard re-creation and the CLI.
//
//   config.toml  meta.json  report.html
//   data.safetensors                            the split rows and the standardisation
//   .lock                                       held while a process trains the run
//   metrics.jsonl  eval.jsonl  stats.jsonl  diagnostics.jsonl  alarms.jsonl
//   events.out.tfevents.*                       TensorBoard (io/tensorboard.h)
//   checkpoints/step_N/{model,state}.safetensors
//   spectra/step_N.safetensors                  the doctor's and the curvature's spectra
//   histograms/step_N.safetensors               optional, read by TensorBoard re-creation
//
// Only names and listing live here (io/ knows no training); train/run_dir.h builds on it.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace cn {

class RunLayout {
 public:
  explicit RunLayout(std::string root) : root_(std::move(root)) {}
  const std::string& root() const { return root_; }

  std::string config() const { return file("config.toml"); }
  std::string meta() const { return file("meta.json"); }
  std::string data_record() const { return file("data.safetensors"); }
  std::string report() const { return file("report.html"); }
  std::string metrics_log() const { return file("metrics.jsonl"); }
  std::string eval_log() const { return file("eval.jsonl"); }
  std::string stats_log() const { return file("stats.jsonl"); }
  std::string diagnostics_log() const { return file("diagnostics.jsonl"); }
  std::string alarms_log() const { return file("alarms.jsonl"); }
  // `curvnet prune`'s output (docs/capacity.md §prune): the pruning curve, one row per
  // round, and the record of what was removed.
  std::string prune_curve() const { return file("prune.jsonl"); }
  std::string prune_record() const { return file("prune.json"); }
  // The lock file (train/run_dir.h, RunLock): present while a process trains the run.
  static constexpr const char* kLockFile = ".lock";
  std::string lock() const { return file(kLockFile); }

  std::string checkpoints() const { return file("checkpoints"); }
  std::string checkpoint(int64_t step) const;                     // checkpoints/step_N
  static constexpr const char* kModelFile = "model.safetensors";  // in a checkpoint directory
  static constexpr const char* kStateFile = "state.safetensors";
  std::string spectra() const { return file("spectra"); }
  std::string spectra_file(int64_t step) const;  // spectra/step_N.safetensors
  std::string histograms() const { return file("histograms"); }

  // The steps of the complete checkpoints (model and state files present), ascending.
  std::vector<int64_t> complete_checkpoints() const;

  // TensorBoard event files: "events.out.tfevents." + ...; a temporary name of an atomic
  // write (".tmp." inside) is not one.
  static constexpr const char* kEventsPrefix = "events.out.tfevents.";
  static bool is_event_file_name(const std::string& name);
  // The event files of the run, sorted by name.
  std::vector<std::string> event_files() const;

  // A checkpoints/step_N directory's run directory.
  static std::string of_checkpoint(const std::string& checkpoint_dir);

 private:
  std::string file(const char* name) const { return root_.empty() ? std::string(name) : root_ + "/" + name; }
  std::string root_;
};

// "step_<N><suffix>" → N (N: 1 to 18 decimal digits); nullopt for any other name.
constexpr const char* kStepPrefix = "step_";
std::optional<int64_t> parse_step_name(const std::string& name, const std::string& suffix = "");
std::string step_name(int64_t step, const std::string& suffix = "");

// The step_<N><suffix> entries of `dir` (regular files, or directories when `directories`),
// as (N, path), sorted by N. A missing directory has none.
std::vector<std::pair<int64_t, std::string>> step_entries(const std::string& dir, const std::string& suffix,
                                                          bool directories);

// A checkpoint named on the command line: a checkpoints/step_N directory, or a run
// directory (its last complete checkpoint). InputError when it is neither.
// The path is normalised first: a trailing separator, "." and ".." are accepted. A missing
// path's message lists the checkpoints its run has.
std::string resolve_checkpoint(const std::string& path);

// The run directory of a checkpoint (RUN/checkpoints/NAME, any NAME); InputError when there
// is no RUN/config.toml.
std::string checkpoint_run_dir(const std::string& checkpoint_dir);

// A checkpoint's step: N of a step_N directory, else the "step" of its state.safetensors.
int64_t checkpoint_step(const std::string& checkpoint_dir);

}  // namespace cn
