// Curvature checkpoints on the GPU against the CPU: every kind (loss, local, ggn, kfac,
// diag, fisher_diag, full_top) of a tanh MLP with BatchNorm and Dropout, in both modes,
// gives the same spectra and rows. float64: within 1e-8 of the largest |λ| (metrics
// within 1e-8 relative). float32: within 1e-4 of the largest |λ| for eigenvalues, 1e-2 of
// the peak for SLQ densities (nodes move by ~1e-5 of the range against a kernel 1e-2 of
// the range wide), and count-based metrics (rank, shares, condition, logdet) are not
// compared: float32 rounding noise on null directions crosses their thresholds. Then the
// trainer: a CUDA run's step-0 checkpoint equals the CPU run's, and diagnostics leave the
// CUDA training bit-identical.
#include <gtest/gtest.h>

#include "core/device.h"
#include "diagnostics/curvature_checkpoint.h"
#include "layers/model.h"
#include "test_util.h"

// The time breakdown on the CPU (dense blocks by the Kronecker form in eval mode, by HVP
// columns in train mode with Dropout): every part measured, the parts within the total,
// and asking for it changes no result.
TEST(CurvatureTiming, PartsWithinTheTotalOnTheCpu) {
  cn::ModelConfig mc;
  mc.activation = cn::LayerKind::tanh;
  mc.init = cn::Init::xavier_normal;
  mc.layers = {cn::test::L("linear", 12), cn::test::L("tanh"), cn::test::L("dropout", 0, 0.2),
               cn::test::L("linear", 3)};
  const int64_t I = 5, C = 3, N = 40;
  const std::vector<cn::LayerSpec> specs = cn::resolve_layers(mc, C);
  cn::Sequential<double> net(specs, I);
  net.initialize(mc, 1);
  cn::ModelSnapshot snap;
  snap.params.assign(net.params().data(), net.params().data() + net.layout().total);
  const std::vector<double> x = cn::test::random_vec(N * I, 3, -2.0, 2.0);
  std::vector<double> y;
  for (int64_t n = 0; n < N; ++n) y.push_back(static_cast<double>(n % C));
  for (const char* mode : {"eval", "train"}) {
    SCOPED_TRACE(mode);
    cn::DiagnosticsConfig dc;
    dc.kinds = {cn::CurvatureKind::loss, cn::CurvatureKind::local, cn::CurvatureKind::ggn};
    dc.batch_size = N;
    dc.mode = cn::parse_enum(cn::kDiagModes, mode, "diagnostics.mode");
    cn::CurvatureCheckpoint ckpt(dc, specs, I, cn::LossKind::cross_entropy, x, y, N, 5, cn::Device::cpu);
    const cn::CurvatureOutput plain = ckpt.run(3, snap);
    cn::CurvatureTiming t;
    const cn::CurvatureOutput timed = ckpt.run(3, snap, &t);
    EXPECT_EQ(plain.spectra, timed.spectra);
    ASSERT_EQ(plain.rows.size(), timed.rows.size());
    for (size_t r = 0; r < plain.rows.size(); ++r) {
      nlohmann::json a = plain.rows[r], b = timed.rows[r];
      a.erase("seconds");
      b.erase("seconds");
      EXPECT_EQ(a, b) << "row " << r;
    }
    EXPECT_EQ(t.dense_blocks, 4);  // loss and ggn of both Linear layers
    EXPECT_EQ(t.solver_threads, 0);
    EXPECT_GT(t.hvp_ms, 0.0);
    EXPECT_GT(t.eigensolver_ms, 0.0);
    EXPECT_GT(t.checks_ms, 0.0);
    EXPECT_GT(t.metrics_ms, 0.0);
    EXPECT_GE(t.assembly_ms, 0.0);
    EXPECT_LE(t.hvp_ms + t.assembly_ms + t.eigensolver_ms + t.metrics_ms + t.checks_ms, t.total_ms);
    EXPECT_NEAR(t.total_ms, 1e3 * timed.seconds, 1e-9);
  }
}

#ifdef CURVNET_HAVE_CUDA
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "cuda_test_util.h"
#include "diagnostics/curvature_checkpoint.h"
#include "io/safetensors.h"
#include "layers/model.h"
#include "test_util.h"
#include "train/checkpoint.h"
#include "train/trainer.h"

using namespace cn;
using json = nlohmann::json;

namespace {

struct Tolerance {
  double spectrum;  // eigenvalue-like tensors and λ-scaled metrics, relative to the largest |λ|
  double density;   // SLQ densities, relative to their peak
  double metric;    // dimensionless metrics, relative (absolute below 1)
  bool counts;      // compare rank, shares, condition and logdet
};
constexpr Tolerance kFloat64{1e-8, 1e-8, 1e-8, true};
constexpr Tolerance kFloat32{1e-4, 1e-2, 1e-3, false};

// 6 inputs -> Linear(12) tanh Dropout -> Linear(10) BatchNorm tanh Dropout -> Linear(4):
// 84 + 130 + 20 + 44 parameters. Layer 0 has a local Hessian (Linear -> tanh); with
// dense_max_params = 100 layer 3 goes the iterative way (Lanczos + SLQ + Hutchinson), the
// others are dense.
struct Problem {
  static constexpr int64_t I = 6, C = 4, N = 48;
  std::vector<LayerSpec> specs;
  std::vector<double> x, y;
  ModelSnapshot snap;
  DiagnosticsConfig dc;

  explicit Problem(const std::string& dtype, const std::string& mode) {
    ModelConfig mc;
    mc.activation = LayerKind::tanh;
    mc.init = cn::Init::xavier_normal;
    mc.layers = {test::L("linear", 12), test::L("tanh"), test::L("dropout", 0, 0.2), test::L("linear", 10),
                 test::L("batchnorm"),  test::L("tanh"), test::L("dropout", 0, 0.2), test::L("linear", C)};
    specs = resolve_layers(mc, C);
    Sequential<double> net(specs, I);
    net.initialize(mc, 3);
    const int64_t P = net.layout().total;
    const auto noise = test::random_vec(P, 11, -0.3, 0.3);  // BatchNorm's γ, β away from 1, 0
    snap.params.assign(net.params().data(), net.params().data() + P);
    for (int64_t i = 0; i < P; ++i) snap.params[i] += noise[i];
    uint32_t seed = 20;
    for (size_t i = 0; i < net.size(); ++i)
      for (const StateView<double>& v : net.layer(i).state()) {
        if (v.name != "running_mean" && v.name != "running_var") continue;
        const bool var = v.name == "running_var";
        snap.buffers[std::to_string(i) + "." + v.name] =
            test::random_vec(v.size, seed++, var ? 0.5 : -0.5, var ? 1.5 : 0.5);
      }
    snap.preconditioner = test::random_vec(P, 30, 0.5, 2.0);
    snap.lr = 0.05;
    snap.optimizer = cn::OptimKind::adam;
    x = test::random_vec(N * I, 5, -2.0, 2.0);
    for (int64_t n = 0; n < N; ++n) y.push_back(static_cast<double>(n % C));
    dc.kinds = {cn::CurvatureKind::loss,    cn::CurvatureKind::local, cn::CurvatureKind::ggn,
                cn::CurvatureKind::kfac,    cn::CurvatureKind::diag,  cn::CurvatureKind::fisher_diag,
                cn::CurvatureKind::full_top};
    dc.batch_size = N;
    dc.dense_max_params = 100;
    dc.dtype = cn::parse_enum(cn::kDTypes, dtype, "diagnostics.dtype");
    dc.mode = cn::parse_enum(cn::kDiagModes, mode, "diagnostics.mode");
  }

  CurvatureOutput run(Device d) const {
    CurvatureCheckpoint ckpt(dc, specs, I, LossKind::cross_entropy, x, y, N, /*seed=*/5, d);
    return ckpt.run(/*step=*/7, snap);
  }
};

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::fabs(e));
  return m;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void expect_same_spectra(const std::map<std::string, std::vector<double>>& want,
                         const std::map<std::string, std::vector<double>>& got, const Tolerance& tol) {
  ASSERT_EQ(want.size(), got.size());
  for (const auto& [name, a] : want) {
    SCOPED_TRACE(name);
    ASSERT_TRUE(got.count(name));
    const auto& b = got.at(name);
    ASSERT_EQ(a.size(), b.size());
    const double rel = ends_with(name, ".density") ? tol.density : tol.spectrum;
    const double bound = rel * std::max(max_abs(a), 1e-300);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], bound) << "index " << i;
  }
}

// Whether an eigenvalue lies so close to the rank threshold τ that rounding decides its
// side: then rank, shares, condition and logdet are not determined by the matrix. Exact
// zeros come out near 1e-3..2e-2 τ (so blocks with a null space are still compared); a
// smallest kept value of at least 1e3 τ bounds the condition number's rounding error.
bool near_threshold(const std::vector<double>& eig, double tau) {
  for (double e : eig)
    if (std::fabs(e) > 1e-1 * tau && std::fabs(e) < 1e3 * tau) return true;
  return false;
}

// Keys whose values are not eigenvalue-scaled.
bool dimensionless(const std::string& k) {
  static const std::set<std::string> d = {"condition",
                                          "effective_rank",
                                          "rank",
                                          "near_zero_share",
                                          "negative_share",
                                          "balance",
                                          "symmetry",
                                          "logdet",
                                          "logdet_sign",
                                          "bias_trace_share",
                                          "symmetry_residual",
                                          "solver_info",
                                          "n_params",
                                          "step",
                                          "layer",
                                          "numerical_rank",
                                          "structural_rank",
                                          "tau_rel",
                                          "rank_deficit_beyond_structure",
                                          "factor_condition",
                                          "deflated",
                                          "slq_steps",
                                          "near_zero_share_stderr",
                                          "negative_share_stderr",
                                          "numerical_rank_stderr",
                                          "effective_rank_stderr"};
  return d.count(k) > 0;
}
bool count_based(const std::string& k) {
  static const std::set<std::string> c = {
      "condition",       "rank",     "near_zero_share", "negative_share", "logdet",
      "logdet_sign",     "symmetry", "balance",         "numerical_rank", "rank_deficit_beyond_structure",
      "factor_condition"};
  return c.count(k) > 0;
}

// want_spectra, got_spectra: both sides' eigenvalues, for the rank-threshold check of dense
// rows. eps: the dtype's.
void expect_same_rows(const std::vector<json>& want, const std::vector<json>& got, const Tolerance& tol,
                      const std::map<std::string, std::vector<double>>& want_spectra,
                      const std::map<std::string, std::vector<double>>& got_spectra, double eps) {
  ASSERT_EQ(want.size(), got.size());
  for (size_t r = 0; r < want.size(); ++r) {
    const json& a = want[r];
    const json& b = got[r];
    const std::string layer = a["layer"].is_null() ? "all" : a["layer"].dump();
    SCOPED_TRACE("row " + a.value("kind", "") + " layer " + layer);
    // The row's eigenvalue scale.
    double scale = 0;
    for (const char* k : {"lambda_max", "lambda_min", "max", "min"})
      if (a.contains(k) && a[k].is_number()) scale = std::max(scale, std::fabs(a[k].get<double>()));
    bool counts = tol.counts;
    const std::string eig_name = a.value("kind", "") + "." + layer + ".eigenvalues";
    if (counts && a.contains("tau") && a["tau"].is_number())
      for (const auto* spectra : {&want_spectra, &got_spectra})
        if (const auto eig = spectra->find(eig_name); eig != spectra->end())
          counts = counts && !near_threshold(eig->second, a["tau"].get<double>());
    // The smallest non-zero |λ| carries an absolute error of about n·ε·max|λ|, so the
    // condition number's relative error is about n·ε·condition (logdet's about n times that).
    const double n = a.value("n_params", 1.0);
    const double cond = a.contains("condition") && a["condition"].is_number() ? a["condition"].get<double>() : 1.0;
    const double cond_rel = std::max(tol.metric, 10 * n * eps * cond);
    // Compared, the smallest kept |λ| is at least 1e3 τ = 1e3·n·ε·max|λ|, so cond_rel ≤ 1e-2;
    // more would mean the check above did not apply and the bound says nothing.
    if (counts && a.contains("condition") && a["condition"].is_number()) EXPECT_LE(cond_rel, 1e-2);
    for (const auto& [key, va] : a.items()) {
      // The CPU builds dense blocks of Linear layers in Kronecker form where it applies,
      // the GPU by HVP columns: the same matrix by two methods.
      if (key == "seconds" || key == "block_method") continue;
      if (!counts && (count_based(key) || ends_with(key, "_status"))) continue;
      // The symmetry residual is rounding noise of the block: both small is what matters.
      if (key == "symmetry_residual") {
        EXPECT_LE(b.value(key, 1.0), 1e3 * (tol.counts ? 2.2e-16 : 1.2e-7)) << key;
        continue;
      }
      SCOPED_TRACE(key);
      ASSERT_TRUE(b.contains(key));
      const json& vb = b[key];
      if (!va.is_number()) {
        EXPECT_EQ(va, vb);
        continue;
      }
      ASSERT_TRUE(vb.is_number()) << vb;
      const double x = va.get<double>(), y = vb.get<double>();
      double bound = dimensionless(key) ? tol.metric * std::max(1.0, std::fabs(x))
                                        : tol.spectrum * std::max({scale, std::fabs(x), 1e-300});
      if (key == "condition") bound = cond_rel * x;
      if (key == "logdet") bound = std::max(bound, n * cond_rel);
      EXPECT_NEAR(x, y, bound);
    }
  }
}

// Dense blocks solved on 1, 2 and 4 solver threads give the same bits (a thread's solver
// never changes a block's eigenvalues), and the same rows apart from their timings; the
// solver choice (Jacobi up to jacobi_max_n, else syevd) changes the values only within
// rounding. The blocks: 84, 130, 20 and 44 parameters (syevd for 130 by default, Jacobi
// for the rest) in float64 and float32, rank-deficient ones among them (the output layer's
// loss block: its rank is at most (C − 1)·(10 + 1) = 33 of 44).
TEST(CudaCurvatureSolvers, ConcurrentEqualsSequential) {
  CN_REQUIRE_GPU();
  for (const char* dtype : {"float64", "float32"}) {
    SCOPED_TRACE(dtype);
    Problem p(dtype, "eval");
    p.dc.kinds = {cn::CurvatureKind::loss, cn::CurvatureKind::ggn};
    p.dc.dense_max_params = 200;  // every Linear layer dense
    auto run = [&](GpuDenseOptions o) {
      CurvatureCheckpoint ckpt(p.dc, p.specs, Problem::I, LossKind::cross_entropy, p.x, p.y, Problem::N, 5,
                               Device::cuda);
      ckpt.set_gpu_dense_options(o);
      return ckpt.run(7, p.snap);
    };
    GpuDenseOptions o;
    o.solver_threads = 1;
    const CurvatureOutput one = run(o);
    for (int threads : {2, 4}) {
      o.solver_threads = threads;
      const CurvatureOutput many = run(o);
      EXPECT_EQ(one.spectra, many.spectra) << threads << " threads";
      ASSERT_EQ(one.rows.size(), many.rows.size());
      for (size_t r = 0; r < one.rows.size(); ++r) {
        json a = one.rows[r], b = many.rows[r];
        a.erase("seconds");
        b.erase("seconds");
        EXPECT_EQ(a, b) << "row " << r << ", " << threads << " threads";
      }
    }
    // Another solver choice (all syevd; all Jacobi where the kernel holds them): the same
    // spectra within rounding, rows in the same order.
    const Tolerance& tol = std::string(dtype) == "float64" ? kFloat64 : kFloat32;
    for (int64_t jacobi_max_n : {int64_t(0), int64_t(1000)}) {
      GpuDenseOptions other;
      other.jacobi_max_n = jacobi_max_n;
      const CurvatureOutput o2 = run(other);
      expect_same_spectra(one.spectra, o2.spectra, tol);
      ASSERT_EQ(one.rows.size(), o2.rows.size());
      for (size_t r = 0; r < one.rows.size(); ++r) {
        EXPECT_EQ(one.rows[r]["layer"], o2.rows[r]["layer"]);
        EXPECT_EQ(one.rows[r]["kind"], o2.rows[r]["kind"]);
        if (tol.counts) EXPECT_EQ(o2.rows[r].value("checks", ""), "passed") << o2.rows[r].dump();
      }
    }
    if (tol.counts)  // float64: the self-checks' tolerances are float64's
      for (const json& row : one.rows) EXPECT_EQ(row.value("checks", ""), "passed") << row.dump();
  }
}

// A small pending budget makes the checkpoint finish solves before building more blocks:
// the same output.
TEST(CudaCurvatureSolvers, PendingBudgetKeepsTheOutput) {
  CN_REQUIRE_GPU();
  Problem p("float64", "train");
  p.dc.kinds = {cn::CurvatureKind::loss, cn::CurvatureKind::local, cn::CurvatureKind::ggn};
  p.dc.dense_max_params = 200;
  auto run = [&](GpuDenseOptions o) {
    CurvatureCheckpoint ckpt(p.dc, p.specs, Problem::I, LossKind::cross_entropy, p.x, p.y, Problem::N, 5, Device::cuda);
    ckpt.set_gpu_dense_options(o);
    return ckpt.run(7, p.snap);
  };
  GpuDenseOptions tight;
  tight.max_pending_bytes = 1;  // one block at a time
  const CurvatureOutput a = run(GpuDenseOptions{}), b = run(tight);
  EXPECT_EQ(a.spectra, b.spectra);
  ASSERT_EQ(a.rows.size(), b.rows.size());
  for (size_t r = 0; r < a.rows.size(); ++r) {
    json x = a.rows[r], y = b.rows[r];
    x.erase("seconds");
    y.erase("seconds");
    EXPECT_EQ(x, y) << "row " << r;
  }
}

// The breakdown on the GPU: every dense part measured, the parts within the total, the
// solver threads reported; asking for it changes no result.
TEST(CudaCurvatureSolvers, TimingBreakdown) {
  CN_REQUIRE_GPU();
  Problem p("float32", "eval");
  p.dc.kinds = {cn::CurvatureKind::loss};
  p.dc.dense_max_params = 200;
  CurvatureCheckpoint ckpt(p.dc, p.specs, Problem::I, LossKind::cross_entropy, p.x, p.y, Problem::N, 5, Device::cuda);
  const CurvatureOutput plain = ckpt.run(7, p.snap);
  CurvatureTiming t;
  const CurvatureOutput timed = ckpt.run(7, p.snap, &t);
  EXPECT_EQ(plain.spectra, timed.spectra);
  EXPECT_EQ(t.dense_blocks, 4);  // the three Linear layers and BatchNorm
  EXPECT_EQ(t.solver_threads, GpuDenseOptions{}.solver_threads);
  for (double part : {t.hvp_ms, t.assembly_ms, t.eigensolver_ms, t.metrics_ms, t.checks_ms}) EXPECT_GE(part, 0.0);
  EXPECT_GT(t.hvp_ms, 0.0);
  EXPECT_GT(t.checks_ms, 0.0);
  EXPECT_GT(t.solver_busy_ms, 0.0);
  EXPECT_LE(t.hvp_ms + t.assembly_ms + t.eigensolver_ms + t.metrics_ms + t.checks_ms, t.total_ms);
}

class CudaCurvature : public ::testing::TestWithParam<std::string> {};

TEST_P(CudaCurvature, Float64CheckpointMatchesTheCpu) {
  CN_REQUIRE_GPU();
  const Problem p("float64", GetParam());
  const CurvatureOutput cpu = p.run(Device::cpu), gpu = p.run(Device::cuda);
  expect_same_spectra(cpu.spectra, gpu.spectra, kFloat64);
  expect_same_rows(cpu.rows, gpu.rows, kFloat64, cpu.spectra, gpu.spectra, 2.2e-16);
  for (const json& row : gpu.rows) {
    EXPECT_EQ(row.value("checks", "passed"), "passed") << row.dump();
    if (row.contains("block_method")) EXPECT_EQ(row["block_method"], "hvp_columns");
  }
}

TEST_P(CudaCurvature, Float32CheckpointMatchesTheCpu) {
  CN_REQUIRE_GPU();
  const Problem p("float32", GetParam());
  const CurvatureOutput cpu = p.run(Device::cpu), gpu = p.run(Device::cuda);
  expect_same_spectra(cpu.spectra, gpu.spectra, kFloat32);
  expect_same_rows(cpu.rows, gpu.rows, kFloat32, cpu.spectra, gpu.spectra, 1.2e-7);
}

// train: BatchNorm on batch statistics, Dropout masks from the curvature stream (the CPU
// builds every block by HVP columns too). eval: running statistics, no Dropout (the CPU
// takes the Kronecker form for the Linear layers).
INSTANTIATE_TEST_SUITE_P(Modes, CudaCurvature, ::testing::Values("train", "eval"));

Config trainer_config(const std::string& device) {
  Config c = parse_config(R"(
[data]
dataset = "spirals"
n_samples = 400
batch_size = 64
[model]
hidden = [16, 8]
activation = "tanh"
batchnorm = true
dropout = 0.1
[optim]
name = "adam"
lr = 0.01
[train]
steps = 12
log_every = 4
eval_every = 0
[checkpoint]
every = 6
[diagnostics]
every = 6
kinds = ["loss", "local", "ggn", "kfac", "diag", "fisher_diag", "full_top"]
batch_size = 64
dense_max_params = 100
)",
                          "cuda_curvature.toml");
  c.train.device = cn::parse_enum(cn::kDeviceChoices, device, "train.device");
  return c;
}

TrainOptions quiet(const std::string& out, std::ostringstream* sink) {
  TrainOptions o;
  o.out_dir = out;
  o.out = sink;
  o.progress = 0;
  return o;
}

std::map<std::string, std::vector<double>> read_spectra(const std::string& path) {
  SafetensorsFile f{"", read_safetensors(path), {}};
  std::map<std::string, std::vector<double>> out;
  for (const auto& [name, t] : f.tensors) out[name] = f.get<double>(name);
  return out;
}

// Both runs start from the same parameters, so their step-0 checkpoints must agree (later
// ones differ by the training runs' own rounding).
TEST(CudaCurvatureTrainer, StepZeroCheckpointMatchesTheCpuRun) {
  CN_REQUIRE_GPU();
  test::TempDir tmp;
  std::ostringstream sink;
  train(trainer_config("cpu"), quiet(tmp.file("cpu"), &sink));
  train(trainer_config("cuda"), quiet(tmp.file("cuda"), &sink));
  const auto cpu_spectra = read_spectra(tmp.file("cpu") + "/spectra/step_0.safetensors");
  const auto gpu_spectra = read_spectra(tmp.file("cuda") + "/spectra/step_0.safetensors");
  expect_same_spectra(cpu_spectra, gpu_spectra, kFloat64);
  auto rows_at_zero = [](const std::string& run) {
    std::vector<json> rows;
    std::istringstream lines(test::read_text(run + "/diagnostics.jsonl"));
    for (std::string line; std::getline(lines, line);) {
      json row = json::parse(line);
      if (row["step"] == 0) rows.push_back(row);
    }
    return rows;
  };
  const auto cpu_rows = rows_at_zero(tmp.file("cpu")), gpu_rows = rows_at_zero(tmp.file("cuda"));
  EXPECT_FALSE(cpu_rows.empty());
  expect_same_rows(cpu_rows, gpu_rows, kFloat64, cpu_spectra, gpu_spectra, 2.2e-16);
  // `curvnet hessian` on the CUDA run's last checkpoint, on the GPU, reproduces its rows.
  HessianOptions ho;
  ho.kinds = {cn::CurvatureKind::loss};
  ho.layers = {0};
  ho.device = "cuda";
  const CurvatureOutput out = checkpoint_curvature(tmp.file("cuda"), ho);
  const auto saved = read_spectra(tmp.file("cuda") + "/spectra/step_12.safetensors");
  const auto& a = saved.at("loss.0.eigenvalues");
  const auto& b = out.spectra.at("loss.0.eigenvalues");
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-12 * max_abs(a));
}

TEST(CudaCurvatureTrainer, DiagnosticsLeaveCudaTrainingBitIdentical) {
  CN_REQUIRE_GPU();
  test::TempDir tmp;
  std::ostringstream sink;
  Config on = trainer_config("cuda"), off = on;
  off.diagnostics.every = 0;
  train(off, quiet(tmp.file("off"), &sink));
  train(on, quiet(tmp.file("on"), &sink));
  EXPECT_EQ(test::final_params(tmp.file("off")), test::final_params(tmp.file("on")));
  const std::string rows = test::read_text(tmp.file("on") + "/diagnostics.jsonl");
  EXPECT_EQ(rows.find("\"checks\":\"failed"), std::string::npos) << rows;
  EXPECT_EQ(rows.find("NaN"), std::string::npos);
}

}  // namespace

#else  // !CURVNET_HAVE_CUDA

TEST(CudaCurvature, NotBuilt) { GTEST_SKIP() << "curvnet was built without the CUDA backend"; }

#endif
