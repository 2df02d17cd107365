// The `curvnet` command line (docs/design.md §5). Exit status: 0 success, 2 bad usage, config or
// input, 1 runtime failure, 128 + signal number when SIGINT or SIGTERM stopped training
// (after a checkpoint it resumes from).
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <csignal>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <sstream>

#include "apps/cmd_ablate.h"
#include "apps/cmd_analyze.h"
#include "apps/cmd_datasets.h"
#include "apps/cmd_prune.h"
#include "apps/cmd_sweep.h"
#include "apps/cmd_verdict.h"
#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "data/dataset.h"
#include "io/files.h"
#include "io/report.h"
#include "io/run_layout.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

namespace {

// The first SIGINT or SIGTERM asks the training loop to checkpoint and stop after the
// current step. A second Ctrl-C more than a second later ends the process at once; repeats
// within the second are ignored, since wrappers such as timeout(1) forward the signal to
// the process group as well (the same signal arrives twice), and SIGTERM never escalates
// (SIGKILL is the hard stop).
// Lock-free atomics: the handler may run on any thread while the training thread polls.
std::atomic<int> stop_signal{0};
std::atomic<int64_t> first_signal_ms{0};
static_assert(std::atomic<int>::is_always_lock_free && std::atomic<int64_t>::is_always_lock_free,
              "the signal handler needs lock-free atomics");

extern "C" void on_stop_signal(int sig) {
  timespec t{};
  clock_gettime(CLOCK_MONOTONIC, &t);  // async-signal-safe
  const int64_t now_ms = static_cast<int64_t>(t.tv_sec) * 1000 + t.tv_nsec / 1000000;
  if (stop_signal == 0) {
    first_signal_ms = now_ms;
    stop_signal = sig;
    return;
  }
  if (sig == SIGINT && now_ms - first_signal_ms > 1000) {
    std::signal(SIGINT, SIG_DFL);
    std::raise(SIGINT);
  }
}

// The final evaluation for a person: "test: accuracy 0.8853, f1 0.8841, loss 0.3312 (step
// 1266, epoch 3)". eval.jsonl keeps the row itself (its epoch is 0-based; here 1-based).
std::string eval_summary(const nlohmann::json& row) {
  std::ostringstream os;
  os << row.value("split", std::string("eval")) << ":";
  const char* sep = " ";
  for (const char* key : {"accuracy", "f1", "r2", "rmse", "mae", "loss"}) {
    const auto it = row.find(key);
    if (it == row.end() || !it->is_number()) continue;
    os << sep << (std::string(key) == "r2" ? "R²" : key) << " " << std::setprecision(4) << it->get<double>();
    sep = ", ";
  }
  if (row.contains("step") && row.contains("epoch") && row["step"].is_number() && row["epoch"].is_number())
    os << " (step " << row["step"].get<int64_t>() << ", epoch " << row["epoch"].get<int64_t>() + 1 << ")";
  return os.str();
}

int run_train(const std::string& config_path, const std::vector<std::string>& sets, const std::string& out,
              const std::string& device, const std::string& resume) {
  cn::TrainOptions o;
  o.out_dir = out;
  o.device = device;
  o.resume_dir = resume;
  o.config_given = !config_path.empty();
  if (config_path.empty() && resume.empty())
    throw cn::InputError("train: expected a CONFIG file (or --resume RUN_DIR)");
  if (!resume.empty() && !out.empty()) throw cn::InputError("train: --out and --resume exclude each other");
  cn::Config config;
  if (!config_path.empty()) {
    config = cn::load_config(config_path, sets);
  } else if (!sets.empty()) {
    // Overrides apply to the run's saved config.
    config = cn::load_config(resume + "/config.toml", sets);
    o.config_given = true;
  }
  o.should_stop = [](int64_t) { return stop_signal != 0; };
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
  const cn::TrainSummary s = cn::train(config, o);
  if (!s.final_eval.is_null() && !s.interrupted) std::cout << eval_summary(s.final_eval) << "\n";
  std::cout << "results: " << s.run_dir << "\n";
  if (s.interrupted) return 128 + stop_signal;
  if (s.nonfinite) {
    std::cerr << "curvnet: training stopped at a non-finite loss (see " << s.run_dir << "/alarms.jsonl)\n";
    return 1;
  }
  return 0;
}

// True when `dir` already holds a `hessian` result.
bool holds_hessian_output(const std::string& dir) {
  return std::filesystem::exists(dir + "/diagnostics.jsonl") || std::filesystem::exists(dir + "/spectra.safetensors");
}

// An earlier result is never replaced silently: the default location takes the first free
// CHECKPOINT/hessian, hessian_2, hessian_3, ...; an explicit --out that holds one needs
// --overwrite. Decided before the (possibly long) computation.
std::string hessian_output_dir(const std::string& checkpoint, const std::string& out, bool overwrite) {
  if (!out.empty()) {
    if (holds_hessian_output(out) && !overwrite)
      throw cn::InputError(out + ": holds an earlier hessian result; pass --overwrite to replace it or another --out");
    return out;
  }
  const std::string base = cn::resolve_checkpoint(checkpoint) + "/hessian";
  std::string dir = base;
  for (int i = 2; holds_hessian_output(dir); ++i) dir = base + "_" + std::to_string(i);
  return dir;
}

int run_hessian(const std::string& path, const cn::HessianOptions& ho, const std::string& out_option, bool overwrite) {
  const std::string out = hessian_output_dir(path, out_option, overwrite);
  const cn::CurvatureOutput r = cn::checkpoint_curvature(path, ho);
  std::cout << cn::curvature_table(r.rows);
  std::filesystem::create_directories(out);
  cn::JsonLinesWriter rows(out + "/diagnostics.jsonl", /*append=*/false);
  for (const auto& row : r.rows) rows.write(row);
  rows.close();
  cn::CurvatureCheckpoint::write_spectra(out + "/spectra.safetensors", r);
  std::cout << "step " << r.step << ", " << r.rows.size() << " rows in " << r.seconds << " s; written to " << out
            << "\n";
  return 0;
}

// A message on one line, whatever input it quotes.
std::string one_line(const std::string& msg) { return cn::quote_input(msg, msg.size()); }

const std::vector<std::string> kDevices{"auto", "cpu", "cuda"};
const std::vector<std::string> kSplits{"train", "val", "test"};

}  // namespace

int main(int argc, char** argv) {
  // A closed reader (`curvnet train ... | head -1`) must not end the run: writes to stdout
  // then fail with EPIPE, std::cout goes bad and prints nothing more, and training and the
  // run directory carry on.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"curvnet: train dense networks and measure their curvature while they train"};
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("curvnet ") + CURVNET_VERSION);

  std::string config_path, out, device, resume;
  std::vector<std::string> sets;
  CLI::App* train = app.add_subcommand("train", "train a model from a TOML config; prints where the run directory is");
  train->add_option("config", config_path, "the TOML config (optional with --resume)");
  // One value per --set, so `train --set a=b CONFIG` reads CONFIG as the config, not as a value.
  train->add_option("--set", sets, "override a key: section.key=value (value parsed as TOML; a bare word is a string)")
      ->type_name("KEY=VALUE")
      ->allow_extra_args(false);
  train->add_option("--out", out, "the run directory (must not exist or be empty); default runs/<UTC>-<name>");
  train->add_option("--device", device, "auto | cpu | cuda (default: train.device)")->check(CLI::IsMember(kDevices));
  train->add_option("--resume", resume, "continue RUN_DIR in place from its last checkpoint")->type_name("RUN_DIR");

  std::string eval_path, split = "test";
  CLI::App* eval = app.add_subcommand("eval", "evaluate a checkpoint (a run directory: its last one) on a split");
  eval->add_option("checkpoint", eval_path, "checkpoints/step_N directory or a run directory")->required();
  eval->add_option("--split", split, "train | val | test (default test)")->check(CLI::IsMember(kSplits));
  eval->add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember(kDevices));

  CLI::App* datasets = app.add_subcommand("datasets", "list the data sets and where they come from");
  cn::DatasetsOptions datasets_opt;
  datasets->add_flag("--json", datasets_opt.json, "a JSON array, one object per data set");
  datasets->add_flag("--load", datasets_opt.load, "load every available set and report the shape as read");

  std::vector<std::string> report_dirs;
  std::string report_out;
  CLI::App* report = app.add_subcommand(
      "report", "write RUN_DIR/report.html (one run) or a page overlaying several runs, each self-contained");
  report->add_option("run_dirs", report_dirs, "one or more run directories")->required()->type_name("RUN_DIR");
  report
      ->add_option("--out", report_out,
                   std::string("the HTML file to write (default: RUN_DIR/report.html for one run, ./") +
                       cn::kComparisonFile + " for several)")
      ->type_name("FILE");

  cn::HessianOptions ho;
  std::string hessian_path, hessian_out, hessian_mode;
  std::vector<std::string> hessian_kinds;
  CLI::App* hessian = app.add_subcommand("hessian", "spectra and metrics of a saved checkpoint's Hessian blocks");
  hessian->add_option("checkpoint", hessian_path, "checkpoints/step_N directory or a run directory (its last)")
      ->required();
  hessian->add_option(
      "--kind", hessian_kinds,
      cn::enum_names_joined(cn::kCurvatureKinds, " ") + " (repeatable; default: the run's diagnostics.kinds)");
  hessian->add_option("--layer", ho.layers, "layer index (repeatable; default: every layer with parameters)")
      ->check(CLI::Range(int64_t{0}, int64_t{1000000}));
  hessian->add_option("--data", ho.split, "the split the curvature batch comes from: train (default) | val | test")
      ->check(CLI::IsMember(kSplits));
  hessian->add_option("--batch-size", ho.batch_size, "samples in the curvature batch (default: diagnostics.batch_size)")
      ->check(CLI::Range(int64_t{1}, int64_t{1000000}));
  hessian->add_option("--mode", hessian_mode,
                      cn::enum_names_joined(cn::kDiagModes, " | ") + " (BatchNorm/Dropout; default: diagnostics.mode)");
  hessian->add_option("--device", ho.device, "auto | cpu | cuda (default: train.device)")
      ->check(CLI::IsMember(kDevices));
  hessian
      ->add_option("--tau-rel", ho.tau_rel,
                   "eigenvalues with |lambda| <= TAU_REL x max|lambda| count as zero (default: diagnostics.tau_rel)")
      ->check(CLI::Validator(
          [](std::string& v) {
            double x = 0;
            try {
              x = std::stod(v);
            } catch (const std::exception&) {
              return std::string("expected a number in (0, 1), got ") + v;
            }
            return x > 0 && x < 1 ? std::string() : "expected a number in (0, 1), got " + v;
          },
          "in (0, 1)"));
  hessian->add_option("--out", hessian_out,
                      "where to write diagnostics.jsonl and spectra.safetensors (default: the first free "
                      "CHECKPOINT/hessian, hessian_2, ...)");
  bool hessian_overwrite = false;
  hessian->add_flag("--overwrite", hessian_overwrite, "replace an earlier result in --out");
  cn::AblateArgs ablate_args;
  CLI::App* ablate = cn::add_ablate_command(app, ablate_args);
  cn::VerdictArgs verdict_args;
  CLI::App* verdict = cn::add_verdict_command(app, verdict_args);

  cn::SweepOptions sweep_options;
  CLI::App* sweep = app.add_subcommand(
      "sweep", "run a study: every grid point of STUDY.toml as a run directory under --out (docs/study.md)");
  sweep->add_option("study", sweep_options.study, "the study file (STUDY.toml)")->required();
  sweep->add_option("--out", sweep_options.out, "the study directory (default studies/<study name>)")->type_name("DIR");
  sweep->add_option("--jobs", sweep_options.jobs, "runs at once (default: cores / study.threads)")
      ->check(CLI::Range(int64_t{1}, int64_t{4096}));
  auto* shard_opt =
      sweep->add_option("--shard", sweep_options.shard, "run the points with index % N == I")->type_name("I/N");
  sweep->add_option("--index", sweep_options.index, "run grid point I only (a scheduler's array task)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40))
      ->excludes(shard_opt);
  sweep->add_option("--emit", sweep_options.emit, "slurm: write DIR/sweep.sbatch (a job array) and run nothing")
      ->check(CLI::IsMember({"slurm"}));
  sweep->add_flag("--status", sweep_options.status_only, "rebuild DIR/index.jsonl and print the counts; run nothing");
  sweep->add_flag("--retry-failed", sweep_options.retry_failed, "run failed points again from the start");
  std::string analyze_dir, analyze_out;
  CLI::App* analyze = app.add_subcommand(
      "analyze", "the study report of a sweep directory: DIR/analysis/report.html and its tables as CSV");
  analyze->add_option("dir", analyze_dir, "the study directory (index.jsonl and its run directories)")
      ->required()
      ->type_name("DIR");
  analyze->add_option("--out", analyze_out, "where report.html and the CSV tables go (default DIR/analysis)")
      ->type_name("OUT");
  PruneCommand prune_cmd;
  add_prune_command(app, prune_cmd);

  try {
    try {
      app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
      return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
      return app.exit(e);
    } catch (const CLI::ParseError& e) {
      std::cerr << "curvnet: " << one_line(e.what()) << " (see --help)\n";
      return 2;
    }
    if (*train) return run_train(config_path, sets, out, device, resume);
    if (*eval) {
      std::cout << cn::evaluate_checkpoint(eval_path, split, device).dump() << "\n";
      return 0;
    }
    if (*datasets) return cn::run_datasets(datasets_opt);
    if (*sweep) return cn::run_sweep(sweep_options);
    if (*analyze) return cn::run_analyze(analyze_dir, analyze_out);
    if (*prune_cmd.app) return run_prune(prune_cmd);
    if (*ablate) return cn::run_ablate(ablate_args);
    if (*verdict) return cn::run_verdict(verdict_args);
    if (*hessian) {
      for (const std::string& k : hessian_kinds) ho.kinds.push_back(cn::parse_enum(cn::kCurvatureKinds, k, "--kind"));
      if (!hessian_mode.empty()) ho.mode = cn::parse_enum(cn::kDiagModes, hessian_mode, "--mode");
      return run_hessian(hessian_path, ho, hessian_out, hessian_overwrite);
    }
    if (*report) {
      for (const std::string& dir : report_dirs) cn::check_run_dir(dir);
      std::string path = report_out;
      if (report_dirs.size() == 1) {
        if (path.empty()) path = cn::RunLayout(report_dirs[0]).report();
        cn::write_report(report_dirs[0], path);
      } else {
        if (path.empty()) path = cn::kComparisonFile;
        cn::write_comparison(report_dirs, path);
      }
      std::cout << "report: " << path << "\n";
      return 0;
    }
  } catch (const cn::Error& e) {
    std::cerr << "curvnet: " << one_line(e.what()) << "\n";
    return e.exit_code();
  } catch (const std::exception& e) {
    std::cerr << "curvnet: " << one_line(e.what()) << "\n";
    return 1;
  }
  return 0;
}
