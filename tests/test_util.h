// Shared test helpers: temporary directories, the Python oracle, running the CLI.
#pragma once
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/error.h"
#include "io/safetensors.h"
#include "train/checkpoint.h"

namespace cn::test {

// n values uniform in [lo, hi) from a seeded generator (tests never use zeros).
inline std::vector<double> random_vec(int64_t n, uint32_t seed, double lo = -1.0, double hi = 1.0) {
  std::mt19937_64 g(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<double> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(g);
  return v;
}

// A layer of a [[model.layers]]-style stack, by its type's name; leaky_relu and elu get
// non-default slopes.
inline LayerSpec L(const std::string& type, int64_t out = 0, double p = 0) {
  LayerSpec s;
  s.type = parse_enum(kLayerKinds, type, "type");
  s.out = out;
  s.p = p;
  if (s.type == LayerKind::leaky_relu) s.slope = 0.1;
  if (s.type == LayerKind::elu) s.alpha = 0.7;
  return s;
}

// A fresh directory under the build tree, removed at the end of the test.
class TempDir {
 public:
  TempDir() {
    const auto* info = ::testing::UnitTest::GetInstance()->current_test_info();
    std::string name = info ? std::string(info->test_suite_name()) + "." + info->name() : "tmp";
    for (char& c : name)
      if (c == '/') c = '_';
    path_ = std::filesystem::path(CURVNET_BINARY_DIR) / "test_tmp" / name;
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    if (!::testing::Test::HasFailure()) std::filesystem::remove_all(path_);
  }
  const std::filesystem::path& path() const { return path_; }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  std::filesystem::path path_;
};

inline void write_text(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
}

inline std::string read_text(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

// The InputError message of f(), or "" when it does not throw one.
template <class F>
std::string input_error_of(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

// A JSON-lines log's rows without their wall-clock cells (runs compared row by row).
inline std::vector<nlohmann::json> log_rows(const std::string& path) {
  std::vector<nlohmann::json> rows;
  std::istringstream in(read_text(path));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json row = nlohmann::json::parse(line);
    for (const char* clock : {"time_s", "items_per_s", "seconds"}) row.erase(clock);
    rows.push_back(std::move(row));
  }
  return rows;
}

// The Python with PyTorch/numpy/safetensors (docs/design.md §6): $CURVNET_PYTHON, else the
// project's virtualenv.
inline std::string python_exe() {
  if (const char* p = std::getenv("CURVNET_PYTHON"); p && *p) return p;
  return std::string(CURVNET_SOURCE_DIR) + "/.venv/bin/python";
}

// Whether `python_exe()` can import the given modules (for a skip with a reason).
inline bool python_has(const std::string& modules) {
  const std::string cmd = python_exe() + " -c 'import " + modules + "' >/dev/null 2>&1";
  return std::system(cmd.c_str()) == 0;
}

// Runs a shell command, returns its exit status and captures stdout+stderr.
inline int run_command(const std::string& cmd, std::string* output = nullptr) {
  const std::string full = cmd + " 2>&1";
  FILE* pipe = popen(full.c_str(), "r");
  if (!pipe) return -1;
  std::string out;
  char buf[4096];
  while (size_t n = fread(buf, 1, sizeof buf, pipe)) out.append(buf, n);
  const int status = pclose(pipe);
  if (output) *output = out;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

// The tensors of a run's last checkpoint (model.safetensors) as float64, by name.
inline std::map<std::string, std::vector<double>> last_checkpoint_tensors(const std::string& run_dir) {
  const auto steps = list_checkpoints(run_dir);
  if (steps.empty()) throw std::runtime_error(run_dir + ": no checkpoint");
  const SafetensorsFile f = load_safetensors(checkpoint_dir(run_dir, steps.back()) + "/model.safetensors");
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : f.tensors) out[name] = f.get<double>(name);
  return out;
}

// All of them, flat, in name order.
inline std::vector<double> final_params(const std::string& run_dir) {
  std::vector<double> all;
  for (const auto& [name, v] : last_checkpoint_tensors(run_dir)) all.insert(all.end(), v.begin(), v.end());
  return all;
}

// The built CLI.
inline std::string curvnet_exe() { return std::string(CURVNET_BINARY_DIR) + "/curvnet"; }

}  // namespace cn::test
