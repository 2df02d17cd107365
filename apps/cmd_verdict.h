// `curvnet verdict RUN_DIR [--json]` (docs/capacity.md, "Verdicts"): writes RUN_DIR/verdicts.json
// and the report's capacity section.
#pragma once
#include <CLI/CLI.hpp>
#include <string>

namespace cn {

struct VerdictArgs {
  std::string run_dir;
  bool json = false;
};

CLI::App* add_verdict_command(CLI::App& app, VerdictArgs& args);
int run_verdict(const VerdictArgs& args);

}  // namespace cn
