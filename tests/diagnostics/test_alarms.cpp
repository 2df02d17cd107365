// The alarm rules (diagnostics/alarms.h, docs/doctor.md): each fires in a scenario built for
// it, fires once on the transition into the alarm state, and stays quiet on a healthy
// sequence; thresholds set to 0 switch rules off; the [alarms] keys parse.
#include <gtest/gtest.h>

#include <cmath>
#include <nlohmann/json.hpp>

#include "config/config.h"
#include "diagnostics/alarms.h"
#include "diagnostics/layer_stats.h"

namespace cn {
namespace {

using json = nlohmann::json;

OptimConfig sgd() {
  OptimConfig o;
  o.name = cn::OptimKind::sgd;
  return o;
}

// A curvature row as the curvature rules see it (layer -1: the network); metrics set after.
CurvatureObservation curv(int64_t layer, CurvatureKind kind, const char* status = kStatusOk) {
  CurvatureObservation o;
  o.layer = layer;
  o.kind = kind;
  o.metrics.status = status;
  return o;
}

std::vector<json> rows_of(AlarmEngine& e, const std::string& rule) {
  std::vector<json> out;
  for (auto& r : e.take_rows())
    if (r["rule"] == rule) out.push_back(r);
  return out;
}

// A healthy layer: moderate gradients and updates.
LayerObservation healthy(int64_t layer, double scale = 1.0) {
  LayerObservation o;
  o.layer = layer;
  o.grad_l2 = 0.5 * scale;
  o.grad_rel = 0.05 * scale;
  o.update_ratio = 1e-3;
  o.weight_rms = 0.3;
  o.dead_share = 0.05;
  o.saturated_share = 0.02;
  return o;
}

std::vector<LayerObservation> healthy_net(double scale = 1.0) {
  return {healthy(0, scale), healthy(2, scale * 1.1), healthy(4, scale * 0.9), healthy(6, scale * 1.05)};
}

TEST(Alarms, RuleNamesAreTheFixedSet) {
  const std::vector<std::string> expected = {
      "grad_explosion",     "grad_vanishing",   "nonfinite",       "loss_spike",     "frozen_layer",
      "dead_units",         "saturation",       "update_ratio",    "weight_norm",    "outlier",
      "ill_conditioned",    "spectrum_at_zero", "saddle",          "sharpness_edge", "vanishing_by_depth",
      "exploding_by_depth", "loss_plateau",     "symmetric_units", "signal_collapse"};
  EXPECT_EQ(alarm_rule_names(), expected);
}

TEST(Alarms, HealthySequenceIsQuiet) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  double loss = 2.3;
  for (int k = 0; k < 60; ++k) {
    for (int s = 0; s < 10; ++s) e.observe_step(k * 10 + s, 1.0 + 0.3 * std::sin(k + s));
    // Decreasing loss with mini-batch noise (±10%).
    loss *= 0.97;
    const double noisy = loss * (1.0 + 0.1 * std::sin(1.7 * k));
    e.observe_logged(k * 10 + 9, noisy, 1.0 + 0.2 * std::cos(k), healthy_net(1.0 + 0.1 * std::sin(0.5 * k)));
  }
  CurvatureObservation healthy_curv = curv(0, CurvatureKind::loss);
  healthy_curv.metrics.condition = 1e3;
  healthy_curv.metrics.near_zero_share = 0.1;
  healthy_curv.metrics.symmetry = 0.05;
  healthy_curv.metrics.negative_share = 0.02;
  CurvatureObservation healthy_top = curv(-1, CurvatureKind::full_top);
  healthy_top.metrics.lambda_max = 5.0;
  healthy_top.metrics.symmetry = 0.1;
  healthy_top.metrics.negative_share = 0.0;
  e.observe_curvature(600, {healthy_curv, healthy_top}, 0.1);  // limit 2/0.1 = 20
  EXPECT_EQ(e.take_rows(), std::vector<json>{});
  EXPECT_EQ(e.summary(), "none");
}

TEST(Alarms, GradExplosionFiresPerStepOnTransitionOnly) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  const double norms[] = {1, 2, 500, 600, 3, 700, 800};
  for (int s = 0; s < 7; ++s) e.observe_step(s, norms[s]);
  auto rows = rows_of(e, "grad_explosion");
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[0]["step"], 2);
  EXPECT_TRUE(rows[0]["layer"].is_null());
  EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), 500);
  EXPECT_DOUBLE_EQ(rows[0]["threshold"].get<double>(), 100);
  EXPECT_EQ(rows[1]["step"], 5);
  EXPECT_EQ(e.count(AlarmRule::grad_explosion), 2);
  // Per layer too, at logged steps.
  auto net = healthy_net();
  net[1].grad_l2 = 250;
  e.observe_logged(10, 2.0, 1.0, net);
  rows = rows_of(e, "grad_explosion");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["layer"], 2);
  // Switched off.
  c.grad_norm_high = 0;
  AlarmEngine off(c, sgd());
  off.observe_step(0, 1e9);
  off.observe_logged(0, 1.0, 1e9, net);
  EXPECT_TRUE(rows_of(off, "grad_explosion").empty());
}

