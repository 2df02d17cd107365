// Eigensolvers on matrices with known spectra: dense (?syevd, batched), Lanczos extremes
// against the dense solver, SLQ density and estimates, Hutchinson's trace with its
// statistical bound.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "diagnostics/eigen.h"

using namespace cn;

namespace {

// A random orthogonal n×n matrix (modified Gram-Schmidt, twice, on the rows of a Gaussian
// matrix: orthonormal rows make an orthogonal matrix).
std::vector<double> random_orthogonal(int64_t n, uint32_t seed) {
  std::mt19937_64 g(seed);
  std::normal_distribution<double> nd;
  std::vector<double> Q(n * n);
  for (auto& x : Q) x = nd(g);
  for (int64_t r = 0; r < n; ++r) {
    double* q = Q.data() + r * n;
    for (int pass = 0; pass < 2; ++pass) {
      for (int64_t p = 0; p < r; ++p) {
        const double* o = Q.data() + p * n;
        double d = 0;
        for (int64_t i = 0; i < n; ++i) d += o[i] * q[i];
        for (int64_t i = 0; i < n; ++i) q[i] -= d * o[i];
      }
      double s = 0;
      for (int64_t i = 0; i < n; ++i) s += q[i] * q[i];
      s = std::sqrt(s);
      for (int64_t i = 0; i < n; ++i) q[i] /= s;
    }
  }
  return Q;
}

// Q diag(lambda) Qᵀ, exactly symmetrised.
std::vector<double> with_spectrum(const std::vector<double>& lambda, uint32_t seed) {
  const int64_t n = static_cast<int64_t>(lambda.size());
  const auto Q = random_orthogonal(n, seed);
  std::vector<double> A(n * n, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) {
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += Q[i * n + k] * lambda[k] * Q[j * n + k];
      A[i * n + j] = A[j * n + i] = s;
    }
  return A;
}

MatVec dense_op(const std::vector<double>& A, int64_t n) {
  return [&A, n](const double* v, double* out) {
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += A[i * n + j] * v[j];
      out[i] = s;
    }
  };
}

std::vector<double> sorted(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v;
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

}  // namespace

TEST(Eigen, DenseKnownSpectrum) {
  const int64_t n = 60;
  std::mt19937_64 g(1);
  std::uniform_real_distribution<double> u(-10, 10);
  std::vector<double> lambda(n);
  for (auto& x : lambda) x = u(g);
  lambda[3] = 0.0;
  lambda[7] = lambda[8] = 2.5;  // a repeated eigenvalue
  const auto A = with_spectrum(lambda, 2);
  const auto r = eigh(A.data(), n, true);
  EXPECT_EQ(r.info, 0);
  EXPECT_LT(r.symmetry_residual, 1e-15);
  const auto want = sorted(lambda);
  ASSERT_EQ(r.values.size(), static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(r.values[i], want[i], 1e-12 * 10 * n) << i;
  // Eigenvectors: column k of the row-major matrix, A v = λ v, orthonormal.
  for (int64_t k = 0; k < n; k += 7) {
    double res = 0, nrm = 0;
    for (int64_t i = 0; i < n; ++i) {
      double s = 0;
      for (int64_t j = 0; j < n; ++j) s += A[i * n + j] * r.vectors[j * n + k];
      res = std::max(res, std::fabs(s - r.values[k] * r.vectors[i * n + k]));
      nrm += r.vectors[i * n + k] * r.vectors[i * n + k];
    }
    EXPECT_LT(res, 1e-11) << k;
    EXPECT_NEAR(nrm, 1.0, 1e-12);
  }
}

TEST(Eigen, DenseFloat) {
  const int64_t n = 30;
  std::vector<double> lambda(n);
  for (int64_t i = 0; i < n; ++i) lambda[i] = -3.0 + 0.25 * static_cast<double>(i);
  const auto A = with_spectrum(lambda, 3);
  std::vector<float> Af(A.begin(), A.end());
  const auto r = eigh(Af.data(), n);
  EXPECT_EQ(r.info, 0);
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(r.values[i], lambda[i], 2e-5 * 4 * n) << i;
}

TEST(Eigen, SymmetryResidualIsRecorded) {
  std::vector<double> A = {2, 1, 0, 1, 3, 0, 0, 0, 1};
  EXPECT_EQ(eigh(A.data(), 3).symmetry_residual, 0.0);
  A[1] = 1.5;  // not symmetric
  const auto r = eigh(A.data(), 3);
  const double want = std::sqrt(2 * 0.25) / std::sqrt(4 + 2.25 + 1 + 9 + 1);
  EXPECT_NEAR(r.symmetry_residual, want, 1e-15);
  std::vector<double> Z(9, 0.0);
  EXPECT_EQ(eigh(Z.data(), 3).symmetry_residual, 0.0);
}

TEST(Eigen, BatchedMatchesKnownSpectra) {
  const int64_t n = 12, count = 9;
  std::vector<double> blocks, want;
  std::mt19937_64 g(4);
  std::uniform_real_distribution<double> u(-5, 5);
  for (int64_t b = 0; b < count; ++b) {
    std::vector<double> lambda(n);
    for (auto& x : lambda) x = u(g);
    const auto A = with_spectrum(lambda, 100 + b);
    blocks.insert(blocks.end(), A.begin(), A.end());
    const auto s = sorted(lambda);
    want.insert(want.end(), s.begin(), s.end());
  }
  const auto r = eigh_batched(blocks.data(), n, count);
  EXPECT_EQ(r.max_info(), 0);
  EXPECT_LT(r.max_symmetry_residual, 1e-15);
  ASSERT_EQ(r.values.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(r.values[i], want[i], 1e-12 * 5 * n) << i;
  std::vector<float> bf(blocks.begin(), blocks.end());
  const auto rf = eigh_batched(bf.data(), n, count);
  for (size_t i = 0; i < want.size(); ++i) EXPECT_NEAR(rf.values[i], want[i], 1e-4) << i;
}

// n = 500, a spread spectrum (geometric at both ends, a dense bulk in between): the top
// and bottom few Ritz values agree with the dense solver to 1e-8 relative.
TEST(Eigen, LanczosExtremesMatchDense) {
  const int64_t n = 500;
  std::vector<double> lambda;
  for (int i = 0; i < 10; ++i) lambda.push_back(100.0 * std::pow(0.8, i));
  for (int i = 0; i < 10; ++i) lambda.push_back(-40.0 * std::pow(0.8, i));
  std::mt19937_64 g(5);
  std::uniform_real_distribution<double> u(-1, 1);
  while (static_cast<int64_t>(lambda.size()) < n) lambda.push_back(u(g));
  const auto A = with_spectrum(lambda, 6);
  const auto dense = eigh(A.data(), n);
  LanczosOptions opt;
  opt.k = 3;
  opt.steps = 80;
  opt.key = ProbeKey{7, 1, 2};
  const auto r = lanczos(dense_op(A, n), n, opt);
  EXPECT_EQ(r.steps, 80);
  ASSERT_EQ(r.largest.size(), 3u);
  for (int i = 0; i < 3; ++i) {
    const double top = dense.values[n - 1 - i], bot = dense.values[i];
    EXPECT_NEAR(r.largest[i], top, 1e-8 * std::fabs(top)) << i;
    EXPECT_NEAR(r.smallest[i], bot, 1e-8 * std::fabs(bot)) << i;
    EXPECT_LT(r.largest_residuals[i], 1e-6 * std::fabs(top)) << i;
  }
  EXPECT_DOUBLE_EQ(r.lambda_max(), r.largest[0]);
  // Deterministic: the same key gives the same Ritz values bit for bit.
  const auto r2 = lanczos(dense_op(A, n), n, opt);
  EXPECT_EQ(r.ritz, r2.ritz);
  // Default step count: min(n, max(2k + 10, 40)).
  LanczosOptions d;
  d.k = 3;
  EXPECT_EQ(lanczos(dense_op(A, n), n, d).steps, 40);
}

// m = n with repeated eigenvalues: the Krylov space of one start vector is invariant early;
// the run continues from fresh orthogonal vectors and returns the whole spectrum.
TEST(Eigen, LanczosFullSpectrumWithMultiplicities) {
  const int64_t n = 20;
  std::vector<double> lambda(n, 0.0);
  for (int64_t i = 0; i < n; ++i) lambda[i] = static_cast<double>(i % 4) - 1.0;  // {-1, 0, 1, 2} × 5
  const auto A = with_spectrum(lambda, 8);
  LanczosOptions opt;
  opt.k = 20;
  opt.steps = n;
  const auto r = lanczos(dense_op(A, n), n, opt);
  EXPECT_GT(r.restarts, 0);
  const auto want = sorted(lambda);
  ASSERT_EQ(r.ritz.size(), want.size());
  for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(r.ritz[i], want[i], 1e-10) << i;
}

TEST(Eigen, HutchinsonExactOnDiagonal) {
  // Rademacher probes: vᵀDv = tr D exactly for a diagonal D (zero variance).
  const int64_t n = 50;
  MatVec op = [n](const double* v, double* out) {
    for (int64_t i = 0; i < n; ++i) out[i] = static_cast<double>(i) * v[i];
  };
  const auto h = hutchinson_trace(op, n, 5, ProbeKey{1, 2, 3});
  EXPECT_NEAR(h.trace, n * (n - 1) / 2.0, 1e-9);
  EXPECT_NEAR(h.standard_error, 0.0, 1e-9);
}

// SLQ: the density integrates to 1; its trace and Hutchinson's agree with the exact trace
// and with each other within 4 standard deviations of the known estimator variance
// Var(vᵀAv) = 2 Σ_{i≠j} A_ij².
TEST(Eigen, SlqDensityAndTraceWithinStatisticalBounds) {
  const int64_t n = 300;
  std::mt19937_64 g(9);
  std::uniform_real_distribution<double> u(-2, 5);
  std::vector<double> lambda(n);
  for (auto& x : lambda) x = u(g);
  const auto A = with_spectrum(lambda, 10);
  const double exact = std::accumulate(lambda.begin(), lambda.end(), 0.0);
  double off = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j)
      if (i != j) off += A[i * n + j] * A[i * n + j];
  const double sd1 = std::sqrt(2 * off);  // one probe

  SlqOptions so;
  so.n_probes = 20;
  so.steps = 30;
  so.grid = 400;
  so.key = ProbeKey{3, 4, 5};
  const auto s = slq(dense_op(A, n), n, so);
  // Quadrature weights sum to 1; the density is non-negative and, with the atom at zero,
  // holds all the mass (up to the kernels' tails beyond 4σ).
  EXPECT_NEAR(std::accumulate(s.weights.begin(), s.weights.end(), 0.0), 1.0, 1e-12);
  ASSERT_EQ(s.grid.size(), 400u);
  double integral = 0;
  for (size_t i = 0; i + 1 < s.grid.size(); ++i)
    integral += 0.5 * (s.grid[i + 1] - s.grid[i]) * (s.density[i] + s.density[i + 1]);
  EXPECT_NEAR(integral + s.zero_mass, 1.0, 1e-3);
  EXPECT_GE(*std::min_element(s.density.begin(), s.density.end()), 0.0);
  EXPECT_LT(s.grid.front(), s.lambda_min);
  EXPECT_GT(s.grid.back(), s.lambda_max);
  // The extremes of the nodes approach the spectrum's (Lanczos converges there first).
  EXPECT_NEAR(s.lambda_max, sorted(lambda).back(), 0.05);
  // The density's mass sits where the spectrum is: ∫ t ρ(t) dt ≈ trace / n (a log-normal
  // kernel of width σ moves a node's mean by the factor e^{σ²/2}: 0.5% at σ = 0.1).
  double first = 0, abs_mean = 0;
  for (size_t i = 0; i + 1 < s.grid.size(); ++i)
    first += 0.5 * (s.grid[i + 1] - s.grid[i]) * (s.grid[i] * s.density[i] + s.grid[i + 1] * s.density[i + 1]);
  for (size_t i = 0; i < s.nodes.size(); ++i) abs_mean += s.weights[i] * std::fabs(s.nodes[i]);
  EXPECT_NEAR(first, s.trace.value / n, 0.01 * abs_mean);

  const double se_slq = sd1 / std::sqrt(20.0);
  EXPECT_NEAR(s.trace.value, exact, 4 * se_slq);
  // The reported standard error estimates the true one (loosely: 20 samples).
  EXPECT_GT(s.trace.standard_error, 0.4 * se_slq);
  EXPECT_LT(s.trace.standard_error, 1.8 * se_slq);

  const auto h = hutchinson_trace(dense_op(A, n), n, 30, ProbeKey{3, 4, 5});
  const double se_h = sd1 / std::sqrt(30.0);
  EXPECT_NEAR(h.trace, exact, 4 * se_h);
  EXPECT_NEAR(h.trace, s.trace.value, 4 * std::sqrt(se_h * se_h + se_slq * se_slq));
  EXPECT_GT(h.standard_error, 0.4 * se_h);
  EXPECT_LT(h.standard_error, 1.8 * se_h);
  // SLQ and Hutchinson draw different probes under one key.
  EXPECT_NE(h.trace, s.trace.value);
}

// A spectrum with few distinct values: Lanczos ends on an invariant subspace, the nodes are
// exact, and the density-based shares estimate the true ones (statistical error only).
TEST(Eigen, SlqSharesOnKnownSpectrum) {
  const int64_t n = 400;
  std::vector<double> lambda;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t c = i % 10;
    lambda.push_back(c < 3 ? -3.0 : c < 5 ? 0.0 : c < 8 ? 1.0 : 5.0);  // 30% neg, 20% zero
  }
  const auto A = with_spectrum(lambda, 11);
  SlqOptions so;
  so.n_probes = 30;
  so.steps = 20;
  so.tau = 1e-8;
  const auto s = slq(dense_op(A, n), n, so);
  EXPECT_LE(s.steps, 4);  // four distinct eigenvalues
  EXPECT_NEAR(s.negative_share.value, 0.3, 0.06);
  EXPECT_NEAR(s.near_zero_share.value, 0.2, 0.06);
  double sum = 0, sabs = 0;
  for (double x : lambda) sum += x, sabs += std::fabs(x);
  EXPECT_NEAR(s.balance, sum / sabs, 0.1);
  EXPECT_NEAR(s.effective_rank.value, sabs / 5.0, 0.1 * sabs / 5.0);
  EXPECT_NEAR(s.lambda_max, 5.0, 1e-10);
  EXPECT_NEAR(s.lambda_min, -3.0, 1e-10);
}

TEST(Eigen, SlqZeroMatrix) {
  const int64_t n = 10;
  MatVec zero = [n](const double*, double* out) { std::fill(out, out + n, 0.0); };
  const auto s = slq(zero, n, {});
  EXPECT_EQ(s.trace.value, 0.0);
  EXPECT_NEAR(s.near_zero_share.value, 1.0, 1e-12);
  EXPECT_EQ(s.effective_rank.value, 0.0);
  EXPECT_NEAR(s.zero_mass, 1.0, 1e-12);
  for (double d : s.density) EXPECT_EQ(d, 0.0);
}
