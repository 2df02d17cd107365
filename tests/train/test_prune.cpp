// Pruning: OBD and empirical-Fisher saliencies against PyTorch (float64), the unit re-layout
// against the masked original (BatchNorm included) and for inserted units, the pruned run
// directory in PyTorch and under resume, weight masks that hold through training, OBS on a
// quadratic with a known answer, and the planted teacher–student case.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "data/dataset.h"
#include "diagnostics/saliency.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "test_util.h"
#include "train/prune.h"
#include "train/run_dir.h"
#include "train/surgery.h"
#include "train/trainer.h"

using namespace cn;
using test::L;
using test::random_vec;
namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

std::vector<double> read_numbers(const std::string& path) {
  std::ifstream f(path);
  std::vector<double> v;
  double x;
  while (f >> x) v.push_back(x);
  return v;
}

// A tiny float64 network with random parameters and a batch.
struct Tiny {
  std::vector<LayerSpec> specs;
  int64_t n_in = 3, N = 7;
  Sequential<double> net;
  Loss<double> loss;
  HvpEngine<double> eng;
  std::vector<double> x, t;
  CurvatureBatch<double> b;
  Tiny(std::vector<LayerSpec> s, LossKind kind) : specs(std::move(s)), net(specs, n_in), loss(kind), eng(net, loss) {
    net.reserve(N, 4);
    const auto p = random_vec(net.layout().total, 11, -0.9, 0.9);
    for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = p[i];
    x = random_vec(N * n_in, 12, -1.5, 1.5);
    const int64_t C = net.n_outputs();
    if (kind == LossKind::cross_entropy) {
      for (int64_t n = 0; n < N; ++n) t.push_back(static_cast<double>((2 * n + 1) % C));
    } else {
      t = random_vec(N * C, 13);
    }
    b.ctx.training = true;
    b.x = x.data();
    b.target = t.data();
    b.N = N;
  }
};

// Runs the oracle's saliency mode; returns (Hessian diagonal, Fisher diagonal).
std::pair<std::vector<double>, std::vector<double>> torch_diagonals(Tiny& m, const std::string& loss,
                                                                    const test::TempDir& dir) {
  std::ostringstream spec;
  spec << "n_inputs " << m.n_in << "\nloss " << loss << "\n";
  for (const auto& s : m.specs)
    spec << "layer " << layer_kind_name(s.type) << (s.type == LayerKind::linear ? " " + std::to_string(s.out) : "")
         << "\n";
  test::write_text(dir.file("spec.txt"), spec.str());
  auto dump = [](const double* v, size_t n, int64_t cols) {
    std::ostringstream o;
    for (size_t i = 0; i < n; ++i) o << fmt(v[i]) << ((i + 1) % cols == 0 ? "\n" : " ");
    return o.str();
  };
  test::write_text(dir.file("params.txt"), dump(m.net.params().data(), m.net.layout().total, 1));
  test::write_text(dir.file("x.txt"), dump(m.x.data(), m.x.size(), m.n_in));
  test::write_text(dir.file("target.txt"), dump(m.t.data(), m.t.size(), 1));
  std::string out;
  const int rc = test::run_command(
      test::python_exe() + " " + CURVNET_SOURCE_DIR + "/tests/train/oracle_prune.py saliency " + dir.path().string(),
      &out);
  EXPECT_EQ(rc, 0) << out;
  return {read_numbers(dir.file("hdiag.txt")), read_numbers(dir.file("fisher.txt"))};
}

