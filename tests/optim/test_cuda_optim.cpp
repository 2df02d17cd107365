// The CUDA optimisers, clipping and gradient noise (optim/cuda/optimizer_cuda.h) against the
// CPU ones (optim/optimizer.h) on random data, float32 and float64, and a whole training
// step on the GPU against the CPU (which must not call cudaMalloc after the first step).
// Metric: nmse = sum (gpu - cpu)^2 / sum cpu^2. Skipped, with the reason, when no CUDA
// device is visible; compiled only in builds with the CUDA backend.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "core/device.h"

#ifdef CURVNET_HAVE_CUDA
#include "core/memory.h"
#include "cuda_test_util.h"
#include "kernels/cuda/context.cuh"
#include "layers/model.h"
#include "optim/cuda/optimizer_cuda.h"
#include "optim/optimizer.h"

using namespace cn;
using test::nmse;
using test::to_device;
using test::to_host;

namespace {

template <class T>
struct Tol;
template <>
struct Tol<float> {
  // The same float operations in the same order on both sides; the device may contract
  // a*b+c into one FMA: a few ulp (1e-7) relative per step, squared.
  static constexpr double update = 1e-12;
  // Whole steps chain GEMMs (another summation order), BatchNorm and the loss, and Adam
  // divides by sqrt(v): a gradient entry near zero moves its update by up to lr under
  // float rounding, so a few entries differ by ~lr relative to weights of ~0.1. Measured
  // on an H100: 5.9e-8 after 3 steps; float64 (below) shows the math is the same.
  static constexpr double train = 1e-6;
};
template <>
struct Tol<double> {
  static constexpr double update = 1e-28;
  static constexpr double train = 1e-24;
};
// Norms are double sums of the same values in another order on both types: ~1e-15 relative.
constexpr double kNormRel = 1e-12;

// Two layers with a weight and a bias each; layer 2's weight spans several 8192-element
// tiles and is not a multiple of a tile.
ParamLayout test_layout() {
  ParamLayout l;
  l.segments.push_back(ParamSegment{"0.weight", 0, 0, 20, 30, false});
  l.segments.push_back(ParamSegment{"0.bias", 0, 600, 20, 1, true});
  l.segments.push_back(ParamSegment{"2.weight", 2, 620, 90, 100, false});
  l.segments.push_back(ParamSegment{"2.bias", 2, 9620, 90, 1, true});
  l.total = 9710;
  return l;
}

OptimConfig config_for(const std::string& name) {
  OptimConfig c;
  c.name = cn::parse_enum(cn::kOptimKinds, name, "optim.name");
  c.lr = 1e-2;
  c.weight_decay = 1e-2;
  c.l1 = 1e-3;
  PerLayerOptim pl;  // a second coefficient group: a second launch
  pl.layer = 2;
  pl.weight_decay = 3e-2;
  pl.lr_scale = 0.5;
  c.per_layer.push_back(pl);
  return c;
}

template <class T>
class CudaOptim : public ::testing::Test {};
using Types = ::testing::Types<float, double>;
TYPED_TEST_SUITE(CudaOptim, Types);

const char* const kKinds[] = {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam", "amsgrad"};

TYPED_TEST(CudaOptim, StepsMatchCpu) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const ParamLayout layout = test_layout();
  const int64_t P = layout.total;
  for (const char* kind : kKinds) {
    const OptimConfig config = config_for(kind);
    auto cpu_opt = make_optimizer<T>(config, layout);
    auto gpu_opt = make_optimizer_cuda<T>(config, layout);
    std::vector<T> p = test::random_values<T>(P, 1);
    Buffer<T> dp = to_device(p);
    for (int64_t step = 0; step < 4; ++step) {
      const std::vector<T> g = test::random_values<T>(P, 100 + static_cast<uint32_t>(step));
      Buffer<T> dg = to_device(g);
      const double lr = 1e-2 * (1.0 + 0.3 * static_cast<double>(step));
      cpu_opt->step(p.data(), g.data(), lr, step);
      gpu_opt->step(dp.data(), dg.data(), lr, step);
    }
    EXPECT_LE(nmse(to_host(dp.data(), P), p), Tol<T>::update) << kind << " parameters";
    auto cs = cpu_opt->state();
    auto gs = gpu_opt->state();
    ASSERT_EQ(cs.size(), gs.size()) << kind;
    for (size_t j = 0; j < cs.size(); ++j) {
      EXPECT_EQ(gs[j].first, cs[j].first) << kind;
      EXPECT_LE(nmse(*gs[j].second, *cs[j].second), Tol<T>::update) << kind << " state " << cs[j].first;
    }
  }
}

// Segments that start and end off the 16-byte grid: the update kernel's element-wise
// heads and tails around its vector loads, in every tile of a segment.
ParamLayout unaligned_layout() {
  ParamLayout l;
  l.segments.push_back(ParamSegment{"0.weight", 0, 0, 7, 5, false});
  l.segments.push_back(ParamSegment{"0.bias", 0, 35, 7, 1, true});
  l.segments.push_back(ParamSegment{"2.weight", 2, 42, 13, 701, false});
  l.segments.push_back(ParamSegment{"2.bias", 2, 9155, 13, 1, true});
  l.total = 9168;
  return l;
}

TYPED_TEST(CudaOptim, StepsMatchCpuOnUnalignedSegments) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const ParamLayout layout = unaligned_layout();
  const int64_t P = layout.total;
  // shift 1: parameters and gradients one element off their allocation, so off the 16-byte
  // grid: the element-wise kernel.
  for (int64_t shift : {0, 1})
    for (const char* kind : kKinds) {
      const OptimConfig config = config_for(kind);
      auto cpu_opt = make_optimizer<T>(config, layout);
      auto gpu_opt = make_optimizer_cuda<T>(config, layout);
      std::vector<T> p = test::random_values<T>(P + shift, 21);
      Buffer<T> dp = to_device(p);
      for (int64_t step = 0; step < 3; ++step) {
        const std::vector<T> g = test::random_values<T>(P + shift, 200 + static_cast<uint32_t>(step));
        Buffer<T> dg = to_device(g);
        cpu_opt->step(p.data() + shift, g.data() + shift, 1e-2, step);
        gpu_opt->step(dp.data() + shift, dg.data() + shift, 1e-2, step);
      }
      const std::string what = std::string(kind) + " shift " + std::to_string(shift);
      EXPECT_LE(nmse(to_host(dp.data(), P + shift), p), Tol<T>::update) << what << " parameters";
      auto cs = cpu_opt->state();
      auto gs = gpu_opt->state();
      ASSERT_EQ(cs.size(), gs.size()) << what;
      for (size_t j = 0; j < cs.size(); ++j)
        EXPECT_LE(nmse(*gs[j].second, *cs[j].second), Tol<T>::update) << what << " state " << cs[j].first;
    }
}

TYPED_TEST(CudaOptim, StateWrittenByTheHostReachesTheDevice) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const ParamLayout layout = test_layout();
  const int64_t P = layout.total;
  const OptimConfig config = config_for("adam");
  auto cpu_opt = make_optimizer<T>(config, layout);
  auto gpu_opt = make_optimizer_cuda<T>(config, layout);
  std::vector<T> p = test::random_values<T>(P, 2);
  Buffer<T> dp = to_device(p);
  const std::vector<T> g = test::random_values<T>(P, 3);
  Buffer<T> dg = to_device(g);
  cpu_opt->step(p.data(), g.data(), 1e-2, 0);
  gpu_opt->step(dp.data(), dg.data(), 1e-2, 0);
  // A checkpoint being loaded: both get the same new state.
  for (auto* opt : {cpu_opt.get(), gpu_opt.get()})
    for (auto& [name, values] : opt->state())
      for (size_t i = 0; i < values->size(); ++i) (*values)[i] = static_cast<T>(0.01 * static_cast<double>(i % 7 + 1));
  cpu_opt->step(p.data(), g.data(), 1e-2, 1);
  gpu_opt->step(dp.data(), dg.data(), 1e-2, 1);
  EXPECT_LE(nmse(to_host(dp.data(), P), p), Tol<T>::update);
}

TYPED_TEST(CudaOptim, ClippingMatchesCpu) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const ParamLayout layout = test_layout();
  const int64_t P = layout.total;
  const std::vector<T> params = test::random_values<T>(P, 4, -0.05, 0.05);  // small: agc clips
  Buffer<T> dparams = to_device(params);
  for (const char* mode : {"none", "norm", "layer_norm", "value", "agc", "agc_unit"})
    for (bool tight : {true, false}) {
      ClipConfig c;
      c.mode = cn::parse_enum(cn::kClipModes, mode, "clip.mode");
      c.max_norm = tight ? 10.0 : 1e6;
      c.value = tight ? 1.0 : 10.0;
      c.agc_lambda = tight ? 0.01 : 1e6;
      c.agc_eps = 1e-3;
      std::vector<T> g = test::random_values<T>(P, 5);
      Buffer<T> dg = to_device(g);
      CudaGradClipper<T> clipper(c, layout, 8);
      clipper.clip(dparams.data(), dg.data(), 3);
      const ClipResult want = clip_gradients<T>(c, layout, params.data(), g.data());
      const ClipResult got = clipper.read(3);
      const std::string what = std::string(mode) + (tight ? " tight" : " loose");
      EXPECT_LE(nmse(to_host(dg.data(), P), g), Tol<T>::update) << what;
      EXPECT_NEAR(got.norm_before, want.norm_before, kNormRel * want.norm_before) << what;
      EXPECT_NEAR(got.norm_after, want.norm_after, kNormRel * want.norm_after) << what;
      EXPECT_EQ(got.clipped, want.clipped) << what;
      if (std::string(mode) != "none") EXPECT_EQ(got.clipped, tight) << what;
    }
}

TYPED_TEST(CudaOptim, ClipRingKeepsTheLastRecords) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  const ParamLayout layout = test_layout();
  ClipConfig c;
  c.mode = cn::ClipMode::norm;
  CudaGradClipper<T> clipper(c, layout, 4);
  Buffer<T> dparams = to_device(test::random_values<T>(layout.total, 6));
  for (int64_t step = 0; step < 6; ++step) {
    Buffer<T> dg = to_device(test::random_values<T>(layout.total, 7 + static_cast<uint32_t>(step)));
    clipper.clip(dparams.data(), dg.data(), step);
  }
  EXPECT_TRUE(clipper.read(5).clipped);
  EXPECT_THROW(clipper.read(1), Error);  // overwritten by step 5
  EXPECT_THROW(clipper.read(9), Error);  // never recorded
  const auto all = clipper.read_all();
  ASSERT_EQ(all.size(), 4u);
  EXPECT_EQ(all.front().first, 2);
  EXPECT_EQ(all.back().first, 5);
}

TYPED_TEST(CudaOptim, GradientNoiseMatchesCpu) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  OptimConfig c;
  c.grad_noise_eta = 0.3;
  const int64_t n = 12345;
  std::vector<T> g = test::random_values<T>(n, 8);
  Buffer<T> dg = to_device(g);
  add_gradient_noise<T>(c, 42, 7, g.data(), n);
  add_gradient_noise_cuda<T>(c, 42, 7, dg.data(), n);
  // Philox is integer math; Box-Muller's log/cos/sqrt in double differ by an ulp at most.
  EXPECT_LE(nmse(to_host(dg.data(), n), g), Tol<T>::update);
}

// A whole training step (forward, loss, backward, Adam) on the GPU and on the CPU from the
// same initial parameters; after the first step no cudaMalloc happens.
TYPED_TEST(CudaOptim, TrainingStepMatchesCpuWithoutAllocating) {
  CN_REQUIRE_GPU();
  using T = TypeParam;
  ModelConfig mc;
  mc.hidden = {48, 40};
  mc.activation = LayerKind::tanh;
  mc.batchnorm = true;
  mc.dropout = 0.2;
  const int64_t N = 64, I = 30, C = 5;
  const std::vector<LayerSpec> specs = resolve_layers(mc, C);
  Sequential<T> cpu_model(specs, I, Device::cpu), gpu_model(specs, I, Device::cuda);
  for (auto* m : {&cpu_model, &gpu_model}) {
    m->initialize(mc, 11);
    m->reserve(N);
  }
  Loss<T> cpu_loss(LossKind::cross_entropy), gpu_loss(LossKind::cross_entropy);
  cpu_loss.reserve(Device::cpu, N, C);
  gpu_loss.reserve(Device::cuda, N, C);
  OptimConfig oc;
  oc.name = cn::OptimKind::adam;
  auto cpu_opt = make_optimizer<T>(oc, cpu_model.layout());
  auto gpu_opt = make_optimizer_cuda<T>(oc, gpu_model.layout());

  const std::vector<T> x = test::random_values<T>(N * I, 12);
  std::vector<T> y(static_cast<size_t>(N));
  for (int64_t n = 0; n < N; ++n) y[static_cast<size_t>(n)] = static_cast<T>(n % C);
  Buffer<T> dx = to_device(x), dy = to_device(y);
  int64_t mallocs_after_first = 0;
  for (int64_t step = 0; step < 3; ++step) {
    PassCtx c;
    c.training = true;
    c.dropout_key = philox_key(5, RngStream::dropout);
    c.step = static_cast<uint64_t>(step);
    c.device = Device::cpu;
    const T* z = cpu_model.forward(c, x.data(), N);
    const double lc = cpu_loss.forward_backward(c, z, y.data(), N, C);
    cpu_model.backward(c, cpu_loss.dz(), N);
    cpu_opt->step(cpu_model.params().data(), cpu_model.grads().data(), 1e-3, step);
    c.device = Device::cuda;
    const T* dz = gpu_model.forward(c, dx.data(), N);
    const double lg = gpu_loss.forward_backward(c, dz, dy.data(), N, C);
    gpu_model.backward(c, gpu_loss.dz(), N);
    gpu_opt->step(gpu_model.params().data(), gpu_model.grads().data(), 1e-3, step);
    EXPECT_NEAR(lg, lc, 1e-4 * std::fabs(lc)) << "step " << step;
    if (step == 0) mallocs_after_first = cuda::memory_stats().cuda_mallocs;
  }
  EXPECT_EQ(cuda::memory_stats().cuda_mallocs, mallocs_after_first) << "cudaMalloc inside a training step";
  const int64_t P = cpu_model.layout().total;
  std::vector<T> want(cpu_model.params().data(), cpu_model.params().data() + P);
  EXPECT_LE(nmse(to_host(gpu_model.params().data(), P), want), Tol<T>::train);
}

}  // namespace

#else  // !CURVNET_HAVE_CUDA

TEST(CudaOptim, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif
