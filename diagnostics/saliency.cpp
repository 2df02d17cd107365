#include "diagnostics/saliency.h"

#include <lapacke.h>

#include <cmath>
#include <numeric>

#include "core/error.h"

namespace cn {

namespace {

template <class T>
std::vector<double> host_slice(const Buffer<T>& buf, Device d, int64_t offset, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  device_copy(Device::cpu, h.data(), d, buf.data() + offset, h.size() * sizeof(T));
  return std::vector<double>(h.begin(), h.end());
}

template <class T>
std::vector<double> host_rows(const T* src, Device d, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  device_copy(Device::cpu, h.data(), d, src, h.size() * sizeof(T));
  return std::vector<double>(h.begin(), h.end());
}

void check_linear(LayerKind kind, size_t layer) {
  if (kind != LayerKind::linear)
    throw InputError("saliency: layer " + std::to_string(layer) + " is " + layer_kind_name(kind) +
                     "; pruning reads linear layers");
}

// In-place inverse of the SPD matrix A (n × n, row-major) by Cholesky; false when A is not
// positive definite.
bool spd_inverse(std::vector<double>& A, int64_t n) {
  if (n == 0) return true;
  if (LAPACKE_dpotrf(LAPACK_ROW_MAJOR, 'L', n, A.data(), n) != 0) return false;
  if (LAPACKE_dpotri(LAPACK_ROW_MAJOR, 'L', n, A.data(), n) != 0) return false;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = i + 1; j < n; ++j) A[i * n + j] = A[j * n + i];
  return true;
}

}  // namespace

template <class T>
Saliency param_saliency(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, PruneCriterion criterion,
                        const SaliencyOptions& opt) {
  Sequential<T>& net = eng.net();
  check_linear(net.layer(layer).kind(), layer);
  const Device d = net.device();
  const int64_t O = net.layer(layer).out_features(), I = net.layer(layer).in_features(), p = O * I + O;
  const std::vector<double> w = host_slice(net.params(), d, net.layer_offset(layer), p);
  Saliency s;
  s.value.assign(static_cast<size_t>(p), 0.0);
  s.error.assign(static_cast<size_t>(p), 0.0);
  switch (criterion) {
    case PruneCriterion::magnitude:
      s.method = "closed_form";
      for (int64_t j = 0; j < p; ++j) s.value[j] = w[j] * w[j];
      break;
    case PruneCriterion::activation: {
      s.method = "closed_form";
      eng.prepare(b.ctx, b.x, b.target, b.N, CurvatureMode::hessian);
      const std::vector<double> x = host_rows(net.layer_input(layer), d, b.N * I);
      std::vector<double> rms(static_cast<size_t>(I), 0.0);
      for (int64_t n = 0; n < b.N; ++n)
        for (int64_t c = 0; c < I; ++c) rms[c] += x[n * I + c] * x[n * I + c];
      for (auto& r : rms) r = std::sqrt(r / static_cast<double>(b.N));
      for (int64_t o = 0; o < O; ++o) {
        for (int64_t c = 0; c < I; ++c) s.value[o * I + c] = std::abs(w[o * I + c]) * rms[c];
        s.value[O * I + o] = std::abs(w[O * I + o]);  // the bias column's input is 1
      }
      break;
    }
    case PruneCriterion::gradient: {
      s.method = "closed_form";
      eng.gradient(b.ctx, b.x, b.target, b.N);
      const std::vector<double> g = host_slice(net.grads(), d, net.layer_offset(layer), p);
      for (int64_t j = 0; j < p; ++j) s.value[j] = std::abs(w[j] * g[j]);
      break;
    }
    case PruneCriterion::obd: {
      const std::vector<T> h = hessian_diag(eng, b, layer, opt.dense_max, opt.probes, opt.seed, opt.step, &s.error);
      s.method = p > opt.dense_max ? "hutchinson" : "exact";
      for (int64_t j = 0; j < p; ++j) {
        s.value[j] = 0.5 * static_cast<double>(h[j]) * w[j] * w[j];
        s.error[j] *= 0.5 * w[j] * w[j];
      }
      break;
    }
    case PruneCriterion::obd_fisher: {
      const std::vector<T> f = fisher_diag(eng, b, layer);
      s.method = "fisher";
      for (int64_t j = 0; j < p; ++j) s.value[j] = 0.5 * static_cast<double>(f[j]) * w[j] * w[j];
      break;
    }
    case PruneCriterion::obs:
      throw Error("param_saliency: obs needs the layer block (obs_inverse)");
  }
  return s;
}

template <class T>
Saliency unit_saliency(HvpEngine<T>& eng, const CurvatureBatch<T>& b, size_t layer, size_t consumer,
                       PruneCriterion criterion, const SaliencyOptions& opt) {
  Sequential<T>& net = eng.net();
  const int64_t O = net.layer(layer).out_features(), I = net.layer(layer).in_features();
  Saliency u;
  u.value.assign(static_cast<size_t>(O), 0.0);
  u.error.assign(static_cast<size_t>(O), 0.0);
  if (criterion == PruneCriterion::activation) {
    check_linear(net.layer(layer).kind(), layer);
    eng.prepare(b.ctx, b.x, b.target, b.N, CurvatureMode::hessian);
    const std::vector<double> a = host_rows(net.layer_input(consumer), net.device(), b.N * O);
    for (int64_t n = 0; n < b.N; ++n)
      for (int64_t o = 0; o < O; ++o) u.value[o] += std::abs(a[n * O + o]) / static_cast<double>(b.N);
    u.method = "closed_form";
    return u;
  }
  const Saliency s = param_saliency(eng, b, layer, criterion, opt);
  u.method = s.method;
  for (int64_t o = 0; o < O; ++o) {
    double v = s.value[O * I + o], e2 = s.error[O * I + o] * s.error[O * I + o];
    for (int64_t c = 0; c < I; ++c) {
      v += s.value[o * I + c];
      e2 += s.error[o * I + c] * s.error[o * I + c];
    }
    u.value[o] = v;
    u.error[o] = std::sqrt(e2);  // the entries' errors taken as independent
  }
  return u;
}

ObsInverse obs_inverse(const std::vector<double>& H, int64_t p, const std::vector<int64_t>& free, double damping) {
  CN_CHECK(static_cast<int64_t>(H.size()) == p * p);
  const int64_t n = static_cast<int64_t>(free.size());
  double mean_diag = 0;
  for (int64_t i : free) mean_diag += std::abs(H[i * p + i]);
  mean_diag = n > 0 ? mean_diag / static_cast<double>(n) : 0.0;
  if (!(mean_diag > 0)) mean_diag = 1.0;
  ObsInverse r;
  r.free = free;
  for (double lambda = damping; lambda < 1e12; lambda *= 10) {
    std::vector<double> A(static_cast<size_t>(n * n));
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j < n; ++j) A[i * n + j] = H[free[i] * p + free[j]];
    for (int64_t i = 0; i < n; ++i) A[i * n + i] += lambda * mean_diag;
    if (spd_inverse(A, n)) {
      r.inv = std::move(A);
      r.damping = lambda;
      return r;
    }
  }
  throw Error("obs: the damped layer block is not positive definite at any damping up to 1e12");
}

namespace {
// z = ([H⁻¹]_SS)⁻¹ w_S, with the positions of S among the free parameters.
std::vector<double> obs_solve(const ObsInverse& inv, const std::vector<double>& w, const std::vector<int64_t>& S,
                              std::vector<int64_t>* pos) {
  const int64_t n = static_cast<int64_t>(inv.free.size()), k = static_cast<int64_t>(S.size());
  std::vector<int64_t> where(w.size(), -1);
  for (int64_t i = 0; i < n; ++i) where[inv.free[i]] = i;
  pos->clear();
  for (int64_t q : S) {
    CN_CHECK_MSG(where[q] >= 0, "obs: parameter " << q << " is not free");
    pos->push_back(where[q]);
  }
  std::vector<double> M(static_cast<size_t>(k * k)), z(static_cast<size_t>(k));
  for (int64_t a = 0; a < k; ++a) {
    z[a] = w[S[a]];
    for (int64_t c = 0; c < k; ++c) M[a * k + c] = inv.inv[(*pos)[a] * n + (*pos)[c]];
  }
  if (k > 0 && LAPACKE_dposv(LAPACK_ROW_MAJOR, 'L', k, 1, M.data(), k, z.data(), 1) != 0)
    throw Error("obs: [H^-1]_SS is not positive definite");
  return z;
}
}  // namespace

double obs_group_saliency(const ObsInverse& inv, const std::vector<double>& w, const std::vector<int64_t>& S) {
  std::vector<int64_t> pos;
  const std::vector<double> z = obs_solve(inv, w, S, &pos);
  double s = 0;
  for (size_t a = 0; a < S.size(); ++a) s += w[S[a]] * z[a];
  return 0.5 * s;
}

void obs_remove(const ObsInverse& inv, std::vector<double>& w, const std::vector<int64_t>& S) {
  std::vector<int64_t> pos;
  const std::vector<double> z = obs_solve(inv, w, S, &pos);
  const int64_t n = static_cast<int64_t>(inv.free.size());
  for (int64_t i = 0; i < n; ++i) {
    double delta = 0;
    for (size_t a = 0; a < S.size(); ++a) delta -= inv.inv[i * n + pos[a]] * z[a];
    w[inv.free[i]] += delta;
  }
  for (int64_t q : S) w[q] = 0.0;
}

#define CN_INSTANTIATE(T)                                                                                     \
  template Saliency param_saliency<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, PruneCriterion,        \
                                      const SaliencyOptions&);                                                \
  template Saliency unit_saliency<T>(HvpEngine<T>&, const CurvatureBatch<T>&, size_t, size_t, PruneCriterion, \
                                     const SaliencyOptions&);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)

}  // namespace cn
