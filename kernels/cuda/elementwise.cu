// CUDA twins of the elementwise and row/column ops of kernels/ops.h (row-major, N x O):
//   add_row_vector  y[n, o] += b[o]
//   column_sum      s[o] = (or +=) sum_n x[n, o]   (fixed summation order: reproducible; rows
//                   cut into chunks summed in a second pass when the columns alone leave the
//                   GPU idle)
//   act_forward     y = f(x)                     (kernels/activation.h)
//   act_backward    dx = dy * f'(x, y)
//   dropout_forward mask = dropout_mask_value(...) (kernels/dropout.h: the CPU's mask), y = x * mask
//   multiply        y = x * mask
//   gather_rows     dst row r = src row rows[r]
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/dropout.h"
#include "kernels/ops.h"

namespace cn::cuda {

// --- kernels

template <class T>
__global__ void add_row_vector_kernel(T* y, const T* b, int64_t N, int64_t O) {
  CN_GRID_STRIDE(i, N * O) y[i] += b[i % O];
}

// Block (column tile blockIdx.x, row chunk blockIdx.y) sums rows [chunk * rows, +rows) of
// its 32 columns. One chunk: the result goes to s; several: to partial[chunk * O + o], which
// column_sum_chunks_kernel adds up in chunk order (fixed order: reproducible).
template <class T>
__global__ void column_sum_kernel(const T* x, int64_t N, int64_t O, int64_t ld, int64_t rows, T* s, bool accumulate,
                                  T* partial) {
  const int64_t o = blockIdx.x * int64_t(kTile) + threadIdx.x;
  const bool inside = o < O;
  const int64_t r0 = blockIdx.y * rows;
  const int64_t n_rows = r0 + rows < N ? rows : N - r0;
  const T* xc = x + r0 * ld;
  const T sum = column_tile_sum<T>(n_rows, [&](int64_t n) { return inside ? xc[n * ld + o] : T(0); });
  if (!inside || threadIdx.y != 0) return;
  if (gridDim.y == 1)
    s[o] = accumulate ? s[o] + sum : sum;
  else
    partial[blockIdx.y * O + o] = sum;
}

template <class T>
__global__ void column_sum_chunks_kernel(const T* partial, int64_t chunks, int64_t O, T* s, bool accumulate) {
  CN_GRID_STRIDE(o, O) {
    T sum = T(0);
    for (int64_t c = 0; c < chunks; ++c) sum += partial[c * O + o];
    s[o] = accumulate ? s[o] + sum : sum;
  }
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

namespace {
int multiprocessors() {
  static const int n = [] {
    int dev = 0, count = 0;
    CN_CUDA_CHECK(cudaGetDevice(&dev));
    CN_CUDA_CHECK(cudaDeviceGetAttribute(&count, cudaDevAttrMultiProcessorCount, dev));
    return count > 0 ? count : 1;
  }();
  return n;
}
}  // namespace

template <class T>
void column_sum_ld(const T* x, int64_t N, int64_t O, int64_t ld, T* s, bool accumulate) {
  if (O == 0) return;
  // One block per 32 columns leaves most of the GPU idle when O is small next to N (1024
  // columns: 32 blocks): the rows are cut into chunks of at least 128, enough of them to
  // give every multiprocessor two blocks, and the chunk sums are added in a second pass.
  const int64_t tiles = ceil_div(O, kTile);
  int64_t chunks = std::min(ceil_div(N, 4 * kTile), ceil_div(2 * int64_t(multiprocessors()), tiles));
  int64_t rows = N;
  if (chunks > 1) {
    rows = ceil_div(ceil_div(N, chunks), kTile) * kTile;
    chunks = ceil_div(N, rows);
  }
  if (chunks <= 1) {
    column_sum_kernel<T><<<tile_grid(O), tile_block(), 0, stream()>>>(x, N, O, ld, N, s, accumulate, nullptr);
    CN_CUDA_CHECK(cudaGetLastError());
    return;
  }
  // Stream-ordered scratch: nothing else runs between the two passes.
  T* partial = static_cast<T*>(context().workspace(static_cast<size_t>(chunks * O) * sizeof(T)));
  const dim3 grid(static_cast<unsigned>(tiles), static_cast<unsigned>(chunks));
  column_sum_kernel<<<grid, tile_block(), 0, stream()>>>(x, N, O, ld, rows, s, accumulate, partial);
  CN_CUDA_CHECK(cudaGetLastError());
  column_sum_chunks_kernel<<<grid_for(O), kBlock, 0, stream()>>>(partial, chunks, O, s, accumulate);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void column_sum(const T* x, int64_t N, int64_t O, T* s, bool accumulate) {
  column_sum_ld(x, N, O, O, s, accumulate);
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
  template void gather_rows<T>(const T*, int64_t, const int64_t*, int64_t, T*);                       \
  template void column_sum<T>(const T*, int64_t, int64_t, T*, bool);                                  \
  template void column_sum_ld<T>(const T*, int64_t, int64_t, int64_t, T*, bool);                      \
  template void act_forward<T>(const ActParams&, const T*, T*, int64_t);                              \
  template void act_backward<T>(const ActParams&, const T*, const T*, const T*, T*, int64_t);         \
  template void dropout_forward<T>(const T*, T*, T*, int64_t, double, PhiloxKey, uint32_t, uint64_t); \
  template void multiply<T>(const T*, const T*, T*, int64_t);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda
