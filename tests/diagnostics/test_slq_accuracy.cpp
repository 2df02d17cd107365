// The iterative path (Lanczos + deflated SLQ) against the exact spectrum, with the default
// settings, on blocks small enough to solve densely: a ReLU net's rank-deficient PSD loss
// block and a tanh net's indefinite one, both through the curvature checkpoint (forced
// iterative by dense_max_params), and a planted spectrum Q diag Qᵀ. Also the structural rank
// bound against the exact numerical rank, and the ill_conditioned / spectrum_at_zero rules
// on a structurally singular block and on a planted κ = 1e12 one (docs/curvature.md §3–4).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "diagnostics/alarms.h"
#include "diagnostics/curvature_checkpoint.h"
#include "diagnostics/eigen.h"
#include "diagnostics/spectral_metrics.h"
#include "test_util.h"

using namespace cn;

namespace {

using test::L;
using test::random_vec;

struct Exact {
  double near_zero = 0, negative = 0, trace = 0, abs_sum = 0, max_abs = 0, lambda_max = 0;
};

// Shares and sums of a full spectrum at the absolute tolerance tau.
Exact exact_of(const std::vector<double>& ev, double tau) {
  Exact e;
  for (double x : ev) {
    e.near_zero += std::fabs(x) <= tau;
    e.negative += x < -tau;
    e.trace += x;
    e.abs_sum += std::fabs(x);
    e.max_abs = std::max(e.max_abs, std::fabs(x));
  }
  e.near_zero /= static_cast<double>(ev.size());
  e.negative /= static_cast<double>(ev.size());
  e.lambda_max = *std::max_element(ev.begin(), ev.end());
  return e;
}

// The iterative estimates against the exact spectrum, with the checkpoint's defaults. A
// share's error is at most the weight of the node straddling ±τ (Chebyshev-Markov-
// Stieltjes); the default τ (1e-2 · max|θ|) and 80 steps keep it below 0.03 on PSD and
// indefinite blocks alike (docs/curvature.md §3).
// trace_rel: relative to |trace| (PSD) or to Σ|λ| (indefinite: the trace is a small
// difference of large sums).
void expect_iterative_matches(const SpectralMetrics& m, const std::vector<double>& ev, double tau,
                              double share_tol = 0.03, bool indefinite = false) {
  const Exact e = exact_of(ev, tau);
  ASSERT_TRUE(m.near_zero_share && m.negative_share && m.trace && m.trace_stderr && m.effective_rank && m.lambda_max &&
              m.numerical_rank);
  EXPECT_NEAR(*m.near_zero_share, e.near_zero, share_tol);
  EXPECT_NEAR(*m.negative_share, e.negative, share_tol);
  EXPECT_LE(std::fabs(*m.trace - e.trace), 3 * *m.trace_stderr + 1e-9 * e.abs_sum) << "stderr " << *m.trace_stderr;
  EXPECT_LE(std::fabs(*m.trace - e.trace), 0.1 * (indefinite ? e.abs_sum : std::fabs(e.trace)));
  EXPECT_NEAR(*m.lambda_max, e.lambda_max, 1e-6 * e.max_abs);
  const double er = e.abs_sum / e.max_abs;
  EXPECT_NEAR(*m.effective_rank, er, 0.1 * er);
  EXPECT_NEAR(*m.numerical_rank, static_cast<double>(ev.size()) * (1 - *m.near_zero_share), 1e-6);
}

// A small classifier and its curvature batch; `run` computes the given layers' loss blocks
// through the checkpoint, densely (dense_max_params large) or iteratively (small).
struct Classifier {
  std::vector<LayerSpec> specs;
  int64_t I, N;
  LossKind loss;
  std::vector<double> x, t, theta;
  Classifier(const std::string& act, LossKind k, int64_t in, int64_t width, int64_t C, int64_t n, uint32_t seed)
      : specs({L("linear", width), L(act), L("linear", width), L(act), L("linear", C)}), I(in), N(n), loss(k) {
    Sequential<double> net(specs, I);
    theta = random_vec(net.layout().total, seed, -0.6, 0.6);
    x = random_vec(N * I, seed + 1, -1.5, 1.5);
    if (k == LossKind::cross_entropy) {
      for (int64_t i = 0; i < N; ++i) t.push_back(static_cast<double>((5 * i + 2) % C));
    } else {
      t = random_vec(N * C, seed + 2, -1.0, 1.0);
    }
  }
  CurvatureOutput run(std::vector<int64_t> layers, int64_t dense_max) const {
    DiagnosticsConfig dc;  // default probes, Lanczos steps and tolerances
    dc.kinds = {CurvatureKind::loss};
    dc.layers = std::move(layers);
    dc.batch_size = N;
    dc.dense_max_params = dense_max;
    CurvatureCheckpoint ck(dc, specs, I, loss, x, t, N, /*seed=*/7);
    ModelSnapshot snap;
    snap.params = theta;
    return ck.run(3, snap);
  }
};

const SpectralMetrics& metrics_of(const CurvatureOutput& out, int64_t layer) {
  for (const auto& o : out.observations)
    if (o.layer == layer) return o.metrics;
  throw Error("no row for layer " + std::to_string(layer));
}

// Q diag(lambda) Qᵀ with Q the eigenvectors of a random symmetric matrix.
std::vector<double> with_spectrum(const std::vector<double>& lambda, uint32_t seed) {
  const int64_t n = static_cast<int64_t>(lambda.size());
  std::vector<double> R = random_vec(n * n, seed);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < i; ++j) R[j * n + i] = R[i * n + j];
  const std::vector<double> Q = eigh(R.data(), n, true).vectors;  // column k: vector k
  std::vector<double> A(static_cast<size_t>(n * n), 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += Q[i * n + k] * lambda[k] * Q[j * n + k];
      A[i * n + j] = A[j * n + i] = s;
    }
  return A;
}

double mass_below(const std::vector<double>& grid, const std::vector<double>& density, double t) {
  double below = 0, all = 0;
  for (size_t i = 0; i + 1 < grid.size(); ++i) {
    const double m = 0.5 * (grid[i + 1] - grid[i]) * (density[i] + density[i + 1]);
    all += m;
    if (grid[i + 1] <= t) below += m;
  }
  return all > 0 ? below / all : 0.0;
}

}  // namespace

// A ReLU net's hidden block: PSD (it equals its Gauss-Newton block) and rank-deficient by
// construction (rank ≤ B·(C−1) = 64 of 600).
TEST(SlqAccuracy, ReluRankDeficientPsdBlock) {
  const Classifier net("relu", LossKind::cross_entropy, 12, 24, 5, 16, 3);
  const CurvatureOutput dense = net.run({2, 4}, 100000), iter = net.run({2}, 100);
  const auto& ev = dense.spectra.at("loss.2.eigenvalues");
  const SpectralMetrics& m = metrics_of(iter, 2);
  ASSERT_EQ(m.method, "lanczos+slq+hutchinson");
  const double tau = iter.spectra.at("loss.2.tau").at(0);
  EXPECT_DOUBLE_EQ(tau, m.tau);
  const Exact e = exact_of(ev, tau);
  EXPECT_GT(e.near_zero, 0.85);  // the block is mostly null space
  expect_iterative_matches(m, ev, tau);
  // No density below −τ for a PSD block; the atom at zero carries the null space.
  EXPECT_LT(mass_below(iter.spectra.at("loss.2.density_grid"), iter.spectra.at("loss.2.density"), -tau), 0.01);
  EXPECT_NEAR(iter.spectra.at("loss.2.zero_mass").at(0), *m.near_zero_share, 1e-12);
  // The quadrature in the file: per-probe node counts, each probe's weights sum to 1/P.
  const auto& nodes = iter.spectra.at("loss.2.ritz_nodes");
  const auto& weights = iter.spectra.at("loss.2.ritz_weights");
  const auto& steps = iter.spectra.at("loss.2.ritz_probe_steps");
  ASSERT_EQ(nodes.size(), weights.size());
  ASSERT_EQ(steps.size(), static_cast<size_t>(DiagnosticsConfig{}.probes));
  size_t at = 0;
  for (double k : steps) {
    double sum = 0;
    for (int64_t i = 0; i < static_cast<int64_t>(k); ++i) sum += weights[at++];
    EXPECT_NEAR(sum, 1.0 / static_cast<double>(steps.size()), 1e-12);
  }
  EXPECT_EQ(at, nodes.size());
  // Structural bound ≥ the exact numerical rank (dense, default τ); tight on the output layer.
  const SpectralMetrics& d2 = metrics_of(dense, 2);
  const SpectralMetrics& d4 = metrics_of(dense, 4);
  ASSERT_TRUE(d2.structural_rank && d2.numerical_rank && d4.structural_rank && d4.numerical_rank);
  EXPECT_EQ(*d2.structural_rank, 16 * 4);  // B·min(C−1, d_out)
  EXPECT_GE(*d2.structural_rank, *d2.numerical_rank);
  EXPECT_EQ(*d4.structural_rank, 4 * 16);  // (C−1)·min(d_in+1, B)
  EXPECT_EQ(*d4.numerical_rank, *d4.structural_rank);
  EXPECT_EQ(*m.structural_rank, *d2.structural_rank);
}

// A tanh net's block is indefinite: negative mass must be found, not invented.
TEST(SlqAccuracy, TanhIndefiniteBlock) {
  const Classifier net("tanh", LossKind::mse, 10, 20, 4, 40, 11);
  const CurvatureOutput dense = net.run({2}, 100000), iter = net.run({2}, 100);
  const auto& ev = dense.spectra.at("loss.2.eigenvalues");
  const SpectralMetrics& m = metrics_of(iter, 2);
  const double tau = m.tau;
  EXPECT_GT(exact_of(ev, tau).negative, 0.05);  // genuinely indefinite
  expect_iterative_matches(m, ev, tau, 0.03, true);
}

// A planted spectrum: 40% exact zeros, 15% negatives, the rest positive over six decades.
TEST(SlqAccuracy, PlantedSpectrum) {
  const int64_t n = 500;
  std::mt19937_64 g(5);
  std::uniform_real_distribution<double> u(0, 1);
  std::vector<double> lambda;
  for (int64_t i = 0; i < n; ++i) {
    const double r = u(g);
    lambda.push_back(r < 0.4 ? 0.0 : r < 0.55 ? -std::pow(10.0, -3 * u(g)) : 3 * std::pow(10.0, -6 * u(g)));
  }
  lambda[0] = 10.0;  // a clear top
  const std::vector<double> A = with_spectrum(lambda, 17);
  const MatVec op = [&A, n](const double* v, double* out) {
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += A[i * n + j] * v[j];
      out[i] = s;
    }
  };
  // The checkpoint's defaults.
  const DiagnosticsConfig dc;
  LanczosOptions lo;
  lo.k = static_cast<int>(dc.lanczos_k);
  lo.key = ProbeKey{1, 2, 3};
  lo.converged_tol = kDeflationTol;
  const LanczosResult lz = lanczos(op, n, lo);
  SlqOptions so;
  so.n_probes = static_cast<int>(dc.probes);
  so.key = ProbeKey{4, 5, 6};
  so.deflate = &lz;
  const SlqResult sq = slq(op, n, so);
  const SpectralMetrics m = iterative_metrics(n, &lz, &sq, nullptr);
  expect_iterative_matches(m, lambda, m.tau, 0.03, true);
}

// ill_conditioned and spectrum_at_zero: quiet on a block singular by construction but well
// conditioned on its range; firing on a planted κ = 1e12 above τ.
TEST(SlqAccuracy, ConditioningAlarms) {
  AlarmsConfig c;  // default thresholds
  OptimConfig o;
  auto fired = [&](const SpectralMetrics& m, const char* rule) {
    AlarmEngine e(c, o);
    e.observe_curvature(10, {{2, CurvatureKind::loss, m, std::nullopt}}, 0.1);
    for (const auto& r : e.take_rows())
      if (r["rule"] == rule) return true;
    return false;
  };
  // 90% zeros that the structure forces, the rest within one decade.
  std::vector<double> singular(1000, 0.0);
  for (int i = 0; i < 100; ++i) singular[i] = 1.0 + 9.0 * i / 99.0;
  SpectralMetrics s = spectral_metrics(singular);
  s.set_structural_rank(100, "test");
  EXPECT_FALSE(fired(s, "ill_conditioned"));
  EXPECT_FALSE(fired(s, "spectrum_at_zero"));
  // The same zeros without a structural reason: excess zeros.
  SpectralMetrics unexplained = spectral_metrics(singular);
  unexplained.set_structural_rank(1000, "test");
  EXPECT_TRUE(fired(unexplained, "spectrum_at_zero"));
  EXPECT_FALSE(fired(unexplained, "ill_conditioned"));
  // A planted κ = 1e12 over eigenvalues all above τ (a tolerance that resolves it).
  std::vector<double> planted;
  for (int i = 0; i < 200; ++i) planted.push_back(std::pow(10.0, -12.0 * i / 199.0));
  MetricOptions fine;
  fine.tau_rel = 1e-14;
  SpectralMetrics p = spectral_metrics(planted, fine);
  p.set_structural_rank(200, "test");
  ASSERT_TRUE(p.condition);
  EXPECT_NEAR(*p.condition, 1e12, 1e6);
  EXPECT_TRUE(fired(p, "ill_conditioned"));
  EXPECT_FALSE(fired(p, "spectrum_at_zero"));
}
