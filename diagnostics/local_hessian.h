// The local Hessian of a layer (docs/spec.md §3, seed paper 001 §3) in closed form.
//
// For a Linear layer (W: O×I, b: O) followed directly by an elementwise activation a, with
// the layer's input x_n held fixed, S(θ) = Σ_n Σ_j a(h_nj), h_n = W x_n + b. Its Hessian in
// θ = (W, b) is block-diagonal over output units j:
//     block_j = Σ_n a''(h_nj) x̃_n x̃_nᵀ,   x̃_n = [x_n; 1]   ((I+1)×(I+1), a sum over the batch)
// computed as X̃ᵀ D_j X̃ (rows of X̃ scaled by a''(h_:j)) with GEMMs, then the blocks'
// eigenvalues (batched ?syevd) merged into one spectrum of O·(I+1) values.
//
// Parameter order. The flat layout of a Linear layer is W row-major (index j·I + k) then b
// (index O·I + j). Unit block j covers W[j, :] and b[j]: block coordinate k < I is W[j, k]
// (layout index j·I + k) and coordinate I is b[j] (layout index O·I + j); see
// local_param_index. The full matrix in layout order is P (⊕_j block_j) Pᵀ for that
// permutation P; it has the same eigenvalues.
//
// Piecewise-linear activations (relu, leaky_relu, identity) and a Linear with no activation
// after it (the last layer) give exactly the zero matrix: reported as such (status
// "zero matrix", all eigenvalues 0) without computing anything. A Linear followed by
// BatchNorm (or Dropout before the activation) and BatchNorm layers are "not applicable".
// A Dropout after the activation is ignored (the block ends at the activation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/device.h"
#include "diagnostics/spectral_metrics.h"
#include "kernels/activation.h"

namespace cn {

template <class T>
class Sequential;

struct LocalApplicability {
  std::string status;  // kStatusOk | kStatusZeroMatrix | kStatusNotApplicable
  std::string reason;  // one line, for the diagnostics row
  ActParams act;       // the activation after the Linear (status ok)
};

// Whether and how the closed form applies to layer `layer` of a stack.
LocalApplicability local_applicability(const std::vector<LayerSpec>& specs, size_t layer);

struct LocalHessianOptions {
  // Upper bound on the scratch memory of one chunk of unit blocks (scaled inputs and blocks).
  int64_t max_chunk_bytes = int64_t(256) << 20;
  // Where the unit blocks' spectra are solved: Device::cuda uses the batched Jacobi kernel
  // (blocks up to cuda::batched_max_n<double>() wide; wider ones stay on LAPACK).
  Device eig_device = Device::cpu;
};

struct LocalHessianResult {
  std::string status = kStatusOk;  // ok | zero matrix | not applicable
  std::string reason;
  int64_t n_params = 0, n_blocks = 0, block_size = 0;  // O·(I+1), O, I+1
  std::vector<double> eigenvalues;  // merged spectrum, ascending (all 0 for the zero matrix; empty when not applicable)
  std::vector<double> diagonal;     // the Hessian's diagonal in layout order
  std::vector<bool> is_bias;        // layout order: true for b
  double max_symmetry_residual = 0;
  int max_info = 0;  // LAPACK info over blocks
};

// Layout index of block coordinate k (0..I) of unit j.
inline int64_t local_param_index(int64_t I, int64_t O, int64_t j, int64_t k) { return k < I ? j * I + k : O * I + j; }

// The blocks of units [j0, j0 + count): count×(I+1)×(I+1), row-major, block j at
// (j − j0)·(I+1)². x: N×I (the layer's input), h: N×O (its output, the pre-activation).
template <class T>
std::vector<double> local_hessian_blocks(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act,
                                         int64_t j0, int64_t count);

// The full p×p matrix (p = O·(I+1)) in layout order (for tests and small layers).
template <class T>
std::vector<double> local_hessian_full(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act);

// The spectrum of the closed form for an activation with a'' ≢ 0 (a piecewise-linear one
// gives the zero matrix without computing). Host pointers.
template <class T>
LocalHessianResult local_hessian_linear(const T* x, const T* h, int64_t N, int64_t I, int64_t O, const ActParams& act,
                                        const LocalHessianOptions& opt = {});

// Layer `layer` of a model after a forward over N samples (layer_input / layer_output;
// copied to the host when the model lives on a GPU).
template <class T>
LocalHessianResult local_hessian(const Sequential<T>& net, size_t layer, int64_t N,
                                 const LocalHessianOptions& opt = {});

// Metrics of a local Hessian (bias_trace_share from its diagonal; not-applicable rows get
// every metric absent with the reason). method = "closed_form".
SpectralMetrics local_hessian_metrics(const LocalHessianResult& r, const MetricOptions& opt = {});

}  // namespace cn
