// Hessian blocks: every `loss` block against PyTorch's full Hessian (oracle), the
// Kronecker path against the HVP path, the Gauss-Newton block against Jᵀ H_z J from a
// finite-difference Jacobian, the diagonals (exact and Hutchinson), the empirical Fisher
// against per-sample gradients, and the preconditioned operator.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <random>
#include <sstream>

#include "diagnostics/eigen.h"
#include "diagnostics/hessian_blocks.h"
#include "test_util.h"

using namespace cn;

namespace {

using test::random_vec;

using test::L;

struct Net {
  std::vector<LayerSpec> specs;
  int64_t n_in;
  LossKind kind;
  Sequential<double> net;
  Loss<double> loss;
  HvpEngine<double> eng;
  std::vector<double> x, t;
  CurvatureBatch<double> b;
  Net(std::vector<LayerSpec> s, int64_t in, LossKind k, int64_t N, bool training = true, uint32_t seed = 1)
      : specs(std::move(s)), n_in(in), kind(k), net(specs, in), loss(k), eng(net, loss) {
    net.reserve(N, 4);
    ModelConfig mc;
    net.initialize(mc, seed);
    auto p = random_vec(net.layout().total, 40 + seed, -0.9, 0.9);
    for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = p[i];
    for (size_t i = 0; i < net.size(); ++i)
      if (net.layer(i).kind() == LayerKind::batchnorm) {
        const int64_t off = net.layer_offset(i), O = net.layer(i).out_features();
        for (int64_t o = 0; o < O; ++o) net.params()[off + o] = 1.0 + 0.3 * p[off + o];
        auto st = net.layer(i).state();
        for (int64_t o = 0; o < O; ++o) st[0].data[o] = 0.1 * o - 0.1, st[1].data[o] = 0.7 + 0.2 * o;
      }
    x = random_vec(N * in, 50 + seed, -1.5, 1.5);
    const int64_t C = net.n_outputs();
    if (k == LossKind::cross_entropy) {
      t.resize(N);
      for (int64_t n = 0; n < N; ++n) t[n] = static_cast<double>((3 * n + 1) % C);
    } else {
      t = random_vec(N * C, 60 + seed, k == LossKind::bce_logits ? 0.0 : -1.0, 1.0);
    }
    b.ctx.training = training;
    b.ctx.dropout_key = philox_key(3, RngStream::curvature);
    b.ctx.step = 2;
    b.x = x.data();
    b.target = t.data();
    b.N = N;
  }
  std::vector<size_t> param_layers() const {
    std::vector<size_t> out;
    for (size_t i = 0; i < net.size(); ++i)
      if (net.layer(i).num_params() > 0) out.push_back(i);
    return out;
  }
};

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double v : a) m = std::max(m, std::fabs(v));
  return m;
}
double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

std::string loss_name(LossKind k) {
  return k == LossKind::cross_entropy ? "cross_entropy" : k == LossKind::mse ? "mse" : "bce_logits";
}

std::string fmt(double v) {
  std::ostringstream s;
  s.precision(17);
  s << v;
  return s.str();
}

