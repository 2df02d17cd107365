// The elementwise and reduction ops of the R-operator passes and the curvature blocks
// (docs/design.md §3, §4). Same pattern as kernels/ops.h: one declaration per op in namespaces
// cpu (kernels/cpu/rops.cpp) and cuda (kernels/cuda/), picked by CN_DISPATCH; the math
// lives in kernels/activation_r.h, batchnorm_r.h, loss_r.h and kronecker.h. Tangent tensors carry a
// leading K axis (K×N×F); parameter directions and results are K blocks `stride` apart.
#pragma once
#include <cstdint>

#include "kernels/activation_r.h"
#include "kernels/batchnorm_r.h"
#include "kernels/kronecker.h"
#include "kernels/loss_r.h"
#include "kernels/ops.h"

namespace cn {

#define CN_ROPS_DECLARE(ns)                                                                                       \
  namespace ns {                                                                                                  \
  /* y[k, n, o] += b[k*b_stride + o] (K x N x O). */                                                              \
  template <class T>                                                                                              \
  void add_row_vector_strided(T* y, const T* b, int64_t b_stride, int64_t K, int64_t N, int64_t O);               \
  /* s[k*s_stride + o] = sum_n x[k, n, o]. */                                                                     \
  template <class T>                                                                                              \
  void column_sum_strided(const T* x, int64_t K, int64_t N, int64_t O, T* s, int64_t s_stride);                   \
  /* dst[k*len + j] = src[k*src_stride + j] (packs K strided blocks). */                                          \
  template <class T>                                                                                              \
  void pack_strided(const T* src, int64_t src_stride, int64_t len, T* dst, int64_t K);                            \
  /* Ry[k, n, o] = (accumulate ? Ry[k, n, o] : 0) + S[n, k*O + o] + (Vb ? Vb[k*v_stride + o] : 0): */             \
  /* unstacks the one GEMM x [VW_0; ...; VW_K-1]^T (N x K*O) into K x N x O. */                                   \
  template <class T>                                                                                              \
  void linear_r_unstack(const T* S, const T* Vb, int64_t v_stride, T* Ry, int64_t K, int64_t N, int64_t O,        \
                        bool accumulate);                                                                         \
  /* Ry[k, i] = f'(x[i]) Rx[k, i] over n = N*F elements per direction. */                                         \
  template <class T>                                                                                              \
  void act_rforward(const ActParams& a, const T* x, const T* y, const T* Rx, T* Ry, int64_t n, int64_t K);        \
  /* Rdx[k, i] = f'(x) Rdy[k, i] + f''(x) Rx[k, i] dy[i]; Rx or dy null = zero. */                                \
  template <class T>                                                                                              \
  void act_rbackward(const ActParams& a, const T* x, const T* y, const T* dy, const T* Rx, const T* Rdy, T* Rdx,  \
                     int64_t n, int64_t K);                                                                       \
  /* Y[k, i] = X[k, i] * m[i] (Dropout's tangents; X null = zero). */                                             \
  template <class T>                                                                                              \
  void multiply_k(const T* X, const T* m, T* Y, int64_t n, int64_t K);                                            \
  /* BatchNorm R-forward (kernels/batchnorm_r.h); Rx null = zero; Vg/Vb (directions of gamma, beta, */            \
  /* v_stride apart) null = zero. Writes Rxhat (K x N x O), Rstat = m2 (K x O, training only), Ry. */             \
  template <class T>                                                                                              \
  void bn_rforward(bool training, const T* xhat, const T* inv_std, const T* gamma, const T* Rx, const T* Vg,      \
                   const T* Vb, int64_t v_stride, int64_t N, int64_t O, int64_t K, T* Rxhat, T* Rstat, T* Ry);    \
  /* BatchNorm R-backward; dy null = zero (Gauss-Newton); Rdx null = not needed; HV: (Hv)gamma at */              \
  /* HV + k*hv_stride, (Hv)beta O further (null = not needed). */                                                 \
  template <class T>                                                                                              \
  void bn_rbackward(bool training, const T* dy, const T* xhat, const T* inv_std, const T* gamma, const T* Rxhat,  \
                    const T* Rstat, const T* Vg, int64_t v_stride, const T* Rdy, int64_t N, int64_t O, int64_t K, \
                    T* Rdx, T* HV, int64_t hv_stride);                                                            \
  /* Rdz = Hessian of the mean loss in z times Rz (K x N x C); p: softmax / sigmoid from the forward. */          \
  template <class T>                                                                                              \
  void loss_rbackward(LossKind kind, const T* p, const T* Rz, T* Rdz, int64_t N, int64_t C, int64_t K);           \
  /* M[n] (C x C, N of them) = the Hessian of the mean loss in row n's logits. */                                 \
  template <class T>                                                                                              \
  void loss_output_hessian(LossKind kind, const T* p, int64_t N, int64_t C, T* M);                                \
  /* M[n][i][j] *= d[n*d_rowstride + i] d[n*d_rowstride + j] (d_rowstride 0: one d for every n). */               \
  template <class T>                                                                                              \
  void hess_diag_sandwich(const T* d, int64_t d_rowstride, T* M, int64_t N, int64_t F);                           \
  /* Through an activation: M[n] = diag(f') M[n] diag(f') + diag(dy f''). */                                      \
  template <class T>                                                                                              \
  void act_hess_backward(const ActParams& a, const T* x, const T* y, const T* dy, T* M, int64_t N, int64_t F);    \
  /* y[i] = scale * x[i]^2 */                                                                                     \
  template <class T>                                                                                              \
  void scaled_square(const T* x, T* y, int64_t n, T scale);                                                       \
  /* y[i] = x[i] * d[i mod len] for K*len elements (a diagonal scaling of K stacked vectors). */                  \
  template <class T>                                                                                              \
  void scale_rows_by(const T* x, const T* d, T* y, int64_t len, int64_t K);                                       \
  }

CN_ROPS_DECLARE(cpu)
#ifdef CURVNET_HAVE_CUDA
CN_ROPS_DECLARE(cuda)
#endif

// Explicit instantiations of every op above, for the twin files (cpu and cuda) to expand
// inside their own namespace.
#define CN_ROPS_INSTANTIATE(T)                                                                                       \
  template void add_row_vector_strided<T>(T*, const T*, int64_t, int64_t, int64_t, int64_t);                         \
  template void column_sum_strided<T>(const T*, int64_t, int64_t, int64_t, T*, int64_t);                             \
  template void pack_strided<T>(const T*, int64_t, int64_t, T*, int64_t);                                            \
  template void linear_r_unstack<T>(const T*, const T*, int64_t, T*, int64_t, int64_t, int64_t, bool);               \
  template void act_rforward<T>(const ActParams&, const T*, const T*, const T*, T*, int64_t, int64_t);               \
  template void act_rbackward<T>(const ActParams&, const T*, const T*, const T*, const T*, const T*, T*, int64_t,    \
                                 int64_t);                                                                           \
  template void multiply_k<T>(const T*, const T*, T*, int64_t, int64_t);                                             \
  template void bn_rforward<T>(bool, const T*, const T*, const T*, const T*, const T*, const T*, int64_t, int64_t,   \
                               int64_t, int64_t, T*, T*, T*);                                                        \
  template void bn_rbackward<T>(bool, const T*, const T*, const T*, const T*, const T*, const T*, const T*, int64_t, \
                                const T*, int64_t, int64_t, int64_t, T*, T*, int64_t);                               \
  template void loss_rbackward<T>(LossKind, const T*, const T*, T*, int64_t, int64_t, int64_t);                      \
  template void loss_output_hessian<T>(LossKind, const T*, int64_t, int64_t, T*);                                    \
  template void hess_diag_sandwich<T>(const T*, int64_t, T*, int64_t, int64_t);                                      \
  template void act_hess_backward<T>(const ActParams&, const T*, const T*, const T*, T*, int64_t, int64_t);          \
  template void scaled_square<T>(const T*, T*, int64_t, T);                                                          \
  template void scale_rows_by<T>(const T*, const T*, T*, int64_t, int64_t);

}  // namespace cn
