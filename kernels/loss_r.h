// Second derivatives of the losses (means over the batch; MSE and BCE also over outputs),
// written once for the CPU loops and the CUDA kernels. Rdz = ∇²_z L · Rz per row:
//   cross-entropy: (diag(p) - p pᵀ) Rz / N          (p = softmax(z))
//   MSE:           2 / (N C) Rz
//   BCE (logits):  σ(z)(1 - σ(z)) / (N C) Rz        (p = σ(z))
#pragma once
#include "core/hd.h"
#include "kernels/loss.h"

namespace cn {

// One row of Rdz for cross-entropy: p, rz, rdz of length C; scale = 1/N.
template <class T>
CN_HD void ce_r_row(const T* p, const T* rz, T* rdz, int64_t C, T scale) {
  T dot = T(0);
  for (int64_t j = 0; j < C; ++j) dot += p[j] * rz[j];
  for (int64_t j = 0; j < C; ++j) rdz[j] = scale * p[j] * (rz[j] - dot);
}

// The per-element curvature of the elementwise losses (MSE, BCE); scale = 1/(N C).
template <class T>
CN_HD T elementwise_loss_curvature(LossKind kind, T p, T scale) {
  return kind == LossKind::mse ? T(2) * scale : p * (T(1) - p) * scale;
}

// The same at element i of the probabilities p (BCE's sigmoid); MSE reads no p (it may be null).
template <class T>
CN_HD T elementwise_loss_curvature_at(LossKind kind, const T* p, int64_t i, T scale) {
  return elementwise_loss_curvature(kind, kind == LossKind::mse ? T(0) : p[i], scale);
}

// Entry (i, j) of one row's output Hessian (the Kronecker path's starting point).
template <class T>
CN_HD T loss_hessian_entry(LossKind kind, const T* p, int64_t i, int64_t j, T inv_n, T inv_nc) {
  if (kind == LossKind::cross_entropy) return inv_n * ((i == j ? p[i] : T(0)) - p[i] * p[j]);
  return i == j ? elementwise_loss_curvature_at(kind, p, i, inv_nc) : T(0);
}

}  // namespace cn
