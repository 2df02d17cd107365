// GPU eigenvalue benchmarks (kernels/cuda/eigen.h), timed with CUDA events on the context's
// stream (UseManualTime):
//   Syevd                 cusolverDnXsyevd, float, one n×n matrix, n = 650, 2112, 4160
//   Batched*              count blocks of 65×65 (the local Hessian's layer blocks), float and
//                         double: the Jacobi kernel, cusolverDnXsyevBatched, and one syevd
//                         per block
// Random symmetric Gaussian matrices. Solvers that overwrite A get a fresh copy before each
// iteration, outside the timed region. The DenseEigenSolver methods read cuSOLVER's info
// back (one small device->host copy and a stream synchronisation, included in their time);
// the Jacobi kernel is timed alone. Without a GPU every benchmark is skipped with the reason.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include <random>

#include "core/error.h"
#include "core/memory.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/eigen.h"

namespace {

using namespace cn;

template <class T>
Buffer<T> random_symmetric_dev(int64_t n, int64_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> nd(0.0, 1.0);
  std::vector<T> h(static_cast<size_t>(count * n * n));
  for (int64_t b = 0; b < count; ++b)
    for (int64_t i = 0; i < n; ++i)
      for (int64_t j = 0; j <= i; ++j) h[b * n * n + i * n + j] = h[b * n * n + j * n + i] = static_cast<T>(nd(rng));
  Buffer<T> d(static_cast<int64_t>(h.size()), Device::cuda);
  device_copy(Device::cuda, d.data(), Device::cpu, h.data(), h.size() * sizeof(T));
  return d;
}

bool skip_without_gpu(benchmark::State& state) {
  if (cuda_available()) return false;
  state.SkipWithError(cuda_device_description().c_str());
  return true;
}

// solve(A, W) runs one solve on the context's stream (A: a fresh copy of the input).
template <class T, class Solve>
void run_timed(benchmark::State& state, int64_t n, int64_t count, bool copy_input, Solve solve) {
  cudaStream_t s = cuda::context().stream();
  Buffer<T> A0 = random_symmetric_dev<T>(n, count, 1), A(n * n * count, Device::cuda), W(n * count, Device::cuda);
  const size_t bytes = static_cast<size_t>(n * n * count) * sizeof(T);
  auto refresh = [&] {
    if (copy_input) CN_CUDA_CHECK(cudaMemcpyAsync(A.data(), A0.data(), bytes, cudaMemcpyDeviceToDevice, s));
  };
  T* input = copy_input ? A.data() : A0.data();
  for (int i = 0; i < 2; ++i) {  // warm-up: workspaces, cuSOLVER's first-call setup, shared-memory attribute
    refresh();
    solve(input, W.data());
  }
  cuda::context().synchronize();
  cuda::EventTimer timer;
  for (auto _ : state) {
    refresh();
    timer.start();
    solve(input, W.data());
    state.SetIterationTime(timer.stop_ms() / 1e3);
  }
  state.SetItemsProcessed(state.iterations() * count);  // matrices per second
  state.counters["n"] = static_cast<double>(n);
  state.counters["count"] = static_cast<double>(count);
}

void check_info(benchmark::State& state, int info) {
  if (info != 0) state.SkipWithError(("cuSOLVER info = " + std::to_string(info)).c_str());
}

void BM_Syevd_f32(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0);
  try {
    cuda::DenseEigenSolver solver(cuda::context().stream());
    int info = 0;
    run_timed<float>(state, n, 1, true, [&](float* A, float* W) { info = solver.eigenvalues<float>(A, n, W); });
    check_info(state, info);
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}
BENCHMARK(BM_Syevd_f32)->Arg(650)->Arg(2112)->Arg(4160)->UseManualTime()->Unit(benchmark::kMillisecond);

template <class T>
void BM_BatchedJacobi(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0), count = state.range(1);
  try {
    run_timed<T>(state, n, count, false,
                 [&](T* A, T* W) { cuda::eigenvalues_batched<T>(A, n, count, W, cuda::context().stream()); });
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}

template <class T>
void BM_BatchedCusolver(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0), count = state.range(1);
  try {
    cuda::DenseEigenSolver solver(cuda::context().stream());
    int info = 0;
    run_timed<T>(state, n, count, true,
                 [&](T* A, T* W) { info = solver.eigenvalues_batched_cusolver<T>(A, n, count, W); });
    check_info(state, info);
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}

template <class T>
void BM_BatchedSyevdLoop(benchmark::State& state) {
  if (skip_without_gpu(state)) return;
  const int64_t n = state.range(0), count = state.range(1);
  try {
    cuda::DenseEigenSolver solver(cuda::context().stream());
    int info = 0;
    run_timed<T>(state, n, count, true, [&](T* A, T* W) { info = solver.eigenvalues_looped<T>(A, n, count, W); });
    check_info(state, info);
  } catch (const Error& e) {
    state.SkipWithError(e.what());
  }
}

#define CN_BATCHED_BENCH(fn, T)  \
  BENCHMARK_TEMPLATE(fn, T)      \
      ->ArgNames({"n", "count"}) \
      ->Args({65, 64})           \
      ->Args({65, 10})           \
      ->UseManualTime()          \
      ->Unit(benchmark::kMicrosecond)
CN_BATCHED_BENCH(BM_BatchedJacobi, float);
CN_BATCHED_BENCH(BM_BatchedJacobi, double);
CN_BATCHED_BENCH(BM_BatchedCusolver, float);
CN_BATCHED_BENCH(BM_BatchedCusolver, double);
CN_BATCHED_BENCH(BM_BatchedSyevdLoop, float);
CN_BATCHED_BENCH(BM_BatchedSyevdLoop, double);
#undef CN_BATCHED_BENCH

}  // namespace

#else  // !CURVNET_HAVE_CUDA

namespace {
void BM_CudaEigen(benchmark::State& state) {
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
}
BENCHMARK(BM_CudaEigen);
}  // namespace

#endif