void check_diagonal_saliencies(Tiny& m, const std::string& loss) {
  if (!test::python_has("torch, numpy")) GTEST_SKIP() << "no PyTorch for " << test::python_exe();
  test::TempDir dir;
  const auto [hd, fd] = torch_diagonals(m, loss, dir);
  const int64_t P = m.net.layout().total;
  ASSERT_EQ(static_cast<int64_t>(hd.size()), P);
  ASSERT_EQ(static_cast<int64_t>(fd.size()), P);
  for (size_t layer = 0; layer < m.net.size(); ++layer) {
    if (m.net.layer(layer).kind() != LayerKind::linear) continue;
    const int64_t off = m.net.layer_offset(layer), p = m.net.layer(layer).num_params();
    const Saliency obd = param_saliency(m.eng, m.b, layer, PruneCriterion::obd);
    const Saliency fis = param_saliency(m.eng, m.b, layer, PruneCriterion::obd_fisher);
    EXPECT_EQ(obd.method, "exact");
    double scale_h = 0, scale_f = 0;
    for (int64_t j = 0; j < p; ++j) {
      const double w = m.net.params()[off + j];
      scale_h = std::max(scale_h, std::abs(0.5 * hd[off + j] * w * w));
      scale_f = std::max(scale_f, std::abs(0.5 * fd[off + j] * w * w));
    }
    ASSERT_GT(scale_h, 1e-4);
    ASSERT_GT(scale_f, 1e-4);
    for (int64_t j = 0; j < p; ++j) {
      const double w = m.net.params()[off + j];
      EXPECT_NEAR(obd.value[j], 0.5 * hd[off + j] * w * w, 1e-10 * scale_h) << "layer " << layer << " param " << j;
      EXPECT_NEAR(fis.value[j], 0.5 * fd[off + j] * w * w, 1e-10 * scale_f) << "layer " << layer << " param " << j;
    }
    // A unit's saliency: its incoming weights and bias together (docs/capacity.md §prune).
    if (layer + 2 < m.net.size()) {
      const Saliency u = unit_saliency(m.eng, m.b, layer, layer + 2, PruneCriterion::obd);
      const int64_t O = m.net.layer(layer).out_features(), I = m.net.layer(layer).in_features();
      for (int64_t o = 0; o < O; ++o) {
        double s = 0.5 * hd[off + O * I + o] * std::pow(m.net.params()[off + O * I + o], 2);
        for (int64_t c = 0; c < I; ++c) s += 0.5 * hd[off + o * I + c] * std::pow(m.net.params()[off + o * I + c], 2);
        EXPECT_NEAR(u.value[o], s, 1e-10 * scale_h * I);
      }
    }
  }
}

}  // namespace

TEST(Prune, ObdAndFisherSaliencesMatchPyTorchMse) {
  Tiny m({L("linear", 4), L("tanh"), L("linear", 2)}, LossKind::mse);
  check_diagonal_saliencies(m, "mse");
}

TEST(Prune, ObdAndFisherSaliencesMatchPyTorchCrossEntropy) {
  Tiny m({L("linear", 5), L("tanh"), L("linear", 4), L("tanh"), L("linear", 3)}, LossKind::cross_entropy);
  check_diagonal_saliencies(m, "cross_entropy");
}

TEST(Prune, HutchinsonObdCarriesAnErrorBarThatCoversTheExactValue) {
  Tiny m({L("linear", 6), L("tanh"), L("linear", 2)}, LossKind::mse);
  SaliencyOptions exact, probed;
  probed.dense_max = 1;  // forces Hutchinson
  probed.probes = 4000;
  const Saliency a = param_saliency(m.eng, m.b, 0, PruneCriterion::obd, exact);
  const Saliency h = param_saliency(m.eng, m.b, 0, PruneCriterion::obd, probed);
  EXPECT_EQ(h.method, "hutchinson");
  int inside = 0;
  for (size_t j = 0; j < a.value.size(); ++j) {
    EXPECT_GT(h.error[j], 0.0);
    inside += std::abs(h.value[j] - a.value[j]) <= 4 * h.error[j];
  }
  EXPECT_GE(inside, static_cast<int>(a.value.size()) - 1);
}

