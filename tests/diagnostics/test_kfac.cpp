// K-FAC: factors against a direct computation, the spectrum (products of the factors'
// eigenvalues) against eigvalsh(kron), and the scaling against the Fisher of the mean loss.
#include <gtest/gtest.h>

#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <random>

#include "diagnostics/curvature_checkpoint.h"
#include "diagnostics/eigen.h"
#include "diagnostics/hvp.h"
#include "diagnostics/kfac.h"
#include "diagnostics/local_hessian.h"
#include "layers/model.h"

using namespace cn;

namespace {

using test::random_vec;

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::fabs(e));
  return m;
}

LayerSpec spec(const std::string& type, int64_t out = 0) {
  LayerSpec s;
  s.type = parse_enum(kLayerKinds, type, "type");
  s.out = out;
  return s;
}

}  // namespace

TEST(Kfac, FactorsMatchDirectComputation) {
  const int64_t N = 9, I = 4, O = 3;
  const auto x = random_vec(N * I, 1), dy = random_vec(N * O, 2);
  const auto f = kfac_factors(x.data(), dy.data(), N, I, O);
  ASSERT_EQ(f.A.size(), static_cast<size_t>((I + 1) * (I + 1)));
  ASSERT_EQ(f.G.size(), static_cast<size_t>(O * O));
  for (int64_t a = 0; a <= I; ++a)
    for (int64_t b = 0; b <= I; ++b) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += (a < I ? x[n * I + a] : 1.0) * (b < I ? x[n * I + b] : 1.0);
      EXPECT_NEAR(f.A[a * (I + 1) + b], s / N, 1e-14) << a << "," << b;
    }
  for (int64_t a = 0; a < O; ++a)
    for (int64_t b = 0; b < O; ++b) {
      // mean over n of ĝ ĝᵀ with ĝ_n = N dy_n
      double s = 0;
      for (int64_t n = 0; n < N; ++n) s += (N * dy[n * O + a]) * (N * dy[n * O + b]);
      EXPECT_NEAR(f.G[a * O + b], s / N, 1e-12) << a << "," << b;
    }
  EXPECT_DOUBLE_EQ(f.A[I * (I + 1) + I], 1.0);  // the bias entry of A is mean(1·1)
  // Float inputs give the same factors to float precision.
  std::vector<float> xf(x.begin(), x.end()), dyf(dy.begin(), dy.end());
  const auto ff = kfac_factors(xf.data(), dyf.data(), N, I, O);
  for (size_t e = 0; e < f.G.size(); ++e) EXPECT_NEAR(ff.G[e], f.G[e], 1e-5 * max_abs(f.G));
}

TEST(Kfac, SpectrumIsProductsOfFactorEigenvalues) {
  const int64_t N = 6, I = 3, O = 4;
  const auto x = random_vec(N * I, 3), dy = random_vec(N * O, 4);
  const auto f = kfac_factors(x.data(), dy.data(), N, I, O);
  const auto s = kfac_spectrum(f);
  EXPECT_EQ(s.info, 0);
  const int64_t p = (I + 1) * O;
  ASSERT_EQ(s.eigenvalues.size(), static_cast<size_t>(p));
  EXPECT_TRUE(std::is_sorted(s.eigenvalues.begin(), s.eigenvalues.end()));
  // eigvalsh of the explicit Kronecker product (layout order: a permutation of G ⊗ A).
  const auto M = kfac_matrix(f);
  const auto dense = eigh(M.data(), p);
  EXPECT_LT(dense.symmetry_residual, 1e-15);
  const double scale = max_abs(dense.values);
  for (int64_t i = 0; i < p; ++i) EXPECT_NEAR(s.eigenvalues[i], dense.values[i], 1e-12 * scale) << i;
  // The diagonal and bias mask, in layout order.
  for (int64_t q = 0; q < p; ++q) {
    EXPECT_NEAR(s.diagonal[q], M[q * p + q], 1e-15 * scale) << q;
    EXPECT_EQ(s.is_bias[q], q >= O * I) << q;
  }
  // Row-major kron(A, G) has the same spectrum.
  const int64_t I1 = I + 1;
  std::vector<double> K(p * p);
  for (int64_t a = 0; a < I1; ++a)
    for (int64_t b = 0; b < I1; ++b)
      for (int64_t c = 0; c < O; ++c)
        for (int64_t d = 0; d < O; ++d) K[(a * O + c) * p + b * O + d] = f.A[a * I1 + b] * f.G[c * O + d];
  const auto dk = eigh(K.data(), p);
  for (int64_t i = 0; i < p; ++i) EXPECT_NEAR(s.eigenvalues[i], dk.values[i], 1e-12 * scale) << i;
  // Metrics: PSD factors give a PSD spectrum.
  const auto m = kfac_metrics(s);
  EXPECT_EQ(m.method, "kfac");
  ASSERT_TRUE(m.negative_share.has_value());
  EXPECT_EQ(*m.negative_share, 0.0);
  ASSERT_TRUE(m.bias_trace_share.has_value());
  double tr = 0, bias = 0;
  for (int64_t q = 0; q < p; ++q) tr += M[q * p + q], bias += q >= O * I ? M[q * p + q] : 0.0;
  EXPECT_NEAR(*m.bias_trace_share, bias / tr, 1e-12);
}

// Scaling: with N copies of one sample, every per-sample gradient is the same and K-FAC is
// exact: G ⊗ A must equal the Fisher of the mean loss, (1/N) Σ_n ∇ℓ_n ∇ℓ_nᵀ = ∇ℓ ∇ℓᵀ, where
// ∇ℓ is the gradient of the single sample's loss (a batch of one).
TEST(Kfac, ScalingMatchesFisherOfMeanLoss) {
  const int64_t I = 3, C = 3, N = 8;
  const std::vector<LayerSpec> specs = {spec("linear", 4), spec("tanh"), spec("linear", C)};
  Sequential<double> net(specs, I);
  net.reserve(N);
  const auto theta = random_vec(net.layout().total, 5, -0.9, 0.9);
  for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = theta[i];
  const auto x1 = random_vec(I, 6, -1.5, 1.5);
  std::vector<double> x, t;
  for (int64_t n = 0; n < N; ++n) x.insert(x.end(), x1.begin(), x1.end()), t.push_back(1.0);
  PassCtx c;
  c.training = false;
  Loss<double> loss(LossKind::cross_entropy);
  loss.reserve(Device::cpu, N, C);

  // The single sample's gradient.
  const double* z1 = net.forward(c, x.data(), 1);
  loss.forward_backward(c, z1, t.data(), 1, C);
  net.backward(c, loss.dz(), 1);
  const std::vector<double> g(net.grads().data(), net.grads().data() + net.layout().total);

  // The batch of N copies: K-FAC from output_grad (dL/dz of the mean loss).
  const double* z = net.forward(c, x.data(), N);
  loss.forward_backward(c, z, t.data(), N, C);
  net.backward(c, loss.dz(), N);
  for (size_t layer : {size_t(0), size_t(2)}) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    const auto f = kfac_factors(net, layer, N);
    const auto M = kfac_matrix(f);
    const int64_t off = net.layer_offset(layer), p = net.layer(layer).num_params();
    ASSERT_EQ(M.size(), static_cast<size_t>(p * p));
    const double scale = std::max(1e-12, max_abs(M));
    for (int64_t a = 0; a < p; ++a)
      for (int64_t b = 0; b < p; ++b)
        EXPECT_NEAR(M[a * p + b], g[off + a] * g[off + b], 1e-12 * scale) << a << "," << b;
  }
}

// The model entry point reads layer_input and output_grad (dL/dz of the mean loss); the
// spectrum keeps the trace identity tr(G ⊗ A) = tr G · tr A; a non-Linear layer is refused.
TEST(Kfac, FromModelCaches) {
  const int64_t I = 4, C = 2, N = 5;
  const std::vector<LayerSpec> specs = {spec("linear", 3), spec("sigmoid"), spec("linear", C)};
  Sequential<double> net(specs, I);
  net.reserve(N);
  const auto theta = random_vec(net.layout().total, 7);
  for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = theta[i];
  const auto x = random_vec(N * I, 8);
  std::vector<double> t = {0, 1, 1, 0, 1};
  PassCtx c;
  c.training = false;
  Loss<double> loss(LossKind::cross_entropy);
  loss.reserve(Device::cpu, N, C);
  const double* z = net.forward(c, x.data(), N);
  loss.forward_backward(c, z, t.data(), N, C);
  net.backward(c, loss.dz(), N);
  const auto f = kfac_factors(net, 2, N);
  const auto direct = kfac_factors(net.layer_input(2), net.output_grad(2), N, 3, C);
  EXPECT_EQ(f.A, direct.A);
  EXPECT_EQ(f.G, direct.G);
  const auto s = kfac_spectrum(f);
  double trA = 0, trG = 0, tr = 0;
  for (int64_t a = 0; a < 4; ++a) trA += f.A[a * 4 + a];
  for (int64_t a = 0; a < C; ++a) trG += f.G[a * C + a];
  for (double e : s.eigenvalues) tr += e;
  EXPECT_NEAR(tr, trA * trG, 1e-12 * std::max(1.0, tr));
  EXPECT_THROW(kfac_factors(net, 1, N), Error);  // not a Linear
}

// The curvature engine's path (dy cached by HvpEngine::prepare, not the model's gradient
// buffers) and the curvature checkpoint's kfac rows give the factors of forward + backward.
TEST(Kfac, FromEngineAndCheckpointMatchTheModelPath) {
  const int64_t I = 4, C = 3, N = 6;
  const std::vector<LayerSpec> specs = {spec("linear", 5), spec("tanh"), spec("linear", C)};
  Sequential<double> net(specs, I);
  net.reserve(N);
  const auto theta = random_vec(net.layout().total, 9);
  for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = theta[i];
  const auto x = random_vec(N * I, 10);
  const std::vector<double> t = {0, 1, 2, 2, 1, 0};
  PassCtx c;
  Loss<double> loss(LossKind::cross_entropy);
  loss.reserve(Device::cpu, N, C);
  const double* z = net.forward(c, x.data(), N);
  loss.forward_backward(c, z, t.data(), N, C);
  net.backward(c, loss.dz(), N);
  std::vector<KfacFactors> want;
  for (size_t layer : {size_t(0), size_t(2)}) want.push_back(kfac_factors(net, layer, N));

  Sequential<double> copy(specs, I);
  for (int64_t i = 0; i < copy.layout().total; ++i) copy.params()[i] = theta[i];
  Loss<double> loss2(LossKind::cross_entropy);
  HvpEngine<double> eng(copy, loss2);
  eng.prepare(c, x.data(), t.data(), N);
  DiagnosticsConfig dc;
  dc.kinds = {cn::CurvatureKind::kfac};
  dc.batch_size = N;
  CurvatureCheckpoint ckpt(dc, specs, I, LossKind::cross_entropy, x, t, N, 0);
  ModelSnapshot snap;
  snap.params = theta;
  const CurvatureOutput out = ckpt.run(0, snap);
  for (size_t k = 0; k < 2; ++k) {
    const size_t layer = k * 2;
    SCOPED_TRACE("layer " + std::to_string(layer));
    const KfacFactors f = kfac_factors(eng, layer);
    ASSERT_EQ(f.G.size(), want[k].G.size());
    const double gs = max_abs(want[k].G);
    ASSERT_GT(gs, 0);
    for (size_t i = 0; i < f.G.size(); ++i) EXPECT_NEAR(f.G[i], want[k].G[i], 1e-13 * gs);
    EXPECT_EQ(f.A, want[k].A);
    const KfacSpectrum s = kfac_spectrum(want[k]);
    const auto& got = out.spectra.at("kfac." + std::to_string(layer) + ".eigenvalues");
    ASSERT_EQ(got.size(), s.eigenvalues.size());
    const double es = max_abs(s.eigenvalues);
    for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], s.eigenvalues[i], 1e-12 * es);
  }
  EXPECT_THROW(kfac_factors(eng, 1), Error);  // not a Linear
}

// Each factor is cut at its own tau_rel: products with a cut factor are exactly 0, and the
// condition is κ(A_kept)·κ(G_kept).
TEST(Kfac, FactorsCutAtTheirOwnTolerance) {
  KfacSpectrum s;
  s.a_eigenvalues = {1e-20, 1e-3, 1.0};  // 1e-20: numerically zero
  s.g_eigenvalues = {1e-2, 2.0};
  for (double g : s.g_eigenvalues)
    for (double a : s.a_eigenvalues) s.eigenvalues.push_back(g * a);
  std::sort(s.eigenvalues.begin(), s.eigenvalues.end());
  s.diagonal.assign(6, 0.5);
  s.is_bias.assign(6, false);
  const auto kept = kfac_kept_products(s, 1e-10);
  EXPECT_EQ(std::count(kept.begin(), kept.end(), 0.0), 2);
  const SpectralMetrics m = kfac_metrics(s);
  EXPECT_EQ(*m.rank, 4.0);
  EXPECT_NEAR(*m.condition, (1.0 / 1e-3) * (2.0 / 1e-2), 1e-6);
  EXPECT_NEAR(*m.factor_condition, 1e3, 1e-9);
}
