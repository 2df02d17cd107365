// The run directory's names (io/run_layout.h), the trainer's writers over them
// (train/run_dir.h) and the optimiser's preconditioner the curvature snapshot takes.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "io/files.h"
#include "io/run_layout.h"
#include "io/safetensors.h"
#include "io/tensorboard.h"
#include "optim/optimizer.h"
#include "test_util.h"
#include "train/run_dir.h"

using namespace cn;
using namespace cn::test;
namespace fs = std::filesystem;

TEST(RunLayout, StepNames) {
  EXPECT_EQ(step_name(12), "step_12");
  EXPECT_EQ(step_name(3, ".safetensors"), "step_3.safetensors");
  EXPECT_EQ(parse_step_name("step_0"), 0);
  EXPECT_EQ(parse_step_name("step_250"), 250);
  EXPECT_EQ(parse_step_name("step_7.safetensors", ".safetensors"), 7);
  EXPECT_FALSE(parse_step_name("step_7.safetensors"));
  EXPECT_FALSE(parse_step_name("step_7", ".safetensors"));
  EXPECT_FALSE(parse_step_name("step_"));
  EXPECT_FALSE(parse_step_name("step_.safetensors", ".safetensors"));
  EXPECT_FALSE(parse_step_name("step_-1"));
  EXPECT_FALSE(parse_step_name("step_+1"));
  EXPECT_FALSE(parse_step_name("step_1x"));
  EXPECT_FALSE(parse_step_name("Step_1"));
  EXPECT_FALSE(parse_step_name("step_1234567890123456789"));  // 19 digits
  EXPECT_EQ(parse_step_name("step_123456789012345678"), 123456789012345678);
  EXPECT_FALSE(parse_step_name("step_5.safetensors.tmp.1.0", ".safetensors"));
}

TEST(RunLayout, NamesAndListing) {
  TempDir tmp;
  const RunLayout run(tmp.file("run"));
  EXPECT_EQ(run.config(), tmp.file("run") + "/config.toml");
  EXPECT_EQ(run.meta(), tmp.file("run") + "/meta.json");
  EXPECT_EQ(run.metrics_log(), tmp.file("run") + "/metrics.jsonl");
  EXPECT_EQ(run.spectra_file(4), tmp.file("run") + "/spectra/step_4.safetensors");
  EXPECT_EQ(run.checkpoint(4), (fs::path(tmp.file("run")) / "checkpoints" / "step_4").string());
  EXPECT_EQ(RunLayout::of_checkpoint(run.checkpoint(4)), tmp.file("run"));
  EXPECT_TRUE(run.complete_checkpoints().empty());  // no directory yet

  for (int64_t s : {20, 3, 100}) fs::create_directories(run.checkpoint(s));
  for (int64_t s : {20, 100}) {
    write_text(run.checkpoint(s) + "/model.safetensors", "");
    write_text(run.checkpoint(s) + "/state.safetensors", "");
  }
  write_text(run.checkpoint(3) + "/model.safetensors", "");  // incomplete
  fs::create_directories(run.checkpoints() + "/step_x");
  EXPECT_EQ(run.complete_checkpoints(), (std::vector<int64_t>{20, 100}));
  EXPECT_EQ(resolve_checkpoint(run.checkpoint(20)), run.checkpoint(20));
  EXPECT_THROW(resolve_checkpoint(run.checkpoint(3)), InputError);
  EXPECT_THROW(resolve_checkpoint(run.root()), InputError);  // no config.toml: not a run directory
  write_text(run.config(), "");
  EXPECT_EQ(resolve_checkpoint(run.root()), run.checkpoint(100));

  fs::create_directories(run.spectra());
  for (const char* name : {"step_9.safetensors", "step_10.safetensors", "step_2.safetensors.tmp.1.0", "other"})
    write_text(run.spectra() + "/" + name, "");
  const auto files = step_entries(run.spectra(), ".safetensors", false);
  ASSERT_EQ(files.size(), 2u);
  EXPECT_EQ(files[0].first, 9);
  EXPECT_EQ(files[1].first, 10);
  EXPECT_EQ(files[1].second, run.spectra_file(10));
  EXPECT_TRUE(step_entries(run.spectra(), ".safetensors", true).empty());
}

TEST(RunLayout, ReadJsonLinesSkipsTornLines) {
  TempDir tmp;
  bool exists = true;
  EXPECT_TRUE(read_jsonl(tmp.file("missing.jsonl"), &exists).empty());
  EXPECT_FALSE(exists);
  write_text(tmp.file("log.jsonl"), "{\"step\": 1}\n[1, 2]\nnot json\n{\"step\": 2}\n{\"step\": 3, \"lo");
  const auto rows = read_jsonl(tmp.file("log.jsonl"), &exists);
  EXPECT_TRUE(exists);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["step"], 2);
}

namespace {
std::map<std::string, std::vector<double>> spectra_at(const std::string& path) {
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : read_safetensors(path)) out[name] = safetensor_values<double>(t, path, name);
  return out;
}
}  // namespace

TEST(RunDir, SpectraMergeInEitherOrderAndMirrorToTensorBoard) {
  TempDir tmp;
  RunDir dir(tmp.file("run"));
  fs::create_directories(dir.root());
  dir.open_logs(true);
  dir.add_step_spectra(5, {{"loss.2.eigenvalues", {1.0, 2.0}}, {"loss.2.density", {0.5}}});
  dir.add_step_spectra(5, {{"weights.2.singular_values", {3.0}}, {"loss.2.density", {0.25}}});
  dir.add_step_spectra(6, {});  // nothing: no file
  dir.close();
  const std::string path = dir.layout().spectra_file(5);
  const auto got = spectra_at(path);
  EXPECT_EQ(got.at("loss.2.eigenvalues"), (std::vector<double>{1.0, 2.0}));
  EXPECT_EQ(got.at("loss.2.density"), (std::vector<double>{0.25}));  // the later one replaces
  EXPECT_EQ(got.at("weights.2.singular_values"), (std::vector<double>{3.0}));
  EXPECT_FALSE(fs::exists(dir.layout().spectra_file(6)));
  std::map<std::string, std::string> metadata;
  read_safetensors(path, &metadata);
  EXPECT_EQ(metadata.at("step"), "5");

  // Each call's tensors went to TensorBoard once, as histograms at their step.
  std::vector<std::string> tags;
  for (const std::string& f : dir.layout().event_files())
    for (const std::string& rec : tfevents::parse_records(read_file(f)))
      for (const auto& v : tfevents::decode_event(rec).values)
        if (v.has_histo) tags.push_back(v.tag);
  EXPECT_EQ(tags, (std::vector<std::string>{"eigenvalues/loss/layer2", "singular_values/weights/layer2"}));
}

TEST(RunDir, ResumeTruncationCutsLogsAndSpectra) {
  TempDir tmp;
  RunDir dir(tmp.file("run"));
  const RunLayout& run = dir.layout();
  fs::create_directories(dir.root());
  dir.open_logs(true);
  for (int64_t s : {4, 5, 6}) {
    dir.log(RunLog::metrics, {{"step", s}, {"loss", 1.0}});
    dir.log(RunLog::diagnostics, {{"step", s}, {"kind", "loss"}, {"lambda_max", 2.0}});
    dir.add_step_spectra(s, {{"loss.2.eigenvalues", {1.0}}, {"weights.2.singular_values", {2.0}}});
  }
  dir.close();
  write_text(run.spectra() + "/step_5.safetensors.tmp.12.0", "torn");

  RunDir(run.root()).truncate_for_resume(5, /*redo_curvature=*/true);
  EXPECT_EQ(read_jsonl(run.metrics_log()).size(), 2u);      // steps 4 and 5
  EXPECT_EQ(read_jsonl(run.diagnostics_log()).size(), 1u);  // step 5's curvature runs again
  EXPECT_FALSE(fs::exists(run.spectra_file(6)));
  EXPECT_FALSE(fs::exists(run.spectra() + "/step_5.safetensors.tmp.12.0"));
  EXPECT_EQ(spectra_at(run.spectra_file(4)).size(), 2u);
  const auto at5 = spectra_at(run.spectra_file(5));
  ASSERT_EQ(at5.size(), 1u);  // the doctor's singular values stay
  EXPECT_TRUE(at5.count("weights.2.singular_values"));

  RunDir(run.root()).truncate_for_resume(4, /*redo_curvature=*/false);
  EXPECT_EQ(read_jsonl(run.diagnostics_log()).size(), 1u);
  EXPECT_EQ(spectra_at(run.spectra_file(4)).size(), 2u);
  EXPECT_FALSE(fs::exists(run.spectra_file(5)));
}

TEST(Optimizer, PreconditionerOfTheAdamFamily) {
  ParamLayout layout;
  layout.segments.push_back(ParamSegment{"0.weight", 0, 0, 1, 3, false});
  layout.total = 3;
  const std::vector<double> g1 = {0.1, -0.2, 0.3}, g2 = {-0.3, 0.1, 0.2};
  for (const char* name : {"adam", "adamw", "nadam", "amsgrad", "sgd", "momentum", "rmsprop"}) {
    OptimConfig c;
    c.name = parse_enum(kOptimKinds, name, "optim.name");
    auto opt = make_optimizer<double>(c, layout);
    EXPECT_TRUE(opt->preconditioner(0).empty()) << name;
    std::vector<double> p = {1.0, -2.0, 0.5};
    opt->step(p.data(), g1.data(), 0.1, 0);
    opt->step(p.data(), g2.data(), 0.1, 1);
    const std::vector<double> P = opt->preconditioner(2);
    const std::string n = name;
    if (n != "adam" && n != "adamw" && n != "nadam" && n != "amsgrad") {
      EXPECT_TRUE(P.empty()) << name;
      continue;
    }
    ASSERT_EQ(P.size(), 3u) << name;
    for (int i = 0; i < 3; ++i) {
      // v after two steps; AMSGrad's denominator takes the running maximum of v.
      const double v1 = (1 - c.beta2) * g1[i] * g1[i];
      const double v2 = c.beta2 * v1 + (1 - c.beta2) * g2[i] * g2[i];
      const double v = n == "amsgrad" ? std::max(v1, v2) : v2;
      EXPECT_NEAR(P[i], std::sqrt(v / (1 - c.beta2 * c.beta2)) + c.eps, 1e-15) << name << " element " << i;
    }
  }
}
