// The GPU eigensolvers (kernels/cuda/eigen.h) against LAPACK on the CPU (cn::eigh,
// cn::eigh_batched): fresh random symmetric matrices, low-rank PSD matrices (many zero
// eigenvalues) and matrices with repeated eigenvalues, float32 and float64.
//
// Metric, per block: max_i |λ_gpu,i − λ_ref,i| / max_i |λ_ref,i|. The reference is LAPACK in
// double precision on the very matrix the GPU sees (a float matrix promoted exactly to
// double), so only the GPU's own rounding is measured. Tolerance: 200 · eps(T) · sqrt(n).
// Why: Jacobi and syevd are backward stable, the computed eigenvalues being exact for
// A + E with ‖E‖_2 ≲ c · eps · ‖A‖_F and ‖A‖_F ≤ sqrt(n) · max|λ|; c grows with the number
// of sweeps (up to ~20 for clustered spectra) and the rounding of each rotation. Typical
// errors are a few eps·sqrt(n), so 200 leaves room for other hardware and libraries while
// a real bug (a wrong rotation, a missed block, an unsorted output) is off by O(1).
// W is poisoned with NaN before every call: every value must be written.
// Skipped, with the reason, when no CUDA device is visible; compiled only in builds with
// the CUDA backend.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "diagnostics/eigen.h"

#ifdef CURVNET_HAVE_CUDA
#include "core/error.h"
#include "core/memory.h"
#include "cuda_test_util.h"
#include "diagnostics/eigen.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/eigen.h"
#include "kernels/ops.h"

using namespace cn;

namespace {

template <class T>
double tolerance(int64_t n) {
  return 200.0 * static_cast<double>(std::numeric_limits<T>::epsilon()) *
         std::sqrt(static_cast<double>(std::max<int64_t>(n, 1)));
}

// ---- test matrices (built in double, row-major, exactly symmetric) ------------------------

std::vector<double> random_symmetric(int64_t n, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> A(static_cast<size_t>(count * n * n));
  for (int64_t b = 0; b < count; ++b) {
    double* a = A.data() + b * n * n;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) a[i * n + j] = a[j * n + i] = nd(rng);
  }
  return A;
}

// B Bᵀ with B n×r: rank r, n − r zero eigenvalues.
std::vector<double> low_rank_psd(int64_t n, int64_t r, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> A(static_cast<size_t>(count * n * n)), B(static_cast<size_t>(n * r));
  for (int64_t b = 0; b < count; ++b) {
    for (auto& x : B) x = nd(rng);
    double* a = A.data() + b * n * n;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0;
        for (int64_t k = 0; k < r; ++k) s += B[i * r + k] * B[j * r + k];
        a[i * n + j] = a[j * n + i] = s;
      }
  }
  return A;
}

// Q diag(d) Qᵀ with Q orthogonal (Gram-Schmidt, twice, on a Gaussian matrix) and d taking
// three values, each about n/3 times. `exact` gets the sorted d of every block.
std::vector<double> repeated_eigenvalues(int64_t n, int64_t count, uint32_t seed, std::vector<double>* exact) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<double> A(static_cast<size_t>(count * n * n)), Q(static_cast<size_t>(n * n));
  std::vector<double> d(static_cast<size_t>(n));
  const double levels[3] = {-1.0, 0.5, 2.0};
  for (int64_t i = 0; i < n; ++i) d[static_cast<size_t>(i)] = levels[i % 3];
  exact->clear();
  for (int64_t b = 0; b < count; ++b) {
    for (auto& x : Q) x = nd(rng);
    for (int64_t j = 0; j < n; ++j)  // column j of Q
      for (int pass = 0; pass < 2; ++pass) {
        for (int64_t k = 0; k < j; ++k) {
          double s = 0;
          for (int64_t i = 0; i < n; ++i) s += Q[i * n + k] * Q[i * n + j];
          for (int64_t i = 0; i < n; ++i) Q[i * n + j] -= s * Q[i * n + k];
        }
        double s = 0;
        for (int64_t i = 0; i < n; ++i) s += Q[i * n + j] * Q[i * n + j];
        s = std::sqrt(s);
        for (int64_t i = 0; i < n; ++i) Q[i * n + j] /= s;
      }
    double* a = A.data() + b * n * n;
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) {
        double s = 0;
        for (int64_t k = 0; k < n; ++k) s += Q[i * n + k] * d[static_cast<size_t>(k)] * Q[j * n + k];
        a[i * n + j] = a[j * n + i] = s;
      }
    std::vector<double> ds = d;
    std::sort(ds.begin(), ds.end());
    exact->insert(exact->end(), ds.begin(), ds.end());
  }
  return A;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  std::vector<T> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<T>(v[i]);
  return out;
}

// LAPACK (double) on exactly the matrices the GPU gets.
template <class T>
std::vector<double> reference(const std::vector<T>& A, int64_t n, int64_t count) {
  std::vector<double> Ad(A.begin(), A.end());
  BatchedEigResult<double> r = eigh_batched<double>(Ad.data(), n, count);
  EXPECT_EQ(r.max_info(), 0);
  return r.values;
}

// max over blocks of max_i |got − want| / max_i |want|; infinity when a value is not finite.
template <class T>
double rel_error(const std::vector<T>& got, const std::vector<double>& want, int64_t n, int64_t count) {
  double worst = 0;
  for (int64_t b = 0; b < count; ++b) {
    double err = 0, scale = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double g = static_cast<double>(got[static_cast<size_t>(b * n + i)]);
      const double w = want[static_cast<size_t>(b * n + i)];
      if (!std::isfinite(g)) return INFINITY;
      err = std::max(err, std::fabs(g - w));
      scale = std::max(scale, std::fabs(w));
    }
    worst = std::max(worst, scale > 0 ? err / scale : err);
  }
  return worst;
}

template <class T>
int64_t count_nonfinite(const std::vector<T>& v) {
  return std::count_if(v.begin(), v.end(), [](T x) { return !std::isfinite(x); });
}

// Device arrays on the context's stream; upload() waits, so work on another stream may
// read them at once.
template <class T>
Buffer<T> upload(const std::vector<T>& h) {
  Buffer<T> d(static_cast<int64_t>(h.size()), Device::cuda);
  device_copy(Device::cuda, d.data(), Device::cpu, h.data(), h.size() * sizeof(T));
  cuda::context().synchronize();
  return d;
}
template <class T>
std::vector<T> download(const Buffer<T>& d) {
  std::vector<T> h(static_cast<size_t>(d.size()));
  device_copy(Device::cpu, h.data(), Device::cuda, d.data(), h.size() * sizeof(T));
  return h;
}
template <class T>
Buffer<T> poisoned(int64_t size) {
  return upload(std::vector<T>(static_cast<size_t>(size), std::numeric_limits<T>::quiet_NaN()));
}

template <class T>
class CudaEigen : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaEigen, Types);

// The Jacobi kernel on the context's stream: values, info, A left intact.
template <class T>
void check_jacobi(const std::vector<T>& A, int64_t n, int64_t count, const std::vector<double>& want,
                  const std::string& what) {
  Buffer<T> Ad = upload(A), W = poisoned<T>(n * count);
  Buffer<int> info = upload(std::vector<int>(static_cast<size_t>(count), -7));
  cuda::eigenvalues_batched<T>(Ad.data(), n, count, W.data(), cuda::context().stream(), info.data());
  const std::vector<T> got = download(W);
  EXPECT_EQ(count_nonfinite(got), 0) << what;
  EXPECT_LE(rel_error(got, want, n, count), tolerance<T>(n)) << what;
  const std::vector<int> inf = download(info);
  EXPECT_EQ(*std::max_element(inf.begin(), inf.end()), 0) << what << ": a block did not converge";
  EXPECT_EQ(*std::min_element(inf.begin(), inf.end()), 0) << what << ": info not written";
  EXPECT_EQ(download(Ad), A) << what << ": A was modified";
}

TYPED_TEST(CudaEigen, BatchedJacobiRandom) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  uint32_t seed = 100;
  for (int64_t n : {1, 2, 7, 32, 33, 65, 96})
    for (int64_t count : {1, 5, 64}) {
      const std::vector<T> A = cast<T>(random_symmetric(n, count, ++seed));
      check_jacobi<T>(A, n, count, reference(A, n, count),
                      "n=" + std::to_string(n) + " count=" + std::to_string(count));
    }
}

