#include "apps/cmd_verdict.h"

#include <filesystem>
#include <iostream>

#include "io/files.h"
#include "io/report.h"
#include "io/run_layout.h"
#include "train/verdict.h"

namespace cn {

CLI::App* add_verdict_command(CLI::App& app, VerdictArgs& a) {
  CLI::App* c = app.add_subcommand(
      "verdict",
      "per-layer verdicts (too few / too many / redundant / problem layer / fix initialisation) with evidence");
  c->add_option("run_dir", a.run_dir, "a run directory")->required();
  c->add_flag("--json", a.json, "print the verdicts as JSON");
  return c;
}

int run_verdict(const VerdictArgs& a) {
  check_run_dir(a.run_dir);
  const nlohmann::json v = run_verdicts(a.run_dir);
  write_file_atomic(a.run_dir + "/" + kVerdictsFile, v.dump(2) + "\n");
  // The report shows them from now on.
  write_report(a.run_dir);
  if (a.json)
    std::cout << v.dump(2) << "\n";
  else
    std::cout << verdict_table(v) << "written to " << a.run_dir << "/" << kVerdictsFile << " and "
              << RunLayout(a.run_dir).report() << "\n";
  return 0;
}

}  // namespace cn
