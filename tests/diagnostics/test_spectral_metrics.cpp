// Every spectral metric (docs/spec.md §3) on constructed spectra: diagonal, rank-deficient, negative
// definite, symmetric around zero, the zero matrix; statuses instead of NaN; the JSON keys.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "diagnostics/eigen.h"
#include "diagnostics/spectral_metrics.h"

using namespace cn;

namespace {

void expect_metric(const SpectralMetrics& m, const std::string& name, double want, double tol = 1e-12) {
  const auto v = m.get(name);
  ASSERT_TRUE(v.has_value()) << name << " is absent: " << (m.statuses.count(name) ? m.statuses.at(name) : "");
  EXPECT_NEAR(*v, want, tol) << name;
}

void expect_absent(const SpectralMetrics& m, const std::string& name, const std::string& status) {
  EXPECT_FALSE(m.get(name).has_value()) << name;
  ASSERT_TRUE(m.statuses.count(name)) << name;
  EXPECT_EQ(m.statuses.at(name), status) << name;
}

// No metric is ever non-finite, and every absent one has a status.
void expect_well_formed(const SpectralMetrics& m) {
  for (const auto& name : SpectralMetrics::names()) {
    const auto v = m.get(name);
    if (v)
      EXPECT_TRUE(std::isfinite(*v)) << name;
    else
      EXPECT_TRUE(m.statuses.count(name)) << name << " is absent without a status";
  }
}

}  // namespace

TEST(SpectralMetrics, PositiveDefiniteDiagonal) {
  const auto m = spectral_metrics({1, 2, 3, 4});
  expect_well_formed(m);
  EXPECT_EQ(m.status, "ok");
  EXPECT_EQ(m.n, 4);
  EXPECT_NEAR(m.tau, 4 * kDenseTauRel64, 1e-30);  // τ = tau_rel · max|λ|, the float64 default
  EXPECT_EQ(m.tau_rel, kDenseTauRel64);
  expect_metric(m, "trace", 10);
  expect_metric(m, "logdet", std::log(24.0));
  expect_metric(m, "logdet_sign", 1);
  expect_metric(m, "condition", 4);
  expect_metric(m, "effective_rank", 2.5);
  expect_metric(m, "rank", 4);
  expect_metric(m, "near_zero_share", 0);
  expect_metric(m, "negative_share", 0);
  expect_metric(m, "balance", 1);
  expect_metric(m, "symmetry", 0);
  expect_metric(m, "mean", 2.5);
  expect_metric(m, "std", std::sqrt(1.25));
  expect_metric(m, "lambda_max", 4);
  expect_metric(m, "lambda_min", 1);
  expect_absent(m, "bias_trace_share", "no diagonal");
}

TEST(SpectralMetrics, RankDeficient) {
  // Two exact zeros and one below τ = max|λ|·n·ε.
  const auto m = spectral_metrics({0, 1e-20, 0, 1, 3});
  expect_well_formed(m);
  expect_metric(m, "rank", 2);
  expect_metric(m, "near_zero_share", 0.6);
  expect_metric(m, "condition", 3);
  expect_metric(m, "effective_rank", (1 + 3 + 1e-20) / 3);
  expect_absent(m, "logdet", "singular");
  expect_absent(m, "logdet_sign", "singular");
  expect_metric(m, "negative_share", 0);
  // A configured τ changes the numerical rank.
  MetricOptions o;
  o.tau = 2.0;
  const auto m2 = spectral_metrics({0, 1e-20, 0, 1, 3}, o);
  EXPECT_EQ(m2.tau, 2.0);
  expect_metric(m2, "rank", 1);
  expect_metric(m2, "condition", 1);
  // Float spectra use float's ε: 1e-7 is then "zero" next to 1.
  MetricOptions of;
  of.eps = dtype_eps<float>();
  expect_metric(spectral_metrics({1e-7, 1.0}, of), "rank", 1);
  expect_metric(spectral_metrics({1e-7, 1.0}), "rank", 2);
}

TEST(SpectralMetrics, NegativeDefinite) {
  const auto m = spectral_metrics({-4, -2, -1});
  expect_well_formed(m);
  expect_metric(m, "negative_share", 1);
  expect_metric(m, "balance", -1);
  expect_metric(m, "symmetry", 0);
  expect_metric(m, "condition", 4);
  expect_metric(m, "logdet", std::log(8.0));
  expect_metric(m, "logdet_sign", -1);
  expect_metric(m, "trace", -7);
  expect_metric(m, "effective_rank", 7.0 / 4.0);
  expect_metric(m, "lambda_max", -1);
  expect_metric(m, "lambda_min", -4);
}

TEST(SpectralMetrics, SymmetricAroundZero) {
  const auto m = spectral_metrics({-2, -1, 1, 2});
  expect_well_formed(m);
  expect_metric(m, "trace", 0);
  expect_metric(m, "balance", 0);
  expect_metric(m, "symmetry", 1);
  expect_metric(m, "negative_share", 0.5);
  expect_metric(m, "logdet", std::log(4.0));
  expect_metric(m, "logdet_sign", 1);  // two negative eigenvalues
  expect_metric(m, "condition", 2);    // max|λ| / min|λ|, ≥ 1 for indefinite spectra
  expect_metric(m, "mean", 0);
  expect_metric(m, "std", std::sqrt(2.5));
  // A mildly indefinite spectrum: balance between 0 and 1.
  const auto m2 = spectral_metrics({-1, 3});
  expect_metric(m2, "balance", 0.5);
  expect_metric(m2, "symmetry", 0.5);
  expect_metric(m2, "logdet_sign", -1);
}

TEST(SpectralMetrics, ZeroMatrix) {
  const auto m = spectral_metrics(std::vector<double>(6, 0.0));
  expect_well_formed(m);
  EXPECT_EQ(m.status, "zero matrix");
  expect_metric(m, "trace", 0);
  expect_metric(m, "rank", 0);
  expect_metric(m, "near_zero_share", 1);
  expect_metric(m, "negative_share", 0);
  expect_metric(m, "mean", 0);
  expect_metric(m, "std", 0);
  expect_metric(m, "lambda_max", 0);
  expect_metric(m, "lambda_min", 0);
  expect_absent(m, "condition", "zero matrix");
  expect_absent(m, "effective_rank", "zero matrix");
  expect_absent(m, "balance", "zero matrix");
  expect_absent(m, "symmetry", "zero matrix");
  expect_absent(m, "logdet", "singular");
  const auto j = to_json(m);
  EXPECT_EQ(j["status"], "zero matrix");
  EXPECT_TRUE(j["condition"].is_null());
  EXPECT_EQ(j["condition_status"], "zero matrix");
  EXPECT_EQ(j["rank"], 0);
  // With a diagonal: the bias share of a zero trace is undefined.
  const auto mb = spectral_metrics(std::vector<double>(2, 0.0), {0.0, 0.0}, {false, true});
  expect_absent(mb, "bias_trace_share", "zero matrix");
}

TEST(SpectralMetrics, EmptyAndNonFinite) {
  const auto e = spectral_metrics({});
  EXPECT_EQ(e.status, "empty");
  expect_well_formed(e);
  expect_absent(e, "trace", "empty");
  const auto nf = spectral_metrics({1.0, std::numeric_limits<double>::quiet_NaN()});
  EXPECT_EQ(nf.status, "non-finite eigenvalues");
  expect_well_formed(nf);
  for (const auto& name : SpectralMetrics::names()) EXPECT_FALSE(nf.get(name).has_value()) << name;
  const std::string dumped = to_json(nf).dump();
  EXPECT_EQ(dumped.find("NaN"), std::string::npos);
}

TEST(SpectralMetrics, BiasTraceShareFromDiagonal) {
  // A 3×3 block [[2, 1, 0], [1, 3, 0], [0, 0, 5]] with parameter 2 a bias: eigenvalues
  // (5 ± √5)/2 and 5; trace 10; bias share 5/10.
  const double s5 = std::sqrt(5.0);
  const std::vector<double> ev = {(5 - s5) / 2, (5 + s5) / 2, 5};
  const auto m = spectral_metrics(ev, {2, 3, 5}, {false, false, true});
  expect_well_formed(m);
  expect_metric(m, "bias_trace_share", 0.5);
  expect_metric(m, "trace", 10);
  expect_absent(spectral_metrics(ev, {2, 3, 5}, {false, false, false}), "bias_trace_share", "no bias parameters");
  expect_absent(spectral_metrics({-1, 1}, {1, -1}, {true, false}), "bias_trace_share", "zero trace");
  EXPECT_THROW(spectral_metrics(ev, {1, 2}, {false, false, true}), Error);
}

// Metrics of a dense solve of Q diag(λ) Qᵀ agree with those of λ itself.
TEST(SpectralMetrics, FromDenseSolve) {
  const int64_t n = 5;
  // A rotation in the (0, 1) plane of diag(3, -1, 0, 2, 0.5).
  const double c = std::cos(0.3), s = std::sin(0.3);
  std::vector<double> A(n * n, 0.0);
  A[0] = 3 * c * c + -1 * s * s;
  A[1] = A[5] = (3 + 1) * c * s;
  A[6] = 3 * s * s + -1 * c * c;
  A[18] = 2;
  A[24] = 0.5;
  const auto r = eigh(A.data(), n);
  const auto m = spectral_metrics(std::vector<double>(r.values.begin(), r.values.end()));
  const auto want = spectral_metrics({3, -1, 0, 2, 0.5});
  for (const auto& name : SpectralMetrics::names()) {
    ASSERT_EQ(m.get(name).has_value(), want.get(name).has_value()) << name;
    if (want.get(name)) EXPECT_NEAR(*m.get(name), *want.get(name), 1e-12) << name;
  }
  EXPECT_EQ(m.statuses.at("logdet"), "singular");
}

TEST(SpectralMetrics, JsonKeys) {
  const auto m = spectral_metrics({-1, 0, 2});
  const auto j = to_json(m);
  for (const char* k : {"trace",
                        "logdet",
                        "logdet_sign",
                        "condition",
                        "effective_rank",
                        "rank",
                        "near_zero_share",
                        "negative_share",
                        "balance",
                        "symmetry",
                        "mean",
                        "std",
                        "lambda_max",
                        "lambda_min",
                        "bias_trace_share",
                        "n_params",
                        "status",
                        "method",
                        "tau",
                        "tau_rel",
                        "numerical_rank",
                        "structural_rank",
                        "rank_deficit_beyond_structure"})
    EXPECT_TRUE(j.contains(k)) << k;
  EXPECT_TRUE(j["logdet"].is_null());
  EXPECT_EQ(j["logdet_status"], "singular");
  EXPECT_EQ(j["bias_trace_share_status"], "no diagonal");
  EXPECT_FALSE(j.contains("trace_status"));
  EXPECT_EQ(j["n_params"], 3);
  EXPECT_EQ(j["rank"], 2);
  EXPECT_TRUE(j["rank"].is_number_integer());
  EXPECT_EQ(j["method"], "dense");
  // Only the metric keys, their statuses and the four header keys.
  for (auto it = j.begin(); it != j.end(); ++it) {
    const std::string k = it.key();
    bool known =
        k == "n_params" || k == "status" || k == "method" || k == "tau" || k == "tau_rel" || k == "trace_stderr";
    for (const auto& name : SpectralMetrics::names()) known = known || k == name || k == name + "_status";
    EXPECT_TRUE(known) << k;
  }
}

TEST(SpectralMetrics, NotApplicable) {
  const auto m = not_applicable_metrics(12, "Linear followed by BatchNorm");
  EXPECT_EQ(m.status, "not applicable");
  expect_well_formed(m);
  const auto j = to_json(m);
  EXPECT_TRUE(j["trace"].is_null());
  EXPECT_EQ(j["trace_status"], "not applicable: Linear followed by BatchNorm");
}

