// Saliencies for pruning (docs/capacity.md §prune): how much the loss is expected to grow
// when a weight or a unit of a Linear layer is removed, measured on the fixed curvature
// batch. Per parameter, over the layer's flat order (weight O×I row-major, then bias O):
//   magnitude    w²                     (a unit: the squared norm of its incoming row and bias)
//   activation   |w_ij| · rms(x̃_j)      with x̃ = [x; 1] the layer's input (a unit: the
//                mean |a| of its output at the input of the next Linear)
//   gradient     |w_i g_i|              first-order Taylor term, g the batch gradient
//   obd          ½ H_ii w_i²            H_ii the exact Hessian diagonal (Hutchinson with its
//                standard error above dense_max parameters)
//   obd_fisher   ½ F_ii w_i²            F the empirical Fisher diagonal (1/N) Σ_n g_n²
// A unit's saliency is the sum over its incoming weights and its bias (magnitude, gradient,
// obd, obd_fisher). `obs` (Optimal Brain Surgeon) needs the damped inverse of the exact
// layer block and changes the remaining weights: see obs_* below.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/enum_table.h"
#include "diagnostics/hessian_blocks.h"

namespace cn {

enum class PruneCriterion { magnitude, activation, gradient, obd, obd_fisher, obs };
inline constexpr EnumName<PruneCriterion> kPruneCriteria[] = {
    {PruneCriterion::magnitude, "magnitude"},   {PruneCriterion::activation, "activation"},
    {PruneCriterion::gradient, "gradient"},     {PruneCriterion::obd, "obd"},
    {PruneCriterion::obd_fisher, "obd_fisher"}, {PruneCriterion::obs, "obs"}};

enum class PruneGranularity { weight, neuron };
inline constexpr EnumName<PruneGranularity> kPruneGranularities[] = {{PruneGranularity::weight, "weight"},
                                                                     {PruneGranularity::neuron, "neuron"}};

struct Saliency {
  std::vector<double> value;  // per parameter of the layer, or per unit
  std::vector<double> error;  // standard error (Hutchinson); zeros when exact
  std::string method;         // "exact" | "hutchinson" | "fisher" | "closed_form"
};

struct SaliencyOptions {
  int64_t dense_max = 8192;  // above this many parameters, obd's diagonal is Hutchinson's
  int64_t probes = 256;
  uint64_t seed = 0, step = 0;  // the Hutchinson probes' key
};

// Per-parameter saliencies of Linear layer `layer` (criteria magnitude … obd_fisher).
template <class T>
Saliency param_saliency(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, PruneCriterion criterion,
                        const SaliencyOptions& opt = {});
// Per-unit saliencies of the units Linear layer `layer` produces; `consumer` is the next
// Linear layer (activation reads its input).
template <class T>
Saliency unit_saliency(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, size_t consumer,
                       PruneCriterion criterion, const SaliencyOptions& opt = {});

// Optimal Brain Surgeon over one layer block H (p × p, the layer's flat order, float64):
// the block restricted to the `free` parameters, damped (H + λ·mean|diag|·I, λ raised ×10
// from `damping` until Cholesky succeeds) and inverted once per removal batch.
struct ObsInverse {
  std::vector<int64_t> free;  // parameter indices in the layer, the rows of inv
  std::vector<double> inv;    // (H_FF + damping)⁻¹, |free| × |free|
  double damping = 0;         // the λ used (relative to mean |diag|)
};
ObsInverse obs_inverse(const std::vector<double>& H, int64_t p, const std::vector<int64_t>& free, double damping);
// The saliency of removing group S together (indices into the layer's parameters, all
// free): ½ w_Sᵀ ([H⁻¹]_SS)⁻¹ w_S; a single weight: w²/(2 [H⁻¹]_qq).
double obs_group_saliency(const ObsInverse& inv, const std::vector<double>& w, const std::vector<int64_t>& S);
// Removes group S: w += −H⁻¹_{:,S} ([H⁻¹]_SS)⁻¹ w_S over the free parameters, then w_S = 0
// exactly.
void obs_remove(const ObsInverse& inv, std::vector<double>& w, const std::vector<int64_t>& S);

}  // namespace cn
