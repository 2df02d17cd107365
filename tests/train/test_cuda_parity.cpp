// Parity of whole training runs: 50 steps on the CPU and on CUDA in float64 (Dropout,
// BatchNorm and shuffling on) end with the same parameters; a whole train() without
// Dropout (the CUDA step replayed as a recorded graph, losses read only at the logging
// cadence) logs the same losses and gradient norms as the CPU.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/device.h"
#include "cuda_test_util.h"
#include "test_util.h"
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
  c.train.device = cn::parse_enum(cn::kDeviceChoices, device, "train.device");
  return c;
}
}  // namespace

TEST(CudaParity, FiftyStepsMatchTheCpu) {
  CN_REQUIRE_GPU();
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

TEST(CudaParity, GraphStepsLogTheSameLossesAsTheCpu) {
  CN_REQUIRE_GPU();
  test::TempDir tmp;
  std::vector<std::vector<nlohmann::json>> logs;
  for (const std::string device : {"cpu", "cuda"}) {
    Config c = parity_config(device);
    c.model.dropout = 0;    // no step-dependent layer: the CUDA step is a graph replay
    c.train.steps = 40;     // 700 samples in batches of 64: the 11th batch has 60 (a second graph)
    c.train.log_every = 6;  // losses of 5 steps wait on the device between reads
    std::ostringstream sink;
    TrainOptions o;
    o.out_dir = tmp.file(device);
    o.out = &sink;
    o.progress = 0;
    train(c, o);
    std::vector<nlohmann::json> rows;
    std::istringstream lines(test::read_text(o.out_dir + "/metrics.jsonl"));
    for (std::string line; std::getline(lines, line);) rows.push_back(nlohmann::json::parse(line));
    logs.push_back(rows);
  }
  ASSERT_EQ(logs[0].size(), logs[1].size());
  ASSERT_EQ(logs[0].size(), 7u);  // steps 6, 12, ..., 36 and the last, 40
  for (size_t i = 0; i < logs[0].size(); ++i)
    for (const char* key : {"loss", "grad_norm"}) {
      const double a = logs[0][i][key].get<double>(), b = logs[1][i][key].get<double>();
      EXPECT_NEAR(a, b, 1e-9 * std::max(1.0, std::fabs(a))) << key << " at step " << logs[0][i]["step"];
    }
  // The checkpoints agree too, BatchNorm's host-side batch count included (a replay runs
  // no host code; the step counts for it).
  const auto cpu = test::last_checkpoint_tensors(tmp.file("cpu")),
             gpu = test::last_checkpoint_tensors(tmp.file("cuda"));
  ASSERT_EQ(cpu.size(), gpu.size());
  for (const auto& [name, a] : cpu) {
    ASSERT_TRUE(gpu.count(name)) << name;
    const std::vector<double>& b = gpu.at(name);
    ASSERT_EQ(a.size(), b.size()) << name;
    if (name.find("num_batches_tracked") != std::string::npos) {
      EXPECT_EQ(a[0], 40.0) << name;
      EXPECT_EQ(b[0], 40.0) << name;
      continue;
    }
    for (size_t i = 0; i < a.size(); ++i)
      EXPECT_NEAR(a[i], b[i], 1e-9 * std::max(1.0, std::fabs(a[i]))) << name << "[" << i << "]";
  }
}
