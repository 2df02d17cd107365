#include "io/run_layout.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"
#include "io/safetensors.h"

namespace cn {

namespace fs = std::filesystem;

std::optional<int64_t> parse_step_name(const std::string& name, const std::string& suffix) {
  static const std::string prefix = kStepPrefix;
  if (name.size() <= prefix.size() + suffix.size() || name.compare(0, prefix.size(), prefix) != 0 ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0)
    return std::nullopt;
  const std::string digits = name.substr(prefix.size(), name.size() - prefix.size() - suffix.size());
  if (digits.size() > 18 || !std::all_of(digits.begin(), digits.end(), [](char c) { return c >= '0' && c <= '9'; }))
    return std::nullopt;
  return std::stoll(digits);
}

std::string step_name(int64_t step, const std::string& suffix) { return kStepPrefix + std::to_string(step) + suffix; }

std::vector<std::pair<int64_t, std::string>> step_entries(const std::string& dir, const std::string& suffix,
                                                          bool directories) {
  std::vector<std::pair<int64_t, std::string>> out;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    const auto step = parse_step_name(entry.path().filename().string(), suffix);
    if (!step || !(directories ? entry.is_directory(ec) : entry.is_regular_file(ec))) continue;
    out.emplace_back(*step, entry.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string RunLayout::checkpoint(int64_t step) const {
  return (fs::path(root_) / "checkpoints" / step_name(step)).string();
}

std::string RunLayout::spectra_file(int64_t step) const { return spectra() + "/" + step_name(step, ".safetensors"); }

std::vector<int64_t> RunLayout::complete_checkpoints() const {
  std::vector<int64_t> steps;
  for (const auto& [step, dir] : step_entries(checkpoints(), "", true))
    if (fs::exists(fs::path(dir) / kModelFile) && fs::exists(fs::path(dir) / kStateFile)) steps.push_back(step);
  return steps;
}

bool RunLayout::is_event_file_name(const std::string& name) {
  return name.rfind(kEventsPrefix, 0) == 0 && name.find(".tmp.") == std::string::npos;
}

std::vector<std::string> RunLayout::event_files() const {
  std::vector<std::string> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(root_, ec)) {
    if (!entry.is_regular_file(ec)) continue;
    if (is_event_file_name(entry.path().filename().string())) files.push_back(entry.path().string());
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string RunLayout::of_checkpoint(const std::string& checkpoint_dir) {
  return fs::path(checkpoint_dir).parent_path().parent_path().string();
}

namespace {

// A path as typed, without "." / ".." components or a trailing separator; a path that
// names the working directory or an ancestor ("." , "..", "./") becomes absolute, since
// the run is found from its parent directories.
fs::path normalised(const std::string& path) {
  fs::path p = fs::path(path).lexically_normal();
  if (p.has_parent_path() && p.filename().empty()) p = p.parent_path();
  const std::string last = p.filename().string();
  if (p.empty() || last == "." || last == "..") p = fs::weakly_canonical(p.empty() ? fs::path(".") : p);
  return p;
}

// "; the run RUN has checkpoints/step_a, step_b" when `p` would lie in a run directory
// (RUN/checkpoints/NAME or RUN/NAME), else "".
std::string existing_checkpoints(const fs::path& p) {
  std::error_code ec;
  const fs::path abs = fs::weakly_canonical(p, ec);
  if (ec) return "";
  for (const fs::path& root : {abs.parent_path().parent_path(), abs.parent_path()}) {
    const RunLayout run(root.string());
    if (root.empty() || !fs::exists(run.config(), ec)) continue;
    const auto steps = run.complete_checkpoints();
    if (steps.empty()) return "; the run " + root.string() + " has no complete checkpoint";
    std::string list;
    for (int64_t s : steps) list += (list.empty() ? "checkpoints/" : ", ") + step_name(s);
    return "; the run " + root.string() + " has " + list;
  }
  return "";
}

}  // namespace

std::string resolve_checkpoint(const std::string& given) {
  const fs::path p = normalised(given);
  const std::string path = p.string();
  std::error_code ec;
  if (!fs::exists(p, ec)) throw InputError(given + ": no such checkpoint or run directory" + existing_checkpoints(p));
  const RunLayout run(path);
  if (fs::exists(run.config())) {
    const auto steps = run.complete_checkpoints();
    if (steps.empty()) throw InputError(given + ": no complete checkpoint under checkpoints/");
    return run.checkpoint(steps.back());
  }
  if (!fs::exists(p / RunLayout::kModelFile) || !fs::exists(p / RunLayout::kStateFile))
    throw InputError(given +
                     ": expected a run directory or a checkpoints/step_N directory with model.safetensors and "
                     "state.safetensors" +
                     existing_checkpoints(p));
  return path;
}

std::string checkpoint_run_dir(const std::string& checkpoint_dir) {
  std::error_code ec;
  const fs::path run = fs::weakly_canonical(fs::path(checkpoint_dir), ec).parent_path().parent_path();
  if (ec || run.empty() || !fs::exists(RunLayout(run.string()).config(), ec))
    throw InputError(checkpoint_dir +
                     ": expected a checkpoint inside a run directory (RUN/checkpoints/NAME, next to "
                     "RUN/config.toml)");
  return run.string();
}

int64_t checkpoint_step(const std::string& checkpoint_dir) {
  if (const auto step = parse_step_name(fs::path(checkpoint_dir).filename().string())) return *step;
  const SafetensorsFile state = load_safetensors((fs::path(checkpoint_dir) / RunLayout::kStateFile).string());
  const int64_t step = state.get<int64_t>("step", {})[0];
  if (step < 0) throw InputError(state.path + ": tensor step: " + std::to_string(step) + " (expected a step >= 0)");
  return step;
}

}  // namespace cn
