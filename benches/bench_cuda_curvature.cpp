// One curvature checkpoint on the GPU, float32: the exact `loss` block of every layer of
// the 32-64-64-64-10 tanh MLP of bench_curvature (batch 512; blocks of 2112, 4160, 4160
// and 650 parameters) built by batched HVP columns on the device and solved there (solver
// threads with their own contexts, the solver chosen by size), then metrics and
// self-checks. Timed end to end with a host clock around run() after one warm-up run
// (allocations, cuBLAS heuristics, the solver threads' handles).
//
// BM_CurvatureCheckpoint_cuda_f32/<probes>            the default policy, as training runs it
// BM_CurvatureCheckpoint_cuda_f32_threads/<probes>/<T>  solver_threads = T (1: one block after another)
// BM_CurvatureCheckpoint_cuda_f32_breakdown/<probes>  one more run per iteration with the phase
//                                                     breakdown (it synchronises between phases)
// BM_DenseBlockSolve_cuda_f32/<n>/<s>                  one n × n block by the Jacobi kernel (s = 0)
//                                                     or syevd (s = 1), to the host: where
//                                                     GpuDenseOptions::jacobi_max_n belongs
// Counters: eigenvalues; the breakdown's hvp_ms, assembly_ms, eigensolver_ms, metrics_ms,
// checks_ms, total_ms, solver_busy_ms, solver_threads (docs/gpu.md "Curvature checkpoints
// on the GPU"). The policy's sizes come from the environment when set, for sweeps on a GPU:
// CURVNET_BENCH_JACOBI_MAX_N, CURVNET_BENCH_SOLVER_THREADS, CURVNET_BENCH_HVP_CHUNK.
// Without a GPU every benchmark is skipped with the reason.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdlib>

#include "core/device.h"
#include "curvature_problem.h"
#ifdef CURVNET_HAVE_CUDA
#include <random>

#include "core/memory.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/eigen.h"
#endif

namespace {

#ifdef CURVNET_HAVE_CUDA
cn::GpuDenseOptions options_from_environment() {
  cn::GpuDenseOptions o;
  if (const char* v = std::getenv("CURVNET_BENCH_JACOBI_MAX_N")) o.jacobi_max_n = std::atoll(v);
  if (const char* v = std::getenv("CURVNET_BENCH_SOLVER_THREADS")) o.solver_threads = std::max(1, std::atoi(v));
  if (const char* v = std::getenv("CURVNET_BENCH_HVP_CHUNK")) o.hvp_chunk = std::atoll(v);
  return o;
}

void run_checkpoint(benchmark::State& state, cn::GpuDenseOptions options, bool breakdown) {
  if (!cn::cuda_available()) {
    state.SkipWithError(cn::cuda_device_description().c_str());
    return;
  }
  cn::bench::CurvatureProblem p(state.range(0));
  p.dc.dtype = cn::DType::float32;
  cn::CurvatureCheckpoint ckpt = p.checkpoint(cn::Device::cuda);
  ckpt.set_gpu_dense_options(options);
  int64_t eigenvalues = cn::bench::eigenvalue_count(ckpt.run(0, p.snap));  // warm-up
  cn::CurvatureTiming sum;
  int64_t timed = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const cn::CurvatureOutput out = ckpt.run(0, p.snap);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    eigenvalues = cn::bench::eigenvalue_count(out);
    if (breakdown) {  // outside the timed run: the breakdown synchronises between phases
      cn::CurvatureTiming t;
      ckpt.run(0, p.snap, &t);
      sum.hvp_ms += t.hvp_ms;
      sum.assembly_ms += t.assembly_ms;
      sum.eigensolver_ms += t.eigensolver_ms;
      sum.metrics_ms += t.metrics_ms;
      sum.checks_ms += t.checks_ms;
      sum.total_ms += t.total_ms;
      sum.solver_busy_ms += t.solver_busy_ms;
      sum.solver_threads = t.solver_threads;
      ++timed;
    }
  }
  state.counters["eigenvalues"] = static_cast<double>(eigenvalues);  // 2112 + 4160 + 4160 + 650
  if (timed > 0) {
    const double n = static_cast<double>(timed);
    state.counters["hvp_ms"] = sum.hvp_ms / n;
    state.counters["assembly_ms"] = sum.assembly_ms / n;
    state.counters["eigensolver_ms"] = sum.eigensolver_ms / n;
    state.counters["metrics_ms"] = sum.metrics_ms / n;
    state.counters["checks_ms"] = sum.checks_ms / n;
    state.counters["total_ms"] = sum.total_ms / n;
    state.counters["solver_busy_ms"] = sum.solver_busy_ms / n;
    state.counters["solver_threads"] = sum.solver_threads;
  }
}
#endif

