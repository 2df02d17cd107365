#include "io/run_layout.h"

#include <algorithm>
#include <filesystem>

#include "core/error.h"

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

std::string resolve_checkpoint(const std::string& path) {
  const RunLayout run(path);
  if (fs::exists(run.config())) {
    const auto steps = run.complete_checkpoints();
    if (steps.empty()) throw InputError(path + ": no complete checkpoint under checkpoints/");
    return run.checkpoint(steps.back());
  }
  if (!fs::exists(fs::path(path) / RunLayout::kModelFile) || !fs::exists(fs::path(path) / RunLayout::kStateFile))
    throw InputError(path +
                     ": expected a run directory or a checkpoints/step_N directory with model.safetensors and "
                     "state.safetensors");
  return path;
}

}  // namespace cn
