#include "train/run_dir.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdlib>
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

// The pid a lock file holds (0 when it holds none yet).
long read_pid(int fd) {
  char buf[32] = {};
  const ssize_t n = ::pread(fd, buf, sizeof buf - 1, 0);
  return n > 0 ? std::strtol(buf, nullptr, 10) : 0;
}

std::string in_use(const std::string& dir, long pid) {
  return "run directory " + dir + " is in use by " +
         (pid > 0 ? "process " + std::to_string(pid) : std::string("another process"));
}

// Whether `dir` holds anything but a lock file.
bool has_content(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec))
    if (entry.path().filename() != RunLayout::kLockFile) return true;
  return false;
}

// Seconds from meta.json's last write (a start) to the later of the metrics log's and the
// last checkpoint's: how long a part that was killed ran, as far as its files tell.
double killed_part_seconds(const RunLayout& layout) {
  std::error_code ec;
  const auto started = fs::last_write_time(layout.meta(), ec);
  if (ec) return 0;
  auto last = fs::last_write_time(layout.metrics_log(), ec);
  if (ec) return 0;
  const auto steps = layout.complete_checkpoints();
  if (!steps.empty()) {
    const auto saved = fs::last_write_time(layout.checkpoint(steps.back()) + "/" + RunLayout::kStateFile, ec);
    if (!ec && saved > last) last = saved;
  }
  return std::max(0.0, std::chrono::duration<double>(last - started).count());
}

}  // namespace

void RunLock::acquire(const std::string& run_dir) {
  release();
  const std::string path = RunLayout(run_dir).lock();
  for (;;) {
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0) throw Error(path + ": cannot create the lock file: " + std::strerror(errno));
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      const long pid = err == EWOULDBLOCK ? read_pid(fd) : 0;
      ::close(fd);
      if (err == EWOULDBLOCK) throw InputError(in_use(run_dir, pid));
      throw Error(path + ": cannot lock: " + std::strerror(err));
    }
    // A holder releasing removes the file while it holds it: a lock on a removed file is
    // no lock on the path, so try again with the file the path names now.
    struct stat held {
    }, named{};
    if (::fstat(fd, &held) == 0 && ::stat(path.c_str(), &named) == 0 && held.st_dev == named.st_dev &&
        held.st_ino == named.st_ino) {
      const std::string pid = std::to_string(::getpid()) + "\n";
      if (::ftruncate(fd, 0) != 0 || ::pwrite(fd, pid.data(), pid.size(), 0) != static_cast<ssize_t>(pid.size())) {
        const std::string reason = std::strerror(errno);
        ::close(fd);
        throw Error(path + ": cannot write the lock file: " + reason);
      }
      fd_ = fd;
      path_ = path;
      return;
    }
    ::close(fd);
  }
}

void RunLock::release() {
  if (fd_ < 0) return;
  ::unlink(path_.c_str());  // while still held (see acquire)
  ::close(fd_);
  fd_ = -1;
}

std::optional<long> RunLock::holder(const std::string& run_dir) {
  const int fd = ::open(RunLayout(run_dir).lock().c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return std::nullopt;
  std::optional<long> pid;
  if (::flock(fd, LOCK_SH | LOCK_NB) != 0)
    pid = read_pid(fd);
  else
    ::flock(fd, LOCK_UN);
  ::close(fd);
  return pid;
}

std::string utc_now(const char* fmt) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

std::string RunDir::create(const std::string& out_dir, const std::string& name, RunLock& lock) {
  std::string dir = out_dir;
  if (dir.empty()) {
    dir = (fs::path("runs") / (utc_now("%Y%m%dT%H%M%SZ") + "-" + name)).string();
    for (int i = 1; fs::exists(dir); ++i)
      dir = (fs::path("runs") / (utc_now("%Y%m%dT%H%M%SZ") + "-" + name + "-" + std::to_string(i))).string();
  }
  const auto not_empty = [&dir] {
    if (const auto pid = RunLock::holder(dir)) return InputError(in_use(dir, *pid));
    return InputError("--out " + dir + ": the run directory must not exist or be empty");
  };
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw InputError("--out " + dir + ": exists and is not a directory");
    if (has_content(dir)) throw not_empty();
  }
  fs::create_directories(dir, ec);
  if (ec) throw InputError("--out " + dir + ": cannot create the directory: " + ec.message());
  lock.acquire(dir);
  // Checked again under the lock: another start may have filled it in between.
  if (has_content(dir)) {
    lock.release();
    throw not_empty();
  }
  return dir;
}

void RunDir::remove_run_files(const std::string& run_dir) {
  const RunLayout layout(run_dir);
  std::vector<std::string> paths = {layout.data_record(),     layout.meta(),       layout.report(),
                                    layout.metrics_log(),     layout.eval_log(),   layout.stats_log(),
                                    layout.diagnostics_log(), layout.alarms_log(), layout.checkpoints(),
                                    layout.spectra(),         layout.histograms()};
  for (const std::string& f : layout.event_files()) paths.push_back(f);
  std::error_code ec;
  for (const std::string& p : paths) {
    fs::remove_all(p, ec);
    if (ec) throw Error("cannot remove " + p + ": " + ec.message());
  }
}

void RunDir::remove_temporaries() const {
  std::vector<fs::path> dirs = {root(), layout_.checkpoints(), layout_.spectra()};
  for (const auto& [step, dir] : step_entries(layout_.checkpoints(), "", true)) dirs.push_back(dir);
  std::error_code ec;
  for (const fs::path& dir : dirs) {
    std::vector<fs::path> temporaries;  // listed first: removing changes the directory
    for (const auto& entry : fs::directory_iterator(dir, ec))
      if (entry.is_regular_file(ec) && is_atomic_temp_name(entry.path().filename().string()))
        temporaries.push_back(entry.path());
    for (const fs::path& f : temporaries) fs::remove(f, ec);
  }
}

RunDir::Earlier RunDir::earlier(int64_t s) const {
  Earlier out;
  json meta;
  try {
    meta = json::parse(read_file(layout_.meta()));
  } catch (const std::exception&) {  // unreadable: the earlier parts' times are unknown
  }
  if (meta.is_object()) {
    if (meta.contains("start_time") && meta["start_time"].is_string()) out.start_time = meta["start_time"];
    if (meta.contains("wall_s") && meta["wall_s"].is_number()) out.wall_s = meta["wall_s"].get<double>();
    // meta.json without an end_time: the last part was killed and never wrote its time.
    if (!meta.contains("end_time") || meta["end_time"].is_null()) out.wall_s += killed_part_seconds(layout_);
  }
  for (const json& row : read_jsonl(layout_.metrics_log())) {
    const auto at = row.find("step"), time = row.find("time_s");
    if (at != row.end() && at->is_number() && at->get<double>() <= static_cast<double>(s) && time != row.end() &&
        time->is_number())
      out.time_s = time->get<double>();
  }
  return out;
}

void RunDir::truncate_for_resume(int64_t s, bool redo, const std::vector<int64_t>& redo_earlier) const {
  const auto again = [&](int64_t step) {  // a curvature checkpoint the resumed run computes again
    return (step == s && redo) || std::find(redo_earlier.begin(), redo_earlier.end(), step) != redo_earlier.end();
  };
  const auto row_again = [&](const json& row) {
    const auto it = row.find("step");
    return it != row.end() && it->is_number_integer() && again(it->get<int64_t>());
  };
  for (const std::string& log : {layout_.metrics_log(), layout_.eval_log(), layout_.stats_log()})
    truncate_after_step(log, s);
  truncate_after_step(layout_.diagnostics_log(), s, row_again);
  truncate_after_step(layout_.alarms_log(), s,
                      [&](const json& row) { return row_again(row) && is_curvature_rule(row.value("rule", "")); });
  TensorBoardWriter::truncate_after_step(
      root(), s, [&](const std::string& tag, int64_t step) { return again(step) && is_curvature_tag(tag); });
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
    if (*at <= s && again(*at)) remove_curvature_spectra(f.string());
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
  for (JsonLinesWriter* w : {&metrics_, &eval_, &stats_, &diagnostics_, &alarms_}) w->close();
  if (tb_) tb_->close();
}

}  // namespace cn
