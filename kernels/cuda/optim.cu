// Kernels of the CUDA optimiser, clipping and gradient noise over the flat buffer (see
// optim_launch.cuh for the tiles). The per-element math is kernels/optim.h:
//   optim_tiles         p, states updated in place by optim_element<K> (one launch per
//                       coefficient group; usually one for the whole buffer), 16-byte
//                       loads and stores where every buffer is 16-byte aligned
//   tiles_sum_sq        partial[tile] = sum x^2 (=), double, cub::BlockReduce
//   tiles_scale_sum_sq  x *= coef[slot] where < 1; partial (=) of the result
//   tiles_clamp_sum_sq  x clamped to [-value, value]; flag |= any; partial (=)
//   units_agc           per output unit (one warp): g *= agc_coef(...) ; flag |= any
//   clip_before/after   one block: norms, per-layer coefficients, the ClipRecord
//   grad_noise          g += grad_noise_value(...) (=the CPU's draws)
#include <cub/block/block_reduce.cuh>
#include <cub/warp/warp_reduce.cuh>

#include <cstdint>

#include "kernels/cuda/common.cuh"
#include "kernels/cuda/optim_launch.cuh"

namespace cn::cuda {

// --- kernels

template <OptimKind K, class T>
__global__ void optim_kernel(OptimScalars<T> s, const Tile* tiles, T* p, const T* g, T* s0, T* s1, T* s2) {
  const Tile t = tiles[blockIdx.x];
  for (int64_t i = t.begin + threadIdx.x; i < t.end; i += blockDim.x) optim_element<K, T>(s, p, g, s0, s1, s2, i);
}

// The state buffers a kind reads and writes (optim_state_count, as a compile-time value;
// the launcher checks that the two agree).
template <OptimKind K>
constexpr int kStates = K == OptimKind::sgd ? 0
                        : (K == OptimKind::momentum || K == OptimKind::nesterov || K == OptimKind::adagrad ||
                           K == OptimKind::rmsprop)
                            ? 1
                            : (K == OptimKind::amsgrad ? 3 : 2);

template <class T>
struct Vec16;  // 16 bytes of T: one load or store instruction
template <>
struct Vec16<float> {
  using type = float4;
};
template <>
struct Vec16<double> {
  using type = double2;
};

template <class T>
__device__ __forceinline__ void copy16(T* dst, const T* src) {
  *reinterpret_cast<typename Vec16<T>::type*>(dst) = *reinterpret_cast<const typename Vec16<T>::type*>(src);
}

// optim_kernel with 16-byte loads and stores: the update streams 5 to 9 arrays and is bound
// by memory; one element per load leaves too few bytes in flight to reach the bandwidth.
// Every pointer is 16-byte aligned (the launcher checks), so element i starts a vector
// when i is a multiple of V; a tile's unaligned head and tail go element by element. Each
// vector's V elements are updated by optim_element on registers: the same math.
template <OptimKind K, class T>
__global__ void optim_vec_kernel(OptimScalars<T> s, const Tile* tiles, T* __restrict__ p, const T* __restrict__ g,
                                 T* __restrict__ s0, T* __restrict__ s1, T* __restrict__ s2) {
  constexpr int V = 16 / sizeof(T);
  constexpr int NS = kStates<K>;
  const Tile t = tiles[blockIdx.x];
  const int64_t up = (t.begin + V - 1) / V * V, down = t.end / V * V;
  const int64_t a = up < t.end ? up : t.end;  // [begin, a) head, [a, b) vectors, [b, end) tail
  const int64_t b = down > a ? down : a;
  for (int64_t i = t.begin + threadIdx.x; i < a; i += blockDim.x) optim_element<K, T>(s, p, g, s0, s1, s2, i);
  for (int64_t i = b + threadIdx.x; i < t.end; i += blockDim.x) optim_element<K, T>(s, p, g, s0, s1, s2, i);
  for (int64_t i = a + int64_t(threadIdx.x) * V; i < b; i += int64_t(blockDim.x) * V) {
    alignas(16) T lp[V], lg[V], l0[V], l1[V], l2[V];
    copy16(lp, p + i);
    copy16(lg, g + i);
    if constexpr (NS > 0) copy16(l0, s0 + i);
    if constexpr (NS > 1) copy16(l1, s1 + i);
    if constexpr (NS > 2) copy16(l2, s2 + i);
#pragma unroll
    for (int j = 0; j < V; ++j) optim_element<K, T>(s, lp, lg, l0, l1, l2, j);
    copy16(p + i, lp);
    if constexpr (NS > 0) copy16(s0 + i, l0);
    if constexpr (NS > 1) copy16(s1 + i, l1);
    if constexpr (NS > 2) copy16(s2 + i, l2);
  }
}

using BlockSum = cub::BlockReduce<double, kBlock>;

template <class T>
__global__ void tiles_sum_sq_kernel(const T* x, const Tile* tiles, double* partial) {
  __shared__ typename BlockSum::TempStorage tmp;
  const Tile t = tiles[blockIdx.x];
  double acc = 0.0;
  for (int64_t i = t.begin + threadIdx.x; i < t.end; i += kBlock) {
    const double v = static_cast<double>(x[i]);
    acc += v * v;
  }
  const double s = BlockSum(tmp).Sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <class T>
__global__ void tiles_scale_sum_sq_kernel(T* x, const Tile* tiles, const double* coef, double* partial) {
  __shared__ typename BlockSum::TempStorage tmp;
  const Tile t = tiles[blockIdx.x];
  const double c = coef[t.slot];
  const bool scale = c < 1.0;  // false for NaN: a non-finite norm leaves the gradient as it is
  const T cf = static_cast<T>(c);
  double acc = 0.0;
  for (int64_t i = t.begin + threadIdx.x; i < t.end; i += kBlock) {
    T v = x[i];
    if (scale) {
      v *= cf;
      x[i] = v;
    }
    const double d = static_cast<double>(v);
    acc += d * d;
  }
  const double s = BlockSum(tmp).Sum(acc);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

template <class T>
__global__ void tiles_clamp_sum_sq_kernel(T* x, const Tile* tiles, T value, int32_t* flag, double* partial) {
  __shared__ typename BlockSum::TempStorage tmp;
  const Tile t = tiles[blockIdx.x];
  double acc = 0.0;
  int over = 0;
  for (int64_t i = t.begin + threadIdx.x; i < t.end; i += kBlock) {
    const T v = x[i];
    over |= (v > value || v < -value) ? 1 : 0;  // as the CPU counts: NaN is not "over"
    const T c = clamp_abs(v, value);
    x[i] = c;
    const double d = static_cast<double>(c);
    acc += d * d;
  }
  const double s = BlockSum(tmp).Sum(acc);
  const int any = __syncthreads_or(over);
  if (threadIdx.x == 0) {
    partial[blockIdx.x] = s;
    if (any) atomicOr(flag, 1);
  }
}

constexpr int kWarpsPerBlock = kBlock / 32;

template <class T>
__global__ void units_agc_kernel(const T* p, T* g, const UnitRow* units, int64_t n_units, double lambda, double nu,
                                 int32_t* flag) {
  using WarpSum = cub::WarpReduce<double>;
  __shared__ typename WarpSum::TempStorage tmp[2][kWarpsPerBlock];
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t u = blockIdx.x * int64_t(kWarpsPerBlock) + warp;
  if (u >= n_units) return;  // whole warps leave together
  const UnitRow r = units[u];
  double gs = 0.0, ps = 0.0;
  for (int64_t c = lane; c < r.cols; c += 32) {
    const double gv = static_cast<double>(g[r.offset + c]), pv = static_cast<double>(p[r.offset + c]);
    gs += gv * gv;
    ps += pv * pv;
  }
  gs = WarpSum(tmp[0][warp]).Sum(gs);
  ps = WarpSum(tmp[1][warp]).Sum(ps);
  double coef = lane == 0 ? agc_coef(lambda, nu, sqrt(gs), sqrt(ps)) : 0.0;
  coef = __shfl_sync(0xffffffffu, coef, 0);
  if (coef < 1.0) {
    const T cf = static_cast<T>(coef);
    for (int64_t c = lane; c < r.cols; c += 32) g[r.offset + c] *= cf;
    if (lane == 0) atomicOr(flag, 1);
  }
}

__global__ void clip_before_kernel(ClipMode mode, const double* partial_g, const double* partial_p, int64_t n_tiles,
                                   const int64_t* layer_tile_begin, int32_t n_layers, double max_norm, double lambda,
                                   double nu, double* coef, int32_t* flag, ClipRecord* rec) {
  __shared__ typename BlockSum::TempStorage tmp;
  __shared__ double norm_sh;
  double acc = 0.0;
  for (int64_t t = threadIdx.x; t < n_tiles; t += kBlock) acc += partial_g[t];
  const double total = BlockSum(tmp).Sum(acc);
  if (threadIdx.x == 0) {
    norm_sh = sqrt(total);
    rec->norm_before = norm_sh;
    *flag = 0;
  }
  __syncthreads();
  const double norm = norm_sh;
  for (int32_t l = threadIdx.x; l < n_layers; l += kBlock) {
    double c = 1.0;
    if (mode == ClipMode::norm) {
      c = clip_norm_coef(max_norm, norm);
    } else if (mode == ClipMode::layer_norm || mode == ClipMode::agc) {
      double gs = 0.0, ps = 0.0;
      for (int64_t t = layer_tile_begin[l]; t < layer_tile_begin[l + 1]; ++t) {
        gs += partial_g[t];
        if (mode == ClipMode::agc) ps += partial_p[t];
      }
      c = mode == ClipMode::layer_norm ? clip_norm_coef(max_norm, sqrt(gs)) : agc_coef(lambda, nu, sqrt(gs), sqrt(ps));
    }
    coef[l] = c;
    if (c < 1.0) atomicOr(flag, 1);
  }
}

__global__ void clip_after_kernel(const double* partial, int64_t n_tiles, bool recompute, const int32_t* flag,
                                  ClipRecord* rec) {
  __shared__ typename BlockSum::TempStorage tmp;
  double acc = 0.0;
  if (recompute)
    for (int64_t t = threadIdx.x; t < n_tiles; t += kBlock) acc += partial[t];
  const double total = BlockSum(tmp).Sum(acc);
  if (threadIdx.x == 0) {
    rec->norm_after = recompute ? sqrt(total) : rec->norm_before;
    rec->clipped = *flag;
  }
}

template <class T>
__global__ void grad_noise_kernel(T* g, int64_t n, PhiloxKey key, int64_t step, double sigma) {
  CN_GRID_STRIDE(i, n) g[i] += static_cast<T>(grad_noise_value(key, i, step, sigma));
}

// --- launchers

namespace {
unsigned tiles_grid(int64_t n_tiles) {
  CN_CHECK(n_tiles > 0 && n_tiles < (int64_t(1) << 31));
  return static_cast<unsigned>(n_tiles);
}
bool aligned16(const void* q) { return reinterpret_cast<uintptr_t>(q) % 16 == 0; }
}  // namespace

template <class T>
void optim_tiles(OptimKind kind, const OptimScalars<T>& s, const Tile* tiles, int64_t n_tiles, T* p, const T* g, T* s0,
                 T* s1, T* s2) {
  if (n_tiles == 0) return;
  const unsigned grid = tiles_grid(n_tiles);
  cudaStream_t st = stream();
  const int n_states = optim_state_count(kind);
  T* const states[3] = {s0, s1, s2};
  bool vec = aligned16(p) && aligned16(g);
  for (int j = 0; j < n_states; ++j) vec = vec && states[j] && aligned16(states[j]);
  switch (kind) {
#define CN_OPTIM_CASE(k)                                                                      \
  case OptimKind::k:                                                                          \
    CN_CHECK(kStates<OptimKind::k> == n_states);                                              \
    if (vec)                                                                                  \
      optim_vec_kernel<OptimKind::k, T><<<grid, kBlock, 0, st>>>(s, tiles, p, g, s0, s1, s2); \
    else                                                                                      \
      optim_kernel<OptimKind::k, T><<<grid, kBlock, 0, st>>>(s, tiles, p, g, s0, s1, s2);     \
    break;
    CN_OPTIM_CASE(sgd)
    CN_OPTIM_CASE(momentum)
    CN_OPTIM_CASE(nesterov)
    CN_OPTIM_CASE(adagrad)
    CN_OPTIM_CASE(rmsprop)
    CN_OPTIM_CASE(adam)
    CN_OPTIM_CASE(adamw)
    CN_OPTIM_CASE(nadam)
    CN_OPTIM_CASE(amsgrad)
#undef CN_OPTIM_CASE
  }
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void tiles_sum_sq(const T* x, const Tile* tiles, int64_t n_tiles, double* partial) {
  if (n_tiles == 0) return;
  tiles_sum_sq_kernel<<<tiles_grid(n_tiles), kBlock, 0, stream()>>>(x, tiles, partial);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void tiles_scale_sum_sq(T* x, const Tile* tiles, int64_t n_tiles, const double* coef, double* partial) {
  if (n_tiles == 0) return;
  tiles_scale_sum_sq_kernel<<<tiles_grid(n_tiles), kBlock, 0, stream()>>>(x, tiles, coef, partial);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void tiles_clamp_sum_sq(T* x, const Tile* tiles, int64_t n_tiles, T value, int32_t* flag, double* partial) {
  if (n_tiles == 0) return;
  tiles_clamp_sum_sq_kernel<<<tiles_grid(n_tiles), kBlock, 0, stream()>>>(x, tiles, value, flag, partial);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void units_agc(const T* p, T* g, const UnitRow* units, int64_t n_units, double lambda, double nu, int32_t* flag) {
  if (n_units == 0) return;
  const unsigned grid = static_cast<unsigned>(ceil_div(n_units, kWarpsPerBlock));
  units_agc_kernel<<<grid, kBlock, 0, stream()>>>(p, g, units, n_units, lambda, nu, flag);
  CN_CUDA_CHECK(cudaGetLastError());
}

void clip_before(ClipMode mode, const double* partial_g, const double* partial_p, int64_t n_tiles,
                 const int64_t* layer_tile_begin, int32_t n_layers, double max_norm, double lambda, double nu,
                 double* coef, int32_t* flag, ClipRecord* rec) {
  clip_before_kernel<<<1, kBlock, 0, stream()>>>(mode, partial_g, partial_p, n_tiles, layer_tile_begin, n_layers,
                                                 max_norm, lambda, nu, coef, flag, rec);
  CN_CUDA_CHECK(cudaGetLastError());
}

void clip_after(const double* partial, int64_t n_tiles, bool recompute, const int32_t* flag, ClipRecord* rec) {
  clip_after_kernel<<<1, kBlock, 0, stream()>>>(partial, n_tiles, recompute, flag, rec);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void grad_noise(T* g, int64_t n, PhiloxKey key, int64_t step, double sigma) {
  if (n == 0) return;
  grad_noise_kernel<<<grid_for(n), kBlock, 0, stream()>>>(g, n, key, step, sigma);
  CN_CUDA_CHECK(cudaGetLastError());
}

#define CN_INSTANTIATE(T)                                                                                          \
  template void optim_tiles<T>(OptimKind, const OptimScalars<T>&, const Tile*, int64_t, T*, const T*, T*, T*, T*); \
  template void tiles_sum_sq<T>(const T*, const Tile*, int64_t, double*);                                          \
  template void tiles_scale_sum_sq<T>(T*, const Tile*, int64_t, const double*, double*);                           \
  template void tiles_clamp_sum_sq<T>(T*, const Tile*, int64_t, T, int32_t*, double*);                             \
  template void units_agc<T>(const T*, T*, const UnitRow*, int64_t, double, double, int32_t*);                     \
  template void grad_noise<T>(T*, int64_t, PhiloxKey, int64_t, double);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda
