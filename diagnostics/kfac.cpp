#include "diagnostics/kfac.h"

#include <algorithm>

#include "core/error.h"
#include "core/memory.h"
#include "diagnostics/eigen.h"
#include "diagnostics/hvp.h"
#include "diagnostics/local_hessian.h"
#include "kernels/ops.h"
#include "layers/model.h"

namespace cn {

template <class T>
KfacFactors kfac_factors(const T* x, const T* dy, int64_t N, int64_t I, int64_t O) {
  CN_CHECK(N > 0 && I > 0 && O > 0);
  KfacFactors f;
  f.N = N;
  f.I = I;
  f.O = O;
  const int64_t I1 = I + 1;
  std::vector<double> Xt(static_cast<size_t>(N * I1)), Dy(static_cast<size_t>(N * O));
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < I; ++k) Xt[n * I1 + k] = static_cast<double>(x[n * I + k]);
    Xt[n * I1 + I] = 1.0;
    for (int64_t j = 0; j < O; ++j) Dy[n * O + j] = static_cast<double>(dy[n * O + j]);
  }
  f.A.assign(static_cast<size_t>(I1 * I1), 0.0);
  f.G.assign(static_cast<size_t>(O * O), 0.0);
  const double dn = static_cast<double>(N);
  // A = X̃ᵀX̃ / N; G = N · Dyᵀ Dy (= mean of ĝ ĝᵀ with ĝ = N dy).
  cpu::gemm<double>(true, false, I1, I1, N, 1.0 / dn, Xt.data(), I1, Xt.data(), I1, 0.0, f.A.data(), I1);
  cpu::gemm<double>(true, false, O, O, N, dn, Dy.data(), O, Dy.data(), O, 0.0, f.G.data(), O);
  // Exactly symmetric (GEMM may round the two triangles differently).
  for (int64_t a = 0; a < I1; ++a)
    for (int64_t b = 0; b < a; ++b) f.A[b * I1 + a] = f.A[a * I1 + b];
  for (int64_t a = 0; a < O; ++a)
    for (int64_t b = 0; b < a; ++b) f.G[b * O + a] = f.G[a * O + b];
  return f;
}

template <class T>
KfacFactors kfac_factors(const Sequential<T>& net, size_t layer, int64_t N) {
  CN_CHECK_MSG(layer < net.size(), "K-FAC: layer " << layer << " out of range");
  const Layer<T>& l = net.layer(layer);
  CN_CHECK_MSG(l.kind() == LayerKind::linear, "K-FAC: layer " << layer << " is '" << l.type() << "', not linear");
  const int64_t I = l.in_features(), O = l.out_features();
  std::vector<T> x(static_cast<size_t>(N * I)), dy(static_cast<size_t>(N * O));
  device_copy(Device::cpu, x.data(), net.device(), net.layer_input(layer), x.size() * sizeof(T));
  device_copy(Device::cpu, dy.data(), net.device(), net.output_grad(layer), dy.size() * sizeof(T));
  return kfac_factors(x.data(), dy.data(), N, I, O);
}

template <class T>
KfacFactors kfac_factors(const HvpEngine<T>& eng, size_t layer) {
  const Sequential<T>& net = eng.net();
  CN_CHECK_MSG(layer < net.size(), "K-FAC: layer " << layer << " out of range");
  CN_CHECK_MSG(eng.prepared() && eng.mode() == CurvatureMode::hessian,
               "K-FAC: prepare() the engine in hessian mode first");
  const Layer<T>& l = net.layer(layer);
  CN_CHECK_MSG(l.kind() == LayerKind::linear, "K-FAC: layer " << layer << " is '" << l.type() << "', not linear");
  const int64_t N = eng.batch(), I = l.in_features(), O = l.out_features();
  std::vector<T> x(static_cast<size_t>(N * I)), dy(static_cast<size_t>(N * O));
  device_copy(Device::cpu, x.data(), net.device(), net.layer_input(layer), x.size() * sizeof(T));
  device_copy(Device::cpu, dy.data(), net.device(), eng.output_grad(layer), dy.size() * sizeof(T));
  return kfac_factors(x.data(), dy.data(), N, I, O);
}

