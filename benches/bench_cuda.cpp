// GPU benchmarks: one training step (forward, mean cross-entropy, backward, Adam) of an MLP
// on the CUDA backend, float32, TF32 off, timed with CUDA events on the context's stream
// (UseManualTime). Sizes: S = 784-128-128-10 at batch 256, M = 784-1024x4-10 at batch
// 1024 (benches/compare_train_torch.py runs the same steps in PyTorch). The loss op reads
// the mean loss back to the host, so every step includes one stream synchronisation.
// Synthetic data (random inputs, cycling labels); without a GPU every benchmark is
// skipped with the reason.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include <random>

#include "core/memory.h"
#include "kernels/cuda/context.cuh"
#include "layers/model.h"
#include "optim/optimizer_cuda.h"

namespace {

using namespace cn;

void BM_TrainStep_cuda(benchmark::State& state, std::vector<int64_t> hidden, int64_t N) {
  if (!cuda_available()) {
    state.SkipWithError(cuda_device_description().c_str());
    return;
  }
  constexpr int64_t I = 784, C = 10;
  ModelConfig mc;
  mc.hidden = hidden;
  mc.activation = "relu";
  Sequential<float> model(resolve_layers(mc, C), I, Device::cuda);
  model.initialize(mc, 0);
  model.reserve(N);
  Loss<float> loss(LossKind::cross_entropy);
  loss.reserve(Device::cuda, N, C);
  OptimConfig oc;
  oc.name = "adam";
  auto opt = make_optimizer_cuda<float>(oc, model.layout());

  std::vector<float> xh(static_cast<size_t>(N * I)), yh(static_cast<size_t>(N));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : xh) v = nd(rng);
  for (int64_t n = 0; n < N; ++n) yh[static_cast<size_t>(n)] = static_cast<float>(n % C);
  Buffer<float> x(N * I, Device::cuda), y(N, Device::cuda);
  device_copy(Device::cuda, x.data(), Device::cpu, xh.data(), xh.size() * sizeof(float));
  device_copy(Device::cuda, y.data(), Device::cpu, yh.data(), yh.size() * sizeof(float));

  int64_t step = 0;
  auto train_step = [&] {
    PassCtx c;
    c.device = Device::cuda;
    c.training = true;
    c.step = static_cast<uint64_t>(step);
    const float* z = model.forward(c, x.data(), N);
    benchmark::DoNotOptimize(loss.forward_backward(c, z, y.data(), N, C));
    model.backward(c, loss.dz(), N);
    opt->step(model.params().data(), model.grads().data(), 1e-3, step);
    ++step;
  };
  for (int i = 0; i < 5; ++i) train_step();  // warm-up: allocations, cuBLAS heuristics
  cuda::context().synchronize();
  const int64_t mallocs = cuda::memory_stats().cuda_mallocs;

  cuda::EventTimer timer;
  for (auto _ : state) {
    timer.start();
    train_step();
    state.SetIterationTime(timer.stop_ms() / 1e3);
  }
  const double P = static_cast<double>(model.layout().total);
  state.SetItemsProcessed(state.iterations() * N);
  // ~6 flops per parameter and sample: 2 forward, 4 backward (dx and dW).
  state.counters["TFLOP/s"] = benchmark::Counter(6.0 * P * static_cast<double>(N) * 1e-12 *
                                                     static_cast<double>(state.iterations()),
                                                 benchmark::Counter::kIsRate);
  state.counters["params"] = P;
  state.counters["cudaMalloc_in_steps"] = static_cast<double>(cuda::memory_stats().cuda_mallocs - mallocs);
}

BENCHMARK_CAPTURE(BM_TrainStep_cuda, S_784_128_128_10_b256, std::vector<int64_t>{128, 128}, 256)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, M_784_1024x4_10_b1024, std::vector<int64_t>{1024, 1024, 1024, 1024}, 1024)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

#else  // !CURVNET_HAVE_CUDA

namespace {
void BM_TrainStep_cuda(benchmark::State& state) {
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {
  }
}
BENCHMARK(BM_TrainStep_cuda);
}  // namespace

#endif
