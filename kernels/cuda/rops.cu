// CUDA twins of the R-operator and curvature-block ops of kernels/rops.h; the math is
// kernels/activation_r.h, batchnorm_r.h, loss_r.h and kronecker.h (and activation.h's f', f'').
// Tangents are K x N x F row-major blocks; per-direction column sums use column tiles
// (common.cuh) with blockIdx.y = direction k, so every sum has a fixed order.
//   add_row_vector_strided  y[k,n,o] += b[k*b_stride + o]
//   column_sum_strided      s[k*s_stride + o] = sum_n x[k,n,o]
//   pack_strided            dst[k*len + j] = src[k*src_stride + j]
//   linear_r_unstack        Ry[k,n,o] (= or +=) S[n, k*O + o] + Vb[k*v_stride + o]
//   act_rforward            Ry = f'(x) Rx                       (Rx null: Ry = 0)
//   act_rbackward           Rdx = f'(x) Rdy + f''(x) dy Rx      (Rx or dy null: first term)
//   multiply_k              Y[k,i] = X[k,i] m[i]                (X null: Y = 0)
//   bn_rforward / bn_rbackward   BatchNorm tangents, per (k, feature) tile reductions
//   loss_rbackward          Rdz = Hessian of the mean loss in z times Rz
//   loss_output_hessian     M[n] = that Hessian, C x C per row
//   hess_diag_sandwich      M[n][i][j] *= d_i d_j
//   act_hess_backward       M[n] = diag(f') M[n] diag(f') + diag(dy f'')
//   scaled_square           y = scale x^2
//   scale_rows_by           y[k,i] = x[k,i] d[i]
#include "kernels/cuda/common.cuh"
#include "kernels/rops.h"

namespace cn::cuda {

// --- kernels

template <class T>
__global__ void add_row_vector_strided_kernel(T* y, const T* b, int64_t b_stride, int64_t N, int64_t O, int64_t n) {
  CN_GRID_STRIDE(i, n) y[i] += b[(i / (N * O)) * b_stride + i % O];
}

template <class T>
__global__ void column_sum_strided_kernel(const T* x, int64_t N, int64_t O, T* s, int64_t s_stride) {
  const int64_t k = blockIdx.y;
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const T* xk = x + k * N * O;
  const T sum = column_tile_sum<T>(N, [&](int64_t n) { return inside ? xk[n * O + o] : T(0); });
  if (inside && threadIdx.y == 0) s[k * s_stride + o] = sum;
}

template <class T>
__global__ void linear_r_unstack_kernel(const T* S, const T* Vb, int64_t v_stride, T* Ry, int64_t K, int64_t N,
                                        int64_t O, bool accumulate) {
  CN_GRID_STRIDE(i, K * N * O) {
    const int64_t k = i / (N * O), n = (i / O) % N, o = i % O;
    const T v = S[n * K * O + k * O + o] + (Vb ? Vb[k * v_stride + o] : T(0));
    Ry[i] = accumulate ? Ry[i] + v : v;
  }
}

template <class T>
__global__ void act_rforward_kernel(ActParams a, const T* x, const T* y, const T* Rx, T* Ry, int64_t n, int64_t K) {
  CN_GRID_STRIDE(j, n * K) {
    const int64_t i = j % n;
    Ry[j] = act_r_forward(a, x[i], y[i], Rx[j]);
  }
}

template <class T>
__global__ void act_rbackward_kernel(ActParams a, const T* x, const T* y, const T* dy, const T* Rx, const T* Rdy,
                                     T* Rdx, int64_t n, int64_t K, bool second) {
  CN_GRID_STRIDE(j, n * K) {
    const int64_t i = j % n;
    const T d1 = act_d1(a, x[i], y[i]);
    Rdx[j] = second ? act_r_backward(d1, act_d2_dy(a, x[i], y[i], dy[i]), Rdy[j], Rx[j]) : act_r_forward(d1, Rdy[j]);
  }
}

template <class T>
__global__ void multiply_k_kernel(const T* X, const T* m, T* Y, int64_t n, int64_t K) {
  CN_GRID_STRIDE(j, n * K) Y[j] = X[j] * m[j % n];
}

template <class T>
__global__ void bn_rforward_kernel(bool training, const T* xhat, const T* inv_std, const T* gamma, const T* Rx,
                                   const T* Vg, const T* Vb, int64_t v_stride, int64_t N, int64_t O, T* Rxhat, T* Rstat,
                                   T* Ry) {
  const int64_t k = blockIdx.y;
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const T inv_n = T(1) / T(N);
  const T* rx = Rx ? Rx + k * N * O : nullptr;
  T m1 = T(0), m2 = T(0);
  if (rx && training) {  // uniform across the block: every thread takes the same branch
    m1 = column_tile_sum<T>(N, [&](int64_t n) { return inside ? rx[n * O + o] : T(0); }) * inv_n;
    m2 = column_tile_sum<T>(N, [&](int64_t n) { return inside ? xhat[n * O + o] * rx[n * O + o] : T(0); }) * inv_n;
  }
  if (!inside) return;
  if (training && Rstat && threadIdx.y == 0) Rstat[k * O + o] = m2;
  const T s = inv_std[o], g = gamma[o];
  const T vg = Vg ? Vg[k * v_stride + o] : T(0), vb = Vb ? Vb[k * v_stride + o] : T(0);
  T* rxh = Rxhat + k * N * O;
  T* ry = Ry + k * N * O;
  for (int64_t n = threadIdx.y; n < N; n += kTile) {
    const int64_t j = n * O + o;
    const T r = rx ? bn_r_xhat(training, s, rx[j], m1, xhat[j], m2) : T(0);
    rxh[j] = r;
    ry[j] = bn_r_y(g, r, vg, xhat[j], vb);
  }
}

template <class T>
__global__ void bn_rbackward_kernel(bool training, const T* dy, const T* xhat, const T* inv_std, const T* gamma,
                                    const T* Rxhat, const T* Rstat, const T* Vg, int64_t v_stride, const T* Rdy,
                                    int64_t N, int64_t O, T* Rdx, T* HV, int64_t hv_stride) {
  const int64_t k = blockIdx.y;
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const T inv_n = T(1) / T(N);
  const T* rdy = Rdy + k * N * O;
  const T* rxh = Rxhat + k * N * O;
  auto g_at = [&](int64_t j) { return dy ? dy[j] : T(0); };
  const T A = column_tile_sum<T>(N, [&](int64_t n) { return inside ? g_at(n * O + o) : T(0); });
  const T B = column_tile_sum<T>(N, [&](int64_t n) { return inside ? g_at(n * O + o) * xhat[n * O + o] : T(0); });
  const T RA = column_tile_sum<T>(N, [&](int64_t n) { return inside ? rdy[n * O + o] : T(0); });
  const T RB = column_tile_sum<T>(N, [&](int64_t n) {
    if (!inside) return T(0);
    const int64_t j = n * O + o;
    return bn_rb_term(rdy[j], xhat[j], g_at(j), rxh[j]);
  });
  if (!inside) return;
  if (HV && threadIdx.y == 0) {
    HV[k * hv_stride + o] = RB;
    HV[k * hv_stride + O + o] = RA;
  }
  if (!Rdx) return;
  const T s = inv_std[o], g = gamma[o];
  const T vg = Vg ? Vg[k * v_stride + o] : T(0);
  T* rdx = Rdx + k * N * O;
  if (training) {
    const T m2 = Rstat ? Rstat[k * O + o] : T(0);
    for (int64_t n = threadIdx.y; n < N; n += kTile) {
      const int64_t j = n * O + o;
      rdx[j] = bn_r_dx_train(g, s, vg, m2, g_at(j), xhat[j], rdy[j], rxh[j], A, B, RA, RB, inv_n);
    }
  } else {
    for (int64_t n = threadIdx.y; n < N; n += kTile) {
      const int64_t j = n * O + o;
      rdx[j] = bn_r_dx_eval(g, s, vg, g_at(j), rdy[j]);
    }
  }
}

template <class T>
__global__ void ce_rbackward_kernel(const T* p, const T* Rz, T* Rdz, int64_t N, int64_t C, int64_t KN, T scale) {
  CN_GRID_STRIDE(r, KN) ce_r_row(p + (r % N) * C, Rz + r * C, Rdz + r * C, C, scale);
}

template <class T>
__global__ void elementwise_loss_rbackward_kernel(LossKind kind, const T* p, const T* Rz, T* Rdz, int64_t m, int64_t K,
                                                  T scale) {
  CN_GRID_STRIDE(j, m * K) {
    const int64_t i = j % m;
    Rdz[j] = elementwise_loss_curvature_at(kind, p, i, scale) * Rz[j];
  }
}

template <class T>
__global__ void loss_output_hessian_kernel(LossKind kind, const T* p, int64_t N, int64_t C, T* M, T inv_n, T inv_nc) {
  CN_GRID_STRIDE(e, N * C * C) {
    const int64_t n = e / (C * C), i = (e / C) % C, j = e % C;
    M[e] = loss_hessian_entry(kind, p + n * C, i, j, inv_n, inv_nc);
  }
}

template <class T>
__global__ void hess_diag_sandwich_kernel(const T* d, int64_t d_rowstride, T* M, int64_t N, int64_t F) {
  CN_GRID_STRIDE(e, N * F * F) {
    const int64_t n = e / (F * F), i = (e / F) % F, j = e % F;
    const T* dn = d + n * d_rowstride;
    M[e] = kron_sandwich(M[e], dn[i], dn[j]);
  }
}

template <class T>
__global__ void act_hess_backward_kernel(ActParams a, const T* x, const T* y, const T* dy, T* M, int64_t N, int64_t F) {
  CN_GRID_STRIDE(e, N * F * F) {
    const int64_t n = e / (F * F), i = (e / F) % F, j = e % F;
    const int64_t ni = n * F + i, nj = n * F + j;
    T m = kron_sandwich(M[e], act_d1(a, x[ni], y[ni]), act_d1(a, x[nj], y[nj]));
    if (dy && i == j) m += act_d2_dy(a, x[ni], y[ni], dy[ni]);
    M[e] = m;
  }
}

template <class T>
__global__ void scaled_square_kernel(const T* x, T* y, int64_t n, T scale) {
  CN_GRID_STRIDE(i, n) y[i] = scale * x[i] * x[i];
}

template <class T>
__global__ void scale_rows_by_kernel(const T* x, const T* d, T* y, int64_t len, int64_t K) {
  CN_GRID_STRIDE(j, len * K) y[j] = x[j] * d[j % len];
}

// --- launchers

namespace {
#define CN_LAUNCH_CHECK() CN_CUDA_CHECK(cudaGetLastError())

dim3 tile_grid_k(int64_t O, int64_t K) {
  CN_CHECK_MSG(K > 0 && K <= 65535, "K = " << K << " directions: at most 65535 per launch");
  return dim3(tile_grid(O), static_cast<unsigned>(K));
}
template <class T>
void zero(T* p, int64_t n) {
  if (n > 0) CN_CUDA_CHECK(cudaMemsetAsync(p, 0, static_cast<size_t>(n) * sizeof(T), stream()));
}
}  // namespace

template <class T>
void add_row_vector_strided(T* y, const T* b, int64_t b_stride, int64_t K, int64_t N, int64_t O) {
  const int64_t n = K * N * O;
  if (n == 0) return;
  add_row_vector_strided_kernel<<<grid_for(n), kBlock, 0, stream()>>>(y, b, b_stride, N, O, n);
  CN_LAUNCH_CHECK();
}

template <class T>
void column_sum_strided(const T* x, int64_t K, int64_t N, int64_t O, T* s, int64_t s_stride) {
  if (K == 0 || O == 0) return;
  column_sum_strided_kernel<<<tile_grid_k(O, K), tile_block(), 0, stream()>>>(x, N, O, s, s_stride);
  CN_LAUNCH_CHECK();
}

template <class T>
void pack_strided(const T* src, int64_t src_stride, int64_t len, T* dst, int64_t K) {
  if (K == 0 || len == 0) return;
  CN_CUDA_CHECK(cudaMemcpy2DAsync(dst, static_cast<size_t>(len) * sizeof(T), src,
                                  static_cast<size_t>(src_stride) * sizeof(T), static_cast<size_t>(len) * sizeof(T),
                                  static_cast<size_t>(K), cudaMemcpyDeviceToDevice, stream()));
}

template <class T>
void linear_r_unstack(const T* S, const T* Vb, int64_t v_stride, T* Ry, int64_t K, int64_t N, int64_t O,
                      bool accumulate) {
  const int64_t n = K * N * O;
  if (n == 0) return;
  linear_r_unstack_kernel<<<grid_for(n), kBlock, 0, stream()>>>(S, Vb, v_stride, Ry, K, N, O, accumulate);
  CN_LAUNCH_CHECK();
}

template <class T>
void act_rforward(const ActParams& a, const T* x, const T* y, const T* Rx, T* Ry, int64_t n, int64_t K) {
  if (n * K == 0) return;
  if (!Rx) return zero(Ry, n * K);
  act_rforward_kernel<<<grid_for(n * K), kBlock, 0, stream()>>>(a, x, y, Rx, Ry, n, K);
  CN_LAUNCH_CHECK();
}

template <class T>
void act_rbackward(const ActParams& a, const T* x, const T* y, const T* dy, const T* Rx, const T* Rdy, T* Rdx,
                   int64_t n, int64_t K) {
  if (n * K == 0) return;
  const bool second = Rx && dy && !act_is_piecewise_linear(a.kind);
  act_rbackward_kernel<<<grid_for(n * K), kBlock, 0, stream()>>>(a, x, y, dy, Rx, Rdy, Rdx, n, K, second);
  CN_LAUNCH_CHECK();
}

template <class T>
void multiply_k(const T* X, const T* m, T* Y, int64_t n, int64_t K) {
  if (n * K == 0) return;
  if (!X) return zero(Y, n * K);
  multiply_k_kernel<<<grid_for(n * K), kBlock, 0, stream()>>>(X, m, Y, n, K);
  CN_LAUNCH_CHECK();
}

template <class T>
void bn_rforward(bool training, const T* xhat, const T* inv_std, const T* gamma, const T* Rx, const T* Vg, const T* Vb,
                 int64_t v_stride, int64_t N, int64_t O, int64_t K, T* Rxhat, T* Rstat, T* Ry) {
  if (K == 0 || O == 0) return;
  CN_CHECK(N > 0);
  bn_rforward_kernel<<<tile_grid_k(O, K), tile_block(), 0, stream()>>>(training, xhat, inv_std, gamma, Rx, Vg, Vb,
                                                                       v_stride, N, O, Rxhat, Rstat, Ry);
  CN_LAUNCH_CHECK();
}

template <class T>
void bn_rbackward(bool training, const T* dy, const T* xhat, const T* inv_std, const T* gamma, const T* Rxhat,
                  const T* Rstat, const T* Vg, int64_t v_stride, const T* Rdy, int64_t N, int64_t O, int64_t K, T* Rdx,
                  T* HV, int64_t hv_stride) {
  if (K == 0 || O == 0) return;
  CN_CHECK(N > 0);
  bn_rbackward_kernel<<<tile_grid_k(O, K), tile_block(), 0, stream()>>>(
      training, dy, xhat, inv_std, gamma, Rxhat, Rstat, Vg, v_stride, Rdy, N, O, Rdx, HV, hv_stride);
  CN_LAUNCH_CHECK();
}

template <class T>
void loss_rbackward(LossKind kind, const T* p, const T* Rz, T* Rdz, int64_t N, int64_t C, int64_t K) {
  if (N * C * K == 0) return;
  if (kind == LossKind::cross_entropy) {
    ce_rbackward_kernel<<<grid_for(K * N), kBlock, 0, stream()>>>(p, Rz, Rdz, N, C, K * N, T(1) / T(N));
  } else {
    const int64_t m = N * C;
    elementwise_loss_rbackward_kernel<<<grid_for(m * K), kBlock, 0, stream()>>>(kind, p, Rz, Rdz, m, K, T(1) / T(m));
  }
  CN_LAUNCH_CHECK();
}

template <class T>
void loss_output_hessian(LossKind kind, const T* p, int64_t N, int64_t C, T* M) {
  if (N * C == 0) return;
  loss_output_hessian_kernel<<<grid_for(N * C * C), kBlock, 0, stream()>>>(kind, p, N, C, M, T(1) / T(N),
                                                                           T(1) / T(N * C));
  CN_LAUNCH_CHECK();
}

template <class T>
void hess_diag_sandwich(const T* d, int64_t d_rowstride, T* M, int64_t N, int64_t F) {
  if (N * F == 0) return;
  hess_diag_sandwich_kernel<<<grid_for(N * F * F), kBlock, 0, stream()>>>(d, d_rowstride, M, N, F);
  CN_LAUNCH_CHECK();
}

template <class T>
void act_hess_backward(const ActParams& a, const T* x, const T* y, const T* dy, T* M, int64_t N, int64_t F) {
  if (N * F == 0) return;
  act_hess_backward_kernel<<<grid_for(N * F * F), kBlock, 0, stream()>>>(a, x, y, dy, M, N, F);
  CN_LAUNCH_CHECK();
}

template <class T>
void scaled_square(const T* x, T* y, int64_t n, T scale) {
  if (n == 0) return;
  scaled_square_kernel<<<grid_for(n), kBlock, 0, stream()>>>(x, y, n, scale);
  CN_LAUNCH_CHECK();
}

template <class T>
void scale_rows_by(const T* x, const T* d, T* y, int64_t len, int64_t K) {
  if (len * K == 0) return;
  scale_rows_by_kernel<<<grid_for(len * K), kBlock, 0, stream()>>>(x, d, y, len, K);
  CN_LAUNCH_CHECK();
}

CN_ROPS_INSTANTIATE(float)
CN_ROPS_INSTANTIATE(double)

}  // namespace cn::cuda
