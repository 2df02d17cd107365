// `curvnet sweep` (docs/study.md): the grid's points as child processes `curvnet train`, their
// statuses, the index, progress, the Slurm script and the packing of finished runs.
#include "apps/cmd_sweep.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

#include "apps/study.h"
#include "core/error.h"
#include "io/files.h"
#include "io/run_layout.h"
#include "io/spectra_series.h"
#include "train/run_dir.h"

namespace cn {

namespace fs = std::filesystem;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

std::atomic<int> sweep_stop{0};
extern "C" void on_sweep_signal(int sig) {
  if (sweep_stop == 0) sweep_stop = sig;
}

std::string hostname() {
  char buf[256] = {};
  gethostname(buf, sizeof buf - 1);
  return buf;
}

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[32];
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

std::string duration(double s) {
  std::ostringstream os;
  const auto total = static_cast<int64_t>(s + 0.5);
  if (total >= 3600)
    os << total / 3600 << "h" << std::setw(2) << std::setfill('0') << (total % 3600) / 60 << "m";
  else if (total >= 60)
    os << total / 60 << "m" << std::setw(2) << std::setfill('0') << total % 60 << "s";
  else
    os << std::fixed << std::setprecision(1) << s << "s";
  return os.str();
}

std::string bytes_text(uintmax_t b) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(1);
  if (b >= (uintmax_t{1} << 30))
    os << static_cast<double>(b) / (1 << 30) << " GiB";
  else if (b >= (uintmax_t{1} << 20))
    os << static_cast<double>(b) / (1 << 20) << " MiB";
  else
    os << static_cast<double>(b) / 1024 << " KiB";
  return os.str();
}

uintmax_t disk_bytes(const std::string& dir) {
  uintmax_t total = 0;
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec))
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  return total;
}

// The last non-empty line of a child's log: why it failed, in its own words.
std::string last_line(const std::string& path) {
  std::string text;
  try {
    text = read_file(path);
  } catch (const Error&) {
    return "";
  }
  std::istringstream in(text);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line.find_first_not_of(" \r\t") != std::string::npos) last = line;
  return last;
}

// flock(2) on a file in DIR, held while the object lives.
class FileLock {
 public:
  ~FileLock() {
    if (fd_ >= 0) ::close(fd_);
  }
  bool take(const std::string& path, int how) {
    fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd_ < 0) throw Error(path + ": cannot open: " + std::strerror(errno));
    return ::flock(fd_, how) == 0;
  }
  void write_pid() {
    const std::string pid = std::to_string(::getpid()) + "\n";
    if (::ftruncate(fd_, 0) == 0 && ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) return;
  }
  long read_pid() const {
    char buf[32] = {};
    return ::pread(fd_, buf, sizeof buf - 1, 0) > 0 ? std::strtol(buf, nullptr, 10) : 0;
  }

 private:
  int fd_ = -1;
};

struct Sweep {
  SweepOptions opt;
  study::Study st;
  std::string dir;
  int64_t total = 0;
  int width = 4;
  study::ShapeCache shapes;

  std::string name(int64_t i) const {
    std::ostringstream os;
    os << std::setw(width) << std::setfill('0') << i;
    return os.str();
  }
  std::string run_rel(int64_t i) const { return "runs/" + name(i); }
  std::string run_dir(int64_t i) const { return dir + "/" + run_rel(i); }
  std::string status_path(int64_t i) const { return dir + "/status/" + name(i) + ".json"; }
  std::string log_path(int64_t i) const { return dir + "/logs/" + name(i) + ".log"; }
  std::string point_path(int64_t i) const { return dir + "/points/" + name(i) + ".toml"; }

  json read_status(int64_t i) const {
    try {
      json s = json::parse(read_file(status_path(i)));
      if (s.is_object()) return s;
    } catch (const std::exception&) {  // absent or cut short: the point has no status yet
    }
    return json::object();
  }
  void write_status(int64_t i, json s) const {
    s["index"] = i;
    s["run_dir"] = run_rel(i);
    s["host"] = hostname();
    s["updated"] = utc_now();
    write_file_atomic(status_path(i), s.dump() + "\n");
  }

  // A "running" status whose process is gone (on this host) is an interrupted point.
  static std::string effective_status(const json& s) {
    const std::string status = s.value("status", "pending");
    if (status == "running" && s.value("host", "") == hostname() && s.contains("pid") && s["pid"].is_number() &&
        ::kill(s["pid"].get<pid_t>(), 0) != 0 && errno == ESRCH)
      return "pending";
    return status;
  }

