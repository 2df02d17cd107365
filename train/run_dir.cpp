#include "train/run_dir.h"

#include <cstring>
#include <ctime>
#include <filesystem>

#include "core/error.h"
#include "diagnostics/alarms.h"
#include "diagnostics/curvature_checkpoint.h"
#include "io/report.h"
#include "io/safetensors.h"

namespace cn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Takes the curvature's tensors out of a spectra file, keeping the doctor's
// ("weights.<i>.singular_values", "grads.<i>.singular_values"); a file left empty goes.
void remove_curvature_spectra(const std::string& path) {
  std::map<std::string, std::string> metadata;
  SafetensorsWriter kept;
  for (auto& [name, t] : read_safetensors(path, &metadata))
    if (name.rfind("weights.", 0) == 0 || name.rfind("grads.", 0) == 0) kept.add_raw(name, std::move(t));
  if (kept.size() == 0) {
    fs::remove(path);
    return;
  }
  for (const auto& [key, value] : metadata) kept.metadata(key, value);
  kept.write(path);
}

// A float64 vector as the spectra file stores it.
SafeTensor f64_tensor(const std::vector<double>& values) {
  SafeTensor t;
  t.dtype = safetensors_dtype<double>();
  t.shape = {static_cast<int64_t>(values.size())};
  t.bytes.resize(values.size() * sizeof(double));
  if (!values.empty()) std::memcpy(t.bytes.data(), values.data(), t.bytes.size());
  return t;
}

}  // namespace

std::string utc_now(const char* fmt) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

std::string RunDir::create(const std::string& out_dir, const std::string& name) {
  std::string dir = out_dir;
  if (dir.empty()) {
    dir = (fs::path("runs") / (utc_now("%Y%m%dT%H%M%SZ") + "-" + name)).string();
    for (int i = 1; fs::exists(dir); ++i)
      dir = (fs::path("runs") / (utc_now("%Y%m%dT%H%M%SZ") + "-" + name + "-" + std::to_string(i))).string();
  }
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw InputError("--out " + dir + ": exists and is not a directory");
    if (!fs::is_empty(dir, ec)) throw InputError("--out " + dir + ": the run directory must not exist or be empty");
  }
  fs::create_directories(dir, ec);
  if (ec) throw InputError("--out " + dir + ": cannot create the directory: " + ec.message());
  return dir;
}

void RunDir::truncate_for_resume(int64_t s, bool redo) const {
  for (const std::string& log : {layout_.metrics_log(), layout_.eval_log(), layout_.stats_log()})
    truncate_after_step(log, s);
  truncate_after_step(layout_.diagnostics_log(), s, [redo](const json&) { return redo; });
  truncate_after_step(layout_.alarms_log(), s,
                      [redo](const json& row) { return redo && is_curvature_rule(row.value("rule", "")); });
  TensorBoardWriter::truncate_after_step(root(), s,
                                         [redo](const std::string& tag) { return redo && is_curvature_tag(tag); });
  std::vector<fs::path> spectra_files;  // listed first: the loop below changes the directory
  if (fs::is_directory(layout_.spectra()))
    for (const auto& f : fs::directory_iterator(layout_.spectra())) spectra_files.push_back(f.path());
  for (const fs::path& f : spectra_files) {
    const std::string name = f.filename().string();
    if (name.rfind(kStepPrefix, 0) != 0) continue;
    if (!ends_with(name, ".safetensors")) {  // a write a crash left unfinished
      fs::remove(f);
      continue;
    }
    const auto at = parse_step_name(name, ".safetensors");
    if (!at) continue;
    if (*at > s) fs::remove(f);
    if (*at == s && redo) remove_curvature_spectra(f.string());
  }
}

void RunDir::write_config(const Config& config) const { write_file_atomic(layout_.config(), to_toml(config)); }

void RunDir::write_meta(const json& meta) const { write_file_atomic(layout_.meta(), meta.dump(2) + "\n"); }

void RunDir::write_report() const { cn::write_report(root()); }

void RunDir::open_logs(bool curvature) {
  metrics_.open(layout_.metrics_log());
  eval_.open(layout_.eval_log());
  alarms_.open(layout_.alarms_log());
  stats_.open(layout_.stats_log());
  tb_ = std::make_unique<TensorBoardWriter>(root());
  if (curvature) {
    diagnostics_.open(layout_.diagnostics_log());
    fs::create_directories(layout_.spectra());
  }
}

JsonLinesWriter& RunDir::writer(RunLog kind) {
  switch (kind) {
    case RunLog::metrics:
      return metrics_;
    case RunLog::eval:
      return eval_;
    case RunLog::stats:
      return stats_;
    case RunLog::diagnostics:
      return diagnostics_;
  }
  return metrics_;
}

void RunDir::log(RunLog kind, const json& row) {
  writer(kind).write(row);
  tb_->row(kind, row);
}

void RunDir::alarm(const json& row) { alarms_.write(row); }

void RunDir::flush_diagnostics() { diagnostics_.flush(); }

void RunDir::add_step_spectra(int64_t s, const std::map<std::string, std::vector<double>>& added) {
  if (added.empty()) return;
  fs::create_directories(layout_.spectra());
  const std::string path = layout_.spectra_file(s);
  CurvatureOutput file;
  file.step = s;
  file.spectra = added;
  if (fs::exists(path))
    for (const auto& [name, t] : read_safetensors(path))
      if (!added.count(name)) file.spectra.emplace(name, safetensor_values<double>(t, path, name));
  CurvatureCheckpoint::write_spectra(path, file);
  SafeTensorMap new_tensors;
  for (const auto& [name, values] : added) new_tensors.emplace(name, f64_tensor(values));
  tb_->spectra(s, new_tensors);
}

void RunDir::flush() {
  for (JsonLinesWriter* w : {&metrics_, &eval_, &stats_, &diagnostics_, &alarms_}) w->flush();
  tb_->flush();
}

void RunDir::close() {
  metrics_.close();
  eval_.close();
  alarms_.close();
  stats_.close();
  diagnostics_.close();
  if (tb_) tb_->close();
}

}  // namespace cn