KfacSpectrum kfac_spectrum(const KfacFactors& f) {
  const int64_t I1 = f.I + 1, O = f.O;
  KfacSpectrum s;
  const EigResult<double> ea = eigh(f.A.data(), I1), eg = eigh(f.G.data(), O);
  s.info = std::max(ea.info, eg.info);
  s.symmetry_residual = std::max(ea.symmetry_residual, eg.symmetry_residual);
  s.a_eigenvalues = ea.values;
  s.g_eigenvalues = eg.values;
  s.eigenvalues.reserve(static_cast<size_t>(I1 * O));
  for (double g : eg.values)
    for (double a : ea.values) s.eigenvalues.push_back(g * a);
  std::sort(s.eigenvalues.begin(), s.eigenvalues.end());
  const int64_t p = I1 * O;
  s.diagonal.assign(static_cast<size_t>(p), 0.0);
  s.is_bias.assign(static_cast<size_t>(p), false);
  for (int64_t j = 0; j < O; ++j)
    for (int64_t k = 0; k < I1; ++k) {
      const int64_t idx = local_param_index(f.I, O, j, k);
      s.diagonal[idx] = f.G[j * O + j] * f.A[k * I1 + k];
      s.is_bias[idx] = k == f.I;
    }
  return s;
}

std::vector<double> kfac_matrix(const KfacFactors& f) {
  const int64_t I1 = f.I + 1, O = f.O, p = I1 * O;
  std::vector<double> M(static_cast<size_t>(p * p), 0.0);
  for (int64_t j = 0; j < O; ++j)
    for (int64_t k = 0; k < I1; ++k)
      for (int64_t j2 = 0; j2 < O; ++j2)
        for (int64_t k2 = 0; k2 < I1; ++k2)
          M[local_param_index(f.I, O, j, k) * p + local_param_index(f.I, O, j2, k2)] =
              f.G[j * O + j2] * f.A[k * I1 + k2];
  return M;
}

std::vector<double> kfac_kept_products(const KfacSpectrum& s, double tau_rel) {
  auto cut = [tau_rel](const std::vector<double>& v) {
    double mx = 0;
    for (double x : v) mx = std::max(mx, std::fabs(x));
    return tau_rel * mx;
  };
  const double ta = cut(s.a_eigenvalues), tg = cut(s.g_eigenvalues);
  std::vector<double> out;
  out.reserve(s.a_eigenvalues.size() * s.g_eigenvalues.size());
  for (double g : s.g_eigenvalues)
    for (double a : s.a_eigenvalues) out.push_back(std::fabs(g) > tg && std::fabs(a) > ta ? g * a : 0.0);
  std::sort(out.begin(), out.end());
  return out;
}

SpectralMetrics kfac_metrics(const KfacSpectrum& s, const MetricOptions& opt) {
  // Each factor is cut at its own τ; a product with a cut factor is exactly zero, so the
  // product spectrum is taken with τ = 0 (docs/curvature.md §4).
  MetricOptions zero = opt;
  zero.tau = 0.0;
  SpectralMetrics m = spectral_metrics(kfac_kept_products(s, opt.effective_tau_rel()), s.diagonal, s.is_bias, zero);
  m.method = "kfac";
  m.tau_rel = opt.effective_tau_rel();
  // Each factor's condition over the eigenvalues its cut keeps.
  auto kept_condition = [&m](const std::vector<double>& v) {
    double mx = 0;
    for (double x : v) mx = std::max(mx, std::fabs(x));
    double mn = mx;
    for (double x : v)
      if (std::fabs(x) > m.tau_rel * mx) mn = std::min(mn, std::fabs(x));
    return mx > 0 ? mx / mn : 1.0;
  };
  if (m.condition) m.factor_condition = std::max(kept_condition(s.a_eigenvalues), kept_condition(s.g_eigenvalues));
  return m;
}

template KfacFactors kfac_factors<float>(const float*, const float*, int64_t, int64_t, int64_t);
template KfacFactors kfac_factors<double>(const double*, const double*, int64_t, int64_t, int64_t);
template KfacFactors kfac_factors<float>(const Sequential<float>&, size_t, int64_t);
template KfacFactors kfac_factors<double>(const Sequential<double>&, size_t, int64_t);
template KfacFactors kfac_factors<float>(const HvpEngine<float>&, size_t);
template KfacFactors kfac_factors<double>(const HvpEngine<double>&, size_t);

}  // namespace cn
