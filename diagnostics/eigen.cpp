#include "diagnostics/eigen.h"

#include <lapacke.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "core/error.h"
#include "core/memory.h"
#include "core/philox.h"
#include "kernels/ops.h"

namespace cn {

namespace {

lapack_int syevd(int layout, char jobz, char uplo, lapack_int n, double* a, lapack_int lda, double* w) {
  return LAPACKE_dsyevd(layout, jobz, uplo, n, a, lda, w);
}
lapack_int syevd(int layout, char jobz, char uplo, lapack_int n, float* a, lapack_int lda, float* w) {
  return LAPACKE_ssyevd(layout, jobz, uplo, n, a, lda, w);
}

double dot(const double* a, const double* b, int64_t n) {
  double s = 0;
  for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
  return s;
}

constexpr uint64_t kMethodLanczos = 0, kMethodSlq = 1, kMethodHutchinson = 2;

PhiloxDraw draw_for(const ProbeKey& key, uint64_t method) {
  return PhiloxDraw(key.seed, RngStream::curvature, key.a, key.b * 4 + method);
}

void rademacher(PhiloxDraw& d, double* v, int64_t n) {
  for (int64_t i = 0; i < n; ++i) v[i] = d.uniform() < 0.5 ? -1.0 : 1.0;
}

// Float64 arithmetic on n-vectors where the operator keeps them (host memory for
// Device::cpu), every operation through the gemm op: one code path for both backends.
class Vectors {
 public:
  Vectors(Device d, int64_t n) : d_(d), n_(n), one_(1, d), scalar_(1, d) {
    const double one = 1.0;
    device_copy(d_, one_.data(), Device::cpu, &one, sizeof one);
  }
  Device device() const { return d_; }
  double dot(const double* a, const double* b) {
    CN_DISPATCH(d_, gemm<double>, false, false, 1, 1, n_, 1.0, a, n_, b, 1, 0.0, scalar_.data(), 1);
    double s = 0;
    device_copy(Device::cpu, &s, d_, scalar_.data(), sizeof s);
    return s;
  }
  double norm(const double* a) { return std::sqrt(dot(a, a)); }
  // y = alpha x + beta y (beta = 0: y = alpha x, y not read).
  void axpby(double alpha, const double* x, double beta, double* y) {
    CN_DISPATCH(d_, gemm<double>, false, false, n_, 1, 1, alpha, x, 1, one_.data(), 1, beta, y, 1);
  }
  void upload(double* dst, const std::vector<double>& host) {
    device_copy(d_, dst, Device::cpu, host.data(), static_cast<size_t>(n_) * sizeof(double));
  }
  // w -= V[0..rows)ᵀ (V[0..rows) w) (classical Gram-Schmidt), and once more when that pass
  // took w's norm below 1/√2 of what it was: a large cancellation leaves rounding along
  // the basis that a second pass removes, a small one does not (the DGKS criterion;
  // Daniel, Gragg, Kaufman & Stewart 1976). Either way w ends orthogonal to the basis to
  // working precision. V: rows×n row-major; h: scratch, rows long; all on the device.
  // Returns ‖w‖ before and after, which the criterion computes anyway.
  struct Norms {
    double before, after;
  };
  Norms reorthogonalise(const double* V, int64_t rows, double* w, double* h) {
    const double first = norm(w);
    double before = first, after = first;
    for (int pass = 0; pass < 2 && rows > 0; ++pass) {
      CN_DISPATCH(d_, gemm<double>, false, false, rows, 1, n_, 1.0, V, n_, w, 1, 0.0, h, 1);
      CN_DISPATCH(d_, gemm<double>, true, false, n_, 1, rows, -1.0, V, n_, h, 1, 1.0, w, 1);
      after = norm(w);
      if (after >= M_SQRT1_2 * before) break;
      before = after;
    }
    return {first, after};
  }

