// The CUDA context machinery: recorded graphs replay the same work as eager launches,
// worker threads with their own context compute the same results while the main thread
// works, the caching allocator never hands one stream's freed block to another, and work
// split over the context's two lanes gives one lane's results, eagerly and recorded.
// Skipped, with the reason, when no CUDA device is visible.
#include <gtest/gtest.h>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <thread>
#include <vector>

#include "core/memory.h"
#include "cuda_test_util.h"
#include "diagnostics/hvp.h"
#include "kernels/cuda/context.cuh"
#include "layers/model.h"
#include "test_util.h"

using namespace cn;

namespace {

// A small float64 network and a batch on the current context: forward, loss, backward.
struct Net {
  static constexpr int64_t N = 48, I = 20, C = 4;
  ModelConfig mc;
  Sequential<double> model;
  Loss<double> loss{LossKind::cross_entropy};
  Buffer<double> x{N * I, Device::cuda}, y{N, Device::cuda}, mean{1, Device::cuda};

  explicit Net(uint32_t seed) : mc(config()), model(resolve_layers(mc, C), I, Device::cuda) {
    model.initialize(mc, seed);
    model.reserve(N);
    loss.reserve(Device::cuda, N, C);
    const std::vector<double> xh = test::random_vec(N * I, seed + 1);
    std::vector<double> yh(static_cast<size_t>(N));
    for (int64_t n = 0; n < N; ++n) yh[static_cast<size_t>(n)] = static_cast<double>((n * 7 + seed) % C);
    device_copy(Device::cuda, x.data(), Device::cpu, xh.data(), xh.size() * sizeof(double));
    device_copy(Device::cuda, y.data(), Device::cpu, yh.data(), yh.size() * sizeof(double));
  }
  static ModelConfig config() {
    ModelConfig c;
    c.hidden = {32, 24};
    c.activation = LayerKind::tanh;
    c.batchnorm = true;
    return c;
  }
  void forward_backward() {
    PassCtx c;
    c.device = Device::cuda;
    c.training = true;
    const double* z = model.forward(c, x.data(), N);
    loss.forward_backward_to(c, z, y.data(), N, C, mean.data());
    model.backward(c, loss.dz(), N);
  }
  std::vector<double> grads() {
    std::vector<double> g(static_cast<size_t>(model.layout().total));
    device_copy(Device::cpu, g.data(), Device::cuda, model.grads().data(), g.size() * sizeof(double));
    return g;
  }
  double loss_value() {
    double v = 0;
    device_copy(Device::cpu, &v, Device::cuda, mean.data(), sizeof(double));
    return v;
  }
};

}  // namespace

TEST(CudaContext, GraphReplayEqualsEagerLaunches) {
  CN_REQUIRE_GPU();
  Net net(3);
  net.forward_backward();
  const std::vector<double> eager = net.grads();
  const double eager_loss = net.loss_value();

  cuda::Graph graph;
  EXPECT_FALSE(graph.replay()) << "nothing recorded yet";
  // Poison what the graph must write, so a replay that does nothing cannot pass.
  std::vector<double> nan(eager.size(), std::nan(""));
  device_copy(Device::cuda, net.model.grads().data(), Device::cpu, nan.data(), nan.size() * sizeof(double));
  graph.record([&] { net.forward_backward(); });
  ASSERT_TRUE(graph.recorded());
  EXPECT_TRUE(std::isnan(net.grads()[0])) << "recording must not run the work";
  ASSERT_TRUE(graph.replay());
  const std::vector<double> replayed = net.grads();
  // Equal up to the GEMM algorithm (the backend may time candidates on first use).
  for (size_t i = 0; i < eager.size(); ++i) ASSERT_NEAR(replayed[i], eager[i], 1e-12) << "gradient " << i;
  EXPECT_NEAR(net.loss_value(), eager_loss, 1e-13);

  // A larger workspace request moves the workspace: the recording is stale.
  cuda::context().workspace(size_t(64) << 20);
  EXPECT_FALSE(graph.replay());
}

TEST(CudaContext, WorkerContextsMatchTheMainThread) {
  CN_REQUIRE_GPU();
  // The reference: every net computed one after another on the main context.
  std::vector<std::vector<double>> want;
  for (uint32_t s = 0; s < 3; ++s) {
    Net net(10 + s);
    net.forward_backward();
    want.push_back(net.grads());
  }
  // The same nets, two on worker threads with their own contexts, one on the main thread,
  // all at once and repeatedly (buffers allocated and freed on each context).
  std::vector<std::vector<double>> got(3);
  auto work = [&](uint32_t s) {
    for (int rep = 0; rep < 5; ++rep) {
      Net net(10 + s);
      net.forward_backward();
      got[s] = net.grads();
    }
  };
  std::vector<std::thread> workers;
  for (uint32_t s = 1; s < 3; ++s)
    workers.emplace_back([&, s] {
      cuda::Context ctx;
      cuda::ContextScope scope(ctx);
      EXPECT_NE(cuda::context().stream(), nullptr);
      work(s);
    });
  work(0);
  for (auto& t : workers) t.join();
  for (size_t s = 0; s < 3; ++s) {
    ASSERT_EQ(got[s].size(), want[s].size());
    for (size_t i = 0; i < want[s].size(); ++i)
      ASSERT_NEAR(got[s][i], want[s][i], 1e-12) << "net " << s << " gradient " << i;
  }
}

