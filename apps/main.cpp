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

#include "config/config.h"
#include "core/device.h"
#include "core/error.h"
#include "data/dataset.h"
#include "io/files.h"
#include "io/report.h"
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
  if (!s.final_eval.is_null() && !s.interrupted) std::cout << s.final_eval.dump() << "\n";
  std::cout << "results: " << s.run_dir << "\n";
  if (s.interrupted) return 128 + stop_signal;
  if (s.nonfinite) {
    std::cerr << "curvnet: training stopped at a non-finite loss (see " << s.run_dir << "/alarms.jsonl)\n";
    return 1;
  }
  return 0;
}

int run_hessian(const std::string& path, const cn::HessianOptions& ho, std::string out) {
  const cn::CurvatureOutput r = cn::checkpoint_curvature(path, ho);
  std::cout << cn::curvature_table(r.rows);
  if (out.empty()) out = cn::resolve_checkpoint(path) + "/hessian";
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

int run_datasets() {
  const auto list = cn::list_datasets();
  std::cout << std::left << std::setw(15) << "name" << std::setw(16) << "task" << std::setw(11) << "available"
            << "source\n";
  for (const auto& d : list)
    std::cout << std::setw(15) << d.name << std::setw(16) << d.task << std::setw(11) << (d.available ? "yes" : "no")
              << d.source << "\n"
              << std::setw(15) << "" << d.description << "\n";
  return 0;
}

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
  train->add_option("--set", sets, "override a key: section.key=value (value parsed as TOML; a bare word is a string)")
      ->type_name("KEY=VALUE");
  train->add_option("--out", out, "the run directory (must not exist or be empty); default runs/<UTC>-<name>");
  train->add_option("--device", device, "auto | cpu | cuda (default: train.device)")->check(CLI::IsMember(kDevices));
  train->add_option("--resume", resume, "continue RUN_DIR in place from its last checkpoint")->type_name("RUN_DIR");

  std::string eval_path, split = "test";
  CLI::App* eval = app.add_subcommand("eval", "evaluate a checkpoint (a run directory: its last one) on a split");
  eval->add_option("checkpoint", eval_path, "checkpoints/step_N directory or a run directory")->required();
  eval->add_option("--split", split, "train | val | test (default test)")->check(CLI::IsMember(kSplits));
  eval->add_option("--device", device, "auto | cpu | cuda")->check(CLI::IsMember(kDevices));

  CLI::App* datasets = app.add_subcommand("datasets", "list the data sets and where they come from");

  std::string report_dir;
  CLI::App* report =
      app.add_subcommand("report", "write RUN_DIR/report.html: the run's plots in one self-contained file");
  report->add_option("run_dir", report_dir, "the run directory")->required();

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
                      "where to write diagnostics.jsonl and spectra.safetensors (default CHECKPOINT/hessian)");

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
    if (*datasets) return run_datasets();
    if (*hessian) {
      for (const std::string& k : hessian_kinds) ho.kinds.push_back(cn::parse_enum(cn::kCurvatureKinds, k, "--kind"));
      if (!hessian_mode.empty()) ho.mode = cn::parse_enum(cn::kDiagModes, hessian_mode, "--mode");
      return run_hessian(hessian_path, ho, hessian_out);
    }
    if (*report) {
      if (!std::filesystem::is_directory(report_dir) || !std::filesystem::exists(report_dir + "/metrics.jsonl"))
        throw cn::InputError(report_dir + ": not a run directory (no metrics.jsonl)");
      cn::write_report(report_dir);
      std::cout << "report: " << report_dir << "/report.html\n";
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
