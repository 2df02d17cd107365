// `curvnet analyze`: the analysis is Python (numpy, pandas, scipy, scikit-learn, statsmodels,
// matplotlib, umap-learn; docs/analysis.md), so the command finds the interpreter and the
// analysis package and execs `python -m curvnet_analyze DIR [--out OUT]`, which prints the
// report's path or one line on bad input (exit 2).
#include "apps/cmd_analyze.h"

#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <string>
#include <system_error>
#include <vector>

namespace cn {

namespace fs = std::filesystem;

namespace {

bool is_package(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "curvnet_analyze" / "__main__.py", ec);
}

// The folder holding the curvnet_analyze package: beside an installed binary
// (<prefix>/share/curvnet/analysis), else the source tree this binary was built from, else the
// configured install prefix.
std::string analysis_dir() {
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path installed = exe.parent_path().parent_path() / "share" / "curvnet" / "analysis";
    if (is_package(installed)) return installed.string();
  }
  for (const char* dir : {CURVNET_ANALYSIS_SOURCE_DIR, CURVNET_ANALYSIS_INSTALL_DIR})
    if (is_package(dir)) return dir;
  return "";
}

// $CURVNET_PYTHON, else the project's virtualenv when present, else Debian's python3.
std::string python_exe() {
  if (const char* p = std::getenv("CURVNET_PYTHON"); p && *p) return p;
  const fs::path venv = fs::path(CURVNET_SOURCE_TREE) / ".venv" / "bin" / "python";
  std::error_code ec;
  if (fs::exists(venv, ec)) return venv.string();
  return "/usr/bin/python3";
}

}  // namespace

int run_analyze(const std::string& study_dir, const std::string& out_dir) {
  const std::string pkg = analysis_dir();
  if (pkg.empty()) {
    std::cerr << "curvnet analyze: the analysis package (curvnet_analyze) is neither in " << CURVNET_ANALYSIS_SOURCE_DIR
              << " nor in " << CURVNET_ANALYSIS_INSTALL_DIR << ": reinstall curvnet (cmake --install)\n";
    return 2;
  }
  const std::string python = python_exe();
  const char* old_path = std::getenv("PYTHONPATH");
  const std::string path = old_path && *old_path ? pkg + ":" + old_path : pkg;
  setenv("PYTHONPATH", path.c_str(), 1);
  std::vector<std::string> args = {python, "-B", "-m", "curvnet_analyze", study_dir};
  if (!out_dir.empty()) {
    args.push_back("--out");
    args.push_back(out_dir);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  std::cout.flush();
  execv(python.c_str(), argv.data());
  std::cerr << "curvnet analyze: cannot run " << python << " (" << std::strerror(errno)
            << "): run scripts/setup-study, or set CURVNET_PYTHON to a Python with the analysis libraries\n";
  return 2;
}

}  // namespace cn
