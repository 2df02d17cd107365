// The training doctor (diagnostics/doctor.h, docs/doctor.md): every statistic against a
// direct computation on a small network, the dead-unit window, the NaN trace (first layer,
// tensor, pass), no allocation on steps that are not logged, the checkpoint spectra, and
// real small training runs that must raise saturation, dead_units and a loss_spike /
// grad_explosion within one logged step of the loss starting to rise.
#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <nlohmann/json.hpp>
#include <random>

#include "diagnostics/doctor.h"
#include "diagnostics/eigen.h"
#include "diagnostics/layer_stats.h"
#include "layers/model.h"
#include "optim/optimizer.h"

#include "heap_counter.h"

namespace cn {
namespace {

using json = nlohmann::json;

LayerSpec lin(int64_t out) {
  LayerSpec s;
  s.type = LayerKind::linear;
  s.out = out;
  s.init = cn::Init::xavier_normal;
  s.bias_init = cn::Init::zeros;
  return s;
}
LayerSpec act(const std::string& type) {
  LayerSpec s;
  s.type = parse_enum(kLayerKinds, type, "type");
  return s;
}

template <class T>
struct Net {
  Sequential<T> model;
  Loss<T> loss;
  std::vector<T> x, y;
  int64_t N;
  Net(const std::vector<LayerSpec>& specs, int64_t n_in, int64_t N_, LossKind kind = LossKind::mse, uint64_t seed = 1)
      : model(specs, n_in), loss(kind), N(N_) {
    ModelConfig mc;
    model.initialize(mc, seed);
    model.reserve(N);
    loss.reserve(Device::cpu, N, model.n_outputs());
    std::mt19937 g(static_cast<unsigned>(seed));
    std::normal_distribution<double> nd;
    x.resize(static_cast<size_t>(N * n_in));
    for (auto& v : x) v = static_cast<T>(nd(g));
    y.resize(static_cast<size_t>(N * model.n_outputs()));
    for (auto& v : y) v = static_cast<T>(nd(g));
  }
  T* param(int64_t layer, bool bias) {
    for (const auto& s : model.layout().segments)
      if (s.layer == layer && s.is_bias == bias) return model.params().data() + s.offset;
    return nullptr;
  }
  const ParamSegment& seg(int64_t layer, bool bias) {
    for (const auto& s : model.layout().segments)
      if (s.layer == layer && s.is_bias == bias) return s;
    throw std::runtime_error("no segment");
  }
  // Forward, loss, backward, clip (none): the loss and the clip result.
  std::pair<double, ClipResult> pass() {
    PassCtx c;
    const T* z = model.forward(c, x.data(), N);
    const double l = loss.forward_backward(c, z, y.data(), N, model.n_outputs());
    model.backward(c, loss.dz(), N);
    ClipConfig cc;
    return {l, clip_gradients<T>(cc, model.layout(), model.params().data(), model.grads().data())};
  }
};

Config base_config() {
  Config c;
  c.optim.name = cn::OptimKind::sgd;
  c.data.batch_size = 16;
  return c;
}

double rel(double a, double b) { return std::fabs(a - b) / std::max(1e-300, std::max(std::fabs(a), std::fabs(b))); }
#define EXPECT_REL(a, b) EXPECT_LT(rel((a), (b)), 1e-12) << #a << " = " << (a) << ", expected " << (b)

double norm(const double* p, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += p[i] * p[i];
  return std::sqrt(s);
}

TEST(Doctor, StatisticsMatchDirectComputation) {
  Net<double> net({lin(4), act("relu"), lin(5), act("tanh"), lin(3), act("sigmoid"), lin(2)}, 3, 8);
  net.param(0, true)[0] = -100.0;  // unit 0 of the ReLU never active: dead
  net.param(2, true)[0] = 10.0;    // unit 0 of the tanh saturated
  net.param(2, true)[1] = 0.3;
  Doctor<double> d(base_config(), net.model);
  auto [loss, clip] = net.pass();
  const int64_t P = net.model.layout().total;
  std::vector<double> W0(net.model.params().data(), net.model.params().data() + P);
  std::vector<double> G(net.model.grads().data(), net.model.grads().data() + P);
  EXPECT_FALSE(d.before_update(10, loss, clip, true, net.N));
  for (int64_t i = 0; i < P; ++i) net.model.params()[i] -= 0.3 * net.model.grads()[i];
  d.after_update(10, true);
  const std::vector<double> W1(net.model.params().data(), net.model.params().data() + P);
  auto rows = d.take_stats_rows();
  ASSERT_EQ(rows.size(), 7u);
  EXPECT_TRUE(d.take_stats_rows().empty());

  double gsum = 0;
  for (int64_t L : {0, 2, 4, 6}) gsum += norm(G.data() + net.seg(L, false).offset, net.seg(L, false).size());
  for (int64_t L : {0, 2, 4, 6}) {
    SCOPED_TRACE(L);
    const json& r = rows[static_cast<size_t>(L)];
    EXPECT_EQ(r["step"], 10);
    EXPECT_EQ(r["layer"], L);
    EXPECT_EQ(r["type"], "linear");
    const ParamSegment& w = net.seg(L, false);
    const ParamSegment& b = net.seg(L, true);
    const double g2 = norm(G.data() + w.offset, w.size());
    double ginf = 0;
    for (int64_t i = 0; i < w.size(); ++i) ginf = std::max(ginf, std::fabs(G[w.offset + i]));
    const double wb = norm(W0.data() + w.offset, w.size()), wa = norm(W1.data() + w.offset, w.size());
    std::vector<double> dw(static_cast<size_t>(w.size()));
    for (int64_t i = 0; i < w.size(); ++i) dw[i] = W1[w.offset + i] - W0[w.offset + i];
    EXPECT_REL(r["grad_l2"].get<double>(), g2);
    EXPECT_REL(r["grad_linf"].get<double>(), ginf);
    EXPECT_REL(r["weight_norm"].get<double>(), wa);
    EXPECT_REL(r["weight_rms"].get<double>(), wa / std::sqrt(static_cast<double>(w.size())));
    EXPECT_REL(r["grad_rel"].get<double>(), g2 / wb);
    EXPECT_REL(r["grad_share"].get<double>(), g2 / gsum);
    EXPECT_REL(r["update_ratio"].get<double>(), norm(dw.data(), w.size()) / wb);
    EXPECT_REL(r["update_ratio"].get<double>(), 0.3 * g2 / wb);
    const double bg2 = norm(G.data() + b.offset, b.size());
    EXPECT_REL(r["bias_grad_l2"].get<double>(), bg2);
    EXPECT_REL(r["bias_norm"].get<double>(), norm(W1.data() + b.offset, b.size()));
    double bginf = 0;
    for (int64_t i = 0; i < b.size(); ++i) bginf = std::max(bginf, std::fabs(G[b.offset + i]));
    EXPECT_REL(r["bias_grad_linf"].get<double>(), bginf);
    const double bb = norm(W0.data() + b.offset, b.size());
    if (bb > 0)
      EXPECT_REL(r["bias_update_ratio"].get<double>(), 0.3 * bg2 / bb);
    else
      EXPECT_TRUE(r["bias_update_ratio"].is_null());
  }
  // Zero-initialised biases of layer 6: no ratio, a status instead.
  EXPECT_TRUE(rows[6]["bias_update_ratio"].is_null());
  EXPECT_EQ(rows[6]["bias_update_ratio_status"], "zero denominator");

  const int64_t N = net.N;
  for (int64_t L : {1, 3, 5}) {
    SCOPED_TRACE(L);
    const json& r = rows[static_cast<size_t>(L)];
    const int64_t F = net.model.layer(static_cast<size_t>(L)).out_features();
    const double* y = net.model.layer_output(static_cast<size_t>(L));
    const double* x = net.model.layer_input(static_cast<size_t>(L));
    double m = 0, v = 0;
    for (int64_t i = 0; i < N * F; ++i) m += y[i];
    m /= static_cast<double>(N * F);
    for (int64_t i = 0; i < N * F; ++i) v += (y[i] - m) * (y[i] - m);
    v /= static_cast<double>(N * F);
    EXPECT_REL(r["act_mean"].get<double>(), m);
    EXPECT_REL(r["act_var"].get<double>(), v);
    if (L == 1) {
      int dead = 0;
      for (int64_t f = 0; f < F; ++f) {
        bool active = false;
        for (int64_t n = 0; n < N; ++n) active = active || x[n * F + f] > 0;
        dead += !active;
      }
      EXPECT_GE(dead, 1);
      EXPECT_DOUBLE_EQ(r["dead_share"].get<double>(), static_cast<double>(dead) / F);
      EXPECT_EQ(r["dead_window"], 1);
      EXPECT_FALSE(r.contains("saturated_share"));
    } else {
      const double maxd = L == 5 ? 0.25 : 1.0;
      int sat = 0;
      for (int64_t f = 0; f < F; ++f) {
        int c = 0;
        for (int64_t n = 0; n < N; ++n) {
          const double d1 = L == 5 ? y[n * F + f] * (1 - y[n * F + f]) : 1 - y[n * F + f] * y[n * F + f];
          c += d1 < 1e-2 * maxd;
        }
        sat += c > N / 2;
      }
      if (L == 3) EXPECT_GE(sat, 1);
      EXPECT_DOUBLE_EQ(r["saturated_share"].get<double>(), static_cast<double>(sat) / F);
      EXPECT_FALSE(r.contains("dead_share"));
    }
  }
  for (int64_t L = 1; L < 7; ++L) {
    const int64_t I = net.model.layer(static_cast<size_t>(L)).in_features();
    const double* g = net.model.output_grad(static_cast<size_t>(L - 1));
    double s = 0;
    for (int64_t i = 0; i < N * I; ++i) s += std::fabs(g[i]);
    EXPECT_REL(rows[static_cast<size_t>(L)]["input_grad_mean"].get<double>(), s / static_cast<double>(N * I));
  }
  EXPECT_TRUE(rows[0]["input_grad_mean"].is_null());
  EXPECT_TRUE(rows[0].contains("input_grad_mean_status"));
}

TEST(Doctor, BatchNormAndDropoutRows) {
  LayerSpec bn = act("batchnorm"), dr = act("dropout");
  dr.p = 0.5;
  Net<double> net({lin(6), bn, act("leaky_relu"), dr, lin(2)}, 4, 12);
  Doctor<double> d(base_config(), net.model);
  auto [loss, clip] = net.pass();
  std::vector<double> G(net.model.grads().data(), net.model.grads().data() + net.model.layout().total);
  d.before_update(3, loss, clip, true, net.N);
  d.after_update(3, true);
  auto rows = d.take_stats_rows();
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ(rows[1]["type"], "batchnorm");
  const ParamSegment& g = net.seg(1, false);
  EXPECT_REL(rows[1]["grad_l2"].get<double>(), norm(G.data() + g.offset, g.size()));
  EXPECT_TRUE(rows[1].contains("bias_grad_l2"));
  EXPECT_TRUE(rows[2].contains("dead_share"));
  EXPECT_EQ(rows[3]["type"], "dropout");
  EXPECT_FALSE(rows[3].contains("grad_l2"));
  EXPECT_FALSE(rows[3].contains("act_mean"));
  EXPECT_TRUE(rows[3]["input_grad_mean"].is_number());
}

TEST(Doctor, DeadUnitsCountOverTheWindowOfLoggedBatches) {
  LayerSpec l0 = lin(2);
  Net<double> net({l0, act("relu"), lin(1)}, 1, 1);
  net.param(0, false)[0] = 1.0;
  net.param(0, false)[1] = -1.0;
  net.param(0, true)[0] = net.param(0, true)[1] = 0.0;
  Config c = base_config();
  c.alarms.dead_window = 2;
  Doctor<double> d(c, net.model);
  const double xs[] = {1.0, -1.0, -1.0, -1.0};
  const double expected[] = {0.5, 0.0, 0.5, 0.5};
  for (int k = 0; k < 4; ++k) {
    net.x[0] = xs[k];
    auto [loss, clip] = net.pass();
    d.before_update(k + 1, loss, clip, true, 1);
    d.after_update(k + 1, true);
    auto rows = d.take_stats_rows();
    EXPECT_DOUBLE_EQ(rows[1]["dead_share"].get<double>(), expected[k]) << "logged step " << k;
  }
}

TEST(Doctor, NoAllocationOnStepsThatAreNotLogged) {
  Net<double> net({lin(8), act("relu"), lin(4), act("tanh"), lin(2)}, 5, 16);
  Doctor<double> d(base_config(), net.model);
  auto [loss, clip] = net.pass();
  d.before_update(1, loss, clip, true, net.N);
  d.after_update(1, true);
  d.take_stats_rows();
  d.take_alarm_rows();
  ClipResult big = clip;
  big.norm_before = 1e5;  // a grad_explosion event on a step that is not logged
  const long before = test::heap_allocations();
  for (int s = 2; s < 9; ++s) {
    d.before_update(s, loss, s == 4 ? big : clip, false, net.N);
    d.after_update(s, false);
  }
  EXPECT_EQ(test::heap_allocations(), before);
  EXPECT_TRUE(d.take_stats_rows().empty());
  auto alarms = d.take_alarm_rows();
  ASSERT_EQ(alarms.size(), 1u);
  EXPECT_EQ(alarms[0]["rule"], "grad_explosion");
  EXPECT_EQ(alarms[0]["step"], 4);  // the step of the event, reported later
}

TEST(Doctor, NanTraceNamesTheFirstLayerTensorAndPass) {
  const std::vector<LayerSpec> specs = {lin(4), act("relu"), lin(5), act("tanh"), lin(3), act("sigmoid"), lin(2)};
  const double nan = std::nan("");
  {  // A non-finite weight before any update: forward pass, the weight named.
    Net<double> net(specs, 3, 8);
    Doctor<double> d(base_config(), net.model);
    net.param(2, false)[3] = nan;
    auto [loss, clip] = net.pass();
    ASSERT_FALSE(std::isfinite(loss));
    EXPECT_TRUE(d.before_update(1, loss, clip, false, net.N));
    EXPECT_TRUE(d.nonfinite_seen());
    auto rows = d.take_alarm_rows();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["rule"], "nonfinite");
    EXPECT_EQ(rows[0]["layer"], 2);
    EXPECT_EQ(rows[0]["pass"], "forward");
    EXPECT_EQ(rows[0]["tensor"], "2.weight");
    EXPECT_EQ(rows[0]["step"], 1);
    d.after_update(1, false);
    // Only the first appearance is traced.
    EXPECT_FALSE(d.before_update(2, loss, clip, false, net.N));
    EXPECT_TRUE(d.take_alarm_rows().empty());
  }
  {  // The same after an update: the update of the previous step made it.
    Net<double> net(specs, 3, 8);
    Doctor<double> d(base_config(), net.model);
    auto [l1, c1] = net.pass();
    d.before_update(1, l1, c1, false, net.N);
    d.after_update(1, false);
    net.param(6, true)[1] = INFINITY;
    auto [loss, clip] = net.pass();
    EXPECT_TRUE(d.before_update(2, loss, clip, false, net.N));
    auto rows = d.take_alarm_rows();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["layer"], 6);
    EXPECT_EQ(rows[0]["pass"], "update");
    EXPECT_EQ(rows[0]["tensor"], "6.bias");
    EXPECT_EQ(rows[0]["step"], 1);
    EXPECT_EQ(rows[0]["value_status"], "inf");
  }
  {  // Overflow in a layer's output (float): forward pass, that layer's output.
    Net<float> net({lin(4), act("relu"), lin(3), act("relu"), lin(2)}, 3, 8);
    Doctor<float> d(base_config(), net.model);
    for (auto& v : net.x) v = 1e20f;
    net.param(2, false)[0] = 1e20f;
    net.param(0, false)[0] = net.param(0, false)[1] = net.param(0, false)[2] = 1.0f;
    auto [loss, clip] = net.pass();
    ASSERT_FALSE(std::isfinite(loss));
    EXPECT_TRUE(d.before_update(1, loss, clip, false, net.N));
    auto rows = d.take_alarm_rows();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["layer"], 2);
    EXPECT_EQ(rows[0]["pass"], "forward");
    EXPECT_EQ(rows[0]["tensor"], "output");
  }
  {  // A non-finite parameter gradient: backward pass, the gradient named.
    Net<double> net(specs, 3, 8);
    Doctor<double> d(base_config(), net.model);
    auto [loss, clip] = net.pass();
    const ParamSegment& s = net.seg(2, false);
    net.model.grads()[s.offset + 1] = nan;
    clip.norm_before = nan;
    EXPECT_TRUE(d.before_update(1, loss, clip, true, net.N));
    auto rows = d.take_alarm_rows();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["layer"], 2);
    EXPECT_EQ(rows[0]["pass"], "backward");
    EXPECT_EQ(rows[0]["tensor"], "2.weight.grad");
  }
  {  // A non-finite input gradient: the layer whose backward produced it.
    Net<double> net(specs, 3, 8);
    Doctor<double> d(base_config(), net.model);
    auto [loss, clip] = net.pass();
    const_cast<double*>(net.model.output_grad(3))[2] = nan;
    clip.norm_before = nan;
    EXPECT_TRUE(d.before_update(1, loss, clip, false, net.N));
    auto rows = d.take_alarm_rows();
    ASSERT_EQ(rows.size(), 1u);
    EXPECT_EQ(rows[0]["layer"], 4);
    EXPECT_EQ(rows[0]["pass"], "backward");
    EXPECT_EQ(rows[0]["tensor"], "input_grad");
  }
  {  // Weights made non-finite by the update of a logged step: update pass.
    Net<double> net(specs, 3, 8);
    Doctor<double> d(base_config(), net.model);
    auto [loss, clip] = net.pass();
    d.before_update(5, loss, clip, true, net.N);
    net.param(6, false)[0] = nan;
    d.after_update(5, true);
    EXPECT_TRUE(d.nonfinite_seen());
    auto rows = d.take_alarm_rows();
    ASSERT_GE(rows.size(), 1u);
    EXPECT_EQ(rows[0]["rule"], "nonfinite");
    EXPECT_EQ(rows[0]["layer"], 6);
    EXPECT_EQ(rows[0]["pass"], "update");
    EXPECT_EQ(rows[0]["tensor"], "6.weight");
    EXPECT_EQ(rows[0]["step"], 5);
    // The stats row carries null + status for the non-finite norm.
    auto stats = d.take_stats_rows();
    EXPECT_TRUE(stats[6]["weight_norm"].is_null());
    EXPECT_EQ(stats[6]["weight_norm_status"], "nan");
  }
}

std::vector<double> sv_by_eigh(const double* W, int64_t r, int64_t c) {
  // Singular values from the eigenvalues of the smaller Gram matrix.
  const bool wide = r <= c;
  const int64_t k = wide ? r : c;
  std::vector<double> gram(static_cast<size_t>(k * k), 0.0);
  for (int64_t a = 0; a < k; ++a)
    for (int64_t b = 0; b < k; ++b) {
      double s = 0;
      if (wide)
        for (int64_t j = 0; j < c; ++j) s += W[a * c + j] * W[b * c + j];
      else
        for (int64_t i = 0; i < r; ++i) s += W[i * c + a] * W[i * c + b];
      gram[a * k + b] = s;
    }
  auto e = eigh(gram.data(), k);
  std::vector<double> out;
  for (auto it = e.values.rbegin(); it != e.values.rend(); ++it) out.push_back(std::sqrt(std::max(*it, 0.0)));
  return out;
}

TEST(Doctor, CheckpointSpectra) {
  Net<double> net({lin(4), act("relu"), lin(3), act("tanh"), lin(2)}, 6, 10);
  // Layer 2's weight: row 2 = 2 x row 0, rank 2.
  const ParamSegment& s2 = net.seg(2, false);
  for (int64_t j = 0; j < s2.cols; ++j)
    net.model.params()[s2.offset + 2 * s2.cols + j] = 2 * net.model.params()[s2.offset + j];
  net.pass();
  Doctor<double> d(base_config(), net.model);
  std::map<std::string, std::vector<double>> spectra;
  auto rows = d.on_checkpoint(7, &spectra);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_EQ(spectra.size(), 6u);
  const int64_t layers[] = {0, 2, 4};
  for (size_t k = 0; k < 3; ++k) {
    const int64_t L = layers[k];
    SCOPED_TRACE(L);
    const json& r = rows[k];
    const ParamSegment& s = net.seg(L, false);
    EXPECT_EQ(r["kind"], "spectrum");
    EXPECT_EQ(r["layer"], L);
    EXPECT_EQ(r["step"], 7);
    const auto expect_w = sv_by_eigh(net.model.params().data() + s.offset, s.rows, s.cols);
    const auto expect_g = sv_by_eigh(net.model.grads().data() + s.offset, s.rows, s.cols);
    const auto& got_w = spectra.at("weights." + std::to_string(L) + ".singular_values");
    const auto& got_g = spectra.at("grads." + std::to_string(L) + ".singular_values");
    ASSERT_EQ(got_w.size(), expect_w.size());
    for (size_t i = 0; i < got_w.size(); ++i) {
      EXPECT_NEAR(got_w[i], expect_w[i], 1e-7 * expect_w[0]);
      EXPECT_NEAR(got_g[i], expect_g[i], 1e-7 * expect_g[0]);
    }
    const double fro2 = [&] {
      double a = 0;
      for (int64_t i = 0; i < s.size(); ++i) a += net.model.params()[s.offset + i] * net.model.params()[s.offset + i];
      return a;
    }();
    EXPECT_NEAR(r["sigma_max"].get<double>(), expect_w[0], 1e-10 * expect_w[0]);
    EXPECT_NEAR(r["stable_rank"].get<double>(), fro2 / (expect_w[0] * expect_w[0]), 1e-9);
    EXPECT_EQ(r["numerical_rank"], L == 2 ? 2 : static_cast<int64_t>(expect_w.size()));
    // Pearson correlation of the two spectra, computed here.
    double mw = 0, mg = 0;
    for (size_t i = 0; i < got_w.size(); ++i) mw += got_w[i], mg += got_g[i];
    mw /= got_w.size();
    mg /= got_g.size();
    double sab = 0, saa = 0, sbb = 0;
    for (size_t i = 0; i < got_w.size(); ++i) {
      sab += (got_w[i] - mw) * (got_g[i] - mg);
      saa += (got_w[i] - mw) * (got_w[i] - mw);
      sbb += (got_g[i] - mg) * (got_g[i] - mg);
    }
    EXPECT_NEAR(r["weight_grad_corr"].get<double>(), sab / std::sqrt(saa * sbb), 1e-12);
    if (k < 2) {
      EXPECT_EQ(r["next_layer"], layers[k + 1]);
      EXPECT_DOUBLE_EQ(
          r["spectrum_similarity"].get<double>(),
          spectrum_similarity(got_w, spectra.at("weights." + std::to_string(layers[k + 1]) + ".singular_values")));
    } else {
      EXPECT_FALSE(r.contains("next_layer"));
    }
  }
}

TEST(LayerStats, SpectrumSimilarity) {
  EXPECT_DOUBLE_EQ(spectrum_similarity({3, 2, 1}, {3, 2, 1}), 1.0);
  EXPECT_DOUBLE_EQ(spectrum_similarity({3, 2, 1}, {30, 20, 10}), 1.0);  // scale-free
  EXPECT_NEAR(spectrum_similarity({1, 1, 1}, {1, 0, 0}), 1.0 / 3.0, 1e-15);
  EXPECT_TRUE(std::isnan(spectrum_similarity({0, 0}, {1, 2})));
  EXPECT_TRUE(std::isnan(pearson_correlation({1, 1, 1}, {1, 2, 3})));
  EXPECT_NEAR(pearson_correlation({1, 2, 3}, {2, 4, 6.5}), 4.5 / std::sqrt(2.0 * 366.0 / 36.0), 1e-14);
}

// A small training run: SGD at the given learning rate per step, logged every `log_every`.
struct RunResult {
  std::vector<json> alarms, stats;
  std::vector<double> logged_loss;
  std::vector<int64_t> logged_step;
};

RunResult train(Net<double>& net, Config cfg, int steps, int log_every, double (*lr_at)(int)) {
  Doctor<double> d(cfg, net.model);
  auto opt = make_optimizer<double>(cfg.optim, net.model.layout());
  RunResult out;
  double window = 0;
  int n = 0;
  for (int s = 1; s <= steps; ++s) {
    auto [loss, clip] = net.pass();
    const bool logged = s % log_every == 0;
    d.before_update(s, loss, clip, logged, net.N);
    opt->step(net.model.params().data(), net.model.grads().data(), lr_at(s), s - 1);
    d.after_update(s, logged);
    window += loss;
    ++n;
    if (logged) {
      out.logged_loss.push_back(window / n);
      out.logged_step.push_back(s);
      window = 0;
      n = 0;
      for (auto& r : d.take_stats_rows()) out.stats.push_back(r);
      for (auto& r : d.take_alarm_rows()) out.alarms.push_back(r);
    }
    if (d.nonfinite_seen()) break;
  }
  for (auto& r : d.take_alarm_rows()) out.alarms.push_back(r);
  return out;
}

bool has(const std::vector<json>& alarms, const std::string& rule, int64_t layer, int64_t max_step) {
  for (const auto& a : alarms)
    if (a["rule"] == rule && (layer < 0 || a["layer"] == layer) && a["step"].get<int64_t>() <= max_step) return true;
  return false;
}

TEST(DoctorTraining, SigmoidWithHugeWeightsSaturates) {
  Net<double> net({lin(8), act("sigmoid"), lin(1)}, 4, 32);
  const ParamSegment& s = net.seg(0, false);
  for (int64_t i = 0; i < s.size(); ++i) net.model.params()[s.offset + i] *= 100.0;
  Config cfg = base_config();
  cfg.optim.lr = 0.01;
  auto r = train(net, cfg, 20, 5, [](int) { return 0.01; });
  EXPECT_TRUE(has(r.alarms, "saturation", 1, 5)) << json(r.alarms).dump();
  EXPECT_GT(r.stats[1]["saturated_share"].get<double>(), 0.5);
}

TEST(DoctorTraining, ReluWithLargeNegativeBiasDies) {
  Net<double> net({lin(8), act("relu"), lin(1)}, 4, 32);
  const ParamSegment& b = net.seg(0, true);
  for (int64_t i = 0; i < b.size(); ++i) net.model.params()[b.offset + i] = -100.0;
  Config cfg = base_config();
  auto r = train(net, cfg, 20, 5, [](int) { return 0.01; });
  EXPECT_TRUE(has(r.alarms, "dead_units", 1, 5)) << json(r.alarms).dump();
  EXPECT_DOUBLE_EQ(r.stats[1]["dead_share"].get<double>(), 1.0);
}

TEST(DoctorTraining, TooHighLearningRateRaisesAnAlarmWithinOneLoggedStep) {
  Net<double> net({lin(8), act("tanh"), lin(1)}, 4, 64, LossKind::mse, 3);
  // Targets from a teacher, so the healthy phase converges.
  for (int64_t n = 0; n < net.N; ++n) {
    double t = 0;
    for (int64_t j = 0; j < 4; ++j) t += (j + 1) * 0.2 * net.x[n * 4 + j];
    net.y[n] = std::tanh(t);
  }
  Config cfg = base_config();
  const int switch_at = 60, log_every = 5;
  auto r = train(net, cfg, 150, log_every, [](int s) { return s <= 60 ? 0.05 : 4.0; });
  // Healthy phase: no alarm of any rule.
  for (const auto& a : r.alarms) EXPECT_GT(a["step"].get<int64_t>(), switch_at) << a.dump();
  // The first logged step whose loss is above the previous one, after the switch.
  size_t rise = 0;
  for (size_t k = 1; k < r.logged_loss.size(); ++k)
    if (r.logged_step[k] > switch_at && !(r.logged_loss[k] <= r.logged_loss[k - 1])) {
      rise = k;
      break;
    }
  ASSERT_GT(rise, 0u) << "the loss never rose";
  const int64_t deadline = rise + 1 < r.logged_step.size() ? r.logged_step[rise + 1] : r.logged_step[rise] + log_every;
  EXPECT_TRUE(has(r.alarms, "loss_spike", -1, deadline) || has(r.alarms, "grad_explosion", -1, deadline))
      << "rise at logged step " << r.logged_step[rise] << ": " << json(r.alarms).dump();
  EXPECT_NE(r.logged_loss.back(), r.logged_loss[rise - 1]);
}

}  // namespace
}  // namespace cn
