// `curvnet ablate RUN_DIR [--finetune STEPS] [--layer I] [--split S] [--out FILE]`
// (docs/capacity.md, "Ablation").
#pragma once
#include <CLI/CLI.hpp>
#include <string>

#include "train/ablation.h"

namespace cn {

struct AblateArgs {
  std::string run_dir, out;
  int64_t layer = -1;
  AblationOptions options;
};

CLI::App* add_ablate_command(CLI::App& app, AblateArgs& args);
int run_ablate(AblateArgs& args);

}  // namespace cn
