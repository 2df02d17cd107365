// Symmetric eigenvalue solvers on the GPU for the curvature diagnostics (the CPU reference
// is diagnostics/eigen.h). All matrices are row-major and symmetric; like cn::eigh, every
// solver reads the lower triangle of the row-major array only (column-major "upper" in
// cuSOLVER's terms), so a matrix that is symmetric only to rounding gives the same answer
// on both backends. Eigenvalues are returned ascending.
//
//   DenseEigenSolver       cusolverDnXsyevd on one large matrix (or a loop over blocks), on
//                          its own cuSOLVER handle, stream and workspace, so a worker thread
//                          can run it while another thread trains on the context's stream
//   eigenvalues_batched    many small blocks at once: one thread block per matrix, parallel
//                          cyclic Jacobi in shared memory (kernels/cuda/eigen.cu)
//   eigenvalues_batched_cusolver
//                          cuSOLVER's own batched path (cusolverDnXsyevBatched), for comparison
//
// Plain C++ (no kernels): .cpp files may include it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels/cuda/check.cuh"

namespace cn::cuda {

// Jacobi sweeps after which eigenvalues_batched gives up on a block (info 1).
constexpr int kJacobiMaxSweeps = 30;

// The largest n that eigenvalues_batched accepts on the current device: the n×n block
// (padded to even order, one spare column against bank conflicts) plus its rotation tables
// must fit in one thread block's opt-in shared memory (227 KiB on an H100: n = 230 for
// float, 164 for double; 163 KiB on an A100: 196 and 140).
template <class T>
int64_t batched_max_n();

// Eigenvalues of `count` symmetric n×n blocks stored back to back (block b at
// A_dev + b*n*n) into W_dev (count×n, block b ascending at b*n), asynchronously on `stream`.
// A is not modified. Stops a block when its off-diagonal Frobenius norm is at most
// eps·‖A‖_F (eps of T), or after kJacobiMaxSweeps sweeps. With info_dev (count ints on the
// device), info_dev[b] = 0 when block b converged, 1 when it did not. Throws cn::Error when
// n > batched_max_n<T>() (DenseEigenSolver::eigenvalues_batched falls back to syevd there).
template <class T>
void eigenvalues_batched(const T* A_dev, int64_t n, int64_t count, T* W_dev, cudaStream_t stream,
                         int* info_dev = nullptr);

// The same with cusolverDnXsyevBatched on handle h, run on stream s (the handle's own
// stream is restored afterwards). A is overwritten. Workspace is taken from the
// stream-ordered allocator (cudaMallocAsync) for the call. With info_dev (count ints on the
// device) the per-block LAPACK info is left there; without it, it is discarded.
// cuSOLVER requires n·n·count ≤ INT32_MAX.
template <class T>
void eigenvalues_batched_cusolver(T* A_dev, int64_t n, int64_t count, T* W_dev, cusolverDnHandle_t h, cudaStream_t s,
                                  int* info_dev = nullptr);

// What a curvature checkpoint needs of a dense block before its solve, read on the device
// so the p × p matrix never crosses the bus: its diagonal and its symmetry residual
// ‖A − Aᵀ‖_F / ‖A‖_F (0 for the zero matrix; cn::symmetry_residual's definition). The sums
// are per 32 × 32 tile on the device and added in a fixed order on the host, so the result
// repeats exactly. Waits for `stream` (A must be complete in its order).
struct BlockSummary {
  double symmetry_residual = 0;
  std::vector<double> diagonal;  // n values
};
template <class T>
BlockSummary summarize_block(const T* A_dev, int64_t n, cudaStream_t stream);

// A cuSOLVER handle, a stream and a device workspace of its own. Not shared between
// threads: one solver per thread; two solvers on two threads run concurrently. The
// workspace grows (stream-ordered, cudaMallocAsync) and is never shrunk; it is freed with
// the solver. Every method waits for its own stream before it returns (it reads cuSOLVER's
// info back), so its results may be read by any stream afterwards. Inputs written on another
// stream must be complete before a call (e.g. synchronise that stream first).
class DenseEigenSolver {
 public:
  // Its own non-blocking stream: never ordered with the context's stream, so it neither
  // waits for training work nor holds it up.
  DenseEigenSolver();
  // Work goes to `stream` (which the caller keeps alive and destroys).
  explicit DenseEigenSolver(cudaStream_t stream);
  DenseEigenSolver(const DenseEigenSolver&) = delete;
  DenseEigenSolver& operator=(const DenseEigenSolver&) = delete;
  ~DenseEigenSolver();

  cudaStream_t stream() const { return stream_; }
  cusolverDnHandle_t handle() const { return handle_; }
  void synchronize();

  // Eigenvalues of the symmetric n×n matrix A (device) into W (device, n), ascending, with
  // cusolverDnXsyevd (no eigenvectors). A is overwritten. Returns LAPACK's info (0 = success,
  // > 0 = did not converge); throws cn::Error for a cuSOLVER failure or info < 0.
  template <class T>
  int eigenvalues(T* A_dev, int64_t n, T* W_dev);

  // `count` blocks as eigenvalues_batched (A not modified): the Jacobi kernel on this
  // solver's stream when n ≤ batched_max_n<T>(), else a copy of A and one syevd per block.
  // Returns the largest info over the blocks.
  template <class T>
  int eigenvalues_batched(const T* A_dev, int64_t n, int64_t count, T* W_dev);

  // One cusolverDnXsyevd per block, in place (A overwritten). Returns the largest info.
  template <class T>
  int eigenvalues_looped(T* A_dev, int64_t n, int64_t count, T* W_dev);

  // cusolverDnXsyevBatched on this solver's handle and workspace, in place (A overwritten).
  // Returns the largest info.
  template <class T>
  int eigenvalues_batched_cusolver(T* A_dev, int64_t n, int64_t count, T* W_dev);

  // One block's eigenvalues into host memory (W_host, n values, ascending): the Jacobi
  // kernel (`jacobi`; A intact) or syevd (A overwritten), on this solver's stream. Returns
  // the solver's info (0 = converged).
  template <class T>
  int eigenvalues_to_host(T* A_dev, int64_t n, bool jacobi, T* W_host);

 private:
  struct DeviceBlock {
    void* ptr = nullptr;
    size_t bytes = 0;
  };
  // The constructors' work: a new non-blocking stream (own_stream) or `stream`, then the
  // cuSOLVER handle and parameters; a failure releases what was made and rethrows.
  void create(cudaStream_t stream, bool own_stream);
  void release() noexcept;  // the destructor's work; also undoes a constructor that failed
  void* grow(DeviceBlock& b, size_t bytes);
  void* host_workspace(size_t bytes);
  int read_max_info(const int* info_dev, int64_t count);

  cudaStream_t stream_ = nullptr;
  bool owns_stream_ = false;
  cusolverDnHandle_t handle_ = nullptr;
  cusolverDnParams_t params_ = nullptr;
  DeviceBlock work_, copy_, info_, values_;
  std::vector<unsigned char> host_work_;
  std::vector<int> host_info_;
};

}  // namespace cn::cuda