 private:
  Device d_;
  int64_t n_;
  Buffer<double> one_, scalar_;
};

// The core Lanczos recurrence on start vector q0 (normalised inside). Writes alpha (m),
// beta (m: beta[j] couples j and j+1; beta[m-1] is the final residual norm). With
// `restart`, an invariant subspace is left through a fresh random orthogonal vector (drawn
// from `d`); without it the run stops there. The basis lives where the operator does.
struct Tridiag {
  std::vector<double> alpha, beta;
  int restarts = 0;
  Buffer<double> basis;  // the m×n Lanczos basis (where the operator is), when kept
};

Tridiag lanczos_core(const DeviceOperator& A, int64_t n, int64_t m, std::vector<double> q0, bool restart, PhiloxDraw& d,
                     bool keep_basis = false) {
  Tridiag t;
  Vectors vec(A.device, n);
  Buffer<double> V(m * n, A.device), w(n, A.device), h(m, A.device);

  const double nrm = std::sqrt(dot(q0.data(), q0.data(), n));
  CN_CHECK_MSG(nrm > 0, "Lanczos: zero start vector");
  for (auto& x : q0) x /= nrm;
  vec.upload(V.data(), q0);
  double anorm = 0;
  for (int64_t j = 0; j < m; ++j) {
    const double* q = V.data() + j * n;
    A.apply(q, w.data());
    const double a = vec.dot(q, w.data());
    t.alpha.push_back(a);
    // The three-term step, then full reorthogonalisation of what rounding left along the
    // basis (after the step that is tiny, so one pass usually does).
    vec.axpby(-a, q, 1.0, w.data());
    if (j > 0) vec.axpby(-t.beta[j - 1], V.data() + (j - 1) * n, 1.0, w.data());
    double b = vec.reorthogonalise(V.data(), j + 1, w.data(), h.data()).after;
    anorm = std::max(anorm, std::fabs(a) + b + (j > 0 ? t.beta[j - 1] : 0.0));
    const bool invariant = b <= 1e-11 * anorm || b == 0.0;
    if (j + 1 == m) {
      t.beta.push_back(invariant ? 0.0 : b);
      break;
    }
    double* next = V.data() + (j + 1) * n;
    if (invariant) {
      if (!restart) {
        t.beta.push_back(0.0);
        break;
      }
      // A fresh direction orthogonal to the basis; T gets a zero off-diagonal here.
      double nn = 0;
      std::vector<double> fresh(static_cast<size_t>(n));
      for (int attempt = 0; attempt < 5 && !(nn > 0.5); ++attempt) {
        for (auto& x : fresh) x = d.normal();
        vec.upload(w.data(), fresh);
        const Vectors::Norms r = vec.reorthogonalise(V.data(), j + 1, w.data(), h.data());
        nn = r.after / r.before;
        b = r.after;
      }
      CN_CHECK_MSG(nn > 0.5, "Lanczos: no new direction orthogonal to the basis");
      vec.axpby(1.0 / b, w.data(), 0.0, next);
      t.beta.push_back(0.0);
      ++t.restarts;
      continue;
    }
    vec.axpby(1.0 / b, w.data(), 0.0, next);
    t.beta.push_back(b);
  }
  if (keep_basis) t.basis = std::move(V);
  return t;
}

// Eigen-decomposition of the tridiagonal (alpha, beta[0..m-2]): values ascending and the
// matrix S (column-major m×m) of eigenvectors.
void tridiag_eig(const Tridiag& t, std::vector<double>& theta, std::vector<double>& S) {
  const lapack_int m = static_cast<lapack_int>(t.alpha.size());
  theta = t.alpha;
  std::vector<double> e(std::max<lapack_int>(m - 1, 1), 0.0);
  for (lapack_int i = 0; i + 1 < m; ++i) e[i] = t.beta[i];
  S.assign(static_cast<size_t>(m) * m, 0.0);
  const lapack_int info = LAPACKE_dstev(LAPACK_COL_MAJOR, 'V', m, theta.data(), e.data(), S.data(), m);
  CN_CHECK_MSG(info == 0, "LAPACKE_dstev failed, info = " << info);
}

// The converged Ritz pairs (residual ≤ tol · max|θ|), at most k from each end of the
// spectrum, their vectors Y = Vᵀ S (rows) copied to the host. Only the ends are taken:
// interior Ritz values of a short run are not eigenvalues even when their residual is small.
void keep_converged(const Tridiag& t, const std::vector<double>& S, double tol, int64_t k, int64_t n, Device dev,
                    LanczosResult& r) {
  const int64_t m = r.steps;
  double max_abs = 0;
  for (double x : r.ritz) max_abs = std::max(max_abs, std::fabs(x));
  if (!(max_abs > 0)) return;
  std::vector<int64_t> pick;
  for (int64_t i = m - 1; i >= 0 && m - 1 - i < k; --i) {  // from the top, while converged
    if (!(r.residuals[i] <= tol * max_abs)) break;
    pick.push_back(i);
  }
  const int64_t top = static_cast<int64_t>(pick.size());
  for (int64_t i = 0; i < m - top && i < k; ++i) {  // from the bottom
    if (!(r.residuals[i] <= tol * max_abs)) break;
    pick.push_back(i);
  }
  if (pick.empty()) return;
  const int64_t c = static_cast<int64_t>(pick.size());
  // Columns of S (column-major m×m) for the picked pairs, as a c×m row-major matrix.
  std::vector<double> Sc(static_cast<size_t>(c * m));
  for (int64_t a = 0; a < c; ++a)
    for (int64_t j = 0; j < m; ++j) Sc[a * m + j] = S[pick[a] * m + j];
  Buffer<double> Sd(c * m, dev), Y(c * n, dev);
  device_copy(dev, Sd.data(), Device::cpu, Sc.data(), Sc.size() * sizeof(double));
  CN_DISPATCH(dev, gemm<double>, false, false, c, n, m, 1.0, Sd.data(), m, t.basis.data(), n, 0.0, Y.data(), n);
  r.converged_vectors.resize(static_cast<size_t>(c * n));
  device_copy(Device::cpu, r.converged_vectors.data(), dev, Y.data(), r.converged_vectors.size() * sizeof(double));
  for (int64_t i : pick) r.converged_values.push_back(r.ritz[i]);
}

// The mean of per-probe samples and its standard error.
ProbeEstimate probe_estimate(const std::vector<double>& x) {
  ProbeEstimate e;
  const double P = static_cast<double>(x.size());
  if (x.empty()) return e;
  e.value = std::accumulate(x.begin(), x.end(), 0.0) / P;
  if (x.size() > 1) {
    double var = 0;
    for (double v : x) var += (v - e.value) * (v - e.value);
    e.standard_error = std::sqrt(var / (P - 1) / P);
  }
  return e;
}

// Mass of a log-normal kernel (median c > 0, width s in ln) on (0, t]: Φ(ln(t/c)/s).
double lognormal_cdf(double t, double c, double s) {
  if (t <= 0) return 0.0;
  return 0.5 * std::erfc(-std::log(t / c) / (s * M_SQRT2));
}

}  // namespace

template <class T>
double symmetry_residual(const T* A, int64_t n) {
  double num = 0, den = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      const double a = A[i * n + j], d = a - static_cast<double>(A[j * n + i]);
      num += d * d;
      den += a * a;
    }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

template <class T>
EigResult<T> eigh(const T* A, int64_t n, bool want_vectors) {
  CN_CHECK(n >= 0);
  EigResult<T> r;
  r.symmetry_residual = symmetry_residual(A, n);
  r.values.assign(static_cast<size_t>(n), T(0));
  if (n == 0) return r;
  std::vector<T> a(A, A + n * n);
  r.info = syevd(LAPACK_ROW_MAJOR, want_vectors ? 'V' : 'N', 'L', static_cast<lapack_int>(n), a.data(),
                 static_cast<lapack_int>(n), r.values.data());
  if (r.info < 0) throw Error("LAPACKE ?syevd: argument " + std::to_string(-r.info) + " is invalid");
  if (want_vectors) r.vectors = std::move(a);
  return r;
}

template <class T>
int BatchedEigResult<T>::max_info() const {
  int m = 0;
  for (int i : info) m = std::max(m, i);
  return m;
}

template <class T>
BatchedEigResult<T> eigh_batched(const T* A, int64_t n, int64_t count) {
  CN_CHECK(n >= 0 && count >= 0);
  BatchedEigResult<T> r;
  r.count = count;
  r.n = n;
  r.values.assign(static_cast<size_t>(n * count), T(0));
  r.info.assign(static_cast<size_t>(count), 0);
  if (n == 0 || count == 0) return r;
  std::vector<double> res(static_cast<size_t>(count), 0.0);
  bool bad_arg = false;
#pragma omp parallel
  {
    std::vector<T> a(static_cast<size_t>(n * n));
#pragma omp for schedule(dynamic)
    for (int64_t b = 0; b < count; ++b) {
      const T* blk = A + b * n * n;
      res[b] = symmetry_residual(blk, n);
      std::copy(blk, blk + n * n, a.begin());
      // Column-major 'U' on a row-major array = row-major 'L' without LAPACKE's transposition.
      const lapack_int info = syevd(LAPACK_COL_MAJOR, 'N', 'U', static_cast<lapack_int>(n), a.data(),
                                    static_cast<lapack_int>(n), r.values.data() + b * n);
      r.info[b] = static_cast<int>(info);
      if (info < 0) {
#pragma omp atomic write
        bad_arg = true;
      }
    }
  }
  if (bad_arg) throw Error("LAPACKE ?syevd: invalid argument in a batched solve");
  r.max_symmetry_residual = *std::max_element(res.begin(), res.end());
  return r;
}

LanczosResult lanczos(const DeviceOperator& A, int64_t n, const LanczosOptions& opt) {
  CN_CHECK_MSG(n > 0, "Lanczos: dimension must be positive");
  CN_CHECK_MSG(opt.k >= 1, "Lanczos: k must be >= 1");
  int64_t m = opt.steps > 0 ? opt.steps : std::max<int64_t>(2 * opt.k + 10, 40);
  m = std::min(m, n);
  PhiloxDraw d = draw_for(opt.key, kMethodLanczos);
  std::vector<double> q0(n);
  for (auto& x : q0) x = d.normal();
  Tridiag t = lanczos_core(A, n, m, std::move(q0), true, d, opt.converged_tol > 0);
  LanczosResult r;
  r.n = n;
  r.steps = static_cast<int64_t>(t.alpha.size());
  r.restarts = t.restarts;
  std::vector<double> S;
  tridiag_eig(t, r.ritz, S);
  const int64_t mm = r.steps;
  const double bm = t.beta.back();
  r.residuals.resize(mm);
  for (int64_t i = 0; i < mm; ++i) r.residuals[i] = std::fabs(bm * S[i * mm + (mm - 1)]);
  const int64_t k = std::min<int64_t>(opt.k, mm);
  for (int64_t i = 0; i < k; ++i) {
    r.largest.push_back(r.ritz[mm - 1 - i]);
    r.largest_residuals.push_back(r.residuals[mm - 1 - i]);
    r.smallest.push_back(r.ritz[i]);
    r.smallest_residuals.push_back(r.residuals[i]);
  }
  if (opt.converged_tol > 0) keep_converged(t, S, opt.converged_tol, k, n, A.device, r);
  return r;
}

SlqResult slq(const DeviceOperator& A, int64_t n, const SlqOptions& opt) {
  CN_CHECK_MSG(n > 0, "SLQ: dimension must be positive");
  CN_CHECK_MSG(opt.n_probes >= 1, "SLQ: n_probes must be >= 1");
  CN_CHECK_MSG(opt.grid >= 2, "SLQ: the density grid needs at least 2 points");
  SlqResult r;
  r.n = n;
  r.n_probes = opt.n_probes;
  const double P = static_cast<double>(opt.n_probes), dn = static_cast<double>(n);
  // The deflated pairs: exact nodes of weight 1/n; probes run on the complement.
  std::vector<double> defl_values;
  Buffer<double> Y, hbuf;
  int64_t k = 0;
  if (opt.deflate && !opt.deflate->converged_values.empty()) {
    CN_CHECK_MSG(opt.deflate->n == n, "SLQ: the deflation run is for another dimension");
    defl_values = opt.deflate->converged_values;
    k = static_cast<int64_t>(defl_values.size());
    if (k >= n) k = 0, defl_values.clear();  // nothing left to probe: keep plain SLQ
  }
  r.deflated = k;
  Vectors vec(A.device, n);
  if (k > 0) {
    Y = Buffer<double>(k * n, A.device);
    hbuf = Buffer<double>(k, A.device);
    device_copy(A.device, Y.data(), Device::cpu, opt.deflate->converged_vectors.data(),
                static_cast<size_t>(k * n) * sizeof(double));
  }
  // P⊥ A P⊥ (the input is already in the complement; one projection of the output).
  DeviceOperator Ac = A;
  if (k > 0) {
    const double* y = Y.data();
    double* h = hbuf.data();
    Vectors* pv = &vec;
    const DeviceOperator inner = A;
    Ac.apply = [inner, y, h, k, pv](const double* v, double* out) {
      inner.apply(v, out);
      pv->reorthogonalise(y, k, out, h);
    };
  }
  const int64_t m = std::min<int64_t>(std::max<int64_t>(opt.steps, 1), n - k);
  const double w_defl = 1.0 / dn, w_rest = static_cast<double>(n - k) / dn;
  PhiloxDraw d = draw_for(opt.key, kMethodSlq);
  Buffer<double> vd(n, A.device);
  std::vector<double> v(static_cast<size_t>(n));
  std::vector<double> probe_norm2;  // ‖P⊥v‖² per probe (n without deflation)
  for (int p = 0; p < opt.n_probes; ++p) {
    rademacher(d, v.data(), n);
    if (k > 0) {
      vec.upload(vd.data(), v);
      vec.reorthogonalise(Y.data(), k, vd.data(), hbuf.data());
      device_copy(Device::cpu, v.data(), A.device, vd.data(), static_cast<size_t>(n) * sizeof(double));
    }
    probe_norm2.push_back(dot(v.data(), v.data(), n));
    Tridiag t = lanczos_core(Ac, n, m, v, false, d);
    std::vector<double> theta, S;
    tridiag_eig(t, theta, S);
    const int64_t mm = static_cast<int64_t>(theta.size());
    r.steps = std::max(r.steps, mm);
    for (double x : defl_values) {
      r.nodes.push_back(x);
      r.weights.push_back(w_defl / P);
    }
    for (int64_t i = 0; i < mm; ++i) {
      r.nodes.push_back(theta[i]);
      r.weights.push_back(w_rest * S[i * mm] * S[i * mm] / P);  // S[i*mm]: first component of vector i
    }
    r.probe_steps.push_back(k + mm);
  }
  // Tolerance, then the per-probe estimates (weights × n_probes: each probe's rule).
  for (double x : r.nodes) r.max_abs = std::max(r.max_abs, std::fabs(x));
  r.lambda_min = *std::min_element(r.nodes.begin(), r.nodes.end());
  r.lambda_max = *std::max_element(r.nodes.begin(), r.nodes.end());
  r.tau = opt.tau >= 0 ? opt.tau : opt.tau_rel * r.max_abs;
  double deflated_sum = 0;  // exact: the deflated pairs' part of every probe's trace
  for (double x : defl_values) deflated_sum += x;
  std::vector<double> tr, nz, neg, ab, er;
  double s1 = 0, s2 = 0, sabs = 0;
  size_t at = 0;
  for (int p = 0; p < opt.n_probes; ++p) {
    double t1 = 0, tz = 0, tn = 0, ta = 0;
    for (int64_t i = 0; i < r.probe_steps[p]; ++i, ++at) {
      const double w = r.weights[at] * P, x = r.nodes[at];
      t1 += w * x;
      ta += w * std::fabs(x);
      if (std::fabs(x) <= r.tau) tz += w;
      if (x < -r.tau) tn += w;
      s2 += r.weights[at] * x * x;
    }
    s1 += t1 / P;
    sabs += ta / P;
    // The trace unnormalised, vᵀP⊥AP⊥v = ‖P⊥v‖² q₁ᵀAq₁ (unbiased for tr P⊥AP⊥; the
    // normalised rule's (n − k) q₁ᵀAq₁ is not when ‖P⊥v‖ and vᵀP⊥AP⊥v correlate).
    tr.push_back(deflated_sum +
                 (k > 0 ? probe_norm2[p] / (dn - static_cast<double>(k)) : 1.0) * (dn * t1 - deflated_sum));
    nz.push_back(tz);
    neg.push_back(tn);
    ab.push_back(dn * ta);
    er.push_back(r.max_abs > 0 ? dn * ta / r.max_abs : 0.0);
  }
  r.trace = probe_estimate(tr);
  r.near_zero_share = probe_estimate(nz);
  r.negative_share = probe_estimate(neg);
  r.abs_sum = probe_estimate(ab);
  r.effective_rank = probe_estimate(er);
  r.balance = sabs > 0 ? s1 / sabs : 0.0;
  r.mean = s1;
  r.std = std::sqrt(std::max(0.0, s2 - s1 * s1));
  // The atom at zero, then the rest as cell masses of log-normal kernels on their own side.
  r.sigma = opt.sigma > 0 ? opt.sigma : 0.1;
  double lo = 0, hi = 0;
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    const double x = r.nodes[i];
    if (std::fabs(x) <= r.tau) {
      r.zero_mass += r.weights[i];
      continue;
    }
    const double reach = std::exp(4 * r.sigma);  // the kernel's mass beyond 4σ is < 1e-4
    lo = std::min(lo, x < 0 ? x * reach : 0.0);
    hi = std::max(hi, x > 0 ? x * reach : 0.0);
  }
  if (!(hi > lo)) hi = lo + 1.0;  // nothing off zero: an empty density on [0, 1]
  const int64_t G = opt.grid;
  r.grid.resize(G);
  r.density.assign(G, 0.0);
  const double hstep = (hi - lo) / static_cast<double>(G - 1);
  for (int64_t g = 0; g < G; ++g) r.grid[g] = lo + hstep * static_cast<double>(g);
  for (size_t i = 0; i < r.nodes.size(); ++i) {
    const double x = r.nodes[i], w = r.weights[i];
    if (std::fabs(x) <= r.tau) continue;
    const double sgn = x > 0 ? 1.0 : -1.0, c = std::fabs(x);
    for (int64_t g = 0; g < G; ++g) {
      // Cell g spans grid[g] ± hstep/2 (half cells at the ends); its |λ| range on x's side.
      const double a = std::max(lo, r.grid[g] - 0.5 * hstep), b = std::min(hi, r.grid[g] + 0.5 * hstep);
      const double ua = sgn * a, ub = sgn * b;  // |λ| bounds on x's side (may be negative: outside)
      const double mass =
          std::fabs(lognormal_cdf(std::max(ua, ub), c, r.sigma) - lognormal_cdf(std::min(ua, ub), c, r.sigma));
      r.density[g] += w * mass / (b - a);
    }
  }
  return r;
}

