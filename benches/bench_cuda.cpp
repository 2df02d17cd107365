// GPU benchmarks: one training step (forward, mean cross-entropy, backward, Adam) of an MLP
// on the CUDA backend, float32, TF32 off unless named, timed with CUDA events on the
// context's stream over steps run back to back (UseManualTime). Sizes: S = 784-128-128-10
// at batch 256, M = 784-1024x4-10 at batch 1024, L = 784-4096x8-10 at batch 4096
// (benches/compare_train_torch.py runs the same steps in PyTorch). The batch loss stays
// on the device, as in training between logging steps.
// Synthetic data (random inputs, cycling labels); without a GPU every benchmark is
// skipped with the reason. Rows with a suffix change one GEMM setting against the defaults
// (docs/gpu.md): _cublas (CURVNET_GEMM=cublas), _one_stream (CURVNET_GEMM_STREAMS=0),
// _cublas_one_stream (both: the GEMMs as before the defaults changed).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include <cmath>
#include <random>

#include "core/memory.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/gemm.h"
#include "layers/fused_mlp_view.h"
#include "layers/model.h"
#include "optim/cuda/optimizer_cuda.h"

namespace {

using namespace cn;

// How a step is enqueued: every kernel launched by the host (eager), or forward, loss and
// backward replayed as one recorded CUDA graph followed by the optimiser's launch (graph);
// fused_graph: the same with forward and backward by the fused MLP kernels
// (kernels/cuda/fused_mlp.h, train.fused_mlp); fused_streamed_graph: with the first layer
// streamed through the fused forward kernel instead of its own GEMM.
enum class Launch { eager, graph, fused_graph, fused_streamed_graph };

// GEMM settings against the defaults, for one benchmark (restored after it).
enum class Gemms { defaults, cublas, one_stream, cublas_one_stream };
struct GemmsScope {
  cuda::GemmMode mode = cuda::gemm_mode();
  bool streams = cuda::context().concurrent_gemms();
  explicit GemmsScope(Gemms g) {
    if (g == Gemms::cublas || g == Gemms::cublas_one_stream) cuda::set_gemm_mode(cuda::GemmMode::cublas);
    if (g == Gemms::one_stream || g == Gemms::cublas_one_stream) cuda::context().set_concurrent_gemms(false);
  }
  ~GemmsScope() {
    cuda::set_gemm_mode(mode);
    cuda::context().set_concurrent_gemms(streams);
  }
};

void BM_TrainStep_cuda(benchmark::State& state, std::vector<int64_t> hidden, int64_t N, Launch launch, bool tf32,
                       Gemms gemms = Gemms::defaults) {
  if (!cuda_available()) {
    state.SkipWithError(cuda_device_description().c_str());
    return;
  }
  constexpr int64_t I = 784, C = 10;
  const GemmsScope scope(gemms);
  cuda::context().set_allow_tf32(tf32);
  ModelConfig mc;
  mc.hidden = hidden;
  mc.activation = LayerKind::relu;
  Sequential<float> model(resolve_layers(mc, C), I, Device::cuda);
  model.initialize(mc, 0);
  model.reserve(N);
  Loss<float> loss(LossKind::cross_entropy);
  loss.reserve(Device::cuda, N, C);
  OptimConfig oc;
  oc.name = cn::OptimKind::adam;
  auto opt = make_optimizer_cuda<float>(oc, model.layout());

  std::vector<float> xh(static_cast<size_t>(N * I)), yh(static_cast<size_t>(N));
  std::mt19937 rng(1);
  std::normal_distribution<float> nd(0.f, 1.f);
  for (auto& v : xh) v = nd(rng);
  for (int64_t n = 0; n < N; ++n) yh[static_cast<size_t>(n)] = static_cast<float>(n % C);
  Buffer<float> x(N * I, Device::cuda), y(N, Device::cuda);
  Buffer<double> batch_loss(1, Device::cuda);  // stays on the device: no host wait per step
  device_copy(Device::cuda, x.data(), Device::cpu, xh.data(), xh.size() * sizeof(float));
  device_copy(Device::cuda, y.data(), Device::cpu, yh.data(), yh.size() * sizeof(float));

  PassCtx c;
  c.device = Device::cuda;
  c.training = true;
  const bool use_fused = launch == Launch::fused_graph || launch == Launch::fused_streamed_graph;
  cuda::FusedMlp<float> fused = use_fused ? fused_mlp_of(model) : cuda::FusedMlp<float>{};
  if (launch == Launch::fused_streamed_graph) fused.first_layer_gemm = false;
  auto forward_backward = [&] {
    if (use_fused) {
      cuda::fused_mlp_forward(fused, x.data(), N);
      loss.forward_backward_to(c, model.layer_output(model.size() - 1), y.data(), N, C, batch_loss.data());
      cuda::fused_mlp_backward(fused, x.data(), loss.dz(), N);
      return;
    }
    const float* z = model.forward(c, x.data(), N);
    loss.forward_backward_to(c, z, y.data(), N, C, batch_loss.data());
    model.backward(c, loss.dz(), N);
  };
  cuda::Graph graph;
  int64_t step = 0;
  auto train_step = [&] {
    if (launch == Launch::eager || !graph.replay()) forward_backward();
    opt->step(model.params().data(), model.grads().data(), 1e-3, step);
    ++step;
  };
  for (int i = 0; i < 5; ++i) train_step();  // warm-up: allocations, cuBLAS heuristics
  if (launch != Launch::eager) graph.record(forward_backward);
  for (int i = 0; i < 5; ++i) train_step();
  cuda::context().synchronize();
  const int64_t mallocs = cuda::memory_stats().cuda_mallocs;

  // Steps back to back, as training runs them: the host enqueues while the device works.
  // One timed iteration = `per` steps; the reported time is per step.
  const int per = N * static_cast<int64_t>(hidden.size()) * hidden[0] > (int64_t{1} << 26) ? 2 : 20;
  cuda::EventTimer timer;
  for (auto _ : state) {
    timer.start();
    for (int i = 0; i < per; ++i) train_step();
    state.SetIterationTime(timer.stop_ms() / 1e3 / per);
  }
  double last = 0;
  device_copy(Device::cpu, &last, Device::cuda, batch_loss.data(), sizeof(double));
  if (!std::isfinite(last)) state.SkipWithError("the loss is not finite");
  const double P = static_cast<double>(model.layout().total);
  state.SetItemsProcessed(state.iterations() * per * N);
  // ~6 flops per parameter and sample: 2 forward, 4 backward (dx and dW).
  state.counters["TFLOP/s"] =
      benchmark::Counter(6.0 * P * static_cast<double>(N) * 1e-12 * per * static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate);
  state.counters["params"] = P;
  state.counters["cudaMalloc_in_steps"] = static_cast<double>(cuda::memory_stats().cuda_mallocs - mallocs);
  cuda::context().set_allow_tf32(false);
}

const std::vector<int64_t> kS{128, 128}, kM(4, 1024), kL(8, 4096);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, S_784_128_128_10_b256, kS, 256, Launch::eager, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, S_784_128_128_10_b256_graph, kS, 256, Launch::graph, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, M_784_1024x4_10_b1024, kM, 1024, Launch::eager, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, M_784_1024x4_10_b1024_graph, kM, 1024, Launch::graph, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, L_784_4096x8_10_b4096, kL, 4096, Launch::graph, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, Ltf32_784_4096x8_10_b4096, kL, 4096, Launch::graph, true)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond)
    ->Iterations(10);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, S_784_128_128_10_b256_fused, kS, 256, Launch::fused_graph, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, S_784_128_128_10_b256_fused_streamed, kS, 256, Launch::fused_streamed_graph, false)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
// The settings one at a time (names end before the "/" the table's patterns require).
BENCHMARK_CAPTURE(BM_TrainStep_cuda, S_784_128_128_10_b256_graph_one_stream, kS, 256, Launch::graph, false,
                  Gemms::one_stream)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, M_784_1024x4_10_b1024_graph_cublas, kM, 1024, Launch::graph, false, Gemms::cublas)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, M_784_1024x4_10_b1024_graph_one_stream, kM, 1024, Launch::graph, false,
                  Gemms::one_stream)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_TrainStep_cuda, M_784_1024x4_10_b1024_graph_cublas_one_stream, kM, 1024, Launch::graph, false,
                  Gemms::cublas_one_stream)
    ->UseManualTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

#else  // !CURVNET_HAVE_CUDA

namespace {
void BM_TrainStep_cuda(benchmark::State& state) {
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
}
BENCHMARK(BM_TrainStep_cuda);
}  // namespace

#endif
