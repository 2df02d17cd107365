// CurvatureWorker: checkpoints queued from the training thread come back, in step order,
// equal to the same checkpoints run in place; errors on the worker reach the caller. With
// the worker (TrainOptions::curvature_worker on the CPU), training goes on while a
// checkpoint runs, model checkpoints included, and a run stopped while one runs resumes
// as if uninterrupted.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/philox.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "layers/model.h"
#include "quiet_run.h"
#include "test_util.h"
#include "train/curvature_worker.h"
#include "train/trainer.h"

using namespace cn;

namespace {

struct Problem {
  static constexpr int64_t kInputs = 6, kClasses = 3, kBatch = 40;
  ModelConfig mc;
  std::vector<LayerSpec> specs;
  std::vector<double> x, y;
  DiagnosticsConfig dc;

  Problem() {
    mc.hidden = {8, 7};
    mc.activation = LayerKind::tanh;
    specs = resolve_layers(mc, kClasses);
    x.resize(kBatch * kInputs);
    y.resize(kBatch);
    PhiloxDraw d(9, RngStream::data, 0, 0);
    for (auto& v : x) v = d.normal();
    for (int64_t n = 0; n < kBatch; ++n) y[n] = static_cast<double>(n % kClasses);
    dc.kinds = {cn::CurvatureKind::loss, cn::CurvatureKind::local, cn::CurvatureKind::ggn};
    dc.batch_size = kBatch;
    dc.probes = 4;
  }
  std::unique_ptr<CurvatureCheckpoint> checkpoint() const {
    return std::make_unique<CurvatureCheckpoint>(dc, specs, kInputs, LossKind::cross_entropy, x, y, kBatch, 5);
  }
  // A different model state per step.
  ModelSnapshot snapshot(uint64_t step) const {
    Sequential<double> net(specs, kInputs);
    net.initialize(mc, step);
    ModelSnapshot s;
    s.params.assign(net.params().data(), net.params().data() + net.layout().total);
    return s;
  }
};

}  // namespace

TEST(CurvatureWorker, ResultsEqualCheckpointsRunInPlaceInStepOrder) {
  const Problem p;
  const std::vector<int64_t> steps = {0, 10, 20, 30, 40};
  std::vector<CurvatureOutput> want;
  {
    auto cp = p.checkpoint();
    for (int64_t s : steps) want.push_back(cp->run(s, p.snapshot(static_cast<uint64_t>(s))));
  }
  CurvatureWorker worker([&p] { return p.checkpoint(); });
  std::vector<CurvatureOutput> got;
  for (int64_t s : steps) {
    worker.submit(s, p.snapshot(static_cast<uint64_t>(s)));
    for (auto& o : worker.take_finished()) got.push_back(std::move(o));  // never waits
  }
  for (auto& o : worker.finish()) got.push_back(std::move(o));
  EXPECT_EQ(worker.in_flight(), 0);
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    EXPECT_EQ(got[i].step, steps[i]);
    ASSERT_EQ(got[i].rows.size(), want[i].rows.size());
    for (size_t r = 0; r < want[i].rows.size(); ++r) {
      nlohmann::json a = got[i].rows[r], b = want[i].rows[r];
      a.erase("seconds");  // timings differ; everything else is the same computation
      b.erase("seconds");
      EXPECT_EQ(a, b) << "step " << steps[i] << " row " << r;
    }
    EXPECT_EQ(got[i].spectra, want[i].spectra) << "step " << steps[i];
  }
  EXPECT_TRUE(worker.finish().empty()) << "results are handed out once";
}

TEST(CurvatureWorker, AnErrorOnTheWorkerReachesTheCaller) {
  const Problem p;
  CurvatureWorker worker([&p] { return p.checkpoint(); });
  ModelSnapshot bad = p.snapshot(1);
  bad.params.pop_back();  // the wrong parameter count
  worker.submit(3, bad);
  EXPECT_ANY_THROW(worker.finish());
}

TEST(CurvatureWorker, AFailedSetupStopsTheQueue) {
  const Problem p;
  std::atomic<int> makes{0};
  {
    CurvatureWorker worker([&]() -> std::unique_ptr<CurvatureCheckpoint> {
      ++makes;
      throw Error("no memory for the checkpoint");
    });
    for (int64_t s = 0; s < 3; ++s) worker.submit(s, p.snapshot(static_cast<uint64_t>(s)));
    EXPECT_THROW(worker.finish(), Error);
    worker.submit(4, p.snapshot(4));  // after the error: dropped too
  }                                   // joined
  EXPECT_EQ(makes.load(), 1);
}

TEST(CurvatureWorker, DestroyingWithQueuedWorkFinishesCleanly) {
  const Problem p;
  auto worker = std::make_unique<CurvatureWorker>([&p] { return p.checkpoint(); });
  for (int64_t s = 0; s < 3; ++s) worker->submit(s, p.snapshot(static_cast<uint64_t>(s)));
  worker.reset();  // joins: the queued checkpoints run, their results are dropped
  SUCCEED();
}

// The alarms read the typed observations; they must hold what diagnostics.jsonl logs.
TEST(CurvatureWorker, ObservationsHoldTheRowsMetrics) {
  Problem p;
  p.dc.kinds = {CurvatureKind::loss, CurvatureKind::local,       CurvatureKind::ggn,     CurvatureKind::kfac,
                CurvatureKind::diag, CurvatureKind::fisher_diag, CurvatureKind::full_top};
  ModelSnapshot s = p.snapshot(3);
  s.preconditioner.assign(s.params.size(), 1.5);
  const CurvatureOutput out = p.checkpoint()->run(3, s);
  ASSERT_EQ(out.observations.size(), out.rows.size());
  for (size_t i = 0; i < out.rows.size(); ++i) {
    const nlohmann::json& row = out.rows[i];
    const CurvatureObservation& o = out.observations[i];
    EXPECT_EQ(row["layer"].is_null() ? -1 : row["layer"].get<int64_t>(), o.layer) << i;
    EXPECT_EQ(row["kind"], enum_name(kCurvatureKinds, o.kind)) << i;
    if (row.contains("status")) EXPECT_EQ(row["status"], o.metrics.status) << i;
    const auto same = [&](const char* key, const std::optional<double>& v) {
      const bool logged = row.contains(key) && row[key].is_number();
      EXPECT_EQ(logged, v.has_value() && std::isfinite(*v)) << i << " " << key;
      if (logged && v) EXPECT_EQ(row[key].get<double>(), *v) << i << " " << key;
    };
    same("condition", o.metrics.condition);
    same("near_zero_share", o.metrics.near_zero_share);
    same("symmetry", o.metrics.symmetry);
    same("negative_share", o.metrics.negative_share);
    same("preconditioned_lambda_max", o.preconditioned_lambda_max);
    if (o.kind != CurvatureKind::diag && o.kind != CurvatureKind::fisher_diag) same("lambda_max", o.metrics.lambda_max);
  }
}

TEST(CurvatureWorker, EveryJobIsFinishedOrUnfinishedExactlyOnce) {
  const Problem p;
  CurvatureWorker worker([&p] { return p.checkpoint(); });
  const std::vector<int64_t> steps = {0, 10, 20, 30};
  for (int64_t s : steps) worker.submit(s, p.snapshot(static_cast<uint64_t>(s)));
  std::vector<int64_t> taken;
  for (int round = 0; round < 1000; ++round) {
    std::vector<CurvatureJob> unfinished;
    for (const CurvatureOutput& o : worker.take_finished(&unfinished)) taken.push_back(o.step);
    std::vector<int64_t> seen = taken;
    for (const CurvatureJob& j : unfinished) {
      seen.push_back(j.step);
      EXPECT_EQ(j.snapshot.params, p.snapshot(static_cast<uint64_t>(j.step)).params) << "step " << j.step;
    }
    ASSERT_EQ(seen, steps) << "round " << round;  // in step order, none lost, none twice
    if (unfinished.empty()) break;
  }
  for (const CurvatureOutput& o : worker.finish()) taken.push_back(o.step);
  EXPECT_EQ(taken, steps);
}

namespace {

namespace fs = std::filesystem;

// A run whose curvature checkpoint (the dense loss block of a 1,056-parameter layer) takes
// far longer than its training steps; model checkpoints every 5 steps.
Config slow_curvature_config() {
  return parse_config(R"(
[data]
dataset = "spirals"
n_samples = 600
batch_size = 64
[model]
hidden = [32, 32]
activation = "tanh"
[optim]
name = "adam"
lr = 0.01
[train]
steps = 20
log_every = 5
eval_every = 10
[checkpoint]
every = 5
[diagnostics]
every = 10
kinds = ["loss"]
layers = [2]
batch_size = 256
)",
                      "test.toml");
}

size_t diagnostics_rows(const std::string& run) {
  std::error_code ec;
  if (!fs::exists(run + "/diagnostics.jsonl", ec)) return 0;
  return test::log_rows(run + "/diagnostics.jsonl").size();
}

}  // namespace

// Steps after the first model checkpoint (step 5) are trained while step 0's curvature
// checkpoint still runs: neither the steps nor the model checkpoint wait for it. The
// diagnostics log is written when a checkpoint's results arrive.
TEST(CurvatureWorker, TrainingAndModelCheckpointsGoOnWhileACheckpointRuns) {
  test::TempDir tmp;
  const std::string run = tmp.file("run");
  TrainOptions o = quiet(run);
  o.curvature_worker = true;
  int64_t steps_while_running = 0;
  o.should_stop = [&](int64_t step) {
    if (step > 6 && diagnostics_rows(run) == 0) ++steps_while_running;
    return false;
  };
  const TrainSummary s = train(slow_curvature_config(), o);
  EXPECT_EQ(s.steps, 20);
  EXPECT_GT(steps_while_running, 0) << "every step after the model checkpoint at step 5 waited for step 0's curvature";
  // Every checkpoint arrived by the end, in step order.
  std::set<int64_t> steps;
  for (const auto& row : test::log_rows(run + "/diagnostics.jsonl")) steps.insert(row["step"].get<int64_t>());
  EXPECT_EQ(steps, (std::set<int64_t>{0, 10, 20}));
}

// Stopped while step 0's curvature runs, the run saves that checkpoint's model state with
// its model checkpoint; the resume computes it again and the run's logs and spectra are
// the uninterrupted run's (alarm rows compared as a set: they follow the arrival order).
TEST(CurvatureWorker, AStopWhileACheckpointRunsResumesAsIfUninterrupted) {
  test::TempDir tmp;
  const Config c = slow_curvature_config();
  TrainOptions full = quiet(tmp.file("full"));
  full.curvature_worker = true;
  train(c, full);

  TrainOptions o = quiet(tmp.file("cut"));
  o.curvature_worker = true;
  o.should_stop = [](int64_t step) { return step == 7; };
  const TrainSummary cut = train(c, o);
  ASSERT_TRUE(cut.interrupted);
  ASSERT_EQ(cut.steps, 7);
  const std::string pending = tmp.file("cut") + "/checkpoints/step_7/curvature_pending.safetensors";
  ASSERT_TRUE(fs::exists(pending)) << "step 0's curvature finished before the stop: nothing exercised";
  EXPECT_EQ(load_safetensors(pending).meta("steps"), "0");
  // A saved list naming a step that is not an earlier one, or a model state of the wrong
  // size, is refused before anything of the run changes, naming the file.
  const auto expect_refused = [&](const std::string& copy, const std::string& steps, bool short_params,
                                  const std::string& needle) {
    fs::copy(tmp.file("cut"), tmp.file(copy), fs::copy_options::recursive);
    const std::string bad = tmp.file(copy) + "/checkpoints/step_7/curvature_pending.safetensors";
    std::map<std::string, std::string> meta;
    const SafeTensorMap tensors = read_safetensors(bad, &meta);
    SafetensorsWriter w;
    for (const auto& [name, t] : tensors)
      if (short_params && name == "step_0.params")
        w.add<double>(name, {3}, {1.0, 2.0, 3.0});
      else
        w.add_raw(name, t);
    for (const auto& [key, value] : meta) w.metadata(key, key == "steps" ? steps : value);
    w.write(bad);
    const std::string metrics = test::read_text(tmp.file(copy) + "/metrics.jsonl");
    TrainOptions b = quiet("");
    b.resume_dir = tmp.file(copy);
    b.curvature_worker = true;
    const std::string msg = test::input_error_of([&] { train(c, b); });
    EXPECT_NE(msg.find("curvature_pending.safetensors: " + needle), std::string::npos) << copy << ": " << msg;
    EXPECT_EQ(test::read_text(tmp.file(copy) + "/metrics.jsonl"), metrics) << copy;
  };
  expect_refused("bad", "9", false, "metadata \"steps\"");
  expect_refused("short", "0", true, "step_0.params has 3 values; expected the model's");
  TrainOptions r = quiet("");
  r.resume_dir = tmp.file("cut");
  r.curvature_worker = true;
  EXPECT_EQ(train(c, r).steps, 20);

  EXPECT_EQ(test::final_params(tmp.file("full")), test::final_params(tmp.file("cut")));
  for (const char* log : {"metrics.jsonl", "eval.jsonl", "stats.jsonl", "diagnostics.jsonl"}) {
    const auto a = test::log_rows(tmp.file("full") + "/" + log), b = test::log_rows(tmp.file("cut") + "/" + log);
    ASSERT_EQ(a.size(), b.size()) << log;
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << log << " row " << i;
  }
  {
    std::multiset<std::string> a, b;
    for (const auto& row : test::log_rows(tmp.file("full") + "/alarms.jsonl")) a.insert(row.dump());
    for (const auto& row : test::log_rows(tmp.file("cut") + "/alarms.jsonl")) b.insert(row.dump());
    EXPECT_EQ(a, b);
  }
  for (const auto& f : fs::directory_iterator(tmp.file("full") + "/spectra")) {
    const std::string other = tmp.file("cut") + "/spectra/" + f.path().filename().string();
    ASSERT_TRUE(fs::exists(other)) << other;
    const SafeTensorMap ta = read_safetensors(f.path().string()), tb = read_safetensors(other);
    ASSERT_EQ(ta.size(), tb.size()) << other;
    for (const auto& [name, t] : ta) {
      ASSERT_TRUE(tb.count(name)) << other << " " << name;
      EXPECT_EQ(t.bytes, tb.at(name).bytes) << other << " " << name;
    }
  }
}
