// What the CUDA tests share: the skip without a GPU, typed random inputs, host/device
// copies and the nmse metric. Included by tests built with the CUDA backend only.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "core/device.h"
#include "core/memory.h"

// Skips the test, with the reason, when no CUDA device is visible.
#define CN_REQUIRE_GPU() \
  if (!cn::cuda_available()) GTEST_SKIP() << "no CUDA device visible: " << cn::cuda_device_description()

namespace cn::test {

// n values uniform in [lo, hi), never an exact zero (relative metrics stay defined).
template <class T>
std::vector<T> random_values(int64_t n, uint32_t seed, double lo = -2.0, double hi = 2.0) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> u(lo, hi);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& x : v) {
    double d = u(rng);
    if (d == 0.0) d = 0.5 * hi;
    x = static_cast<T>(d);
  }
  return v;
}

template <class T>
Buffer<T> to_device(const std::vector<T>& h) {
  Buffer<T> d(static_cast<int64_t>(h.size()), Device::cuda);
  device_copy(Device::cuda, d.data(), Device::cpu, h.data(), h.size() * sizeof(T));
  return d;
}

template <class T>
std::vector<T> to_host(const T* d, int64_t n) {
  std::vector<T> h(static_cast<size_t>(n));
  device_copy(Device::cpu, h.data(), Device::cuda, d, static_cast<size_t>(n) * sizeof(T));
  return h;
}

// Σ (got − want)² / Σ want² (Σ (got − want)² when want is zero); infinite when not finite.
template <class T>
double nmse(const std::vector<T>& got, const std::vector<T>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    const double d = static_cast<double>(got[i]) - static_cast<double>(want[i]);
    num += d * d;
    den += static_cast<double>(want[i]) * static_cast<double>(want[i]);
  }
  if (!std::isfinite(num)) return INFINITY;
  return den > 0 ? num / den : num;
}

}  // namespace cn::test
