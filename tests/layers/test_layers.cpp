// Every layer and loss against float64 central finite differences on random inputs.
#include <gtest/gtest.h>

#include "test_util.h"

#include <cmath>
#include <functional>
#include <random>
#include <set>

#include "kernels/rops.h"
#include "layers/init.h"
#include "layers/model.h"

using namespace cn;

namespace {

std::vector<double> random_vec(int64_t n, uint32_t seed, double lo = -1.5, double hi = 1.5) {
  return test::random_vec(n, seed, lo, hi);
}

// max |a-b| / max(1, |b|)
double max_rel_err(const std::vector<double>& a, const std::vector<double>& b) {
  double e = 0;
  for (size_t i = 0; i < a.size(); ++i) e = std::max(e, std::fabs(a[i] - b[i]) / std::max(1.0, std::fabs(b[i])));
  return e;
}

struct LayerCase {
  std::string name;
  LayerSpec spec;
  bool training = true;
};

// A layer by its type's name (InputError for a name kLayerKinds lacks).
LayerSpec spec_of(const std::string& type) {
  LayerSpec s;
  s.type = parse_enum(kLayerKinds, type, "type");
  if (s.type == LayerKind::linear) s.out = 4;
  if (s.type == LayerKind::dropout) s.p = 0.4;
  if (s.type == LayerKind::leaky_relu) s.slope = 0.1;
  if (s.type == LayerKind::elu) s.alpha = 0.7;
  return s;
}

// For one layer inside a one-layer Sequential: L = Σ r ⊙ y(x, θ). Checks dL/dx (through a
// leading identity layer's output gradient) and dL/dθ against central differences.
void check_layer(const LayerSpec& spec, bool training) {
  const int64_t N = 5, I = 3;
  LayerSpec ident;
  ident.type = LayerKind::identity;
  Sequential<double> net({ident, spec}, I);
  net.reserve(N);
  ModelConfig mc;
  mc.init = cn::Init::xavier_normal;
  mc.bias_init = cn::Init::zeros;
  net.initialize(mc, 11);
  // Random parameters (also the biases / BatchNorm shift), away from zero.
  auto p = random_vec(net.layout().total, 3);
  for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = p[i];
  if (spec.type == LayerKind::batchnorm && !training) {
    auto st = net.layer(1).state();
    auto rm = random_vec(I, 5), rv = random_vec(I, 6, 0.5, 2.0);
    for (int64_t i = 0; i < I; ++i) st[0].data[i] = rm[i], st[1].data[i] = rv[i];
    net.layer(1).set_update_running(false);
  }
  if (spec.type == LayerKind::batchnorm) net.layer(1).set_update_running(false);
  auto x = random_vec(N * I, 7);
  PassCtx c;
  c.training = training;
  c.dropout_key = philox_key(42, RngStream::dropout);
  c.step = 3;
  const int64_t O = net.n_outputs();
  const auto r = random_vec(N * O, 9);
  auto loss_at = [&](const std::vector<double>& xx) {
    const double* y = net.forward(c, xx.data(), N);
    double s = 0;
    for (int64_t i = 0; i < N * O; ++i) s += r[i] * y[i];
    return s;
  };
  loss_at(x);
  net.backward(c, r.data(), N);
  std::vector<double> dx(net.output_grad(0), net.output_grad(0) + N * I);
  std::vector<double> dtheta(net.grads().data(), net.grads().data() + net.layout().total);

  const double eps = 1e-6;
  std::vector<double> fd_x(N * I), fd_t(net.layout().total);
  for (int64_t i = 0; i < N * I; ++i) {
    auto xp = x, xm = x;
    xp[i] += eps;
    xm[i] -= eps;
    fd_x[i] = (loss_at(xp) - loss_at(xm)) / (2 * eps);
  }
  for (int64_t i = 0; i < net.layout().total; ++i) {
    const double keep = net.params()[i];
    net.params()[i] = keep + eps;
    const double lp = loss_at(x);
    net.params()[i] = keep - eps;
    const double lm = loss_at(x);
    net.params()[i] = keep;
    fd_t[i] = (lp - lm) / (2 * eps);
  }
  // Central differences are O(eps²) ≈ 1e-12 plus rounding ≈ 1e-16/eps = 1e-10.
  EXPECT_LE(max_rel_err(dx, fd_x), 1e-7) << layer_kind_name(spec.type) << (training ? " train" : " eval") << ": dx";
  if (!dtheta.empty()) EXPECT_LE(max_rel_err(dtheta, fd_t), 1e-7) << layer_kind_name(spec.type) << ": dθ";
}

}  // namespace

class LayerGradient : public ::testing::TestWithParam<std::string> {};

TEST_P(LayerGradient, TrainingModeMatchesFiniteDifferences) { check_layer(spec_of(GetParam()), true); }
TEST_P(LayerGradient, EvalModeMatchesFiniteDifferences) { check_layer(spec_of(GetParam()), false); }

INSTANTIATE_TEST_SUITE_P(AllLayers, LayerGradient,
                         ::testing::Values("linear", "relu", "leaky_relu", "elu", "sigmoid", "tanh", "identity", "gelu",
                                           "softplus", "batchnorm", "dropout"));

// An input-only backward gives the same dx as the full one and leaves the gradient buffer
// alone; a null dy (the Gauss-Newton passes) gives dx = 0.
TEST_P(LayerGradient, InputOnlyBackwardWritesDxOnly) {
  const int64_t N = 5, I = 3;
  LayerSpec ident;
  ident.type = LayerKind::identity;
  Sequential<double> net({ident, spec_of(GetParam())}, I);
  net.reserve(N);
  ModelConfig mc;
  net.initialize(mc, 11);
  auto p = random_vec(net.layout().total, 3);
  for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = p[i];
  PassCtx c;
  c.dropout_key = philox_key(42, RngStream::dropout);
  const auto x = random_vec(N * I, 7), dy = random_vec(N * net.n_outputs(), 9);
  net.forward(c, x.data(), N);
  net.backward(c, dy.data(), N);
  const std::vector<double> dx_full(net.output_grad(0), net.output_grad(0) + N * I);
  for (int64_t i = 0; i < net.layout().total; ++i) net.grads()[i] = 7.0;
  std::vector<double> dx(N * I, -1.0);
  net.layer(1).backward(c, dy.data(), dx.data(), N, GradientMode::input_only);
  EXPECT_EQ(dx, dx_full);
  net.layer(1).backward(c, nullptr, dx.data(), N, GradientMode::input_only);
  EXPECT_EQ(dx, std::vector<double>(N * I, 0.0));
  for (int64_t i = 0; i < net.layout().total; ++i) EXPECT_EQ(net.grads()[i], 7.0);
  EXPECT_THROW(net.layer(1).backward(c, nullptr, dx.data(), N), Error);  // parameter gradients need dy
}

// Names are unique; every activation kind maps to the kernels' Act of the same name and every
// Act has a kind; a layer reports the kind it was built from.
TEST(LayerKind, OneTableNamesEveryKind) {
  std::set<std::string> names;
  for (const LayerKindName& k : kLayerKinds) {
    EXPECT_TRUE(names.insert(k.name).second) << k.name;
    EXPECT_STREQ(layer_kind_name(k.value), k.name);
    LayerKind found;
    ASSERT_TRUE(find_layer_kind(k.name, &found)) << k.name;
    EXPECT_EQ(found, k.value);
    Sequential<double> net({spec_of(k.name)}, 3);
    EXPECT_EQ(net.layer(0).kind(), k.value);
    EXPECT_EQ(net.layer(0).type(), k.name);
    EXPECT_EQ(net.layer(0).activation() != nullptr, is_activation(k.value)) << k.name;
    if (is_activation(k.value)) {
      EXPECT_TRUE(is_activation_type(k.name));
      EXPECT_EQ(net.layer(0).activation()->kind, activation_of(k.value)) << k.name;
    }
  }
  for (const ActName& a : kActNames) {
    LayerKind k;
    ASSERT_TRUE(find_layer_kind(a.name, &k)) << a.name << " has no layer kind";
    EXPECT_TRUE(is_activation(k));
    EXPECT_EQ(activation_of(k), a.value) << a.name;
  }
  LayerKind k;
  EXPECT_FALSE(find_layer_kind("swish", &k));
  EXPECT_THROW(Sequential<double>({spec_of("swish")}, 3), InputError);
}

