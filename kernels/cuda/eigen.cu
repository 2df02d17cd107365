// Symmetric eigenvalues on the GPU (kernels/cuda/eigen.h): the batched Jacobi kernel for
// many small blocks, and the cuSOLVER calls (syevd, syevBatched) behind DenseEigenSolver.
//
// The Jacobi kernel (Brent & Luk's parallel ordering of cyclic Jacobi): one thread block
// owns one matrix, kept in shared memory, padded to even order m (the spare index of an odd
// n is a zero row and column that no rotation touches). A sweep is m − 1 rounds of the
// round-robin tournament; a round pairs all m indices into m/2 disjoint pairs (p, q), so
// its m/2 rotations commute and are applied at once: J = ∏ R_k, A ← Jᵀ A J. The update is
// done per 2×2 block (pair k rows, pair l columns): A_kl ← R_kᵀ A_kl R_l, each block read
// and written by one thread, only blocks with k ≤ l (the mirror is written from the same
// values, so the matrix stays exactly symmetric). The diagonal blocks use Rutishauser's
// formulas (a_pp −= t a_pq, a_qq += t a_pq, a_pq = 0), which keep the rounding of the
// eigenvalue estimates at the size of the rotated element.
#include <climits>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/eigen.h"

namespace cn::cuda {

namespace {

// ---- the Jacobi kernel ---------------------------------------------------------------------

constexpr int kJacobiMaxThreads = 1024;
constexpr int kReduceSlots = 33;      // one partial sum per warp (≤ 32) and the total
constexpr int kJacobiMaxOrder = 510;  // pair indices are packed in 8 bits: m/2 ≤ 255

template <class T>
struct Eps;
template <>
struct Eps<float> {
  static constexpr double value = 1.1920928955078125e-07;  // 2^-23
};
template <>
struct Eps<double> {
  static constexpr double value = 2.220446049250313e-16;  // 2^-52
};

// Where everything lives in the block's dynamic shared memory (byte offsets). Computed
// the same way on the host (launch size) and in the kernel.
struct JacobiLayout {
  int n, m, K, ld, items;
  size_t a, c, s, t, d, p, q, item, bytes;
};

template <class T>
__host__ __device__ inline JacobiLayout jacobi_layout(int n) {
  JacobiLayout L{};
  L.n = n;
  L.m = n + (n & 1);
  L.K = L.m / 2;
  L.ld = L.m + 1;  // odd row stride: column-wise accesses (the mirrored writes) spread over banks
  L.items = L.K * (L.K + 1) / 2;
  size_t off = kReduceSlots * sizeof(double);  // the reduction scratch first: 8-byte aligned
  auto take = [&off](size_t bytes) {           // the next `bytes`, in the order of the fields below
    const size_t at = off;
    off += bytes;
    return at;
  };
  L.a = take(static_cast<size_t>(L.m) * L.ld * sizeof(T));
  L.c = take(L.K * sizeof(T));
  L.s = take(L.K * sizeof(T));
  L.t = take(L.K * sizeof(T));
  L.d = take(L.m * sizeof(T));
  L.p = take(L.K * sizeof(short));
  L.q = take(L.K * sizeof(short));
  L.item = take(L.items * sizeof(unsigned short));
  L.bytes = off;
  return L;
}

// Threads per block: the K(K+1)/2 block updates of a round spread evenly over at most
// kJacobiMaxThreads threads, whole warps.
inline int jacobi_threads(const JacobiLayout& L) {
  const int per_thread = (L.items + kJacobiMaxThreads - 1) / kJacobiMaxThreads;
  const int t = (L.items + per_thread - 1) / per_thread;
  return (t + 31) / 32 * 32;
}

__device__ inline float abs_(float x) { return fabsf(x); }
__device__ inline double abs_(double x) { return fabs(x); }
__device__ inline float hypot1_(float x) { return hypotf(x, 1.0f); }
__device__ inline double hypot1_(double x) { return hypot(x, 1.0); }
__device__ inline float copysign_(float x, float y) { return copysignf(x, y); }
__device__ inline double copysign_(double x, double y) { return copysign(x, y); }
__device__ inline float sqrt_(float x) { return sqrtf(x); }
__device__ inline double sqrt_(double x) { return sqrt(x); }
__device__ inline bool isnan_(float x) { return isnan(x); }
__device__ inline bool isnan_(double x) { return isnan(x); }

// Sum over the block, returned to every thread. Every thread calls it; blockDim.x is a
// multiple of 32. Fixed order: reproducible from run to run.
__device__ double block_sum(double v, double* red) {
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
  __syncthreads();  // the previous call's total has been read by everyone
  if (lane == 0) red[warp] = v;
  __syncthreads();
  if (threadIdx.x == 0) {
    double s = 0;
    for (int w = 0; w < warps; ++w) s += red[w];
    red[kReduceSlots - 1] = s;
  }
  __syncthreads();
  return red[kReduceSlots - 1];
}

// A strict total order on (value, index) with NaN last, so the ranks below are a
// permutation and every output slot is written even for a non-finite block.
template <class T>
__device__ inline bool sorts_before(T y, int j, T x, int i) {
  const bool yn = isnan_(y), xn = isnan_(x);
  if (yn != xn) return xn;
  if (yn || y == x) return j < i;
  return y < x;
}

template <class T>
__global__ void __launch_bounds__(kJacobiMaxThreads)
    jacobi_eigenvalues_kernel(const T* __restrict__ A, int n, T* __restrict__ W, int* __restrict__ info) {
  extern __shared__ __align__(16) unsigned char smem[];
  const JacobiLayout L = jacobi_layout<T>(n);
  double* red = reinterpret_cast<double*>(smem);
  T* a = reinterpret_cast<T*>(smem + L.a);
  T* cs = reinterpret_cast<T*>(smem + L.c);
  T* sn = reinterpret_cast<T*>(smem + L.s);
  T* tn = reinterpret_cast<T*>(smem + L.t);
  T* d = reinterpret_cast<T*>(smem + L.d);
  short* P = reinterpret_cast<short*>(smem + L.p);
  short* Q = reinterpret_cast<short*>(smem + L.q);
  unsigned short* item = reinterpret_cast<unsigned short*>(smem + L.item);
  const int m = L.m, K = L.K, ld = L.ld, items = L.items;
  const int tid = threadIdx.x, nt = blockDim.x;
  const T* Ab = A + static_cast<int64_t>(blockIdx.x) * n * n;

  // The lower triangle, mirrored: the entries LAPACK reads for cn::eigh (coalesced rows).
  for (int e = tid; e < n * n; e += nt) {
    const int i = e / n, j = e - i * n;
    if (j <= i) {
      const T v = Ab[e];
      a[i * ld + j] = v;
      a[j * ld + i] = v;
    }
  }
  if (m > n)
    for (int j = tid; j < m; j += nt) {
      a[n * ld + j] = T(0);
      a[j * ld + n] = T(0);
    }
  // The block updates of a round: (k, l) with k ≤ l, packed k << 8 | l.
  for (int e = tid; e < K * K; e += nt) {
    const int k = e / K, l = e - k * K;
    if (k <= l) item[k * K - k * (k - 1) / 2 + (l - k)] = static_cast<unsigned short>((k << 8) | l);
  }
  __syncthreads();

  double part = 0;
  for (int e = tid; e < n * n; e += nt) {
    const double v = static_cast<double>(a[(e / n) * ld + e % n]);
    part += v * v;
  }
  const double norm2 = block_sum(part, red);  // ‖A‖_F², invariant under the rotations
  const double eps = Eps<T>::value;
  const double tol2 = eps * eps * norm2;
  // Rotations for |a_pq| at or below this are skipped (a_pq left as is): all of them
  // together weigh less than eps‖A‖_F, the stopping threshold, and skipping them keeps
  // theta = (a_qq − a_pp) / (2 a_pq) finite.
  const T negligible = static_cast<T>(eps * sqrt(norm2) / m);
  bool converged = false;

  for (int sweep = 0; isfinite(norm2); ++sweep) {
    part = 0;
    for (int e = tid; e < n * n; e += nt) {
      const int i = e / n, j = e - i * n;
      if (i != j) {
        const double v = static_cast<double>(a[i * ld + j]);
        part += v * v;
      }
    }
    const double off2 = block_sum(part, red);  // the same value in every thread: one decision
    if (off2 <= tol2) {
      converged = true;
      break;
    }
    if (sweep == kJacobiMaxSweeps) break;

    for (int r = 0; r < m - 1; ++r) {
      // Round r of the tournament: index m − 1 stays put, the others turn by r places;
      // position k plays position m − 1 − k.
      for (int k = tid; k < K; k += nt) {
        const int p = k == 0 ? m - 1 : (k - 1 + r) % (m - 1);
        const int q = (m - 2 - k + r) % (m - 1);
        const T app = a[p * ld + p], aqq = a[q * ld + q], apq = a[p * ld + q];
        T c = T(1), s = T(0), t = T(0);
        if (abs_(apq) > negligible) {
          const T theta = (aqq - app) / (T(2) * apq);
          // The smaller root of t² + 2θt − 1 = 0 (|angle| ≤ π/4); hypot cannot overflow.
          t = copysign_(T(1) / (abs_(theta) + hypot1_(theta)), theta);
          // Correctly rounded sqrt and division (not rsqrt, up to 2 ulp): c² + s² − 1 stays
          // unbiased, so the hundreds of rotations that touch an entry do not scale it.
          c = T(1) / sqrt_(T(1) + t * t);
          s = t * c;
        }
        cs[k] = c;
        sn[k] = s;
        tn[k] = t;
        P[k] = static_cast<short>(p);
        Q[k] = static_cast<short>(q);
      }
      __syncthreads();
      for (int e = tid; e < items; e += nt) {
        const int k = item[e] >> 8, l = item[e] & 0xff;
        const int p = P[k], q = Q[k];
        if (k == l) {
          const T t = tn[k];
          if (t != T(0)) {
            const T apq = a[p * ld + q];
            a[p * ld + p] -= t * apq;
            a[q * ld + q] += t * apq;
            a[p * ld + q] = T(0);
            a[q * ld + p] = T(0);
          }
        } else {
          const int u = P[l], v = Q[l];
          const T ck = cs[k], sk = sn[k], cl = cs[l], sl = sn[l];
          const T xpu = a[p * ld + u], xpv = a[p * ld + v], xqu = a[q * ld + u], xqv = a[q * ld + v];
          // Rows by R_kᵀ ...
          const T ypu = ck * xpu - sk * xqu, ypv = ck * xpv - sk * xqv;
          const T yqu = sk * xpu + ck * xqu, yqv = sk * xpv + ck * xqv;
          // ... then columns by R_l.
          const T zpu = cl * ypu - sl * ypv, zpv = sl * ypu + cl * ypv;
          const T zqu = cl * yqu - sl * yqv, zqv = sl * yqu + cl * yqv;
          a[p * ld + u] = zpu;
          a[u * ld + p] = zpu;
          a[p * ld + v] = zpv;
          a[v * ld + p] = zpv;
          a[q * ld + u] = zqu;
          a[u * ld + q] = zqu;
          a[q * ld + v] = zqv;
          a[v * ld + q] = zqv;
        }
      }
      __syncthreads();
    }
  }

  // Ascending: each value goes to its rank (n ≤ a few hundred: n² compares per block).
  for (int i = tid; i < n; i += nt) d[i] = a[i * ld + i];
  __syncthreads();
  T* Wb = W + static_cast<int64_t>(blockIdx.x) * n;
  for (int i = tid; i < n; i += nt) {
    const T x = d[i];
    int rank = 0;
    for (int j = 0; j < n; ++j) rank += sorts_before(d[j], j, x, i) ? 1 : 0;
    Wb[rank] = x;
  }
  if (info != nullptr && tid == 0) info[blockIdx.x] = converged ? 0 : 1;
}

// ---- block summary ---------------------------------------------------------------------------

constexpr int kTile = 32, kTileRows = 8;  // 32 × 8 threads per 32 × 32 tile

// Tile (by, bx) of A: Σ (a_ij − a_ji)² and Σ a_ij² over its entries, into partial[tile]
// (two doubles). The transposed tile (bx, by) is staged in shared memory so both reads
// are coalesced; the sums reduce in a fixed order (warp shuffles, then the 8 warps).
template <class T>
__global__ void symmetry_partials_kernel(const T* __restrict__ A, int n, double* __restrict__ partial) {
  __shared__ T tile[kTile][kTile + 1];
  __shared__ double warp_num[kTileRows], warp_den[kTileRows];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int bx = blockIdx.x, by = blockIdx.y;
  for (int r = ty; r < kTile; r += kTileRows) {  // tile[r][c] = A[bx·32 + r][by·32 + c]
    const int row = bx * kTile + r, col = by * kTile + tx;
    tile[r][tx] = (row < n && col < n) ? A[static_cast<int64_t>(row) * n + col] : T(0);
  }
  __syncthreads();
  double num = 0, den = 0;
  for (int r = ty; r < kTile; r += kTileRows) {
    const int i = by * kTile + r, j = bx * kTile + tx;
    if (i < n && j < n) {
      const double a = static_cast<double>(A[static_cast<int64_t>(i) * n + j]);
      const double d = a - static_cast<double>(tile[tx][r]);  // A[j][i]
      num += d * d;
      den += a * a;
    }
  }
  for (int off = 16; off > 0; off >>= 1) {
    num += __shfl_down_sync(0xffffffffu, num, off);
    den += __shfl_down_sync(0xffffffffu, den, off);
  }
  if (tx == 0) {
    warp_num[ty] = num;
    warp_den[ty] = den;
  }
  __syncthreads();
  if (tx == 0 && ty == 0) {
    double sn = 0, sd = 0;
    for (int w = 0; w < kTileRows; ++w) {
      sn += warp_num[w];
      sd += warp_den[w];
    }
    const int64_t t = static_cast<int64_t>(by) * gridDim.x + bx;
    partial[2 * t] = sn;
    partial[2 * t + 1] = sd;
  }
}

template <class T>
__global__ void diagonal_kernel(const T* __restrict__ A, int64_t n, double* __restrict__ d) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) d[i] = static_cast<double>(A[i * n + i]);
}

// ---- cuSOLVER ------------------------------------------------------------------------------

template <class T>
constexpr cudaDataType data_type();
template <>
constexpr cudaDataType data_type<float>() {
  return CUDA_R_32F;
}
template <>
constexpr cudaDataType data_type<double>() {
  return CUDA_R_64F;
}

// Column-major "upper" on a row-major array is its lower triangle: what cn::eigh reads.
constexpr cublasFillMode_t kFill = CUBLAS_FILL_MODE_UPPER;

template <class T>
void syevd_buffer_size(cusolverDnHandle_t h, cusolverDnParams_t params, int64_t n, const T* A, const T* W,
                       size_t* dev_bytes, size_t* host_bytes) {
  constexpr cudaDataType dt = data_type<T>();
  CN_CUSOLVER_CHECK(cusolverDnXsyevd_bufferSize(h, params, CUSOLVER_EIG_MODE_NOVECTOR, kFill, n, dt, A, n, dt, W, dt,
                                                dev_bytes, host_bytes));
}

template <class T>
void syevd(cusolverDnHandle_t h, cusolverDnParams_t params, int64_t n, T* A, T* W, void* dev_ws, size_t dev_bytes,
           void* host_ws, size_t host_bytes, int* info) {
  constexpr cudaDataType dt = data_type<T>();
  CN_CUSOLVER_CHECK(cusolverDnXsyevd(h, params, CUSOLVER_EIG_MODE_NOVECTOR, kFill, n, dt, A, n, dt, W, dt, dev_ws,
                                     dev_bytes, host_ws, host_bytes, info));
}

void check_syev_batched_size(int64_t n, int64_t count) {
  CN_CHECK_MSG(n <= INT32_MAX / n && n * n <= INT32_MAX / count,
               "cusolverDnXsyevBatched needs n·n·count ≤ INT32_MAX; n = " << n << ", count = " << count);
}

template <class T>
void syev_batched_buffer_size(cusolverDnHandle_t h, cusolverDnParams_t params, int64_t n, int64_t count, const T* A,
                              const T* W, size_t* dev_bytes, size_t* host_bytes) {
  constexpr cudaDataType dt = data_type<T>();
  CN_CUSOLVER_CHECK(cusolverDnXsyevBatched_bufferSize(h, params, CUSOLVER_EIG_MODE_NOVECTOR, kFill, n, dt, A, n, dt, W,
                                                      dt, dev_bytes, host_bytes, count));
}

template <class T>
void syev_batched(cusolverDnHandle_t h, cusolverDnParams_t params, int64_t n, int64_t count, T* A, T* W, void* dev_ws,
                  size_t dev_bytes, void* host_ws, size_t host_bytes, int* info) {
  constexpr cudaDataType dt = data_type<T>();
  CN_CUSOLVER_CHECK(cusolverDnXsyevBatched(h, params, CUSOLVER_EIG_MODE_NOVECTOR, kFill, n, dt, A, n, dt, W, dt, dev_ws,
                                           dev_bytes, host_ws, host_bytes, info, count));
}

