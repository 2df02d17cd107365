// CPU twins of kernels/rops.h: OpenMP loops over the shared R-operator math.
#include <cstring>

#include "core/error.h"
#include "kernels/rops.h"

namespace cn::cpu {

namespace {
constexpr int64_t kPar = 32768;  // elements below which a loop stays serial
}

template <class T>
void add_row_vector_strided(T* y, const T* b, int64_t b_stride, int64_t K, int64_t N, int64_t O) {
#pragma omp parallel for collapse(2) if (K * N * O > kPar)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      T* row = y + (k * N + n) * O;
      const T* bk = b + k * b_stride;
#pragma omp simd
      for (int64_t o = 0; o < O; ++o) row[o] += bk[o];
    }
}

template <class T>
void column_sum_strided(const T* x, int64_t K, int64_t N, int64_t O, T* s, int64_t s_stride) {
  // Rows in order for every (k, o): the sum does not depend on the thread count.
#pragma omp parallel for if (K * N * O > kPar)
  for (int64_t k = 0; k < K; ++k) {
    T* sk = s + k * s_stride;
    const T* xk = x + k * N * O;
    for (int64_t o = 0; o < O; ++o) sk[o] = T(0);
    for (int64_t n = 0; n < N; ++n) {
      const T* row = xk + n * O;
#pragma omp simd
      for (int64_t o = 0; o < O; ++o) sk[o] += row[o];
    }
  }
}

template <class T>
void pack_strided(const T* src, int64_t src_stride, int64_t len, T* dst, int64_t K) {
#pragma omp parallel for if (K * len > kPar)
  for (int64_t k = 0; k < K; ++k)
    std::memcpy(dst + k * len, src + k * src_stride, static_cast<size_t>(len) * sizeof(T));
}

template <class T>
void linear_r_unstack(const T* S, const T* Vb, int64_t v_stride, T* Ry, int64_t K, int64_t N, int64_t O,
                      bool accumulate) {
#pragma omp parallel for collapse(2) if (K * N * O > kPar)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t n = 0; n < N; ++n) {
      const T* src = S + n * K * O + k * O;
      T* dst = Ry + (k * N + n) * O;
      const T* vb = Vb ? Vb + k * v_stride : nullptr;
      for (int64_t o = 0; o < O; ++o) {
        T v = src[o] + (vb ? vb[o] : T(0));
        dst[o] = accumulate ? dst[o] + v : v;
      }
    }
}

template <class T>
void act_rforward(const ActParams& a, const T* x, const T* y, const T* Rx, T* Ry, int64_t n, int64_t K) {
  if (!Rx) {
    std::memset(Ry, 0, static_cast<size_t>(n * K) * sizeof(T));
    return;
  }
#pragma omp parallel for if (n * K > kPar)
  for (int64_t i = 0; i < n; ++i) {
    const T d1 = act_d1(a, x[i], y[i]);
    for (int64_t k = 0; k < K; ++k) Ry[k * n + i] = act_r_forward(d1, Rx[k * n + i]);
  }
}

template <class T>
void act_rbackward(const ActParams& a, const T* x, const T* y, const T* dy, const T* Rx, const T* Rdy, T* Rdx,
                   int64_t n, int64_t K) {
  const bool second = Rx && dy && !act_is_piecewise_linear(a.kind);
#pragma omp parallel for if (n * K > kPar)
  for (int64_t i = 0; i < n; ++i) {
    const T d1 = act_d1(a, x[i], y[i]);
    if (second) {
      const T d2_dy = act_d2_dy(a, x[i], y[i], dy[i]);
      for (int64_t k = 0; k < K; ++k) Rdx[k * n + i] = act_r_backward(d1, d2_dy, Rdy[k * n + i], Rx[k * n + i]);
    } else {
      for (int64_t k = 0; k < K; ++k) Rdx[k * n + i] = act_r_forward(d1, Rdy[k * n + i]);
    }
  }
}

template <class T>
void multiply_k(const T* X, const T* m, T* Y, int64_t n, int64_t K) {
  if (!X) {
    std::memset(Y, 0, static_cast<size_t>(n * K) * sizeof(T));
    return;
  }
#pragma omp parallel for collapse(2) if (n * K > kPar)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < n; ++i) Y[k * n + i] = X[k * n + i] * m[i];
}

template <class T>
void bn_rforward(bool training, const T* xhat, const T* inv_std, const T* gamma, const T* Rx, const T* Vg, const T* Vb,
                 int64_t v_stride, int64_t N, int64_t O, int64_t K, T* Rxhat, T* Rstat, T* Ry) {
  const T inv_n = T(1) / T(N);
#pragma omp parallel for collapse(2) if (K * N * O > kPar)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < O; ++o) {
      const T s = inv_std[o], g = gamma[o];
      const T vg = Vg ? Vg[k * v_stride + o] : T(0), vb = Vb ? Vb[k * v_stride + o] : T(0);
      const T* rx = Rx ? Rx + k * N * O : nullptr;
      T* rxh = Rxhat + k * N * O;
      T* ry = Ry + k * N * O;
      T m1 = T(0), m2 = T(0);
      if (rx && training) {
        for (int64_t n = 0; n < N; ++n) {
          m1 += rx[n * O + o];
          m2 += xhat[n * O + o] * rx[n * O + o];
        }
        m1 *= inv_n;
        m2 *= inv_n;
      }
      if (training && Rstat) Rstat[k * O + o] = m2;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t j = n * O + o;
        const T r = rx ? bn_r_xhat(training, s, rx[j], m1, xhat[j], m2) : T(0);
        rxh[j] = r;
        ry[j] = bn_r_y(g, r, vg, xhat[j], vb);
      }
    }
}

