// CurvatureWorker: checkpoints queued from the training thread come back, in step order,
// equal to the same checkpoints run in place; errors on the worker reach the caller.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <memory>
#include <optional>
#include <stdexcept>
#include <vector>

#include "core/philox.h"
#include "layers/model.h"
#include "train/curvature_worker.h"

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
