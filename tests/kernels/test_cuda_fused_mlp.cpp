// The fused MLP kernels (kernels/cuda/fused_mlp.h) against the CPU backend's layers, and the
// train.fused_mlp key. Without a GPU only the eligibility and config tests run.
//
// Kernel checks, float32 and float64, for every activation, ragged batches (not a multiple of
// the 16-row tile), widths 1, 17, 64 and 128 and inputs 5, 64, 130 and 784:
//   layer by layer: each layer's output, input gradient and dW/db against the CPU layer run
//     on the GPU's own inputs to that layer (the previous layer's GPU output, the GPU's
//     output gradient), so a kink of relu met on one side by one backend and on the other
//     by the other cannot blur the check; by induction this covers the whole chain;
//   whole chain: every layer output and output gradient and the whole gradient buffer against
//     the CPU model's forward and backward (float64 always; float32 for smooth activations).
// Metric: nmse = Σ (gpu − cpu)² / Σ cpu² (tests/cuda_test_util.h). Every buffer the kernels
// fill starts as NaN, so a missing write fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/device.h"
#include "kernels/cuda/fused_mlp.h"
#include "test_util.h"
#include "train/trainer.h"

#ifdef CURVNET_HAVE_CUDA
#include "cuda_test_util.h"
#include "layers/fused_mlp_view.h"
#include "layers/model.h"
#endif

using namespace cn;

namespace {

using Shapes = std::vector<FusedMlpLayerShape>;
constexpr LayerKind kLin = LayerKind::linear;

std::string why(const Shapes& s) { return fused_mlp_ineligibility(s); }

bool mentions(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

}  // namespace

TEST(FusedMlpEligibility, NarrowLinearActivationStacksAreEligible) {
  EXPECT_EQ(why({{kLin, 784, 128},
                 {LayerKind::relu, 128, 128},
                 {kLin, 128, 128},
                 {LayerKind::relu, 128, 128},
                 {kLin, 128, 10}}),
            "");
  // Width 1 and 128, two linear layers in a row, ending with an activation.
  EXPECT_EQ(why({{kLin, 5, 1}, {LayerKind::tanh, 1, 1}, {kLin, 1, 128}, {kLin, 128, 3}, {LayerKind::sigmoid, 3, 3}}),
            "");
  // Any input width; a single linear layer.
  EXPECT_EQ(why({{kLin, 100000, 7}}), "");
  for (const auto& k : kLayerKinds)
    if (is_activation(k.value)) EXPECT_EQ(why({{kLin, 3, 4}, {k.value, 4, 4}, {kLin, 4, 2}}), "") << k.name;
  Shapes eight;
  for (int i = 0; i < kFusedMlpMaxLinear; ++i) eight.push_back({kLin, 8, 8});
  EXPECT_EQ(why(eight), "");
}

TEST(FusedMlpEligibility, EveryReasonIsNamed) {
  EXPECT_TRUE(mentions(why({{kLin, 784, 129}, {LayerKind::relu, 129, 129}, {kLin, 129, 10}}), "129"));
  EXPECT_TRUE(mentions(why({{kLin, 10, 10}, {kLin, 10, 200}}), "layer 1"));
  EXPECT_TRUE(mentions(why({{kLin, 10, 64}, {LayerKind::batchnorm, 64, 64}, {LayerKind::relu, 64, 64}, {kLin, 64, 2}}),
                       "batchnorm"));
  EXPECT_TRUE(mentions(why({{kLin, 10, 64}, {LayerKind::relu, 64, 64}, {LayerKind::dropout, 64, 64}, {kLin, 64, 2}}),
                       "dropout"));
  EXPECT_TRUE(mentions(why({{kLin, 10, 64}, {LayerKind::relu, 64, 64}, {LayerKind::tanh, 64, 64}}), "two activations"));
  EXPECT_TRUE(mentions(why({{LayerKind::relu, 10, 10}, {kLin, 10, 2}}), "does not start with a linear"));
  EXPECT_FALSE(why({}).empty());
  Shapes nine;
  for (int i = 0; i <= kFusedMlpMaxLinear; ++i) nine.push_back({kLin, 8, 8});
  EXPECT_TRUE(mentions(why(nine), std::to_string(kFusedMlpMaxLinear)));
}

TEST(FusedMlpConfig, KeyTakesAutoOnOffAndDefaultsToOff) {
  EXPECT_EQ(Config{}.train.fused_mlp, FusedMlpMode::off);
  EXPECT_EQ(parse_config("", "f.toml").train.fused_mlp, FusedMlpMode::off);
  const std::pair<const char*, FusedMlpMode> modes[] = {
      {"auto", FusedMlpMode::automatic}, {"on", FusedMlpMode::on}, {"off", FusedMlpMode::off}};
  for (const auto& [name, mode] : modes)
    EXPECT_EQ(parse_config(std::string("[train]\nfused_mlp = \"") + name + "\"\n", "f.toml").train.fused_mlp, mode)
        << name;
  const std::string yes = test::input_error_of([] { parse_config("[train]\nfused_mlp = \"yes\"\n", "f.toml"); });
  EXPECT_TRUE(mentions(yes, "train.fused_mlp")) << "fused_mlp = \"yes\": " << yes;
}

namespace {
Config spirals_config(const std::string& extra) {
  return parse_config(R"(
[data]
dataset = "spirals"
n_samples = 300
batch_size = 64
[train]
steps = 2
device = "cpu"
)" + extra,
                      "fused.toml");
}
}  // namespace

TEST(FusedMlpConfig, OnWithAnIneligibleModelIsAOneLineConfigError) {
  const std::pair<const char*, const char*> cases[] = {
      {"[model]\nhidden = [256]\n", "256"},
      {"[model]\nhidden = [64]\nbatchnorm = true\n", "batchnorm"},
      {"[model]\nhidden = [64]\ndropout = 0.5\n", "dropout"},
  };
  for (const auto& [model, reason] : cases) {
    Config c = spirals_config(model);
    c.train.fused_mlp = FusedMlpMode::on;
    const std::string m = test::input_error_of([&] { StepRunner r(c); });
    EXPECT_TRUE(mentions(m, "train.fused_mlp")) << model << ": " << m;
    EXPECT_TRUE(mentions(m, reason)) << m;
    EXPECT_FALSE(mentions(m, "\n")) << m;
    c.train.fused_mlp = FusedMlpMode::automatic;  // auto falls back to the layers' passes
    EXPECT_NO_THROW(StepRunner{c});
  }
  // An eligible model with "on" trains; on the CPU the key changes nothing.
  Config on = spirals_config("[model]\nhidden = [128, 17]\n"), off = on;
  on.train.fused_mlp = FusedMlpMode::on;
  StepRunner a(on), b(off);
  for (int i = 0; i < 2; ++i) EXPECT_EQ(a.step(), b.step());
  EXPECT_EQ(a.parameters(), b.parameters());
}

#ifdef CURVNET_HAVE_CUDA

namespace {

using test::nmse;
using test::to_device;
using test::to_host;

template <class T>
void fill_nan(T* device_ptr, int64_t n) {
  const std::vector<T> nan(static_cast<size_t>(n), std::numeric_limits<T>::quiet_NaN());
  device_copy(Device::cuda, device_ptr, Device::cpu, nan.data(), nan.size() * sizeof(T));
}

template <class T>
std::vector<T> slice(const std::vector<T>& v, int64_t begin, int64_t n) {
  return std::vector<T>(v.begin() + begin, v.begin() + begin + n);
}

template <class T>
struct Tol;
template <>
struct Tol<float> {
  // One layer on the same inputs: another summation order over up to 784 terms (~sqrt(K)
  // eps relative per entry) and the device's expf/tanhf/erff (a few ulp): nmse ~1e-12.
  static constexpr double layer = 1e-10;
  // The whole chain (smooth activations only): rounding differences carried through layers.
  static constexpr double chain = 1e-8;
};
template <>
struct Tol<double> {
  static constexpr double layer = 1e-24;
  static constexpr double chain = 1e-20;
};

struct Case {
  std::string name;
  int64_t N = 0, I = 0;
  std::vector<LayerSpec> layers;
};

bool smooth(const std::vector<LayerSpec>& layers) {
  for (const LayerSpec& s : layers)
    if (s.type == LayerKind::relu || s.type == LayerKind::leaky_relu || s.type == LayerKind::elu) return false;
  return true;
}

// first_layer_gemm: the first layer's z by the backend's GEMM, or streamed through the kernel.
template <class T>
void check_case(const Case& k, bool first_layer_gemm) {
  SCOPED_TRACE(k.name + (sizeof(T) == 4 ? " float32" : " float64") +
               (first_layer_gemm ? ", first layer by GEMM" : ", first layer streamed"));
  const int64_t N = k.N, I = k.I;
  Sequential<T> cpu(k.layers, I, Device::cpu), ref(k.layers, I, Device::cpu), gpu(k.layers, I, Device::cuda);
  ASSERT_EQ(fused_mlp_ineligibility([&] {
              std::vector<FusedMlpLayerShape> s;
              for (size_t i = 0; i < gpu.size(); ++i)
                s.push_back({gpu.layer(i).kind(), gpu.layer(i).in_features(), gpu.layer(i).out_features()});
              return s;
            }()),
            "");
  // Random parameters (biases too, never zero), scaled so that pre-activations stay O(1).
  const int64_t P = cpu.layout().total;
  std::vector<T> params(static_cast<size_t>(P));
  uint32_t seed = 100;
  for (const ParamSegment& s : cpu.layout().segments) {
    const double bound = s.is_bias ? 0.5 : 1.5 / std::sqrt(static_cast<double>(s.cols));
    const std::vector<T> v = test::random_values<T>(s.size(), seed++, -bound, bound);
    std::copy(v.begin(), v.end(), params.begin() + s.offset);
  }
  for (Sequential<T>* m : {&cpu, &ref, &gpu}) {
    device_copy(m->device(), m->params().data(), Device::cpu, params.data(), params.size() * sizeof(T));
    m->reserve(N);
  }
  const int64_t O = cpu.n_outputs();
  const std::vector<T> x = test::random_values<T>(N * I, 1), dz = test::random_values<T>(N * O, 2, -0.1, 0.1);
  PassCtx cc;
  cc.device = Device::cpu;
  cc.training = true;
  cpu.forward(cc, x.data(), N);
  cpu.backward(cc, dz.data(), N);

  fill_nan(gpu.grads().data(), P);
  for (size_t i = 0; i < gpu.size(); ++i) {
    fill_nan(const_cast<T*>(gpu.layer_output(i)), N * gpu.layer(i).out_features());
    fill_nan(const_cast<T*>(gpu.output_grad(i)), N * gpu.layer(i).out_features());
  }
  const Buffer<T> xd = to_device(x), dzd = to_device(dz);
  cuda::FusedMlp<T> net = fused_mlp_of(gpu);
  EXPECT_EQ(net.first_layer_gemm, I > kFusedMlpMaxWidth);
  net.first_layer_gemm = first_layer_gemm;
  cuda::fused_mlp_forward<T>(net, xd.data(), N);
  cuda::fused_mlp_backward<T>(net, xd.data(), dzd.data(), N);
  const std::vector<T> grads = to_host(gpu.grads().data(), P);
  const size_t L = gpu.size();
  std::vector<std::vector<T>> out(L), out_grad(L);
  for (size_t i = 0; i < L; ++i) {
    out[i] = to_host(gpu.layer_output(i), N * gpu.layer(i).out_features());
    out_grad[i] = to_host(gpu.output_grad(i), N * gpu.layer(i).out_features());
  }
  EXPECT_EQ(out_grad[L - 1], dz) << "the last layer's output gradient is dz";

  // Layer by layer, each CPU layer on the GPU's inputs to it.
  std::vector<std::vector<T>> ref_out(L);
  for (size_t i = 0; i < L; ++i) {
    const std::vector<T>& in = i == 0 ? x : out[i - 1];
    ref_out[i].resize(out[i].size());
    ref.layer(i).forward(cc, in.data(), ref_out[i].data(), N);  // caches `in` and ref_out[i] for its backward
    EXPECT_LE(nmse(out[i], ref_out[i]), Tol<T>::layer) << "layer " << i << " output";
  }
  for (size_t i = L; i-- > 0;) {
    std::vector<T> dx(i > 0 ? out[i - 1].size() : 0);
    ref.layer(i).backward(cc, out_grad[i].data(), i > 0 ? dx.data() : nullptr, N);
    if (i > 0) EXPECT_LE(nmse(out_grad[i - 1], dx), Tol<T>::layer) << "layer " << i << " input gradient";
  }
  const std::vector<T> ref_grads(ref.grads().data(), ref.grads().data() + P);
  for (const ParamSegment& s : ref.layout().segments)
    EXPECT_LE(nmse(slice(grads, s.offset, s.size()), slice(ref_grads, s.offset, s.size())), Tol<T>::layer)
        << s.name << ".grad";
  for (T g : grads) ASSERT_TRUE(std::isfinite(static_cast<double>(g))) << "a gradient was not written";

  // The whole chain against the CPU model.
  if (sizeof(T) == 8 || smooth(k.layers)) {
    for (size_t i = 0; i < L; ++i) {
      const int64_t n = N * cpu.layer(i).out_features();
      EXPECT_LE(nmse(out[i], std::vector<T>(cpu.layer_output(i), cpu.layer_output(i) + n)), Tol<T>::chain)
          << "chain: layer " << i << " output";
      EXPECT_LE(nmse(out_grad[i], std::vector<T>(cpu.output_grad(i), cpu.output_grad(i) + n)), Tol<T>::chain)
          << "chain: layer " << i << " output gradient";
    }
    const std::vector<T> cpu_grads(cpu.grads().data(), cpu.grads().data() + P);
    for (const ParamSegment& s : cpu.layout().segments)
      EXPECT_LE(nmse(slice(grads, s.offset, s.size()), slice(cpu_grads, s.offset, s.size())), Tol<T>::chain)
          << "chain: " << s.name << ".grad";
  }
}

std::vector<Case> cases() {
  using test::L;
  std::vector<Case> c;
  c.push_back({"S 784-128-128-10 relu b256",
               256,
               784,
               {L("linear", 128), L("relu"), L("linear", 128), L("relu"), L("linear", 10)}});
  for (const auto& k : kLayerKinds) {
    if (!is_activation(k.value)) continue;
    const std::string a = k.name;
    // Widths 17, 1 and 64, input 5, 37 rows: three tiles, the last one ragged.
    c.push_back({"5-17-1-64-3 " + a + " b37",
                 37,
                 5,
                 {L("linear", 17), L(a), L("linear", 1), L(a), L("linear", 64), L(a), L("linear", 3)}});
  }
  c.push_back({"130-128-128 gelu, no last activation, b33", 33, 130, {L("linear", 128), L("gelu"), L("linear", 128)}});
  c.push_back(
      {"784-64-17 ending in sigmoid, b100", 100, 784, {L("linear", 64), L("tanh"), L("linear", 17), L("sigmoid")}});
  c.push_back({"5-1-128-5 two linear layers in a row, b5",
               5,
               5,
               {L("linear", 1), L("linear", 128), L("softplus"), L("linear", 5)}});
  c.push_back({"64-128x3-10 mixed, b300",
               300,
               64,
               {L("linear", 128), L("leaky_relu"), L("linear", 128), L("elu"), L("linear", 128), L("identity"),
                L("linear", 10)}});
  return c;
}

}  // namespace

TEST(CudaFusedMlp, LayersAndChainMatchTheCpuFloat32) {
  CN_REQUIRE_GPU();
  for (const Case& k : cases())
    for (bool gemm : {false, true}) check_case<float>(k, gemm);
}

TEST(CudaFusedMlp, LayersAndChainMatchTheCpuFloat64) {
  CN_REQUIRE_GPU();
  for (const Case& k : cases())
    for (bool gemm : {false, true}) check_case<double>(k, gemm);
}

namespace {

// 300 samples of 200 features (wider than a tile, not a multiple of the K-chunk), 5 classes.
std::string write_csv(const test::TempDir& tmp) {
  const std::vector<double> v = test::random_vec(300 * 200, 9, -1.0, 1.0);
  std::ostringstream csv;
  for (int j = 0; j < 200; ++j) csv << "f" << j << ",";
  csv << "label\n";
  for (int n = 0; n < 300; ++n) {
    double s = 0;
    for (int j = 0; j < 200; ++j) {
      csv << v[static_cast<size_t>(n * 200 + j)] << ",";
      s += v[static_cast<size_t>(n * 200 + j)] * (j % 3 == 0 ? 1.0 : -0.5);
    }
    csv << std::min(4, std::max(0, static_cast<int>(std::floor(s / 2.0)) + 2)) << "\n";
  }
  const std::string path = tmp.file("wide.csv");
  test::write_text(path, csv.str());
  return path;
}

Config wide_config(const std::string& csv, const std::string& model, const std::string& optim, FusedMlpMode fused) {
  Config c = parse_config(R"(
[data]
dataset = "csv"
path = ")" + csv + R"("
batch_size = 64
val_fraction = 0.0
test_fraction = 0.0
)" + model + optim + R"(
[clip]
mode = "norm"
max_norm = 1.0
[train]
steps = 20
device = "cuda"
)",
                          "fused.toml");
  c.train.fused_mlp = fused;
  return c;
}

// 20 steps (300 samples in batches of 64: every 5th batch has 44 rows, a second recorded
// graph) with the fused kernels and with the layers' passes.
void compare_runs(const Config& fused, const Config& layered, double loss_rel, double param_rel) {
  StepRunner a(fused), b(layered);
  for (int i = 0; i < 20; ++i) {
    const double la = a.step(), lb = b.step();
    ASSERT_TRUE(std::isfinite(la)) << "step " << i;
    ASSERT_NEAR(la, lb, loss_rel * std::max(1.0, std::fabs(lb))) << "step " << i;
  }
  if (param_rel <= 0) return;
  const auto pa = a.parameters(), pb = b.parameters();
  ASSERT_EQ(pa.size(), pb.size());
  double worst = 0, scale = 1;
  for (size_t i = 0; i < pa.size(); ++i) {
    worst = std::max(worst, std::fabs(pa[i] - pb[i]));
    scale = std::max(scale, std::fabs(pb[i]));
  }
  EXPECT_LE(worst, param_rel * scale);
}

}  // namespace

TEST(CudaFusedMlp, TwentyTrainingStepsMatchTheLayeredPath) {
  CN_REQUIRE_GPU();
  test::TempDir tmp;
  const std::string csv = write_csv(tmp);
  // Smooth activations and momentum: the two runs differ only by float32 rounding.
  const std::string tanh_model = "[model]\nhidden = [128, 64]\nactivation = \"tanh\"\n";
  const std::string momentum = "[optim]\nname = \"momentum\"\nlr = 0.05\n";
  compare_runs(wide_config(csv, tanh_model, momentum, FusedMlpMode::on),
               wide_config(csv, tanh_model, momentum, FusedMlpMode::off), 1e-5, 1e-4);
  // The S architecture's kind (relu, Adam): a pre-activation within rounding of 0 may take the
  // other side of relu's kink, and Adam's first steps move every weight by ~lr whatever the
  // gradient's size, so only the losses are compared, and more loosely.
  const std::string relu_model = "[model]\nhidden = [128, 128]\nactivation = \"relu\"\n";
  const std::string adam = "[optim]\nname = \"adam\"\nlr = 0.001\n";
  compare_runs(wide_config(csv, relu_model, adam, FusedMlpMode::on),
               wide_config(csv, relu_model, adam, FusedMlpMode::off), 2e-3, 0);
  // float64: the same up to summation order.
  Config on = wide_config(csv, relu_model, momentum, FusedMlpMode::automatic),
         off = wide_config(csv, relu_model, momentum, FusedMlpMode::off);
  on.train.dtype = off.train.dtype = DType::float64;
  compare_runs(on, off, 1e-12, 1e-10);
}

#else  // !CURVNET_HAVE_CUDA

TEST(CudaFusedMlp, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif
