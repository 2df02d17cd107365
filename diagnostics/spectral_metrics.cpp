#include "diagnostics/spectral_metrics.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "diagnostics/eigen.h"

namespace cn {

namespace {

using MetricPtr = std::optional<double> SpectralMetrics::*;

// Every metric: its name (docs/design.md §5, in that order) and its member.
constexpr std::pair<const char*, MetricPtr> kMetrics[] = {
    {"trace", &SpectralMetrics::trace},
    {"logdet", &SpectralMetrics::logdet},
    {"logdet_sign", &SpectralMetrics::logdet_sign},
    {"condition", &SpectralMetrics::condition},
    {"effective_rank", &SpectralMetrics::effective_rank},
    {"rank", &SpectralMetrics::rank},
    {"near_zero_share", &SpectralMetrics::near_zero_share},
    {"negative_share", &SpectralMetrics::negative_share},
    {"balance", &SpectralMetrics::balance},
    {"symmetry", &SpectralMetrics::symmetry},
    {"mean", &SpectralMetrics::mean},
    {"std", &SpectralMetrics::std},
    {"lambda_max", &SpectralMetrics::lambda_max},
    {"lambda_min", &SpectralMetrics::lambda_min},
    {"bias_trace_share", &SpectralMetrics::bias_trace_share},
    {"numerical_rank", &SpectralMetrics::numerical_rank},
    {"structural_rank", &SpectralMetrics::structural_rank},
    {"rank_deficit_beyond_structure", &SpectralMetrics::rank_deficit_beyond_structure},
};

MetricPtr member_of(const std::string& name) {
  for (const auto& [metric, member] : kMetrics)
    if (name == metric) return member;
  return nullptr;
}

// Sets every absent metric's status to `why` (unless it has one already).
void fill_statuses(SpectralMetrics& m, const std::string& why) {
  for (const auto& name : SpectralMetrics::names()) {
    auto p = member_of(name);
    if (!(m.*p) && !m.statuses.count(name)) m.statuses[name] = why;
  }
}

void set(SpectralMetrics& m, MetricPtr p, double v, const char* name) {
  // Guard: a metric is either finite or absent.
  if (std::isfinite(v))
    m.*p = v;
  else
    m.statuses[name] = "not finite";
}

}  // namespace

const std::vector<std::string>& SpectralMetrics::names() {
  static const std::vector<std::string> n = [] {
    std::vector<std::string> v;
    for (const auto& entry : kMetrics) v.push_back(entry.first);
    return v;
  }();
  return n;
}

void SpectralMetrics::set_structural_rank(int64_t bound, const std::string& rule) {
  structural_rank = static_cast<double>(bound);
  structural_rank_rule = rule;
  statuses.erase("structural_rank");
  if (numerical_rank) {
    rank_deficit_beyond_structure = static_cast<double>(bound) - *numerical_rank;
    statuses.erase("rank_deficit_beyond_structure");
  }
}

double SpectralMetrics::structural_zero_share() const {
  if (!structural_rank || n <= 0) return 0.0;
  return std::max(0.0, 1.0 - *structural_rank / static_cast<double>(n));
}

StructuralRank structural_rank(CurvatureKind kind, const BlockShape& s) {
  StructuralRank r{s.p, "p"};
  auto take = [&r](int64_t b, const std::string& rule) {
    if (b < r.bound) r = {b, rule};
  };
  if (!s.linear || s.batch <= 0) return r;
  const int64_t B = s.batch, r_in = std::min(s.d_in + (s.bias ? 1 : 0), B);
  const std::string in_rule = s.bias ? "min(d_in+1, B)" : "min(d_in, B)";
  if (kind == CurvatureKind::kfac) {
    // rank(G ⊗ A) = rank(A)·rank(G): A = X̃ᵀX̃/N over the augmented inputs, G = N·DyᵀDy
    // from one output gradient per sample (orthogonal to 1 in softmax logits).
    const int64_t g_dim = s.output_layer && s.softmax_outputs ? s.d_out - 1 : s.d_out;
    take(std::min(s.d_in + 1, B) * std::min(g_dim, B),
         std::string("min(d_in+1, B)·min(") + (s.output_layer && s.softmax_outputs ? "d_out-1" : "d_out") + ", B)");
    return r;
  }
  if (kind != CurvatureKind::loss && kind != CurvatureKind::ggn) return r;
  // z_n = W x_n + b is linear in the block: H = Σ_n M_n ⊗ x̃_n x̃_nᵀ with M_n = ∂²ℓ/∂z_n²
  // (the whole batch's M when BatchNorm couples samples).
  const bool gauss_newton = kind == CurvatureKind::ggn || s.piecewise_linear_after;
  const int64_t c = std::min(s.outputs_rank, s.d_out);
  // M_n's ranges share one subspace only when z is the logits (softmax: ⊥ 1).
  const int64_t common = s.output_layer ? c : s.d_out;
  take(common * r_in, (s.output_layer ? "min(C_eff, d_out)·" : "d_out·") + in_rule);
  if (gauss_newton) take(B * c, "B·min(C_eff, d_out)");
  return r;
}

std::optional<double> SpectralMetrics::get(const std::string& name) const {
  auto p = member_of(name);
  return p ? this->*p : std::nullopt;
}

SpectralMetrics spectral_metrics(const std::vector<double>& ev, const MetricOptions& opt) {
  SpectralMetrics m;
  m.n = static_cast<int64_t>(ev.size());
  if (ev.empty()) {
    m.status = kStatusEmpty;
    fill_statuses(m, kStatusEmpty);
    return m;
  }
  for (double x : ev)
    if (!std::isfinite(x)) {
      m.status = kStatusNonFinite;
      fill_statuses(m, kStatusNonFinite);
      return m;
    }
  const double n = static_cast<double>(ev.size());
  double max_abs = 0, sum = 0, sum_abs = 0, lmin = ev[0], lmax = ev[0];
  for (double x : ev) {
    max_abs = std::max(max_abs, std::fabs(x));
    sum += x;
    sum_abs += std::fabs(x);
    lmin = std::min(lmin, x);
    lmax = std::max(lmax, x);
  }
  const double tau = opt.tau ? *opt.tau : max_abs * opt.effective_tau_rel();
  CN_CHECK_MSG(tau >= 0, "spectral metrics: the tolerance must be non-negative");
  m.tau = tau;
  m.tau_rel = opt.effective_tau_rel();
  int64_t rank = 0, n_zero = 0, n_neg = 0;
  double min_nz = 0, logdet = 0, sign = 1;
  for (double x : ev) {
    const double a = std::fabs(x);
    if (a > tau) {
      ++rank;
      min_nz = rank == 1 ? a : std::min(min_nz, a);
      logdet += std::log(a);
      if (x < 0) sign = -sign;
    } else {
      ++n_zero;
    }
    if (x < -tau) ++n_neg;
  }
  const double mean = sum / n;
  double var = 0;
  for (double x : ev) var += (x - mean) * (x - mean);
  var /= n;

  set(m, &SpectralMetrics::trace, sum, "trace");
  set(m, &SpectralMetrics::mean, mean, "mean");
  set(m, &SpectralMetrics::std, std::sqrt(var), "std");
  set(m, &SpectralMetrics::lambda_max, lmax, "lambda_max");
  set(m, &SpectralMetrics::lambda_min, lmin, "lambda_min");
  m.rank = static_cast<double>(rank);
  m.numerical_rank = static_cast<double>(rank);
  m.near_zero_share = static_cast<double>(n_zero) / n;
  m.negative_share = static_cast<double>(n_neg) / n;
  if (max_abs == 0) {
    m.status = kStatusZeroMatrix;
    m.statuses["logdet"] = "singular";
    m.statuses["logdet_sign"] = "singular";
    fill_statuses(m, kStatusZeroMatrix);  // condition, effective_rank, balance, symmetry, logdet
    return m;
  }
  set(m, &SpectralMetrics::effective_rank, sum_abs / max_abs, "effective_rank");
  if (rank > 0) set(m, &SpectralMetrics::condition, max_abs / min_nz, "condition");
  const double balance = sum / sum_abs;
  set(m, &SpectralMetrics::balance, balance, "balance");
  set(m, &SpectralMetrics::symmetry, 1.0 - std::fabs(balance), "symmetry");
  if (n_zero > 0) {
    m.statuses["logdet"] = "singular";
    m.statuses["logdet_sign"] = "singular";
  } else {
    set(m, &SpectralMetrics::logdet, logdet, "logdet");
    m.logdet_sign = sign;
  }
  if (!m.condition) m.statuses.emplace("condition", "no eigenvalue above the tolerance");
  m.statuses.emplace("bias_trace_share", "no diagonal");
  m.statuses.emplace("structural_rank", "no bound given");
  m.statuses.emplace("rank_deficit_beyond_structure", "no structural bound");
  return m;
}

SpectralMetrics spectral_metrics(const std::vector<double>& ev, const std::vector<double>& diagonal,
                                 const std::vector<bool>& is_bias, const MetricOptions& opt) {
  CN_CHECK_MSG(diagonal.size() == is_bias.size(), "bias_trace_share: diagonal and mask differ in length");
  SpectralMetrics m = spectral_metrics(ev, opt);
  m.statuses.erase("bias_trace_share");
  if (m.status == kStatusEmpty || m.status == kStatusNonFinite) {
    m.statuses["bias_trace_share"] = m.status;
    return m;
  }
  double total = 0, bias = 0;
  bool any_bias = false;
  for (size_t p = 0; p < diagonal.size(); ++p) {
    total += diagonal[p];
    if (is_bias[p]) bias += diagonal[p], any_bias = true;
  }
  if (!any_bias) {
    m.statuses["bias_trace_share"] = "no bias parameters";
  } else if (m.status == kStatusZeroMatrix) {
    m.statuses["bias_trace_share"] = kStatusZeroMatrix;
  } else if (!(std::fabs(total) > static_cast<double>(m.n) * m.tau) || !std::isfinite(bias / total)) {
    m.statuses["bias_trace_share"] = "zero trace";
  } else {
    m.bias_trace_share = bias / total;
  }
  return m;
}

SpectralMetrics not_applicable_metrics(int64_t n, const std::string& reason) {
  SpectralMetrics m;
  m.n = n;
  m.status = kStatusNotApplicable;
  m.method = "none";
  fill_statuses(m,
                reason.empty() ? std::string(kStatusNotApplicable) : std::string(kStatusNotApplicable) + ": " + reason);
  return m;
}

SpectralMetrics iterative_metrics(int64_t n, const LanczosResult* lz, const SlqResult* sq, const HutchinsonResult* hu) {
  SpectralMetrics m;
  m.n = n;
  std::string method;
  auto add = [&](const char* part) { method += method.empty() ? part : std::string("+") + part; };
  if (lz) {
    add("lanczos");
    set(m, &SpectralMetrics::lambda_max, lz->lambda_max(), "lambda_max");
    set(m, &SpectralMetrics::lambda_min, lz->lambda_min(), "lambda_min");
  }
  if (sq) {
    add("slq");
    m.tau = sq->tau;
    m.tau_rel = sq->max_abs > 0 ? sq->tau / sq->max_abs : 0.0;
    const double dn = static_cast<double>(n);
    set(m, &SpectralMetrics::near_zero_share, sq->near_zero_share.value, "near_zero_share");
    set(m, &SpectralMetrics::negative_share, sq->negative_share.value, "negative_share");
    set(m, &SpectralMetrics::numerical_rank, dn * (1.0 - sq->near_zero_share.value), "numerical_rank");
    m.near_zero_share_stderr = sq->near_zero_share.standard_error;
    m.negative_share_stderr = sq->negative_share.standard_error;
    m.numerical_rank_stderr = dn * sq->near_zero_share.standard_error;
    set(m, &SpectralMetrics::std, sq->std, "std");
    const bool zero = sq->lambda_max == 0 && sq->lambda_min == 0;
    if (zero) {
      m.status = kStatusZeroMatrix;
    } else {
      set(m, &SpectralMetrics::balance, sq->balance, "balance");
      set(m, &SpectralMetrics::symmetry, 1.0 - std::fabs(sq->balance), "symmetry");
      set(m, &SpectralMetrics::effective_rank, sq->effective_rank.value, "effective_rank");
      m.effective_rank_stderr = sq->effective_rank.standard_error;
    }
    set(m, &SpectralMetrics::trace, sq->trace.value, "trace");
    m.trace_stderr = sq->trace.standard_error;
  }
  if (hu) {
    add("hutchinson");
    if (!sq) {
      set(m, &SpectralMetrics::trace, hu->trace, "trace");
      m.trace_stderr = hu->standard_error;
    }
  }
  if (m.trace && n > 0) set(m, &SpectralMetrics::mean, *m.trace / static_cast<double>(n), "mean");
  m.method = method.empty() ? "none" : method;
  for (const char* k : {"rank", "logdet", "logdet_sign"}) m.statuses[k] = "not available from the iterative method";
  m.statuses["condition"] = "not available from the iterative method (Gauss nodes above tau are not eigenvalues)";
  m.statuses["bias_trace_share"] = "not available from the iterative method";
  if (m.status == kStatusZeroMatrix) fill_statuses(m, kStatusZeroMatrix);
  m.statuses.emplace("structural_rank", "no bound given");
  m.statuses.emplace("rank_deficit_beyond_structure", "no structural bound");
  fill_statuses(m, "not computed (" + m.method + ")");
  return m;
}

nlohmann::json to_json(const SpectralMetrics& m) {
  nlohmann::json j = nlohmann::json::object();
  j["n_params"] = m.n;
  j["status"] = m.status;
  j["method"] = m.method;
  j["tau"] = std::isfinite(m.tau) ? nlohmann::json(m.tau) : nlohmann::json(nullptr);
  j["tau_rel"] = std::isfinite(m.tau_rel) ? nlohmann::json(m.tau_rel) : nlohmann::json(nullptr);
  for (const auto& name : SpectralMetrics::names()) {
    const auto v = m.get(name);
    if (v && std::isfinite(*v)) {
      if (name == "rank" || name == "structural_rank")
        j[name] = static_cast<int64_t>(*v);
      else
        j[name] = *v;
    } else {
      j[name] = nullptr;
      auto it = m.statuses.find(name);
      j[name + "_status"] = it != m.statuses.end() ? it->second : std::string("not computed");
    }
  }
  if (!m.structural_rank_rule.empty()) j["structural_rank_rule"] = m.structural_rank_rule;
  if (m.factor_condition && std::isfinite(*m.factor_condition)) j["factor_condition"] = *m.factor_condition;
  const std::pair<const char*, const std::optional<double>*> errors[] = {
      {"trace_stderr", &m.trace_stderr},
      {"near_zero_share_stderr", &m.near_zero_share_stderr},
      {"negative_share_stderr", &m.negative_share_stderr},
      {"numerical_rank_stderr", &m.numerical_rank_stderr},
      {"effective_rank_stderr", &m.effective_rank_stderr}};
  for (const auto& [key, v] : errors)
    if (*v && std::isfinite(**v)) j[key] = **v;
  return j;
}

}  // namespace cn
