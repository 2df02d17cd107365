// Per-layer Hessian blocks and whole-network curvature operators (docs/design.md §4, docs/spec.md §3),
// built on the HVP engine. Dense blocks are row-major p × p host vectors in the layer's
// flat parameter order (Linear: weight O×I row-major, then bias O; BatchNorm: weight,
// then bias). All are curvatures of the MEAN mini-batch loss.
//
//   loss_block    the exact diagonal block ∇²_θL L: columns from batched HVPs with unit
//                 directions restricted to the layer (any architecture, BatchNorm included)
//   kron_block    the same block (mode hessian) or its Gauss-Newton part (mode ggn) for a
//                 Linear layer of a network without batch coupling downstream, as
//                 Σ_n kron(M_n, x̃_n x̃_nᵀ) with x̃ = [x; 1] and M_n the per-sample Hessian of
//                 the loss in the layer's output, backpropagated exactly (Wᵀ M W through
//                 Linear; diag(f') M diag(f') + diag(dy f'') through activations; the mask
//                 through Dropout; γ/σ through BatchNorm in evaluation mode) — one GEMM
//   ggn_block     the Gauss-Newton block Jᵀ ∇²_z L J (positive semi-definite) by HVPs in
//                 Gauss-Newton mode
//   hvp_block     either of the two left on the model's device (the GPU path: no transfer
//                 until the spectrum)
//   hessian_diag  the exact diagonal (from the dense block) up to dense_max parameters,
//                 else Hutchinson's estimate mean(v ⊙ Hv) with Rademacher v drawn from
//                 the curvature Philox stream keyed by (step, layer, kind)
//   fisher_diag   the empirical Fisher diagonal (1/N) Σ_n g_n², where g_n = N × (sample
//                 n's contribution to the batch gradient): for a Linear layer
//                 g_n = N · dy_n x̃_nᵀ, so (1/N) Σ_n g_n = ∇L exactly. Without batch
//                 coupling g_n is the gradient of sample n's own loss; with BatchNorm in
//                 training mode it is the usual per-sample approximation.
//   full_matvec   v ↦ H v over the whole network (flat vectors, K × total) for Lanczos;
//   preconditioned_matvec   v ↦ P^{-1/2} H P^{-1/2} v for a diagonal preconditioner P
//                 (Adam: sqrt(v̂) + eps)
// Every function prepares the engine at the batch itself (one forward and backward),
// except the matvecs, which prepare on their first call and again whenever the engine
// was used for something else in between.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "config/kinds.h"
#include "core/philox.h"
#include "diagnostics/hvp.h"

namespace cn {

// The fixed curvature batch the blocks are measured on. ctx.dropout_key should be
// philox_key(seed, RngStream::curvature) and ctx.training follow diagnostics.mode.
template <class T>
struct CurvatureBatch {
  PassCtx ctx;
  const T* x = nullptr;       // N × n_inputs, on the model's device
  const T* target = nullptr;  // N class indices or N × C values
  int64_t N = 0;
};

// The draw id of (layer, kind) in RngStream::curvature: Philox's `a` word is
// layer * 8 + kind (layer -1, the whole network, maps to 0xFFFFFF), `b` the step.
uint32_t curvature_draw_id(int64_t layer, CurvatureKind kind);

template <class T>
using CurvatureMatVec = std::function<void(const T* v, T* out, int64_t K)>;

template <class T>
std::vector<T> loss_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t chunk = 64);

template <class T>
std::vector<T> ggn_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t chunk = 64);

// The block of `mode` by HVP columns into `out` (resized to p × p, moved to the model's
// device), `chunk` columns per batched product.
template <class T>
void hvp_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, CurvatureMode mode, Buffer<T>& out,
               int64_t chunk = 64);

// Whether the Kronecker path applies to `layer`: a Linear layer after which every layer has
// the output-Hessian backward in this mode (BatchNorm in training mode has none). The path
// runs on the CPU backend only.
template <class T>
bool kron_applicable(const Sequential<T>& net, size_t layer, bool training);

template <class T>
std::vector<T> kron_block(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer,
                          CurvatureMode mode = CurvatureMode::hessian);

// Exact diagonal of the loss block (p ≤ dense_max) or Hutchinson's estimate with `probes`
// Rademacher directions from (seed, step, layer, CurvatureKind::diag). `std_error`, when
// given, receives each entry's standard error over the probes (zeros when exact).
template <class T>
std::vector<T> hessian_diag(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t dense_max = 8192,
                            int64_t probes = 256, uint64_t seed = 0, uint64_t step = 0,
                            std::vector<double>* std_error = nullptr);
template <class T>
std::vector<T> hessian_diag_hutchinson(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, int64_t probes,
                                       uint64_t seed, uint64_t step, std::vector<double>* std_error = nullptr);

template <class T>
std::vector<T> fisher_diag(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer);

// v, out: K × total on the model's device. The batch's pointers must outlive the closure.
template <class T>
CurvatureMatVec<T> full_matvec(HvpEngine<T>& eng, const CurvatureBatch<T>& b,
                               CurvatureMode mode = CurvatureMode::hessian);
// One layer's block as an operator: v, out K × num_params(layer).
template <class T>
CurvatureMatVec<T> layer_matvec(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer,
                                CurvatureMode mode = CurvatureMode::hessian);
// precond: the diagonal P (total values, host), every entry > 0.
template <class T>
CurvatureMatVec<T> preconditioned_matvec(HvpEngine<T>& eng, const CurvatureBatch<T>& b, const std::vector<T>& precond);

}  // namespace cn
