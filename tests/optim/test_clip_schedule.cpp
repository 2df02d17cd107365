// Learning-rate schedules, gradient clipping and gradient noise: hand-computed values from
// the formulas of docs/optimisers.md.
#include <gtest/gtest.h>
#include <omp.h>

#include <atomic>
#include <cmath>
#include <cstdlib>
#include <new>
#include <random>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "optim/optimizer.h"

#include "heap_counter.h"

using namespace cn;

namespace {
const double kPi = 3.14159265358979323846;

ScheduleConfig sched(const std::string& kind) {
  ScheduleConfig s;
  s.kind = cn::parse_enum(cn::kScheduleKinds, kind, "schedule.kind");
  return s;
}
}  // namespace

// ---- schedules ---------------------------------------------------------------------------

TEST(Schedule, Constant) {
  const ScheduleConfig s = sched("constant");
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 0, 100), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 99, 100), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 5000, 0), 0.1);
}

TEST(Schedule, Step) {
  ScheduleConfig s = sched("step");
  s.gamma = 0.5;
  s.step_size = 10;
  // base gamma^floor(step / step_size)
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 0, 0), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 9, 0), 0.1);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 10, 0), 0.05);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 25, 0), 0.025);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 30, 0), 0.0125);
}

TEST(Schedule, ExponentialIsContinuous) {
  ScheduleConfig s = sched("exponential");
  s.gamma = 0.5;
  s.step_size = 10;
  // base gamma^(step / step_size)
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 0, 0), 0.1);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 5, 0), 0.1 * std::sqrt(0.5), 1e-16);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 20, 0), 0.025, 1e-16);
  s.step_size = 1;  // torch ExponentialLR
  s.gamma = 0.9;
  EXPECT_NEAR(scheduled_lr(s, 1.0, 3, 0), 0.9 * 0.9 * 0.9, 1e-15);
}

TEST(Schedule, Cosine) {
  ScheduleConfig s = sched("cosine");
  s.min_lr = 0.01;
  // min + (base - min)(1 + cos(pi t / T)) / 2, T = total steps (the argument when the key is 0)
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 0, 100), 0.1);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 50, 100), 0.055, 1e-16);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 25, 100), 0.01 + 0.09 * (1 + std::sqrt(0.5)) / 2, 1e-16);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 99, 100), 0.01 + 0.09 * (1 + std::cos(kPi * 0.99)) / 2, 1e-16);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 100, 100), 0.01);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 150, 100), 0.01);  // flat after the horizon
  s.total_steps = 200;                                     // the key wins over the argument
  EXPECT_NEAR(scheduled_lr(s, 0.1, 100, 100), 0.055, 1e-16);
  s.total_steps = 0;
  EXPECT_THROW(scheduled_lr(s, 0.1, 0, 0), InputError);  // no horizon
}

TEST(Schedule, CosineWithWarmup) {
  ScheduleConfig s = sched("cosine");
  s.warmup_steps = 10;
  s.min_lr = 0.01;
  // warm-up: base (step + 1) / warmup; then cosine over T - warmup = 100 steps
  EXPECT_NEAR(scheduled_lr(s, 0.1, 0, 110), 0.01, 1e-17);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 4, 110), 0.05, 1e-17);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 9, 110), 0.1, 1e-17);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 10, 110), 0.1);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 60, 110), 0.055, 1e-16);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 110, 110), 0.01);
}

TEST(Schedule, WarmupInFrontOfStep) {
  ScheduleConfig s = sched("step");
  s.warmup_steps = 4;
  s.gamma = 0.1;
  s.step_size = 5;
  EXPECT_NEAR(scheduled_lr(s, 0.2, 0, 0), 0.05, 1e-17);
  EXPECT_NEAR(scheduled_lr(s, 0.2, 1, 0), 0.1, 1e-17);
  EXPECT_NEAR(scheduled_lr(s, 0.2, 3, 0), 0.2, 1e-17);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.2, 4, 0), 0.2);     // the step schedule's step 0
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.2, 8, 0), 0.2);     // its step 4
  EXPECT_NEAR(scheduled_lr(s, 0.2, 9, 0), 0.02, 1e-17);  // its step 5
}

TEST(Schedule, CosineRestarts) {
  ScheduleConfig s = sched("cosine_restarts");
  s.step_size = 20;
  // min + (base - min)(1 + cos(pi (t mod T0) / T0)) / 2
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 0, 0), 0.1);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 10, 0), 0.05, 1e-16);
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 20, 0), 0.1);  // restart
  EXPECT_NEAR(scheduled_lr(s, 0.1, 25, 0), 0.1 * (1 + std::sqrt(0.5)) / 2, 1e-16);
  s.min_lr = 0.02;
  EXPECT_NEAR(scheduled_lr(s, 0.1, 50, 0), 0.06, 1e-16);
}