// OBS on a quadratic loss: ½ (w − w*)ᵀ H (w − w*) at w = w*; removing weight q costs exactly
// w_q² / (2 [H⁻¹]_qq) and the surgeon's update lands on the constrained minimum.
TEST(Prune, ObsOnAQuadraticMatchesTheConstrainedMinimum) {
  const int64_t p = 4;
  const std::vector<double> H = {4, 1, 0.5, 0, 1, 3, 0.2, 0.1, 0.5, 0.2, 2, 0.3, 0, 0.1, 0.3, 1};
  std::vector<double> w = {0.7, -0.4, 1.1, 0.3};
  const ObsInverse inv = obs_inverse(H, p, {0, 1, 2, 3}, 1e-14);
  // The constrained minimum of ½ dᵀ H d subject to (w + d)_q = 0 by brute force over the
  // other coordinates: solve H_FF d_F = −H_Fq d_q with d_q = −w_q.
  const int64_t q = 2;
  const double dq = -w[q];
  const std::vector<int64_t> F = {0, 1, 3};
  std::vector<double> A(9), rhs(3);
  for (int a = 0; a < 3; ++a) {
    rhs[a] = -H[F[a] * p + q] * dq;
    for (int c = 0; c < 3; ++c) A[a * 3 + c] = H[F[a] * p + F[c]];
  }
  // 3×3 solve by Cramer's rule
  auto det3 = [](const std::vector<double>& M) {
    return M[0] * (M[4] * M[8] - M[5] * M[7]) - M[1] * (M[3] * M[8] - M[5] * M[6]) + M[2] * (M[3] * M[7] - M[4] * M[6]);
  };
  const double D = det3(A);
  std::vector<double> d(p, 0.0);
  d[q] = dq;
  for (int a = 0; a < 3; ++a) {
    std::vector<double> Ma = A;
    for (int r = 0; r < 3; ++r) Ma[r * 3 + a] = rhs[r];
    d[F[a]] = det3(Ma) / D;
  }
  double cost = 0;
  for (int64_t i = 0; i < p; ++i)
    for (int64_t j = 0; j < p; ++j) cost += 0.5 * d[i] * H[i * p + j] * d[j];
  EXPECT_NEAR(obs_group_saliency(inv, w, {q}), cost, 1e-9);
  std::vector<double> w2 = w;
  obs_remove(inv, w2, {q});
  for (int64_t i = 0; i < p; ++i) EXPECT_NEAR(w2[i], w[i] + d[i], 1e-9) << i;
  EXPECT_EQ(w2[q], 0.0);
}

namespace {

// A network with BatchNorm and random parameters and running statistics.
std::vector<LayerSpec> bn_stack() {
  return {L("linear", 6), L("batchnorm"), L("tanh"), L("linear", 5), L("batchnorm"), L("relu"), L("linear", 2)};
}

HostModel random_host(const std::vector<LayerSpec>& specs, int64_t n_in) {
  Sequential<double> net(specs, n_in);
  net.reserve(1);  // BatchNorm's running statistics exist from here
  HostModel m;
  m.specs = specs;
  m.n_inputs = n_in;
  m.params = random_vec(net.layout().total, 21, -0.9, 0.9);
  for (size_t i = 0; i < net.size(); ++i)
    for (const auto& s : net.layer(i).state()) {
      std::vector<double> v = random_vec(s.size, 22 + static_cast<uint32_t>(i), 0.2, 1.5);
      if (s.name == "num_batches_tracked") v.assign(1, 7.0);
      m.buffers[std::to_string(i) + "." + s.name] = v;
    }
  m.optim.emplace_back("exp_avg", random_vec(net.layout().total, 23));
  m.optim.emplace_back("step", std::vector<double>{5.0});
  return m;
}

// The model's output on x (training: batch statistics; else running statistics).
std::vector<double> outputs(const HostModel& m, const std::vector<double>& x, int64_t N, bool training) {
  Sequential<double> net(m.specs, m.n_inputs);
  net.reserve(N);
  std::copy(m.params.begin(), m.params.end(), net.params().data());
  for (size_t i = 0; i < net.size(); ++i)
    for (const auto& s : net.layer(i).state()) {
      const auto& v = m.buffers.at(std::to_string(i) + "." + s.name);
      std::copy(v.begin(), v.end(), s.data);
    }
  RunningStatsFreeze<double> freeze(net);
  PassCtx c;
  c.training = training;
  const double* z = net.forward(c, x.data(), N);
  return std::vector<double>(z, z + N * net.n_outputs());
}

}  // namespace