// The freeze stops every running-statistics update while it lives and restores each
// layer's own setting after.
TEST(BatchNorm, RunningStatsFreezeRestoresTheSetting) {
  const int64_t N = 6, I = 3;
  Sequential<double> net({spec_of("batchnorm"), spec_of("tanh"), spec_of("batchnorm")}, I);
  net.reserve(N);
  ModelConfig mc;
  net.initialize(mc, 1);
  PassCtx c;
  const auto x = random_vec(N * I, 4);
  auto running = [&](size_t i) {
    const auto st = net.layer(i).state();
    return std::vector<double>(st[0].data, st[0].data + I);
  };
  EXPECT_FALSE(net.layer(1).set_update_running(false));  // nothing to freeze
  EXPECT_TRUE(net.layer(2).set_update_running(false));
  const auto before0 = running(0), before2 = running(2);
  {
    const RunningStatsFreeze<double> frozen(net);
    net.forward(c, x.data(), N);
    EXPECT_EQ(running(0), before0);
    EXPECT_EQ(running(2), before2);
  }
  net.forward(c, x.data(), N);
  EXPECT_NE(running(0), before0);
  EXPECT_EQ(running(2), before2);  // off before the freeze: still off
  EXPECT_TRUE(net.layer(0).set_update_running(true));
  EXPECT_FALSE(net.layer(2).set_update_running(true));
}

TEST(Activation, SecondDerivativeMatchesFiniteDifferences) {
  for (Act a : {Act::elu, Act::sigmoid, Act::tanh, Act::gelu, Act::softplus, Act::relu, Act::leaky_relu}) {
    ActParams p{a, 0.1, 0.7};
    for (double x : {-2.3, -0.4, 0.3, 1.7}) {
      const double h = 1e-5;
      const double fd1 = (act_f(p, x + h) - act_f(p, x - h)) / (2 * h);
      const double fd2 = (act_d1(p, x + h, act_f(p, x + h)) - act_d1(p, x - h, act_f(p, x - h))) / (2 * h);
      EXPECT_NEAR(act_d1(p, x, act_f(p, x)), fd1, 1e-8) << int(a) << " x=" << x;
      EXPECT_NEAR(act_d2(p, x, act_f(p, x)), fd2, 1e-8) << int(a) << " x=" << x;
    }
  }
}

// A NaN input stays NaN through every activation, as in PyTorch (ReLU used to map it to 0,
// so NaN weights trained on unseen); -0 and 0 map to +0 through ReLU.
TEST(Activation, NaNPropagatesLikePyTorch) {
  for (Act a :
       {Act::identity, Act::relu, Act::leaky_relu, Act::elu, Act::sigmoid, Act::tanh, Act::gelu, Act::softplus}) {
    const ActParams p{a, 0.1, 0.7};
    EXPECT_TRUE(std::isnan(act_f(p, std::nan("")))) << int(a);
    EXPECT_TRUE(std::isnan(act_f(p, std::nanf("")))) << int(a);
  }
  const ActParams relu{Act::relu, 0.1, 0.7};
  EXPECT_FALSE(std::signbit(act_f(relu, -0.0)));
  EXPECT_EQ(act_f(relu, -0.0), 0.0);
  EXPECT_EQ(act_f(relu, 2.5), 2.5);
}

