// What the CUDA kernels share: launch geometry and the deterministic column reduction
// used by column_sum and BatchNorm. Only for .cu files.
#pragma once
#include <cstdint>
#include <cub/warp/warp_reduce.cuh>

#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"

namespace cn::cuda {

constexpr int kBlock = 256;  // threads per block of the elementwise kernels

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

// Blocks for a grid-stride loop over n elements: enough to fill the GPU, capped so very
// long vectors reuse threads instead of launching millions of blocks.
inline unsigned grid_for(int64_t n, int block = kBlock) {
  constexpr int64_t kMaxBlocks = 65535;
  const int64_t b = ceil_div(n, block);
  return static_cast<unsigned>(b < kMaxBlocks ? (b < 1 ? 1 : b) : kMaxBlocks);
}

inline cudaStream_t stream() { return context().stream(); }

#define CN_GRID_STRIDE(i, n) \
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < (n); i += int64_t(blockDim.x) * gridDim.x)

// ---- column tiles --------------------------------------------------------------------------
// A block of kTile x kTile threads owns kTile consecutive columns of an N x O row-major
// matrix: threadIdx.x is the column inside the tile (coalesced reads along a row),
// threadIdx.y a row lane (rows y, y + kTile, ...). Sums over rows are done in an order fixed
// by N alone, so they are bitwise reproducible from run to run.
constexpr int kTile = 32;

// Sum over the rows n of f(n) for this thread's column, returned to every thread of that
// column. Every thread of the block must call it (it synchronises); threads outside the
// matrix pass an f that returns 0.
template <class T, class F>
__device__ T column_tile_sum(int64_t N, F f) {
  __shared__ T part[kTile][kTile + 1];  // [row lane][column], padded against bank conflicts
  __shared__ typename cub::WarpReduce<T>::TempStorage warp_tmp[kTile];
  __shared__ T total[kTile];
  T acc = T(0);
  for (int64_t n = threadIdx.y; n < N; n += kTile) acc += f(n);
  part[threadIdx.y][threadIdx.x] = acc;
  __syncthreads();
  // Warp w (= threadIdx.y) adds the kTile partials of column w.
  const T s = cub::WarpReduce<T>(warp_tmp[threadIdx.y]).Sum(part[threadIdx.x][threadIdx.y]);
  if (threadIdx.x == 0) total[threadIdx.y] = s;
  __syncthreads();
  const T r = total[threadIdx.x];
  __syncthreads();  // part/total may be reused by the next call
  return r;
}

inline dim3 tile_block() { return dim3(kTile, kTile); }
inline unsigned tile_grid(int64_t O) { return static_cast<unsigned>(ceil_div(O, kTile)); }

// s[o] (=, or += when accumulate) sum over n < N of x[n * ld + o], o < O: column_sum on a
// block of a wider matrix (elementwise.cu; the bias gradient when the GEMM cannot).
template <class T>
void column_sum_ld(const T* x, int64_t N, int64_t O, int64_t ld, T* s, bool accumulate);

}  // namespace cn::cuda