TEST(CudaContext, FreedBlocksStayWithTheirStream) {
  CN_REQUIRE_GPU();
  const size_t bytes = 3 << 20;  // a size no other test in this process caches
  void* a = device_alloc(Device::cuda, bytes);
  device_free(Device::cuda, a);
  {
    cuda::Context other;
    cuda::ContextScope scope(other);
    EXPECT_NE(cuda::context().stream(), nullptr);
    void* b = device_alloc(Device::cuda, bytes);
    EXPECT_NE(b, a) << "another stream got a block the first stream's work may still use";
    device_free(Device::cuda, b);
  }
  void* c = device_alloc(Device::cuda, bytes);
  EXPECT_EQ(c, a) << "the same stream reuses its own freed block";
  device_free(Device::cuda, c);
}

// Linear's backward puts the weight gradient on the side lane and dx on the main one
// (CURVNET_GEMM_STREAMS): the same numbers as one lane, eagerly and from a recorded graph
// (the fork and join are captured; the recording ends joined).
TEST(CudaContext, TwoLanesMatchOneLaneEagerAndRecorded) {
  CN_REQUIRE_GPU();
  cuda::Context& ctx = cuda::context();
  const bool previous = ctx.concurrent_gemms();
  Net net(21);
  ctx.set_concurrent_gemms(false);
  net.forward_backward();
  const std::vector<double> one = net.grads();
  ctx.set_concurrent_gemms(true);
  net.forward_backward();
  const std::vector<double> two = net.grads();
  EXPECT_FALSE(ctx.on_side());
  ASSERT_EQ(one.size(), two.size());
  for (size_t i = 0; i < one.size(); ++i) ASSERT_NEAR(two[i], one[i], 1e-13 * (1 + std::fabs(one[i]))) << i;

  cuda::Graph graph;
  graph.record([&] { net.forward_backward(); });
  EXPECT_FALSE(ctx.on_side());
  const std::vector<double> nan(one.size(), std::nan(""));
  device_copy(Device::cuda, net.model.grads().data(), Device::cpu, nan.data(), nan.size() * sizeof(double));
  ASSERT_TRUE(graph.replay());
  const std::vector<double> replayed = net.grads();
  for (size_t i = 0; i < one.size(); ++i) ASSERT_NEAR(replayed[i], two[i], 1e-13 * (1 + std::fabs(two[i]))) << i;
  ctx.set_concurrent_gemms(previous);
}

// The R-backward of Linear layers at least kPairMinWidthGpu wide: (Hv)θ on the side lane,
// and for one direction (Hv)W as one product over stacked operands. Exact HVPs in float64
// against the CPU (which stacks at every width), with each switch on and off.
TEST(CudaContext, RBackwardLanesAndPairedProductMatchTheCpu) {
  CN_REQUIRE_GPU();
  constexpr int64_t N = 40, I = 24, C = 5;
  ModelConfig mc;
  mc.hidden = {kPairMinWidthGpu, kPairMinWidthGpu};
  mc.activation = LayerKind::tanh;
  const auto specs = resolve_layers(mc, C);
  Sequential<double> cpu_net(specs, I, Device::cpu), gpu_net(specs, I, Device::cuda);
  cpu_net.initialize(mc, 31);
  gpu_net.initialize(mc, 31);
  Loss<double> cpu_loss(LossKind::cross_entropy), gpu_loss(LossKind::cross_entropy);
  HvpEngine<double> cpu_eng(cpu_net, cpu_loss), gpu_eng(gpu_net, gpu_loss);
  const int64_t P = cpu_net.layout().total;
  const std::vector<double> xh = test::random_vec(N * I, 32), v = test::random_vec(2 * P, 33);
  std::vector<double> th(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) th[static_cast<size_t>(n)] = static_cast<double>(n % C);
  Buffer<double> x(N * I, Device::cuda), t(N, Device::cuda), V(2 * P, Device::cuda), HV(2 * P, Device::cuda);
  device_copy(Device::cuda, x.data(), Device::cpu, xh.data(), xh.size() * sizeof(double));
  device_copy(Device::cuda, t.data(), Device::cpu, th.data(), th.size() * sizeof(double));
  device_copy(Device::cuda, V.data(), Device::cpu, v.data(), v.size() * sizeof(double));
  PassCtx cc, gc;
  gc.device = Device::cuda;
  for (int64_t K : {int64_t(1), int64_t(2)}) {
    std::vector<double> want(static_cast<size_t>(K * P));
    cpu_eng.hvp(cc, xh.data(), th.data(), N, v.data(), want.data(), K);
    double scale = 0;
    for (double w : want) scale = std::max(scale, std::fabs(w));
    ASSERT_GT(scale, 1e-6);
    cuda::Context& ctx = cuda::context();
    const bool streams = ctx.concurrent_gemms(), pairs = rpass_pairs_as_one_gemm();
    for (int lanes = 0; lanes < 2; ++lanes)
      for (int pair = 0; pair < 2; ++pair) {
        ctx.set_concurrent_gemms(lanes != 0);
        set_rpass_pairs_as_one_gemm(pair != 0);
        gpu_eng.hvp(gc, x.data(), t.data(), N, V.data(), HV.data(), K);
        EXPECT_FALSE(ctx.on_side());
        std::vector<double> got(static_cast<size_t>(K * P));
        device_copy(Device::cpu, got.data(), Device::cuda, HV.data(), got.size() * sizeof(double));
        for (size_t i = 0; i < got.size(); ++i)
          ASSERT_NEAR(got[i], want[i], 1e-11 * scale)
              << "K=" << K << " lanes=" << lanes << " pair=" << pair << " " << i;
      }
    ctx.set_concurrent_gemms(streams);
    set_rpass_pairs_as_one_gemm(pairs);
  }
}

#else  // !CURVNET_HAVE_CUDA

TEST(CudaContext, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif
