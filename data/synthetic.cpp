// Seeded synthetic data sets: every value is a pure function of (name, n_samples, noise,
// seed), drawn from RngStream::data. Each generator has its own draws (a = its id) for
// uniforms and normals, so the two never share Philox words, and the split permutation
// (draw a = 0) is independent of them. docs/datasets.md describes each one.
#include <cmath>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/philox.h"
#include "data/dataset.h"

namespace cn {
namespace {

constexpr double kPi = 3.14159265358979323846;

struct Draws {
  PhiloxDraw u, z;  // uniforms in (0,1], standard normals
  Draws(uint64_t seed, uint32_t id)
      : u(seed, RngStream::data, 100 + 2 * id, 0), z(seed, RngStream::data, 101 + 2 * id, 0) {}
};

Dataset empty(const std::string& name, Task task, int64_t n, int64_t d, int64_t n_outputs) {
  Dataset ds;
  ds.name = name;
  ds.task = task;
  ds.n = n;
  ds.d = d;
  ds.n_outputs = n_outputs;
  ds.x.resize(static_cast<size_t>(n * d));
  ds.y.resize(static_cast<size_t>(task == Task::classification ? n : n * n_outputs));
  return ds;
}

// Two interleaved spirals: class c = i mod 2, t ~ U(0,1], angle 3*pi*t + c*pi, radius t.
Dataset spirals(int64_t n, double noise, uint64_t seed) {
  Dataset ds = empty("spirals", Task::classification, n, 2, 2);
  Draws r(seed, 1);
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % 2);
    const double t = r.u.uniform();
    const double a = 3.0 * kPi * t + c * kPi;
    ds.x[2 * i] = t * std::cos(a) + noise * r.z.normal();
    ds.x[2 * i + 1] = t * std::sin(a) + noise * r.z.normal();
    ds.y[i] = c;
  }
  ds.class_names = {"0", "1"};
  return ds;
}

// Three Gaussian blobs: class c = i mod 3, centre (cos 2*pi*c/3, sin 2*pi*c/3), std 0.3 + noise.
Dataset blobs(int64_t n, double noise, uint64_t seed) {
  Dataset ds = empty("blobs", Task::classification, n, 2, 3);
  Draws r(seed, 2);
  const double s = 0.3 + noise;
  for (int64_t i = 0; i < n; ++i) {
    const int c = static_cast<int>(i % 3);
    ds.x[2 * i] = std::cos(2 * kPi * c / 3) + s * r.z.normal();
    ds.x[2 * i + 1] = std::sin(2 * kPi * c / 3) + s * r.z.normal();
    ds.y[i] = c;
  }
  ds.class_names = {"0", "1", "2"};
  return ds;
}

// XOR: x ~ U[-1,1]^2, label 1 when x1 * x2 > 0 (same signs), then noise * N(0,1) on the features.
Dataset xor_set(int64_t n, double noise, uint64_t seed) {
  Dataset ds = empty("xor", Task::classification, n, 2, 2);
  Draws r(seed, 3);
  for (int64_t i = 0; i < n; ++i) {
    const double a = 2.0 * r.u.uniform() - 1.0, b = 2.0 * r.u.uniform() - 1.0;
    ds.y[i] = a * b > 0 ? 1 : 0;
    ds.x[2 * i] = a + noise * r.z.normal();
    ds.x[2 * i + 1] = b + noise * r.z.normal();
  }
  ds.class_names = {"0", "1"};
  return ds;
}

// Teacher-student regression: x ~ N(0, I_10), y = w2 . tanh(W1 x + b1) + b2 + noise * N(0,1)
// with a fixed teacher (the same for every seed): W1 ~ N(0, 1/10) [H x 10], b1 ~ N(0, 0.1^2),
// w2 ~ N(0, 1/H), b2 = 0; H = data.teacher_width (32 by default).
Dataset teacher(int64_t n, double noise, uint64_t seed, int64_t hidden) {
  constexpr int kIn = 10;
  Dataset ds = empty("teacher", Task::regression, n, kIn, 1);
  PhiloxDraw t(0x7eac4e5ull, RngStream::data, 1, 0);
  std::vector<double> w1(hidden * kIn), b1(hidden), w2(hidden);
  for (auto& w : w1) w = t.normal() / std::sqrt(double(kIn));
  for (auto& b : b1) b = 0.1 * t.normal();
  for (auto& w : w2) w = t.normal() / std::sqrt(double(hidden));
  Draws r(seed, 4);
  for (int64_t i = 0; i < n; ++i) {
    double* x = ds.x.data() + i * kIn;
    for (int j = 0; j < kIn; ++j) x[j] = r.z.normal();
    double y = 0;
    for (int64_t h = 0; h < hidden; ++h) {
      double a = b1[h];
      for (int j = 0; j < kIn; ++j) a += w1[h * kIn + j] * x[j];
      y += w2[h] * std::tanh(a);
    }
    ds.y[i] = y + noise * r.z.normal();
  }
  return ds;
}

// Noisy sine: x ~ U[-pi, pi], y = sin(x) + noise * N(0,1).
Dataset sine(int64_t n, double noise, uint64_t seed) {
  Dataset ds = empty("sine", Task::regression, n, 1, 1);
  Draws r(seed, 5);
  for (int64_t i = 0; i < n; ++i) {
    const double x = -kPi + 2.0 * kPi * r.u.uniform();
    ds.x[i] = x;
    ds.y[i] = std::sin(x) + noise * r.z.normal();
  }
  return ds;
}

}  // namespace

bool is_synthetic(const std::string& name) {
  return name == "spirals" || name == "blobs" || name == "xor" || name == "teacher" || name == "sine";
}

Dataset make_synthetic(const std::string& name, int64_t n_samples, double noise, uint64_t seed, int64_t teacher_width) {
  if (n_samples < 1) throw InputError("data.n_samples = " + std::to_string(n_samples) + ": expected at least 1");
  if (!(noise >= 0) || !std::isfinite(noise))
    throw InputError("data.noise = " + std::to_string(noise) + ": expected a finite value >= 0");
  if (name == "spirals") return spirals(n_samples, noise, seed);
  if (name == "blobs") return blobs(n_samples, noise, seed);
  if (name == "xor") return xor_set(n_samples, noise, seed);
  if (name == "teacher") return teacher(n_samples, noise, seed, teacher_width);
  if (name == "sine") return sine(n_samples, noise, seed);
  throw InputError("unknown synthetic data set \"" + name + "\": expected spirals, blobs, xor, teacher or sine");
}

}  // namespace cn
