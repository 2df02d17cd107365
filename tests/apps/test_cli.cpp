// The command line: exit codes and one-line errors naming file, line and key.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "core/device.h"
#include "io/files.h"
#include "test_util.h"
#include "train/checkpoint.h"

using namespace cn;

namespace {
int cli(const std::string& args, std::string* out) { return test::run_command(test::curvnet_exe() + " " + args, out); }
int lines(const std::string& s) {
  int n = 0;
  for (char c : s) n += c == '\n';
  return n;
}
}  // namespace

TEST(Cli, HelpEverywhereExitsZero) {
  std::string out;
  for (const char* cmd :
       {"--help", "train --help", "eval --help", "datasets --help", "hessian --help", "report --help"}) {
    EXPECT_EQ(cli(cmd, &out), 0) << cmd;
    EXPECT_NE(out.find("Usage"), std::string::npos) << cmd;
  }
}

TEST(Cli, ParseErrorsExitTwo) {
  std::string out;
  EXPECT_EQ(cli("", &out), 2);
  EXPECT_EQ(cli("train --no-such-flag x.toml", &out), 2);
  EXPECT_EQ(lines(out), 1) << out;
  EXPECT_EQ(cli("frobnicate", &out), 2);
}

TEST(Cli, ConfigErrorsNameFileLineAndKey) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("bad.toml");
  test::write_text(cfg, "[data]\ndataset = \"spirals\"\n[optim]\nlr = 0.1\nlrr = 2\n");
  std::string out;
  EXPECT_EQ(cli("train " + cfg + " --out " + tmp.file("run"), &out), 2);
  EXPECT_NE(out.find("bad.toml:5"), std::string::npos) << out;
  EXPECT_NE(out.find("optim.lrr"), std::string::npos) << out;
  EXPECT_EQ(lines(out), 1) << out;

  test::write_text(cfg, "[optim]\nlr = \"fast\"\n");
  EXPECT_EQ(cli("train " + cfg, &out), 2);
  EXPECT_NE(out.find("bad.toml:2"), std::string::npos) << out;

  test::write_text(cfg, "[optim]\nlr = -1\n");
  EXPECT_EQ(cli("train " + cfg, &out), 2);
  EXPECT_NE(out.find("optim.lr"), std::string::npos) << out;

  test::write_text(cfg, "[data]\ndataset = \"spirals\"\n");
  EXPECT_EQ(cli("train " + cfg + " --set model.hidden=oops=1", &out), 2);
  EXPECT_EQ(cli("train " + cfg + " --set optim.name=warp", &out), 2);
  EXPECT_NE(out.find("optim.name"), std::string::npos) << out;
  EXPECT_EQ(cli("train " + tmp.file("missing.toml"), &out), 2);
  EXPECT_NE(out.find("missing.toml"), std::string::npos) << out;
  // --device cuda is bad input only where no GPU is usable; with one, the run trains there.
  EXPECT_EQ(cli("train " + cfg + " --device cuda --out " + tmp.file("r2"), &out), cn::cuda_available() ? 0 : 2) << out;
  if (!cn::cuda_available()) EXPECT_NE(out.find("--device cuda: no CUDA device is usable"), std::string::npos) << out;
}

TEST(Cli, TrainsResumesAndEvaluates) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("ok.toml");
  test::write_text(cfg, "[data]\ndataset = \"blobs\"\nn_samples = 300\n[model]\nhidden = [8]\n[train]\nsteps = 6\n");
  std::string out;
  ASSERT_EQ(cli("train " + cfg + " --out " + tmp.file("run") + " --set train.steps=4", &out), 0) << out;
  EXPECT_NE(out.find("results: " + tmp.file("run")), std::string::npos) << out;
  // The final evaluation for a person, not the raw row: epochs count from 1.
  EXPECT_NE(out.find("test: accuracy "), std::string::npos) << out;
  EXPECT_NE(out.find("(step 4, epoch "), std::string::npos) << out;
  EXPECT_EQ(out.find("\"split\""), std::string::npos) << out;
  // Options before the config: --set takes one value, the config stays the config.
  ASSERT_EQ(cli("train --set train.steps=3 --out " + tmp.file("run-first") + " " + cfg, &out), 0) << out;
  EXPECT_EQ(read_jsonl(tmp.file("run-first") + "/eval.jsonl").back().at("step"), 3) << out;
  ASSERT_EQ(cli("train --resume " + tmp.file("run") + " --set train.steps=8", &out), 0) << out;
  EXPECT_NE(out.find("from step 4"), std::string::npos) << out;
  EXPECT_EQ(cli("train " + cfg + " --resume " + tmp.file("run") + " --set optim.lr=0.5", &out), 2);
  EXPECT_NE(out.find("optim.lr"), std::string::npos) << out;
  ASSERT_EQ(cli("eval " + tmp.file("run") + " --split val", &out), 0) << out;
  EXPECT_NE(out.find("\"split\":\"val\""), std::string::npos) << out;
  EXPECT_EQ(cli("eval " + tmp.file("nothing"), &out), 2);
  EXPECT_EQ(cli("train " + cfg + " --out " + tmp.file("run"), &out), 2);  // not empty
  EXPECT_NE(out.find("must not exist or be empty"), std::string::npos) << out;
}

TEST(Cli, EvalAndHessianTakeCheckpointPathsAsTyped) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("ok.toml"), run = tmp.file("run");
  test::write_text(cfg, "[data]\ndataset = \"blobs\"\nn_samples = 300\n[model]\nhidden = [8]\n[train]\nsteps = 4\n");
  std::string out;
  ASSERT_EQ(cli("train " + cfg + " --out " + run, &out), 0) << out;
  const std::string last = run + "/checkpoints/step_4";
  ASSERT_TRUE(std::filesystem::exists(last + "/state.safetensors")) << out;
  for (const char* name : {"best", "step_x"})
    std::filesystem::copy(last, run + "/checkpoints/" + name, std::filesystem::copy_options::recursive);
  for (const std::string& path : {run + "/", last + "/", run + "/checkpoints/best/", run + "/checkpoints/step_x"}) {
    ASSERT_EQ(cli("eval " + path, &out), 0) << path << ": " << out;
    EXPECT_NE(out.find("\"step\":4"), std::string::npos) << path << ": " << out;
  }
  ASSERT_EQ(test::run_command("cd " + last + " && " + test::curvnet_exe() + " eval .", &out), 0) << out;
  EXPECT_NE(out.find("\"step\":4"), std::string::npos) << out;
  ASSERT_EQ(cli("hessian " + run + "/checkpoints/best/ --kind diag --out " + tmp.file("h"), &out), 0) << out;
  EXPECT_NE(out.find("step 4"), std::string::npos) << out;
  // A missing checkpoint: exit 2, one line listing the checkpoints the run has.
  EXPECT_EQ(cli("eval " + run + "/checkpoints/step_99", &out), 2);
  EXPECT_EQ(lines(out), 1) << out;
  EXPECT_NE(out.find("step_4"), std::string::npos) << out;
}

TEST(Cli, SigintCheckpointsAndTheRunResumes) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("long.toml"), run = tmp.file("run");
  test::write_text(cfg,
                   "[data]\ndataset = \"blobs\"\nn_samples = 300\n[model]\nhidden = [8]\n[train]\nsteps = 50000000\n");
  // Started in the background, interrupted once step_0 is on disk; killed after 120 s if
  // the signal is ignored. timeout(1) forwards the SIGINT to the process group as well, so
  // curvnet gets it twice at once: the repeat must not end the run before its checkpoint.
  // While it trains, a second process can neither resume the run nor start one into it.
  const std::string script = "timeout -s KILL 120 " + test::curvnet_exe() + " train " + cfg + " --out " + run +
                             " & pid=$!; while [ ! -f " + run +
                             "/checkpoints/step_0/state.safetensors ]; do sleep 0.05; "
                             "done; sleep 0.3; timeout -s KILL 30 " +
                             test::curvnet_exe() + " train --resume " + run + "; echo second=$?; timeout -s KILL 30 " +
                             test::curvnet_exe() + " train " + cfg + " --out " + run +
                             "; echo third=$?; kill -INT $pid; wait $pid; echo status=$?";
  std::string out;
  ASSERT_EQ(test::run_command("sh -c '" + script + "'", &out), 0) << out;
  EXPECT_NE(out.find("second=2"), std::string::npos) << out;
  EXPECT_NE(out.find("third=2"), std::string::npos) << out;
  EXPECT_NE(out.find("curvnet: run directory " + run + " is in use by process "), std::string::npos) << out;
  ASSERT_NE(out.find("status=130"), std::string::npos) << out;
  const size_t at = out.find("interrupted after step ");
  ASSERT_NE(at, std::string::npos) << out;
  const int64_t step = std::stoll(out.substr(at + 23));
  EXPECT_EQ(list_checkpoints(run).back(), step) << out;
  EXPECT_EQ(out.find("\"split\":\"test\""), std::string::npos) << "no final evaluation when interrupted: " << out;
  ASSERT_EQ(cli("train --resume " + run + " --set train.steps=" + std::to_string(step + 3), &out), 0) << out;
  EXPECT_NE(out.find("from step " + std::to_string(step)), std::string::npos) << out;
  EXPECT_EQ(list_checkpoints(run).back(), step + 3);
}

// `curvnet train ... | head -1`: the reader is gone after the first line; the run trains on
// to its end (the test row, meta.json's end, the report) and exits 0.
TEST(Cli, AClosedPipeDoesNotEndTheRun) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("c.toml"), run = tmp.file("run"), status = tmp.file("status");
  test::write_text(cfg,
                   "[data]\ndataset = \"blobs\"\nn_samples = 300\n[model]\nhidden = [8]\n[train]\nsteps = 3000\n"
                   "eval_every = 1000\n[checkpoint]\nevery = 1000\n");
  std::string out;
  ASSERT_EQ(test::run_command("bash -c '{ " + test::curvnet_exe() + " train " + cfg + " --out " + run + "; echo $? > " +
                                  status + "; } | head -1'",
                              &out),
            0)
      << out;
  EXPECT_EQ(out, "run directory: " + run + "\n");
  EXPECT_EQ(test::read_text(status), "0\n");
  EXPECT_TRUE(std::filesystem::exists(run + "/report.html"));
  const nlohmann::json meta = nlohmann::json::parse(test::read_text(run + "/meta.json"));
  EXPECT_TRUE(meta["end_time"].is_string()) << meta.dump();
  EXPECT_EQ(meta["steps"], 3000);
  EXPECT_EQ(list_checkpoints(run).back(), 3000);
  const auto evals = read_jsonl(run + "/eval.jsonl");
  ASSERT_FALSE(evals.empty());
  EXPECT_EQ(evals.back()["split"], "test");
}

TEST(Cli, DatasetsListsEverySet) {
  std::string out;
  ASSERT_EQ(cli("datasets", &out), 0);
  for (const char* name : {"fashion-mnist", "iris", "wine", "breast-cancer", "digits", "diabetes", "spirals", "blobs",
                           "xor", "teacher", "sine", "csv"})
    EXPECT_NE(out.find(name), std::string::npos) << name;
}

TEST(Cli, HessianAndReportOnASavedRun) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("c.toml");
  test::write_text(cfg,
                   "[data]\ndataset = \"xor\"\nn_samples = 200\n[model]\nhidden = [6]\nactivation = \"tanh\"\n"
                   "[train]\nsteps = 4\n");
  std::string out;
  ASSERT_EQ(cli("train " + cfg + " --out " + tmp.file("run"), &out), 0) << out;
  ASSERT_EQ(cli("hessian " + tmp.file("run") + " --kind loss --kind local --layer 0 --out " + tmp.file("h"), &out), 0)
      << out;
  EXPECT_NE(out.find("loss"), std::string::npos) << out;
  EXPECT_NE(out.find("closed_form"), std::string::npos) << out;
  EXPECT_TRUE(std::filesystem::exists(tmp.file("h") + "/diagnostics.jsonl"));
  EXPECT_TRUE(std::filesystem::exists(tmp.file("h") + "/spectra.safetensors"));
  ASSERT_EQ(cli("hessian " + tmp.file("run") + " --kind loss --layer 0 --device cpu --out " + tmp.file("h2"), &out), 0)
      << out;
  EXPECT_EQ(cli("hessian " + tmp.file("run") + " --device warp", &out), 2) << out;
  EXPECT_EQ(cli("hessian " + tmp.file("run") + " --kind warp", &out), 2);
  EXPECT_EQ(cli("hessian " + tmp.file("run") + " --layer 1", &out), 2) << out;  // an activation: no parameters
  EXPECT_EQ(cli("hessian " + tmp.file("nothing"), &out), 2);
  ASSERT_EQ(cli("report " + tmp.file("run"), &out), 0) << out;
  EXPECT_TRUE(std::filesystem::exists(tmp.file("run") + "/report.html"));
  EXPECT_EQ(cli("report " + tmp.file("nothing"), &out), 2);
}

