#include "diagnostics/spectral_metrics.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "core/error.h"
#include "diagnostics/eigen.h"

namespace cn {

namespace {

using MetricPtr = std::optional<double> SpectralMetrics::*;

MetricPtr member_of(const std::string& name) {
  static const std::map<std::string, MetricPtr> m = {
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
  };
  auto it = m.find(name);
  return it == m.end() ? nullptr : it->second;
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
  static const std::vector<std::string> n = {
      "trace",           "logdet",         "logdet_sign",     "condition", "effective_rank", "rank",
      "near_zero_share", "negative_share", "balance",         "symmetry",  "mean",           "std",
      "lambda_max",      "lambda_min",     "bias_trace_share"};
  return n;
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
  const double tau = opt.tau ? *opt.tau : max_abs * n * opt.eps;
  CN_CHECK_MSG(tau >= 0, "spectral metrics: the tolerance must be non-negative");
  m.tau = tau;
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
    set(m, &SpectralMetrics::near_zero_share, sq->near_zero_share, "near_zero_share");
    set(m, &SpectralMetrics::negative_share, sq->negative_share, "negative_share");
    set(m, &SpectralMetrics::std, sq->std, "std");
    const bool zero = sq->lambda_max == 0 && sq->lambda_min == 0;
    if (zero) {
      m.status = kStatusZeroMatrix;
    } else {
      set(m, &SpectralMetrics::balance, sq->balance, "balance");
      set(m, &SpectralMetrics::symmetry, 1.0 - std::fabs(sq->balance), "symmetry");
      set(m, &SpectralMetrics::effective_rank, sq->effective_rank, "effective_rank");
    }
  }
  if (hu) {
    add("hutchinson");
    set(m, &SpectralMetrics::trace, hu->trace, "trace");
    m.trace_stderr = hu->standard_error;
  } else if (sq) {
    set(m, &SpectralMetrics::trace, sq->trace, "trace");
    m.trace_stderr = sq->trace_stderr;
  }
  if (m.trace && n > 0) set(m, &SpectralMetrics::mean, *m.trace / static_cast<double>(n), "mean");
  m.method = method.empty() ? "none" : method;
  for (const char* k : {"rank", "condition", "logdet", "logdet_sign"})
    m.statuses[k] = "not available from the iterative method";
  m.statuses["bias_trace_share"] = "not available from the iterative method";
  if (m.status == kStatusZeroMatrix) fill_statuses(m, kStatusZeroMatrix);
  fill_statuses(m, "not computed (" + m.method + ")");
  return m;
}

nlohmann::json to_json(const SpectralMetrics& m) {
  nlohmann::json j = nlohmann::json::object();
  j["n_params"] = m.n;
  j["status"] = m.status;
  j["method"] = m.method;
  j["tau"] = std::isfinite(m.tau) ? nlohmann::json(m.tau) : nlohmann::json(nullptr);
  for (const auto& name : SpectralMetrics::names()) {
    const auto v = m.get(name);
    if (v && std::isfinite(*v)) {
      if (name == "rank")
        j[name] = static_cast<int64_t>(*v);
      else
        j[name] = *v;
    } else {
      j[name] = nullptr;
      auto it = m.statuses.find(name);
      j[name + "_status"] = it != m.statuses.end() ? it->second : std::string("not computed");
    }
  }
  if (m.trace_stderr && std::isfinite(*m.trace_stderr)) j["trace_stderr"] = *m.trace_stderr;
  return j;
}

}  // namespace cn