TYPED_TEST(CudaEigen, BatchedJacobiLowRankPsd) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  uint32_t seed = 200;
  for (int64_t n : {7, 33, 65, 96}) {
    const int64_t count = 5, r = std::max<int64_t>(1, n / 4);
    const std::vector<T> A = cast<T>(low_rank_psd(n, r, count, ++seed));
    check_jacobi<T>(A, n, count, reference(A, n, count), "low rank n=" + std::to_string(n));
  }
}

TYPED_TEST(CudaEigen, BatchedJacobiRepeatedEigenvalues) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  uint32_t seed = 300;
  for (int64_t n : {7, 33, 65, 96}) {
    const int64_t count = 5;
    std::vector<double> exact;
    const std::vector<T> A = cast<T>(repeated_eigenvalues(n, count, ++seed, &exact));
    const std::vector<double> ref = reference(A, n, count);
    // The construction itself (and the rounding to T) is accurate to ~eps sqrt(n).
    EXPECT_LE(rel_error(ref, exact, n, count), tolerance<T>(n)) << "test matrix n=" << n;
    check_jacobi<T>(A, n, count, ref, "repeated n=" + std::to_string(n));
  }
}

// The largest block the kernel takes (dynamic shared memory above the 48 KiB default), and
// one more: the free function refuses it, the solver falls back to syevd per block.
TYPED_TEST(CudaEigen, BatchedLargestBlock) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t max_n = cuda::batched_max_n<T>();
  ASSERT_GE(max_n, 96) << "96×96 doubles should fit on any supported GPU";
  const int64_t count = 3;
  const std::vector<T> A = cast<T>(random_symmetric(max_n, count, 400));
  check_jacobi<T>(A, max_n, count, reference(A, max_n, count), "n=max_n=" + std::to_string(max_n));

  const int64_t n = max_n + 1;
  const std::vector<T> B = cast<T>(random_symmetric(n, count, 401));
  Buffer<T> Bd = upload(B), W = poisoned<T>(n * count);
  EXPECT_THROW(cuda::eigenvalues_batched<T>(Bd.data(), n, count, W.data(), cuda::context().stream()), cn::Error);
  cuda::DenseEigenSolver solver;
  EXPECT_EQ(solver.eigenvalues_batched<T>(Bd.data(), n, count, W.data()), 0);
  const std::vector<T> got = download(W);
  EXPECT_EQ(count_nonfinite(got), 0);
  EXPECT_LE(rel_error(got, reference(B, n, count), n, count), tolerance<T>(n));
  EXPECT_EQ(download(Bd), B) << "the fallback must leave A intact";
}

TYPED_TEST(CudaEigen, BatchedCusolver) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  uint32_t seed = 500;
  cuda::DenseEigenSolver solver;
  for (int64_t n : {7, 33, 65})
    for (int64_t count : {1, 5, 64}) {
      const std::string what = "n=" + std::to_string(n) + " count=" + std::to_string(count);
      const std::vector<T> A = cast<T>(random_symmetric(n, count, ++seed));
      const std::vector<double> want = reference(A, n, count);
      {  // the free function on the context's handle and stream
        Buffer<T> Ad = upload(A), W = poisoned<T>(n * count);
        Buffer<int> info = upload(std::vector<int>(static_cast<size_t>(count), -7));
        cuda::Context& ctx = cuda::context();
        cuda::eigenvalues_batched_cusolver<T>(Ad.data(), n, count, W.data(), ctx.cusolver(), ctx.stream(), info.data());
        const std::vector<T> got = download(W);
        EXPECT_EQ(count_nonfinite(got), 0) << what;
        EXPECT_LE(rel_error(got, want, n, count), tolerance<T>(n)) << what;
        const std::vector<int> inf = download(info);
        EXPECT_EQ(*std::max_element(inf.begin(), inf.end()), 0) << what;
        EXPECT_EQ(*std::min_element(inf.begin(), inf.end()), 0) << what;
      }
      {  // the solver's own
        Buffer<T> Ad = upload(A), W = poisoned<T>(n * count);
        EXPECT_EQ(solver.eigenvalues_batched_cusolver<T>(Ad.data(), n, count, W.data()), 0) << what;
        const std::vector<T> got = download(W);
        EXPECT_EQ(count_nonfinite(got), 0) << what;
        EXPECT_LE(rel_error(got, want, n, count), tolerance<T>(n)) << what;
      }
    }
}

TYPED_TEST(CudaEigen, SolverDense) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  cuda::DenseEigenSolver own;                               // its own stream
  cuda::DenseEigenSolver shared(cuda::context().stream());  // the context's stream
  uint32_t seed = 600;
  for (cuda::DenseEigenSolver* solver : {&own, &shared})
    for (int64_t n : {1, 50, 300}) {
      const std::vector<T> A = cast<T>(random_symmetric(n, 1, ++seed));
      std::vector<double> Ad(A.begin(), A.end());
      const EigResult<double> ref = eigh<double>(Ad.data(), n);
      Buffer<T> Adev = upload(A), W = poisoned<T>(n);
      EXPECT_EQ(solver->eigenvalues<T>(Adev.data(), n, W.data()), 0) << "n=" << n;
      const std::vector<T> got = download(W);
      EXPECT_EQ(count_nonfinite(got), 0) << "n=" << n;
      EXPECT_LE(rel_error(got, ref.values, n, 1), tolerance<T>(n)) << "n=" << n;
    }
}

TYPED_TEST(CudaEigen, SolverLoopedAndBatched) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t n = 33, count = 5;
  const std::vector<T> A = cast<T>(random_symmetric(n, count, 700));
  const std::vector<double> want = reference(A, n, count);
  cuda::DenseEigenSolver solver;
  {
    Buffer<T> Ad = upload(A), W = poisoned<T>(n * count);
    EXPECT_EQ(solver.eigenvalues_looped<T>(Ad.data(), n, count, W.data()), 0);
    const std::vector<T> got = download(W);
    EXPECT_EQ(count_nonfinite(got), 0);
    EXPECT_LE(rel_error(got, want, n, count), tolerance<T>(n));
  }
  {
    Buffer<T> Ad = upload(A), W = poisoned<T>(n * count);
    EXPECT_EQ(solver.eigenvalues_batched<T>(Ad.data(), n, count, W.data()), 0);
    const std::vector<T> got = download(W);
    EXPECT_EQ(count_nonfinite(got), 0);
    EXPECT_LE(rel_error(got, want, n, count), tolerance<T>(n));
  }
}

// Two solvers, two threads, at the same time: each restores its matrix from a pristine
// device copy on its own stream and solves it several times (syevd and the batched Jacobi).
TYPED_TEST(CudaEigen, TwoSolversOnTwoThreads) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  struct Job {
    int64_t n = 0, bn = 65, count = 64;
    std::vector<T> A, B;  // one dense matrix; `count` blocks of 65×65
    std::vector<double> want_A, want_B;
    Buffer<T> A0, Awork, WA, B0, WB;
    double err_A = INFINITY, err_B = INFINITY;
    int worst_info = -1;
    std::string error;
  };
  Job jobs[2];
  const int64_t sizes[2] = {300, 200};
  for (int j = 0; j < 2; ++j) {
    Job& job = jobs[j];
    job.n = sizes[j];
    job.A = cast<T>(random_symmetric(job.n, 1, 800 + j));
    std::vector<double> Ad(job.A.begin(), job.A.end());
    job.want_A = eigh<double>(Ad.data(), job.n).values;
    job.B = cast<T>(random_symmetric(job.bn, job.count, 810 + j));
    job.want_B = reference(job.B, job.bn, job.count);
    job.A0 = upload(job.A);
    job.Awork = poisoned<T>(job.n * job.n);
    job.WA = poisoned<T>(job.n);
    job.B0 = upload(job.B);
    job.WB = poisoned<T>(job.bn * job.count);
  }
  auto work = [](Job* job) {
    try {
      cuda::DenseEigenSolver solver;
      cudaStream_t s = solver.stream();
      int worst = 0;
      for (int rep = 0; rep < 4; ++rep) {
        const size_t bytes = static_cast<size_t>(job->n * job->n) * sizeof(T);
        CN_CUDA_CHECK(cudaMemcpyAsync(job->Awork.data(), job->A0.data(), bytes, cudaMemcpyDeviceToDevice, s));
        // All-ones bytes are a NaN in float and in double.
        CN_CUDA_CHECK(cudaMemsetAsync(job->WA.data(), 0xff, static_cast<size_t>(job->n) * sizeof(T), s));
        CN_CUDA_CHECK(cudaMemsetAsync(job->WB.data(), 0xff, static_cast<size_t>(job->bn * job->count) * sizeof(T), s));
        worst = std::max(worst, solver.eigenvalues<T>(job->Awork.data(), job->n, job->WA.data()));
        worst = std::max(worst, solver.eigenvalues_batched<T>(job->B0.data(), job->bn, job->count, job->WB.data()));
      }
      job->worst_info = worst;
    } catch (const std::exception& e) {
      job->error = e.what();
    }
  };
  std::thread t0(work, &jobs[0]), t1(work, &jobs[1]);
  t0.join();
  t1.join();
  for (int j = 0; j < 2; ++j) {
    Job& job = jobs[j];
    ASSERT_TRUE(job.error.empty()) << "thread " << j << ": " << job.error;
    EXPECT_EQ(job.worst_info, 0) << "thread " << j;
    EXPECT_LE(rel_error(download(job.WA), job.want_A, job.n, 1), tolerance<T>(job.n)) << "thread " << j;
    EXPECT_LE(rel_error(download(job.WB), job.want_B, job.bn, job.count), tolerance<T>(job.bn)) << "thread " << j;
  }
}

// The block summary a checkpoint reads on the device against cn::symmetry_residual and the
// diagonal on the host: a symmetric block (residual 0 exactly: every tile sums zeros), a
// perturbed one, a rank-deficient one, widths that are not multiples of the 32-wide tile.
TYPED_TEST(CudaEigen, BlockSummaryMatchesTheHost) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  for (int64_t n : {1, 33, 100, 257}) {
    std::vector<T> sym = cast<T>(random_symmetric(n, 1, 900 + static_cast<uint32_t>(n)));
    std::vector<T> skew = sym;
    std::mt19937 rng(7);
    std::normal_distribution<double> nd(0.0, 1e-3);
    for (auto& v : skew) v += static_cast<T>(nd(rng));
    std::vector<T> deficient = cast<T>(low_rank_psd(n, std::max<int64_t>(1, n / 4), 1, 950));
    for (const std::vector<T>* A : {&sym, &skew, &deficient}) {
      const std::string what = "n=" + std::to_string(n) +
                               (A == &sym    ? " symmetric"
                                : A == &skew ? " skew"
                                             : " low rank");
      const Buffer<T> Ad = upload(*A);
      const cuda::BlockSummary s = cuda::summarize_block<T>(Ad.data(), n, cuda::context().stream());
      const double want = symmetry_residual<T>(A->data(), n);
      if (A == &skew && n > 1)
        EXPECT_NEAR(s.symmetry_residual, want, 1e-12 * want) << what;
      else
        EXPECT_EQ(s.symmetry_residual, 0.0) << what;
      ASSERT_EQ(static_cast<int64_t>(s.diagonal.size()), n) << what;
      for (int64_t i = 0; i < n; ++i) EXPECT_EQ(s.diagonal[i], static_cast<double>((*A)[i * n + i])) << what;
      // Deterministic: the same bits again.
      EXPECT_EQ(cuda::summarize_block<T>(Ad.data(), n, cuda::context().stream()).symmetry_residual, s.symmetry_residual)
          << what;
    }
  }
}

// One block to the host by either solver (the policy's two choices), rank-deficient blocks
// included: both against LAPACK.
TYPED_TEST(CudaEigen, EigenvaluesToHostEitherSolver) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  cuda::DenseEigenSolver solver(cuda::context().stream());
  for (int64_t n : {40, 120, 300}) {
    const std::vector<T> A = cast<T>(low_rank_psd(n, n / 3, 1, 960 + static_cast<uint32_t>(n)));
    const std::vector<double> want = reference(A, n, 1);
    for (bool jacobi : {true, false}) {
      if (jacobi && n > cuda::batched_max_n<T>()) continue;
      const std::string what = "n=" + std::to_string(n) + (jacobi ? " jacobi" : " syevd");
      Buffer<T> Ad = upload(A);
      std::vector<T> got(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN());
      EXPECT_EQ(solver.eigenvalues_to_host<T>(Ad.data(), n, jacobi, got.data()), 0) << what;
      EXPECT_EQ(count_nonfinite(got), 0) << what;
      EXPECT_LE(rel_error(got, want, n, 1), tolerance<T>(n)) << what;
    }
  }
}

// Blocks solved on four threads, each with its own context (stream, handles) made current,
// give exactly the values of the same blocks solved one after another on one solver: the
// same solver on the same matrix whatever the stream. Rank-deficient and full-rank blocks,
// sizes on both sides of the Jacobi limit; every result also against LAPACK.
TYPED_TEST(CudaEigen, ConcurrentSolvesEqualSequential) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const int64_t sizes[] = {650, 64, 300, 90, 257, 33, 500, 128};
  const size_t count = std::size(sizes);
  std::vector<std::vector<T>> blocks;
  std::vector<std::vector<double>> want;
  for (size_t b = 0; b < count; ++b) {
    const int64_t n = sizes[b];
    blocks.push_back(cast<T>(b % 2 ? low_rank_psd(n, n / 2, 1, 970 + static_cast<uint32_t>(b))
                                   : random_symmetric(n, 1, 980 + static_cast<uint32_t>(b))));
    want.push_back(reference(blocks.back(), n, 1));
  }
  GpuDenseOptions policy;
  auto jacobi = [&](int64_t n) {
    return choose_gpu_eigen_solver(n, cuda::batched_max_n<T>(), policy) == GpuEigenSolver::jacobi;
  };
  // One after another.
  std::vector<std::vector<T>> sequential(count);
  {
    cuda::DenseEigenSolver solver(cuda::context().stream());
    for (size_t b = 0; b < count; ++b) {
      Buffer<T> Ad = upload(blocks[b]);
      sequential[b].assign(static_cast<size_t>(sizes[b]), std::numeric_limits<T>::quiet_NaN());
      EXPECT_EQ(solver.eigenvalues_to_host<T>(Ad.data(), sizes[b], jacobi(sizes[b]), sequential[b].data()), 0);
    }
  }
  // Four threads with their own contexts, blocks as the checkpoint assigns them.
  std::vector<int64_t> order(sizes, sizes + count);
  const std::vector<int> thread_of = assign_blocks_to_threads(order, 4);
  std::vector<std::vector<T>> concurrent(count);
  std::vector<Buffer<T>> inputs;
  for (size_t b = 0; b < count; ++b) inputs.push_back(upload(blocks[b]));
  int device = 0;
  CN_CUDA_CHECK(cudaGetDevice(&device));
  std::string errors[4];
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t)
    threads.emplace_back([&, t] {
      try {
        CN_CUDA_CHECK(cudaSetDevice(device));
        cuda::Context ctx;
        cuda::ContextScope scope(ctx);
        cuda::DenseEigenSolver solver(ctx.stream());
        for (size_t b = 0; b < count; ++b) {
          if (thread_of[b] != t) continue;
          concurrent[b].assign(static_cast<size_t>(sizes[b]), std::numeric_limits<T>::quiet_NaN());
          const int info =
              solver.eigenvalues_to_host<T>(inputs[b].data(), sizes[b], jacobi(sizes[b]), concurrent[b].data());
          if (info != 0) errors[t] += "block " + std::to_string(b) + " info " + std::to_string(info) + "; ";
        }
      } catch (const std::exception& e) {
        errors[t] += e.what();
      }
    });
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_TRUE(errors[t].empty()) << "thread " << t << ": " << errors[t];
  for (size_t b = 0; b < count; ++b) {
    const std::string what = "block " + std::to_string(b) + " n=" + std::to_string(sizes[b]);
    EXPECT_EQ(concurrent[b], sequential[b]) << what;
    EXPECT_LE(rel_error(concurrent[b], want[b], sizes[b], 1), tolerance<T>(sizes[b])) << what;
  }
}

// Lanczos, SLQ and Hutchinson with their vectors (the Lanczos basis included) on the GPU
// give what they give with host vectors: the same recurrences, only the summation order
// of the products differs.
TEST(CudaIterative, DeviceVectorsMatchHostVectors) {
  CN_REQUIRE_GPU();
  const int64_t n = 300;
  const std::vector<double> A = random_symmetric(n, 1, 41);
  const Buffer<double> Ad = upload(A);
  const DeviceOperator on_gpu{Device::cuda, [&](const double* v, double* out) {
                                CN_DISPATCH(Device::cuda, gemm<double>, false, false, n, 1, n, 1.0, Ad.data(), n, v, 1,
                                            0.0, out, 1);
                              }};
  const MatVec on_host = [&](const double* v, double* out) {
    cpu::gemm<double>(false, false, n, 1, n, 1.0, A.data(), n, v, 1, 0.0, out, 1);
  };
  double scale = 0;
  for (double x : eigh(A.data(), n).values) scale = std::max(scale, std::fabs(x));
  const double tol = 1e-10 * scale;

  LanczosOptions lo;
  lo.k = 5;
  lo.key = ProbeKey{1, 2, 3};
  const LanczosResult lg = lanczos(on_gpu, n, lo), lh = lanczos(on_host, n, lo);
  ASSERT_EQ(lg.ritz.size(), lh.ritz.size());
  for (size_t i = 0; i < lh.ritz.size(); ++i) EXPECT_NEAR(lg.ritz[i], lh.ritz[i], tol) << "Ritz value " << i;

  SlqOptions so;
  so.n_probes = 3;
  so.key = ProbeKey{4, 5, 6};
  const SlqResult sg = slq(on_gpu, n, so), sh = slq(on_host, n, so);
  ASSERT_EQ(sg.nodes.size(), sh.nodes.size());
  for (size_t i = 0; i < sh.nodes.size(); ++i) {
    EXPECT_NEAR(sg.nodes[i], sh.nodes[i], tol) << "node " << i;
    EXPECT_NEAR(sg.weights[i], sh.weights[i], 1e-8) << "weight " << i;
  }
  EXPECT_NEAR(sg.trace.value, sh.trace.value, n * tol);

  // Deflated SLQ: the converged pairs' vectors come from the device basis.
  lo.converged_tol = 1e-6;
  const LanczosResult dg = lanczos(on_gpu, n, lo), dh = lanczos(on_host, n, lo);
  ASSERT_EQ(dg.converged_values.size(), dh.converged_values.size());
  so.deflate = &dg;
  const SlqResult fg = slq(on_gpu, n, so);
  so.deflate = &dh;
  const SlqResult fh = slq(on_host, n, so);
  ASSERT_EQ(fg.nodes.size(), fh.nodes.size());
  for (size_t i = 0; i < fh.nodes.size(); ++i) EXPECT_NEAR(fg.nodes[i], fh.nodes[i], 1e3 * tol) << "node " << i;
  EXPECT_NEAR(fg.trace.value, fh.trace.value, 1e3 * n * tol);

  const HutchinsonResult hg = hutchinson_trace(on_gpu, n, 4, ProbeKey{7, 8, 9}),
                         hh = hutchinson_trace(on_host, n, 4, ProbeKey{7, 8, 9});
  ASSERT_EQ(hg.samples.size(), hh.samples.size());
  for (size_t i = 0; i < hh.samples.size(); ++i) EXPECT_NEAR(hg.samples[i], hh.samples[i], n * tol) << "probe " << i;
}

}  // namespace

#else  // !CURVNET_HAVE_CUDA

TEST(CudaEigen, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif

// ---- the GPU dense-block policy: pure functions, tested without a GPU -----------------------

namespace {
using cn::GpuDenseOptions;
using cn::GpuEigenSolver;

TEST(GpuEigenPolicy, JacobiUpToTheSmallerOfTheOptionAndTheKernelLimit) {
  GpuDenseOptions o;
  o.jacobi_max_n = 128;
  EXPECT_EQ(cn::choose_gpu_eigen_solver(1, 230, o), GpuEigenSolver::jacobi);
  EXPECT_EQ(cn::choose_gpu_eigen_solver(128, 230, o), GpuEigenSolver::jacobi);
  EXPECT_EQ(cn::choose_gpu_eigen_solver(129, 230, o), GpuEigenSolver::syevd);
  EXPECT_EQ(cn::choose_gpu_eigen_solver(4160, 230, o), GpuEigenSolver::syevd);
  // The kernel's shared memory is the harder limit (float64 on an A100: 140).
  o.jacobi_max_n = 200;
  EXPECT_EQ(cn::choose_gpu_eigen_solver(140, 140, o), GpuEigenSolver::jacobi);
  EXPECT_EQ(cn::choose_gpu_eigen_solver(141, 140, o), GpuEigenSolver::syevd);
  // 0: always syevd.
  o.jacobi_max_n = 0;
  EXPECT_EQ(cn::choose_gpu_eigen_solver(1, 230, o), GpuEigenSolver::syevd);
}

TEST(GpuEigenPolicy, NameTable) {
  EXPECT_STREQ(cn::enum_name(cn::kGpuEigenSolvers, GpuEigenSolver::jacobi), "jacobi");
  EXPECT_STREQ(cn::enum_name(cn::kGpuEigenSolvers, GpuEigenSolver::syevd), "syevd");
  for (const std::string& name : cn::enum_names(cn::kGpuEigenSolvers))
    EXPECT_STREQ(cn::enum_name(cn::kGpuEigenSolvers, cn::parse_enum(cn::kGpuEigenSolvers, name, "solver")),
                 name.c_str());
  EXPECT_THROW(cn::parse_enum(cn::kGpuEigenSolvers, "syevj", "solver"), cn::InputError);
}

TEST(GpuEigenPolicy, HvpColumnsFromTheMemoryBudget) {
  GpuDenseOptions o;
  o.hvp_memory_bytes = size_t(512) << 20;
  // 2 MiB per direction: 256 columns; always a multiple of 64 in [64, 1024], never above p.
  EXPECT_EQ(cn::hvp_columns_per_product(4160, size_t(2) << 20, o), 256);
  EXPECT_EQ(cn::hvp_columns_per_product(4160, size_t(3) << 20, o), 128);
  EXPECT_EQ(cn::hvp_columns_per_product(4160, size_t(1) << 30, o), 64);
  EXPECT_EQ(cn::hvp_columns_per_product(100000, 1, o), 1024);
  EXPECT_EQ(cn::hvp_columns_per_product(100, size_t(2) << 20, o), 100);
  o.hvp_chunk = 96;  // set: taken as it is
  EXPECT_EQ(cn::hvp_columns_per_product(4160, size_t(2) << 20, o), 96);
  EXPECT_EQ(cn::hvp_columns_per_product(50, size_t(2) << 20, o), 50);
}

TEST(GpuEigenPolicy, BlocksToThreadsByLoad) {
  // The benchmark's four blocks on four threads: one each.
  EXPECT_EQ(cn::assign_blocks_to_threads({2112, 4160, 4160, 650}, 4), (std::vector<int>{0, 1, 2, 3}));
  EXPECT_EQ(cn::assign_blocks_to_threads({2112, 4160, 4160, 650}, 1), (std::vector<int>{0, 0, 0, 0}));
  // The least n³ so far: the small ones share a thread, the second large block joins them.
  EXPECT_EQ(cn::assign_blocks_to_threads({4160, 100, 100, 4160}, 2), (std::vector<int>{0, 1, 1, 1}));
  // A block's thread depends only on the blocks before it.
  const std::vector<int64_t> sizes = {300, 2000, 50, 900, 900, 4000, 10};
  const std::vector<int> all = cn::assign_blocks_to_threads(sizes, 3);
  for (size_t k = 1; k <= sizes.size(); ++k) {
    const std::vector<int> prefix =
        cn::assign_blocks_to_threads(std::vector<int64_t>(sizes.begin(), sizes.begin() + k), 3);
    EXPECT_EQ(prefix, std::vector<int>(all.begin(), all.begin() + k)) << k;
  }
  EXPECT_THROW(cn::assign_blocks_to_threads({1}, 0), cn::Error);
}
}  // namespace