TEST(SpectralMetrics, IterativePath) {
  const int64_t n = 100;
  MatVec op = [](const double* v, double* out) {
    for (int64_t i = 0; i < 100; ++i) out[i] = (i < 20 ? -2.0 : i < 50 ? 0.0 : 4.0) * v[i];
  };
  LanczosOptions lo;
  lo.k = 2;
  const auto lz = lanczos(op, n, lo);
  SlqOptions so;
  so.n_probes = 10;
  so.tau = 1e-8;
  const auto sq = slq(op, n, so);
  const auto hu = hutchinson_trace(op, n, 4);
  const auto m = iterative_metrics(n, &lz, &sq, &hu);
  expect_well_formed(m);
  EXPECT_EQ(m.method, "lanczos+slq+hutchinson");
  expect_metric(m, "lambda_max", 4, 1e-10);
  expect_metric(m, "lambda_min", -2, 1e-10);
  expect_metric(m, "trace", 4 * 50 - 2 * 20, 1e-9);  // diagonal: Hutchinson is exact
  expect_metric(m, "mean", 1.6, 1e-11);
  expect_metric(m, "negative_share", 0.2, 0.15);
  expect_metric(m, "near_zero_share", 0.3, 0.15);
  ASSERT_TRUE(m.effective_rank.has_value());
  expect_absent(m, "rank", "not available from the iterative method");
  expect_absent(m, "logdet", "not available from the iterative method");
  const auto j = to_json(m);
  EXPECT_EQ(j["trace_stderr"], 0.0);
  EXPECT_EQ(j["method"], "lanczos+slq+hutchinson");
  // Lanczos alone.
  const auto ml = iterative_metrics(n, &lz, nullptr, nullptr);
  expect_well_formed(ml);
  EXPECT_EQ(ml.method, "lanczos");
  EXPECT_FALSE(ml.trace.has_value());
}

// The structural rank bounds of docs/curvature.md §4, rule by rule.
TEST(SpectralMetrics, StructuralRankBounds) {
  BlockShape s;
  s.linear = true;
  s.d_in = 30;
  s.d_out = 20;
  s.bias = true;
  s.p = 31 * 20;
  s.batch = 8;
  s.outputs_rank = 9;  // softmax over 10 classes
  s.softmax_outputs = true;
  // Hidden layer, ReLU after: Gauss-Newton, B·min(C_eff, d_out) = 72 < d_out·min(31, 8) = 160.
  s.piecewise_linear_after = true;
  EXPECT_EQ(structural_rank(CurvatureKind::loss, s).bound, 72);
  EXPECT_EQ(structural_rank(CurvatureKind::loss, s).rule, "B·min(C_eff, d_out)");
  // tanh after: the loss block has curvature of its own; only d_out·min(d_in+1, B) holds.
  s.piecewise_linear_after = false;
  EXPECT_EQ(structural_rank(CurvatureKind::loss, s).bound, 160);
  EXPECT_EQ(structural_rank(CurvatureKind::ggn, s).bound, 72);
  // The output layer: every M_n's range is in the (C−1)-dim complement of 1.
  s.output_layer = true;
  s.d_out = 10;
  s.p = 31 * 10;
  s.batch = 100;
  EXPECT_EQ(structural_rank(CurvatureKind::loss, s).bound, 9 * 31);
  // K-FAC: rank(A)·rank(G) = min(d_in+1, B)·min(d_out−1, B) on the softmax output layer.
  EXPECT_EQ(structural_rank(CurvatureKind::kfac, s).bound, 31 * 9);
  s.batch = 5;
  EXPECT_EQ(structural_rank(CurvatureKind::kfac, s).bound, 5 * 5);
  // No bound derived: p.
  EXPECT_EQ(structural_rank(CurvatureKind::local, s).bound, s.p);
  s.linear = false;
  EXPECT_EQ(structural_rank(CurvatureKind::loss, s).bound, s.p);
  // The deficit beyond structure and the forced zero share.
  SpectralMetrics m = spectral_metrics({0, 0, 0, 1, 2});
  m.set_structural_rank(3, "test");
  EXPECT_EQ(*m.rank_deficit_beyond_structure, 1.0);
  EXPECT_NEAR(m.structural_zero_share(), 0.4, 1e-15);
}
