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

#include "config/enum_table.h"
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
// Dense blocks on the GPU: which solver, how many at once (docs/gpu.md "Curvature
// checkpoints on the GPU")
// ---------------------------------------------------------------------------------------

// The GPU solver of one dense symmetric block's eigenvalues.
//   jacobi  the shared-memory cyclic Jacobi kernel (kernels/cuda/eigen.h), one thread block
//           for the matrix: no host round trips, but its work grows as n³ on one SM
//   syevd   cusolverDnXsyevd: the tridiagonal reduction spread over the whole GPU
enum class GpuEigenSolver { jacobi, syevd };
inline constexpr EnumName<GpuEigenSolver> kGpuEigenSolvers[] = {{GpuEigenSolver::jacobi, "jacobi"},
                                                                {GpuEigenSolver::syevd, "syevd"}};

// How a curvature checkpoint builds and solves its dense blocks on the GPU. The defaults are
// the documented policy; a benchmark may override each.
struct GpuDenseOptions {
  // A single block up to this width goes to the Jacobi kernel (when it also fits the
  // kernel's shared memory on the device), wider ones to syevd. 0: always syevd.
  int64_t jacobi_max_n = 128;
  // Host threads solving blocks at once, each with its own CUDA context (stream, cuBLAS and
  // cuSOLVER handles): one cuSOLVER handle runs its calls one after another, whatever the
  // streams. 1: one block after another (on one thread beside the one building blocks).
  int solver_threads = 4;
  // HVP columns per batched product when a block is built; 0: as many as
  // hvp_memory_bytes of the engine's buffers allow (64 … 1024, a multiple of 64).
  int64_t hvp_chunk = 0;
  size_t hvp_memory_bytes = size_t(512) << 20;
  // Built blocks waiting on the device for their solve, at most this many bytes: one more
  // block first waits for the solves in flight.
  size_t max_pending_bytes = size_t(2) << 30;
};

// The solver for one n × n block: Jacobi when n ≤ min(jacobi_max_n, kernel_max_n), else
// syevd. kernel_max_n is the widest block the Jacobi kernel holds on the device
// (cn::cuda::batched_max_n<T>()); pure, so the policy is tested without a GPU.
GpuEigenSolver choose_gpu_eigen_solver(int64_t n, int64_t kernel_max_n, const GpuDenseOptions& opt);

// HVP columns per batched product for a block (hvp_chunk when set): the engine keeps about
// `bytes_per_direction` per direction (its R-pass buffers over the layers at the batch).
int64_t hvp_columns_per_product(int64_t p, size_t bytes_per_direction, const GpuDenseOptions& opt);

// The solver thread of each block, in the order the blocks are built: each to the thread
// with the least n³ assigned so far (ties: the lowest thread), so a block's thread depends
// only on the blocks before it and can be chosen as soon as it is built. Which thread
// solves a block never changes its eigenvalues; this only balances the load.
std::vector<int> assign_blocks_to_threads(const std::vector<int64_t>& sizes, int threads);

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
  // > 0: keep the Ritz vectors of the converged pairs, those with residual
  // ≤ converged_tol · max|θ| (at most k from each end), for SLQ to deflate.
  double converged_tol = 0;
};

struct LanczosResult {
  int64_t n = 0, steps = 0;
  std::vector<double> ritz;       // all m Ritz values, ascending
  std::vector<double> residuals;  // |β_m s_mi| per Ritz value: ‖A y − θ y‖ for its Ritz vector y
  std::vector<double> largest;    // min(k, m) largest Ritz values, descending
  std::vector<double> smallest;   // min(k, m) smallest Ritz values, ascending
  std::vector<double> largest_residuals, smallest_residuals;  // matching residual bounds
  int restarts = 0;  // invariant subspaces met (a fresh orthogonal vector continued the run)
  // With converged_tol > 0: the converged Ritz values and their orthonormal Ritz vectors
  // (host memory, one n-vector per row, row-major).
  std::vector<double> converged_values, converged_vectors;
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

// The relative tolerance SLQ uses when none is given (docs/curvature.md §3-4): an m-step
// Gauss rule resolves the spectrum near zero only down to its node nearest zero, which
// carries the null space's weight at a value of order its Lanczos residual (measured:
// 1e-10 .. 1e-5 · max|λ| on rank-deficient Gauss-Newton blocks), and a share's error is
// the weight of the node straddling ±τ. 1e-2 lies above the null-space node and is coarse
// enough for 80 nodes to split positive from negative mass (tested to 0.03).
inline constexpr double kSlqTauRel = 1e-2;

// Lanczos pairs with residual ≤ this × max|θ| are deflated from SLQ by the curvature
// checkpoint: their values enter the quadrature exactly and the probes' variance is that of
// the rest (docs/curvature.md §3).
inline constexpr double kDeflationTol = 1e-6;

struct SlqOptions {
  int n_probes = 10;
  int64_t steps = 80;  // Lanczos steps per probe (clamped to n; a probe stops early on breakdown)
  int64_t grid = 512;  // G density grid points
  double sigma = 0;    // log-normal smoothing width in ln|λ|; 0 = 0.1
  double tau = -1;     // absolute near-zero tolerance; < 0: tau_rel · max|θ|
  double tau_rel = kSlqTauRel;
  // Deflation (docs/curvature.md §3): the converged Ritz pairs of this Lanczos run (its
  // converged_values/vectors) enter the quadrature exactly, with weight 1/n each, and the
  // probes run on the complement (I − YYᵀ) A (I − YYᵀ). Null: plain SLQ.
  const LanczosResult* deflate = nullptr;
  ProbeKey key;
};

// An estimate from the probes: their mean and its standard error (sample standard
// deviation / √n_probes; 0 for one probe).
struct ProbeEstimate {
  double value = 0, standard_error = 0;
};

struct SlqResult {
  int64_t n = 0;
  int n_probes = 0;
  int64_t steps = 0;     // the largest m used by a probe
  int64_t deflated = 0;  // converged Ritz pairs taken exactly (k)
  // The quadrature, probe-major: probe p's nodes are the k deflated Ritz values (weight
  // 1/(n·n_probes) each) followed by its complement Ritz values θ (weight
  // (n − k)/n · S_1θ² / n_probes). Each probe's weights sum to 1/n_probes; Σ weights = 1.
  std::vector<double> nodes, weights;
  std::vector<int64_t> probe_steps;  // nodes per probe (k + its Lanczos steps)
  double tau = 0;                    // absolute tolerance: |θ| ≤ τ counts as zero
  double sigma = 0;                  // the log-normal width used for the density
  double zero_mass = 0;              // Σ w [|θ| ≤ τ]: the atom at zero, not smoothed
  // Density of the non-zero part on a linear grid (G points spanning the non-zero nodes):
  // each node's weight spread by a log-normal kernel in |λ| on its own side of zero, as
  // exact cell masses / cell width, so Σ density · cell width = 1 − zero_mass and a block
  // without nodes below −τ has no density below zero.
  std::vector<double> grid, density;
  double lambda_min = 0, lambda_max = 0;  // extreme nodes
  // Estimates of (1/n) tr f(A) ≈ Σ_k w_k f(θ_k), per probe, then mean ± standard error:
  ProbeEstimate trace;  // Σ deflated θ + vᵀP⊥AP⊥v per probe (unbiased; = n Σ w θ up to ‖P⊥v‖²/(n − k))
  ProbeEstimate near_zero_share;  // Σ w [|θ| ≤ τ]
  ProbeEstimate negative_share;   // Σ w [θ < −τ]
  ProbeEstimate abs_sum;          // n Σ w |θ| (≈ Σ|λ|)
  ProbeEstimate effective_rank;   // abs_sum / max|θ| (0 when all θ = 0)
  double balance = 0;             // Σ w θ / Σ w |θ| (0 when Σ w|θ| = 0)
  double mean = 0, std = 0;       // Σ w θ and sqrt(Σ w θ² − mean²)
  double max_abs = 0;             // max |θ| over all nodes
};

// Stochastic Lanczos quadrature with Rademacher probes v: per probe, q1 = P⊥v/‖P⊥v‖ (P⊥
// projects out the deflated Ritz vectors; the identity without deflation), m Lanczos
// steps on P⊥AP⊥ give T = S Θ Sᵀ; nodes θ_i and weights (S_1i)². The per-probe estimates
// and their spread give each estimate's standard error.
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
