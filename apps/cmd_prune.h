// `curvnet prune` (docs/capacity.md §prune): its options and its run.
#pragma once
#include <CLI/CLI.hpp>

#include <string>

#include "train/prune.h"

struct PruneCommand {
  cn::PruneOptions options;
  std::string criterion = "obd", granularity = "neuron";
  CLI::App* app = nullptr;
};

// Registers the subcommand and its options on `app`.
void add_prune_command(CLI::App& app, PruneCommand& cmd);
// Runs it; InputError (exit 2) for a bad option or RUN_DIR.
int run_prune(PruneCommand& cmd);
