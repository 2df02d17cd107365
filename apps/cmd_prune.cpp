#include "apps/cmd_prune.h"

#include <iostream>

#include "config/enum_table.h"

void add_prune_command(CLI::App& app, PruneCommand& cmd) {
  cn::PruneOptions& o = cmd.options;
  CLI::App* p =
      app.add_subcommand("prune",
                         "remove units or weights step by step with fine-tuning until the validation loss rises; "
                         "writes a pruned run directory");
  cmd.app = p;
  p->add_option("run_dir", o.run_dir, "the run directory to prune (its last checkpoint)")->required();
  p->add_option("--criterion", cmd.criterion, cn::enum_names_joined(cn::kPruneCriteria, " | ") + " (default obd)")
      ->check(CLI::IsMember(cn::enum_names(cn::kPruneCriteria)));
  p->add_option("--granularity", cmd.granularity,
                cn::enum_names_joined(cn::kPruneGranularities, " | ") + " (default neuron)")
      ->check(CLI::IsMember(cn::enum_names(cn::kPruneGranularities)));
  p->add_option("--step", o.step_share, "share of each layer's units/weights removed per round (default 0.1)")
      ->check(CLI::Range(1e-9, 1.0));
  p->add_option("--finetune", o.finetune, "optimiser steps after each removal (default 100)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
  p->add_option("--max-rise", o.max_rise,
                "stop when the validation loss rises by more than this share over the unpruned model (default 0.02)")
      ->check(CLI::Range(0.0, 1e12));
  p->add_option("--layers", o.layers,
                "linear layer indices to prune (default: every hidden linear layer; with "
                "--granularity weight every linear layer)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  p->add_option("--out", o.out_dir, "the pruned run directory (must not exist or be empty; default RUN_DIR-pruned)");
  p->add_option("--device", o.device, "auto | cpu | cuda (default: train.device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}));
  p->add_option("--obs-damping", o.obs_damping,
                "obs: damping relative to the block's mean |diagonal|, raised x10 until Cholesky succeeds "
                "(default 1e-4)")
      ->check(CLI::Range(1e-15, 1e6));
}

int run_prune(PruneCommand& cmd) {
  cmd.options.criterion = cn::parse_enum(cn::kPruneCriteria, cmd.criterion, "--criterion");
  cmd.options.granularity = cn::parse_enum(cn::kPruneGranularities, cmd.granularity, "--granularity");
  const cn::PruneSummary s = cn::prune(cmd.options);
  std::cout << "prune: " << s.rounds << " rounds, stopped: " << s.stop_reason << "; validation loss " << s.base_val_loss
            << " -> " << s.final_val_loss << " (rise " << 100 * s.rise << "%)";
  if (!s.widths.empty()) {
    std::cout << "; hidden [";
    for (size_t i = 0; i < s.widths.size(); ++i) std::cout << (i ? ", " : "") << s.widths[i];
    std::cout << "]";
  }
  std::cout << "\nresults: " << s.out_dir << "\n";
  return 0;
}