template <class T>
void bn_rbackward(bool training, const T* dy, const T* xhat, const T* inv_std, const T* gamma, const T* Rxhat,
                  const T* Rstat, const T* Vg, int64_t v_stride, const T* Rdy, int64_t N, int64_t O, int64_t K, T* Rdx,
                  T* HV, int64_t hv_stride) {
  const T inv_n = T(1) / T(N);
#pragma omp parallel for collapse(2) if (K * N * O > kPar)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t o = 0; o < O; ++o) {
      const T s = inv_std[o], g = gamma[o];
      const T vg = Vg ? Vg[k * v_stride + o] : T(0);
      const T* rdy = Rdy + k * N * O;
      const T* rxh = Rxhat + k * N * O;
      T A = T(0), B = T(0), RA = T(0), RB = T(0);
      for (int64_t n = 0; n < N; ++n) {
        const int64_t j = n * O + o;
        const T gy = dy ? dy[j] : T(0);
        A += gy;
        B += gy * xhat[j];
        RA += rdy[j];
        RB += bn_rb_term(rdy[j], xhat[j], gy, rxh[j]);
      }
      if (HV) {
        HV[k * hv_stride + o] = RB;
        HV[k * hv_stride + O + o] = RA;
      }
      if (!Rdx) continue;
      T* rdx = Rdx + k * N * O;
      if (training) {
        const T m2 = Rstat ? Rstat[k * O + o] : T(0);
        for (int64_t n = 0; n < N; ++n) {
          const int64_t j = n * O + o;
          rdx[j] = bn_r_dx_train(g, s, vg, m2, dy ? dy[j] : T(0), xhat[j], rdy[j], rxh[j], A, B, RA, RB, inv_n);
        }
      } else {
        for (int64_t n = 0; n < N; ++n) {
          const int64_t j = n * O + o;
          rdx[j] = bn_r_dx_eval(g, s, vg, dy ? dy[j] : T(0), rdy[j]);
        }
      }
    }
}

template <class T>
void loss_rbackward(LossKind kind, const T* p, const T* Rz, T* Rdz, int64_t N, int64_t C, int64_t K) {
  if (kind == LossKind::cross_entropy) {
    const T scale = T(1) / T(N);
#pragma omp parallel for if (K * N * C > kPar)
    for (int64_t r = 0; r < K * N; ++r) ce_r_row(p + (r % N) * C, Rz + r * C, Rdz + r * C, C, scale);
    return;
  }
  const int64_t m = N * C;
  const T scale = T(1) / T(m);
#pragma omp parallel for if (K * m > kPar)
  for (int64_t i = 0; i < m; ++i) {
    const T h = elementwise_loss_curvature_at(kind, p, i, scale);
    for (int64_t k = 0; k < K; ++k) Rdz[k * m + i] = h * Rz[k * m + i];
  }
}

template <class T>
void loss_output_hessian(LossKind kind, const T* p, int64_t N, int64_t C, T* M) {
  const T inv_n = T(1) / T(N), inv_nc = T(1) / T(N * C);
#pragma omp parallel for if (N * C * C > kPar)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t i = 0; i < C; ++i)
      for (int64_t j = 0; j < C; ++j) M[(n * C + i) * C + j] = loss_hessian_entry(kind, p + n * C, i, j, inv_n, inv_nc);
}

template <class T>
void hess_diag_sandwich(const T* d, int64_t d_rowstride, T* M, int64_t N, int64_t F) {
#pragma omp parallel for if (N * F * F > kPar)
  for (int64_t n = 0; n < N; ++n) {
    const T* dn = d + n * d_rowstride;
    T* Mn = M + n * F * F;
    for (int64_t i = 0; i < F; ++i)
      for (int64_t j = 0; j < F; ++j) Mn[i * F + j] = kron_sandwich(Mn[i * F + j], dn[i], dn[j]);
  }
}

template <class T>
void act_hess_backward(const ActParams& a, const T* x, const T* y, const T* dy, T* M, int64_t N, int64_t F) {
#pragma omp parallel for if (N * F * F > kPar)
  for (int64_t n = 0; n < N; ++n) {
    T* Mn = M + n * F * F;
    const T* xn = x + n * F;
    const T* yn = y + n * F;
    for (int64_t i = 0; i < F; ++i) {
      const T di = act_d1(a, xn[i], yn[i]);
      for (int64_t j = 0; j < F; ++j) Mn[i * F + j] = kron_sandwich(Mn[i * F + j], di, act_d1(a, xn[j], yn[j]));
      if (dy) Mn[i * F + i] += act_d2_dy(a, xn[i], yn[i], dy[n * F + i]);
    }
  }
}

template <class T>
void scaled_square(const T* x, T* y, int64_t n, T scale) {
#pragma omp parallel for simd if (n > kPar)
  for (int64_t i = 0; i < n; ++i) y[i] = scale * x[i] * x[i];
}

template <class T>
void scale_rows_by(const T* x, const T* d, T* y, int64_t len, int64_t K) {
#pragma omp parallel for collapse(2) if (K * len > kPar)
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < len; ++i) y[k * len + i] = x[k * len + i] * d[i];
}

CN_ROPS_INSTANTIATE(float)
CN_ROPS_INSTANTIATE(double)

}  // namespace cn::cpu
