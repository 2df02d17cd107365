#include "diagnostics/layer_stats.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

#include "core/error.h"

namespace cn {

template <class T>
double l2_norm(const T* x, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = static_cast<double>(x[i]);
    s += v * v;
  }
  return std::sqrt(s);
}

template <class T>
double linf_norm(const T* x, int64_t n) {
  double m = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double v = std::fabs(static_cast<double>(x[i]));
    if (!(v <= m)) m = v;  // NaN propagates
  }
  return m;
}

template <class T>
double l2_distance(const T* a, const T* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(a[i]) - static_cast<double>(b[i]);
    s += d * d;
  }
  return std::sqrt(s);
}

template <class T>
double mean_abs(const T* x, int64_t n) {
  if (n <= 0) return 0;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += std::fabs(static_cast<double>(x[i]));
  return s / static_cast<double>(n);
}

template <class T>
bool all_finite(const T* x, int64_t n, int64_t* first) {
  for (int64_t i = 0; i < n; ++i)
    if (!std::isfinite(static_cast<double>(x[i]))) {
      if (first) *first = i;
      return false;
    }
  if (first) *first = n;
  return true;
}

template <class T>
MeanVar mean_var(const T* x, int64_t n) {
  MeanVar r;
  if (n <= 0) return r;
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += static_cast<double>(x[i]);
  r.mean = s / static_cast<double>(n);
  double v = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(x[i]) - r.mean;
    v += d * d;
  }
  r.var = v / static_cast<double>(n);
  return r;
}

template <class T>
double unit_spread(const T* w, const T* b, int64_t rows, int64_t cols) {
  if (rows <= 0) return 0;
  // Row by row (W is row-major): the mean row first, then the deviations from it.
  std::vector<double> mean(static_cast<size_t>(cols) + 1, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) mean[static_cast<size_t>(c)] += static_cast<double>(row[c]);
    if (b) mean[static_cast<size_t>(cols)] += static_cast<double>(b[r]);
  }
  for (double& m : mean) m /= static_cast<double>(rows);
  double dev = 0, total = 0;
  for (int64_t r = 0; r < rows; ++r) {
    const T* row = w + r * cols;
    for (int64_t c = 0; c < cols; ++c) {
      const double x = static_cast<double>(row[c]), d = x - mean[static_cast<size_t>(c)];
      dev += d * d;
      total += x * x;
    }
    if (b) {
      const double x = static_cast<double>(b[r]), d = x - mean[static_cast<size_t>(cols)];
      dev += d * d;
      total += x * x;
    }
  }
  return total > 0 ? std::sqrt(dev / total) : 0.0;
}

bool act_can_die(Act kind) { return kind == Act::relu || kind == Act::leaky_relu; }
bool act_saturates(Act kind) { return kind == Act::sigmoid || kind == Act::tanh; }
double act_max_derivative(Act kind) { return kind == Act::sigmoid ? 0.25 : 1.0; }

template <class T>
void units_active(const T* x, int64_t N, int64_t F, uint8_t* active) {
  for (int64_t f = 0; f < F; ++f) active[f] = 0;
  for (int64_t n = 0; n < N; ++n)
    for (int64_t f = 0; f < F; ++f)
      if (x[n * F + f] > T(0)) active[f] = 1;
}

template <class T>
double saturated_share(const ActParams& a, const T* x, const T* y, int64_t N, int64_t F) {
  if (F <= 0 || N <= 0) return 0;
  const double limit = kSaturationDerivRatio * act_max_derivative(a.kind);
  int64_t saturated_units = 0;
  for (int64_t f = 0; f < F; ++f) {
    int64_t count = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double d = std::fabs(static_cast<double>(act_d1<T>(a, x[n * F + f], y[n * F + f])));
      if (d < limit) ++count;
    }
    if (static_cast<double>(count) > kSaturationMajority * static_cast<double>(N)) ++saturated_units;
  }
  return static_cast<double>(saturated_units) / static_cast<double>(F);
}