constexpr size_t kAlign = 256;
inline size_t align_up(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }

// Everything the free eigenvalues_batched_cusolver borrows, given back on every path: the
// handle's stream, a params object, a stream-ordered device block.
struct BorrowedSolverState {
  cusolverDnHandle_t h = nullptr;
  cudaStream_t old_stream = nullptr;
  bool stream_set = false;
  cusolverDnParams_t params = nullptr;
  cudaStream_t s = nullptr;
  void* block = nullptr;
  ~BorrowedSolverState() {
    if (block) CN_CUDA_WARN(cudaFreeAsync(block, s));
    if (params) CN_CUSOLVER_WARN(cusolverDnDestroyParams(params));
    if (stream_set) CN_CUSOLVER_WARN(cusolverDnSetStream(h, old_stream));
  }
};

void require_gpu(const char* who) {
  if (!cuda_available()) throw Error(std::string(who) + ": " + cuda_device_description());
}

}  // namespace

// ---- free functions ------------------------------------------------------------------------

template <class T>
int64_t batched_max_n() {
  int dev = 0, optin = 0;
  CN_CUDA_CHECK(cudaGetDevice(&dev));
  CN_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
  int64_t best = 0;
  for (int n = 1; n <= kJacobiMaxOrder; ++n)
    if (jacobi_layout<T>(n).bytes <= static_cast<size_t>(optin)) best = n;
  return best;
}

