// One training step on the CPU (forward, loss, backward, clipping off, optimiser step), float32:
// S = 784-128-128-10 batch 256, L = 784-1024x4-10 batch 1024. Compare with
// benches/compare_train_torch.py on the same machine.
#include <benchmark/benchmark.h>

#include "core/philox.h"
#include "layers/model.h"
#include "optim/optimizer.h"

namespace {

struct StepBench {
  cn::Sequential<float> model;
  cn::Loss<float> loss{cn::LossKind::cross_entropy};
  std::unique_ptr<cn::Optimizer<float>> opt;
  std::vector<float> x, y;
  int64_t N;
  cn::ClipConfig clip;

  static cn::ModelConfig mc(std::vector<int64_t> hidden) {
    cn::ModelConfig m;
    m.hidden = std::move(hidden);
    return m;
  }
  StepBench(std::vector<int64_t> hidden, int64_t batch, const std::string& optim)
      : model(cn::resolve_layers(mc(hidden), 10), 784), N(batch) {
    model.initialize(mc(hidden), 0);
    model.reserve(N);
    loss.reserve(cn::Device::cpu, N, 10);
    cn::OptimConfig oc;
    oc.name = cn::parse_enum(cn::kOptimKinds, optim, "optim.name");
    opt = cn::make_optimizer<float>(oc, model.layout());
    cn::PhiloxDraw d(1, cn::RngStream::data, 0, 0);
    x.resize(N * 784);
    for (auto& v : x) v = static_cast<float>(d.normal());
    y.resize(N);
    for (int64_t n = 0; n < N; ++n) y[n] = static_cast<float>(n % 10);
  }
  void step(int64_t s) {
    cn::PassCtx c;
    const float* z = model.forward(c, x.data(), N);
    benchmark::DoNotOptimize(loss.forward_backward(c, z, y.data(), N, 10));
    model.backward(c, loss.dz(), N);
    cn::clip_gradients<float>(clip, model.layout(), model.params().data(), model.grads().data());
    opt->step(model.params().data(), model.grads().data(), 1e-3, s);
  }
};

void run(benchmark::State& state, std::vector<int64_t> hidden, int64_t batch, const char* optim) {
  StepBench b(hidden, batch, optim);
  int64_t s = 0;
  b.step(s++);  // warm-up: first-touch of every buffer
  for (auto _ : state) b.step(s++);
  double flops = 0;
  int64_t in = 784;
  for (int64_t h : hidden) flops += 6.0 * batch * in * h, in = h;
  flops += 6.0 * batch * in * 10;
  state.counters["GFLOP/s"] = benchmark::Counter(flops * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

void BM_TrainStep_S_Adam(benchmark::State& s) { run(s, {128, 128}, 256, "adam"); }
void BM_TrainStep_L_Adam(benchmark::State& s) { run(s, {1024, 1024, 1024, 1024}, 1024, "adam"); }
void BM_TrainStep_L_SGD(benchmark::State& s) { run(s, {1024, 1024, 1024, 1024}, 1024, "sgd"); }

}  // namespace

BENCHMARK(BM_TrainStep_S_Adam)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_TrainStep_L_Adam)->Unit(benchmark::kMillisecond)->MinTime(5.0);
BENCHMARK(BM_TrainStep_L_SGD)->Unit(benchmark::kMillisecond)->MinTime(5.0);