TEST(Schedule, CyclicTriangular) {
  ScheduleConfig s = sched("cyclic");
  s.step_size = 10;
  // between base and max (0 = 10 x base) with half-cycle step_size
  EXPECT_DOUBLE_EQ(scheduled_lr(s, 0.1, 0, 0), 0.1);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 5, 0), 0.55, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 10, 0), 1.0, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 15, 0), 0.55, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 20, 0), 0.1, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 30, 0), 1.0, 1e-15);
  s.max_lr = 0.5;
  EXPECT_NEAR(scheduled_lr(s, 0.1, 5, 0), 0.3, 1e-15);
  EXPECT_NEAR(scheduled_lr(s, 0.1, 12, 0), 0.1 + 0.4 * 0.8, 1e-15);
}

TEST(Schedule, BadInput) {
  EXPECT_THROW(scheduled_lr(sched("linear"), 0.1, 0, 10), InputError);
  ScheduleConfig s = sched("step");
  s.step_size = 0;
  EXPECT_THROW(scheduled_lr(s, 0.1, 0, 10), InputError);
}

// ---- clipping ----------------------------------------------------------------------------

namespace {

// Layer 0: a 2x2 weight and a bias of 2; layer 2: a 1x2 weight and a bias of 1.
ParamLayout clip_layout() {
  ParamLayout l;
  l.segments.push_back(ParamSegment{"0.weight", 0, 0, 2, 2, false});
  l.segments.push_back(ParamSegment{"0.bias", 0, 4, 2, 1, true});
  l.segments.push_back(ParamSegment{"2.weight", 2, 6, 1, 2, false});
  l.segments.push_back(ParamSegment{"2.bias", 2, 8, 1, 1, true});
  l.total = 9;
  return l;
}

// Layer 0's gradient has norm 5, layer 2's norm 3; the global norm is sqrt(34).
const std::vector<double> kGrad = {3, 0, 0, 4, 0, 0, 1, 2, 2};

ClipConfig clip(const std::string& mode) {
  ClipConfig c;
  c.mode = cn::parse_enum(cn::kClipModes, mode, "clip.mode");
  return c;
}

void expect_vec(const std::vector<double>& got, const std::vector<double>& want, double tol = 1e-15) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

}  // namespace

TEST(Clip, NoneStillMeasures) {
  std::vector<double> g = kGrad, p(9, 1.0);
  const ClipResult r = clip_gradients(clip("none"), clip_layout(), p.data(), g.data());
  EXPECT_DOUBLE_EQ(r.norm_before, std::sqrt(34.0));
  EXPECT_DOUBLE_EQ(r.norm_after, std::sqrt(34.0));
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(g, kGrad);
}

TEST(Clip, GlobalNorm) {
  ClipConfig c = clip("norm");
  c.max_norm = 1.0;
  std::vector<double> g = kGrad, p(9, 1.0);
  ClipResult r = clip_gradients(c, clip_layout(), p.data(), g.data());
  // g * max_norm / (||g|| + 1e-6)
  const double coef = 1.0 / (std::sqrt(34.0) + 1e-6);
  EXPECT_TRUE(r.clipped);
  EXPECT_DOUBLE_EQ(r.norm_before, std::sqrt(34.0));
  EXPECT_NEAR(r.norm_after, std::sqrt(34.0) * coef, 1e-15);
  expect_vec(g, {3 * coef, 0, 0, 4 * coef, 0, 0, coef, 2 * coef, 2 * coef});

  c.max_norm = 10.0;  // above the norm: untouched
  g = kGrad;
  r = clip_gradients(c, clip_layout(), p.data(), g.data());
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(g, kGrad);

  // float instantiation
  std::vector<float> gf(kGrad.begin(), kGrad.end()), pf(9, 1.0f);
  c.max_norm = 1.0;
  const ClipResult rf = clip_gradients(c, clip_layout(), pf.data(), gf.data());
  EXPECT_TRUE(rf.clipped);
  EXPECT_NEAR(gf[3], 4 * coef, 1e-7);
  EXPECT_NEAR(rf.norm_after, 1.0, 1e-6);
}

TEST(Clip, PerLayerNorm) {
  ClipConfig c = clip("layer_norm");
  c.max_norm = 4.0;
  std::vector<double> g = kGrad, p(9, 1.0);
  const ClipResult r = clip_gradients(c, clip_layout(), p.data(), g.data());
  // layer 0 (norm 5, weight and bias together) scaled by 4 / (5 + 1e-6); layer 2 (norm 3) kept
  const double coef = 4.0 / (5.0 + 1e-6);
  EXPECT_TRUE(r.clipped);
  expect_vec(g, {3 * coef, 0, 0, 4 * coef, 0, 0, 1, 2, 2});
  EXPECT_NEAR(r.norm_after, std::sqrt(25 * coef * coef + 9), 1e-14);
}