std::vector<double> singular_values(const double* A, int64_t rows, int64_t cols) {
  const int64_t k = std::min(rows, cols);
  std::vector<double> s(static_cast<size_t>(std::max<int64_t>(k, 0)));
  if (k <= 0) return s;
  std::vector<double> a(A, A + rows * cols);
  const lapack_int info = LAPACKE_dgesdd(LAPACK_ROW_MAJOR, 'N', static_cast<lapack_int>(rows),
                                         static_cast<lapack_int>(cols), a.data(), static_cast<lapack_int>(cols),
                                         s.data(), nullptr, static_cast<lapack_int>(std::max<int64_t>(rows, 1)),
                                         nullptr, static_cast<lapack_int>(std::max<int64_t>(cols, 1)));
  CN_CHECK_MSG(info == 0, "LAPACKE_dgesdd failed, info = " << info);
  std::sort(s.begin(), s.end(), [](double p, double q) { return p > q; });
  return s;
}

SingularSummary summarize_singular_values(const std::vector<double>& sigma, int64_t rows, int64_t cols, double eps) {
  SingularSummary r;
  if (sigma.empty()) {
    r.stable_rank = std::nan("");
    return r;
  }
  r.sigma_max = *std::max_element(sigma.begin(), sigma.end());
  r.sigma_min = *std::min_element(sigma.begin(), sigma.end());
  r.tol = r.sigma_max * static_cast<double>(std::max(rows, cols)) * eps;
  double sq = 0;
  for (double s : sigma) {
    if (s > r.tol) ++r.numerical_rank;
    sq += s * s;
  }
  r.stable_rank = r.sigma_max > 0 ? sq / (r.sigma_max * r.sigma_max) : std::nan("");
  return r;
}

double pearson_correlation(const std::vector<double>& a, const std::vector<double>& b) {
  const size_t n = std::min(a.size(), b.size());
  if (n < 2 || a.size() != b.size()) return std::nan("");
  double ma = 0, mb = 0;
  for (size_t i = 0; i < n; ++i) ma += a[i], mb += b[i];
  ma /= static_cast<double>(n);
  mb /= static_cast<double>(n);
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < n; ++i) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) * (a[i] - ma);
    sbb += (b[i] - mb) * (b[i] - mb);
  }
  if (saa <= 0 || sbb <= 0) return std::nan("");
  return sab / std::sqrt(saa * sbb);
}

double spectrum_similarity(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.empty() || b.empty()) return std::nan("");
  const double ma = *std::max_element(a.begin(), a.end()), mb = *std::max_element(b.begin(), b.end());
  if (!(ma > 0) || !(mb > 0)) return std::nan("");
  std::vector<double> x, y;
  for (double v : a) x.push_back(v / ma);
  for (double v : b) y.push_back(v / mb);
  std::sort(x.begin(), x.end());
  std::sort(y.begin(), y.end());
  // KS distance: sup over the pooled points of |F_x − F_y| (right-continuous ECDFs).
  double d = 0;
  size_t i = 0, j = 0;
  const double nx = static_cast<double>(x.size()), ny = static_cast<double>(y.size());
  while (i < x.size() || j < y.size()) {
    const double t = j >= y.size() || (i < x.size() && x[i] <= y[j]) ? x[i] : y[j];
    while (i < x.size() && x[i] <= t) ++i;
    while (j < y.size() && y[j] <= t) ++j;
    d = std::max(d, std::fabs(static_cast<double>(i) / nx - static_cast<double>(j) / ny));
  }
  return 1.0 - d;
}

#define CN_LAYER_STATS(T)                                               \
  template double l2_norm<T>(const T*, int64_t);                        \
  template double linf_norm<T>(const T*, int64_t);                      \
  template double l2_distance<T>(const T*, const T*, int64_t);          \
  template double mean_abs<T>(const T*, int64_t);                       \
  template bool all_finite<T>(const T*, int64_t, int64_t*);             \
  template MeanVar mean_var<T>(const T*, int64_t);                      \
  template double unit_spread<T>(const T*, const T*, int64_t, int64_t); \
  template void units_active<T>(const T*, int64_t, int64_t, uint8_t*);  \
  template double saturated_share<T>(const ActParams&, const T*, const T*, int64_t, int64_t);
CN_LAYER_STATS(float)
CN_LAYER_STATS(double)
#undef CN_LAYER_STATS

}  // namespace cn
