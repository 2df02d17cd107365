#include "apps/cmd_ablate.h"

#include <iostream>

#include "io/files.h"
#include "io/run_layout.h"

namespace cn {

CLI::App* add_ablate_command(CLI::App& app, AblateArgs& a) {
  CLI::App* c = app.add_subcommand(
      "ablate", "remove each hidden layer (identity or a least-squares bridge) and measure the loss change");
  c->add_option("run_dir", a.run_dir, "a run directory (its last checkpoint) or a checkpoints/step_N directory")
      ->required();
  c->add_option("--finetune", a.options.finetune, "fine-tuning steps after each removal (default 0)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000000}));
  c->add_option("--layer", a.layer, "a hidden Linear layer: also each unit's contribution")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  c->add_option("--split", a.options.split, "where the loss is measured: val (default) | train | test")
      ->check(CLI::IsMember({"train", "val", "test"}));
  c->add_option("--out", a.out, "the JSON-lines file to write (default: RUN_DIR/ablation.jsonl)");
  return c;
}

int run_ablate(AblateArgs& a) {
  if (a.layer >= 0) a.options.layer = a.layer;
  const std::vector<nlohmann::json> rows = ablate_run(a.run_dir, a.options);
  std::cout << ablation_table(rows);
  const std::string out = a.out.empty() ? checkpoint_run_dir(resolve_checkpoint(a.run_dir)) + "/ablation.jsonl" : a.out;
  JsonLinesWriter w(out, /*append=*/false);
  for (const auto& r : rows) w.write(r);
  w.close();
  std::cout << "written to " << out << "\n";
  return 0;
}

}  // namespace cn