  // index.jsonl from the grid and the status files, under DIR/.index.lock so the last
  // writer has seen every status written before it (docs/study.md §3).
  std::map<std::string, int64_t> write_index() const {
    FileLock lock;
    lock.take(dir + "/.index.lock", LOCK_EX);
    std::string text;
    std::map<std::string, int64_t> counts;
    for (int64_t i = 0; i < total; ++i) {
      const json s = read_status(i);
      json row;
      row["index"] = i;
      row["point"] = study::grid_point(st, i);
      row["status"] = effective_status(s);
      row["run_dir"] = run_rel(i);
      row["wall_s"] = s.contains("wall_s") ? s["wall_s"] : json(nullptr);
      for (const char* k : {"derived", "exit_code", "error"})
        if (s.contains(k)) row[k] = s[k];
      ++counts[row["status"].get<std::string>()];
      text += row.dump() + "\n";
    }
    write_file_atomic(dir + "/index.jsonl", text);
    return counts;
  }
};

struct Child {
  int64_t index = 0;
  Clock::time_point start;
};

// The run's cumulative wall time from its meta.json (every part of a resumed run).
json run_wall(const std::string& run_dir, double fallback) {
  try {
    const json meta = json::parse(read_file(RunLayout(run_dir).meta()));
    if (meta.contains("wall_s") && meta["wall_s"].is_number()) return meta["wall_s"];
  } catch (const std::exception&) {  // no meta.json: the sweep's own clock
  }
  return fallback;
}

pid_t launch(const Sweep& sw, const std::vector<std::string>& args, int64_t index) {
  static const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const std::string log = sw.log_path(index);
  const pid_t pid = ::fork();
  if (pid < 0) throw Error(std::string("fork: ") + std::strerror(errno));
  if (pid > 0) return pid;
  // The child: its own thread count (results must not depend on --jobs), output to its
  // log, and a SIGTERM (checkpoint, then stop) if the sweep dies without forwarding one.
  ::prctl(PR_SET_PDEATHSIG, SIGTERM);
  const std::string threads = std::to_string(sw.st.threads);
  ::setenv("OMP_NUM_THREADS", threads.c_str(), 1);
  ::setenv("OPENBLAS_NUM_THREADS", threads.c_str(), 1);
  const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_APPEND, 0644);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  ::signal(SIGINT, SIG_DFL);
  ::signal(SIGTERM, SIG_DFL);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(exe.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  ::execv(exe.c_str(), argv.data());
  std::fprintf(stderr, "curvnet sweep: cannot run %s: %s\n", exe.c_str(), std::strerror(errno));
  ::_exit(127);
}

std::string point_text(const json& p) {
  std::string s;
  for (const auto& [k, v] : p.items())
    s += (s.empty() ? "" : " ") + k + "=" + (v.is_string() ? v.get<std::string>() : v.dump());
  return s;
}

void emit_slurm(const Sweep& sw) {
  const std::string abs_dir = fs::absolute(sw.dir).lexically_normal().string();
  const std::string exe = fs::read_symlink("/proc/self/exe").string();
  const int64_t at_once = sw.opt.jobs > 0 ? sw.opt.jobs : sw.total;
  std::ostringstream s;
  s << "#!/bin/bash\n"
    << "# curvnet sweep, one grid point per array task (docs/study.md §4). Submit: sbatch " << abs_dir
    << "/sweep.sbatch\n"
    << "#SBATCH --job-name=curvnet-sweep\n"
    << "#SBATCH --array=0-" << sw.total - 1 << "%" << at_once << "\n"
    << "#SBATCH --ntasks=1\n"
    << "#SBATCH --cpus-per-task=" << sw.st.threads << "\n"
    << "#SBATCH --output=" << abs_dir << "/logs/slurm-%A_%a.out\n"
    << "export OMP_NUM_THREADS=" << sw.st.threads << "\n"
    << "exec " << exe << " sweep " << abs_dir << "/study.toml --out " << abs_dir
    << " --index \"$SLURM_ARRAY_TASK_ID\"\n";
  write_file_atomic(sw.dir + "/sweep.sbatch", s.str());
  fs::permissions(sw.dir + "/sweep.sbatch", fs::perms::owner_exec | fs::perms::group_exec | fs::perms::others_exec,
                  fs::perm_options::add);
  std::cout << "wrote " << sw.dir << "/sweep.sbatch (" << sw.total << " array tasks, " << at_once
            << " at once); submit it with: sbatch " << sw.dir << "/sweep.sbatch\n";
}

}  // namespace