// Every flag is validated when the command line is read: a bad value is one line naming the
// flag and exit 2, never the default in its place.
TEST(Cli, HessianNeverReplacesAnEarlierResult) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("c.toml");
  test::write_text(cfg, "[data]\ndataset = \"xor\"\nn_samples = 100\n[model]\nhidden = [4]\n[train]\nsteps = 2\n");
  std::string out;
  ASSERT_EQ(cli("train " + cfg + " --out " + tmp.file("run"), &out), 0) << out;
  const std::string ck = tmp.file("run") + "/checkpoints/step_2";
  // The default location: hessian, then hessian_2, each kept.
  ASSERT_EQ(cli("hessian " + tmp.file("run") + " --kind loss --layer 0", &out), 0) << out;
  ASSERT_EQ(cli("hessian " + tmp.file("run") + " --kind loss --layer 2", &out), 0) << out;
  EXPECT_NE(out.find(ck + "/hessian_2"), std::string::npos) << out;
  EXPECT_EQ(read_jsonl(ck + "/hessian/diagnostics.jsonl").at(0).at("layer"), 0);
  EXPECT_EQ(read_jsonl(ck + "/hessian_2/diagnostics.jsonl").at(0).at("layer"), 2);
  // An explicit --out holding a result: refused in one line unless --overwrite.
  EXPECT_EQ(cli("hessian " + tmp.file("run") + " --kind loss --layer 2 --out " + ck + "/hessian", &out), 2);
  EXPECT_NE(out.find("--overwrite"), std::string::npos) << out;
  EXPECT_EQ(lines(out), 1) << out;
  EXPECT_EQ(read_jsonl(ck + "/hessian/diagnostics.jsonl").at(0).at("layer"), 0);
  ASSERT_EQ(cli("hessian " + tmp.file("run") + " --kind loss --layer 2 --overwrite --out " + ck + "/hessian", &out), 0);
  EXPECT_EQ(read_jsonl(ck + "/hessian/diagnostics.jsonl").at(0).at("layer"), 2);
}

TEST(Cli, EveryFlagIsValidated) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("c.toml");
  test::write_text(cfg, "[data]\ndataset = \"xor\"\nn_samples = 200\n[model]\nhidden = [6]\n[train]\nsteps = 2\n");
  std::string out;
  ASSERT_EQ(cli("train " + cfg + " --out " + tmp.file("run"), &out), 0) << out;
  const std::string run = tmp.file("run");
  const std::pair<std::string, std::string> bad[] = {
      {"hessian " + run + " --batch-size 0", "--batch-size"},
      {"hessian " + run + " --batch-size=-5", "--batch-size"},
      {"hessian " + run + " --batch-size 2000000", "--batch-size"},
      {"hessian " + run + " --layer=-1", "--layer"},
      {"hessian " + run + " --data trian", "--data"},
      {"hessian " + run + " --mode trian", "--mode"},
      {"hessian " + run + " --device warp", "--device"},
      {"eval " + run + " --split trian", "--split"},
      {"eval " + run + " --device warp", "--device"},
      {"train " + cfg + " --device warp --out " + tmp.file("r2"), "--device"},
  };
  for (const auto& [cmd, flag] : bad) {
    EXPECT_EQ(cli(cmd, &out), 2) << cmd << "\n" << out;
    EXPECT_EQ(lines(out), 1) << cmd << "\n" << out;
    EXPECT_NE(out.find(flag), std::string::npos) << cmd << "\n" << out;
  }
  EXPECT_FALSE(std::filesystem::exists(run + "/hessian")) << "a refused command wrote output";
}

// Sizes past the schema's bounds, and a step count that would overflow, are exit 2 naming
// the key, before any run directory is made.
TEST(Cli, OversizedValuesNameTheKey) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("c.toml");
  test::write_text(cfg, "[data]\ndataset = \"xor\"\nn_samples = 200\n[model]\nhidden = [6]\n");
  std::string out;
  const std::pair<std::string, std::string> bad[] = {
      {"data.batch_size=9e18", "data.batch_size: expected an integer in [1, 1000000]"},
      {"diagnostics.lanczos_k=1e12", "diagnostics.lanczos_k: expected an integer in [1, 10000]"},
      {"train.epochs=4611686018427387904", "train.epochs"},
  };
  for (const auto& [set, msg] : bad) {
    EXPECT_EQ(cli("train " + cfg + " --set " + set + " --out " + tmp.file("run"), &out), 2) << set << "\n" << out;
    EXPECT_EQ(lines(out), 1) << out;
    EXPECT_NE(out.find(msg), std::string::npos) << out;
    EXPECT_FALSE(std::filesystem::exists(tmp.file("run"))) << set;
  }
}

// A message quoting input stays one short line, whatever the input holds.
TEST(Cli, ErrorsAreOneShortLine) {
  test::TempDir tmp;
  const std::string cfg = tmp.file("c.toml");
  test::write_text(cfg, "[data]\ndataset = \"xor\"\n");
  std::string out;
  EXPECT_EQ(cli("train " + cfg + " --set \"$(printf 'optim.lr=a\\nb\\nc')\"", &out), 2) << out;
  EXPECT_EQ(lines(out), 1) << out;
  EXPECT_NE(out.find("optim.lr"), std::string::npos) << out;
  EXPECT_EQ(cli("train " + cfg + " --set optim.lr=" + std::string(20000, 'x'), &out), 2);
  EXPECT_EQ(lines(out), 1) << out.substr(0, 400);
  EXPECT_LT(out.size(), 400u) << out.substr(0, 400);
}
