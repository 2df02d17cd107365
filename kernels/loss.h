// Per-sample loss math (means over the batch are taken by the callers). Written once for
// the CPU loops and the CUDA kernels. C = outputs per sample.
#pragma once
#include <cmath>
#include <cstdint>

#include "config/kinds.h"
#include "core/hd.h"
#include "kernels/activation.h"

namespace cn {

// Softmax cross-entropy of one row z[0..C) with integer label y: log-sum-exp - z_y.
// Writes the softmax into p (may alias nothing). Stable: shifts by max z.
template <class T>
CN_HD T ce_row(const T* z, int C, int label, T* p) {
  T m = z[0];
  for (int j = 1; j < C; ++j) m = z[j] > m ? z[j] : m;
  T s = T(0);
  for (int j = 0; j < C; ++j) {
    p[j] = std::exp(z[j] - m);
    s += p[j];
  }
  const T inv = T(1) / s;
  for (int j = 0; j < C; ++j) p[j] *= inv;
  return std::log(s) + m - z[label];
}

// The gradient of the mean cross-entropy in one row's logits, from its softmax p:
// dz_j = (p_j - [j == label]) / N (inv_n = 1/N).
template <class T>
CN_HD void ce_row_grad(const T* p, int64_t C, int label, T inv_n, T* dz) {
  for (int64_t j = 0; j < C; ++j) dz[j] = (p[j] - (j == label ? T(1) : T(0))) * inv_n;
}

// One element of the squared error: returns (z - t)^2 and sets dz = scale (z - t), the
// gradient of the mean when scale = 2 / (N C).
template <class T>
CN_HD T mse_elem(T z, T t, T scale, T& dz) {
  const T r = z - t;
  dz = scale * r;
  return r * r;
}

// Binary cross-entropy with logits, one element: max(z,0) - z t + log(1 + e^{-|z|}).
template <class T>
CN_HD T bce_logits_elem(T z, T t) {
  return (z > T(0) ? z : T(0)) - z * t + std::log1p(std::exp(-std::fabs(z)));
}

// Its gradient in z, from s = sigmoid(z): (s - t) inv_m, the mean's when inv_m = 1/(N C).
template <class T>
CN_HD T bce_logits_grad(T s, T t, T inv_m) {
  return (s - t) * inv_m;
}

}  // namespace cn
