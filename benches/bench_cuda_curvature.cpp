// One curvature checkpoint on the GPU, float32: the exact `loss` block of every layer of
// the 32-64-64-64-10 tanh MLP of bench_curvature (batch 512) built by batched HVP columns
// on the device, copied to the host for the dense spectra (LAPACK), metrics and
// self-checks. Timed end to end with a host clock around run() (the checkpoint's last
// work is on the host, so nothing is left queued), after one warm-up run (allocations,
// cuBLAS heuristics). Without a GPU the benchmark is skipped with the reason.
#include <benchmark/benchmark.h>

#include <chrono>

#include "core/device.h"
#include "curvature_problem.h"

namespace {

void BM_CurvatureCheckpoint_cuda_f32(benchmark::State& state) {
#ifdef CURVNET_HAVE_CUDA
  if (!cn::cuda_available()) {
    state.SkipWithError(cn::cuda_device_description().c_str());
    return;
  }
  cn::bench::CurvatureProblem p(state.range(0));
  p.dc.dtype = cn::DType::float32;
  cn::CurvatureCheckpoint ckpt = p.checkpoint(cn::Device::cuda);
  int64_t eigenvalues = cn::bench::eigenvalue_count(ckpt.run(0, p.snap));  // warm-up
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    const cn::CurvatureOutput out = ckpt.run(0, p.snap);
    state.SetIterationTime(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    eigenvalues = cn::bench::eigenvalue_count(out);
  }
  state.counters["eigenvalues"] = static_cast<double>(eigenvalues);  // 2112 + 4160 + 4160 + 650
#else
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
#endif
}

}  // namespace

BENCHMARK(BM_CurvatureCheckpoint_cuda_f32)->Arg(10)->UseManualTime()->Unit(benchmark::kSecond)->Iterations(3);
