// The fused MLP passes of kernels/cuda/fused_mlp.h.
//
// Row-tile kernels (forward, backward to every layer's output gradient): one thread block of
// kThreads threads owns kRows consecutive batch rows; thread (tx, ty) = (threadIdx.x % 16,
// threadIdx.x / 16) owns rows ty + 8i (i < 2) and columns tx + 16j (j < 8) of every layer's
// kRows × 128 tile, accumulated in registers. A layer's input tile sits in shared memory (the
// previous layer's result; two buffers, alternating), except the first layer's, which is
// streamed from global memory in K-chunks of kChunk columns like the weights are (so the input
// width is free). Everything outside the real rows and columns is kept at 0 in shared memory.
// Each layer writes its results to the model's buffers as the layers' own passes do.
//
// Parameter gradients: [dW | db] of a layer is dzᵀ [x | 1] (the bias as a column of ones), one
// kGradTile × kGradTile tile of it per block, every layer's tiles in one launch, the batch
// summed in chunks in a fixed order (reproducible), the next chunk loaded while one is multiplied.
#include <algorithm>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/fused_mlp.h"
#include "kernels/ops.h"

namespace cn::cuda {

namespace {

constexpr int kWidth = static_cast<int>(kFusedMlpMaxWidth);  // columns of a tile
constexpr int kColLanes = 16;
constexpr int kRowLanes = 8;
constexpr int kThreads = kColLanes * kRowLanes;
constexpr int kRowsPerThread = 2;
constexpr int kRows = kRowLanes * kRowsPerThread;   // batch rows per block
constexpr int kColsPerThread = kWidth / kColLanes;  // 8
constexpr int kChunk = 32;                          // K columns staged per step
constexpr int kActLd = kWidth + 4;                  // shared row strides, padded against bank conflicts
constexpr int kXsLd = kChunk + 1;
constexpr int kWsLd = kWidth + 1;
constexpr int kSmemElems = 2 * kRows * kActLd + kRows * kXsLd + kChunk * kWsLd;
static_assert(kWidth % kColLanes == 0, "the tile's columns split evenly over the column lanes");

constexpr int kGradTile = 32;
constexpr int kGradRowLanes = 4;
constexpr int kGradThreads = kGradTile * kGradRowLanes;
constexpr int kGradPerThread = kGradTile / kGradRowLanes;

template <class T>
using Acc = T[kRowsPerThread][kColsPerThread];

struct SharedTiles {
  __device__ static int tx() { return static_cast<int>(threadIdx.x) % kColLanes; }
  __device__ static int ty() { return static_cast<int>(threadIdx.x) / kColLanes; }
};

constexpr int kWsPerThread = kChunk * kWidth / kThreads;  // weight values a thread stages per chunk
constexpr int kXsPerThread = kRows * kChunk / kThreads;   // input values a thread stages per chunk
static_assert(kChunk * kWidth % kThreads == 0 && kRows * kChunk % kThreads == 0, "staging splits evenly");

// Where a tile_product reads its operands (see there).
template <class T>
struct Operands {
  const T* a_global;
  int64_t a_ld;
  int n_rows;
  int K;
  const T* W;
  bool backward;
  int n_out;
};

// The K-chunk at k0 of w (and of a, when it comes from global memory) into registers; values
// outside the matrices are 0. Weight value q of this thread is element e = threadIdx.x + q·kThreads
// of the kChunk × kWidth chunk, numbered so that consecutive threads read consecutive addresses.
template <class T>
__device__ void load_chunk(const Operands<T>& o, int k0, T (&wr)[kWsPerThread], T (&xr)[kXsPerThread]) {
  const int kc = min(kChunk, o.K - k0);
#pragma unroll
  for (int q = 0; q < kWsPerThread; ++q) {
    const int e = static_cast<int>(threadIdx.x) + q * kThreads;
    if (!o.backward) {
      const int kk = e % kChunk, c = e / kChunk;  // along a row of W (n_out × K)
      wr[q] = kk < kc && c < o.n_out ? o.W[static_cast<int64_t>(c) * o.K + k0 + kk] : T(0);
    } else {
      const int c = e % kWidth, kk = e / kWidth;  // along a row of W (K × n_out)
      wr[q] = kk < kc && c < o.n_out ? o.W[static_cast<int64_t>(k0 + kk) * o.n_out + c] : T(0);
    }
  }
  if (!o.a_global) return;
#pragma unroll
  for (int q = 0; q < kXsPerThread; ++q) {
    const int e = static_cast<int>(threadIdx.x) + q * kThreads;
    const int kk = e % kChunk, r = e / kChunk;
    xr[q] = kk < kc && r < o.n_rows ? o.a_global[static_cast<int64_t>(r) * o.a_ld + k0 + kk] : T(0);
  }
}

// The registers of load_chunk into ws[kk][c] and xs[r][kk].
template <class T>
__device__ void store_chunk(const Operands<T>& o, const T (&wr)[kWsPerThread], const T (&xr)[kXsPerThread], T* xs,
                            T* ws) {
#pragma unroll
  for (int q = 0; q < kWsPerThread; ++q) {
    const int e = static_cast<int>(threadIdx.x) + q * kThreads;
    if (!o.backward)
      ws[(e % kChunk) * kWsLd + e / kChunk] = wr[q];
    else
      ws[(e / kWidth) * kWsLd + e % kWidth] = wr[q];
  }
  if (!o.a_global) return;
#pragma unroll
  for (int q = 0; q < kXsPerThread; ++q) {
    const int e = static_cast<int>(threadIdx.x) + q * kThreads;
    xs[(e / kChunk) * kXsLd + e % kChunk] = xr[q];
  }
}

// acc[i][j] = Σ_{k<K} a(r_i, k) · w(k, c_j) for this thread's rows r_i and columns c_j.
// a: the block's rows from global memory (o.a_global: row 0 of the block, row stride o.a_ld;
// rows at or past o.n_rows read as 0), staged through xs; or, when o.a_global is null, the
// tile in shared memory (a_shared, row stride kActLd). w(k, c) = W[c·K + k] (forward: W is
// n_out × K, y = a Wᵀ), or W[k·n_out + c] when o.backward (W is K × n_out, dx = dz W).
// n_out ≤ kWidth. Each chunk is loaded into registers while the previous one is multiplied.
// Starts with a barrier: what the caller wrote into shared memory before is visible.
template <class T>
__device__ void tile_product(const Operands<T>& o, const T* a_shared, T* xs, T* ws, Acc<T>& acc) {
  const int tx = SharedTiles::tx(), ty = SharedTiles::ty();
#pragma unroll
  for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
    for (int j = 0; j < kColsPerThread; ++j) acc[i][j] = T(0);
  T wr[kWsPerThread], xr[kXsPerThread];
  if (o.K > 0) load_chunk(o, 0, wr, xr);
  for (int k0 = 0; k0 < o.K; k0 += kChunk) {
    const int kc = min(kChunk, o.K - k0);
    __syncthreads();  // the previous chunk, layer or epilogue is done with the shared buffers
    store_chunk(o, wr, xr, xs, ws);
    __syncthreads();
    if (k0 + kChunk < o.K) load_chunk(o, k0 + kChunk, wr, xr);  // in flight during the products below
    const T* a = o.a_global ? xs : a_shared + k0;
    const int lda = o.a_global ? kXsLd : kActLd;
    for (int kk = 0; kk < kc; ++kk) {
      T w[kColsPerThread];
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) w[j] = ws[kk * kWsLd + tx + kColLanes * j];
#pragma unroll
      for (int i = 0; i < kRowsPerThread; ++i) {
        const T av = a[(ty + kRowLanes * i) * lda + kk];
#pragma unroll
        for (int j = 0; j < kColsPerThread; ++j) acc[i][j] += av * w[j];
      }
    }
  }
}

template <class T>
struct Smem {
  T* tile[2];  // layer results, alternating
  T* xs;       // a K-chunk of the first layer's input
  T* ws;       // a K-chunk of a weight matrix
};

template <class T>
__device__ Smem<T> smem_layout() {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* base = reinterpret_cast<T*>(smem_raw);
  Smem<T> s;
  s.tile[0] = base;
  s.tile[1] = base + kRows * kActLd;
  s.xs = base + 2 * kRows * kActLd;
  s.ws = s.xs + kRows * kXsLd;
  return s;
}

// Every group in turn: z = a Wᵀ + b, y = f(z) (kernels/activation.h), both to the model's
// buffers, the group's output to shared memory for the next group.
template <class T>
__global__ void __launch_bounds__(kThreads) fused_forward_kernel(FusedMlp<T> net, const T* x, int64_t N) {
  const Smem<T> s = smem_layout<T>();
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int n_rows = static_cast<int>(min(static_cast<int64_t>(kRows), N - row0));
  const int tx = SharedTiles::tx(), ty = SharedTiles::ty();
  Acc<T> acc;
  for (int l = 0; l < net.groups; ++l) {
    const FusedMlpGroup<T>& g = net.g[l];
    // With first_layer_gemm, group 0's z = x Wᵀ + b is in g.z already: only its activation is left.
    const bool z_given = l == 0 && net.first_layer_gemm;
    if (l == 0 && !z_given)
      tile_product<T>({x + row0 * g.in, g.in, n_rows, g.in, g.W, false, g.out}, nullptr, s.xs, s.ws, acc);
    else if (l > 0)
      tile_product<T>({nullptr, 0, n_rows, g.in, g.W, false, g.out}, s.tile[(l - 1) & 1], s.xs, s.ws, acc);
    T* out = s.tile[l & 1];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        const int r = ty + kRowLanes * i, c = tx + kColLanes * j;
        T v = T(0);
        if (r < n_rows && c < g.out) {
          const int64_t at = (row0 + r) * g.out + c;
          T z;
          if (z_given) {
            z = g.z[at];
          } else {
            z = acc[i][j] + g.b[c];
            g.z[at] = z;
          }
          v = z;
          if (g.has_act) {
            v = act_f(g.act, z);
            g.y[at] = v;
          }
        }
        out[r * kActLd + c] = v;
      }
  }
}

// From the last group down: v = dL/d(group output) (dz_out at the top, else the next group's
// dx) is written as the group's output gradient; through the activation, dz = v · f'(z, y)
// (kernels/activation.h, as act_backward); then dx = dz W for the group below.
template <class T>
__global__ void __launch_bounds__(kThreads) fused_backward_kernel(FusedMlp<T> net, const T* dz_out, int64_t N) {
  const Smem<T> s = smem_layout<T>();
  const int64_t row0 = static_cast<int64_t>(blockIdx.x) * kRows;
  const int n_rows = static_cast<int>(min(static_cast<int64_t>(kRows), N - row0));
  const int tx = SharedTiles::tx(), ty = SharedTiles::ty();
  const int last = net.groups - 1;
  Acc<T> acc;
  {
    const int O = net.g[last].out;
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        const int r = ty + kRowLanes * i, c = tx + kColLanes * j;
        acc[i][j] = r < n_rows && c < O ? dz_out[(row0 + r) * O + c] : T(0);
      }
  }
  for (int l = last; l >= 0; --l) {
    const FusedMlpGroup<T>& g = net.g[l];
    T* grad = s.tile[l & 1];
#pragma unroll
    for (int i = 0; i < kRowsPerThread; ++i)
#pragma unroll
      for (int j = 0; j < kColsPerThread; ++j) {
        const int r = ty + kRowLanes * i, c = tx + kColLanes * j;
        T d = T(0);
        if (r < n_rows && c < g.out) {
          const int64_t at = (row0 + r) * g.out + c;
          const T v = acc[i][j];
          g.out_grad[at] = v;
          d = v;
          if (g.has_act) {
            d = v * act_d1(g.act, g.z[at], g.y[at]);
            g.dz[at] = d;
          }
        }
        grad[r * kActLd + c] = d;
      }
    if (l == 0) break;  // the network input's gradient is not formed
    tile_product<T>({nullptr, 0, n_rows, g.out, g.W, true, g.in}, grad, s.xs, s.ws, acc);
  }
}

// Where each group's tiles start in the grid of the parameter-gradient kernel.
struct GradTiles {
  int begin[kFusedMlpMaxLinear + 1] = {};
  int in_tiles[kFusedMlpMaxLinear] = {};  // tiles across [dW | db]'s in + 1 columns
};

// Block b: a kGradTile × kGradTile tile of group l's [dW | db] = dzᵀ [x | 1], x the group's
// input (the network input, or the previous group's output). Thread (tx, ty) = (threadIdx.x %
// 32, threadIdx.x / 32) owns column tx and rows ty + 4m of the tile.
template <class T>
__global__ void __launch_bounds__(kGradThreads)
    fused_param_grad_kernel(FusedMlp<T> net, GradTiles tiles, const T* x, int64_t N) {
  __shared__ T dzs[kGradTile][kGradTile + 1];  // [sample][output unit]
  __shared__ T xs[kGradTile][kGradTile + 1];   // [sample][input column]
  const int b = static_cast<int>(blockIdx.x);
  int l = 0;
  while (l + 1 < net.groups && b >= tiles.begin[l + 1]) ++l;
  const FusedMlpGroup<T>& g = net.g[l];
  const int t = b - tiles.begin[l];
  const int o0 = (t / tiles.in_tiles[l]) * kGradTile, i0 = (t % tiles.in_tiles[l]) * kGradTile;
  const T* in = l == 0 ? x : net.g[l - 1].out_value;
  const int I = g.in, O = g.out;
  const int tx = static_cast<int>(threadIdx.x) % kGradTile, ty = static_cast<int>(threadIdx.x) / kGradTile;
  T acc[kGradPerThread];
#pragma unroll
  for (int m = 0; m < kGradPerThread; ++m) acc[m] = T(0);
  // Element e = threadIdx.x + q·kGradThreads of a chunk: sample e / 32, column e % 32 (coalesced).
  constexpr int kLoads = kGradTile * kGradTile / kGradThreads;
  T dzr[kLoads], xr[kLoads];
  auto load = [&](int64_t n0) {
#pragma unroll
    for (int q = 0; q < kLoads; ++q) {
      const int e = static_cast<int>(threadIdx.x) + q * kGradThreads;
      const int c = e % kGradTile;
      const int64_t n = n0 + e / kGradTile;
      const int o = o0 + c, i = i0 + c;
      dzr[q] = n < N && o < O ? g.dz[n * O + o] : T(0);
      xr[q] = n < N ? (i < I ? in[n * I + i] : (i == I ? T(1) : T(0))) : T(0);
    }
  };
  load(0);
  for (int64_t n0 = 0; n0 < N; n0 += kGradTile) {
    __syncthreads();  // the previous chunk is consumed
#pragma unroll
    for (int q = 0; q < kLoads; ++q) {
      const int e = static_cast<int>(threadIdx.x) + q * kGradThreads;
      dzs[e / kGradTile][e % kGradTile] = dzr[q];
      xs[e / kGradTile][e % kGradTile] = xr[q];
    }
    __syncthreads();
    if (n0 + kGradTile < N) load(n0 + kGradTile);  // in flight during the products below
#pragma unroll 4
    for (int nn = 0; nn < kGradTile; ++nn) {
      const T xv = xs[nn][tx];
#pragma unroll
      for (int m = 0; m < kGradPerThread; ++m) acc[m] += dzs[nn][ty + kGradRowLanes * m] * xv;
    }
  }
  const int i = i0 + tx;
#pragma unroll
  for (int m = 0; m < kGradPerThread; ++m) {
    const int o = o0 + ty + kGradRowLanes * m;
    if (o >= O) continue;
    if (i < I)
      g.dW[static_cast<int64_t>(o) * I + i] = acc[m];
    else if (i == I)
      g.db[o] = acc[m];
  }
}

