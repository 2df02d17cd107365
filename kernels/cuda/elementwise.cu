// CUDA twins of the elementwise and row/column ops of kernels/ops.h (row-major, N x O):
//   add_row_vector  y[n, o] += b[o]
//   column_sum      s[o] = (or +=) sum_n x[n, o]   (fixed summation order: reproducible)
//   act_forward     y = f(x)                     (kernels/activation.h)
//   act_backward    dx = dy * f'(x, y)
//   dropout_forward mask = dropout_mask_value(...) (kernels/dropout.h: the CPU's mask), y = x * mask
//   multiply        y = x * mask
//   gather_rows     dst row r = src row rows[r]
#include "kernels/cuda/common.cuh"
#include "kernels/dropout.h"
#include "kernels/ops.h"

namespace cn::cuda {

// --- kernels

template <class T>
__global__ void add_row_vector_kernel(T* y, const T* b, int64_t N, int64_t O) {
  CN_GRID_STRIDE(i, N * O) y[i] += b[i % O];
}

template <class T>
__global__ void column_sum_kernel(const T* x, int64_t N, int64_t O, T* s, bool accumulate) {
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const T sum = column_tile_sum<T>(N, [&](int64_t n) { return inside ? x[n * O + o] : T(0); });
  if (inside && threadIdx.y == 0) s[o] = accumulate ? s[o] + sum : sum;
}

template <class T>
__global__ void act_forward_kernel(ActParams a, const T* x, T* y, int64_t n) {
  CN_GRID_STRIDE(i, n) y[i] = act_f(a, x[i]);
}

template <class T>
__global__ void act_backward_kernel(ActParams a, const T* x, const T* y, const T* dy, T* dx, int64_t n) {
  CN_GRID_STRIDE(i, n) dx[i] = dy[i] * act_d1(a, x[i], y[i]);
}

template <class T>
__global__ void dropout_forward_kernel(const T* x, T* y, T* mask, int64_t n, double p, PhiloxKey key, uint32_t layer,
                                       uint64_t step) {
  CN_GRID_STRIDE(i, n) {
    const T m = dropout_mask_value<T>(key, static_cast<uint64_t>(i), layer, step, p);
    mask[i] = m;
    y[i] = x[i] * m;
  }
}

template <class T>
__global__ void multiply_kernel(const T* x, const T* mask, T* y, int64_t n) {
  CN_GRID_STRIDE(i, n) y[i] = x[i] * mask[i];
}

template <class T>
__global__ void gather_rows_kernel(const T* src, int64_t width, const int64_t* rows, int64_t n, T* dst) {
  CN_GRID_STRIDE(i, n * width) {
    const int64_t r = i / width;
    dst[i] = src[rows[r] * width + (i - r * width)];
  }
}

// --- launchers

template <class T>
void gather_rows(const T* src, int64_t width, const int64_t* rows, int64_t n, T* dst) {
  if (n * width == 0) return;
  gather_rows_kernel<<<grid_for(n * width), kBlock, 0, stream()>>>(src, width, rows, n, dst);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void add_row_vector(T* y, const T* b, int64_t N, int64_t O) {
  if (N * O == 0) return;
  add_row_vector_kernel<<<grid_for(N * O), kBlock, 0, stream()>>>(y, b, N, O);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void column_sum(const T* x, int64_t N, int64_t O, T* s, bool accumulate) {
  if (O == 0) return;
  column_sum_kernel<<<tile_grid(O), tile_block(), 0, stream()>>>(x, N, O, s, accumulate);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void act_forward(const ActParams& a, const T* x, T* y, int64_t n) {
  if (n == 0) return;
  act_forward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(a, x, y, n);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void act_backward(const ActParams& a, const T* x, const T* y, const T* dy, T* dx, int64_t n) {
  if (n == 0) return;
  act_backward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(a, x, y, dy, dx, n);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, PhiloxKey key, uint32_t layer, uint64_t step) {
  if (n == 0) return;
  dropout_forward_kernel<<<grid_for(n), kBlock, 0, stream()>>>(x, y, mask, n, p, key, layer, step);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void multiply(const T* x, const T* mask, T* y, int64_t n) {
  if (n == 0) return;
  multiply_kernel<<<grid_for(n), kBlock, 0, stream()>>>(x, mask, y, n);
  CN_CUDA_CHECK(cudaGetLastError());
}

#define CN_INSTANTIATE(T)                                                                             \
  template void add_row_vector<T>(T*, const T*, int64_t, int64_t);                                    \
  template void gather_rows<T>(const T*, int64_t, const int64_t*, int64_t, T*);                        \
  template void column_sum<T>(const T*, int64_t, int64_t, T*, bool);                                  \
  template void act_forward<T>(const ActParams&, const T*, T*, int64_t);                              \
  template void act_backward<T>(const ActParams&, const T*, const T*, const T*, T*, int64_t);         \
  template void dropout_forward<T>(const T*, T*, T*, int64_t, double, PhiloxKey, uint32_t, uint64_t); \
  template void multiply<T>(const T*, const T*, T*, int64_t);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda
