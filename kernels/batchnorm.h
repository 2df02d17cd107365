// BatchNorm's per-element and per-feature math, written once for the CPU loops and the
// CUDA kernels (the reductions over the batch are the backends' own). Per feature o over a
// batch of N: mean mu, biased variance var, inv_std = 1/sqrt(var + eps),
// xhat = (x - mu) inv_std, y = gamma xhat + beta.
#pragma once
#include <cmath>
#include <cstdint>

#include "core/hd.h"

namespace cn {

// A summand of the biased batch variance: (x - mean)^2.
template <class T>
CN_HD T bn_sq_dev(T x, T mean) {
  const T c = x - mean;
  return c * c;
}

// sqrt(var + eps), and its inverse: the scale of every normalisation.
template <class T>
CN_HD T bn_std(T var, double eps) {
  return std::sqrt(var + T(eps));
}
template <class T>
CN_HD T bn_inv_std(T var, double eps) {
  return T(1) / bn_std(var, eps);
}

template <class T>
CN_HD T bn_xhat(T x, T mean, T inv_std) {
  return (x - mean) * inv_std;
}

template <class T>
CN_HD T bn_affine(T gamma, T xhat, T beta) {
  return gamma * xhat + beta;
}

// Training-mode dx: (gamma inv_std / N) (N dy - sum dy - xhat sum(dy xhat)).
template <class T>
CN_HD T bn_train_dx_scale(T gamma, T inv_std, int64_t N) {
  return gamma * inv_std / T(N);
}
template <class T>
CN_HD T bn_train_dx(T scale, T dy, T xhat, T sum_dy, T sum_dy_xhat, int64_t N) {
  return scale * (T(N) * dy - sum_dy - xhat * sum_dy_xhat);
}

// Evaluation-mode dx (an affine map per feature): dy gamma inv_std.
template <class T>
CN_HD T bn_eval_dx(T dy, T gamma, T inv_std) {
  return dy * gamma * inv_std;
}

// Running statistics (PyTorch's meaning of momentum m): running <- (1 - m) running + m
// batch, the variance unbiased by N / (N - 1); the batch variance is recovered from inv_std.
template <class T>
CN_HD void bn_running_update(T mean, T inv_std, int64_t N, double eps, double momentum, T* running_mean,
                             T* running_var) {
  const T m = T(momentum);
  const T unbias = N > 1 ? T(N) / T(N - 1) : T(1);
  const T var = T(1) / (inv_std * inv_std) - T(eps);
  *running_mean = (T(1) - m) * *running_mean + m * mean;
  *running_var = (T(1) - m) * *running_var + m * var * unbias;
}

}  // namespace cn