namespace {

// --shard I/N into opt's shard_i and shard_n.
void parse_shard(SweepOptions& opt) {
  if (opt.shard.empty()) return;
  const std::string bad = "--shard " + opt.shard + ": expected I/N with 0 <= I < N";
  const auto slash = opt.shard.find('/');
  if (slash == std::string::npos) throw InputError(bad);
  try {
    size_t used = 0;
    opt.shard_i = std::stoll(opt.shard.substr(0, slash), &used);
    if (used != slash) throw InputError(bad);
    opt.shard_n = std::stoll(opt.shard.substr(slash + 1), &used);
    if (used != opt.shard.size() - slash - 1) throw InputError(bad);
  } catch (const std::logic_error&) {  // std::stoll's invalid_argument / out_of_range
    throw InputError(bad);
  }
  if (opt.shard_n < 1 || opt.shard_i < 0 || opt.shard_i >= opt.shard_n) throw InputError(bad);
}

}  // namespace

int run_sweep(const SweepOptions& options) {
  Sweep sw;
  sw.opt = options;
  parse_shard(sw.opt);
  const SweepOptions& opt = sw.opt;
  sw.st = study::load_study(opt.study);
  sw.total = study::grid_size(sw.st);
  sw.width = std::max<int>(4, static_cast<int>(std::to_string(std::max<int64_t>(sw.total - 1, 0)).size()));
  sw.dir = opt.out.empty() ? "studies/" + fs::path(opt.study).stem().string() : opt.out;
  if (opt.index >= sw.total)
    throw InputError("--index " + std::to_string(opt.index) + ": the grid has " + std::to_string(sw.total) +
                     " points (0 to " + std::to_string(sw.total - 1) + ")");
  std::error_code ec;
  for (const char* sub : {"runs", "status", "logs", "points"}) {
    fs::create_directories(sw.dir + "/" + sub, ec);
    if (ec) throw InputError("--out " + sw.dir + ": cannot create the directory: " + ec.message());
  }
  // One study per directory: a different one would mix its runs into this index.
  const std::string study_file = sw.dir + "/study.toml";
  if (fs::exists(study_file)) {
    if (read_file(study_file) != sw.st.resolved)
      throw InputError(study_file + ": holds a different study; use another --out (or the same study file)");
  } else {
    write_file_atomic(study_file, sw.st.resolved);
  }
  // A whole-grid sweep has DIR to itself; shards and single points share it with each other.
  const bool partial = opt.index >= 0 || opt.shard_n > 0;
  FileLock lock;
  if (!lock.take(sw.dir + "/.sweep.lock", (partial ? LOCK_SH : LOCK_EX) | LOCK_NB)) {
    const long pid = lock.read_pid();
    throw InputError(sw.dir + ": in use by another sweep" + (pid > 0 ? " (process " + std::to_string(pid) + ")" : "") +
                     (partial ? " of the whole grid" : ""));
  }
  if (!partial) lock.write_pid();
  if (opt.emit == "slurm") {
    sw.write_index();
    emit_slurm(sw);
    return 0;
  }
  if (opt.status_only) {
    const auto counts = sw.write_index();
    std::cout << sw.dir << ": " << sw.total << " points:";
    for (const auto& [status, n] : counts) std::cout << " " << n << " " << status;
    std::cout << "; " << bytes_text(disk_bytes(sw.dir)) << " on disk\n";
    return 0;
  }

  std::vector<int64_t> selected;
  for (int64_t i = 0; i < sw.total; ++i)
    if ((opt.index < 0 || i == opt.index) && (opt.shard_n == 0 || i % opt.shard_n == opt.shard_i))
      selected.push_back(i);
  std::vector<int64_t> queue;
  int64_t done = 0, failed = 0, busy = 0;
  for (int64_t i : selected) {
    const std::string status = sw.read_status(i).value("status", "pending");
    if (status == "done") {
      ++done;
    } else if (status == "failed" && !opt.retry_failed) {
      ++failed;
    } else if (RunLock::holder(sw.run_dir(i))) {
      ++busy;  // another process trains it now
    } else {
      if (status == "failed") {
        fs::remove_all(sw.run_dir(i), ec);
        fs::remove(sw.status_path(i), ec);
      }
      queue.push_back(i);
    }
  }
  sw.write_index();
  int64_t jobs = opt.jobs;
  if (jobs <= 0) jobs = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) / sw.st.threads);
  const bool tty = ::isatty(1);
  std::cout << "sweep " << sw.dir << ": " << selected.size() << " of " << sw.total << " points selected; " << done
            << " done, " << failed << " failed" << (busy ? ", " + std::to_string(busy) + " run elsewhere" : "") << ", "
            << queue.size() << " to run, " << jobs << " at once, " << sw.st.threads << " thread(s) each\n"
            << std::flush;

  struct sigaction sa {};
  sa.sa_handler = on_sweep_signal;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);

  std::map<pid_t, Child> running;
  size_t next = 0;
  int64_t finished_here = 0;
  double finished_seconds = 0;
  bool forwarded = false;
  const Clock::time_point t0 = Clock::now();
  const auto progress = [&](const std::string& what) {
    const int64_t left = static_cast<int64_t>(queue.size() - next + running.size());
    std::ostringstream line;
    line << "[" << done + failed << "/" << selected.size() << "] " << what;
    if (finished_here > 0 && left > 0)
      line << "; ETA "
           << duration(finished_seconds / finished_here * static_cast<double>(left) /
                       static_cast<double>(std::min<int64_t>(jobs, left)));
    line << " (" << duration(std::chrono::duration<double>(Clock::now() - t0).count()) << " so far)";
    if (tty)
      std::cout << "\r\033[K" << line.str() << std::flush;
    else
      std::cout << line.str() << "\n" << std::flush;
  };

  while (next < queue.size() || !running.empty()) {
    while (sweep_stop == 0 && next < queue.size() && static_cast<int64_t>(running.size()) < jobs) {
      const int64_t i = queue[next++];
      std::vector<std::string> args;
      const std::string run = sw.run_dir(i);
      json status = json::object();
      if (fs::exists(RunLayout(run).config())) {
        args = {"train", "--resume", run};
        status = sw.read_status(i);
      } else {
        try {
          const study::ResolvedPoint p = study::resolve_point(sw.st, i, sw.shapes);
          write_file_atomic(sw.point_path(i), p.toml);
          status["derived"] = p.derived;
        } catch (const Error& e) {
          sw.write_status(i, {{"status", "failed"}, {"exit_code", 2}, {"error", e.what()}, {"wall_s", 0.0}});
          ++failed;
          progress("failed " + sw.name(i) + " " + point_text(study::grid_point(sw.st, i)) + ": " + e.what());
          if (tty) std::cout << "\n";
          continue;
        }
        args = {"train", sw.point_path(i), "--out", run};
      }
      status["status"] = "running";
      status["pid"] = ::getpid();
      status.erase("error");
      status.erase("exit_code");
      sw.write_status(i, status);
      running[launch(sw, args, i)] = Child{i, Clock::now()};
    }
    if (running.empty()) break;
    if (sweep_stop != 0 && !forwarded) {
      for (const auto& [pid, c] : running) ::kill(pid, SIGTERM);
      forwarded = true;
    }
    int wstatus = 0;
    const pid_t pid = ::waitpid(-1, &wstatus, WNOHANG);
    if (pid <= 0) {
      if (tty && !running.empty()) progress(std::to_string(running.size()) + " running");
      std::this_thread::sleep_for(std::chrono::milliseconds(tty ? 500 : 50));
      continue;
    }
    const auto it = running.find(pid);
    if (it == running.end()) continue;
    const Child c = it->second;
    running.erase(it);
    const double seconds = std::chrono::duration<double>(Clock::now() - c.start).count();
    const int code = WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
    json status = sw.read_status(c.index);
    status.erase("pid");
    const std::string run = sw.run_dir(c.index);
    const std::string what = sw.name(c.index) + " " + point_text(study::grid_point(sw.st, c.index));
    if (code == 0) {
      try {
        pack_spectra_series(run);
        prune_checkpoints(run);
        status["status"] = "done";
        status["wall_s"] = run_wall(run, seconds);
        ++done;
        finished_seconds += seconds;
        ++finished_here;
        progress("done " + what + " in " + duration(seconds));
      } catch (const Error& e) {
        status["status"] = "failed";
        status["error"] = std::string("packing the run: ") + e.what();
        ++failed;
        progress("failed " + what + ": " + e.what());
      }
    } else if (code == 130 || code == 143 || (sweep_stop != 0 && code > 128)) {
      status["status"] = "pending";  // checkpointed; the next sweep resumes it
      status["wall_s"] = run_wall(run, seconds);
      progress("stopped " + what + " (resumable)");
    } else {
      status["status"] = "failed";
      status["exit_code"] = code;
      status["error"] = last_line(sw.log_path(c.index));
      status["wall_s"] = run_wall(run, seconds);
      ++failed;
      finished_seconds += seconds;
      ++finished_here;
      progress("failed " + what + " (exit " + std::to_string(code) + "): " + status["error"].get<std::string>());
    }
    if (tty) std::cout << "\n";
    sw.write_status(c.index, status);
    sw.write_index();
  }
  const auto counts = sw.write_index();
  std::cout << "study " << sw.dir << ":";
  for (const auto& [status, n] : counts) std::cout << " " << n << " " << status;
  std::cout << " of " << sw.total << "; " << bytes_text(disk_bytes(sw.dir)) << " on disk; "
            << duration(std::chrono::duration<double>(Clock::now() - t0).count()) << "\n";
  if (sweep_stop != 0) {
    std::cout << "stopped by signal " << sweep_stop << "; run the same command again to resume\n";
    return 128 + sweep_stop;
  }
  return failed > 0 ? 1 : 0;
}

}  // namespace cn