void BM_CurvatureCheckpoint_cuda_f32(benchmark::State& state) {
#ifdef CURVNET_HAVE_CUDA
  run_checkpoint(state, options_from_environment(), false);
#else
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
#endif
}

void BM_CurvatureCheckpoint_cuda_f32_threads(benchmark::State& state) {
#ifdef CURVNET_HAVE_CUDA
  cn::GpuDenseOptions o = options_from_environment();
  o.solver_threads = static_cast<int>(state.range(1));
  run_checkpoint(state, o, true);
#else
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
#endif
}

void BM_CurvatureCheckpoint_cuda_f32_breakdown(benchmark::State& state) {
#ifdef CURVNET_HAVE_CUDA
  run_checkpoint(state, options_from_environment(), true);
#else
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
#endif
}

void BM_DenseBlockSolve_cuda_f32(benchmark::State& state) {
#ifdef CURVNET_HAVE_CUDA
  if (!cn::cuda_available()) {
    state.SkipWithError(cn::cuda_device_description().c_str());
    return;
  }
  const int64_t n = state.range(0);
  const bool jacobi = state.range(1) == 0;
  if (jacobi && n > cn::cuda::batched_max_n<float>()) {
    state.SkipWithError("wider than the Jacobi kernel holds on this device");
    return;
  }
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::vector<float> A(static_cast<size_t>(n * n));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j <= i; ++j) A[i * n + j] = A[j * n + i] = nd(rng);
  const size_t bytes = A.size() * sizeof(float);
  cn::Buffer<float> pristine(n * n, cn::Device::cuda), work(n * n, cn::Device::cuda);
  cn::device_copy(cn::Device::cuda, pristine.data(), cn::Device::cpu, A.data(), bytes);
  cn::cuda::context().synchronize();
  cn::cuda::DenseEigenSolver solver(cn::cuda::context().stream());
  std::vector<float> w(static_cast<size_t>(n));
  auto solve = [&] {
    CN_CUDA_CHECK(cudaMemcpyAsync(work.data(), pristine.data(), bytes, cudaMemcpyDeviceToDevice, solver.stream()));
    return solver.eigenvalues_to_host<float>(work.data(), n, jacobi, w.data());
  };
  int info = solve();  // warm-up: workspaces
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    info = std::max(info, solve());
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  state.counters["info"] = info;
#else
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
#endif
}

}  // namespace

BENCHMARK(BM_DenseBlockSolve_cuda_f32)
    ->ArgsProduct({{32, 64, 96, 128, 160, 192, 230}, {0, 1}})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(5);
BENCHMARK(BM_CurvatureCheckpoint_cuda_f32)->Arg(10)->UseManualTime()->Unit(benchmark::kMillisecond)->Iterations(3);
BENCHMARK(BM_CurvatureCheckpoint_cuda_f32_breakdown)
    ->Arg(10)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
BENCHMARK(BM_CurvatureCheckpoint_cuda_f32_threads)
    ->Args({10, 1})
    ->Args({10, 2})
    ->Args({10, 4})
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(3);
