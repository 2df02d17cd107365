// Growth in training (docs/capacity.md, "Growth"): the widened model computes what it did,
// the new units' pre-activations are the given rows, the optimiser state is carried by
// element with per-element step counts (checked against Adam written out by hand), a
// resume after growth is bit-identical, and a 2-unit student grows to the teacher's loss.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "layers/model.h"
#include "optim/optimizer.h"
#include "quiet_run.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/growth.h"
#include "train/trainer.h"

using namespace cn;
using json = nlohmann::json;

namespace {

std::vector<json> rows_of(const std::string& path) {
  std::vector<json> rows;
  std::istringstream in(test::read_text(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) rows.push_back(json::parse(line));
  return rows;
}

// A 3 -> 2 (tanh) -> 2 network with fixed parameters.
std::unique_ptr<Sequential<double>> tiny() {
  auto m = std::make_unique<Sequential<double>>(
      std::vector<LayerSpec>{test::L("linear", 2), test::L("tanh"), test::L("linear", 2)}, 3);
  const std::vector<double> p = {0.5, -0.2, 0.1, 0.3, 0.8, -0.6, 0.05, -0.1,  // layer 0: W (2x3), b
                                 1.0, -2.0, 0.5, 0.7, 0.2, -0.3};             // layer 2: W (2x2), b
  std::copy(p.begin(), p.end(), m->params().data());
  m->reserve(4);
  return m;
}

}  // namespace

TEST(Growth, NewUnitsComputeTheirRowsAndLeaveTheOutputUnchanged) {
  auto m = tiny();
  const std::vector<double> x = {1.0, 2.0, -1.0, 0.5, -0.5, 2.0};  // 2 samples
  PassCtx c;
  c.training = false;
  const double* y = m->forward(c, x.data(), 2);
  const std::vector<double> before(y, y + 4);
  const std::vector<double> w_in = {0.2, 0.4, -1.0}, b_in = {0.3};
  std::vector<int64_t> source;
  auto g = widened_model(*m, 0, w_in, b_in, &source);
  g->reserve(4);
  ASSERT_EQ(g->layer(0).out_features(), 3);
  ASSERT_EQ(g->layout().total, 3 * 3 + 3 + 2 * 3 + 2);
  const double* y2 = g->forward(c, x.data(), 2);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y2[i], before[i]) << i;
  // The new unit's pre-activation: sample 0: 0.2·1 + 0.4·2 − 1·(−1) + 0.3 = 2.3;
  // sample 1: 0.2·0.5 − 0.4·0.5 − 1·2 + 0.3 = −1.8.
  EXPECT_NEAR(g->layer_output(0)[0 * 3 + 2], 2.3, 1e-15);
  EXPECT_NEAR(g->layer_output(0)[1 * 3 + 2], -1.8, 1e-15);
  EXPECT_NEAR(g->layer_output(1)[0 * 3 + 2], std::tanh(2.3), 1e-15);
  // The old units keep theirs: unit 0 of sample 0 = 0.5 − 0.4 − 0.1 + 0.05.
  EXPECT_NEAR(g->layer_output(0)[0], 0.05, 1e-15);
  // The next layer's new column is zero; its old entries moved by element.
  const double* p = g->params().data();
  EXPECT_EQ(p[12 + 0 * 3 + 2], 0.0);
  EXPECT_EQ(p[12 + 1 * 3 + 2], 0.0);
  EXPECT_EQ(p[12 + 1 * 3 + 0], 0.5);
  EXPECT_EQ(source[12 + 1 * 3 + 0], 8 + 1 * 2 + 0);
  EXPECT_EQ(source[2], 2);
  EXPECT_EQ(source[6], -1);   // new row of W0
  EXPECT_EQ(source[11], -1);  // new bias
}

