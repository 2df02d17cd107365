#include "io/spectra_series.h"

#include <filesystem>
#include <map>

#include "core/error.h"
#include "io/run_layout.h"

namespace cn {

namespace fs = std::filesystem;

std::vector<std::pair<int64_t, SafeTensorMap>> read_run_spectra(const std::string& run_dir) {
  std::map<int64_t, SafeTensorMap> steps;
  const std::string series = (fs::path(run_dir) / kSpectraSeriesFile).string();
  std::error_code ec;
  if (fs::is_regular_file(series, ec))
    for (auto& [name, t] : read_safetensors(series)) {
      const size_t slash = name.find('/');
      const auto step = slash == std::string::npos ? std::nullopt : parse_step_name(name.substr(0, slash));
      if (!step) throw InputError(series + ": tensor " + name + ": expected a name step_<N>/<tensor>");
      steps[*step][name.substr(slash + 1)] = std::move(t);
    }
  for (const auto& [step, path] : step_entries(RunLayout(run_dir).spectra(), ".safetensors", false))
    for (auto& [name, t] : read_safetensors(path)) steps[step][name] = std::move(t);
  return {steps.begin(), steps.end()};
}

int64_t pack_spectra_series(const std::string& run_dir) {
  const auto steps = read_run_spectra(run_dir);
  const std::string dir = RunLayout(run_dir).spectra();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return static_cast<int64_t>(steps.size());  // packed already (or none)
  SafetensorsWriter w;
  for (const auto& [step, tensors] : steps)
    for (const auto& [name, t] : tensors) {
      const std::string packed = step_name(step) + "/" + name;
      if (t.dtype == "F64" || t.dtype == "F32") {
        const std::vector<float> v = safetensor_values<float>(t, run_dir, packed);
        w.add<float>(packed, t.shape, v.data());
      } else {
        w.add_raw(packed, t);
      }
    }
  w.write((fs::path(run_dir) / kSpectraSeriesFile).string());
  fs::remove_all(dir, ec);
  if (ec) throw Error("cannot remove " + dir + ": " + ec.message());
  return static_cast<int64_t>(steps.size());
}

int64_t prune_checkpoints(const std::string& run_dir) {
  const RunLayout layout(run_dir);
  const std::vector<int64_t> complete = layout.complete_checkpoints();
  if (complete.size() <= 2) return 0;
  int64_t removed = 0;
  for (const auto& [step, path] : step_entries(layout.checkpoints(), "", true)) {
    if (step == complete.front() || step == complete.back()) continue;
    std::error_code ec;
    fs::remove_all(path, ec);
    if (ec) throw Error("cannot remove " + path + ": " + ec.message());
    ++removed;
  }
  return removed;
}

}  // namespace cn
