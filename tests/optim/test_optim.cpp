// Optimisers: three hand-computed steps of every kind (the rules of docs/optimisers.md
// written out here), per-layer coefficients, state names, no allocation in step(), and an
// oracle comparison with torch.optim over ten steps in float64.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <map>
#include <new>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/error.h"
#include "optim/optimizer.h"
#include "test_util.h"

#include "heap_counter.h"

using namespace cn;

namespace {

// Three parameters: a 1x2 weight of layer 0 and a bias of layer `bias_layer`.
ParamLayout tiny_layout(int64_t bias_layer = 0) {
  ParamLayout l;
  l.segments.push_back(ParamSegment{"0.weight", 0, 0, 1, 2, false});
  l.segments.push_back(ParamSegment{std::to_string(bias_layer) + ".bias", bias_layer, 2, 1, 1, true});
  l.total = 3;
  return l;
}

const double P0[3] = {1.0, -2.0, 0.5};
const double G[3][3] = {{0.1, -0.2, 0.3}, {-0.3, 0.1, 0.2}, {0.2, 0.2, -0.1}};
const double LR[3] = {0.1, 0.05, 0.1};  // a changing rate shows torch's momentum semantics

template <class T>
std::vector<T> run_three(const OptimConfig& c, const ParamLayout& layout) {
  auto opt = make_optimizer<T>(c, layout);
  std::vector<T> p(P0, P0 + 3);
  for (int k = 0; k < 3; ++k) {
    std::vector<T> g(G[k], G[k] + 3);
    opt->step(p.data(), g.data(), LR[k], k);
  }
  return p;
}

void expect_three(const OptimConfig& c, const double want[3], const ParamLayout& layout = tiny_layout()) {
  const std::vector<double> d = run_three<double>(c, layout);
  const std::vector<float> f = run_three<float>(c, layout);
  for (int i = 0; i < 3; ++i) {
    EXPECT_NEAR(d[i], want[i], 1e-14 * std::max(1.0, std::fabs(want[i])))
        << enum_name(kOptimKinds, c.name) << " element " << i;
    EXPECT_NEAR(f[i], want[i], 2e-6 * std::max(1.0, std::fabs(want[i])))
        << enum_name(kOptimKinds, c.name) << " (float) element " << i;
  }
}

OptimConfig cfg(const std::string& name) {
  OptimConfig c;
  c.name = cn::parse_enum(cn::kOptimKinds, name, "optim.name");
  return c;
}

}  // namespace

TEST(Optim, SgdWithWeightDecay) {
  OptimConfig c = cfg("sgd");
  c.weight_decay = 0.01;
  // p <- p - lr (g + wd p)
  double p[3] = {1.0, -2.0, 0.5};
  for (int i = 0; i < 3; ++i) p[i] = p[i] - 0.1 * (G[0][i] + 0.01 * p[i]);
  EXPECT_NEAR(p[0], 0.989, 1e-15);  // 1 - 0.1 (0.1 + 0.01)
  for (int i = 0; i < 3; ++i) p[i] = p[i] - 0.05 * (G[1][i] + 0.01 * p[i]);
  for (int i = 0; i < 3; ++i) p[i] = p[i] - 0.1 * (G[2][i] + 0.01 * p[i]);
  expect_three(c, p);
}

TEST(Optim, SgdL1) {
  OptimConfig c = cfg("sgd");
  c.l1 = 0.5;
  // g <- g + l1 sign(p); signs stay (+, -, +) over the three steps
  const double s[3] = {1, -1, 1};
  double p[3] = {1.0, -2.0, 0.5};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i) p[i] = p[i] - LR[k] * (G[k][i] + 0.5 * s[i]);
  EXPECT_NEAR(p[2], 0.5 - 0.1 * 0.8 - 0.05 * 0.7 - 0.1 * 0.4, 1e-15);
  expect_three(c, p);
}

TEST(Optim, Momentum) {
  OptimConfig c = cfg("momentum");
  c.momentum = 0.9;
  // buf_1 = g_1; buf_t = mu buf_{t-1} + g_t; p <- p - lr_t buf_t
  double p[3], b1[3], b2[3], b3[3];
  for (int i = 0; i < 3; ++i) {
    b1[i] = G[0][i];
    b2[i] = 0.9 * b1[i] + G[1][i];
    b3[i] = 0.9 * b2[i] + G[2][i];
    p[i] = P0[i] - 0.1 * b1[i] - 0.05 * b2[i] - 0.1 * b3[i];
  }
  EXPECT_NEAR(p[0], 1.0 - 0.01 - 0.05 * (-0.21) - 0.1 * 0.011, 1e-15);
  expect_three(c, p);
}

TEST(Optim, NesterovWithWeightDecay) {
  OptimConfig c = cfg("nesterov");
  c.momentum = 0.8;
  c.weight_decay = 0.1;
  // d = g + wd p; buf = mu buf + d (buf_1 = d); p <- p - lr (d + mu buf)
  double p[3] = {1.0, -2.0, 0.5}, buf[3];
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i) {
      const double d = G[k][i] + 0.1 * p[i];
      buf[i] = k == 0 ? d : 0.8 * buf[i] + d;
      p[i] = p[i] - LR[k] * (d + 0.8 * buf[i]);
    }
  // first step, element 0: d = 0.2, buf = 0.2, p = 1 - 0.1 (0.2 + 0.16)
  {
    auto opt = make_optimizer<double>(c, tiny_layout());
    std::vector<double> q(P0, P0 + 3), g(G[0], G[0] + 3);
    opt->step(q.data(), g.data(), 0.1, 0);
    EXPECT_NEAR(q[0], 0.964, 1e-15);
  }
  expect_three(c, p);
}

TEST(Optim, Adagrad) {
  OptimConfig c = cfg("adagrad");
  c.eps = 1e-10;
  // sum += g^2; p <- p - lr g / (sqrt(sum) + eps)
  double p[3] = {1.0, -2.0, 0.5}, sum[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i) {
      sum[i] = sum[i] + G[k][i] * G[k][i];
      p[i] = p[i] - LR[k] * G[k][i] / (std::sqrt(sum[i]) + 1e-10);
    }
  expect_three(c, p);
}

TEST(Optim, RmspropWithWeightDecay) {
  OptimConfig c = cfg("rmsprop");
  c.alpha = 0.9;
  c.eps = 1e-8;
  c.weight_decay = 0.05;
  // d = g + wd p; sq = alpha sq + (1 - alpha) d^2; p <- p - lr d / (sqrt(sq) + eps)
  double p[3] = {1.0, -2.0, 0.5}, sq[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k)
    for (int i = 0; i < 3; ++i) {
      const double d = G[k][i] + 0.05 * p[i];
      sq[i] = 0.9 * sq[i] + 0.1 * d * d;
      p[i] = p[i] - LR[k] * d / (std::sqrt(sq[i]) + 1e-8);
    }
  expect_three(c, p);
}

TEST(Optim, Adam) {
  OptimConfig c = cfg("adam");
  // m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
  // p <- p - lr/(1-b1^t) m / (sqrt(v)/sqrt(1-b2^t) + eps)
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    const double t = k + 1;
    for (int i = 0; i < 3; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * G[k][i];
      v[i] = 0.999 * v[i] + 0.001 * G[k][i] * G[k][i];
      p[i] =
          p[i] - LR[k] / (1 - std::pow(0.9, t)) * m[i] / (std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
    }
    if (k == 0) EXPECT_NEAR(p[0], 0.9, 1e-8);  // Adam's first step is lr sign(g)
  }
  expect_three(c, p);
}

TEST(Optim, AdamCoupledWeightDecay) {
  OptimConfig c = cfg("adam");
  c.weight_decay = 0.1;
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    const double t = k + 1;
    for (int i = 0; i < 3; ++i) {
      const double d = G[k][i] + 0.1 * p[i];
      m[i] = 0.9 * m[i] + 0.1 * d;
      v[i] = 0.999 * v[i] + 0.001 * d * d;
      p[i] =
          p[i] - LR[k] / (1 - std::pow(0.9, t)) * m[i] / (std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
    }
  }
  expect_three(c, p);
}

TEST(Optim, AdamwDecoupledWeightDecay) {
  OptimConfig c = cfg("adamw");
  c.weight_decay = 0.1;
  // p <- p (1 - lr wd), then the Adam step on the raw gradient
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0};
  for (int k = 0; k < 3; ++k) {
    const double t = k + 1;
    for (int i = 0; i < 3; ++i) {
      p[i] = p[i] * (1 - LR[k] * 0.1);
      m[i] = 0.9 * m[i] + 0.1 * G[k][i];
      v[i] = 0.999 * v[i] + 0.001 * G[k][i] * G[k][i];
      p[i] =
          p[i] - LR[k] / (1 - std::pow(0.9, t)) * m[i] / (std::sqrt(v[i]) / std::sqrt(1 - std::pow(0.999, t)) + 1e-8);
    }
  }
  EXPECT_GT(std::fabs(p[0] - run_three<double>(cfg("adam"), tiny_layout())[0]), 1e-4);
  expect_three(c, p);
}

TEST(Optim, Amsgrad) {
  OptimConfig c = cfg("amsgrad");
  c.beta2 = 0.5;  // a fast second moment so the running maximum matters
  // vmax = max(vmax, v); p <- p - lr/(1-b1^t) m / (sqrt(vmax)/sqrt(1-b2^t) + eps)
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, vmax[3] = {0, 0, 0};
  bool max_held = false;
  for (int k = 0; k < 3; ++k) {
    const double t = k + 1;
    for (int i = 0; i < 3; ++i) {
      m[i] = 0.9 * m[i] + 0.1 * G[k][i];
      v[i] = 0.5 * v[i] + 0.5 * G[k][i] * G[k][i];
      if (vmax[i] > v[i]) max_held = true;
      vmax[i] = std::max(vmax[i], v[i]);
      p[i] =
          p[i] - LR[k] / (1 - std::pow(0.9, t)) * m[i] / (std::sqrt(vmax[i]) / std::sqrt(1 - std::pow(0.5, t)) + 1e-8);
    }
  }
  ASSERT_TRUE(max_held);  // the case exercises the maximum
  expect_three(c, p);
  OptimConfig a = cfg("adam");
  a.beta2 = 0.5;
  EXPECT_GT(std::fabs(run_three<double>(a, tiny_layout())[2] - p[2]), 1e-6);
}

TEST(Optim, Nadam) {
  OptimConfig c = cfg("nadam");
  c.weight_decay = 0.01;
  // mu_t = b1 (1 - 0.5 0.96^(0.004 t)); prod_t = mu_1 ... mu_t;
  // d = g + wd p; m, v as Adam; den = sqrt(v / (1 - b2^t)) + eps;
  // p <- p - lr (1 - mu_t)/(1 - prod_t) d/den - lr mu_{t+1}/(1 - prod_t mu_{t+1}) m/den
  auto mu = [](double t) { return 0.9 * (1 - 0.5 * std::pow(0.96, t * 0.004)); };
  double p[3] = {1.0, -2.0, 0.5}, m[3] = {0, 0, 0}, v[3] = {0, 0, 0}, prod = 1;
  for (int k = 0; k < 3; ++k) {
    const double t = k + 1;
    prod = prod * mu(t);
    const double prod_next = prod * mu(t + 1);
    for (int i = 0; i < 3; ++i) {
      const double d = G[k][i] + 0.01 * p[i];
      m[i] = 0.9 * m[i] + 0.1 * d;
      v[i] = 0.999 * v[i] + 0.001 * d * d;
      const double den = std::sqrt(v[i] / (1 - std::pow(0.999, t))) + 1e-8;
      p[i] = p[i] - LR[k] * (1 - mu(t)) / (1 - prod) * d / den - LR[k] * mu(t + 1) / (1 - prod_next) * m[i] / den;
    }
  }
  expect_three(c, p);
  // mu_product is kept as state: mu_1 mu_2 mu_3.
  auto opt = make_optimizer<double>(c, tiny_layout());
  std::vector<double> q(P0, P0 + 3);
  for (int k = 0; k < 3; ++k) {
    std::vector<double> g(G[k], G[k] + 3);
    opt->step(q.data(), g.data(), LR[k], k);
  }
  for (auto& [name, buf] : opt->state())
    if (name == "mu_product") {
      ASSERT_EQ(buf->size(), 1u);
      EXPECT_NEAR((*buf)[0], prod, 1e-16);
    }
}