// The backward tangent is the directional derivative of the backward map (x, dy) -> f'(x) dy
// along (Rx, Rdy); the form the K-direction loops use (d1, f'' dy per element) is the same
// arithmetic to the bit.
TEST(Activation, RBackwardMatchesFiniteDifferences) {
  for (Act a :
       {Act::identity, Act::relu, Act::leaky_relu, Act::elu, Act::sigmoid, Act::tanh, Act::gelu, Act::softplus}) {
    ActParams p{a, 0.1, 0.7};
    for (double x : {-2.3, -0.4, 0.3, 1.7}) {
      const double dy = 0.8, rx = -0.6, rdy = 1.3, h = 1e-6;
      auto backward = [&](double e) {
        const double xe = x + e * rx;
        return act_d1(p, xe, act_f(p, xe)) * (dy + e * rdy);
      };
      const double y = act_f(p, x);
      const double r = act_r_backward(p, x, y, dy, rx, rdy);
      EXPECT_NEAR(r, (backward(h) - backward(-h)) / (2 * h), 1e-7) << int(a) << " x=" << x;
      EXPECT_EQ(r, act_r_backward(act_d1(p, x, y), act_d2_dy(p, x, y, dy), rdy, rx)) << int(a) << " x=" << x;
      EXPECT_NEAR(act_r_forward(p, x, y, rx), (act_f(p, x + h * rx) - act_f(p, x - h * rx)) / (2 * h), 1e-7)
          << int(a) << " x=" << x;
    }
  }
}

// The Kronecker path through an activation: for L(f(x)) = ½ yᵀ M y + gᵀ y (y = f(x), M
// symmetric), ∇²_x L = diag(f') M diag(f') + diag(dy f'') with dy = M y + g; checked against
// central differences of ∇_x L = f'(x) ⊙ dy.
TEST(Activation, KroneckerTransformMatchesFiniteDifferences) {
  const int64_t F = 3;
  const std::vector<double> M0 = {2.0, 0.3, -0.5, 0.3, 1.5, 0.2, -0.5, 0.2, 1.1}, g = {0.4, -0.7, 0.9};
  const std::vector<double> x = {-1.2, 0.4, 0.9};
  for (Act a : {Act::elu, Act::sigmoid, Act::tanh, Act::gelu, Act::softplus, Act::leaky_relu}) {
    ActParams p{a, 0.1, 0.7};
    auto forward = [&](const std::vector<double>& xv, std::vector<double>& y, std::vector<double>& dy) {
      y.assign(F, 0.0);
      dy = g;
      for (int64_t i = 0; i < F; ++i) y[i] = act_f(p, xv[i]);
      for (int64_t i = 0; i < F; ++i)
        for (int64_t j = 0; j < F; ++j) dy[i] += M0[i * F + j] * y[j];
    };
    auto grad_x = [&](const std::vector<double>& xv) {
      std::vector<double> y, dy, gx(F);
      forward(xv, y, dy);
      for (int64_t i = 0; i < F; ++i) gx[i] = act_d1(p, xv[i], y[i]) * dy[i];
      return gx;
    };
    std::vector<double> y, dy, M = M0;
    forward(x, y, dy);
    cpu::act_hess_backward(p, x.data(), y.data(), dy.data(), M.data(), 1, F);
    const double h = 1e-6;
    for (int64_t j = 0; j < F; ++j) {
      auto xp = x, xm = x;
      xp[j] += h;
      xm[j] -= h;
      const auto gp = grad_x(xp), gm = grad_x(xm);
      for (int64_t i = 0; i < F; ++i)
        EXPECT_NEAR(M[i * F + j], (gp[i] - gm[i]) / (2 * h), 1e-7) << int(a) << " (" << i << ", " << j << ")";
    }
  }
}

TEST(Dropout, MaskIsInvertedAndSeeded) {
  LayerSpec d;
  d.type = LayerKind::dropout;
  d.p = 0.3;
  Sequential<double> net({d}, 1000);
  net.reserve(10);
  std::vector<double> x(10000, 1.0);
  PassCtx c;
  c.dropout_key = philox_key(1, RngStream::dropout);
  const double* y = net.forward(c, x.data(), 10);
  int kept = 0;
  for (int i = 0; i < 10000; ++i) {
    ASSERT_TRUE(y[i] == 0.0 || std::fabs(y[i] - 1.0 / 0.7) < 1e-12);
    kept += y[i] != 0.0;
  }
  EXPECT_NEAR(kept / 10000.0, 0.7, 0.02);
  std::vector<double> y1(y, y + 10000);
  c.step = 1;
  y = net.forward(c, x.data(), 10);
  EXPECT_NE(std::vector<double>(y, y + 10000), y1);
  c.training = false;
  y = net.forward(c, x.data(), 10);
  EXPECT_EQ(std::vector<double>(y, y + 10000), x);
}

class LossGradient : public ::testing::TestWithParam<std::string> {};

TEST_P(LossGradient, MatchesFiniteDifferences) {
  const LossKind kind = loss_kind(GetParam());
  const int64_t N = 4, C = 3;
  auto z = random_vec(N * C, 21, -3, 3);
  std::vector<double> t;
  if (kind == LossKind::cross_entropy)
    t = {0, 2, 1, 2};
  else if (kind == LossKind::bce_logits)
    t = random_vec(N * C, 22, 0, 1);
  else
    t = random_vec(N * C, 23);
  Loss<double> loss(kind);
  loss.reserve(Device::cpu, N, C);
  PassCtx c;
  loss.forward_backward(c, z.data(), t.data(), N, C);
  std::vector<double> dz(loss.dz(), loss.dz() + N * C), fd(N * C);
  for (int64_t i = 0; i < N * C; ++i) {
    auto zp = z, zm = z;
    zp[i] += 1e-6;
    zm[i] -= 1e-6;
    fd[i] =
        (loss.forward_backward(c, zp.data(), t.data(), N, C) - loss.forward_backward(c, zm.data(), t.data(), N, C)) /
        2e-6;
  }
  EXPECT_LE(max_rel_err(dz, fd), 1e-8);
}

INSTANTIATE_TEST_SUITE_P(AllLosses, LossGradient, ::testing::Values("cross_entropy", "mse", "bce_logits"));

TEST(Loss, CrossEntropyIsStableForHugeLogits) {
  std::vector<double> z = {1000.0, -1000.0, 0.0}, t = {0};
  Loss<double> loss(LossKind::cross_entropy);
  loss.reserve(Device::cpu, 1, 3);
  PassCtx c;
  EXPECT_NEAR(loss.forward_backward(c, z.data(), t.data(), 1, 3), 0.0, 1e-12);
  t = {1};
  EXPECT_NEAR(loss.forward_backward(c, z.data(), t.data(), 1, 3), 2000.0, 1e-9);
}

TEST(Model, ShorthandExpandsLikeSequential) {
  ModelConfig m;
  m.hidden = {8, 4};
  m.batchnorm = true;
  m.dropout = 0.2;
  m.activation = LayerKind::tanh;
  const auto specs = resolve_layers(m, 3);
  std::vector<std::string> types;
  for (const auto& s : specs) types.push_back(layer_kind_name(s.type));
  EXPECT_EQ(types, (std::vector<std::string>{"linear", "batchnorm", "tanh", "dropout", "linear", "batchnorm", "tanh",
                                             "dropout", "linear"}));
  Sequential<float> net(specs, 5);
  EXPECT_EQ(net.n_outputs(), 3);
  EXPECT_EQ(net.layout().segments[0].name, "0.weight");
  EXPECT_EQ(net.layout().segments[2].name, "1.weight");
  EXPECT_EQ(net.layout().total, 8 * 5 + 8 + 16 + 4 * 8 + 4 + 8 + 3 * 4 + 3);
}

// Empirical variance of each initialiser within statistical tolerance of its theory.
TEST(Init, EmpiricalVarianceMatchesTheory) {
  const int64_t I = 400, O = 300, n = I * O;
  std::vector<double> w(n);
  struct Case {
    const char* name;
    double expected;
  };
  const double gain = std::sqrt(2.0);
  for (Case cs : {Case{"plain_uniform", 1.0 / (3 * I)}, Case{"xavier_uniform", 2.0 / (I + O)},
                  Case{"xavier_normal", 2.0 / (I + O)}, Case{"he_uniform", 2.0 / I}, Case{"he_normal", 2.0 / I},
                  Case{"lecun_uniform", 1.0 / I}, Case{"lecun_normal", 1.0 / I}}) {
    init_fill(parse_init(cs.name), 0, I, O, gain, 5, 0, 0, w.data(), n);
    double s = 0, s2 = 0;
    for (double v : w) s += v, s2 += v * v;
    const double var = s2 / n - (s / n) * (s / n);
    // The sample variance's relative standard error is ≤ sqrt(2/n) ≈ 0.004; allow 5σ.
    EXPECT_NEAR(var / cs.expected, 1.0, 0.02) << cs.name;
  }
  const double leaky_gain = std::sqrt(2.0 / (1 + 0.2 * 0.2));
  init_fill(Init::he_normal, 0, I, O, leaky_gain, 5, 0, 0, w.data(), n);
  double s2 = 0;
  for (double v : w) s2 += v * v;
  EXPECT_NEAR(s2 / n / (2.0 / (1.04 * I)), 1.0, 0.02);
  init_fill(Init::constant, 0.25, I, O, gain, 5, 0, 0, w.data(), 10);
  EXPECT_EQ(w[3], 0.25);
}

TEST(Init, LeakyReluGainIsUsedByTheModel) {
  ModelConfig m;
  m.hidden = {2000};
  m.activation = LayerKind::leaky_relu;
  m.leaky_slope = 0.5;
  m.init = cn::Init::he_normal;
  Sequential<double> net(resolve_layers(m, 1), 1000);
  net.initialize(m, 1);
  double s2 = 0;
  for (int64_t i = 0; i < 2000 * 1000; ++i) s2 += net.params()[i] * net.params()[i];
  EXPECT_NEAR(s2 / 2e6 / (2.0 / (1.25 * 1000)), 1.0, 0.01);
}

namespace cn {
namespace {

// model.init_scale multiplies a random initialiser's weights (same draws, so exactly the
// factor) and leaves biases and constant initialisers as written.
TEST(Init, GainScalesRandomWeightsOnly) {
  auto params = [](Init init, double gain) {
    Sequential<double> net({spec_of("linear")}, 3);
    ModelConfig mc;
    mc.init = init;
    mc.bias_init = Init::constant;
    mc.init_constant = 0.25;
    mc.init_scale = gain;
    net.initialize(mc, 7);
    return std::vector<double>(net.params().data(), net.params().data() + net.layout().total);
  };
  const auto one = params(Init::he_normal, 1.0), three = params(Init::he_normal, 3.0);
  ASSERT_EQ(one.size(), 16u);  // 4 x 3 weights, then 4 biases
  for (size_t i = 0; i < 12; ++i) EXPECT_DOUBLE_EQ(three[i], 3.0 * one[i]) << i;
  for (size_t i = 12; i < 16; ++i) EXPECT_EQ(three[i], 0.25) << i;
  EXPECT_EQ(params(Init::constant, 3.0), params(Init::constant, 1.0));
}

}  // namespace
}  // namespace cn
