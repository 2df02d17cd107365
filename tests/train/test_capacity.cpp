// Ablation and verdicts (docs/capacity.md) on planted teacher-student cases: the least-squares
// bridge against a planted affine map, per-unit ablation against the network evaluated by hand
// from the checkpoint's tensors, and the verdicts "too many" (64 units for an 8-unit teacher),
// "too few" (2 units) and "redundant" (an inserted affine layer, ablation cost < 1%).
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "config/config.h"
#include "data/dataset.h"
#include "quiet_run.h"
#include "test_util.h"
#include "train/ablation.h"
#include "train/checkpoint.h"
#include "train/trainer.h"
#include "train/verdict.h"

using namespace cn;
using json = nlohmann::json;

namespace {

// The planted teacher (8 tanh units, noise 0.05) and a student described by `model`.
Config student(const std::string& model, int64_t steps = 1500) {
  return parse_config(R"(
[data]
dataset = "teacher"
teacher_hidden = 8
batch_size = 64
n_samples = 2000
noise = 0.05
[loss]
kind = "mse"
[optim]
name = "adam"
lr = 1e-2
[train]
device = "cpu"
dtype = "float64"
eval_every = 25
log_every = 25
steps = )" + std::to_string(steps) +
                          "\n" + model,
                      "student.toml");
}

std::vector<std::string> kinds_of(const json& v, int64_t layer) {
  std::vector<std::string> out;
  for (const json& l : v["layers"])
    if (l["layer"].get<int64_t>() == layer)
      for (const json& x : l["verdicts"]) out.push_back(x["kind"]);
  return out;
}

bool has(const std::vector<std::string>& v, const std::string& k) {
  return std::find(v.begin(), v.end(), k) != v.end();
}

}  // namespace

TEST(Capacity, BridgeRecoversAPlantedAffineMap) {
  const int64_t N = 50, a = 3, b = 2;
  const std::vector<double> x = test::random_vec(N * a, 7);
  const double B0[6] = {0.5, -1.0, 2.0, 0.25, 0.0, -0.75}, c0[2] = {0.1, -0.3};
  std::vector<double> y(N * b);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t j = 0; j < b; ++j) {
      y[n * b + j] = c0[j];
      for (int64_t i = 0; i < a; ++i) y[n * b + j] += B0[j * a + i] * x[n * a + i];
    }
  std::vector<double> B, c;
  fit_affine(x, y, N, a, b, &B, &c);
  for (int k = 0; k < 6; ++k) EXPECT_NEAR(B[k], B0[k], 1e-8) << k;
  for (int k = 0; k < 2; ++k) EXPECT_NEAR(c[k], c0[k], 1e-8) << k;
}

// 64 units for an 8-unit teacher: too many; 2 units: too few; each unit's ablation of the
// 2-unit student equals the loss of the network evaluated by hand without that unit.
TEST(Capacity, PlantedWidthsGiveTooManyAndTooFew) {
  test::TempDir tmp;
  train(student("[model]\nhidden = [64]\nactivation = \"tanh\"\ninit = \"xavier_normal\"\n"), quiet(tmp.file("wide")));
  const json wide = run_verdicts(tmp.file("wide"));
  EXPECT_TRUE(has(kinds_of(wide, 0), "too_many")) << wide.dump();
  EXPECT_FALSE(has(kinds_of(wide, 0), "too_few"));

  const Config narrow = student("[model]\nhidden = [2]\nactivation = \"tanh\"\ninit = \"xavier_normal\"\n");
  train(narrow, quiet(tmp.file("narrow")));
  const json v = run_verdicts(tmp.file("narrow"));
  EXPECT_TRUE(has(kinds_of(v, 0), "too_few")) << v.dump();
  EXPECT_FALSE(has(kinds_of(v, 0), "too_many"));

  AblationOptions o;
  o.layer = 0;
  o.whole_layers = false;
  const std::vector<json> rows = ablate_run(tmp.file("narrow"), o);
  ASSERT_EQ(rows.size(), 2u);
  const auto t = test::last_checkpoint_tensors(tmp.file("narrow"));
  const std::vector<double>&W0 = t.at("0.weight"), &b0 = t.at("0.bias"), &W2 = t.at("2.weight"), &b2 = t.at("2.bias");
  const Splits s = load_splits(narrow.data, narrow.train.seed);
  for (int64_t cut = -1; cut < 2; ++cut) {
    double loss = 0;
    for (int64_t n = 0; n < s.val.n; ++n) {
      double z = b2[0];
      for (int64_t u = 0; u < 2; ++u) {
        if (u == cut) continue;
        double a = b0[u];
        for (int64_t i = 0; i < 10; ++i) a += W0[u * 10 + i] * s.val.x[n * 10 + i];
        z += W2[u] * std::tanh(a);
      }
      loss += (z - s.val.y[n]) * (z - s.val.y[n]) / static_cast<double>(s.val.n);
    }
    if (cut < 0)
      EXPECT_NEAR(rows[0]["base_loss"].get<double>(), loss, 1e-12 * loss);
    else
      EXPECT_NEAR(rows[cut]["removed_loss"].get<double>(), loss, 1e-12 * loss) << cut;
  }
}

// An inserted affine layer (Linear 8 -> 16 with no activation before the head) is redundant:
// the bridge folds it into the head and the loss changes by less than 1%; the hidden tanh
// layer is not.
TEST(Capacity, InsertedLayerIsRedundant) {
  test::TempDir tmp;
  train(student(R"([model]
init = "xavier_normal"
[[model.layers]]
type = "linear"
out = 8
[[model.layers]]
type = "tanh"
[[model.layers]]
type = "linear"
out = 16
[[model.layers]]
type = "linear"
out = 1
)",
                800),
        quiet(tmp.file("run")));
  AblationOptions o;
  o.finetune = 50;
  const std::vector<json> rows = ablate_run(tmp.file("run"), o);
  ASSERT_EQ(rows.size(), 2u);
  EXPECT_EQ(rows[1]["layer"], 2);
  EXPECT_EQ(rows[1]["method"], "bridge");
  EXPECT_LT(std::abs(rows[1]["rel_delta_remove"].get<double>()), 0.01);
  EXPECT_GT(rows[0]["rel_delta_remove"].get<double>(), 0.1);
  EXPECT_TRUE(rows[1].contains("finetuned_loss"));
  const json v = run_verdicts(tmp.file("run"));
  EXPECT_TRUE(has(kinds_of(v, 2), "redundant")) << v.dump();
  EXPECT_FALSE(has(kinds_of(v, 0), "redundant"));
  // The commands: verdicts.json and the report's capacity section; ablation.jsonl; bad input.
  const std::string run = tmp.file("run"), exe = test::curvnet_exe();
  ASSERT_EQ(test::run_command("OMP_NUM_THREADS=1 " + exe + " verdict " + run + " --json > /dev/null"), 0);
  const json written = json::parse(test::read_text(run + "/verdicts.json"));
  for (int64_t layer : {0, 2, 3}) EXPECT_EQ(kinds_of(written, layer), kinds_of(v, layer)) << layer;
  const std::string html = test::read_text(run + "/report.html");
  EXPECT_NE(html.find("data-section=\"capacity\""), std::string::npos);
  EXPECT_NE(html.find("redundant"), std::string::npos);
  ASSERT_EQ(test::run_command("OMP_NUM_THREADS=1 " + exe + " ablate " + run + " --layer 0 > /dev/null"), 0);
  EXPECT_EQ(test::read_text(run + "/ablation.jsonl").find("\"kind\":\"unit\"") != std::string::npos, true);
  EXPECT_EQ(test::run_command(exe + " ablate " + run + " --layer 1 2> /dev/null"), 2);
}

// Problem layers come from the doctor's alarms on the block's layers: all-zero weights
// (symmetric units from step 0) → fix the initialisation; a frozen layer → frozen.
TEST(Capacity, AlarmsGiveProblemVerdicts) {
  test::TempDir tmp;
  const std::string dir = std::string(CURVNET_SOURCE_DIR) + "/examples/scenarios/";
  train(load_config(dir + "sick_zeros_init.toml"), quiet(tmp.file("zeros")));
  const json z = run_verdicts(tmp.file("zeros"));
  for (int64_t layer : {0, 2}) EXPECT_TRUE(has(kinds_of(z, layer), "fix_init")) << z.dump();
  EXPECT_EQ(kinds_of(z, 4), std::vector<std::string>{"healthy"});
  // The output layer is judged by alarms only, and its evidence holds no empty capacity fields.
  for (const json& l : z["layers"])
    if (l["layer"] == 4) {
      const json& v = l["verdicts"][0];
      EXPECT_NE(v["rule"].get<std::string>().find("output layer"), std::string::npos) << v.dump();
      EXPECT_FALSE(v["evidence"].contains("effective_rank")) << v.dump();
      for (const auto& [key, value] : v["evidence"].items()) EXPECT_FALSE(value.is_null()) << key;
    }
  train(load_config(dir + "sick_frozen_layer.toml"), quiet(tmp.file("frozen")));
  const json f = run_verdicts(tmp.file("frozen"));
  EXPECT_TRUE(has(kinds_of(f, 2), "frozen")) << f.dump();
  EXPECT_FALSE(has(kinds_of(f, 0), "frozen"));
}
