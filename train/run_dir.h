// The run directory as the trainer writes it (docs/design.md §5): its names (RunLayout,
// io/run_layout.h), the lock that gives one process the run, config.toml and meta.json, the JSON-lines logs with their
// TensorBoard mirror, the spectra files, and the resume truncation that cuts all of them back to a checkpoint. One
// RunDir per run; the logs are open between open_logs() and close().
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "io/files.h"
#include "io/run_layout.h"
#include "io/tensorboard.h"

namespace cn {

// One process's exclusive hold on a run directory: flock(2) on RUN_DIR/.lock, whose content
// is the holder's pid. Taken before anything in the directory is written or cut back and
// held until the run ends, so two processes never write one run. release() (and the
// destructor) removes the file; a killed holder's lock goes with the process (its file
// may stay behind and counts as free).
class RunLock {
 public:
  RunLock() = default;
  ~RunLock() { release(); }
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;

  // Takes the lock of the existing directory `run_dir`. InputError "run directory X is in
  // use by process N" when another holder has it; cn::Error when the file cannot be made.
  void acquire(const std::string& run_dir);
  void release();
  bool held() const { return fd_ >= 0; }
  // The pid in the lock file of `run_dir` while some process holds it; nullopt when none
  // does (0 when the holder has not written its pid yet). Reads only.
  static std::optional<long> holder(const std::string& run_dir);

 private:
  int fd_ = -1;
  std::string path_;
};

class RunDir {
 public:
  // Creates a new run directory and takes its lock: `out_dir`, or runs/<UTC>-<name> (with
  // "-<i>" when taken) when empty. InputError when it exists and is not an empty directory
  // (a lock file left by a killed start does not count), when another process holds it, or
  // when it cannot be made.
  static std::string create(const std::string& out_dir, const std::string& name, RunLock& lock);

  explicit RunDir(std::string root) : layout_(std::move(root)) {}
  const RunLayout& layout() const { return layout_; }
  const std::string& root() const { return layout_.root(); }

  // Resume from the checkpoint of `step`: the logs, the event files and the spectra go
  // back to what they held at its save. With `redo_curvature` (that step's curvature
  // checkpoint ran after the save and runs again), what it logged goes too: its rows of
  // diagnostics.jsonl, its alarms, its TensorBoard tags and its tensors of the step's
  // spectra file (the doctor's singular values stay). The same for the earlier steps
  // `redo_earlier`: curvature checkpoints still running at the save (docs/design.md §5).
  void truncate_for_resume(int64_t step, bool redo_curvature, const std::vector<int64_t>& redo_earlier = {}) const;
  // Removes the temporary files of atomic writes a kill left (io/files.h,
  // is_atomic_temp_name) from the run directory, checkpoints/, its step_N folders and
  // spectra/. Only while holding the lock: a live writer's are not told apart.
  void remove_temporaries() const;

  // Removes every file a run writes but config.toml (logs, meta.json, events, report,
  // checkpoints/, spectra/, histograms/), for a run that stopped before its step-0
  // checkpoint and starts again in place. Files of other names stay. Only under the lock.
  static void remove_run_files(const std::string& run_dir);

  // What meta.json and metrics.jsonl say of the run's earlier parts, read by a resume
  // before the logs are cut back.
  struct Earlier {
    nlohmann::json start_time;  // the first start's (null when meta.json lacks it)
    double wall_s = 0;          // wall time of the earlier parts together
    double time_s = 0;          // metrics.jsonl's time_s at the resumed step (its last row there)
  };
  Earlier earlier(int64_t step) const;

  void write_config(const Config& config) const;
  void write_meta(const nlohmann::json& meta) const;
  void write_report() const;

  // Opens the logs for appending and a new TensorBoard event file; diagnostics.jsonl and
  // spectra/ only with `curvature`.
  void open_logs(bool curvature);
  // A row of a JSON-lines log; every row also goes to TensorBoard under the same names.
  void log(RunLog kind, const nlohmann::json& row);
  void alarm(const nlohmann::json& row);  // alarms.jsonl only
  void flush_diagnostics();
  // Adds tensors to spectra/step_<step>.safetensors (the doctor's at a model checkpoint,
  // the curvature's when it arrives, in either order; a tensor already there under the
  // same name is replaced) and their histograms to TensorBoard.
  void add_step_spectra(int64_t step, const std::map<std::string, std::vector<double>>& added);
  void flush();  // every log and the event file (before a checkpoint is saved)
  void close();

 private:
  JsonLinesWriter& writer(RunLog kind);

  RunLayout layout_;
  JsonLinesWriter metrics_, eval_, alarms_, stats_, diagnostics_;
  std::unique_ptr<TensorBoardWriter> tb_;
};

// UTC now per strftime's `fmt`.
std::string utc_now(const char* fmt);

}  // namespace cn