TEST(Alarms, GradVanishingNeedsTheLossStillHigh) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  e.observe_logged(0, 2.0, 1.0, {});
  e.observe_logged(10, 1.9, 1e-3, {});  // vanishing, loss still high
  auto rows = rows_of(e, "grad_vanishing");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["step"], 10);
  EXPECT_DOUBLE_EQ(rows[0]["threshold"].get<double>(), 1e-2);
  AlarmEngine done(c, sgd());
  done.observe_logged(0, 2.0, 1.0, {});
  done.observe_logged(10, 0.1, 1e-3, {});  // converged: small gradient is fine
  EXPECT_TRUE(rows_of(done, "grad_vanishing").empty());
}

TEST(Alarms, LossSpikeFiresAtTheFirstLoggedStepAboveTheRunningMinimum) {
  AlarmsConfig c;  // delta 0.5, window 10
  AlarmEngine e(c, sgd());
  const std::vector<double> losses = {2.0, 1.8, 1.6, 1.5, 1.4, 1.45, 1.9, 2.2, 3.0, 5.0, 9.0};
  for (size_t k = 0; k < losses.size(); ++k) e.observe_logged(static_cast<int64_t>(k) * 10, losses[k], 1.0, {});
  auto rows = rows_of(e, "loss_spike");
  ASSERT_EQ(rows.size(), 1u);  // stays in the alarm state while the loss keeps rising
  // 1.4 * 1.5 = 2.1: 1.9 is below, 2.2 is the first above.
  EXPECT_EQ(rows[0]["step"], 70);
  EXPECT_DOUBLE_EQ(rows[0]["threshold"].get<double>(), 1.5 * 1.4);
  EXPECT_DOUBLE_EQ(rows[0]["running_min"].get<double>(), 1.4);
  // The window: a minimum older than W logged steps no longer counts.
  c.loss_spike_window = 2;
  AlarmEngine w(c, sgd());
  for (double l : {1.0, 3.0, 3.1, 3.2, 4.0}) w.observe_logged(0, l, 1.0, {});
  rows = rows_of(w, "loss_spike");
  ASSERT_EQ(rows.size(), 1u);  // only 3.0 vs min(1.0); 4.0 vs min(3.1, 3.2) = 3.1 * 1.5 = 4.65 is not a spike
  EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), 3.0);
  c.loss_spike_delta = 0;
  AlarmEngine off(c, sgd());
  for (double l : {1.0, 30.0}) off.observe_logged(0, l, 1.0, {});
  EXPECT_TRUE(rows_of(off, "loss_spike").empty());
}

TEST(Alarms, FrozenLayerWhileLossHigh) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  auto net = healthy_net();
  e.observe_logged(0, 2.0, 1.0, net);
  net[2].grad_l2 = 1e-7;
  e.observe_logged(10, 1.9, 1.0, net);
  e.observe_logged(20, 1.9, 1.0, net);  // still frozen: no repeat
  auto rows = rows_of(e, "frozen_layer");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["layer"], 4);
  EXPECT_EQ(rows[0]["step"], 10);
  // Low loss: a tiny gradient is convergence, not a frozen layer.
  AlarmEngine low(c, sgd());
  low.observe_logged(0, 2.0, 1.0, healthy_net());
  low.observe_logged(10, 0.2, 1.0, net);
  EXPECT_TRUE(rows_of(low, "frozen_layer").empty());
}

TEST(Alarms, ThresholdRulesFireOnTransitionsAndRearm) {
  struct Case {
    const char* rule;
    void (*set)(LayerObservation&, double);
    double bad;
  };
  const Case cases[] = {
      {"dead_units", [](LayerObservation& o, double v) { o.dead_share = v; }, 0.8},
      {"saturation", [](LayerObservation& o, double v) { o.saturated_share = v; }, 0.9},
      {"update_ratio", [](LayerObservation& o, double v) { o.update_ratio = v; }, 0.5},
      {"weight_norm", [](LayerObservation& o, double v) { o.weight_rms = v; }, 50.0},
  };
  for (const Case& cs : cases) {
    SCOPED_TRACE(cs.rule);
    AlarmsConfig c;
    c.sigma = 0;  // keep the outlier rule out of this test
    AlarmEngine e(c, sgd());
    for (int k = 0; k < 8; ++k) {
      auto net = healthy_net();
      if (k == 2 || k == 3 || k == 6) cs.set(net[1], cs.bad);
      e.observe_logged(k * 10, 2.0 - 0.01 * k, 1.0, net);
    }
    auto rows = rows_of(e, cs.rule);
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["step"], 20);
    EXPECT_EQ(rows[1]["step"], 60);
    EXPECT_EQ(rows[0]["layer"], 2);
    EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), cs.bad);
  }
  AlarmsConfig off;
  off.dead_share_high = off.saturation_high = off.update_ratio_high = off.weight_norm_high = 0;
  off.frozen_update_low = 0;
  AlarmEngine e(off, sgd());
  auto net = healthy_net();
  net[0].dead_share = net[0].saturated_share = 1;
  net[0].update_ratio = net[0].weight_rms = 1e6;
  e.observe_logged(0, 1.0, 1.0, net);
  for (auto& r : e.take_rows()) EXPECT_EQ(r["rule"], "outlier") << r.dump();
}

TEST(Alarms, OutlierIsOneSidedAgainstItsOwnHistoryBeyondTheNetworkShift) {
  AlarmsConfig c;
  // A layer far above the others at the first observation: no history, no comparison with
  // other layers (the output layer differs from hidden layers by construction).
  {
    AlarmEngine e(c, sgd());
    auto net = healthy_net();
    net[3].grad_rel = 50.0;
    e.observe_logged(0, 2.0, 1.0, net);
    EXPECT_TRUE(rows_of(e, "outlier").empty());
  }
  auto history = [&](AlarmEngine& e) {
    // A learning run (a flat loss would be a loss_plateau, which holds the outlier rule).
    for (int k = 0; k < 10; ++k)
      e.observe_logged(k, 2.0 * std::pow(0.9, k), 1.0, healthy_net(1.0 + 0.05 * std::sin(k)));
    EXPECT_TRUE(rows_of(e, "outlier").empty());
  };
  {  // one layer rises 100x: fires, on that layer only
    AlarmEngine e(c, sgd());
    history(e);
    auto net = healthy_net();
    net[1].grad_rel *= 100;
    e.observe_logged(10, 0.6, 1.0, net);
    auto rows = rows_of(e, "outlier");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["layer"], 2);
    EXPECT_EQ(rows[0]["reference"], "history");
    EXPECT_EQ(rows[0]["step"], 10);
  }
  {  // one layer falls 100x: a fall is no outlier
    AlarmEngine e(c, sgd());
    history(e);
    auto net = healthy_net();
    net[1].grad_rel /= 100;
    e.observe_logged(10, 0.6, 1.0, net);
    EXPECT_TRUE(rows_of(e, "outlier").empty());
  }
  {  // every layer rises 100x: a network-wide shift, not an outlier
    AlarmEngine e(c, sgd());
    history(e);
    e.observe_logged(10, 0.6, 1.0, healthy_net(100.0));
    EXPECT_TRUE(rows_of(e, "outlier").empty());
  }
}

TEST(Alarms, CurvatureRules) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  std::vector<CurvatureObservation> rows = {
      curv(0, CurvatureKind::loss),
      curv(2, CurvatureKind::ggn),
      curv(0, CurvatureKind::local, kStatusZeroMatrix),  // ReLU: by construction
      curv(4, CurvatureKind::loss),
      curv(4, CurvatureKind::local),  // not a loss Hessian
      curv(6, CurvatureKind::kfac, kStatusNotApplicable),
      curv(-1, CurvatureKind::full_top),  // sgd, lr 0.1: limit 20
  };
  rows[0].metrics.condition = 1e12;  // above condition_high = 1e11
  rows[0].metrics.near_zero_share = 0.1;
  rows[1].metrics.condition = 10.0;
  rows[1].metrics.near_zero_share = 0.9;
  rows[2].metrics.near_zero_share = 1.0;
  rows[3].metrics.symmetry = 0.9;
  rows[3].metrics.negative_share = 0.4;
  rows[4].metrics.symmetry = 0.9;
  rows[4].metrics.negative_share = 0.4;
  rows[6].metrics.lambda_max = 25.0;
  e.observe_curvature(100, rows, 0.1);
  auto all = e.take_rows();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all[0]["rule"], "ill_conditioned");
  EXPECT_EQ(all[0]["layer"], 0);
  EXPECT_EQ(all[0]["kind"], "loss");
  EXPECT_EQ(all[1]["rule"], "spectrum_at_zero");
  EXPECT_EQ(all[1]["layer"], 2);
  EXPECT_EQ(all[2]["rule"], "saddle");
  EXPECT_EQ(all[2]["layer"], 4);
  EXPECT_EQ(all[3]["rule"], "sharpness_edge");
  EXPECT_TRUE(all[3]["layer"].is_null());
  EXPECT_DOUBLE_EQ(all[3]["threshold"].get<double>(), 20.0);
  // Same rows again: still in the alarm state, nothing new.
  e.observe_curvature(200, rows, 0.1);
  EXPECT_TRUE(e.take_rows().empty());
  // A smaller learning rate raises the limit: the state clears, no alarm.
  e.observe_curvature(300, {rows[6]}, 0.01);
  EXPECT_TRUE(e.take_rows().empty());
}

TEST(Alarms, SharpnessLimitPerOptimiser) {
  OptimConfig o;
  bool pre = true;
  o.name = cn::OptimKind::sgd;
  EXPECT_DOUBLE_EQ(sharpness_limit(o, 0.1, &pre), 20.0);
  EXPECT_FALSE(pre);
  o.name = cn::OptimKind::momentum;
  o.momentum = 0.9;
  EXPECT_DOUBLE_EQ(sharpness_limit(o, 0.1, &pre), 38.0);
  EXPECT_FALSE(pre);
  o.name = cn::OptimKind::nesterov;
  EXPECT_DOUBLE_EQ(sharpness_limit(o, 0.1, &pre), 3.8 / (2.8 * 0.1));
  o.name = cn::OptimKind::adam;
  o.beta1 = 0.9;
  EXPECT_NEAR(sharpness_limit(o, 0.01, &pre), 3800.0, 1e-9);
  EXPECT_TRUE(pre);
  o.name = cn::OptimKind::rmsprop;
  EXPECT_DOUBLE_EQ(sharpness_limit(o, 0.01, &pre), 200.0);
  EXPECT_TRUE(pre);
  // Adaptive optimisers compare the preconditioned λmax; the raw one is ignored.
  AlarmsConfig c;
  o.name = cn::OptimKind::adam;
  AlarmEngine e(c, o);
  CurvatureObservation top = curv(-1, CurvatureKind::full_top);
  top.metrics.lambda_max = 1e6;
  e.observe_curvature(0, {top}, 0.01);
  EXPECT_TRUE(e.take_rows().empty());
  top.preconditioned_lambda_max = 4000.0;
  e.observe_curvature(1, {top}, 0.01);
  auto rows = e.take_rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["rule"], "sharpness_edge");
  EXPECT_DOUBLE_EQ(rows[0]["value"].get<double>(), 4000.0);
}

TEST(Alarms, NonfiniteRowAndSummary) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  e.observe_step(3, 500);
  e.observe_step(4, 1);
  e.observe_step(5, 600);
  auto net = healthy_net();
  net[2].grad_l2 = 300;
  e.observe_logged(9, 2.0, 1.0, net);
  e.report_nonfinite(11, 2, "backward", "2.weight.grad", std::nan(""), "msg");
  auto rows = e.take_rows();
  ASSERT_EQ(rows.size(), 4u);
  // Per-step events come first, in step order, with their own step.
  EXPECT_EQ(rows[0]["step"], 3);
  EXPECT_EQ(rows[1]["step"], 5);
  EXPECT_EQ(rows[3]["rule"], "nonfinite");
  EXPECT_TRUE(rows[3]["value"].is_null());
  EXPECT_EQ(rows[3]["value_status"], "nan");
  EXPECT_TRUE(rows[3]["threshold"].is_null());
  EXPECT_EQ(rows[3]["pass"], "backward");
  EXPECT_EQ(rows[3]["tensor"], "2.weight.grad");
  for (const auto& r : rows)
    for (const char* k : {"step", "layer", "rule", "value", "threshold", "message"}) EXPECT_TRUE(r.contains(k)) << k;
  const std::string summary = e.summary();
  EXPECT_EQ(summary.substr(0, summary.find('\n')),
            "4 \u2014 grad_explosion \u00d73 (layer 4), nonfinite \u00d71 (layer 2)");
  const std::vector<std::string> advice = {
      std::string("try for grad_explosion: ") + alarm_rule_advice(AlarmRule::grad_explosion),
      std::string("try for nonfinite: ") + alarm_rule_advice(AlarmRule::nonfinite)};
  EXPECT_EQ(e.advice_lines(), advice);
  EXPECT_NE(summary.find("\n  " + advice[1]), std::string::npos);
}

// Linear layers 0, 2, 4, 6 (6 the output layer) with weight-gradient norms g.
std::vector<LayerObservation> linear_net(const std::vector<double>& g) {
  std::vector<LayerObservation> net;
  for (size_t i = 0; i < g.size(); ++i) {
    LayerObservation o = healthy(static_cast<int64_t>(2 * i));
    o.linear = true;
    o.grad_l2 = g[i];
    net.push_back(o);
  }
  return net;
}

TEST(Alarms, VanishingAndExplodingByDepthNameTheLayers) {
  AlarmsConfig c;
  {  // a 2,000x fall from the last layer to the first (the deep-sigmoid failure)
    AlarmEngine e(c, sgd());
    e.observe_logged(10, 2.3, 0.3, linear_net({1.5e-4, 2e-3, 0.05, 0.3}));
    auto rows = rows_of(e, "vanishing_by_depth");
    ASSERT_EQ(rows.size(), 2u);
    EXPECT_EQ(rows[0]["layer"], 0);
    EXPECT_EQ(rows[1]["layer"], 2);
    EXPECT_NEAR(rows[0]["value"].get<double>(), 5e-4, 1e-12);
    EXPECT_EQ(rows[0]["reference_layer"], 6);
    // Transitions: the same state does not fire again; frozen_layer and grad_vanishing
    // (gradient 1.5e-4 > 1e-4 here anyway) stay quiet behind the cause.
    e.observe_logged(20, 2.3, 0.005, linear_net({5e-5, 2e-3, 0.05, 0.3}));
    for (auto& r : e.take_rows()) ADD_FAILURE() << r.dump();
  }
  {
    AlarmEngine e(c, sgd());
    e.observe_logged(10, 2.3, 1.0, linear_net({80.0, 3.0, 0.6, 0.5}));
    auto rows = rows_of(e, "exploding_by_depth");
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["layer"], 0);
    EXPECT_NEAR(rows[0]["value"].get<double>(), 160.0, 1e-9);
  }
  {  // within two decades either way: quiet; a zero last-layer gradient: not evaluated
    AlarmEngine e(c, sgd());
    e.observe_logged(10, 2.3, 1.0, linear_net({0.02, 0.5, 10.0, 0.5}));
    e.observe_logged(20, 2.0, 1.0, linear_net({0.5, 0.5, 0.5, 0.0}));
    EXPECT_TRUE(rows_of(e, "vanishing_by_depth").empty());
  }
}

TEST(Alarms, LossPlateauAfterNLoggedStepsWithinDelta) {
  AlarmsConfig c;
  c.plateau_steps = 5;
  AlarmEngine e(c, sgd());
  for (int k = 0; k < 8; ++k) e.observe_logged(10 * (k + 1), 2.3 * (1 + 0.02 * std::sin(k)), 1.0, healthy_net());
  auto rows = rows_of(e, "loss_plateau");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["step"], 50);  // the 5th logged step, the first one counted
  EXPECT_TRUE(rows[0]["layer"].is_null());
  EXPECT_EQ(rows[0]["logged_steps"], 5);
  // threshold = the initial level (mean of the first ceil(5/2) = 3 losses), value = the mean
  // of the last 3.
  auto L = [](int k) { return 2.3 * (1 + 0.02 * std::sin(k)); };
  EXPECT_NEAR(rows[0]["threshold"].get<double>(), (L(0) + L(1) + L(2)) / 3, 1e-12);
  EXPECT_NEAR(rows[0]["value"].get<double>(), (L(2) + L(3) + L(4)) / 3, 1e-12);
  AlarmEngine learning(c, sgd());
  double loss = 2.3;
  for (int k = 0; k < 20; ++k) learning.observe_logged(10 * k, loss *= 0.97, 1.0, healthy_net());
  EXPECT_TRUE(rows_of(learning, "loss_plateau").empty());
}

TEST(Alarms, AfterAnExplosionTheConsequencesAreHeldUntilTheLossRecovers) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  e.observe_logged(10, 2.3, 1.0, healthy_net());
  e.observe_logged(20, 1.0, 1.0, healthy_net());
  e.observe_step(23, 1e4);  // explosion; then huge weights and dead units, the norm back below
  e.observe_step(24, 1.0);
  auto broken = healthy_net();
  broken[0].weight_rms = 1e3;
  broken[1].dead_share = 1.0;
  e.observe_logged(30, 2.3, 1.0, broken);
  e.observe_logged(40, 2.3, 1.0, broken);
  auto rows = e.take_rows();
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["rule"], "grad_explosion");
  // 1.4 is within (1 + 0.5) x the best loss before the explosion (1.0) but still above half
  // the first logged loss (2.3): not recovered; nor is 1.1 while the weights are blown up.
  e.observe_logged(50, 1.4, 1.0, healthy_net());
  e.observe_logged(60, 1.1, 1.0, broken);
  EXPECT_EQ(e.take_rows(), std::vector<json>{});
  // Loss back and no damage left: the rules speak again.
  auto fast = healthy_net();
  fast[2].update_ratio = 0.5;
  e.observe_logged(70, 1.1, 1.0, fast);
  EXPECT_EQ(rows_of(e, "update_ratio").size(), 1u);
}

TEST(Alarms, LossSpikeNeedsTheAbsoluteFloor) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  const double losses[] = {2.3, 0.5, 0.1, 0.025, 0.039, 0.03, 0.4};
  for (int k = 0; k < 7; ++k) e.observe_logged(10 * k, losses[k], 1.0, healthy_net());
  auto rows = rows_of(e, "loss_spike");
  ASSERT_EQ(rows.size(), 1u);  // 0.039 vs 0.025 is +56% but only 0.014: no spike; 0.4 is one
  EXPECT_EQ(rows[0]["step"], 60);
  EXPECT_NEAR(rows[0]["threshold"].get<double>(), 0.125, 1e-12);
}

TEST(Alarms, FrozenLayerByUpdateRatioOnlyWhileOthersMove) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  auto net = healthy_net();
  net[1].update_ratio = 0;  // lr_scale = 0: the gradient is there, the weights do not move
  e.observe_logged(10, 2.3, 1.0, net);
  auto rows = rows_of(e, "frozen_layer");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["layer"], 2);
  EXPECT_EQ(rows[0]["statistic"], "update_ratio");
  AlarmEngine all(c, sgd());  // lr = 0: nothing moves, no layer is frozen relative to the rest
  net = healthy_net();
  for (auto& o : net) o.update_ratio = 0;
  all.observe_logged(10, 2.3, 1.0, net);
  EXPECT_TRUE(rows_of(all, "frozen_layer").empty());
}

TEST(Alarms, SymmetricUnitsOnHiddenLayersHoldTheSymptoms) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  auto net = linear_net({0.0, 0.0, 0.0, 0.3});
  net[0].unit_spread = 0.0;
  net[1].unit_spread = 0.0;
  net[2].unit_spread = 0.7;  // random rows
  for (int k = 0; k < 15; ++k) e.observe_logged(10 * (k + 1), 2.3, 0.3, net);
  auto rows = e.take_rows();
  ASSERT_EQ(rows.size(), 2u);  // no frozen_layer (zero gradients), loss_plateau or vanishing_by_depth
  EXPECT_EQ(rows[0]["rule"], "symmetric_units");
  EXPECT_EQ(rows[0]["layer"], 0);
  EXPECT_EQ(rows[1]["layer"], 2);
  EXPECT_EQ(rows[0]["step"], 10);
}

TEST(Alarms, SignalCollapseAtTheFirstObservationOnly) {
  AlarmsConfig c;
  auto acts = [](double ratio) {
    std::vector<LayerObservation> net;
    double v = 1.0;
    for (int i = 0; i < 5; ++i, v *= ratio) {
      LayerObservation o;
      o.layer = 2 * i + 1;
      o.pre_act_var = v;
      net.push_back(o);
    }
    return net;
  };
  AlarmEngine e(c, sgd());
  e.observe_logged(0, 2.3, 1.0, acts(1.0 / 3.0));
  auto rows = rows_of(e, "signal_collapse");
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0]["layer"], 9);
  EXPECT_NEAR(rows[0]["value"].get<double>(), 1.0 / 3.0, 1e-12);
  EXPECT_EQ(rows[0]["first_layer"], 1);
  AlarmEngine later(c, sgd());
  later.observe_logged(0, 2.3, 1.0, acts(0.8));   // holds well enough at initialisation
  later.observe_logged(10, 2.2, 1.0, acts(0.1));  // a later change is not the initialisation's
  EXPECT_TRUE(rows_of(later, "signal_collapse").empty());
}

TEST(Alarms, EveryRowCarriesItsRulesAdvice) {
  for (int r = 0; r < kAlarmRuleCount; ++r) {
    EXPECT_EQ(kAlarmAdvice[r].rule, static_cast<AlarmRule>(r)) << "advice table out of rule order";
    EXPECT_GT(std::string(kAlarmAdvice[r].text).size(), 20u);
  }
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  e.observe_step(1, 1e3);
  auto net = healthy_net();
  net[0].dead_share = 1.0;
  e.observe_logged(10, 2.3, 1.0, net);
  e.report_nonfinite(11, 0, "forward", "output", std::nan(""), "m");
  auto rows = e.take_rows();
  ASSERT_GE(rows.size(), 2u);
  for (const auto& row : rows)
    EXPECT_EQ(row["advice"], alarm_rule_advice(*find_enum(kAlarmRules, row["rule"].get<std::string>())));
}

TEST(Alarms, StateRestoreRaisesExactlyTheUninterruptedAlarms) {
  AlarmsConfig c;
  c.plateau_steps = 6;
  // A run whose later alarms depend on the plateau counter, the checked initialisation, the
  // loss window, the outlier histories and the active states.
  auto observe = [](AlarmEngine& e, int k) {
    auto net = linear_net({0.3, 0.3, 0.3, 0.3});
    for (auto& o : net) o.pre_act_var = std::pow(0.3, o.layer / 2);  // collapse at k = 0 only
    if (k >= 12) net[1].grad_rel *= 100;                             // an outlier at k = 12
    if (k >= 9) net[0].grad_l2 = 1e-3;                               // vanishing from k = 9
    const double loss = k < 10 ? 2.3 : (k == 14 ? 3.0 : 1.0);
    e.observe_step(10 * k, 1.0);
    e.observe_logged(10 * k, loss, 1.0, net);
  };
  AlarmEngine whole(c, sgd());
  std::vector<json> expected;
  for (int k = 0; k < 16; ++k) {
    observe(whole, k);
    for (auto& r : whole.take_rows()) expected.push_back(r);
  }
  ASSERT_GE(expected.size(), 2u);
  for (int cut = 1; cut < 16; ++cut) {
    SCOPED_TRACE(cut);
    AlarmEngine first(c, sgd());
    std::vector<json> got;
    for (int k = 0; k < cut; ++k) {
      observe(first, k);
      for (auto& r : first.take_rows()) got.push_back(r);
    }
    AlarmEngine resumed(c, sgd());
    resumed.restore(json::parse(first.state().dump()));
    for (int k = cut; k < 16; ++k) {
      observe(resumed, k);
      for (auto& r : resumed.take_rows()) got.push_back(r);
    }
    EXPECT_EQ(got, expected);
    EXPECT_EQ(resumed.summary(), whole.summary());
  }
}

