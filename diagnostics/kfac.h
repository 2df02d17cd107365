// K-FAC (Martens & Grosse 2015) for a Linear layer: the layer's Fisher/GGN block of the
// mean loss L = (1/N) Σ_n ℓ_n approximated by a Kronecker product of two small factors.
//
//   A = (1/N) Σ_n x̃_n x̃_nᵀ            ((I+1)×(I+1)), x̃_n = [x_n; 1]
//   G = (1/N) Σ_n ĝ_n ĝ_nᵀ            (O×O), ĝ_n = dℓ_n/dz_n = N · dL/dz_n
//     = N · Σ_n dy_n dy_nᵀ              with dy = dL/dz as Sequential::output_grad gives it
//                                       (already divided by N)
//
// Scaling. The per-sample gradient of ℓ_n for the augmented weights [W | b] is ĝ_n x̃_nᵀ, so
// the Fisher block of the mean loss is F = (1/N) Σ_n (ĝ_n ĝ_nᵀ) ⊗ (x̃_n x̃_nᵀ) in the
// row-major order of [W | b], and K-FAC takes F ≈ G ⊗ A (exact when every x̃_n is the same,
// or N = 1). With dy from the data's labels this is the empirical Fisher; with labels drawn
// from the model's predictive distribution its expectation is the Fisher, which equals the
// GGN for cross-entropy and BCE-with-logits. In the flat layout (W row-major, then b) the
// matrix is a permutation of G ⊗ A: entry (j, k) ↦ local_param_index(I, O, j, k).
//
// Spectrum: eig(G ⊗ A) = {γ_j α_k} — all (I+1)·O products of the factors' eigenvalues,
// formed without the Kronecker product (two small ?syevd).
#pragma once
#include <cstdint>
#include <vector>

#include "diagnostics/spectral_metrics.h"

namespace cn {

template <class T>
class Sequential;
template <class T>
class HvpEngine;

struct KfacFactors {
  int64_t N = 0, I = 0, O = 0;
  std::vector<double> A;  // (I+1)×(I+1) row-major
  std::vector<double> G;  // O×O row-major
};

// x: N×I (the layer's input), dy: N×O (dL/dz of the mean loss at the layer's output). Host pointers.
template <class T>
KfacFactors kfac_factors(const T* x, const T* dy, int64_t N, int64_t I, int64_t O);

// Layer `layer` (a Linear) of a model after forward + backward over N samples.
template <class T>
KfacFactors kfac_factors(const Sequential<T>& net, size_t layer, int64_t N);

// Layer `layer` (a Linear) at the engine's last prepare() in hessian mode: dy is the
// engine's cached dL/d(output) (prepare() does not write the model's own gradients).
template <class T>
KfacFactors kfac_factors(const HvpEngine<T>& eng, size_t layer);

struct KfacSpectrum {
  std::vector<double> a_eigenvalues, g_eigenvalues;  // ascending
  std::vector<double> eigenvalues;                   // (I+1)·O products, ascending
  std::vector<double> diagonal;                      // diag(G ⊗ A) in layout order
  std::vector<bool> is_bias;                         // layout order
  int info = 0;                                      // the larger LAPACK info of the two solves
  double symmetry_residual = 0;                      // the larger of the two factors'
};

KfacSpectrum kfac_spectrum(const KfacFactors& f);

// The (I+1)·O square matrix G ⊗ A in layout order (for tests and small layers).
std::vector<double> kfac_matrix(const KfacFactors& f);

// The products γ_j α_k with a factor eigenvalue at or below tau_rel × its factor's max|·|
// set to exactly 0 (the factor is numerically singular there), ascending. A product of two
// kept factor eigenvalues is accurate to about the sum of their relative errors, so the
// kept products' condition is κ(A_kept)·κ(G_kept) ≤ 1/tau_rel².
std::vector<double> kfac_kept_products(const KfacSpectrum& s, double tau_rel);

// Metrics of kfac_kept_products (τ = 0 on the products; bias_trace_share from the
// diagonal); method = "kfac", tau_rel = the per-factor tolerance.
SpectralMetrics kfac_metrics(const KfacSpectrum& s, const MetricOptions& opt = {});

}  // namespace cn
