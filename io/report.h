// The run's HTML report (docs/design.md §5: RUN_DIR/report.html) and the comparison of several
// runs. docs/report.md describes both.
//
// One self-contained file: inline CSS and inline SVG drawn here, no script, no external
// resource, no URL. It reads whatever the run directory holds (metrics.jsonl, eval.jsonl,
// stats.jsonl, diagnostics.jsonl, alarms.jsonl, spectra/step_N.safetensors, meta.json,
// config.toml); a missing file or column leaves its section saying "no data", and lines
// that are not complete JSON objects (a torn tail) are skipped.
//
// The page opens with <section data-section="status" data-status="healthy|alarms|diverged|
// unknown">: the answer (no alarms; the alarms grouped by rule with layers, first step and
// advice; or the step the run diverged at with the traced tensor), then the table
// data-table="summary" (architecture, loss, optimiser, lr, schedule, data, run).
//
// Every plot is an <svg data-plot="NAME"> whose data are drawn as <path>, <circle> or
// <rect> elements with class "mark" (axes, grid and legend carry other classes). Names:
//   quality                    train loss with val/test loss (left axis) and the primary
//                              eval metric (accuracy, else r2) per split (right axis)
//   quality/other              the other eval metrics, metric × split
//   lr                         learning rate
//   grad_norm                  whole-network gradient norm before/after clipping (log)
//   depth/act_var              activation variance against layer index, first and last step
//   depth/grad_l2              weight-gradient norm against layer index, first and last step
//   spectrum/<kind>/layer<i>   the block's spectrum at its last checkpoint (first as outline):
//   spectrum/<kind>            mass at |λ| ≤ τ as a bar, the rest on log|λ| per sign
//                              (data-zero-share, data-negative-share, data-tau on the svg)
//   layer/grad_l2, layer/update_ratio, layer/weight_norm        per layer over steps (log)
//   activation/dead_share, activation/saturated_share           per layer over steps
//   curvature/lambda_max       lambda_max per kind and layer (symlog)
//   curvature/condition        condition number per kind and layer (log)
//   singular_values/<weights|grads>/layer<i>   heat map of singular values over checkpoints
//   alarms                     the alarms on a timeline (step x layer, colour = rule)
// and the table <table data-table="verdicts"> of final per-layer verdicts.
//
// The comparison page overlays runs: data-table="runs", and the plots compare/loss,
// compare/lambda_max, compare/grad_l2, compare/act_var.
#pragma once
#include <string>
#include <vector>

namespace cn {

// The file `curvnet report` writes for several runs when no --out is given (in the
// current directory).
inline constexpr const char* kComparisonFile = "curvnet-comparison.html";
// What `curvnet verdict` writes into a run directory; the report shows it (docs/capacity.md).
inline constexpr const char* kVerdictsFile = "verdicts.json";

// InputError "PATH: not a run directory (...)" unless `path` is a directory with metrics.jsonl.
void check_run_dir(const std::string& path);

// The report's HTML for a run directory (nothing is written).
std::string render_report(const std::string& run_dir);

// Writes the report atomically (io/files.h) to `out_file`, by default RUN_DIR/report.html.
// cn::Error when it can't be written.
void write_report(const std::string& run_dir, const std::string& out_file = "");

// One page overlaying several runs (nothing is written).
std::string render_comparison(const std::vector<std::string>& run_dirs);

// Writes the comparison page atomically to `out_file`.
void write_comparison(const std::vector<std::string>& run_dirs, const std::string& out_file);

}  // namespace cn
