// CUDA twins of BatchNorm's ops (kernels/ops.h), N x O row-major, per feature o; the math
// is kernels/batchnorm.h. Reductions over the batch use column tiles (common.cuh: one block
// owns 32 features, reads rows coalesced, sums in a fixed order -> reproducible).
//   bn_forward_train   mean, inv_std (=); xhat, y (=)
//   bn_backward_train  dgamma, dbeta (=); dx (=, skipped when null)
//   bn_forward_eval    inv_std from running_var (=); xhat, y (=)
//   bn_backward_eval   dgamma, dbeta (=); dx (=, skipped when null)
//   bn_update_running  running_mean, running_var updated in place
#include "kernels/batchnorm.h"
#include "kernels/cuda/common.cuh"
#include "kernels/ops.h"

namespace cn::cuda {

// --- kernels

template <class T>
__global__ void bn_forward_train_kernel(const T* x, const T* gamma, const T* beta, int64_t N, int64_t O, double eps,
                                        T* y, T* xhat, T* mean, T* inv_std) {
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const T mu = column_tile_sum<T>(N, [&](int64_t n) { return inside ? x[n * O + o] : T(0); }) / T(N);
  const T var = column_tile_sum<T>(N, [&](int64_t n) { return inside ? bn_sq_dev(x[n * O + o], mu) : T(0); }) / T(N);
  if (!inside) return;
  const T is = bn_inv_std(var, eps);
  if (threadIdx.y == 0) {
    mean[o] = mu;
    inv_std[o] = is;
  }
  const T g = gamma[o], b = beta[o];
  for (int64_t n = threadIdx.y; n < N; n += kTile) {
    const T h = bn_xhat(x[n * O + o], mu, is);
    xhat[n * O + o] = h;
    y[n * O + o] = bn_affine(g, h, b);
  }
}

// Both backward modes: the parameter gradients are the same sums; dx differs.
template <class T, bool kTrain>
__global__ void bn_backward_kernel(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O,
                                   T* dx, T* dgamma, T* dbeta) {
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const T sum_dy = column_tile_sum<T>(N, [&](int64_t n) { return inside ? dy[n * O + o] : T(0); });
  const T sum_dy_xhat =
      column_tile_sum<T>(N, [&](int64_t n) { return inside ? dy[n * O + o] * xhat[n * O + o] : T(0); });
  if (!inside) return;
  if (threadIdx.y == 0) {
    dgamma[o] = sum_dy_xhat;
    dbeta[o] = sum_dy;
  }
  if (!dx) return;
  if constexpr (kTrain) {
    const T scale = bn_train_dx_scale(gamma[o], inv_std[o], N);
    for (int64_t n = threadIdx.y; n < N; n += kTile)
      dx[n * O + o] = bn_train_dx(scale, dy[n * O + o], xhat[n * O + o], sum_dy, sum_dy_xhat, N);
  } else {
    const T g = gamma[o], is = inv_std[o];
    for (int64_t n = threadIdx.y; n < N; n += kTile) dx[n * O + o] = bn_eval_dx(dy[n * O + o], g, is);
  }
}

template <class T>
__global__ void bn_forward_eval_kernel(const T* x, const T* gamma, const T* beta, const T* running_mean,
                                       const T* running_var, int64_t N, int64_t O, double eps, T* y, T* xhat,
                                       T* inv_std) {
  CN_GRID_STRIDE(i, N * O) {
    const int64_t o = i % O;
    const T is = bn_inv_std(running_var[o], eps);
    if (i < O) inv_std[o] = is;
    const T h = bn_xhat(x[i], running_mean[o], is);
    xhat[i] = h;
    y[i] = bn_affine(gamma[o], h, beta[o]);
  }
}

template <class T>
__global__ void bn_update_running_kernel(const T* mean, const T* inv_std, int64_t N, int64_t O, double eps,
                                         double momentum, T* running_mean, T* running_var) {
  CN_GRID_STRIDE(o, O) bn_running_update(mean[o], inv_std[o], N, eps, momentum, &running_mean[o], &running_var[o]);
}

// --- launchers

template <class T>
void bn_forward_train(const T* x, const T* gamma, const T* beta, int64_t N, int64_t O, double eps, T* y, T* xhat,
                      T* mean, T* inv_std) {
  if (O == 0) return;
  CN_CHECK(N > 0);
  bn_forward_train_kernel<<<tile_grid(O), tile_block(), 0, stream()>>>(x, gamma, beta, N, O, eps, y, xhat, mean,
                                                                       inv_std);
  CN_CUDA_CHECK(cudaGetLastError());
}

namespace {
template <class T, bool kTrain>
void launch_bn_backward(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,
                        T* dgamma, T* dbeta) {
  if (O == 0) return;
  bn_backward_kernel<T, kTrain>
      <<<tile_grid(O), tile_block(), 0, stream()>>>(dy, xhat, gamma, inv_std, N, O, dx, dgamma, dbeta);
  CN_CUDA_CHECK(cudaGetLastError());
}
}  // namespace

template <class T>
void bn_backward_train(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,
                       T* dgamma, T* dbeta) {
  launch_bn_backward<T, true>(dy, xhat, gamma, inv_std, N, O, dx, dgamma, dbeta);
}

template <class T>
void bn_backward_eval(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,
                      T* dgamma, T* dbeta) {
  launch_bn_backward<T, false>(dy, xhat, gamma, inv_std, N, O, dx, dgamma, dbeta);
}

template <class T>
void bn_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var, int64_t N,
                     int64_t O, double eps, T* y, T* xhat, T* inv_std) {
  if (O == 0) return;
  CN_CHECK(N > 0);  // inv_std is written by the threads of row 0
  bn_forward_eval_kernel<<<grid_for(N * O), kBlock, 0, stream()>>>(x, gamma, beta, running_mean, running_var, N, O, eps,
                                                                   y, xhat, inv_std);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void bn_update_running(const T* mean, const T* inv_std, int64_t N, int64_t O, double eps, double momentum,
                       T* running_mean, T* running_var) {
  if (O == 0) return;
  bn_update_running_kernel<<<grid_for(O), kBlock, 0, stream()>>>(mean, inv_std, N, O, eps, momentum, running_mean,
                                                                 running_var);
  CN_CUDA_CHECK(cudaGetLastError());
}

#define CN_INSTANTIATE(T)                                                                                              \
  template void bn_forward_train<T>(const T*, const T*, const T*, int64_t, int64_t, double, T*, T*, T*, T*);           \
  template void bn_backward_train<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*);            \
  template void bn_backward_eval<T>(const T*, const T*, const T*, const T*, int64_t, int64_t, T*, T*, T*);             \
  template void bn_forward_eval<T>(const T*, const T*, const T*, const T*, const T*, int64_t, int64_t, double, T*, T*, \
                                   T*);                                                                                \
  template void bn_update_running<T>(const T*, const T*, int64_t, int64_t, double, double, T*, T*);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda
