// HVP cost against the gradient (docs/design.md §3: "about twice the cost of a gradient"): a
// 784-1024x4-10 ReLU MLP, batch 1024, float32, cross-entropy, on this machine's CPU.
// Counters: ms per call, ms per direction and the ratio of both to one gradient.
// Targets: one HVP ≤ 2.6 gradients; per direction ≤ 2.1 gradients with K = 64.
#include <benchmark/benchmark.h>

#include <chrono>
#include <memory>
#include <random>

#include "diagnostics/hvp.h"
#include "layers/model.h"

using namespace cn;

namespace {

constexpr int64_t kN = 1024, kIn = 784, kOut = 10;

struct Setup {
  Sequential<float> net;
  Loss<float> loss{LossKind::cross_entropy};
  HvpEngine<float> eng;
  std::vector<float> x, t;
  PassCtx c;
  double grad_ms = 0;
  static std::vector<LayerSpec> specs() {
    ModelConfig m;
    m.hidden = {1024, 1024, 1024, 1024};
    m.activation = LayerKind::relu;
    return resolve_layers(m, kOut);
  }
  Setup() : net(specs(), kIn), eng(net, loss) {
    ModelConfig m;
    m.init = cn::Init::he_normal;
    net.initialize(m, 1);
    std::mt19937 g(3);
    std::normal_distribution<float> nd;
    x.resize(kN * kIn);
    for (auto& v : x) v = nd(g);
    t.resize(kN);
    for (int64_t n = 0; n < kN; ++n) t[n] = static_cast<float>(n % kOut);
    eng.reserve(kN, 1);
  }
  double time_gradient() {
    if (grad_ms > 0) return grad_ms;
    eng.gradient(c, x.data(), t.data(), kN);  // warm-up
    const int reps = 5;
    const auto t0 = std::chrono::steady_clock::now();
    for (int r = 0; r < reps; ++r) eng.gradient(c, x.data(), t.data(), kN);
    grad_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / reps;
    return grad_ms;
  }
};

Setup& setup() {
  static Setup s;
  return s;
}

void BM_Gradient(benchmark::State& state) {
  Setup& s = setup();
  s.eng.gradient(s.c, s.x.data(), s.t.data(), kN);
  for (auto _ : state) benchmark::DoNotOptimize(s.eng.gradient(s.c, s.x.data(), s.t.data(), kN));
}

void BM_Hvp(benchmark::State& state) {
  Setup& s = setup();
  const int64_t K = state.range(0), P = s.net.layout().total;
  const double grad_ms = s.time_gradient();
  std::vector<float> V(static_cast<size_t>(K * P)), HV(static_cast<size_t>(K * P));
  std::mt19937 g(5);
  std::normal_distribution<float> nd;
  for (auto& v : V) v = nd(g);
  s.eng.reserve(kN, K);
  s.eng.hvp(s.c, s.x.data(), s.t.data(), kN, V.data(), HV.data(), K);  // warm-up (first-touch of the buffers)
  double total_ms = 0;
  for (auto _ : state) {
    const auto t0 = std::chrono::steady_clock::now();
    s.eng.hvp(s.c, s.x.data(), s.t.data(), kN, V.data(), HV.data(), K);
    total_ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  const double ms = total_ms / static_cast<double>(state.iterations());
  state.counters["ms"] = ms;
  state.counters["ms_per_direction"] = ms / static_cast<double>(K);
  state.counters["gradient_ms"] = grad_ms;
  state.counters["ratio_to_gradient"] = ms / grad_ms;
  state.counters["per_direction_ratio"] = ms / static_cast<double>(K) / grad_ms;
}

}  // namespace

BENCHMARK(BM_Gradient)->Unit(benchmark::kMillisecond)->UseRealTime()->MinTime(2.0);
BENCHMARK(BM_Hvp)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(10);
BENCHMARK(BM_Hvp)->Arg(16)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(3);
BENCHMARK(BM_Hvp)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime()->Iterations(1);
