// Spectral metrics of a symmetric matrix (docs/spec.md §3; docs/curvature.md), each defined once
// here. From a full eigenvalue vector (dense path) or from the iterative estimates
// (Lanczos + SLQ + Hutchinson). A metric without a finite value is absent (nullopt) and
// carries a status string saying why; nothing here is ever NaN or infinite.
#pragma once
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "config/kinds.h"

namespace cn {

struct LanczosResult;
struct SlqResult;
struct HutchinsonResult;

// Machine epsilon of the dtype the spectrum was computed in (τ's default uses it).
template <class T>
constexpr double dtype_eps() {
  return static_cast<double>(std::numeric_limits<T>::epsilon());
}

// Default relative tolerances τ/max|λ| of a dense solve (docs/curvature.md §4): above the
// backward error of ?syevd, ~n·ε·‖A‖, for every block the dense path takes (n ≤ 4·10⁵ in
// float64; float32 blocks carry the error of float32 Hessian-vector products too).
inline constexpr double kDenseTauRel64 = 1e-10;
inline constexpr double kDenseTauRel32 = 1e-4;

// The dense default for a spectrum computed in a dtype with machine epsilon `eps`.
constexpr double default_dense_tau_rel(double eps) { return eps < 1e-10 ? kDenseTauRel64 : kDenseTauRel32; }

struct MetricOptions {
  // Absolute tolerance τ; absent: τ = tau_rel · max|λ|.
  std::optional<double> tau;
  double tau_rel = 0;  // 0: default_dense_tau_rel(eps)
  double eps = std::numeric_limits<double>::epsilon();
  double effective_tau_rel() const { return tau_rel > 0 ? tau_rel : default_dense_tau_rel(eps); }
};

// The overall status of a spectrum.
inline constexpr const char* kStatusOk = "ok";
inline constexpr const char* kStatusZeroMatrix = "zero matrix";
inline constexpr const char* kStatusEmpty = "empty";
inline constexpr const char* kStatusNonFinite = "non-finite eigenvalues";
inline constexpr const char* kStatusNotApplicable = "not applicable";

struct SpectralMetrics {
  int64_t n = 0;                   // number of eigenvalues (the block's parameter count)
  double tau = 0;                  // the absolute tolerance used: |λ| ≤ tau counts as zero
  double tau_rel = 0;              // tau / max|λ| as configured (K-FAC: per factor)
  std::string status = kStatusOk;  // ok | zero matrix | empty | non-finite eigenvalues | not applicable
  std::string method = "dense";    // dense | lanczos+slq+hutchinson | kfac | ...
  std::optional<double> trace, logdet, logdet_sign, condition, effective_rank, rank, near_zero_share, negative_share,
      balance, symmetry, mean, std, lambda_max, lambda_min, bias_trace_share;
  // numerical_rank: #{|λ| > τ} (dense), n·(1 − near_zero_share) (SLQ). structural_rank: the
  // bound the construction allows (see structural_rank below). rank_deficit_beyond_structure:
  // structural_rank − numerical_rank.
  std::optional<double> numerical_rank, structural_rank, rank_deficit_beyond_structure;
  std::string structural_rank_rule;  // which bound gave structural_rank
  // K-FAC: the larger of the two factors' condition numbers over their kept eigenvalues
  // (condition = the product of the two).
  std::optional<double> factor_condition;
  // Probe standard errors (SLQ only).
  std::optional<double> trace_stderr, near_zero_share_stderr, negative_share_stderr, numerical_rank_stderr,
      effective_rank_stderr;
  std::map<std::string, std::string> statuses;  // metric name -> why it is absent

  // The metric names, in docs/design.md §5's order.
  static const std::vector<std::string>& names();
  // The value of a metric by name (nullopt when absent or unknown).
  std::optional<double> get(const std::string& name) const;
  // Sets structural_rank and rank_deficit_beyond_structure.
  void set_structural_rank(int64_t bound, const std::string& rule);
  // 1 − structural_rank / n: the share of eigenvalues the construction forces to zero (0
  // when no bound is known).
  double structural_zero_share() const;
};

// What bounds a block's rank (docs/curvature.md §4). For a Linear layer's block:
struct BlockShape {
  int64_t p = 0;        // parameters
  int64_t batch = 0;    // curvature batch B
  bool linear = false;  // a Linear layer (other layers: no bound, rank ≤ p)
  int64_t d_in = 0, d_out = 0;
  bool bias = false;
  int64_t outputs_rank = 0;   // C_eff: rank of the loss's Hessian in one sample's outputs
  bool output_layer = false;  // the layer's output is the network's output (nothing after)
  // Nothing after the layer has curvature of its own and every sample passes alone
  // (Linear, ReLU, leaky ReLU, identity, Dropout, eval-mode BatchNorm): the loss block
  // then equals the Gauss-Newton block.
  bool piecewise_linear_after = false;
  bool softmax_outputs = false;  // cross-entropy: per-sample gradients in the logits sum to 0
};

// The rank bound of a block of kind `kind` (loss, ggn, kfac; others: p) with the
// rule that gives it, e.g. "B·min(C_eff, d_out)".
struct StructuralRank {
  int64_t bound = 0;
  std::string rule;
};
StructuralRank structural_rank(CurvatureKind kind, const BlockShape& shape);

// Every metric from the full eigenvalue vector:
//   trace = Σλ; mean = trace/n; std = sqrt(Σ(λ−mean)²/n) (population);
//   lambda_max, lambda_min;
//   rank = #{|λ| > τ}; near_zero_share = #{|λ| ≤ τ}/n; negative_share = #{λ < −τ}/n;
//   condition = max|λ| / min{|λ| : |λ| > τ} (≥ 1; null for the zero matrix);
//   effective_rank = Σ|λ| / max|λ| (null for the zero matrix);
//   balance = Σλ / Σ|λ| ∈ [−1, 1], symmetry = 1 − |balance| (null for the zero matrix);
//   logdet = Σ log|λ|, logdet_sign = Π sign λ (both null, status "singular", when any |λ| ≤ τ);
//   bias_trace_share: null with status "no diagonal" (see the overload below).
// τ = options.tau, else options.effective_tau_rel() · max|λ|. The zero matrix (max|λ| = 0) gets status
// "zero matrix"; an empty vector "empty"; any non-finite eigenvalue "non-finite eigenvalues"
// with every metric absent.
SpectralMetrics spectral_metrics(const std::vector<double>& eigenvalues, const MetricOptions& options = {});

// As above, plus bias_trace_share = Σ_{p bias} diag_p / Σ_p diag_p, from the block's diagonal
// (eigenvalues do not map to parameters, the diagonal does; Σ diag = trace). `is_bias` marks
// the bias entries of `diagonal` (same order). Null with status "zero trace" when
// |Σ diag| ≤ n·τ (the share would be meaningless), "no bias parameters" when none is marked.
// For indefinite blocks the share can fall outside [0, 1].
SpectralMetrics spectral_metrics(const std::vector<double>& eigenvalues, const std::vector<double>& diagonal,
                                 const std::vector<bool>& is_bias, const MetricOptions& options = {});

// A row for a block the closed form does not cover (status "not applicable", every metric
// absent with that status).
SpectralMetrics not_applicable_metrics(int64_t n, const std::string& reason);

// The iterative path's metrics (any of the three may be null): lambda_max / lambda_min from
// Lanczos; trace (+ trace_stderr) from the (deflated) SLQ, else Hutchinson; mean = trace / n;
// std, near_zero_share, negative_share, numerical_rank, balance, symmetry and
// effective_rank from the SLQ quadrature, each with its probe standard error. rank,
// condition and logdet are absent: Gauss nodes above τ are not eigenvalues.
// method = "lanczos+slq+hutchinson" (the parts that were given).
SpectralMetrics iterative_metrics(int64_t n, const LanczosResult* lanczos, const SlqResult* slq,
                                  const HutchinsonResult* hutchinson);

// {"n_params", "status", "method", "tau", "tau_rel", every metric by its docs/design.md §5
// name (null when absent, with "<metric>_status" beside it), "structural_rank_rule" and the
// "<metric>_stderr" fields when known}.
nlohmann::json to_json(const SpectralMetrics& m);

}  // namespace cn
