// One curvature checkpoint on the CPU: the exact `loss` block of every layer of a
// 32-64-64-64-10 tanh MLP (batch 512, float64) with its full spectrum, metrics and
// self-checks. Compare with benches/compare_curvature_torch.py (autograd hessian + eigvalsh).
#include <benchmark/benchmark.h>

#include "core/philox.h"
#include "diagnostics/curvature_checkpoint.h"
#include "layers/model.h"

namespace {

void BM_CurvatureCheckpoint_TanhMlp(benchmark::State& state) {
  cn::ModelConfig mc;
  mc.hidden = {64, 64, 64};
  mc.activation = "tanh";
  mc.init = "xavier_normal";
  const auto specs = cn::resolve_layers(mc, 10);
  cn::Sequential<double> net(specs, 32);
  net.initialize(mc, 0);
  const int64_t N = 512;
  std::vector<double> x(N * 32), y(N);
  cn::PhiloxDraw d(3, cn::RngStream::data, 0, 0);
  for (auto& v : x) v = d.normal();
  for (int64_t n = 0; n < N; ++n) y[n] = static_cast<double>(n % 10);
  cn::DiagnosticsConfig dc;
  dc.kinds = {"loss"};
  dc.batch_size = N;
  dc.probes = static_cast<int64_t>(state.range(0));  // Hutchinson probes of the trace self-check
  cn::CurvatureCheckpoint ckpt(dc, specs, 32, cn::LossKind::cross_entropy, x, y, N, 0);
  cn::ModelSnapshot snap;
  snap.params.assign(net.params().data(), net.params().data() + net.layout().total);
  int64_t eigenvalues = 0;
  for (auto _ : state) {
    const cn::CurvatureOutput out = ckpt.run(0, snap);
    eigenvalues = 0;
    for (const auto& [name, v] : out.spectra) eigenvalues += static_cast<int64_t>(v.size());
  }
  state.counters["eigenvalues"] = static_cast<double>(eigenvalues);  // 2112 + 4160 + 4160 + 650
}

}  // namespace

BENCHMARK(BM_CurvatureCheckpoint_TanhMlp)->Arg(10)->Unit(benchmark::kSecond)->Iterations(1);