TEST(Optim, PerLayerCoefficients) {
  // The bias belongs to layer 2, which has its own weight decay, L1 and lr scale.
  OptimConfig c = cfg("sgd");
  c.weight_decay = 0.01;
  PerLayerOptim pl;
  pl.layer = 2;
  pl.weight_decay = 0.2;
  pl.l1 = 0.1;
  pl.lr_scale = 0.5;
  c.per_layer.push_back(pl);
  const ParamLayout layout = tiny_layout(2);
  const auto coeffs = resolve_segment_coeffs(c, layout);
  ASSERT_EQ(coeffs.size(), 2u);
  EXPECT_EQ(coeffs[0].weight_decay, 0.01);
  EXPECT_EQ(coeffs[0].lr_scale, 1.0);
  EXPECT_EQ(coeffs[1].weight_decay, 0.2);
  EXPECT_EQ(coeffs[1].l1, 0.1);
  EXPECT_EQ(coeffs[1].lr_scale, 0.5);
  double p[3] = {1.0, -2.0, 0.5};
  for (int k = 0; k < 3; ++k) {
    for (int i = 0; i < 2; ++i) p[i] = p[i] - LR[k] * (G[k][i] + 0.01 * p[i]);
    p[2] = p[2] - 0.5 * LR[k] * (G[k][2] + 0.1 * 1.0 + 0.2 * p[2]);  // p[2] stays positive
  }
  expect_three(c, p, layout);

  // An entry without parameters is an input error; an unknown name too.
  OptimConfig bad = c;
  bad.per_layer[0].layer = 1;
  EXPECT_THROW(make_optimizer<double>(bad, layout), InputError);
  EXPECT_THROW(make_optimizer<double>(cfg("lbfgs"), layout), InputError);
}

TEST(Optim, StateNamesAndSizes) {
  const std::map<std::string, std::vector<std::string>> want = {
      {"sgd", {}},
      {"momentum", {"momentum_buffer"}},
      {"nesterov", {"momentum_buffer"}},
      {"adagrad", {"sum"}},
      {"rmsprop", {"square_avg"}},
      {"adam", {"exp_avg", "exp_avg_sq"}},
      {"adamw", {"exp_avg", "exp_avg_sq"}},
      {"nadam", {"exp_avg", "exp_avg_sq", "mu_product"}},
      {"amsgrad", {"exp_avg", "exp_avg_sq", "max_exp_avg_sq"}},
  };
  for (const auto& [name, names] : want) {
    auto opt = make_optimizer<float>(cfg(name), tiny_layout());
    auto st = opt->state();
    ASSERT_EQ(st.size(), names.size()) << name;
    for (size_t j = 0; j < st.size(); ++j) {
      EXPECT_EQ(st[j].first, names[j]) << name;
      EXPECT_EQ(st[j].second->size(), st[j].first == "mu_product" ? 1u : 3u) << name;
    }
  }
}

TEST(Optim, ResumeFromStateIsExact) {
  // Steps 0..5 in one go equal steps 0..2, a copy of the state into a fresh optimiser, 3..5.
  for (const char* name : {"momentum", "adagrad", "rmsprop", "adam", "adamw", "nadam", "amsgrad"}) {
    OptimConfig c = cfg(name);
    c.weight_decay = 0.01;
    std::mt19937_64 rng(7);
    std::normal_distribution<double> nd;
    std::vector<std::vector<double>> gs(6, std::vector<double>(3));
    for (auto& g : gs)
      for (auto& x : g) x = nd(rng);
    auto a = make_optimizer<double>(c, tiny_layout());
    auto b = make_optimizer<double>(c, tiny_layout());
    std::vector<double> pa(P0, P0 + 3), pb(P0, P0 + 3);
    for (int k = 0; k < 6; ++k) a->step(pa.data(), gs[k].data(), 0.01, k);
    for (int k = 0; k < 3; ++k) b->step(pb.data(), gs[k].data(), 0.01, k);
    auto fresh = make_optimizer<double>(c, tiny_layout());
    auto sb = b->state(), sf = fresh->state();
    for (size_t j = 0; j < sb.size(); ++j) *sf[j].second = *sb[j].second;
    for (int k = 3; k < 6; ++k) fresh->step(pb.data(), gs[k].data(), 0.01, k);
    for (int i = 0; i < 3; ++i) EXPECT_EQ(pa[i], pb[i]) << name;
  }
}

TEST(Optim, StepDoesNotAllocate) {
  ParamLayout layout;
  layout.segments.push_back(ParamSegment{"0.weight", 0, 0, 200, 100, false});
  layout.segments.push_back(ParamSegment{"0.bias", 0, 20000, 200, 1, true});
  layout.total = 20200;
  std::vector<float> p(layout.total, 0.5f), g(layout.total, 0.1f);
  OptimConfig c = cfg("nadam");
  PerLayerOptim pl;
  pl.layer = 0;
  pl.lr_scale = 2;
  c.per_layer.push_back(pl);
  for (const char* name : {"sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw", "nadam", "amsgrad"}) {
    c.name = cn::parse_enum(cn::kOptimKinds, name, "optim.name");
    auto opt = make_optimizer<float>(c, layout);
    opt->step(p.data(), g.data(), 1e-3, 0);  // the first parallel region may start threads
    const long before = test::heap_allocations();
    for (int k = 1; k < 4; ++k) opt->step(p.data(), g.data(), 1e-3, k);
    EXPECT_EQ(test::heap_allocations() - before, 0) << name;
  }
}

// ---- the torch.optim oracle ------------------------------------------------------------

namespace {

const char* kOracleScript = R"PY(
import inspect, json, sys, textwrap
import torch
torch.set_default_dtype(torch.float64)
import torch.optim.nadam as nadam_mod
# torch < 2.0 computed NAdam's next product as mu_product * mu * mu_next (pytorch PR
# #92699 fixed it to mu_product * mu_next); run torch's own code with that fix.
src = inspect.getsource(nadam_mod._single_tensor_nadam)
if 'mu_product * mu * mu_next' in src:
    src = src.replace('mu_product * mu * mu_next', 'mu_product * mu_next')
    exec(compile(textwrap.dedent(src), nadam_mod.__file__, 'exec'), nadam_mod.__dict__)

runs = json.load(open(sys.argv[1]))
out = open(sys.argv[2], 'w')
for run in runs:
    name = run['name']
    flat = torch.tensor(run['params'])
    params, groups, off = [], [], 0
    for seg in run['segments']:
        n = seg['rows'] * seg['cols']
        p = flat[off:off + n].clone().reshape(seg['rows'], seg['cols']).requires_grad_(True)
        params.append(p)
        groups.append({'params': [p], 'weight_decay': seg['wd'], 'lr': run['lrs'][0] * seg['lr_scale']})
        off += n
    b = (run['beta1'], run['beta2'])
    if name == 'sgd': opt = torch.optim.SGD(groups, lr=1.0, momentum=0, foreach=False)
    elif name == 'momentum': opt = torch.optim.SGD(groups, lr=1.0, momentum=run['momentum'], dampening=0, nesterov=False, foreach=False)
    elif name == 'nesterov': opt = torch.optim.SGD(groups, lr=1.0, momentum=run['momentum'], dampening=0, nesterov=True, foreach=False)
    elif name == 'adagrad': opt = torch.optim.Adagrad(groups, lr=1.0, lr_decay=0, initial_accumulator_value=0, eps=run['eps'], foreach=False)
    elif name == 'rmsprop': opt = torch.optim.RMSprop(groups, lr=1.0, alpha=run['alpha'], eps=run['eps'], momentum=0, centered=False, foreach=False)
    elif name == 'adam': opt = torch.optim.Adam(groups, lr=1.0, betas=b, eps=run['eps'], foreach=False)
    elif name == 'adamw': opt = torch.optim.AdamW(groups, lr=1.0, betas=b, eps=run['eps'], foreach=False)
    elif name == 'nadam': opt = torch.optim.NAdam(groups, lr=1.0, betas=b, eps=run['eps'], momentum_decay=4e-3, foreach=False)
    elif name == 'amsgrad': opt = torch.optim.Adam(groups, lr=1.0, betas=b, eps=run['eps'], amsgrad=True, foreach=False)
    for k, g in enumerate(run['grads']):
        gflat = torch.tensor(g)
        off = 0
        for seg, p, grp in zip(run['segments'], params, opt.param_groups):
            n = seg['rows'] * seg['cols']
            gs = gflat[off:off + n].reshape(seg['rows'], seg['cols'])
            p.grad = gs + seg['l1'] * torch.sign(p.detach())
            grp['lr'] = run['lrs'][k] * seg['lr_scale']
            off += n
        opt.step()
        out.write('params %d %s\n' % (k, ' '.join(repr(v) for v in torch.cat([p.detach().flatten() for p in params]).tolist())))
    for sname in run['states']:
        if sname == 'mu_product':
            vals = [float(opt.state[params[0]]['mu_product'])]
        else:
            vals = torch.cat([opt.state[p][sname].flatten() for p in params]).tolist()
        out.write('state %s %s\n' % (sname, ' '.join(repr(v) for v in vals)))
    out.write('end\n')
out.close()
)PY";

std::string num(double x) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%.17g", x);
  return buf;
}

std::string json_list(const std::vector<double>& v) {
  std::string s = "[";
  for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + num(v[i]);
  return s + "]";
}

struct OracleRun {
  OptimConfig config;
  std::vector<double> params;
  std::vector<std::vector<double>> grads;
  std::vector<double> lrs;
};

}  // namespace

TEST(Optim, MatchesTorchOptimFloat64) {
  if (!cn::test::python_has("torch"))
    GTEST_SKIP() << "no PyTorch for " << cn::test::python_exe() << " (set CURVNET_PYTHON to a Python with torch)";
  // Two layers with weight and bias each; layer 2 has its own coefficients.
  ParamLayout layout;
  layout.segments.push_back(ParamSegment{"0.weight", 0, 0, 4, 3, false});
  layout.segments.push_back(ParamSegment{"0.bias", 0, 12, 4, 1, true});
  layout.segments.push_back(ParamSegment{"2.weight", 2, 16, 2, 4, false});
  layout.segments.push_back(ParamSegment{"2.bias", 2, 24, 2, 1, true});
  layout.total = 26;

  const std::vector<std::string> names = {"sgd",  "momentum", "nesterov", "adagrad", "rmsprop",
                                          "adam", "adamw",    "nadam",    "amsgrad"};
  std::vector<OracleRun> runs;
  std::mt19937_64 rng(12345);
  std::normal_distribution<double> nd;
  for (const std::string& name : names)
    for (int penalised = 0; penalised < 2; ++penalised) {
      OracleRun r;
      r.config.name = cn::parse_enum(cn::kOptimKinds, name, "optim.name");
      r.config.momentum = 0.85;
      r.config.beta1 = 0.8;
      r.config.beta2 = 0.95;
      r.config.eps = 1e-6;
      r.config.alpha = 0.9;
      if (penalised) {
        r.config.weight_decay = 0.03;
        r.config.l1 = 0.002;
        PerLayerOptim pl;
        pl.layer = 2;
        pl.weight_decay = 0.1;
        pl.l1 = 0.01;
        pl.lr_scale = 0.5;
        r.config.per_layer.push_back(pl);
      }
      r.params.resize(layout.total);
      for (auto& x : r.params) x = nd(rng);
      for (int k = 0; k < 10; ++k) {
        std::vector<double> g(layout.total);
        for (auto& x : g) x = 0.5 * nd(rng);
        r.grads.push_back(g);
        const bool adaptive = name != "sgd" && name != "momentum" && name != "nesterov";
        r.lrs.push_back((adaptive ? 0.01 : 0.05) * (1.0 + 0.1 * k));
      }
      runs.push_back(r);
    }

  cn::test::TempDir dir;
  std::string js = "[";
  std::vector<std::vector<std::pair<std::string, std::vector<double>*>>> states;
  std::vector<std::vector<std::vector<double>>> ours;  // [run][step] params
  std::vector<std::unique_ptr<Optimizer<double>>> opts;
  for (size_t ri = 0; ri < runs.size(); ++ri) {
    const OracleRun& r = runs[ri];
    const auto coeffs = resolve_segment_coeffs(r.config, layout);
    std::string segs = "[";
    for (size_t s = 0; s < layout.segments.size(); ++s) {
      const ParamSegment& seg = layout.segments[s];
      segs += std::string(s ? "," : "") + "{\"rows\":" + std::to_string(seg.rows) +
              ",\"cols\":" + std::to_string(seg.cols) + ",\"wd\":" + num(coeffs[s].weight_decay) +
              ",\"l1\":" + num(coeffs[s].l1) + ",\"lr_scale\":" + num(coeffs[s].lr_scale) + "}";
    }
    segs += "]";
    // Ours.
    opts.push_back(make_optimizer<double>(r.config, layout));
    std::vector<double> p = r.params;
    ours.emplace_back();
    for (int k = 0; k < 10; ++k) {
      opts.back()->step(p.data(), r.grads[k].data(), r.lrs[k], k);
      ours.back().push_back(p);
    }
    states.push_back(opts.back()->state());
    std::string snames = "[";
    for (size_t j = 0; j < states.back().size(); ++j)
      snames += std::string(j ? "," : "") + "\"" + states.back()[j].first + "\"";
    snames += "]";
    std::string grads = "[";
    for (int k = 0; k < 10; ++k) grads += std::string(k ? "," : "") + json_list(r.grads[k]);
    grads += "]";
    js += std::string(ri ? "," : "") + "{\"name\":\"" + cn::enum_name(cn::kOptimKinds, r.config.name) +
          "\",\"momentum\":" + num(r.config.momentum) + ",\"beta1\":" + num(r.config.beta1) +
          ",\"beta2\":" + num(r.config.beta2) + ",\"eps\":" + num(r.config.eps) + ",\"alpha\":" + num(r.config.alpha) +
          ",\"segments\":" + segs + ",\"params\":" + json_list(r.params) + ",\"grads\":" + grads +
          ",\"lrs\":" + json_list(r.lrs) + ",\"states\":" + snames + "}";
  }
  js += "]";
  cn::test::write_text(dir.file("in.json"), js);
  cn::test::write_text(dir.file("oracle.py"), kOracleScript);
  std::string log;
  const int rc = cn::test::run_command(
      cn::test::python_exe() + " " + dir.file("oracle.py") + " " + dir.file("in.json") + " " + dir.file("out.txt"),
      &log);
  ASSERT_EQ(rc, 0) << log;

  std::istringstream in(cn::test::read_text(dir.file("out.txt")));
  for (size_t ri = 0; ri < runs.size(); ++ri) {
    const std::string label = std::string(cn::enum_name(cn::kOptimKinds, runs[ri].config.name)) +
                              (runs[ri].config.per_layer.empty() ? "" : " (penalised)");
    std::string tag;
    size_t n_states = 0;
    int n_params = 0;
    while (in >> tag && tag != "end") {
      if (tag == "params") {
        int k;
        in >> k;
        ASSERT_TRUE(k >= 0 && k < 10);
        for (int64_t i = 0; i < layout.total; ++i) {
          double want;
          in >> want;
          EXPECT_NEAR(ours[ri][k][i], want, 1e-12 * std::max(1.0, std::fabs(want)))
              << label << " step " << k << " element " << i;
        }
        ++n_params;
      } else if (tag == "state") {
        std::string sname;
        in >> sname;
        std::vector<double>* buf = nullptr;
        for (auto& [nm, b] : states[ri])
          if (nm == sname) buf = b;
        ASSERT_NE(buf, nullptr) << sname;
        for (double& mine : *buf) {
          double want;
          in >> want;
          EXPECT_NEAR(mine, want, 1e-12 * std::max(1.0, std::fabs(want))) << label << " state " << sname;
        }
        ++n_states;
      } else {
        FAIL() << "unexpected oracle output: " << tag;
      }
    }
    EXPECT_EQ(n_params, 10) << label;
    EXPECT_EQ(n_states, states[ri].size()) << label;
  }
}
