// GPU benchmarks of the GEMMs of a Linear layer (kernels/ops.h: gemm, gemm_bias,
// gemm_bias_grad), float32, at the shapes of the M network of bench_cuda (784-1024x4-10,
// batch 1024): the forward y = x Wᵀ + b (1024 x 1024 from K = 784 and K = 1024), the weight
// and bias gradients dW = dyᵀ x, db = Σ dy, and the input gradient dx = dy W. Each runs in
// the three modes of kernels/cuda/gemm.h: cublas (cublas<t>gemm, the bias added or summed
// by a separate kernel), lt_heuristic (cuBLASLt, epilogue fused, the heuristic's first
// algorithm) and lt_tuned (the fastest candidate timed on first use; the label says which
// and by how much), and the plain gemm beside the fused ops shows what the epilogue costs.
// Timed with CUDA events on the context's stream over calls back to back (UseManualTime).
// Without a GPU every benchmark is skipped with the reason.
#include <benchmark/benchmark.h>

#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include <random>

#include "core/memory.h"
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/ops.h"

namespace {

using namespace cn;

enum class Op { gemm, gemm_bias, gemm_bias_grad, gemm_dx };

struct Case {
  const char* name;
  Op op;
  int64_t N, I, O;  // batch, inputs, outputs of the Linear layer
};

const char* mode_name(cuda::GemmMode m) {
  return m == cuda::GemmMode::cublas ? "cublas" : m == cuda::GemmMode::lt_heuristic ? "lt_heuristic" : "lt_tuned";
}

Buffer<float> random_device(int64_t n, uint32_t seed) {
  std::vector<float> h(static_cast<size_t>(n));
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  for (auto& v : h) v = u(rng);
  Buffer<float> d(n, Device::cuda);
  device_copy(Device::cuda, d.data(), Device::cpu, h.data(), h.size() * sizeof(float));
  return d;
}

void BM_LinearGemm_cuda(benchmark::State& state, Case c, cuda::GemmMode mode, bool tf32) {
  if (!cuda_available()) {
    state.SkipWithError(cuda_device_description().c_str());
    return;
  }
  const int64_t N = c.N, I = c.I, O = c.O;
  cuda::context().set_allow_tf32(tf32);
  const cuda::GemmMode previous = cuda::gemm_mode();
  cuda::set_gemm_mode(mode);
  Buffer<float> x = random_device(N * I, 1), W = random_device(O * I, 2), b = random_device(O, 3);
  Buffer<float> dy = random_device(N * O, 4), y(N * O, Device::cuda), dW(O * I, Device::cuda), db(O, Device::cuda);
  Buffer<float> dx(N * I, Device::cuda);
  auto call = [&] {
    switch (c.op) {
      case Op::gemm:
        cuda::gemm<float>(false, true, N, O, I, 1.f, x.data(), I, W.data(), I, 0.f, y.data(), O);
        break;
      case Op::gemm_bias:
        cuda::gemm_bias<float>(false, true, N, O, I, x.data(), I, W.data(), I, b.data(), y.data(), O);
        break;
      case Op::gemm_bias_grad:
        cuda::gemm_bias_grad<float>(O, I, N, dy.data(), O, x.data(), I, dW.data(), I, db.data());
        break;
      case Op::gemm_dx:
        cuda::gemm<float>(false, false, N, I, O, 1.f, dy.data(), O, W.data(), I, 0.f, dx.data(), I);
        break;
    }
  };
  for (int i = 0; i < 3; ++i) call();  // warm-up: plans, timing of the candidates, modules
  cuda::context().synchronize();

  constexpr int per = 20;
  cuda::EventTimer timer;
  for (auto _ : state) {
    timer.start();
    for (int i = 0; i < per; ++i) call();
    state.SetIterationTime(timer.stop_ms() / 1e3 / per);
  }
  const double flops = 2.0 * static_cast<double>(N) * static_cast<double>(I) * static_cast<double>(O);
  state.counters["TFLOP/s"] =
      benchmark::Counter(flops * 1e-12 * per * static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);

  // What served the call: the plan with this problem's key.
  const bool grad = c.op == Op::gemm_bias_grad, back = grad || c.op == Op::gemm_dx;
  const char* epi = c.op == Op::gemm_bias ? "bias" : grad ? "bgradb" : "none";
  const bool ta = grad, tb = !back;
  const int64_t M = grad ? O : N, Nc = back ? I : O, K = grad ? N : (c.op == Op::gemm_dx ? O : I);
  std::string label = mode == cuda::GemmMode::cublas ? "cublas<t>gemm" : "";
  if (mode != cuda::GemmMode::cublas)
    for (const cuda::GemmPlanInfo& p : cuda::gemm_plans())
      if (p.dtype_bytes == 4 && p.tf32 == tf32 && p.epilogue == epi && p.ta == ta && p.tb == tb && p.M == M &&
          p.Nc == Nc && p.K == K)
        label = cuda::describe(p);
  state.SetLabel(label);
  cuda::set_gemm_mode(previous);
  cuda::context().set_allow_tf32(false);
}

const std::vector<Case> kCases = {
    {"fwd_1024x1024x784", Op::gemm, 1024, 784, 1024},
    {"fwd_1024x1024x784", Op::gemm_bias, 1024, 784, 1024},
    {"fwd_1024x1024x1024", Op::gemm, 1024, 1024, 1024},
    {"fwd_1024x1024x1024", Op::gemm_bias, 1024, 1024, 1024},
    {"dW_1024x784_N1024", Op::gemm_bias_grad, 1024, 784, 1024},
    {"dW_1024x1024_N1024", Op::gemm_bias_grad, 1024, 1024, 1024},
    {"dx_1024x1024_O1024", Op::gemm_dx, 1024, 1024, 1024},
    {"fwd_1024x10x1024", Op::gemm_bias, 1024, 1024, 10},
    {"dW_10x1024_N1024", Op::gemm_bias_grad, 1024, 1024, 10},
};

const char* op_name(Op op) {
  return op == Op::gemm_bias ? "gemm_bias" : op == Op::gemm_bias_grad ? "gemm_bias_grad" : "gemm";
}

const bool registered = [] {
  for (const Case& c : kCases)
    for (cuda::GemmMode m : {cuda::GemmMode::cublas, cuda::GemmMode::lt_heuristic, cuda::GemmMode::lt_tuned}) {
      const std::string name = std::string("BM_LinearGemm_cuda/") + op_name(c.op) + "/" + c.name + "/" + mode_name(m);
      benchmark::RegisterBenchmark(name.c_str(), BM_LinearGemm_cuda, c, m, false)
          ->UseManualTime()
          ->Unit(benchmark::kMicrosecond);
    }
  for (const Case& c : {kCases[1], kCases[4]}) {
    const std::string name = std::string("BM_LinearGemm_cuda/") + op_name(c.op) + "/" + c.name + "/lt_tuned_tf32";
    benchmark::RegisterBenchmark(name.c_str(), BM_LinearGemm_cuda, c, cuda::GemmMode::lt_tuned, true)
        ->UseManualTime()
        ->Unit(benchmark::kMicrosecond);
  }
  return true;
}();

}  // namespace

#else  // !CURVNET_HAVE_CUDA

namespace {
void BM_LinearGemm_cuda(benchmark::State& state) {
  state.SkipWithError("built without CUDA");
  for (auto _ : state) {}
}
BENCHMARK(BM_LinearGemm_cuda);
}  // namespace

#endif
