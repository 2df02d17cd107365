// The textbook results of initialisation and training failures, reproduced by curvnet's own
// instruments on the configs of examples/fidelity/ and checked against theory
// (docs/fidelity.md has the measured numbers): pre-activation variance through depth per
// initialiser, the symmetry of constant initialisation, saturated sigmoids piling the local
// Hessian at zero, dead ReLUs under a negative bias, and the explosion alarm at the onset
// of divergence.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "data/dataset.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/trainer.h"

using namespace cn;
using json = nlohmann::json;

namespace {

std::string example(const std::string& name) {
  return std::string(CURVNET_SOURCE_DIR) + "/examples/fidelity/" + name + ".toml";
}

// Trains the example `name` (with `--set` overrides) into `dir`; returns the run directory.
std::string run_example(const test::TempDir& tmp, const std::string& name, const std::string& dir,
                        const std::vector<std::string>& overrides = {}) {
  const Config config = load_config(example(name), overrides);
  TrainOptions o;
  o.out_dir = tmp.file(dir);
  std::ostringstream sink;
  o.out = &sink;
  o.progress = 0;
  train(config, o);
  return o.out_dir;
}

std::vector<json> rows(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(test::read_text(path));
  for (std::string line; std::getline(in, line);)
    if (!line.empty()) out.push_back(json::parse(line));
  return out;
}

// The step-0 rows of stats.jsonl for the layers that have `field`, in layer order.
std::vector<json> step0_rows(const std::string& run, const std::string& field) {
  std::vector<json> out;
  for (const json& r : rows(run + "/stats.jsonl"))
    if (r["step"] == 0 && r.value("kind", "") == "step" && r.contains(field)) out.push_back(r);
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) { return a["layer"] < b["layer"]; });
  return out;
}

// E[f(√q ξ)], ξ ~ N(0, 1), by the trapezoid rule on [-12, 12].
template <class F>
double gaussian_mean(double q, F f) {
  const int n = 24000;
  const double h = 24.0 / n;
  double s = 0;
  for (int i = 0; i <= n; ++i) {
    const double x = -12.0 + h * i;
    s += (i == 0 || i == n ? 0.5 : 1.0) * std::exp(-0.5 * x * x) * f(std::sqrt(q) * x);
  }
  return s * h / std::sqrt(2.0 * M_PI);
}

double normal_upper_tail(double z) { return 0.5 * std::erfc(z / std::sqrt(2.0)); }

}  // namespace

// The mean field of a wide layer with zero biases: z_{l+1} = W φ(z_l) has second moment
// q_{l+1} = n·Var(w)·m_l, m_l = E[φ(z_l)²] = act_var + act_mean² of layer l's activation.
// ReLU halves a symmetric z's second moment: m_{l+1}/m_l = n·Var(w)/2 (plain uniform
// U(±1/√n): Var = 1/(3n), factor 1/6; He: Var = 2/n, factor 1). tanh: m_{l+1} =
// E[tanh²(√(n·Var(w)·m_l) ξ)] (plain uniform: n·Var = 1/3, → 1/3 per layer as the signal
// shrinks; Xavier 2/(n+n): n·Var = 1, → 1). Measured: the ratios of m over the 10 layers.
TEST(Fidelity, PreActivationVarianceThroughDepthFollowsTheInitialiser) {
  test::TempDir tmp;
  struct Case {
    std::string name;
    bool relu;
    double n_var_w;  // n · Var(w) of the initialiser, from its definition
    double tolerance_each;
  };
  // ReLU's ratios scatter more: one realisation of W on inputs whose second-moment matrix
  // is dominated by their common (positive) mean averages a χ² of few degrees of freedom.
  const std::vector<Case> cases = {{"depth_plain_uniform_relu", true, 1.0 / 3.0, 0.3},
                                   {"depth_he_relu", true, 2.0, 0.3},
                                   {"depth_plain_uniform_tanh", false, 1.0 / 3.0, 0.1},
                                   {"depth_xavier_tanh", false, 1.0, 0.1}};
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string run = run_example(tmp, c.name, c.name);
    const std::vector<json> acts = step0_rows(run, "act_var");
    ASSERT_EQ(acts.size(), 10u) << "one step-0 row per hidden activation";
    std::vector<double> m;
    for (const json& r : acts) m.push_back(r["act_var"].get<double>() + std::pow(r["act_mean"].get<double>(), 2));
    double log_measured = 0, log_theory = 0;
    for (size_t l = 0; l + 1 < m.size(); ++l) {
      const double measured = m[l + 1] / m[l];
      const double theory =
          c.relu ? c.n_var_w / 2.0
                 : gaussian_mean(c.n_var_w * m[l], [](double z) { return std::tanh(z) * std::tanh(z); }) / m[l];
      EXPECT_NEAR(measured / theory, 1.0, c.tolerance_each) << "layer " << l + 1 << " -> " << l + 2;
      log_measured += std::log(measured);
      log_theory += std::log(theory);
    }
    const double per_layer = std::exp(log_measured / 9.0), per_layer_theory = std::exp(log_theory / 9.0);
    EXPECT_NEAR(per_layer / per_layer_theory, 1.0, 0.1) << "geometric mean of the per-layer factor";
    if (c.n_var_w < 1.0) {
      EXPECT_LT(m.back() / m.front(), 1e-3) << "plain uniform shrinks the signal";
    } else {
      EXPECT_GT(m.back() / m.front(), c.relu ? 0.5 : 0.1) << "the scaled initialiser keeps it";
    }
  }
}

// Units that start identical compute the same function, receive the same gradient and take
// the same update: after 100 Adam steps the rows of each hidden weight matrix are equal, while
// the weights have moved and the output layer (whose units see different targets) differs.
TEST(Fidelity, ConstantInitialisationKeepsTheUnitsOfALayerIdentical) {
  test::TempDir tmp;
  const std::string run = run_example(tmp, "constant_init_symmetry", "run");
  const auto t = test::last_checkpoint_tensors(run);
  auto row_spread = [](const std::vector<double>& w, int64_t rows) {
    const int64_t cols = static_cast<int64_t>(w.size()) / rows;
    double spread = 0;
    for (int64_t j = 1; j < rows; ++j)
      for (int64_t k = 0; k < cols; ++k) spread = std::max(spread, std::fabs(w[j * cols + k] - w[k]));
    return spread;
  };
  for (const char* name : {"0.weight", "2.weight"}) {
    const std::vector<double>& w = t.at(name);
    double moved = 0, largest = 0;
    for (double v : w) {
      moved = std::max(moved, std::fabs(v - 0.05));
      largest = std::max(largest, std::fabs(v));
    }
    EXPECT_GT(moved, 1e-3) << name << " trained";
    EXPECT_LE(row_spread(w, 32), 1e-6 * largest) << name << ": units differ";
  }
  EXPECT_GT(row_spread(t.at("4.weight"), 10), 1e-3) << "the output units are told apart by their targets";
}

// The local Hessian of a sigmoid layer is Σ_n σ''(h_nj) x̃_n x̃_nᵀ per unit j. At the Xavier
// scale σ'' is spread over the batch and the only zero eigenvalues are structural: one per
// input column that is constant on the curvature batch (collinear with the bias column).
// At 30× the scale σ''(h) ≈ e^{-|h|} keeps only the least saturated samples of each unit:
// the blocks tend to rank one and most eigenvalues fall below 1e-3 of the largest.
TEST(Fidelity, SaturatedSigmoidsPileTheLocalHessianSpectrumAtZero) {
  test::TempDir tmp;
  const std::string normal = run_example(tmp, "sigmoid_normal", "normal");
  const std::string saturated = run_example(tmp, "sigmoid_saturation", "saturated");
  // The structural zeros: the columns of the curvature batch (the training split's first
  // diagnostics.batch_size rows) that are constant.
  const Config config = load_config(example("sigmoid_normal"));
  const Splits data = load_splits(config.data, config.train.seed);
  const int64_t N = std::min<int64_t>(config.diagnostics.batch_size, data.train.n), I = data.train.d;
  int64_t constant = 0;
  for (int64_t k = 0; k < I; ++k) {
    bool same = true;
    for (int64_t n = 1; n < N && same; ++n) same = data.train.x[n * I + k] == data.train.x[k];
    constant += same;
  }
  auto share_below = [&](const std::string& run, double rel) {
    const SafeTensorMap t = read_safetensors(run + "/spectra/step_0.safetensors");
    const std::vector<double> ev = get_tensor<double>(t, "local.0.eigenvalues", {32 * (I + 1)}, run);
    double largest = 0;
    for (double v : ev) largest = std::max(largest, std::fabs(v));
    int64_t below = 0;
    for (double v : ev) below += std::fabs(v) <= rel * largest;
    return static_cast<double>(below) / static_cast<double>(ev.size());
  };
  double near_zero = -1;
  for (const json& r : rows(normal + "/diagnostics.jsonl"))
    if (r["step"] == 0 && r["layer"] == 0 && r["kind"] == "local") near_zero = r["near_zero_share"].get<double>();
  EXPECT_NEAR(near_zero, static_cast<double>(constant) / static_cast<double>(I + 1), 0.5 / (I + 1))
      << constant << " constant input columns";

  const double normal_share = share_below(normal, 1e-3), saturated_share = share_below(saturated, 1e-3);
  EXPECT_GT(saturated_share, 0.5) << "most eigenvalues at zero";
  EXPECT_GT(saturated_share, 2.0 * normal_share);
  EXPECT_LT(normal_share, 0.3);
  // The doctor sees the same cause on the training batch.
  EXPECT_GE(step0_rows(saturated, "saturated_share").at(0)["saturated_share"].get<double>(), 0.9);
  EXPECT_EQ(step0_rows(normal, "saturated_share").at(0)["saturated_share"].get<double>(), 0.0);
}

// teacher's inputs are standard normal, so a first-layer unit's pre-activation on a sample is
// N(b, |w|²) with He weights |w|² ~ (2/10)·χ²(10): the unit is dead on a batch of N samples
// with probability E[(1 − P(N(0, |w|²) > |b|))^N]. Step 0 measures one batch.
TEST(Fidelity, LargeNegativeBiasKillsReLUUnitsAsTheoryPredicts) {
  test::TempDir tmp;
  const int64_t I = 10, N = 128, F = 64;
  auto theory = [&](double b) {
    double s = 0;
    const double dt = 1e-3;
    for (int i = 1; i < 80000; ++i) {  // the χ²(10) density t⁴ e^{-t/2} / (2⁵ Γ(5))
      const double t = i * dt, norm = std::sqrt(2.0 / static_cast<double>(I) * t);
      const double density = std::pow(t, 4) * std::exp(-t / 2) / (32.0 * 24.0);
      s += density * std::pow(1.0 - normal_upper_tail(std::fabs(b) / norm), static_cast<double>(N)) * dt;
    }
    return s;
  };
  for (const double b : {-6.0, -4.0}) {
    SCOPED_TRACE(b);
    std::ostringstream set;
    set << "model.init_constant=" << b;
    const std::string run = run_example(tmp, "dead_relu_bias", "b" + std::to_string(static_cast<int>(-b)), {set.str()});
    const std::vector<json> relu = step0_rows(run, "dead_share");
    ASSERT_EQ(relu.size(), 2u);
    const double p = theory(b), measured = relu[0]["dead_share"].get<double>();
    EXPECT_NEAR(measured, p, 3.0 * std::sqrt(p * (1 - p) / F) + 1.0 / F) << "theory " << p;
    if (b == -6.0) {
      EXPECT_GT(p, 0.97);
      EXPECT_GE(relu[1]["dead_share"].get<double>(), 0.95) << "the next layer sees almost only its bias";
    }
  }
}

// Plain SGD is stable only while lr·λmax < 2. At lr = 10 (λmax measured at step 0 by
// full_top) the loss grows from the first updates, and grad_explosion or nonfinite fires no
// later than the logged step after the first logged loss above twice the initial one; at
// lr = 0.1 (below 2/λmax) neither fires and the loss falls.
TEST(Fidelity, ExplosionAlarmFiresWithinOneLoggedStepOfTheOnset) {
  test::TempDir tmp;
  const std::string run = run_example(tmp, "explosion_lr", "diverging");
  double lambda_max = 0;
  for (const json& r : rows(run + "/diagnostics.jsonl"))
    if (r["step"] == 0 && r["kind"] == "full_top") lambda_max = r["lambda_max"].get<double>();
  ASSERT_GT(10.0 * lambda_max, 2.0) << "lr = 10 is above the stability limit 2/λmax";
  ASSERT_LT(0.1 * lambda_max, 2.0) << "lr = 0.1 is below it";

  auto initial_loss = [](const std::string& r) {
    for (const json& e : rows(r + "/eval.jsonl"))
      if (e["step"] == 0) return e["loss"].get<double>();
    return std::nan("");
  };
  auto first_alarm = [](const std::string& r) {
    for (const json& a : rows(r + "/alarms.jsonl"))
      if (a["rule"] == "grad_explosion" || a["rule"] == "nonfinite") return a["step"].get<int64_t>();
    return int64_t(-1);
  };
  const double l0 = initial_loss(run);
  ASSERT_TRUE(std::isfinite(l0)) << "the evaluation at step 0";
  int64_t onset = -1;
  for (const json& m : rows(run + "/metrics.jsonl"))
    if (onset < 0 && (m["loss"].is_null() || m["loss"].get<double>() > 2.0 * l0)) onset = m["step"].get<int64_t>();
  ASSERT_GT(onset, 0) << "the loss grows";
  const int64_t log_every = 2, alarm = first_alarm(run);
  ASSERT_GE(alarm, 0) << "no grad_explosion or nonfinite alarm";
  EXPECT_LE(alarm, onset + log_every) << "onset at step " << onset;

  const std::string stable = run_example(tmp, "explosion_lr", "stable", {"optim.lr=0.1"});
  EXPECT_EQ(first_alarm(stable), -1);
  const std::vector<json> m = rows(stable + "/metrics.jsonl");
  ASSERT_FALSE(m.empty());
  EXPECT_LT(m.back()["loss"].get<double>(), initial_loss(stable));
}