TEST(Surgery, NeuronPrunedNetworkComputesWhatTheMaskedOriginalComputes) {
  const int64_t n_in = 4, N = 9;
  const HostModel m = random_host(bn_stack(), n_in);
  const UnitMap keep = {{0, {0, 2, 3, 5}}, {3, {1, 3, 4}}};
  // The masked original: the removed units' columns of the consuming layers set to 0.
  HostModel masked = m;
  Sequential<double> net(m.specs, n_in);
  auto zero_column = [&](size_t consumer, int64_t unit) {
    const int64_t off = net.layer_offset(consumer), I = net.layer(consumer).in_features();
    for (int64_t o = 0; o < net.layer(consumer).out_features(); ++o) masked.params[off + o * I + unit] = 0.0;
  };
  for (int64_t u : {1, 4}) zero_column(3, u);
  for (int64_t u : {0, 2}) zero_column(6, u);
  const HostModel narrow = relayout(m, keep);
  EXPECT_EQ(narrow.specs[0].out, 4);
  EXPECT_EQ(narrow.specs[3].out, 3);
  const auto x = random_vec(N * n_in, 24, -2, 2);
  for (bool training : {false, true}) {
    const auto a = outputs(masked, x, N, training), b = outputs(narrow, x, N, training);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-13) << "training " << training << " at " << i;
  }
  // The optimiser state and running statistics of a kept unit are the old unit's.
  Sequential<double> small(narrow.specs, n_in);
  const auto& old_exp = m.optim[0].second;
  const auto& new_exp = narrow.optim[0].second;
  ASSERT_EQ(static_cast<int64_t>(new_exp.size()), small.layout().total);
  // layer 3's weight row 1 (old unit 3), column 2 (old unit 3 of layer 0)
  EXPECT_EQ(new_exp[small.layer_offset(3) + 1 * 4 + 2], old_exp[net.layer_offset(3) + 3 * 6 + 3]);
  EXPECT_EQ(narrow.optim[1].second, std::vector<double>{5.0});
  EXPECT_EQ(narrow.buffers.at("1.running_var")[3], m.buffers.at("1.running_var")[5]);
  EXPECT_EQ(narrow.buffers.at("4.running_mean")[0], m.buffers.at("4.running_mean")[1]);
  EXPECT_EQ(narrow.buffers.at("4.num_batches_tracked"), std::vector<double>{7.0});
}

TEST(Surgery, InsertedUnitsLeaveTheFunctionUnchangedAndStartFromZeroState) {
  const int64_t n_in = 4, N = 6;
  const HostModel m = random_host(bn_stack(), n_in);
  const HostModel wide = relayout(m, {{0, {0, 1, 2, 3, 4, 5, -1, -1}}});
  EXPECT_EQ(wide.specs[0].out, 8);
  const auto x = random_vec(N * n_in, 25, -2, 2);
  for (bool training : {false, true}) {
    const auto a = outputs(m, x, N, training), b = outputs(wide, x, N, training);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-13);
  }
  EXPECT_EQ(wide.buffers.at("1.running_var")[6], 1.0);
  EXPECT_EQ(wide.buffers.at("1.running_mean")[7], 0.0);
  Sequential<double> w(wide.specs, n_in);
  EXPECT_EQ(wide.params[w.layer_offset(1) + 6], 1.0);  // BatchNorm's weight of a new unit
  EXPECT_EQ(wide.optim[0].second[w.layer_offset(0) + 6 * 4], 0.0);
}

TEST(Surgery, RejectsTheOutputLayerAndRepeatedUnits) {
  const HostModel m = random_host(bn_stack(), 4);
  EXPECT_THROW(relayout(m, {{6, {0}}}), InputError);
  EXPECT_THROW(relayout(m, {{0, {1, 1}}}), InputError);
  EXPECT_THROW(relayout(m, {{0, {}}}), InputError);
  EXPECT_THROW(relayout(m, {{0, {9}}}), InputError);
}

namespace {

Config teacher_config(const std::string& extra = "") {
  return parse_config(R"(
[data]
dataset = "teacher"
teacher_hidden = 4
n_samples = 600
noise = 0.05
batch_size = 64
[model]
hidden = [16]
activation = "tanh"
batchnorm = true
init = "xavier_normal"
[loss]
kind = "mse"
[optim]
name = "adam"
lr = 1e-2
[train]
steps = 200
log_every = 50
dtype = "float64"
device = "cpu"
[checkpoint]
every = 50
[diagnostics]
batch_size = 256
)" + extra,
                      "teacher.toml");
}

TrainSummary train_quietly(const Config& c, const std::string& out, const std::string& resume = "") {
  TrainOptions o;
  o.out_dir = resume.empty() ? out : "";
  o.resume_dir = resume;
  std::ostringstream sink;
  o.out = &sink;
  o.progress = 0;
  return train(c, o);
}

PruneSummary prune_quietly(PruneOptions o) {
  std::ostringstream sink;
  o.out = &sink;
  return prune(o);
}

// The validation split as text files for the oracle (curvnet's splits, standardised).
void write_val_split(const Config& c, const std::string& dir) {
  const Splits s = load_splits(c.data, c.train.seed);
  std::ostringstream x, y;
  for (int64_t i = 0; i < s.val.n; ++i) {
    for (int64_t j = 0; j < s.val.d; ++j) x << fmt(s.val.x[i * s.val.d + j]) << (j + 1 < s.val.d ? " " : "\n");
    y << fmt(s.val.y[i]) << "\n";
  }
  test::write_text(dir + "/x.txt", x.str());
  test::write_text(dir + "/y.txt", y.str());
}

}  // namespace

TEST(Prune, PrunedRunLoadsIntoPyTorchAndReproducesItsEvaluation) {
  if (!test::python_has("torch, numpy, safetensors")) GTEST_SKIP() << "no PyTorch for " << test::python_exe();
  test::TempDir dir;
  const Config c = teacher_config();
  train_quietly(c, dir.file("run"));
  PruneOptions o;
  o.run_dir = dir.file("run");
  o.out_dir = dir.file("pruned");
  o.criterion = PruneCriterion::magnitude;
  o.step_share = 0.25;
  o.finetune = 10;
  o.max_rise = 1e9;  // every round accepted: down to one unit
  const PruneSummary s = prune_quietly(o);
  EXPECT_EQ(s.widths, std::vector<int64_t>{1});
  EXPECT_EQ(load_config(o.out_dir + "/config.toml").model.hidden, std::vector<int64_t>{1});
  const auto rows = read_jsonl(o.out_dir + "/eval.jsonl");
  json val;
  for (const auto& r : rows)
    if (r["split"] == "val") val = r;
  ASSERT_EQ(val["step"].get<int64_t>(), 200 + 4 * 10);
  write_val_split(load_config(o.out_dir + "/config.toml"), dir.path().string());
  std::string out;
  const int rc =
      test::run_command(test::python_exe() + " " + CURVNET_SOURCE_DIR + "/tests/train/oracle_prune.py eval " +
                            o.out_dir + " " + checkpoint_dir(o.out_dir, 240) + " " + dir.path().string(),
                        &out);
  ASSERT_EQ(rc, 0) << out;
  EXPECT_NEAR(std::stod(out), val["loss"].get<double>(), 1e-10 * val["loss"].get<double>());
  // prune.jsonl: one row per round, the curve against the removed share.
  const auto curve = read_jsonl(o.out_dir + "/prune.jsonl");
  ASSERT_EQ(curve.size(), 5u);
  EXPECT_EQ(curve[0]["removed_share"].get<double>(), 0.0);
  EXPECT_EQ(curve[4]["layers"][0]["remaining"].get<int64_t>(), 1);
  // curvnet eval agrees with the row it wrote; hessian and report read the run.
  EXPECT_NEAR(evaluate_checkpoint(o.out_dir, "val", "cpu")["loss"].get<double>(), val["loss"].get<double>(), 1e-12);
  HessianOptions ho;
  ho.kinds = {CurvatureKind::loss};
  ho.device = "cpu";
  EXPECT_FALSE(checkpoint_curvature(o.out_dir, ho).rows.empty());
  EXPECT_EQ(test::run_command(test::curvnet_exe() + " report " + o.out_dir, &out), 0) << out;
}

TEST(Prune, ResumeAfterPruningIsBitIdentical) {
  test::TempDir dir;
  for (const char* granularity : {"neuron", "weight"}) {
    const std::string g = granularity;
    const Config c = teacher_config();
    train_quietly(c, dir.file("run_" + g));
    PruneOptions o;
    o.run_dir = dir.file("run_" + g);
    o.out_dir = dir.file("pruned_" + g);
    o.criterion = PruneCriterion::obd;
    o.granularity = g == "neuron" ? PruneGranularity::neuron : PruneGranularity::weight;
    o.step_share = 0.25;
    o.finetune = 5;
    o.max_rise = 1e9;
    const PruneSummary s = prune_quietly(o);
    const int64_t M = s.record["step"].get<int64_t>();
    fs::copy(o.out_dir, dir.file("a_" + g), fs::copy_options::recursive);
    fs::copy(o.out_dir, dir.file("b_" + g), fs::copy_options::recursive);
    Config pruned = load_config(o.out_dir + "/config.toml");
    pruned.train.steps = M + 60;
    train_quietly(pruned, "", dir.file("a_" + g));
    pruned.train.steps = M + 30;
    train_quietly(pruned, "", dir.file("b_" + g));
    pruned.train.steps = M + 60;
    train_quietly(pruned, "", dir.file("b_" + g));
    const auto a = test::final_params(dir.file("a_" + g)), b = test::final_params(dir.file("b_" + g));
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << g << " at " << i;
    if (g == "weight") {  // the removed weights stay 0 through training
      const SafetensorsFile st = load_safetensors(checkpoint_dir(dir.file("a_" + g), M + 60) + "/state.safetensors");
      const auto mask = st.get<double>("prune.mask");
      const auto model = test::last_checkpoint_tensors(dir.file("a_" + g));
      const auto& w0 = model.at("0.weight");
      int64_t zeros = 0;
      for (size_t j = 0; j < w0.size(); ++j)
        if (mask[j] == 0) {
          EXPECT_EQ(w0[j], 0.0) << j;
          ++zeros;
        }
      EXPECT_GT(zeros, 0);
    }
  }
}

TEST(Prune, EveryLayerIsPrunedOrSaysWhyNot) {
  test::TempDir dir;
  Config c = teacher_config();
  c.model.hidden = {12, 12};
  c.train.steps = 50;
  train_quietly(c, dir.file("run"));
  PruneOptions o;
  o.run_dir = dir.file("run");
  o.out_dir = dir.file("pruned");
  o.criterion = PruneCriterion::obs;
  o.step_share = 0.5;
  o.finetune = 0;
  o.max_rise = 1e9;
  // The block of layer 3 (12 × 12 + 12 = 156 parameters) is over the limit; layer 6's is not.
  Config small = load_config(dir.file("run") + "/config.toml");
  small.diagnostics.dense_max_params = 100;
  RunDir(dir.file("run")).write_config(small);
  std::ostringstream lines;
  o.out = &lines;
  const PruneSummary s = prune(o);
  EXPECT_NE(lines.str().find("layer 0 not pruned: obs needs the exact block of layer 3 (156 parameters"),
            std::string::npos)
      << lines.str();
  const json& layers = s.record["layers"];
  ASSERT_EQ(layers.size(), 2u);
  EXPECT_EQ(layers[0]["status"], "skipped");
  EXPECT_EQ(layers[1]["status"], "pruned");
  EXPECT_EQ(s.widths, (std::vector<int64_t>{12, 1}));
}

TEST(Prune, BadOptionsAreInputErrors) {
  test::TempDir dir;
  PruneOptions o;
  o.run_dir = dir.file("missing");
  EXPECT_THROW(prune(o), InputError);
  Config c = teacher_config();
  c.train.steps = 20;
  train_quietly(c, dir.file("run"));
  o.run_dir = dir.file("run");
  o.layers = {2};  // tanh
  EXPECT_THROW(prune(o), InputError);
  o.layers = {4};  // the output layer
  EXPECT_THROW(prune(o), InputError);
  EXPECT_FALSE(fs::exists(dir.file("run") + "-pruned"));
  std::string out;
  EXPECT_EQ(test::run_command(test::curvnet_exe() + " prune " + dir.file("run") + " --criterion nope", &out), 2);
  EXPECT_EQ(test::run_command(test::curvnet_exe() + " prune " + dir.file("missing"), &out), 2) << out;
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1) << out;
}

// The planted case (docs/capacity.md §prune): an 8-unit teacher, a 64-unit student; OBD
// neuron pruning reaches at most 16 units without the validation loss rising over 2%.
TEST(Prune, PlantedTeacherStudentPrunesTo16UnitsOrFewer) {
  test::TempDir dir;
  const Config c = parse_config(test::read_text(std::string(CURVNET_SOURCE_DIR) + "/examples/planted_teacher.toml"),
                                "planted_teacher.toml");
  train_quietly(c, dir.file("run"));
  PruneOptions o;
  o.run_dir = dir.file("run");
  o.out_dir = dir.file("pruned");
  o.criterion = PruneCriterion::obd;
  o.step_share = 0.125;
  o.finetune = 300;
  o.max_rise = 0.02;
  const PruneSummary s = prune_quietly(o);
  ASSERT_EQ(s.widths.size(), 1u);
  EXPECT_LE(s.widths[0], 16);
  EXPECT_LE(s.rise, 0.02);
  EXPECT_LE(s.final_val_loss, 1.02 * s.base_val_loss);
}