// Runs tests/diagnostics/oracle_hessian.py on the network; returns the full Hessian (total × total).
std::vector<double> torch_hessian(Net& n, const test::TempDir& dir, bool training) {
  std::ostringstream spec;
  spec << "n_inputs " << n.n_in << "\nloss " << loss_name(n.kind) << "\ntraining " << (training ? 1 : 0) << "\n";
  for (const auto& s : n.specs) {
    spec << "layer " << layer_kind_name(s.type);
    if (s.type == LayerKind::linear) spec << " " << s.out;
    if (s.type == LayerKind::batchnorm) spec << " " << fmt(s.eps);
    if (s.type == LayerKind::leaky_relu) spec << " " << fmt(s.slope);
    if (s.type == LayerKind::elu) spec << " " << fmt(s.alpha);
    spec << "\n";
  }
  test::write_text(dir.file("spec.txt"), spec.str());
  auto dump = [](const std::vector<double>& v, int64_t cols) {
    std::ostringstream o;
    for (size_t i = 0; i < v.size(); ++i) o << fmt(v[i]) << ((i + 1) % cols == 0 ? "\n" : " ");
    return o.str();
  };
  const int64_t P = n.net.layout().total;
  test::write_text(dir.file("params.txt"),
                   dump(std::vector<double>(n.net.params().data(), n.net.params().data() + P), 1));
  test::write_text(dir.file("x.txt"), dump(n.x, n.n_in));
  test::write_text(dir.file("target.txt"), dump(n.t, 1));
  std::string out;
  const int rc = test::run_command(
      test::python_exe() + " " + CURVNET_SOURCE_DIR + "/tests/diagnostics/oracle_hessian.py " + dir.path().string(),
      &out);
  EXPECT_EQ(rc, 0) << out;
  std::ifstream f(dir.file("hessian.txt"));
  std::vector<double> H;
  double v;
  while (f >> v) H.push_back(v);
  EXPECT_EQ(static_cast<int64_t>(H.size()), P * P);
  return H;
}

void check_against_torch(Net& n, bool training) {
  if (!test::python_has("torch, numpy")) GTEST_SKIP() << "no PyTorch for " << test::python_exe();
  test::TempDir dir;
  const auto H = torch_hessian(n, dir, training);
  const int64_t P = n.net.layout().total;
  ASSERT_EQ(static_cast<int64_t>(H.size()), P * P);
  const double scale = max_abs(H);
  ASSERT_GT(scale, 1e-3);
  for (size_t layer : n.param_layers()) {
    const int64_t off = n.net.layer_offset(layer), p = n.net.layer(layer).num_params();
    const auto block = loss_block(n.eng, n.b, layer, 3);  // chunks of 3: the last one partial
    std::vector<double> ref(p * p);
    for (int64_t i = 0; i < p; ++i)
      for (int64_t j = 0; j < p; ++j) ref[i * p + j] = H[(off + i) * P + off + j];
    EXPECT_LE(max_diff(block, ref), 1e-9 * std::max(1.0, scale)) << "layer " << layer;
    // The spectra agree too (LAPACK on both blocks).
    const auto ev = eigh(block.data(), p).values, ev_ref = eigh(ref.data(), p).values;
    EXPECT_LE(max_diff(ev, ev_ref), 1e-9 * std::max(1.0, scale)) << "layer " << layer;
  }
  // The whole Hessian through the full-network operator, all columns at once.
  n.eng.reserve(n.b.N, P);
  std::vector<double> I(P * P, 0.0), HI(P * P);
  for (int64_t i = 0; i < P; ++i) I[i * P + i] = 1;
  full_matvec(n.eng, n.b)(I.data(), HI.data(), P);
  EXPECT_LE(max_diff(HI, H), 1e-9 * std::max(1.0, scale));
}

}  // namespace

TEST(Oracle, TanhCrossEntropy) {
  Net n({L("linear", 4), L("tanh"), L("linear", 3), L("tanh"), L("linear", 2)}, 3, LossKind::cross_entropy, 5);
  check_against_torch(n, true);
}

TEST(Oracle, SigmoidMse) {
  Net n({L("linear", 4), L("sigmoid"), L("linear", 3), L("sigmoid"), L("linear", 2)}, 3, LossKind::mse, 5);
  check_against_torch(n, true);
}

TEST(Oracle, BatchNormTrainingBce) {
  Net n({L("linear", 4), L("batchnorm"), L("tanh"), L("linear", 3), L("batchnorm"), L("elu"), L("linear", 2)}, 3,
        LossKind::bce_logits, 6);
  check_against_torch(n, true);
}

TEST(Oracle, GeluSoftplusLeakyCrossEntropy) {
  Net n({L("linear", 4), L("gelu"), L("linear", 3), L("softplus"), L("linear", 3), L("leaky_relu"), L("linear", 2)}, 3,
        LossKind::cross_entropy, 5);
  check_against_torch(n, true);
}

// The Kronecker path (per-sample output Hessians backpropagated with their second-order
// terms) equals the HVP path, for every Linear layer, also through Dropout (fixed mask)
// and BatchNorm in evaluation mode; and its Gauss-Newton variant equals ggn_block.
class Kron : public ::testing::TestWithParam<std::string> {};

TEST_P(Kron, EqualsTheHvpPath) {
  const LossKind kind = loss_kind(GetParam());
  struct Case {
    std::vector<LayerSpec> specs;
    bool training;
  };
  std::vector<Case> cases = {
      {{L("linear", 5), L("tanh"), L("linear", 4), L("sigmoid"), L("linear", 3)}, true},
      {{L("linear", 5), L("gelu"), L("dropout", 0, 0.3), L("linear", 4), L("elu"), L("linear", 3)}, true},
      {{L("linear", 5), L("batchnorm"), L("softplus"), L("linear", 4), L("batchnorm"), L("tanh"), L("linear", 3)},
       false},
      {{L("linear", 5), L("batchnorm"), L("tanh"), L("linear", 4), L("relu"), L("linear", 3)},
       true},  // BN upstream only
  };
  for (size_t ci = 0; ci < cases.size(); ++ci) {
    Net n(cases[ci].specs, 4, kind, 7, cases[ci].training, 3);
    for (size_t layer : n.param_layers()) {
      if (!kron_applicable(n.net, layer, cases[ci].training)) {
        EXPECT_TRUE(n.net.layer(layer).kind() == LayerKind::batchnorm || ci == 3) << ci << " " << layer;
        continue;
      }
      const auto hvp = loss_block(n.eng, n.b, layer);
      const auto kr = kron_block(n.eng, n.b, layer, CurvatureMode::hessian);
      const double s = std::max(max_abs(hvp), 1e-300);
      EXPECT_LE(max_diff(kr, hvp), 1e-10 * s) << "case " << ci << " layer " << layer;
      EXPECT_GT(s, 1e-6);
      const auto g = ggn_block(n.eng, n.b, layer);
      const auto gk = kron_block(n.eng, n.b, layer, CurvatureMode::ggn);
      EXPECT_LE(max_diff(gk, g), 1e-10 * std::max(max_abs(g), 1e-300)) << "ggn case " << ci << " layer " << layer;
    }
  }
  // BatchNorm in training mode after the layer couples the batch: not applicable.
  Net n({L("linear", 5), L("batchnorm"), L("tanh"), L("linear", 3)}, 4, kind, 6);
  EXPECT_FALSE(kron_applicable(n.net, 0, true));
  EXPECT_TRUE(kron_applicable(n.net, 3, true));
  EXPECT_THROW(kron_block(n.eng, n.b, 0), Error);
}

INSTANTIATE_TEST_SUITE_P(AllLosses, Kron, ::testing::Values("cross_entropy", "mse", "bce_logits"));

// G = Jᵀ H_z J with J = ∂z/∂θ_layer from central differences of the network's outputs and
// H_z the loss Hessian in the logits, built explicitly; G is PSD.
TEST(Ggn, EqualsJacobianSandwichAndIsPsd) {
  for (LossKind kind : {LossKind::cross_entropy, LossKind::mse, LossKind::bce_logits}) {
    Net n({L("linear", 4), L("batchnorm"), L("tanh"), L("linear", 3), L("sigmoid"), L("linear", 3)}, 3, kind, 5);
    const int64_t N = n.b.N, C = 3, NC = N * C;
    for (size_t layer : n.param_layers()) {
      const int64_t off = n.net.layer_offset(layer), p = n.net.layer(layer).num_params();
      std::vector<double> J(NC * p);
      const double eps = 1e-6;
      for (int64_t j = 0; j < p; ++j) {
        const double keep = n.net.params()[off + j];
        n.net.params()[off + j] = keep + eps;
        n.eng.forward_loss(n.b.ctx, n.x.data(), n.t.data(), N);
        std::vector<double> zp(n.net.layer_output(n.net.size() - 1), n.net.layer_output(n.net.size() - 1) + NC);
        n.net.params()[off + j] = keep - eps;
        n.eng.forward_loss(n.b.ctx, n.x.data(), n.t.data(), N);
        const double* zm = n.net.layer_output(n.net.size() - 1);
        for (int64_t r = 0; r < NC; ++r) J[r * p + j] = (zp[r] - zm[r]) / (2 * eps);
        n.net.params()[off + j] = keep;
      }
      n.eng.forward_loss(n.b.ctx, n.x.data(), n.t.data(), N);
      const double* z = n.net.layer_output(n.net.size() - 1);
      std::vector<double> Hz(NC * NC, 0.0);
      for (int64_t s = 0; s < N; ++s) {
        if (kind == LossKind::cross_entropy) {
          double m = z[s * C], sum = 0;
          for (int64_t c = 1; c < C; ++c) m = std::max(m, z[s * C + c]);
          std::vector<double> pr(C);
          for (int64_t c = 0; c < C; ++c) sum += pr[c] = std::exp(z[s * C + c] - m);
          for (auto& v : pr) v /= sum;
          for (int64_t a = 0; a < C; ++a)
            for (int64_t c = 0; c < C; ++c)
              Hz[(s * C + a) * NC + s * C + c] = ((a == c ? pr[a] : 0) - pr[a] * pr[c]) / N;
        } else {
          for (int64_t a = 0; a < C; ++a) {
            const double sg = 1 / (1 + std::exp(-z[s * C + a]));
            Hz[(s * C + a) * NC + s * C + a] = kind == LossKind::mse ? 2.0 / NC : sg * (1 - sg) / NC;
          }
        }
      }
      std::vector<double> ref(p * p, 0.0);
      for (int64_t i = 0; i < p; ++i)
        for (int64_t j = 0; j < p; ++j) {
          double acc = 0;
          for (int64_t r = 0; r < NC; ++r)
            for (int64_t q = 0; q < NC; ++q) acc += J[r * p + i] * Hz[r * NC + q] * J[q * p + j];
          ref[i * p + j] = acc;
        }
      const auto G = ggn_block(n.eng, n.b, layer, 5);
      const double s = max_abs(ref);
      EXPECT_GT(s, 1e-6);
      EXPECT_LE(max_diff(G, ref), 1e-7 * std::max(1.0, s)) << loss_name(kind) << " layer " << layer;
      const auto ev = eigh(G.data(), p).values;
      EXPECT_GE(ev.front(), -1e-12 * std::max(1.0, ev.back())) << loss_name(kind) << " layer " << layer;
      // The exact block differs (second-order terms of tanh/sigmoid/BatchNorm), except at the top.
      if (layer + 1 < n.net.size()) EXPECT_GT(max_diff(loss_block(n.eng, n.b, layer), G), 1e-8) << layer;
    }
  }
}

TEST(Diag, ExactDiagonalAndHutchinson) {
  Net n({L("linear", 6), L("batchnorm"), L("tanh"), L("linear", 4), L("softplus"), L("linear", 3)}, 5,
        LossKind::cross_entropy, 8);
  for (size_t layer : n.param_layers()) {
    const int64_t p = n.net.layer(layer).num_params();
    const auto block = loss_block(n.eng, n.b, layer);
    const auto d = hessian_diag(n.eng, n.b, layer);
    for (int64_t j = 0; j < p; ++j) EXPECT_EQ(d[j], block[j * p + j]);
    // Hutchinson: the estimate of entry j has variance Σ_{i≠j} H_ij² / probes.
    const int64_t probes = 2048;
    const auto h = hessian_diag(n.eng, n.b, layer, /*dense_max=*/0, probes, /*seed=*/9, /*step=*/100);
    const auto h2 = hessian_diag_hutchinson(n.eng, n.b, layer, probes, 9, 100);
    EXPECT_EQ(h, h2);  // the same draw: (seed, step, layer, kind)
    for (int64_t j = 0; j < p; ++j) {
      double off2 = 0;
      for (int64_t i = 0; i < p; ++i)
        if (i != j) off2 += block[j * p + i] * block[j * p + i];
      const double sd = std::sqrt(off2 / probes);
      EXPECT_LE(std::fabs(h[j] - block[j * p + j]), 5 * sd + 1e-12) << "layer " << layer << " entry " << j;
    }
  }
}

TEST(FisherDiag, IsTheMeanOfSquaredPerSampleGradients) {
  for (LossKind kind : {LossKind::cross_entropy, LossKind::mse, LossKind::bce_logits}) {
    Net n({L("linear", 5), L("tanh"), L("linear", 4), L("batchnorm"), L("elu"), L("linear", 3)}, 4, kind, 6,
          /*training=*/false);
    const int64_t N = n.b.N, C = 3, P = n.net.layout().total;
    std::vector<double> F(P, 0.0), g(P);
    for (int64_t s = 0; s < N; ++s) {  // sample s alone: the gradient of its own loss
      const double* ts = kind == LossKind::cross_entropy ? n.t.data() + s : n.t.data() + s * C;
      n.eng.gradient(n.b.ctx, n.x.data() + s * 4, ts, 1, g.data());
      for (int64_t i = 0; i < P; ++i) F[i] += g[i] * g[i] / N;
    }
    for (size_t layer : n.param_layers()) {
      const int64_t off = n.net.layer_offset(layer), p = n.net.layer(layer).num_params();
      const auto f = fisher_diag(n.eng, n.b, layer);
      const std::vector<double> ref(F.begin() + off, F.begin() + off + p);
      EXPECT_LE(max_diff(f, ref), 1e-12 * std::max(1.0, max_abs(ref))) << loss_name(kind) << " layer " << layer;
      EXPECT_GT(max_abs(ref), 1e-8);
    }
  }
}

TEST(FullTop, PreconditionedOperatorIsDHD) {
  Net n({L("linear", 5), L("batchnorm"), L("tanh"), L("linear", 3)}, 4, LossKind::cross_entropy, 6);
  const int64_t P = n.net.layout().total, K = 3;
  auto pre = random_vec(P, 77, 0.1, 2.0);
  auto V = random_vec(K * P, 78);
  std::vector<double> out(K * P), u(K * P), Hu(K * P);
  preconditioned_matvec(n.eng, n.b, pre)(V.data(), out.data(), K);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < P; ++i) u[k * P + i] = V[k * P + i] / std::sqrt(pre[i]);
  auto H = full_matvec(n.eng, n.b);
  H(u.data(), Hu.data(), K);
  for (int64_t k = 0; k < K; ++k)
    for (int64_t i = 0; i < P; ++i) EXPECT_NEAR(out[k * P + i], Hu[k * P + i] / std::sqrt(pre[i]), 1e-13);
  // The operator re-prepares after the engine served another batch in between.
  std::vector<double> first(Hu);
  std::vector<double> other_x(n.x.size(), 0.3);
  n.eng.gradient(n.b.ctx, other_x.data(), n.t.data(), n.b.N);
  H(u.data(), Hu.data(), K);
  EXPECT_EQ(Hu, first);
  // Layer operator = the rows of the full one.
  const int64_t off = n.net.layer_offset(3), p = n.net.layer(3).num_params();
  std::vector<double> Vfull(P, 0.0), HVfull(P), v(p), hv(p);
  for (int64_t j = 0; j < p; ++j) Vfull[off + j] = v[j] = V[j];
  H(Vfull.data(), HVfull.data(), 1);
  layer_matvec(n.eng, n.b, 3)(v.data(), hv.data(), 1);
  for (int64_t j = 0; j < p; ++j) EXPECT_NEAR(hv[j], HVfull[off + j], 1e-13);
}