HutchinsonResult hutchinson_trace(const DeviceOperator& A, int64_t n, int n_probes, const ProbeKey& key) {
  CN_CHECK_MSG(n > 0, "Hutchinson: dimension must be positive");
  CN_CHECK_MSG(n_probes >= 1, "Hutchinson: n_probes must be >= 1");
  PhiloxDraw d = draw_for(key, kMethodHutchinson);
  Vectors vec(A.device, n);
  std::vector<double> probe(static_cast<size_t>(n));
  Buffer<double> v(n, A.device), w(n, A.device);
  HutchinsonResult r;
  for (int p = 0; p < n_probes; ++p) {
    rademacher(d, probe.data(), n);
    vec.upload(v.data(), probe);
    A.apply(v.data(), w.data());
    r.samples.push_back(vec.dot(v.data(), w.data()));
  }
  const ProbeEstimate e = probe_estimate(r.samples);
  r.trace = e.value;
  r.standard_error = e.standard_error;
  return r;
}

template double symmetry_residual<float>(const float*, int64_t);
template double symmetry_residual<double>(const double*, int64_t);
template EigResult<float> eigh<float>(const float*, int64_t, bool);
template EigResult<double> eigh<double>(const double*, int64_t, bool);
template struct BatchedEigResult<float>;
template struct BatchedEigResult<double>;
template BatchedEigResult<float> eigh_batched<float>(const float*, int64_t, int64_t);
template BatchedEigResult<double> eigh_batched<double>(const double*, int64_t, int64_t);