// Adam after a relayout: the old elements go on with their moments and step count; the
// new element's first update is Adam's first step, lr·g/(|g| + eps) (m̂ = g, v̂ = g²), not
// the zero-padded moments bias-corrected by the global step (3.1× larger at t = 3001).
TEST(Growth, AdamStateIsCarriedByElementWithItsOwnStepCount) {
  OptimConfig oc;
  oc.name = OptimKind::adam;
  oc.lr = 0.1;
  ParamLayout L1;
  L1.segments = {{"0.weight", 0, 0, 2, 1, false}};
  L1.total = 2;
  auto opt = make_optimizer<double>(oc, L1);
  std::vector<double> p = {1.0, -1.0};
  const std::vector<double> g1 = {0.3, -0.2};
  // The same updates by hand (torch.optim.Adam, t = 1..).
  double m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, q[3] = {1.0, -1.0, 0.0};
  auto adam_by_hand = [&](int i, double g, int t) {
    m[i] = 0.9 * m[i] + 0.1 * g;
    v[i] = 0.999 * v[i] + 0.001 * g * g;
    const double mh = m[i] / (1 - std::pow(0.9, t)), vh = v[i] / (1 - std::pow(0.999, t));
    q[i] -= 0.1 * mh / (std::sqrt(vh) + 1e-8);
  };
  for (int s = 0; s < 3000; ++s) {
    opt->step(p.data(), g1.data(), 0.1, s);
    for (int i = 0; i < 2; ++i) adam_by_hand(i, g1[i], s + 1);
  }
  ParamLayout L2;
  L2.segments = {{"0.weight", 0, 0, 3, 1, false}};
  L2.total = 3;
  opt->relayout(L2, {0, 1, -1}, 3000);
  p.push_back(0.0);
  bool has_birth = false;
  for (auto& [name, buf] : opt->state()) {
    ASSERT_EQ(buf->size(), 3u) << name;
    if (name == "exp_avg") EXPECT_NEAR((*buf)[0], m[0], 1e-15);
    if (name == "exp_avg") EXPECT_EQ((*buf)[2], 0.0);
    if (name == "step_birth") {
      has_birth = true;
      EXPECT_EQ((*buf)[0], 0.0);
      EXPECT_EQ((*buf)[2], 3000.0);
    }
  }
  EXPECT_TRUE(has_birth);
  const std::vector<double> g2 = {0.3, -0.2, 0.05};
  opt->step(p.data(), g2.data(), 0.1, 3000);
  adam_by_hand(0, g2[0], 3001);
  adam_by_hand(1, g2[1], 3001);
  adam_by_hand(2, g2[2], 1);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p[i], q[i], 1e-13 * std::max(1.0, std::abs(q[i]))) << i;
  EXPECT_NEAR(p[2], -0.1 * 0.05 / (0.05 + 1e-8), 1e-14);
  // What a global step count would have given: m̂ = 0.1 g / (1 − 0.9^3001), v̂ = 0.001 g² / (1 − 0.999^3001).
  const double global = 0.1 * (0.1 * 0.05 / (1 - std::pow(0.9, 3001))) /
                        (std::sqrt(0.001 * 0.05 * 0.05 / (1 - std::pow(0.999, 3001))) + 1e-8);
  EXPECT_GT(global / std::abs(p[2]), 3.0);
}

TEST(Growth, NadamIsRefusedAndLayersAreChecked) {
  EXPECT_THROW(parse_config("[optim]\nname = \"nadam\"\n[growth]\nenabled = true\n", "g.toml"), InputError);
  GrowthConfig g;
  g.layers = {1};
  const std::vector<LayerSpec> specs = {test::L("linear", 4), test::L("relu"), test::L("linear", 2)};
  EXPECT_THROW(growable_layers(g, specs), InputError);
  g.layers = {};
  EXPECT_EQ(growable_layers(g, specs), std::vector<size_t>{0});
}

namespace {

Config teacher_growth(int64_t steps, const std::string& init = "highest_loss") {
  return parse_config(R"(
[data]
dataset = "teacher"
teacher_hidden = 8
batch_size = 64
n_samples = 2000
noise = 0.05
[model]
hidden = [2]
activation = "tanh"
init = "xavier_normal"
[loss]
kind = "mse"
[optim]
name = "adam"
lr = 1e-2
[train]
device = "cpu"
eval_every = 25
log_every = 25
steps = )" + std::to_string(steps) +
                          R"(
[checkpoint]
every = 100
[growth]
enabled = true
units = 2
max_width = 16
patience = 3
init = ")" + init + "\"\n",
                      "grow.toml");
}

}  // namespace

TEST(Growth, ResumeAfterGrowthIsBitIdentical) {
  for (const char* init : {"highest_loss", "random_restart"}) {
    test::TempDir tmp;
    const Config c = teacher_growth(900, init);
    train(c, quiet(tmp.file("full")));
    const auto events = rows_of(tmp.file("full") + "/growth.jsonl");
    ASSERT_GE(events.size(), 2u) << init;
    const int64_t first = events[0]["step"].get<int64_t>();
    // Stopped after the first growth, resumed to the end.
    TrainOptions o = quiet(tmp.file("cut"));
    const int64_t stop = (first / 100 + 1) * 100;
    o.should_stop = [stop](int64_t s) { return s == stop; };
    ASSERT_TRUE(train(c, o).interrupted);
    TrainOptions r = quiet("");
    r.resume_dir = tmp.file("cut");
    train(c, r);
    EXPECT_EQ(test::final_params(tmp.file("full")), test::final_params(tmp.file("cut"))) << init;
    EXPECT_EQ(rows_of(tmp.file("full") + "/growth.jsonl"), rows_of(tmp.file("cut") + "/growth.jsonl")) << init;
    EXPECT_EQ(rows_of(tmp.file("full") + "/eval.jsonl"), rows_of(tmp.file("cut") + "/eval.jsonl")) << init;
  }
}

// The planted case: an 8-unit teacher with target noise 0.05 (the teacher's own loss is the
// noise variance, 0.0025). A 2-unit student alone stalls far above it; growing from 2 units
// reaches it within 40%.
TEST(Growth, TwoUnitStudentGrowsToTheTeachersLoss) {
  test::TempDir tmp;
  Config fixed = teacher_growth(1500);
  fixed.growth.enabled = false;
  const double stalled = train(fixed, quiet(tmp.file("fixed"))).final_eval["loss"].get<double>();
  const Config c = teacher_growth(1500);
  const double grown = train(c, quiet(tmp.file("grown"))).final_eval["loss"].get<double>();
  const double teacher = 0.05 * 0.05;
  EXPECT_GT(stalled, 2.0 * teacher);
  EXPECT_LT(grown, 1.4 * teacher);
  EXPECT_GE(rows_of(tmp.file("grown") + "/growth.jsonl").size(), 3u);
  // The grown run's checkpoint evaluates to what the run logged (the model widened first).
  json last_val;
  for (const json& r : rows_of(tmp.file("grown") + "/eval.jsonl"))
    if (r["split"] == "val") last_val = r;
  EXPECT_EQ(evaluate_checkpoint(tmp.file("grown"), "val", "cpu")["loss"], last_val["loss"]);
  // `curvnet hessian` on it sees the grown width: layer 0's block covers (inputs + 1) x units.
  const int64_t width = rows_of(tmp.file("grown") + "/growth.jsonl").back()["to"].get<int64_t>();
  HessianOptions ho;
  ho.kinds = {CurvatureKind::loss};
  ho.layers = {0};
  ho.device = "cpu";
  const CurvatureOutput out = checkpoint_curvature(tmp.file("grown"), ho);
  ASSERT_EQ(out.rows.size(), 1u);
  EXPECT_EQ(out.rows[0]["n_params"].get<int64_t>(), (10 + 1) * width);
}