TEST(Clip, Value) {
  ClipConfig c = clip("value");
  c.value = 2.5;
  std::vector<double> g = kGrad, p(9, 1.0);
  g[4] = -7;  // a negative one too
  ClipResult r = clip_gradients(c, clip_layout(), p.data(), g.data());
  EXPECT_TRUE(r.clipped);
  expect_vec(g, {2.5, 0, 0, 2.5, -2.5, 0, 1, 2, 2});
  EXPECT_DOUBLE_EQ(r.norm_before, std::sqrt(34.0 + 49.0));
  EXPECT_NEAR(r.norm_after, std::sqrt(3 * 6.25 + 9), 1e-15);
  c.value = 10;
  g = kGrad;
  r = clip_gradients(c, clip_layout(), p.data(), g.data());
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(g, kGrad);
}

TEST(Clip, AgcPerLayer) {
  ClipConfig c = clip("agc");
  c.agc_lambda = 0.5;
  c.agc_eps = 1e-3;
  // Layer 0: ||theta|| = sqrt(2), ||g|| = 5; layer 2: theta = 0, so the floor nu counts.
  std::vector<double> p = {1, 0, 0, 1, 0, 0, 0, 0, 0};
  std::vector<double> g = kGrad;
  ClipResult r = clip_gradients(c, clip_layout(), p.data(), g.data());
  // ||g|| / max(||theta||, nu) > lambda  =>  g *= lambda max(||theta||, nu) / ||g||
  const double c0 = 0.5 * std::sqrt(2.0) / 5.0;
  const double c2 = 0.5 * 1e-3 / 3.0;
  EXPECT_TRUE(r.clipped);
  expect_vec(g, {3 * c0, 0, 0, 4 * c0, 0, 0, c2, 2 * c2, 2 * c2});
  EXPECT_NEAR(r.norm_after, std::sqrt(0.5 + 0.5 * 0.5 * 1e-6), 1e-15);

  // lambda = 10: layer 0's ratio 5/sqrt(2) = 3.5 stays; layer 2 is clipped by the floor.
  c.agc_lambda = 10;
  g = kGrad;
  r = clip_gradients(c, clip_layout(), p.data(), g.data());
  const double f2 = 10 * 1e-3 / 3.0;
  EXPECT_TRUE(r.clipped);
  expect_vec(g, {3, 0, 0, 4, 0, 0, f2, 2 * f2, 2 * f2});

  // Every ratio below lambda: nothing happens.
  std::vector<double> big(9, 100.0);
  g = kGrad;
  r = clip_gradients(c, clip_layout(), big.data(), g.data());
  EXPECT_FALSE(r.clipped);
  EXPECT_EQ(g, kGrad);
}

TEST(Clip, AgcPerUnit) {
  ClipConfig c = clip("agc_unit");
  c.agc_lambda = 1.0;
  c.agc_eps = 0.01;
  // 0.weight rows: g (3,0) theta (1,0) -> ratio 3; g (0,4) theta (0,1) -> ratio 4.
  // 0.bias: zero gradient. 2.weight row: g (1,2) theta (3,4) -> ratio sqrt(5)/5 < 1.
  // 2.bias: g 2, theta 0 -> the floor 0.01 counts: g = 1 * 0.01 / 2 * 2.
  std::vector<double> p = {1, 0, 0, 1, 0.5, -0.5, 3, 4, 0};
  std::vector<double> g = kGrad;
  const ClipResult r = clip_gradients(c, clip_layout(), p.data(), g.data());
  EXPECT_TRUE(r.clipped);
  expect_vec(g, {1, 0, 0, 1, 0, 0, 1, 2, 0.01});
  EXPECT_NEAR(r.norm_after, std::sqrt(1 + 1 + 1 + 4 + 1e-4), 1e-15);

  // The per-layer rule on the same input leaves layer 2 alone (ratio 3 / 5 < 1).
  std::vector<double> g2 = kGrad;
  c.mode = cn::ClipMode::agc;
  clip_gradients(c, clip_layout(), p.data(), g2.data());
  expect_vec(std::vector<double>(g2.begin() + 6, g2.end()), {1, 2, 2});

  // Bias elements are units of their own: only the one over the ratio is scaled.
  c.mode = cn::ClipMode::agc_unit;
  std::vector<double> gb = {0, 0, 0, 0, 0.5, 3, 0, 0, 0};
  std::vector<double> pb = {1, 1, 1, 1, 1, 1, 1, 1, 1};
  clip_gradients(c, clip_layout(), pb.data(), gb.data());
  expect_vec(gb, {0, 0, 0, 0, 0.5, 1, 0, 0, 0});
}

TEST(Clip, UnknownModeIsInputError) {
  std::vector<double> g = kGrad, p(9, 1.0);
  EXPECT_THROW(clip_gradients(clip("global"), clip_layout(), p.data(), g.data()), InputError);
}

TEST(Clip, NoAllocationAndThreadIndependentNorm) {
  ParamLayout l;
  l.segments.push_back(ParamSegment{"0.weight", 0, 0, 1000, 2000, false});
  l.segments.push_back(ParamSegment{"0.bias", 0, 2000000, 1000, 1, true});
  l.segments.push_back(ParamSegment{"1.weight", 1, 2001000, 10, 1000, false});
  l.total = 2011000;
  std::vector<float> p(l.total), g(l.total);
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  for (auto& x : p) x = nd(rng);
  for (auto& x : g) x = 0.01f * nd(rng);
  const std::vector<float> g0 = g;
  clip_gradients(clip("agc_unit"), l, p.data(), g.data());  // warm the thread pool
  for (const char* mode : {"none", "norm", "layer_norm", "value", "agc", "agc_unit"}) {
    g = g0;
    ClipConfig c = clip(mode);
    c.max_norm = 1.0;
    c.value = 0.02;
    const long before = test::heap_allocations();
    clip_gradients(c, l, p.data(), g.data());
    EXPECT_EQ(test::heap_allocations() - before, 0) << mode;
  }
  const int threads = omp_get_max_threads();
  omp_set_num_threads(1);
  g = g0;
  const ClipResult one = clip_gradients(clip("norm"), l, p.data(), g.data());
  omp_set_num_threads(threads > 1 ? threads : 3);
  g = g0;
  const ClipResult many = clip_gradients(clip("norm"), l, p.data(), g.data());
  omp_set_num_threads(threads);
  EXPECT_EQ(one.norm_before, many.norm_before);
  EXPECT_EQ(one.norm_after, many.norm_after);
}

// ---- gradient noise --------------------------------------------------------------------

TEST(GradNoise, OffWhenEtaIsZero) {
  OptimConfig c;
  c.grad_noise_eta = 0.0;
  std::vector<double> g = {1, 2, 3};
  add_gradient_noise(c, 42, 5, g.data(), 3);
  EXPECT_EQ(g, (std::vector<double>{1, 2, 3}));
}

TEST(GradNoise, VarianceFollowsTheSchedule) {
  OptimConfig c;
  c.grad_noise_eta = 0.5;
  c.grad_noise_gamma = 0.55;
  const int64_t n = 200000;
  for (int64_t step : {0, 3, 99}) {
    // sigma_t^2 = eta / (1 + t)^gamma
    const double var = 0.5 / std::pow(1.0 + step, 0.55);
    std::vector<double> g(n, 1.0);
    add_gradient_noise(c, 7, step, g.data(), n);
    double mean = 0, m2 = 0;
    for (double x : g) mean += x - 1.0;
    mean /= n;
    for (double x : g) m2 += (x - 1.0 - mean) * (x - 1.0 - mean);
    const double sample_var = m2 / (n - 1);
    // standard errors: sqrt(var / n) for the mean, var sqrt(2 / n) for the variance
    EXPECT_NEAR(mean, 0.0, 5 * std::sqrt(var / n)) << step;
    EXPECT_NEAR(sample_var, var, 5 * var * std::sqrt(2.0 / n)) << step;
  }
  std::vector<float> gf(n, 0.0f);
  add_gradient_noise(c, 7, 3, gf.data(), n);
  double m2 = 0;
  for (float x : gf) m2 += static_cast<double>(x) * x;
  const double var = 0.5 / std::pow(4.0, 0.55);
  EXPECT_NEAR(m2 / n, var, 5 * var * std::sqrt(2.0 / n));
}

TEST(GradNoise, DeterministicPerSeedAndStep) {
  OptimConfig c;
  c.grad_noise_eta = 0.01;
  const int64_t n = 1000;
  std::vector<double> a(n, 0.0), b(n, 0.0), d(n, 0.0), e(n, 0.0);
  add_gradient_noise(c, 11, 4, a.data(), n);
  add_gradient_noise(c, 11, 4, b.data(), n);
  add_gradient_noise(c, 11, 5, d.data(), n);
  add_gradient_noise(c, 12, 4, e.data(), n);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, d);
  EXPECT_NE(a, e);
  // Element i is sigma_t * philox_normal(key(seed, grad_noise), i, 0, step).
  const double sigma = std::sqrt(0.01 / std::pow(5.0, 0.55));
  const PhiloxKey key = philox_key(11, RngStream::grad_noise);
  for (int64_t i : {0, 1, 517, 999}) EXPECT_DOUBLE_EQ(a[i], sigma * philox_normal(key, i, 0, 4)) << i;
}