// A state saved before the newer rules existed (fewer per-rule counts, no plateau or
// divergence keys) resumes with those at their fresh values; one with more rules than this
// build knows is refused.
TEST(Alarms, StateFromFewerRulesRestores) {
  AlarmsConfig c;
  AlarmEngine e(c, sgd());
  for (int s = 0; s < 4; ++s) e.observe_step(s, s == 2 ? 500.0 : 1.0);
  e.take_rows();
  nlohmann::json old = e.state();
  for (const char* key :
       {"diverged", "recover_loss", "best_loss", "plateau_count", "plateau_first", "plateau_recent", "signal_checked"})
    old.erase(key);
  old["by_rule"] = std::vector<int64_t>(old["by_rule"].begin(), old["by_rule"].begin() + 14);
  old["layers_by_rule"] =
      std::vector<nlohmann::json>(old["layers_by_rule"].begin(), old["layers_by_rule"].begin() + 14);
  AlarmEngine resumed(c, sgd());
  resumed.restore(old);
  EXPECT_EQ(resumed.count(AlarmRule::grad_explosion), 1);
  EXPECT_EQ(resumed.count(), 1);
  nlohmann::json future = e.state();
  future["by_rule"].push_back(0);
  future["layers_by_rule"].push_back(nlohmann::json::array());
  EXPECT_THROW(resumed.restore(future), nlohmann::json::exception);
}

TEST(Alarms, UnitSpreadClosedForms) {
  const double same[] = {1, 2, 3, 1, 2, 3}, bias_same[] = {0.5, 0.5};
  EXPECT_EQ(unit_spread(same, bias_same, 2, 3), 0.0);
  const double zeros[6] = {};
  EXPECT_EQ(unit_spread(zeros, zeros, 2, 3), 0.0);
  // rows (1, 0) and (−1, 0): mean 0, every entry is deviation: spread 1.
  const double opposite[] = {1, 0, -1, 0};
  EXPECT_DOUBLE_EQ(unit_spread(opposite, static_cast<const double*>(nullptr), 2, 2), 1.0);
  // rows (1, 1) and (1, 3) with biases 0, 0: mean (1, 2, 0), deviation² 2, total 12.
  const double w[] = {1, 1, 1, 3}, b[] = {0, 0};
  EXPECT_DOUBLE_EQ(unit_spread(w, b, 2, 2), std::sqrt(2.0 / 12.0));
}

TEST(Alarms, ConfigKeysParseAndRoundTrip) {
  const Config c = parse_config(
      "[alarms]\nloss_spike_delta = 0.25\nloss_spike_window = 4\ndead_window = 3\nsaturation_high = 0.7\n"
      "condition_high = 0\nsharpness_fraction = 0.9\nplateau_steps = 7\nloss_spike_floor = 0.2\n"
      "depth_ratio_low = 1e-3\ncollapse_factor = 0.25\nunit_spread_low = 1e-4\n",
      "test.toml");
  EXPECT_DOUBLE_EQ(c.alarms.loss_spike_delta, 0.25);
  EXPECT_EQ(c.alarms.loss_spike_window, 4);
  EXPECT_EQ(c.alarms.dead_window, 3);
  EXPECT_DOUBLE_EQ(c.alarms.saturation_high, 0.7);
  EXPECT_DOUBLE_EQ(c.alarms.condition_high, 0.0);
  EXPECT_DOUBLE_EQ(c.alarms.sharpness_fraction, 0.9);
  EXPECT_EQ(c.alarms.plateau_steps, 7);
  EXPECT_DOUBLE_EQ(c.alarms.loss_spike_floor, 0.2);
  EXPECT_DOUBLE_EQ(c.alarms.depth_ratio_low, 1e-3);
  EXPECT_DOUBLE_EQ(c.alarms.collapse_factor, 0.25);
  EXPECT_DOUBLE_EQ(c.alarms.unit_spread_low, 1e-4);
  const Config back = parse_config(to_toml(c), "back.toml");
  EXPECT_TRUE(config_differences(c, back).empty());
  EXPECT_THROW(parse_config("[alarms]\nloss_spike_window = 0\n", "bad.toml"), std::exception);
  EXPECT_THROW(parse_config("[alarms]\ndead_share_high = 2\n", "bad.toml"), std::exception);
  EXPECT_THROW(parse_config("[alarms]\ncollapse_factor = 1.5\n", "bad.toml"), std::exception);
  EXPECT_THROW(parse_config("[alarms]\nplateau_steps = 0\n", "bad.toml"), std::exception);
}

}  // namespace
}  // namespace cn