GpuEigenSolver choose_gpu_eigen_solver(int64_t n, int64_t kernel_max_n, const GpuDenseOptions& opt) {
  return n <= std::min(opt.jacobi_max_n, kernel_max_n) ? GpuEigenSolver::jacobi : GpuEigenSolver::syevd;
}

int64_t hvp_columns_per_product(int64_t p, size_t bytes_per_direction, const GpuDenseOptions& opt) {
  int64_t k = opt.hvp_chunk;
  if (k <= 0) {
    constexpr int64_t kStep = 64, kMax = 1024;
    const size_t per = std::max<size_t>(bytes_per_direction, 1);
    k = static_cast<int64_t>(std::min<size_t>(opt.hvp_memory_bytes / per, kMax)) / kStep * kStep;
    k = std::max(k, kStep);
  }
  return std::max<int64_t>(1, std::min(k, p));
}

std::vector<int> assign_blocks_to_threads(const std::vector<int64_t>& sizes, int threads) {
  CN_CHECK_MSG(threads >= 1, "assign_blocks_to_threads: " << threads << " threads");
  std::vector<double> load(static_cast<size_t>(threads), 0.0);
  std::vector<int> out;
  out.reserve(sizes.size());
  for (int64_t n : sizes) {
    const int t = static_cast<int>(std::min_element(load.begin(), load.end()) - load.begin());
    const double c = static_cast<double>(n);
    load[static_cast<size_t>(t)] += c * c * c;
    out.push_back(t);
  }
  return out;
}

}  // namespace cn
