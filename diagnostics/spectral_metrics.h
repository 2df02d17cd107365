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

namespace cn {

struct LanczosResult;
struct SlqResult;
struct HutchinsonResult;

// Machine epsilon of the dtype the spectrum was computed in (τ's default uses it).
template <class T>
constexpr double dtype_eps() {
  return static_cast<double>(std::numeric_limits<T>::epsilon());
}

struct MetricOptions {
  // Absolute tolerance τ; absent: τ = max|λ| · n · eps.
  std::optional<double> tau;
  double eps = std::numeric_limits<double>::epsilon();
};

// The overall status of a spectrum.
inline constexpr const char* kStatusOk = "ok";
inline constexpr const char* kStatusZeroMatrix = "zero matrix";
inline constexpr const char* kStatusEmpty = "empty";
inline constexpr const char* kStatusNonFinite = "non-finite eigenvalues";
inline constexpr const char* kStatusNotApplicable = "not applicable";

struct SpectralMetrics {
  int64_t n = 0;                   // number of eigenvalues (the block's parameter count)
  double tau = 0;                  // the tolerance used
  std::string status = kStatusOk;  // ok | zero matrix | empty | non-finite eigenvalues | not applicable
  std::string method = "dense";    // dense | lanczos+slq+hutchinson | kfac | ...
  std::optional<double> trace, logdet, logdet_sign, condition, effective_rank, rank, near_zero_share, negative_share,
      balance, symmetry, mean, std, lambda_max, lambda_min, bias_trace_share;
  std::optional<double> trace_stderr;           // iterative path only (Hutchinson's standard error)
  std::map<std::string, std::string> statuses;  // metric name -> why it is absent

  // The metric names, in docs/design.md §5's order.
  static const std::vector<std::string>& names();
  // The value of a metric by name (nullopt when absent or unknown).
  std::optional<double> get(const std::string& name) const;
};

// Every metric from the full eigenvalue vector:
//   trace = Σλ; mean = trace/n; std = sqrt(Σ(λ−mean)²/n) (population);
//   lambda_max, lambda_min;
//   rank = #{|λ| > τ}; near_zero_share = #{|λ| ≤ τ}/n; negative_share = #{λ < −τ}/n;
//   condition = max|λ| / min{|λ| : |λ| > τ} (≥ 1; null for the zero matrix);
//   effective_rank = Σ|λ| / max|λ| (null for the zero matrix);
//   balance = Σλ / Σ|λ| ∈ [−1, 1], symmetry = 1 − |balance| (null for the zero matrix);
//   logdet = Σ log|λ|, logdet_sign = Π sign λ (both null, status "singular", when any |λ| ≤ τ);
//   bias_trace_share: null with status "no diagonal" (see the overload below).
// τ = options.tau, else max|λ| · n · options.eps. The zero matrix (max|λ| = 0) gets status
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
// Lanczos; trace (+ trace_stderr) from Hutchinson, else SLQ; mean = trace / n; std,
// near_zero_share, negative_share, balance, symmetry and effective_rank from the SLQ
// quadrature. rank, condition and logdet are absent ("not available from the iterative
// method"). method = "lanczos+slq+hutchinson" (the parts that were given).
SpectralMetrics iterative_metrics(int64_t n, const LanczosResult* lanczos, const SlqResult* slq,
                                  const HutchinsonResult* hutchinson);

// {"n_params", "status", "method", "tau", every metric by its docs/design.md §5 name (null when
// absent, with "<metric>_status" beside it), "trace_stderr" when known}.
nlohmann::json to_json(const SpectralMetrics& m);

}  // namespace cn
