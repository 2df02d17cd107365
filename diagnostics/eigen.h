// Eigensolvers for the curvature diagnostics (docs/design.md §4, docs/curvature.md):
//   eigh / eigh_batched   dense symmetric eigendecomposition (LAPACKE ?syevd), one matrix or
//                         many small blocks (OpenMP over blocks)
//   lanczos               k largest and k smallest eigenvalues of a matrix given only as a
//                         matrix-vector product, full reorthogonalisation
//   slq                   stochastic Lanczos quadrature (Ubaru, Chen & Saad 2017): spectral
//                         density and density-based estimates
//   hutchinson_trace      trace with Rademacher probes, with its standard error
// Matrices are row-major. Every random vector comes from the Philox stream
// RngStream::curvature keyed by a ProbeKey, so a curvature checkpoint never draws from the
// training streams and its results are reproducible.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "core/device.h"

namespace cn {

// y = A v for a symmetric n×n operator A (v and out are n long and never alias).
using MatVec = std::function<void(const double* v, double* out)>;

// The same on vectors in `device` memory (host memory for Device::cpu). Lanczos, SLQ and
// Hutchinson keep their vectors, the Lanczos basis included, where the operator does: on
// the GPU no vector crosses to the host.
struct DeviceOperator {
  Device device = Device::cpu;
  MatVec apply;
};

// ---------------------------------------------------------------------------------------
// Dense
// ---------------------------------------------------------------------------------------

// ‖A − Aᵀ‖_F / ‖A‖_F (0 for the zero matrix). A: n×n.
template <class T>
double symmetry_residual(const T* A, int64_t n);

template <class T>
struct EigResult {
  std::vector<T> values;         // n, ascending
  std::vector<T> vectors;        // n×n row-major when asked for: column k is eigenvector k; else empty
  int info = 0;                  // LAPACK's info (0 = success; > 0: the algorithm did not converge)
  double symmetry_residual = 0;  // of the input, measured before the solve
};

// Eigenvalues (and optionally eigenvectors) of the symmetric n×n matrix A. LAPACK reads the
// lower triangle only; the symmetry residual of the full input is recorded so a caller can
// see that the matrix it built was symmetric. Throws cn::Error for info < 0 (a bad argument).
template <class T>
EigResult<T> eigh(const T* A, int64_t n, bool want_vectors = false);

template <class T>
struct BatchedEigResult {
  int64_t count = 0, n = 0;
  std::vector<T> values;  // count×n; block b's eigenvalues ascending at b*n
  std::vector<int> info;  // per block
  double max_symmetry_residual = 0;
  int max_info() const;  // the largest info over blocks (0 when all succeeded)
};

// Eigenvalues of `count` symmetric n×n blocks stored back to back (block b at A + b*n*n),
// one LAPACK call per block, blocks in parallel (OpenMP).
template <class T>
BatchedEigResult<T> eigh_batched(const T* A, int64_t n, int64_t count);

// ---------------------------------------------------------------------------------------
// Iterative (double precision; the operator is a callback)
// ---------------------------------------------------------------------------------------

// Names the random draw: PhiloxDraw(seed, RngStream::curvature, a, 4*b + method), with
// method 0 = Lanczos start, 1 = SLQ probes, 2 = Hutchinson probes, so the three methods
// never share random numbers under one key. Callers key it by (step, layer, kind), e.g.
// a = layer, b = step * 16 + kind id.
struct ProbeKey {
  uint64_t seed = 0;
  uint32_t a = 0;
  uint64_t b = 0;
};

struct LanczosOptions {
  int k = 5;          // how many of the largest and of the smallest eigenvalues to return
  int64_t steps = 0;  // Lanczos steps m; 0 = min(n, max(2k + 10, 40))
  ProbeKey key;       // the start vector (standard normal, normalised)
};

struct LanczosResult {
  int64_t n = 0, steps = 0;
  std::vector<double> ritz;       // all m Ritz values, ascending
  std::vector<double> residuals;  // |β_m s_mi| per Ritz value: ‖A y − θ y‖ for its Ritz vector y
  std::vector<double> largest;    // min(k, m) largest Ritz values, descending
  std::vector<double> smallest;   // min(k, m) smallest Ritz values, ascending
  std::vector<double> largest_residuals, smallest_residuals;  // matching residual bounds
  int restarts = 0;  // invariant subspaces met (a fresh orthogonal vector continued the run)
  double lambda_max() const { return largest.empty() ? 0.0 : largest.front(); }
  double lambda_min() const { return smallest.empty() ? 0.0 : smallest.front(); }
};

// Lanczos with full reorthogonalisation (classical Gram-Schmidt, twice) from a Philox start
// vector. When the Krylov space becomes invariant (β ≈ 0) the run continues from a new
// random vector orthogonal to the basis (β = 0 in T), so m = n steps give the whole
// spectrum with multiplicities. Ritz values come from the tridiagonal T via LAPACKE_dstev.
// Memory: m·n doubles for the basis, where the operator keeps its vectors.
LanczosResult lanczos(const DeviceOperator& A, int64_t n, const LanczosOptions& opt = {});
inline LanczosResult lanczos(const MatVec& A, int64_t n, const LanczosOptions& opt = {}) {
  return lanczos(DeviceOperator{Device::cpu, A}, n, opt);
}

struct SlqOptions {
  int n_probes = 10;
  int64_t steps = 40;  // Lanczos steps per probe (clamped to n; a probe stops early on breakdown)
  int64_t grid = 512;  // G density grid points
  double sigma = 0;    // Gaussian smoothing width; 0 = 0.01 · max(λmax − λmin, max|λ|) (1 when all nodes are 0)
  double margin = 0;   // grid = [λmin − margin, λmax + margin]; 0 = 5σ
  double tau = -1;     // near-zero tolerance for the estimates; < 0 = max|θ| · n · ε_f64
  ProbeKey key;
};

struct SlqResult {
  int64_t n = 0;
  int n_probes = 0;
  int64_t steps = 0;                   // the largest m used by a probe
  std::vector<double> nodes, weights;  // all probes' Ritz values θ and weights τ²/n_probes (Σ weights = 1)
  std::vector<double> grid, density;   // G points; ∫ density = 1 by the trapezoid rule on the grid
  double sigma = 0, tau = 0;
  double lambda_min = 0, lambda_max = 0;  // extreme nodes
  // Estimates from the quadrature Σ_k w_k f(θ_k) ≈ (1/n) tr f(A):
  double trace = 0;            // n Σ w θ
  double trace_stderr = 0;     // standard error over probes (0 for one probe)
  double near_zero_share = 0;  // Σ w [|θ| ≤ τ]
  double negative_share = 0;   // Σ w [θ < −τ]
  double balance = 0;          // Σ w θ / Σ w |θ| (0 when Σ w|θ| = 0)
  double effective_rank = 0;   // n Σ w |θ| / max|θ| (0 when all θ = 0)
  double mean = 0, std = 0;    // Σ w θ and sqrt(Σ w θ² − mean²)
};

// Stochastic Lanczos quadrature with Rademacher probes v (q1 = v/√n): per probe, m Lanczos
// steps give T = S Θ Sᵀ; nodes θ_i and weights (S_1i)². The density is Σ w_k N(t; θ_k, σ²)
// on the grid, renormalised so the trapezoid integral is exactly 1.
SlqResult slq(const DeviceOperator& A, int64_t n, const SlqOptions& opt = {});
inline SlqResult slq(const MatVec& A, int64_t n, const SlqOptions& opt = {}) {
  return slq(DeviceOperator{Device::cpu, A}, n, opt);
}

struct HutchinsonResult {
  double trace = 0;
  double standard_error = 0;    // sample standard deviation / sqrt(n_probes) (0 for one probe)
  std::vector<double> samples;  // vᵀAv per probe
};

// tr(A) ≈ mean_p v_pᵀ A v_p, v_p Rademacher. Var(vᵀAv) = 2 Σ_{i≠j} A_ij².
HutchinsonResult hutchinson_trace(const DeviceOperator& A, int64_t n, int n_probes, const ProbeKey& key = {});
inline HutchinsonResult hutchinson_trace(const MatVec& A, int64_t n, int n_probes, const ProbeKey& key = {}) {
  return hutchinson_trace(DeviceOperator{Device::cpu, A}, n, n_probes, key);
}

}  // namespace cn
