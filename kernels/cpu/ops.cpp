// CPU twins of kernels/ops.h: OpenBLAS for GEMMs, OpenMP loops over the shared math.
#include <cblas.h>

#include <algorithm>

#include <cmath>
#include <iterator>
#include <type_traits>
#include <utility>
#include <vector>

#include "core/error.h"
#include "kernels/batchnorm.h"
#include "kernels/dropout.h"
#include "kernels/ops.h"

namespace cn::cpu {

namespace {
inline CBLAS_TRANSPOSE tr(bool t) { return t ? CblasTrans : CblasNoTrans; }
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, int64_t lda,
               const float* B, int64_t ldb, float beta, float* C, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
void blas_gemm(bool ta, bool tb, int64_t M, int64_t N, int64_t K, double alpha, const double* A, int64_t lda,
               const double* B, int64_t ldb, double beta, double* C, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, tr(ta), tr(tb), M, N, K, alpha, A, lda, B, ldb, beta, C, ldc);
}
}  // namespace

// One stream of program order: nothing to switch.
void lane(Lane) {}

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || Nc == 0) return;
  if (Kd == 0) {  // BLAS leaves C untouched for K = 0 only when beta = 1
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < Nc; ++j) C[i * ldc + j] = beta == T(0) ? T(0) : beta * C[i * ldc + j];
    return;
  }
  blas_gemm(ta, tb, M, Nc, Kd, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_batched(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda,
                  int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc, int64_t strideC,
                  int64_t count) {
  for (int64_t k = 0; k < count; ++k)
    gemm(ta, tb, M, Nc, Kd, alpha, A + k * strideA, lda, B + k * strideB, ldb, beta, C + k * strideC, ldc);
}

namespace {
// Rows `ld` apart: add_row_vector and column_sum on a block of a wider matrix.
template <class T>
void add_row_vector_ld(T* y, const T* b, int64_t N, int64_t O, int64_t ld) {
#pragma omp parallel for if (N * O > 32768)
  for (int64_t n = 0; n < N; ++n) {
    T* row = y + n * ld;
#pragma omp simd
    for (int64_t o = 0; o < O; ++o) row[o] += b[o];
  }
}

template <class T>
void column_sum_ld(const T* x, int64_t N, int64_t O, int64_t ld, T* s, bool accumulate) {
  // Features in parallel, rows in order: the sum is the same whatever the thread count.
#pragma omp parallel for if (N * O > 32768)
  for (int64_t o = 0; o < O; ++o) {
    T acc = T(0);
    for (int64_t n = 0; n < N; ++n) acc += x[n * ld + o];
    s[o] = accumulate ? s[o] + acc : acc;
  }
}
}  // namespace

template <class T>
void add_row_vector(T* y, const T* b, int64_t N, int64_t O) {
  add_row_vector_ld(y, b, N, O, O);
}

template <class T>
void column_sum(const T* x, int64_t N, int64_t O, T* s, bool accumulate) {
  column_sum_ld(x, N, O, O, s, accumulate);
}

// The fused ops of the CUDA backend, here as the two steps they replace.
template <class T>
void gemm_bias(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, const T* A, int64_t lda, const T* B, int64_t ldb,
               const T* bias, T* C, int64_t ldc) {
  gemm(ta, tb, M, Nc, Kd, T(1), A, lda, B, ldb, T(0), C, ldc);
  add_row_vector_ld(C, bias, M, Nc, ldc);
}

template <class T>
void gemm_bias_grad(int64_t M, int64_t Nc, int64_t Kd, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                    int64_t ldc, T* bias_grad) {
  gemm(true, false, M, Nc, Kd, T(1), A, lda, B, ldb, T(0), C, ldc);
  column_sum_ld(A, Kd, M, lda, bias_grad, false);
}

// Calls body(kind) with the activation kind as a std::integral_constant, so every
// instantiation of the elementwise loop has a constant kind: the switch inside
// act_f/act_d1 folds away and the loop vectorises.
template <size_t K = 0, class Body>
void with_constant_act(Act kind, Body&& body) {
  if constexpr (K < std::size(kActNames)) {
    constexpr Act a = kActNames[K].value;
    if (kind == a) return body(std::integral_constant<Act, a>{});
    return with_constant_act<K + 1>(kind, std::forward<Body>(body));
  }
}

template <class T>
void act_forward(const ActParams& a, const T* x, T* y, int64_t n) {
  with_constant_act(a.kind, [&](auto kind) {
    const ActParams p{decltype(kind)::value, a.slope, a.alpha};
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; ++i) y[i] = act_f(p, x[i]);
  });
}

template <class T>
void act_backward(const ActParams& a, const T* x, const T* y, const T* dy, T* dx, int64_t n) {
  with_constant_act(a.kind, [&](auto kind) {
    const ActParams p{decltype(kind)::value, a.slope, a.alpha};
#pragma omp parallel for simd if (n > 32768)
    for (int64_t i = 0; i < n; ++i) dx[i] = dy[i] * act_d1(p, x[i], y[i]);
  });
}

template <class T>
void bn_forward_train(const T* x, const T* gamma, const T* beta, int64_t N, int64_t O, double eps, T* y, T* xhat,
                      T* mean, T* inv_std) {
#pragma omp parallel for if (N * O > 32768)
  for (int64_t o = 0; o < O; ++o) {
    T mu = T(0);
    for (int64_t n = 0; n < N; ++n) mu += x[n * O + o];
    mu /= T(N);
    T var = T(0);
    for (int64_t n = 0; n < N; ++n) var += bn_sq_dev(x[n * O + o], mu);
    var /= T(N);
    const T is = bn_inv_std(var, eps);
    mean[o] = mu;
    inv_std[o] = is;
    for (int64_t n = 0; n < N; ++n) {
      const T h = bn_xhat(x[n * O + o], mu, is);
      xhat[n * O + o] = h;
      y[n * O + o] = bn_affine(gamma[o], h, beta[o]);
    }
  }
}

template <class T>
void bn_backward_train(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,
                       T* dgamma, T* dbeta) {
#pragma omp parallel for if (N * O > 32768)
  for (int64_t o = 0; o < O; ++o) {
    T sum_dy = T(0), sum_dy_xhat = T(0);
    for (int64_t n = 0; n < N; ++n) {
      sum_dy += dy[n * O + o];
      sum_dy_xhat += dy[n * O + o] * xhat[n * O + o];
    }
    dgamma[o] = sum_dy_xhat;
    dbeta[o] = sum_dy;
    if (dx) {
      const T scale = bn_train_dx_scale(gamma[o], inv_std[o], N);
      for (int64_t n = 0; n < N; ++n)
        dx[n * O + o] = bn_train_dx(scale, dy[n * O + o], xhat[n * O + o], sum_dy, sum_dy_xhat, N);
    }
  }
}

template <class T>
void bn_backward_eval(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,
                      T* dgamma, T* dbeta) {
  bn_backward_train<T>(dy, xhat, gamma, inv_std, N, O, nullptr, dgamma, dbeta);
  if (!dx) return;
#pragma omp parallel for if (N * O > 32768)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) dx[n * O + o] = bn_eval_dx(dy[n * O + o], gamma[o], inv_std[o]);
}

template <class T>
void bn_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var, int64_t N,
                     int64_t O, double eps, T* y, T* xhat, T* inv_std) {
  for (int64_t o = 0; o < O; ++o) inv_std[o] = bn_inv_std(running_var[o], eps);
#pragma omp parallel for if (N * O > 32768)
  for (int64_t n = 0; n < N; ++n)
    for (int64_t o = 0; o < O; ++o) {
      const T h = bn_xhat(x[n * O + o], running_mean[o], inv_std[o]);
      xhat[n * O + o] = h;
      y[n * O + o] = bn_affine(gamma[o], h, beta[o]);
    }
}

template <class T>
void bn_update_running(const T* mean, const T* inv_std, int64_t N, int64_t O, double eps, double momentum,
                       T* running_mean, T* running_var) {
  for (int64_t o = 0; o < O; ++o)
    bn_running_update(mean[o], inv_std[o], N, eps, momentum, &running_mean[o], &running_var[o]);
}

template <class T>
void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, PhiloxKey key, uint32_t layer, uint64_t step) {
#pragma omp parallel for if (n > 32768)
  for (int64_t i = 0; i < n; ++i) {
    mask[i] = dropout_mask_value<T>(key, static_cast<uint64_t>(i), layer, step, p);
    y[i] = x[i] * mask[i];
  }
}

template <class T>
void gather_rows(const T* src, int64_t width, const int64_t* rows, int64_t n, T* dst) {
  for (int64_t r = 0; r < n; ++r) std::copy_n(src + rows[r] * width, width, dst + r * width);
}

template <class T>
void multiply(const T* x, const T* mask, T* y, int64_t n) {
#pragma omp parallel for simd if (n > 32768)
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * mask[i];
}

namespace {
template <class T>
double loss_mean(LossKind kind, const T* z, const T* target, int64_t N, int64_t C, T* dz, T* p) {
  double total = 0;
  switch (kind) {
    case LossKind::cross_entropy: {
      const T inv_n = T(1) / T(N);
#pragma omp parallel for reduction(+ : total) if (N * C > 32768)
      for (int64_t n = 0; n < N; ++n) {
        const int label = static_cast<int>(target[n]);
        total += static_cast<double>(ce_row(z + n * C, static_cast<int>(C), label, p + n * C));
        ce_row_grad(p + n * C, C, label, inv_n, dz + n * C);
      }
      return total / static_cast<double>(N);
    }
    case LossKind::mse: {
      const int64_t m = N * C;
      const T scale = T(2) / T(m);
#pragma omp parallel for reduction(+ : total) if (m > 32768)
      for (int64_t i = 0; i < m; ++i) total += static_cast<double>(mse_elem(z[i], target[i], scale, dz[i]));
      return total / static_cast<double>(m);
    }
    case LossKind::bce_logits: {
      const int64_t m = N * C;
      const T inv_m = T(1) / T(m);
#pragma omp parallel for reduction(+ : total) if (m > 32768)
      for (int64_t i = 0; i < m; ++i) {
        total += static_cast<double>(bce_logits_elem(z[i], target[i]));
        const T s = sigmoid_of(z[i]);
        if (p) p[i] = s;
        dz[i] = bce_logits_grad(s, target[i], inv_m);
      }
      return total / static_cast<double>(m);
    }
  }
  throw Error("unknown loss kind");
}
}  // namespace

template <class T>
void loss_forward_backward(LossKind kind, const T* z, const T* target, int64_t N, int64_t C, T* dz, T* p,
                           double* mean) {
  *mean = loss_mean(kind, z, target, N, C, dz, p);
}

#define CN_INSTANTIATE(T)                                                                                              \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,         \
                        int64_t);                                                                                      \
  template void gemm_batched<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*,        \
                                int64_t, int64_t, T, T*, int64_t, int64_t, int64_t);                                   \
  template void gemm_bias<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, const T*,    \
                             T*, int64_t);                                                                             \
  template void gemm_bias_grad<T>(int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t, T*);   \
  template void add_row_vector<T>(T*, const T*, int64_t, int64_t);                                                     \
  template void column_sum<T>(const T*, int64_t, int64_t, T*, bool);                                                   \
  template void act_forward<T>(const ActParams&, const T*, T*, int64_t);                                               \
  template void act_backward<T>(const ActParams&, const T*, const T*, const T*, T*, int64_t);                          \
  template void bn_forward_train<T>(const T*, const T*, const T*, int64_t, int64_t, double, T*, T*, T*, T*);           \
  template void bn_backward_train<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*);            \
  template void bn_backward_eval<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*);             \
  template void bn_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, double, T*, T*, \
                                   T*);                                                                                \
  template void bn_update_running<T>(const T*, const T*, int64_t, int64_t, double, double, T*, T*);                    \
  template void dropout_forward<T>(const T*, T*, T*, int64_t, double, PhiloxKey, uint32_t, uint64_t);                  \
  template void multiply<T>(const T*, const T*, T*, int64_t);                                                          \
  template void gather_rows<T>(const T*, int64_t, const int64_t*, int64_t, T*);                                        \
  template void loss_forward_backward<T>(LossKind, const T*, const T*, int64_t, int64_t, T*, T*, double*);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)

}  // namespace cn::cpu
