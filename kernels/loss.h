// Per-sample loss math (means over the batch are taken by the callers). Written once for
// the CPU loops and the CUDA kernels. C = outputs per sample.
#pragma once
#include <cmath>

#include "kernels/activation.h"
#include "core/hd.h"
#include "config/kinds.h"

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

// Binary cross-entropy with logits, one element: max(z,0) - z t + log(1 + e^{-|z|}).
template <class T>
CN_HD T bce_logits_elem(T z, T t) {
  return (z > T(0) ? z : T(0)) - z * t + std::log1p(std::exp(-std::fabs(z)));
}

}  // namespace cn
