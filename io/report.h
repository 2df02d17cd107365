// The run's HTML report (docs/design.md §5: RUN_DIR/report.html). docs/report.md describes it.
//
// One self-contained file: inline CSS and inline SVG drawn here, no script, no external
// resource, no URL. It reads whatever the run directory holds (metrics.jsonl, eval.jsonl,
// stats.jsonl, diagnostics.jsonl, alarms.jsonl, spectra/step_N.safetensors, meta.json,
// config.toml); a missing file or column leaves its section saying "no data", and lines
// that are not complete JSON objects (a torn tail) are skipped.
//
// Every plot is an <svg data-plot="NAME"> whose data are drawn as <path>, <circle> or
// <rect> elements with class "mark" (axes, grid and legend carry other classes). Names:
//   loss                       train loss (metrics.jsonl) with val/test loss (eval.jsonl)
//   quality/<metric>           each eval metric (accuracy, f1, r2, ...) per split
//   lr                         learning rate
//   grad_norm                  whole-network gradient norm before/after clipping (log)
//   layer/grad_l2              per-layer gradient L2 norm (log)
//   layer/update_ratio         per-layer update ratio ||dw||/||w|| (log)
//   layer/weight_norm          per-layer weight norm (log)
//   activation/dead_share      per-layer share of dead units
//   activation/saturated_share per-layer share of saturated units
//   curvature/lambda_max       lambda_max per kind and layer (symlog)
//   curvature/condition        condition number per kind and layer (log)
//   spectrum/<kind>/layer<i>   heat map of the eigenvalue density over checkpoints
//   spectrum/<kind>            the same for a whole-network kind (full_top)
//   singular_values/<weights|grads>/layer<i>   the same for the singular values of the
//                              layer's weight and gradient matrices
//   alarms                     the alarms on a timeline (step x layer, colour = rule)
// and the table <table data-table="verdicts"> of final per-layer verdicts.
#pragma once
#include <string>

namespace cn {

// The report's HTML for a run directory (nothing is written).
std::string render_report(const std::string& run_dir);

// Writes RUN_DIR/report.html atomically (io/files.h). cn::Error when it can't be written.
void write_report(const std::string& run_dir);

}  // namespace cn
