// The local Hessian (docs/spec.md §3): the closed form against the paper's row-by-row construction
// (Algorithm 1: for each parameter p, the gradient of ∂S/∂θ_p), the zero matrix for
// piecewise-linear activations and the last layer, "not applicable" for BatchNorm.
#include <gtest/gtest.h>

#include "test_util.h"

#include <algorithm>
#include <cmath>
#include <memory>
#include <random>

#include "diagnostics/eigen.h"
#include "diagnostics/local_hessian.h"
#include "layers/model.h"

using namespace cn;

namespace {

// a'(x) written here independently of kernels/activation.h.
double act_prime(const std::string& type, double x, double slope = 0.01, double alpha = 1.0) {
  switch (parse_enum(kLayerKinds, type, "type")) {
    case LayerKind::tanh:
      return 1.0 - std::tanh(x) * std::tanh(x);
    case LayerKind::sigmoid: {
      const double s = 1.0 / (1.0 + std::exp(-x));
      return s * (1.0 - s);
    }
    case LayerKind::softplus:
      return 1.0 / (1.0 + std::exp(-x));
    case LayerKind::elu:
      return x > 0 ? 1.0 : alpha * std::exp(x);
    case LayerKind::gelu:
      return 0.5 * (1.0 + std::erf(x / std::sqrt(2.0))) + x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
    case LayerKind::relu:
      return x > 0 ? 1.0 : 0.0;
    case LayerKind::leaky_relu:
      return x > 0 ? 1.0 : slope;
    case LayerKind::identity:
      return 1.0;
    default:
      break;
  }
  ADD_FAILURE() << "no derivative for " << type;
  return 0;
}

// ∂S/∂θ_p for S(θ) = Σ_n Σ_j a(W x_n + b)_j, θ = (W row-major, b) — the layer's "backward"
// for one parameter, by hand.
double dS_dtheta(const std::string& type, const std::vector<double>& theta, const std::vector<double>& x, int64_t N,
                 int64_t I, int64_t O, int64_t p, double alpha) {
  const int64_t j = p < O * I ? p / I : p - O * I;
  const int64_t k = p < O * I ? p % I : -1;
  double g = 0;
  for (int64_t n = 0; n < N; ++n) {
    double h = theta[O * I + j];
    for (int64_t i = 0; i < I; ++i) h += theta[j * I + i] * x[n * I + i];
    g += act_prime(type, h, 0.01, alpha) * (k >= 0 ? x[n * I + k] : 1.0);
  }
  return g;
}

// Algorithm 1, row by row: row p of H is the gradient of ∂S/∂θ_p, here by central
// differences with one Richardson step (error O(δ⁴)).
std::vector<double> row_by_row_reference(const std::string& type, const std::vector<double>& theta,
                                         const std::vector<double>& x, int64_t N, int64_t I, int64_t O,
                                         double alpha = 1.0) {
  const int64_t P = O * (I + 1);
  std::vector<double> H(P * P);
  const double delta = 1e-3;
  for (int64_t p = 0; p < P; ++p)
    for (int64_t q = 0; q < P; ++q) {
      auto at = [&](double d) {
        std::vector<double> t = theta;
        t[q] += d;
        return dS_dtheta(type, t, x, N, I, O, p, alpha);
      };
      const double D1 = (at(delta) - at(-delta)) / (2 * delta);
      const double D2 = (at(delta / 2) - at(-delta / 2)) / delta;
      H[p * P + q] = (4 * D2 - D1) / 3;
    }
  return H;
}

using test::random_vec;

LayerSpec spec(const std::string& type, int64_t out = 0) {
  LayerSpec s;
  s.type = parse_enum(kLayerKinds, type, "type");
  s.out = out;
  if (s.type == LayerKind::elu) s.alpha = 0.7;
  if (s.type == LayerKind::dropout) s.p = 0.3;
  return s;
}

template <class T>
struct Net {
  Sequential<T> net;
  std::vector<double> x;
  int64_t N;
  Net(const std::vector<LayerSpec>& specs, int64_t I, int64_t N_, uint32_t seed) : net(specs, I), N(N_) {
    net.reserve(N);
    const auto p = random_vec(net.layout().total, seed, -0.8, 0.8);
    for (int64_t i = 0; i < net.layout().total; ++i) net.params()[i] = static_cast<T>(p[i]);
    x = random_vec(N * I, seed + 1, -1.5, 1.5);
    xt.assign(x.begin(), x.end());
    PassCtx c;
    c.training = false;
    net.forward(c, xt.data(), N);
  }
  // Layer i's parameters (layout order) and input, in double.
  std::vector<double> theta(size_t i) {
    const int64_t off = net.layer_offset(i), n = net.layer(i).num_params();
    return std::vector<double>(net.params().data() + off, net.params().data() + off + n);
  }
  std::vector<double> input(size_t i) {
    const int64_t n = N * net.layer(i).in_features();
    return std::vector<double>(net.layer_input(i), net.layer_input(i) + n);
  }
  std::vector<T> xt;
};

// min |h| over the outputs of the given layers: finite differences of a' must not cross a
// kink (elu, relu, leaky_relu at 0), so the test picks a seed whose pre-activations stay
// clear of it.
template <class T>
double min_abs_output(const Net<T>& m, std::initializer_list<size_t> layers) {
  double mn = 1e300;
  for (size_t l : layers)
    for (int64_t e = 0; e < m.N * m.net.layer(l).out_features(); ++e)
      mn = std::min(mn, std::fabs(static_cast<double>(m.net.layer_output(l)[e])));
  return mn;
}

template <class T>
std::unique_ptr<Net<T>> kink_free_net(const std::vector<LayerSpec>& specs, int64_t I, int64_t N,
                                      std::initializer_list<size_t> layers) {
  for (uint32_t seed = 21;; ++seed) {
    auto m = std::make_unique<Net<T>>(specs, I, N, seed);
    if (min_abs_output(*m, layers) > 0.02) return m;
  }
}

double max_abs(const std::vector<double>& v) {
  double m = 0;
  for (double e : v) m = std::max(m, std::fabs(e));
  return m;
}

}  // namespace

class LocalClosedForm : public ::testing::TestWithParam<std::string> {};

// Closed form == row-by-row reference (entries and eigenvalues, 1e-8 relative), for a
// first layer and for a layer deeper in the stack (its input is the previous activation).
TEST_P(LocalClosedForm, MatchesRowByRowReference) {
  const std::string act = GetParam();
  const int64_t I = 3, H1 = 4, H2 = 3, N = 7;
  auto mp = kink_free_net<double>(
      {spec("linear", H1), spec(act), spec("linear", H2), spec(act), spec("dropout"), spec("linear", 2)}, I, N, {0, 2});
  auto& m = *mp;
  const double alpha = spec(act).alpha;
  for (size_t layer : {size_t(0), size_t(2)}) {
    SCOPED_TRACE("layer " + std::to_string(layer));
    const int64_t In = m.net.layer(layer).in_features(), O = m.net.layer(layer).out_features(), P = O * (In + 1);
    const auto ref = row_by_row_reference(act, m.theta(layer), m.input(layer), N, In, O, alpha);
    const double scale = std::max(1.0, max_abs(ref));
    // Entries, in layout order.
    const auto full = local_hessian_full(m.net.layer_input(layer), m.net.layer_output(layer), N, In, O,
                                         activation_params(m.net.specs()[layer + 1]));
    ASSERT_EQ(full.size(), ref.size());
    double err = 0;
    for (size_t e = 0; e < ref.size(); ++e) err = std::max(err, std::fabs(full[e] - ref[e]));
    EXPECT_LT(err / scale, 1e-8) << "max |closed form - reference| = " << err;
    // Spectrum from the model (batched blocks, merged) == eigenvalues of the reference.
    const auto r = local_hessian(m.net, layer, N);
    EXPECT_EQ(r.status, "ok");
    EXPECT_EQ(r.n_params, P);
    EXPECT_EQ(r.n_blocks, O);
    EXPECT_EQ(r.block_size, In + 1);
    EXPECT_EQ(r.max_info, 0);
    EXPECT_LT(r.max_symmetry_residual, 1e-14);
    const auto dense = eigh(ref.data(), P);
    ASSERT_EQ(r.eigenvalues.size(), static_cast<size_t>(P));
    for (int64_t i = 0; i < P; ++i) EXPECT_NEAR(r.eigenvalues[i], dense.values[i], 1e-8 * scale) << i;
    // The diagonal in layout order, and bias_trace_share from it.
    double tr = 0, bias = 0;
    for (int64_t p = 0; p < P; ++p) {
      EXPECT_NEAR(r.diagonal[p], ref[p * P + p], 1e-8 * scale) << p;
      EXPECT_EQ(r.is_bias[p], p >= O * In) << p;
      tr += ref[p * P + p];
      if (p >= O * In) bias += ref[p * P + p];
    }
    const auto met = local_hessian_metrics(r);
    EXPECT_EQ(met.method, "closed_form");
    ASSERT_TRUE(met.bias_trace_share.has_value());
    EXPECT_NEAR(*met.bias_trace_share, bias / tr, 1e-8);
    ASSERT_TRUE(met.trace.has_value());
    EXPECT_NEAR(*met.trace, tr, 1e-8 * scale);
  }
}

