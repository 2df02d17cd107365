// GPU side of benches/bench_hvp.cpp: exact Hessian-vector products (HvpEngine, Pearlmutter's
// R-operator) against one gradient on the CUDA backend, float32, TF32 off (the context's
// default), cross-entropy. Nets: S = 784-128-128-10 at batch 256, M = 784-1024x4-10 at
// batch 1024, ReLU (benches/compare_hvp_torch.py --device cuda runs the same in PyTorch).
//
//   Gradient       forward, loss, backward
//   Hvp/K          forward, backward, R-forward, R-backward for K directions at once
//   PrepareApply/K prepare() once outside the timing, then apply() for K directions: the
//                  regime of Lanczos and the Hessian blocks, where the point stays fixed
//
// Each iteration is timed with CUDA events on the context's stream after a warm-up
// (UseManualTime). The loss op reads the mean loss back to the host, so Gradient and Hvp
// include one stream synchronisation each; apply() alone does not. Counters (from the
// median iteration): ms, ms_per_direction, gradient_ms (median of a separate gradient
// run) and x_gradient = ms / gradient_ms, x_gradient_per_direction = that / K.
// Directions are random normals, never zeros.
// Without a GPU every benchmark is skipped with the reason.
// BM_HvpVariant_cuda: one exact HVP on M with one GEMM setting changed against the
// defaults (docs/gpu.md): no_concat (CURVNET_R_CONCAT=0), one_stream
// (CURVNET_GEMM_STREAMS=0), cublas (CURVNET_GEMM=cublas), baseline (all three: the
// GEMMs as before these defaults).
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>

#include "core/memory.h"
#include "diagnostics/hvp.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/gemm.h"
#include "layers/model.h"

namespace {

using namespace cn;

constexpr int64_t kIn = 784, kOut = 10, kMaxK = 64;

enum class Net { S, M };

// Fast host normals (splitmix64 + Box-Muller): the M net needs 64 × ~4M values and
// std::normal_distribution would dominate the set-up time.
struct FastNormal {
  uint64_t s;
  explicit FastNormal(uint64_t seed) : s(seed) {}
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  void fill(float* out, int64_t n) {
    for (int64_t i = 0; i < n; i += 2) {
      const uint64_t w = next();
      // u1 in (0, 1]: log never sees zero.
      const float u1 = (static_cast<float>(w >> 40) + 1.f) * (1.f / 16777216.f);
      const float u2 = static_cast<float>((w >> 16) & 0xFFFFFFu) * (1.f / 16777216.f);
      const float r = std::sqrt(-2.f * std::log(u1)), a = 6.2831853f * u2;
      out[i] = r * std::cos(a);
      if (i + 1 < n) out[i + 1] = r * std::sin(a);
    }
  }
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

struct Setup {
  int64_t N;
  Sequential<float> net;
  Loss<float> loss{LossKind::cross_entropy};
  HvpEngine<float> eng;
  Buffer<float> x, t, V, HV;  // V, HV: kMaxK × total on the device
  PassCtx c;
  double grad_ms = 0;

  static std::vector<LayerSpec> specs(Net n) {
    ModelConfig m;
    m.hidden = n == Net::S ? std::vector<int64_t>{128, 128} : std::vector<int64_t>{1024, 1024, 1024, 1024};
    m.activation = LayerKind::relu;
    return resolve_layers(m, kOut);
  }

  explicit Setup(Net n) : N(n == Net::S ? 256 : 1024), net(specs(n), kIn, Device::cuda), eng(net, loss) {
    ModelConfig m;
    m.init = cn::Init::he_normal;
    net.initialize(m, 1);
    c.device = Device::cuda;
    const int64_t P = net.layout().total;
    std::vector<float> xh(static_cast<size_t>(N * kIn)), th(static_cast<size_t>(N));
    FastNormal g(3);
    g.fill(xh.data(), static_cast<int64_t>(xh.size()));
    for (int64_t i = 0; i < N; ++i) th[static_cast<size_t>(i)] = static_cast<float>(i % kOut);
    x = Buffer<float>(N * kIn, Device::cuda);
    t = Buffer<float>(N, Device::cuda);
    device_copy(Device::cuda, x.data(), Device::cpu, xh.data(), xh.size() * sizeof(float));
    device_copy(Device::cuda, t.data(), Device::cpu, th.data(), th.size() * sizeof(float));
    // One row at a time keeps the host copy small.
    V = Buffer<float>(kMaxK * P, Device::cuda);
    HV = Buffer<float>(kMaxK * P, Device::cuda);
    std::vector<float> row(static_cast<size_t>(P));
    FastNormal gv(5);
    for (int64_t k = 0; k < kMaxK; ++k) {
      gv.fill(row.data(), P);
      device_copy(Device::cuda, V.data() + k * P, Device::cpu, row.data(), row.size() * sizeof(float));
    }
    eng.reserve(N, kMaxK);  // every buffer up front: no allocation inside the timed loops
  }

  // Median gradient time, the denominator of every ratio.
  double gradient_ms() {
    if (grad_ms > 0) return grad_ms;
    for (int i = 0; i < 5; ++i) eng.gradient(c, x.data(), t.data(), N);
    cuda::EventTimer timer;
    std::vector<double> ms;
    for (int i = 0; i < 30; ++i) {
      timer.start();
      eng.gradient(c, x.data(), t.data(), N);
      ms.push_back(timer.stop_ms());
    }
    grad_ms = median(ms);
    return grad_ms;
  }
};

// Built once per net and kept for the process: the M net's directions take ~2 GB of device
// memory and seconds to draw, and Google Benchmark calls each function several times.
// Never destroyed, so no device buffer outlives the CUDA context at exit.
Setup& setup(Net n) {
  static Setup* s[2] = {nullptr, nullptr};
  Setup*& p = s[n == Net::S ? 0 : 1];
  if (!p) p = new Setup(n);
  return *p;
}

bool skip_without_gpu(benchmark::State& state) {
  if (cuda_available()) return false;
  state.SkipWithError(cuda_device_description().c_str());
  return true;
}

template <class F>
void run_timed(benchmark::State& state, Setup& s, int64_t K, F&& body) {
  const double grad_ms = s.gradient_ms();
  for (int i = 0; i < 3; ++i) body();  // warm-up: cuBLAS heuristics, first touch of the R buffers
  cuda::context().synchronize();
  cuda::EventTimer timer;
  std::vector<double> ms;
  for (auto _ : state) {
    timer.start();
    body();
    const double m = timer.stop_ms();
    ms.push_back(m);
    state.SetIterationTime(m / 1e3);
  }
  const double med = median(ms), kd = static_cast<double>(K);
  state.counters["ms"] = med;
  state.counters["ms_per_direction"] = med / kd;
  state.counters["gradient_ms"] = grad_ms;
  state.counters["x_gradient"] = med / grad_ms;
  state.counters["x_gradient_per_direction"] = med / kd / grad_ms;
  state.counters["K"] = kd;
  state.counters["params"] = static_cast<double>(s.net.layout().total);
}

void BM_Gradient_cuda(benchmark::State& state, Net n) {
  if (skip_without_gpu(state)) return;
  Setup& s = setup(n);
  run_timed(state, s, 1, [&] { benchmark::DoNotOptimize(s.eng.gradient(s.c, s.x.data(), s.t.data(), s.N)); });
}

void BM_Hvp_cuda(benchmark::State& state, Net n) {
  if (skip_without_gpu(state)) return;
  Setup& s = setup(n);
  const int64_t K = state.range(0);
  run_timed(state, s, K,
            [&] { benchmark::DoNotOptimize(s.eng.hvp(s.c, s.x.data(), s.t.data(), s.N, s.V.data(), s.HV.data(), K)); });
}

void BM_PrepareApply_cuda(benchmark::State& state, Net n) {
  if (skip_without_gpu(state)) return;
  Setup& s = setup(n);
  const int64_t K = state.range(0);
  s.gradient_ms();  // gradient() invalidates a prepared point: time it before prepare()
  s.eng.prepare(s.c, s.x.data(), s.t.data(), s.N);
  run_timed(state, s, K, [&] { s.eng.apply(s.V.data(), s.HV.data(), K); });
}

enum class Gemms { no_concat, one_stream, cublas, baseline };

void BM_HvpVariant_cuda(benchmark::State& state, Net n, Gemms g) {
  if (skip_without_gpu(state)) return;
  Setup& s = setup(n);
  const cuda::GemmMode mode = cuda::gemm_mode();
  const bool streams = cuda::context().concurrent_gemms(), pairs = rpass_pairs_as_one_gemm();
  if (g == Gemms::no_concat || g == Gemms::baseline) set_rpass_pairs_as_one_gemm(false);
  if (g == Gemms::one_stream || g == Gemms::baseline) cuda::context().set_concurrent_gemms(false);
  if (g == Gemms::cublas || g == Gemms::baseline) cuda::set_gemm_mode(cuda::GemmMode::cublas);
  run_timed(state, s, 1,
            [&] { benchmark::DoNotOptimize(s.eng.hvp(s.c, s.x.data(), s.t.data(), s.N, s.V.data(), s.HV.data(), 1)); });
  cuda::set_gemm_mode(mode);
  cuda::context().set_concurrent_gemms(streams);
  set_rpass_pairs_as_one_gemm(pairs);
}

#define CN_HVP_BENCHES(net, tag)                                                                             \
  BENCHMARK_CAPTURE(BM_Gradient_cuda, tag, net)->UseManualTime()->Unit(benchmark::kMillisecond);             \
  BENCHMARK_CAPTURE(BM_Hvp_cuda, tag, net)->Arg(1)->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond); \
  BENCHMARK_CAPTURE(BM_PrepareApply_cuda, tag, net)->Arg(1)->Arg(64)->UseManualTime()->Unit(benchmark::kMillisecond)

CN_HVP_BENCHES(Net::S, S_784_128_128_10_b256);
CN_HVP_BENCHES(Net::M, M_784_1024x4_10_b1024);
#define CN_HVP_VARIANT(g)                                                            \
  BENCHMARK_CAPTURE(BM_HvpVariant_cuda, M_784_1024x4_10_b1024_##g, Net::M, Gemms::g) \
      ->Arg(1)                                                                       \
      ->UseManualTime()                                                              \
      ->Unit(benchmark::kMillisecond)
CN_HVP_VARIANT(no_concat);
CN_HVP_VARIANT(one_stream);
CN_HVP_VARIANT(cublas);
CN_HVP_VARIANT(baseline);

}  // namespace

#else  // !CURVNET_HAVE_CUDA

namespace {
void BM_Hvp_cuda(benchmark::State& state) {
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
}
BENCHMARK(BM_Hvp_cuda);
}  // namespace

#endif
