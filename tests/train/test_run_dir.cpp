// The run directory's names (io/run_layout.h), the trainer's writers over them
// (train/run_dir.h) and the optimiser's preconditioner the curvature snapshot takes.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
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

// eval and hessian name a checkpoint as a user types it: trailing separators, ".", and
// directories not named step_N (the step then comes from the state file).
TEST(RunLayout, ResolveCheckpointNormalisesPathsAndReadsTheStep) {
  TempDir tmp;
  const RunLayout run(tmp.file("run"));
  const auto save = [](const std::string& dir, int64_t step) {
    fs::create_directories(dir);
    write_text(dir + "/model.safetensors", "");
    SafetensorsWriter w;
    w.add<int64_t>("step", {}, &step);
    w.write(dir + "/state.safetensors");
  };
  for (int64_t s : {20, 100}) save(run.checkpoint(s), s);
  save(run.checkpoints() + "/best", 20);
  save(run.checkpoints() + "/step_x", 100);
  write_text(run.config(), "");

  EXPECT_EQ(resolve_checkpoint(run.checkpoint(20) + "/"), run.checkpoint(20));
  EXPECT_EQ(resolve_checkpoint(run.checkpoint(20) + "//"), run.checkpoint(20));
  EXPECT_EQ(resolve_checkpoint(run.root() + "/"), run.checkpoint(100));
  EXPECT_EQ(resolve_checkpoint(run.root() + "/./checkpoints/.."), run.checkpoint(100));
  EXPECT_EQ(checkpoint_step(resolve_checkpoint(run.checkpoint(20) + "/")), 20);
  EXPECT_EQ(checkpoint_step(resolve_checkpoint(run.checkpoints() + "/best/")), 20);
  EXPECT_EQ(checkpoint_step(resolve_checkpoint(run.checkpoints() + "/step_x")), 100);
  EXPECT_EQ(checkpoint_run_dir(resolve_checkpoint(run.checkpoints() + "/best/")),
            fs::weakly_canonical(run.root()).string());

  const fs::path cwd = fs::current_path();
  fs::current_path(run.checkpoint(20));
  std::string ckpt, owner;
  EXPECT_NO_THROW(ckpt = resolve_checkpoint("."));
  EXPECT_NO_THROW(owner = checkpoint_run_dir(ckpt));
  fs::current_path(run.root());
  std::string last;
  EXPECT_NO_THROW(last = resolve_checkpoint("./"));
  fs::current_path(cwd);
  EXPECT_EQ(fs::weakly_canonical(ckpt), fs::weakly_canonical(run.checkpoint(20)));
  EXPECT_EQ(owner, fs::weakly_canonical(run.root()).string());
  EXPECT_EQ(fs::weakly_canonical(last), fs::weakly_canonical(run.checkpoint(100)));

  // A missing checkpoint names the ones the run has.
  try {
    resolve_checkpoint(run.checkpoint(7));
    ADD_FAILURE() << "expected an InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find(run.checkpoint(7)), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("checkpoints/step_20, step_100"), std::string::npos) << e.what();
  }
  // A checkpoint outside a run directory.
  save(tmp.file("loose/ckpt"), 5);
  EXPECT_EQ(checkpoint_step(resolve_checkpoint(tmp.file("loose/ckpt/"))), 5);
  EXPECT_THROW(checkpoint_run_dir(tmp.file("loose/ckpt")), InputError);
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

TEST(RunLayout, AtomicTemporaryNames) {
  for (const char* name : {"meta.json.tmp.12.0", "model.safetensors.tmp.4242.17", "x.tmp.1.2"})
    EXPECT_TRUE(is_atomic_temp_name(name)) << name;
  for (const char* name : {"meta.json", ".tmp.1.2", "a.tmp.1", "a.tmp.1.", "a.tmp..2", "a.tmp.x.2", "a.tmp.1.2x",
                           "a.tmp1.2", "notes.tmp.txt", "a.tmp.1.2.safetensors"})
    EXPECT_FALSE(is_atomic_temp_name(name)) << name;
}

// One holder at a time; a second is refused naming the holder's pid; releasing removes the
// file, and a file a killed holder left behind is free to take.
TEST(RunDir, LockIsExclusiveAndNamesItsHolder) {
  TempDir tmp;
  const std::string dir = tmp.file("run"), lock_file = RunLayout(dir).lock();
  fs::create_directories(dir);
  EXPECT_FALSE(RunLock::holder(dir));
  RunLock first, second;
  first.acquire(dir);
  EXPECT_TRUE(first.held());
  EXPECT_EQ(read_text(lock_file), std::to_string(::getpid()) + "\n");
  EXPECT_EQ(RunLock::holder(dir), static_cast<long>(::getpid()));
  try {
    second.acquire(dir);
    ADD_FAILURE() << "a second lock was granted";
  } catch (const InputError& e) {
    EXPECT_EQ(std::string(e.what()), "run directory " + dir + " is in use by process " + std::to_string(::getpid()));
  }
  EXPECT_FALSE(second.held());
  EXPECT_THROW(RunDir::create(dir, "x", second), InputError);  // --out onto a held directory
  first.release();
  EXPECT_FALSE(fs::exists(lock_file));
  EXPECT_FALSE(RunLock::holder(dir));

  write_text(lock_file, "999999\n");  // left by a killed holder
  EXPECT_FALSE(RunLock::holder(dir));
  EXPECT_EQ(RunDir::create(dir, "x", second), dir);  // still counts as empty
  EXPECT_TRUE(second.held());
  second.release();
  write_text(dir + "/config.toml", "");
  try {
    RunDir::create(dir, "x", second);
    ADD_FAILURE() << "a directory with content was taken";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("must not exist or be empty"), std::string::npos) << e.what();
  }
  EXPECT_FALSE(second.held());
}

// The temporaries of killed atomic writes go from the run directory, checkpoints/, its
// step_N folders and spectra/; nothing else does.
TEST(RunDir, RemoveTemporariesTakesOnlyKilledWrites) {
  TempDir tmp;
  const RunDir dir(tmp.file("run"));
  const RunLayout& run = dir.layout();
  fs::create_directories(run.checkpoint(20) + "/hessian");
  fs::create_directories(run.spectra());
  const std::vector<std::string> gone = {run.meta() + ".tmp.7.0", run.root() + "/events.out.tfevents.1.host.tmp.7.3",
                                         run.checkpoint(20) + "/model.safetensors.tmp.7.1",
                                         run.checkpoints() + "/x.tmp.7.9", run.spectra_file(20) + ".tmp.7.2"};
  const std::vector<std::string> kept = {run.meta(), run.root() + "/notes.tmp.txt",
                                         run.checkpoint(20) + "/model.safetensors",
                                         run.checkpoint(20) + "/hessian/spectra.safetensors.tmp.7.4"};
  for (const auto& f : gone) write_text(f, "x");
  for (const auto& f : kept) write_text(f, "x");
  dir.remove_temporaries();
  for (const auto& f : gone) EXPECT_FALSE(fs::exists(f)) << f;
  for (const auto& f : kept) EXPECT_TRUE(fs::exists(f)) << f;
}

// A resume continues the earlier parts' clock: meta.json's first start and wall time (plus
// a killed part's time, as its files tell), metrics.jsonl's time_s at the resumed step.
TEST(RunDir, EarlierPartsOfAResumedRun) {
  TempDir tmp;
  const RunDir dir(tmp.file("run"));
  const RunLayout& run = dir.layout();
  fs::create_directories(run.root());
  write_text(run.metrics_log(),
             "{\"step\": 5, \"time_s\": 1.5}\n{\"step\": 10, \"time_s\": 2.5}\n"
             "{\"step\": 15, \"time_s\": 3.5}\n");
  write_text(run.meta(), R"({"start_time": "2020-01-01T00:00:00Z", "end_time": "2020-01-01T00:01:00Z", "wall_s": 60})");
  RunDir::Earlier e = dir.earlier(12);
  EXPECT_EQ(e.start_time, "2020-01-01T00:00:00Z");
  EXPECT_EQ(e.wall_s, 60.0);
  EXPECT_EQ(e.time_s, 2.5);
  EXPECT_EQ(dir.earlier(0).time_s, 0.0);

  // The last part was killed: it started with meta.json's write 100 s before its last log.
  write_text(run.meta(), R"({"start_time": "2020-01-01T00:00:00Z", "end_time": null, "wall_s": 60})");
  const auto now = fs::last_write_time(run.metrics_log());
  fs::last_write_time(run.meta(), now - std::chrono::seconds(100));
  e = dir.earlier(15);
  EXPECT_NEAR(e.wall_s, 160.0, 1e-6);
  EXPECT_EQ(e.time_s, 3.5);

  fs::remove(run.meta());
  e = dir.earlier(15);
  EXPECT_TRUE(e.start_time.is_null());
  EXPECT_EQ(e.wall_s, 0.0);
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
