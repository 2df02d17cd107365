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
};

Tridiag lanczos_core(const DeviceOperator& A, int64_t n, int64_t m, std::vector<double> q0, bool restart,
                     PhiloxDraw& d) {
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
  Tridiag t = lanczos_core(A, n, m, std::move(q0), true, d);
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
  return r;
}

SlqResult slq(const DeviceOperator& A, int64_t n, const SlqOptions& opt) {
  CN_CHECK_MSG(n > 0, "SLQ: dimension must be positive");
  CN_CHECK_MSG(opt.n_probes >= 1, "SLQ: n_probes must be >= 1");
  CN_CHECK_MSG(opt.grid >= 2, "SLQ: the density grid needs at least 2 points");
  SlqResult r;
  r.n = n;
  r.n_probes = opt.n_probes;
  const int64_t m = std::min<int64_t>(std::max<int64_t>(opt.steps, 1), n);
  PhiloxDraw d = draw_for(opt.key, kMethodSlq);
  std::vector<double> per_probe;
  for (int p = 0; p < opt.n_probes; ++p) {
    std::vector<double> v(n);
    rademacher(d, v.data(), n);
    Tridiag t = lanczos_core(A, n, m, std::move(v), false, d);
    std::vector<double> theta, S;
    tridiag_eig(t, theta, S);
    const int64_t mm = static_cast<int64_t>(theta.size());
    r.steps = std::max(r.steps, mm);
    double est = 0;
    for (int64_t i = 0; i < mm; ++i) {
      const double tau2 = S[i * mm] * S[i * mm];  // first component of eigenvector i
      r.nodes.push_back(theta[i]);
      r.weights.push_back(tau2 / opt.n_probes);
      est += tau2 * theta[i];
    }
    per_probe.push_back(static_cast<double>(n) * est);
  }
  // Estimates.
  double max_abs = 0;
  r.lambda_min = *std::min_element(r.nodes.begin(), r.nodes.end());
  r.lambda_max = *std::max_element(r.nodes.begin(), r.nodes.end());
  for (double x : r.nodes) max_abs = std::max(max_abs, std::fabs(x));
  r.tau = opt.tau >= 0 ? opt.tau : max_abs * static_cast<double>(n) * std::numeric_limits<double>::epsilon();
  double s1 = 0, s2 = 0, sabs = 0;
  for (size_t k = 0; k < r.nodes.size(); ++k) {
    const double w = r.weights[k], x = r.nodes[k];
    s1 += w * x;
    s2 += w * x * x;
    sabs += w * std::fabs(x);
    if (std::fabs(x) <= r.tau) r.near_zero_share += w;
    if (x < -r.tau) r.negative_share += w;
  }
  r.trace = static_cast<double>(n) * s1;
  if (opt.n_probes > 1) {
    const double mean = std::accumulate(per_probe.begin(), per_probe.end(), 0.0) / opt.n_probes;
    double var = 0;
    for (double x : per_probe) var += (x - mean) * (x - mean);
    var /= (opt.n_probes - 1);
    r.trace_stderr = std::sqrt(var / opt.n_probes);
  }
  r.balance = sabs > 0 ? s1 / sabs : 0.0;
  r.effective_rank = max_abs > 0 ? static_cast<double>(n) * sabs / max_abs : 0.0;
  r.mean = s1;
  r.std = std::sqrt(std::max(0.0, s2 - s1 * s1));
  // Density.
  const double span = r.lambda_max - r.lambda_min;
  double scale = std::max(span, max_abs);
  if (!(scale > 0)) scale = 100.0;  // all nodes 0: σ = 1
  r.sigma = opt.sigma > 0 ? opt.sigma : 0.01 * scale;
  const double margin = opt.margin > 0 ? opt.margin : 5.0 * r.sigma;
  const double lo = r.lambda_min - margin, hi = r.lambda_max + margin;
  const int64_t G = opt.grid;
  r.grid.resize(G);
  r.density.assign(G, 0.0);
  const double hstep = (hi - lo) / static_cast<double>(G - 1);
  const double c = 1.0 / (std::sqrt(2.0 * M_PI) * r.sigma);
  for (int64_t g = 0; g < G; ++g) {
    const double t = lo + hstep * static_cast<double>(g);
    r.grid[g] = t;
    double s = 0;
    for (size_t k = 0; k < r.nodes.size(); ++k) {
      const double z = (t - r.nodes[k]) / r.sigma;
      s += r.weights[k] * std::exp(-0.5 * z * z);
    }
    r.density[g] = c * s;
  }
  double integral = 0;
  for (int64_t g = 0; g + 1 < G; ++g) integral += 0.5 * hstep * (r.density[g] + r.density[g + 1]);
  if (integral > 0)
    for (auto& x : r.density) x /= integral;
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
  r.trace = std::accumulate(r.samples.begin(), r.samples.end(), 0.0) / n_probes;
  if (n_probes > 1) {
    double var = 0;
    for (double x : r.samples) var += (x - r.trace) * (x - r.trace);
    var /= (n_probes - 1);
    r.standard_error = std::sqrt(var / n_probes);
  }
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

}  // namespace cn