// The row-tile kernels' dynamic shared memory; above 48 KiB (float64) a kernel must opt in,
// once per kernel, before its first launch (so never inside a graph recording).
template <class K>
bool opt_in_shared(K kernel, size_t bytes) {
  CN_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(bytes)));
  return true;
}

template <class T>
void check_net(const FusedMlp<T>& net) {
  CN_CHECK_MSG(net.groups >= 1 && net.groups <= kFusedMlpMaxLinear, "fused MLP: " << net.groups << " groups");
  for (int l = 0; l < net.groups; ++l) {
    const FusedMlpGroup<T>& g = net.g[l];
    CN_CHECK_MSG(g.out >= 1 && g.out <= kWidth && g.in >= 1 && (l == 0 || g.in == net.g[l - 1].out),
                 "fused MLP: group " << l << " is " << g.in << " -> " << g.out);
    CN_CHECK_MSG(g.W && g.dW && g.z && g.dz && g.out_value && g.out_grad && (!g.has_act || (g.y && g.dy)),
                 "fused MLP: group " << l << " misses a buffer");
  }
}

}  // namespace

template <class T>
void fused_mlp_forward(const FusedMlp<T>& net, const T* x, int64_t N) {
  check_net(net);
  if (N <= 0) return;
  const size_t bytes = kSmemElems * sizeof(T);
  static const bool ready = opt_in_shared(fused_forward_kernel<T>, bytes);
  (void)ready;
  if (net.first_layer_gemm) {  // z of the first layer by the backend's GEMM (kernels/ops.h, as Linear's forward)
    const FusedMlpGroup<T>& g = net.g[0];
    gemm_bias<T>(false, true, N, g.out, g.in, x, g.in, g.W, g.in, g.b, g.z, g.out);
  }
  fused_forward_kernel<T><<<static_cast<unsigned>(ceil_div(N, kRows)), kThreads, bytes, stream()>>>(net, x, N);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void fused_mlp_backward(const FusedMlp<T>& net, const T* x, const T* dz_out, int64_t N) {
  check_net(net);
  if (N <= 0) return;
  const size_t bytes = kSmemElems * sizeof(T);
  static const bool ready = opt_in_shared(fused_backward_kernel<T>, bytes);
  (void)ready;
  fused_backward_kernel<T><<<static_cast<unsigned>(ceil_div(N, kRows)), kThreads, bytes, stream()>>>(net, dz_out, N);
  CN_CUDA_CHECK(cudaGetLastError());
  GradTiles tiles;
  for (int l = 0; l < net.groups; ++l) {
    tiles.in_tiles[l] = static_cast<int>(ceil_div(net.g[l].in + 1, kGradTile));
    tiles.begin[l + 1] = tiles.begin[l] + static_cast<int>(ceil_div(net.g[l].out, kGradTile)) * tiles.in_tiles[l];
  }
  fused_param_grad_kernel<T>
      <<<static_cast<unsigned>(tiles.begin[net.groups]), kGradThreads, 0, stream()>>>(net, tiles, x, N);
  CN_CUDA_CHECK(cudaGetLastError());
}

#define CN_INSTANTIATE(T)                                                    \
  template void fused_mlp_forward<T>(const FusedMlp<T>&, const T*, int64_t); \
  template void fused_mlp_backward<T>(const FusedMlp<T>&, const T*, const T*, int64_t);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda
