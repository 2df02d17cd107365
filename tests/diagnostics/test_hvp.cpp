// The HVP engine and the layers' R-passes against float64 central differences of the
// gradient, for every activation, BatchNorm (training and evaluation), Dropout with a
// fixed mask, every loss, K = 1 and K = 5.
#include <gtest/gtest.h>

#include "test_util.h"

#include <cmath>
#include <random>

#include "diagnostics/hvp.h"
#include "layers/model.h"

using namespace cn;

namespace {

using test::random_vec;

using test::L;

std::vector<double> targets_for(LossKind kind, int64_t N, int64_t C, uint32_t seed) {
  if (kind == LossKind::cross_entropy) {
    std::vector<double> t(N);
    for (int64_t n = 0; n < N; ++n) t[n] = static_cast<double>((n * 7 + seed) % C);
    return t;
  }
  if (kind == LossKind::bce_logits) return random_vec(N * C, seed, 0.0, 1.0);
  return random_vec(N * C, seed, -1.0, 1.0);
}

struct Fixture {
  Sequential<double> net;
  Loss<double> loss;
  HvpEngine<double> eng;
  std::vector<double> x, t;
  int64_t N;
  PassCtx c;
  Fixture(const std::vector<LayerSpec>& specs, int64_t n_in, LossKind kind, int64_t N_, bool training = true)
      : net(specs, n_in), loss(kind), eng(net, loss), N(N_) {
    net.reserve(N, 8);
    ModelConfig mc;
    mc.init = cn::Init::xavier_normal;
    net.initialize(mc, 5);
    auto p = random_vec(net.layout().total, 17, -0.9, 0.9);
    for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = p[i];
    for (size_t i = 0; i < net.size(); ++i)  // BatchNorm: γ near 1, random running statistics
      if (net.layer(i).kind() == LayerKind::batchnorm) {
        const int64_t off = net.layer_offset(i), O = net.layer(i).out_features();
        for (int64_t o = 0; o < O; ++o) net.params()[off + o] = 1.0 + 0.3 * p[off + o];
        auto st = net.layer(i).state();
        auto rm = random_vec(O, 31, -0.5, 0.5), rv = random_vec(O, 32, 0.5, 2.0);
        for (int64_t o = 0; o < O; ++o) st[0].data[o] = rm[o], st[1].data[o] = rv[o];
      }
    x = random_vec(N * n_in, 23, -1.5, 1.5);
    t = targets_for(kind, N, net.n_outputs(), 29);
    c.training = training;
    c.dropout_key = philox_key(7, RngStream::curvature);
    c.step = 4;
  }
  std::vector<double> grad_at(const std::vector<double>& theta) {
    std::vector<double> keep(net.params().data(), net.params().data() + theta.size());
    for (size_t i = 0; i < theta.size(); ++i) net.params()[i] = theta[i];
    std::vector<double> g(theta.size());
    eng.gradient(c, x.data(), t.data(), N, g.data());
    for (size_t i = 0; i < theta.size(); ++i) net.params()[i] = keep[i];
    return g;
  }
};

double max_abs_err(const double* a, const double* b, int64_t n, double* scale_out = nullptr) {
  double scale = 0, e = 0;
  for (int64_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(b[i])), e = std::max(e, std::fabs(a[i] - b[i]));
  if (scale_out) *scale_out = scale;
  return e;
}

// HV against (g(θ + εv) - g(θ - εv)) / 2ε for K random directions.
void check_hvp_fd(Fixture& f, int64_t K, const std::string& what) {
  const int64_t P = f.net.layout().total;
  auto V = random_vec(K * P, 101 + static_cast<uint32_t>(K));
  std::vector<double> HV(K * P);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), K);
  std::vector<double> theta(f.net.params().data(), f.net.params().data() + P);
  const double eps = 1e-5;
  for (int64_t k = 0; k < K; ++k) {
    auto tp = theta, tm = theta;
    for (int64_t i = 0; i < P; ++i) tp[i] += eps * V[k * P + i], tm[i] -= eps * V[k * P + i];
    auto gp = f.grad_at(tp), gm = f.grad_at(tm);
    std::vector<double> fd(P);
    for (int64_t i = 0; i < P; ++i) fd[i] = (gp[i] - gm[i]) / (2 * eps);
    double scale = 0;
    const double err = max_abs_err(HV.data() + k * P, fd.data(), P, &scale);
    // Central differences: O(ε²) truncation + O(1e-16/ε) rounding, relative to the scale.
    EXPECT_LE(err, 1e-6 * std::max(scale, 1e-3)) << what << " K=" << K << " direction " << k << " scale " << scale;
    EXPECT_GT(scale, 1e-8) << what << ": a vanishing product tests nothing";
  }
}

std::vector<LayerSpec> mlp(const std::string& act) {
  return {L("linear", 5), L(act), L("linear", 4), L(act), L("linear", 3)};
}

}  // namespace

class HvpActivationLoss : public ::testing::TestWithParam<std::tuple<std::string, std::string>> {};

TEST_P(HvpActivationLoss, MatchesFiniteDifferencesOfTheGradient) {
  const auto [act, loss] = GetParam();
  Fixture f(mlp(act), 4, loss_kind(loss), 6);
  check_hvp_fd(f, 1, act + "/" + loss);
  check_hvp_fd(f, 5, act + "/" + loss);
}

INSTANTIATE_TEST_SUITE_P(AllActivationsAndLosses, HvpActivationLoss,
                         ::testing::Combine(::testing::Values("relu", "leaky_relu", "elu", "sigmoid", "tanh",
                                                              "identity", "gelu", "softplus"),
                                            ::testing::Values("cross_entropy", "mse", "bce_logits")),
                         [](const auto& info) { return std::get<0>(info.param) + "_" + std::get<1>(info.param); });

class HvpLoss : public ::testing::TestWithParam<std::string> {};

TEST_P(HvpLoss, BatchNormTrainingDropoutFixedMask) {
  Fixture f({L("linear", 5), L("batchnorm"), L("tanh"), L("dropout", 0, 0.3), L("linear", 4), L("batchnorm"),
             L("sigmoid"), L("linear", 3)},
            4, loss_kind(GetParam()), 7);
  check_hvp_fd(f, 1, "bn-train " + GetParam());
  check_hvp_fd(f, 5, "bn-train " + GetParam());
}

TEST_P(HvpLoss, BatchNormEvaluationMode) {
  Fixture f({L("linear", 5), L("batchnorm"), L("elu"), L("linear", 4), L("batchnorm"), L("linear", 3)}, 4,
            loss_kind(GetParam()), 6, /*training=*/false);
  check_hvp_fd(f, 1, "bn-eval " + GetParam());
  check_hvp_fd(f, 5, "bn-eval " + GetParam());
}

TEST_P(HvpLoss, BatchNormFirstAndLast) {
  // BatchNorm with no upstream tangent (first layer) and right before the loss.
  Fixture f({L("batchnorm"), L("linear", 5), L("softplus"), L("linear", 3), L("batchnorm")}, 4, loss_kind(GetParam()),
            6);
  check_hvp_fd(f, 5, "bn-edges " + GetParam());
}

INSTANTIATE_TEST_SUITE_P(AllLosses, HvpLoss, ::testing::Values("cross_entropy", "mse", "bce_logits"));

TEST(Hvp, LayerRestrictedProductsAreTheRowsOfTheFullOne) {
  Fixture f({L("linear", 5), L("batchnorm"), L("tanh"), L("linear", 4), L("sigmoid"), L("linear", 3)}, 4,
            LossKind::cross_entropy, 6);
  const int64_t P = f.net.layout().total, K = 3;
  f.eng.prepare(f.c, f.x.data(), f.t.data(), f.N);
  for (size_t layer : {0, 1, 3, 5}) {
    const int64_t off = f.net.layer_offset(layer), p = f.net.layer(layer).num_params();
    auto v = random_vec(K * p, 7 + layer);
    std::vector<double> Vfull(K * P, 0.0), HVfull(K * P), HV(K * p);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < p; ++j) Vfull[k * P + off + j] = v[k * p + j];
    f.eng.apply(Vfull.data(), HVfull.data(), K);
    f.eng.apply_layer(layer, v.data(), HV.data(), K);
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < p; ++j) EXPECT_NEAR(HV[k * p + j], HVfull[k * P + off + j], 1e-13) << layer;
  }
}

TEST(Hvp, DirectionsAreIndependentOfK) {
  // Each row of a K = 5 product equals the K = 1 product of that direction (the stacked
  // and the batched GEMM paths agree).
  Fixture f(mlp("gelu"), 4, LossKind::mse, 6);
  const int64_t P = f.net.layout().total, K = 5;
  auto V = random_vec(K * P, 3);
  std::vector<double> HV(K * P), one(P);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), K);
  for (int64_t k = 0; k < K; ++k) {
    f.eng.apply(V.data() + k * P, one.data(), 1);
    for (int64_t i = 0; i < P; ++i) EXPECT_NEAR(one[i], HV[k * P + i], 1e-13);
  }
}

TEST(Hvp, NoAllocationAfterTheFirstCallAndRunningStatisticsUntouched) {
  Fixture f({L("linear", 5), L("batchnorm"), L("relu"), L("dropout", 0, 0.2), L("linear", 3)}, 4,
            LossKind::cross_entropy, 6);
  auto st = f.net.layer(1).state();
  std::vector<double> rm(st[0].data, st[0].data + 5), rv(st[1].data, st[1].data + 5);
  const double nb = st[2].data[0];
  const int64_t P = f.net.layout().total, K = 4;
  auto V = random_vec(K * P, 3);
  std::vector<double> HV(K * P);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), K);
  const int64_t before = host_allocation_count();
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), K);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), 2);
  f.eng.gradient(f.c, f.x.data(), f.t.data(), f.N);
  EXPECT_EQ(host_allocation_count(), before);
  EXPECT_EQ(std::vector<double>(st[0].data, st[0].data + 5), rm);
  EXPECT_EQ(std::vector<double>(st[1].data, st[1].data + 5), rv);
  EXPECT_EQ(st[2].data[0], nb);
  // And the flag is restored: an ordinary training forward updates them again.
  f.net.forward(f.c, f.x.data(), f.N);
  EXPECT_NE(std::vector<double>(st[0].data, st[0].data + 5), rm);
}

TEST(Hvp, HvpDoesNotTouchTheGradientBuffer) {
  Fixture f({L("linear", 5), L("batchnorm"), L("tanh"), L("linear", 3)}, 4, LossKind::mse, 6);
  const int64_t P = f.net.layout().total;
  f.eng.gradient(f.c, f.x.data(), f.t.data(), f.N);
  std::vector<double> g(f.net.grads().data(), f.net.grads().data() + P);
  auto V = random_vec(P, 3);
  std::vector<double> HV(P);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), 1);
  EXPECT_EQ(std::vector<double>(f.net.grads().data(), f.net.grads().data() + P), g);
}

TEST(Hvp, FloatAgreesWithDouble) {
  auto specs = mlp("tanh");
  Fixture f(specs, 4, LossKind::cross_entropy, 6);
  Sequential<float> nf(specs, 4);
  Loss<float> lf(LossKind::cross_entropy);
  HvpEngine<float> ef(nf, lf);
  nf.reserve(6, 2);
  const int64_t P = f.net.layout().total;
  for (int64_t i = 0; i < P; ++i) nf.params()[i] = static_cast<float>(f.net.params()[i]);
  std::vector<float> xf(f.x.begin(), f.x.end()), tf(f.t.begin(), f.t.end());
  auto V = random_vec(2 * P, 9);
  std::vector<float> Vf(V.begin(), V.end()), HVf(2 * P);
  std::vector<double> HV(2 * P);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), 6, V.data(), HV.data(), 2);
  ef.hvp(f.c, xf.data(), tf.data(), 6, Vf.data(), HVf.data(), 2);
  std::vector<double> HVd(HVf.begin(), HVf.end());
  double scale = 0;
  const double err = max_abs_err(HVd.data(), HV.data(), 2 * P, &scale);
  EXPECT_GT(scale, 1e-3);
  EXPECT_LE(err, 1e-4 * scale);
}

TEST(Hvp, LargeLayersUseBatchedGemmsWithTheSameResult) {
  // K·O·I above the stacking limit (2^22): the K-GEMM path of the Linear R-forward.
  Fixture f({L("linear", 1500), L("tanh"), L("linear", 1500), L("sigmoid"), L("linear", 3)}, 8, LossKind::cross_entropy,
            3);
  const int64_t P = f.net.layout().total, K = 2;
  auto V = random_vec(K * P, 11);
  std::vector<double> HV(K * P), one(P);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), HV.data(), K);
  double scale = 0;
  for (int64_t k = 0; k < K; ++k) {
    f.eng.apply(V.data() + k * P, one.data(), 1);
    const double err = max_abs_err(HV.data() + k * P, one.data(), P, &scale);
    EXPECT_LE(err, 1e-12 * scale) << k;
    EXPECT_GT(scale, 1e-6);
  }
}

TEST(Hvp, OneDirectionPairedProductEqualsTwoProducts) {
  // For one direction (Hv)W = Rdyᵀ x + dyᵀ Rx is one GEMM over the stacked [Rdy; dy] and
  // [x; Rx] (the default); switched off, two GEMMs. Same products up to summation order.
  Fixture f(mlp("tanh"), 4, LossKind::cross_entropy, 6);
  const int64_t P = f.net.layout().total;
  auto V = random_vec(P, 41);
  std::vector<double> one(P), two(P);
  const bool was = rpass_pairs_as_one_gemm();
  set_rpass_pairs_as_one_gemm(true);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), one.data(), 1);
  set_rpass_pairs_as_one_gemm(false);
  f.eng.hvp(f.c, f.x.data(), f.t.data(), f.N, V.data(), two.data(), 1);
  set_rpass_pairs_as_one_gemm(was);
  double scale = 0;
  const double err = max_abs_err(one.data(), two.data(), P, &scale);
  EXPECT_GT(scale, 1e-6);
  EXPECT_LE(err, 1e-14 * scale);
}
