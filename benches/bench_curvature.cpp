// One curvature checkpoint on the CPU: the exact `loss` block of every layer of a
// 32-64-64-64-10 tanh MLP (batch 512, float64) with its full spectrum, metrics and
// self-checks. Compare with benches/compare_curvature_torch.py (autograd hessian + eigvalsh).
#include <benchmark/benchmark.h>

#include "curvature_problem.h"

namespace {

void BM_CurvatureCheckpoint_TanhMlp(benchmark::State& state) {
  const cn::bench::CurvatureProblem p(state.range(0));
  cn::CurvatureCheckpoint ckpt = p.checkpoint();
  int64_t eigenvalues = 0;
  for (auto _ : state) eigenvalues = cn::bench::eigenvalue_count(ckpt.run(0, p.snap));
  state.counters["eigenvalues"] = static_cast<double>(eigenvalues);  // 2112 + 4160 + 4160 + 650
}

}  // namespace

BENCHMARK(BM_CurvatureCheckpoint_TanhMlp)->Arg(10)->Unit(benchmark::kSecond)->Iterations(1);