template <class T>
void eigenvalues_batched(const T* A_dev, int64_t n, int64_t count, T* W_dev, cudaStream_t stream, int* info_dev) {
  CN_CHECK_MSG(n >= 0 && count >= 0, "eigenvalues_batched: n = " << n << ", count = " << count);
  if (n == 0 || count == 0) return;
  const int64_t max_n = batched_max_n<T>();
  if (n > max_n)
    throw Error("eigenvalues_batched: n = " + std::to_string(n) +
                " does not fit the Jacobi kernel's shared memory (at most " + std::to_string(max_n) + " for " +
                (sizeof(T) == 4 ? "float" : "double") +
                " on this device); use DenseEigenSolver::eigenvalues_batched, which falls back to syevd");
  CN_CHECK_MSG(count <= INT_MAX, "eigenvalues_batched: count = " << count << " exceeds the grid limit");
  const JacobiLayout L = jacobi_layout<T>(static_cast<int>(n));
  // One value for every n: the attribute belongs to the function, and a smaller one set by
  // another thread between this set and this launch would make the launch fail.
  const size_t max_bytes = jacobi_layout<T>(static_cast<int>(max_n)).bytes;
  if (max_bytes > 48 * 1024)
    CN_CUDA_CHECK(cudaFuncSetAttribute(jacobi_eigenvalues_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       static_cast<int>(max_bytes)));
  jacobi_eigenvalues_kernel<T><<<static_cast<unsigned>(count), jacobi_threads(L), L.bytes, stream>>>(
      A_dev, static_cast<int>(n), W_dev, info_dev);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void eigenvalues_batched_cusolver(T* A_dev, int64_t n, int64_t count, T* W_dev, cusolverDnHandle_t h, cudaStream_t s,
                                  int* info_dev) {
  CN_CHECK_MSG(n >= 0 && count >= 0, "eigenvalues_batched_cusolver: n = " << n << ", count = " << count);
  if (n == 0 || count == 0) return;
  check_syev_batched_size(n, count);
  BorrowedSolverState st;
  st.h = h;
  st.s = s;
  CN_CUSOLVER_CHECK(cusolverDnGetStream(h, &st.old_stream));
  CN_CUSOLVER_CHECK(cusolverDnSetStream(h, s));
  st.stream_set = true;
  CN_CUSOLVER_CHECK(cusolverDnCreateParams(&st.params));
  size_t dev_bytes = 0, host_bytes = 0;
  syev_batched_buffer_size<T>(h, st.params, n, count, A_dev, W_dev, &dev_bytes, &host_bytes);
  const size_t ws_bytes = align_up(dev_bytes);
  const size_t info_bytes = info_dev ? 0 : static_cast<size_t>(count) * sizeof(int);
  CN_CUDA_CHECK(cudaMallocAsync(&st.block, ws_bytes + info_bytes + kAlign, s));
  int* info = info_dev ? info_dev : reinterpret_cast<int*>(static_cast<unsigned char*>(st.block) + ws_bytes);
  std::vector<unsigned char> host(host_bytes);
  syev_batched<T>(h, st.params, n, count, A_dev, W_dev, st.block, dev_bytes, host_bytes ? host.data() : nullptr,
                  host_bytes, info);
  // A host workspace must outlive the work that may still read it.
  if (host_bytes > 0) CN_CUDA_CHECK(cudaStreamSynchronize(s));
}

template <class T>
BlockSummary summarize_block(const T* A_dev, int64_t n, cudaStream_t stream) {
  CN_CHECK_MSG(n >= 0 && n <= INT32_MAX / 2, "summarize_block: n = " << n);
  BlockSummary out;
  out.diagonal.assign(static_cast<size_t>(n), 0.0);
  if (n == 0) return out;
  const int64_t tiles = (n + kTile - 1) / kTile;
  const size_t partial_bytes = static_cast<size_t>(2 * tiles * tiles) * sizeof(double);
  const size_t diag_bytes = static_cast<size_t>(n) * sizeof(double);
  void* block = nullptr;
  CN_CUDA_CHECK(cudaMallocAsync(&block, align_up(partial_bytes) + diag_bytes, stream));
  double* partial = static_cast<double*>(block);
  double* diag = reinterpret_cast<double*>(static_cast<unsigned char*>(block) + align_up(partial_bytes));
  std::vector<double> host(static_cast<size_t>(2 * tiles * tiles));
  try {
    symmetry_partials_kernel<T>
        <<<dim3(static_cast<unsigned>(tiles), static_cast<unsigned>(tiles)), dim3(kTile, kTileRows), 0, stream>>>(
            A_dev, static_cast<int>(n), partial);
    CN_CUDA_CHECK(cudaGetLastError());
    diagonal_kernel<T><<<static_cast<unsigned>((n + 255) / 256), 256, 0, stream>>>(A_dev, n, diag);
    CN_CUDA_CHECK(cudaGetLastError());
    CN_CUDA_CHECK(cudaMemcpyAsync(host.data(), partial, partial_bytes, cudaMemcpyDeviceToHost, stream));
    CN_CUDA_CHECK(cudaMemcpyAsync(out.diagonal.data(), diag, diag_bytes, cudaMemcpyDeviceToHost, stream));
    CN_CUDA_CHECK(cudaStreamSynchronize(stream));
  } catch (...) {
    CN_CUDA_WARN(cudaFreeAsync(block, stream));
    throw;
  }
  CN_CUDA_CHECK(cudaFreeAsync(block, stream));
  double num = 0, den = 0;
  for (int64_t t = 0; t < tiles * tiles; ++t) {
    num += host[static_cast<size_t>(2 * t)];
    den += host[static_cast<size_t>(2 * t + 1)];
  }
  out.symmetry_residual = den > 0 ? std::sqrt(num / den) : 0.0;
  return out;
}

// ---- DenseEigenSolver ----------------------------------------------------------------------

DenseEigenSolver::DenseEigenSolver() { create(nullptr, true); }

DenseEigenSolver::DenseEigenSolver(cudaStream_t stream) { create(stream, false); }

void DenseEigenSolver::create(cudaStream_t stream, bool own_stream) {
  require_gpu("DenseEigenSolver");
  stream_ = stream;
  try {
    if (own_stream) {
      CN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
      owns_stream_ = true;
    }
    CN_CUSOLVER_CHECK(cusolverDnCreate(&handle_));
    CN_CUSOLVER_CHECK(cusolverDnSetStream(handle_, stream_));
    CN_CUSOLVER_CHECK(cusolverDnCreateParams(&params_));
  } catch (...) {
    release();
    throw;
  }
}

DenseEigenSolver::~DenseEigenSolver() { release(); }

void DenseEigenSolver::release() noexcept {
  for (DeviceBlock* b : {&work_, &copy_, &info_, &values_})
    if (b->ptr) {
      CN_CUDA_WARN(cudaFreeAsync(b->ptr, stream_));
      b->ptr = nullptr;
      b->bytes = 0;
    }
  // Nothing queued here may outlive the handle and the stream.
  if (owns_stream_ || handle_) CN_CUDA_WARN(cudaStreamSynchronize(stream_));
  if (params_) CN_CUSOLVER_WARN(cusolverDnDestroyParams(params_));
  params_ = nullptr;
  if (handle_) CN_CUSOLVER_WARN(cusolverDnDestroy(handle_));
  handle_ = nullptr;
  if (owns_stream_ && stream_) CN_CUDA_WARN(cudaStreamDestroy(stream_));
  stream_ = nullptr;
  owns_stream_ = false;
}

void DenseEigenSolver::synchronize() { CN_CUDA_CHECK(cudaStreamSynchronize(stream_)); }

void* DenseEigenSolver::grow(DeviceBlock& b, size_t bytes) {
  if (b.ptr && bytes <= b.bytes) return b.ptr;
  // Stream-ordered: freed after the work already queued here that uses it; no device-wide
  // synchronisation (cudaFree would wait for the training stream too).
  if (b.ptr) CN_CUDA_CHECK(cudaFreeAsync(b.ptr, stream_));
  b.ptr = nullptr;
  b.bytes = 0;
  const size_t size = align_up(bytes < kAlign ? kAlign : bytes);
  CN_CUDA_CHECK(cudaMallocAsync(&b.ptr, size, stream_));
  b.bytes = size;
  return b.ptr;
}

void* DenseEigenSolver::host_workspace(size_t bytes) {
  if (bytes == 0) return nullptr;
  if (bytes > host_work_.size()) {
    synchronize();  // an earlier call may still read the old buffer
    host_work_.resize(bytes);
  }
  return host_work_.data();
}

int DenseEigenSolver::read_max_info(const int* info_dev, int64_t count) {
  host_info_.resize(static_cast<size_t>(count));
  CN_CUDA_CHECK(cudaMemcpyAsync(host_info_.data(), info_dev, static_cast<size_t>(count) * sizeof(int),
                                cudaMemcpyDeviceToHost, stream_));
  synchronize();
  int worst = 0;
  for (int64_t b = 0; b < count; ++b) {
    const int v = host_info_[static_cast<size_t>(b)];
    if (v < 0)
      throw Error("cuSOLVER eigensolver: argument " + std::to_string(-v) + " is invalid (block " + std::to_string(b) +
                  ")");
    if (v > worst) worst = v;
  }
  return worst;
}

template <class T>
int DenseEigenSolver::eigenvalues(T* A_dev, int64_t n, T* W_dev) {
  CN_CHECK_MSG(n >= 0, "DenseEigenSolver::eigenvalues: n = " << n);
  if (n == 0) return 0;
  size_t dev_bytes = 0, host_bytes = 0;
  syevd_buffer_size<T>(handle_, params_, n, A_dev, W_dev, &dev_bytes, &host_bytes);
  void* ws = grow(work_, dev_bytes);
  int* info = static_cast<int*>(grow(info_, sizeof(int)));
  void* hw = host_workspace(host_bytes);
  syevd<T>(handle_, params_, n, A_dev, W_dev, ws, dev_bytes, hw, host_bytes, info);
  return read_max_info(info, 1);
}

template <class T>
int DenseEigenSolver::eigenvalues_looped(T* A_dev, int64_t n, int64_t count, T* W_dev) {
  CN_CHECK_MSG(n >= 0 && count >= 0, "DenseEigenSolver::eigenvalues_looped: n = " << n << ", count = " << count);
  if (n == 0 || count == 0) return 0;
  size_t dev_bytes = 0, host_bytes = 0;
  syevd_buffer_size<T>(handle_, params_, n, A_dev, W_dev, &dev_bytes, &host_bytes);
  void* ws = grow(work_, dev_bytes);
  int* info = static_cast<int*>(grow(info_, static_cast<size_t>(count) * sizeof(int)));
  void* hw = host_workspace(host_bytes);
  for (int64_t b = 0; b < count; ++b)
    syevd<T>(handle_, params_, n, A_dev + b * n * n, W_dev + b * n, ws, dev_bytes, hw, host_bytes, info + b);
  return read_max_info(info, count);
}

template <class T>
int DenseEigenSolver::eigenvalues_batched(const T* A_dev, int64_t n, int64_t count, T* W_dev) {
  CN_CHECK_MSG(n >= 0 && count >= 0, "DenseEigenSolver::eigenvalues_batched: n = " << n << ", count = " << count);
  if (n == 0 || count == 0) return 0;
  if (n <= batched_max_n<T>()) {
    int* info = static_cast<int*>(grow(info_, static_cast<size_t>(count) * sizeof(int)));
    cn::cuda::eigenvalues_batched<T>(A_dev, n, count, W_dev, stream_, info);
    return read_max_info(info, count);
  }
  // Too large for one block's shared memory: syevd per block on a copy (A stays intact).
  const size_t bytes = static_cast<size_t>(count) * static_cast<size_t>(n * n) * sizeof(T);
  T* copy = static_cast<T*>(grow(copy_, bytes));
  CN_CUDA_CHECK(cudaMemcpyAsync(copy, A_dev, bytes, cudaMemcpyDeviceToDevice, stream_));
  return eigenvalues_looped<T>(copy, n, count, W_dev);
}

template <class T>
int DenseEigenSolver::eigenvalues_batched_cusolver(T* A_dev, int64_t n, int64_t count, T* W_dev) {
  CN_CHECK_MSG(n >= 0 && count >= 0,
               "DenseEigenSolver::eigenvalues_batched_cusolver: n = " << n << ", count = " << count);
  if (n == 0 || count == 0) return 0;
  check_syev_batched_size(n, count);
  size_t dev_bytes = 0, host_bytes = 0;
  syev_batched_buffer_size<T>(handle_, params_, n, count, A_dev, W_dev, &dev_bytes, &host_bytes);
  void* ws = grow(work_, dev_bytes);
  int* info = static_cast<int*>(grow(info_, static_cast<size_t>(count) * sizeof(int)));
  void* hw = host_workspace(host_bytes);
  syev_batched<T>(handle_, params_, n, count, A_dev, W_dev, ws, dev_bytes, hw, host_bytes, info);
  return read_max_info(info, count);
}

template <class T>
int DenseEigenSolver::eigenvalues_to_host(T* A_dev, int64_t n, bool jacobi, T* W_host) {
  CN_CHECK_MSG(n >= 0, "DenseEigenSolver::eigenvalues_to_host: n = " << n);
  if (n == 0) return 0;
  T* W = static_cast<T*>(grow(values_, static_cast<size_t>(n) * sizeof(T)));
  const int info = jacobi ? eigenvalues_batched<T>(A_dev, n, 1, W) : eigenvalues<T>(A_dev, n, W);
  // Both waited for this stream (reading info), so the values are complete.
  CN_CUDA_CHECK(cudaMemcpyAsync(W_host, W, static_cast<size_t>(n) * sizeof(T), cudaMemcpyDeviceToHost, stream_));
  synchronize();
  return info;
}

#define CN_EIGEN_INSTANTIATE(T)                                                                                    \
  template int64_t batched_max_n<T>();                                                                             \
  template void eigenvalues_batched<T>(const T*, int64_t, int64_t, T*, cudaStream_t, int*);                        \
  template void eigenvalues_batched_cusolver<T>(T*, int64_t, int64_t, T*, cusolverDnHandle_t, cudaStream_t, int*); \
  template int DenseEigenSolver::eigenvalues<T>(T*, int64_t, T*);                                                  \
  template int DenseEigenSolver::eigenvalues_looped<T>(T*, int64_t, int64_t, T*);                                  \
  template int DenseEigenSolver::eigenvalues_batched<T>(const T*, int64_t, int64_t, T*);                           \
  template int DenseEigenSolver::eigenvalues_batched_cusolver<T>(T*, int64_t, int64_t, T*);                        \
  template int DenseEigenSolver::eigenvalues_to_host<T>(T*, int64_t, bool, T*);                                    \
  template BlockSummary summarize_block<T>(const T*, int64_t, cudaStream_t);
CN_EIGEN_INSTANTIATE(float)
CN_EIGEN_INSTANTIATE(double)
#undef CN_EIGEN_INSTANTIATE

}  // namespace cn::cuda