INSTANTIATE_TEST_SUITE_P(Activations, LocalClosedForm, ::testing::Values("tanh", "sigmoid", "softplus", "elu", "gelu"));

TEST(LocalHessian, BlockIsSumOverBatch) {
  // One unit, one input: block = Σ_n a''(h_n) [x_n; 1][x_n; 1]ᵀ, by hand for tanh.
  const double x[2] = {0.5, -1.0}, h[2] = {0.3, -0.7};
  const auto B = local_hessian_blocks(x, h, 2, 1, 1, ActParams{Act::tanh}, 0, 1);
  double want[4] = {0, 0, 0, 0};
  for (int n = 0; n < 2; ++n) {
    const double t = std::tanh(h[n]), d2 = -2 * t * (1 - t * t);
    const double xt[2] = {x[n], 1.0};
    for (int a = 0; a < 2; ++a)
      for (int b = 0; b < 2; ++b) want[a * 2 + b] += d2 * xt[a] * xt[b];
  }
  for (int e = 0; e < 4; ++e) EXPECT_NEAR(B[e], want[e], 1e-15) << e;
  EXPECT_EQ(local_param_index(3, 2, 1, 0), 3);  // W[1, 0]
  EXPECT_EQ(local_param_index(3, 2, 1, 3), 7);  // b[1]
}

// Piecewise-linear activations: the zero matrix, reported without computing — and the
// row-by-row reference agrees that it is zero.
TEST(LocalHessian, ZeroForPiecewiseLinear) {
  for (const std::string act : {"relu", "leaky_relu", "identity"}) {
    SCOPED_TRACE(act);
    const int64_t I = 3, O = 4, N = 6;
    auto mp = kink_free_net<double>({spec("linear", O), spec(act), spec("linear", 2)}, I, N, {0});
    auto& m = *mp;
    const auto r = local_hessian(m.net, 0, N);
    EXPECT_EQ(r.status, "zero matrix");
    EXPECT_NE(r.reason.find("piecewise-linear"), std::string::npos) << r.reason;
    ASSERT_EQ(r.eigenvalues.size(), static_cast<size_t>(O * (I + 1)));
    for (double e : r.eigenvalues) EXPECT_EQ(e, 0.0);
    const auto ref = row_by_row_reference(act, m.theta(0), m.input(0), N, I, O);
    EXPECT_LT(max_abs(ref), 1e-9);
    const auto met = local_hessian_metrics(r);
    EXPECT_EQ(met.status, "zero matrix");
    EXPECT_FALSE(met.condition.has_value());
    EXPECT_EQ(met.statuses.at("condition"), "zero matrix");
    ASSERT_TRUE(met.rank.has_value());
    EXPECT_EQ(*met.rank, 0.0);
    // The direct entry point says the same without a model.
    const auto d =
        local_hessian_linear(m.net.layer_input(0), m.net.layer_output(0), N, I, O, activation_params(spec(act)));
    EXPECT_EQ(d.status, "zero matrix");
  }
}

TEST(LocalHessian, Applicability) {
  // Linear -> BatchNorm -> tanh -> Linear -> Linear
  const std::vector<LayerSpec> s = {spec("linear", 4), spec("batchnorm"), spec("tanh"), spec("linear", 3),
                                    spec("linear", 2)};
  EXPECT_EQ(local_applicability(s, 0).status, "not applicable");
  EXPECT_EQ(local_applicability(s, 0).reason, "Linear followed by BatchNorm");
  EXPECT_EQ(local_applicability(s, 1).status, "not applicable");
  EXPECT_EQ(local_applicability(s, 2).status, "not applicable");  // no parameters
  EXPECT_EQ(local_applicability(s, 3).status, "zero matrix");     // no activation after it
  EXPECT_EQ(local_applicability(s, 4).status, "zero matrix");     // the last Linear
  EXPECT_NE(local_applicability(s, 4).reason.find("last Linear"), std::string::npos);
  const std::vector<LayerSpec> d = {spec("linear", 4), spec("sigmoid"), spec("dropout"), spec("linear", 2)};
  EXPECT_EQ(local_applicability(d, 0).status, "ok");  // Dropout after the activation is ignored
  EXPECT_EQ(local_applicability(d, 0).act.kind, Act::sigmoid);

  Net<double> m(s, 3, 5, 9);
  const auto r0 = local_hessian(m.net, 0, 5);
  EXPECT_EQ(r0.status, "not applicable");
  EXPECT_TRUE(r0.eigenvalues.empty());
  const auto met = local_hessian_metrics(r0);
  EXPECT_EQ(met.status, "not applicable");
  EXPECT_EQ(met.statuses.at("trace"), "not applicable: Linear followed by BatchNorm");
  EXPECT_EQ(local_hessian(m.net, 1, 5).status, "not applicable");
  const auto last = local_hessian(m.net, 4, 5);
  EXPECT_EQ(last.status, "zero matrix");
  EXPECT_EQ(last.eigenvalues.size(), static_cast<size_t>(2 * 4));
}

// Chunked block computation (a tiny memory bound: one unit per chunk) and the float model
// give the same spectrum.
TEST(LocalHessian, ChunkingAndFloat) {
  const int64_t I = 5, O = 6, N = 11;
  const std::vector<LayerSpec> s = {spec("linear", O), spec("tanh"), spec("linear", 2)};
  Net<double> m(s, I, N, 33);
  const auto full = local_hessian(m.net, 0, N);
  LocalHessianOptions tiny;
  tiny.max_chunk_bytes = 1;
  const auto chunked = local_hessian(m.net, 0, N, tiny);
  ASSERT_EQ(full.eigenvalues.size(), chunked.eigenvalues.size());
  for (size_t i = 0; i < full.eigenvalues.size(); ++i) EXPECT_NEAR(full.eigenvalues[i], chunked.eigenvalues[i], 1e-13);
  EXPECT_EQ(full.diagonal, chunked.diagonal);
  Net<float> mf(s, I, N, 33);
  const auto f = local_hessian(mf.net, 0, N);
  const double scale = max_abs(full.eigenvalues);
  for (size_t i = 0; i < full.eigenvalues.size(); ++i) EXPECT_NEAR(f.eigenvalues[i], full.eigenvalues[i], 1e-5 * scale);
}
