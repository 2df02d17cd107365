// R-operator math of BatchNorm (per feature o; s = inv_std, x̂ = (x - μ) s,
// y = γ x̂ + β), written once for the CPU loops and the CUDA kernels.
//
// Training mode (batch statistics, biased variance, the exact 1/N derivative):
//   m1 = mean_n Rx,  m2 = mean_n x̂ Rx                         (per direction and feature)
//   Rμ = m1,  Rσ² = 2 mean((x - μ) Rx) ⇒  Rs = -s² m2,  Rx̂ = s (Rx - m1 - x̂ m2)
//   Ry = γ Rx̂ + Vγ x̂ + Vβ
// Backward: with g = dy, A = Σ_n g, B = Σ_n g x̂:  dx = γ s (g - A/N - x̂ B/N), dγ = B, dβ = A.
// Its R-derivative: RA = Σ Rg, RB = Σ (Rg x̂ + g Rx̂),
//   Rdx = (Vγ s - γ s² m2)(g - A/N - x̂ B/N) + γ s (Rg - RA/N - Rx̂ B/N - x̂ RB/N)
//   (Hv)γ = RB, (Hv)β = RA.
// Evaluation mode (running statistics: an affine map per feature):
//   Rx̂ = s Rx, Ry = γ Rx̂ + Vγ x̂ + Vβ; Rdx = s (γ Rg + Vγ g); (Hv)γ = Σ (Rg x̂ + g Rx̂), (Hv)β = Σ Rg.
#pragma once
#include "core/hd.h"

namespace cn {

template <class T>
CN_HD T bn_r_xhat_train(T s, T rx, T m1, T xhat, T m2) {
  return s * (rx - m1 - xhat * m2);
}

template <class T>
CN_HD T bn_r_xhat_eval(T s, T rx) {
  return s * rx;
}

template <class T>
CN_HD T bn_r_xhat(bool training, T s, T rx, T m1, T xhat, T m2) {
  return training ? bn_r_xhat_train(s, rx, m1, xhat, m2) : bn_r_xhat_eval(s, rx);
}

template <class T>
CN_HD T bn_r_y(T gamma, T rxhat, T vgamma, T xhat, T vbeta) {
  return gamma * rxhat + vgamma * xhat + vbeta;
}

// A summand of RB: Rg x̂ + g Rx̂.
template <class T>
CN_HD T bn_rb_term(T rg, T xhat, T g, T rxhat) {
  return rg * xhat + g * rxhat;
}

// inv_n = 1/N; A, B, RA, RB as above; m2 from the forward tangent.
template <class T>
CN_HD T bn_r_dx_train(T gamma, T s, T vgamma, T m2, T g, T xhat, T rg, T rxhat, T A, T B, T RA, T RB, T inv_n) {
  const T dscale = vgamma * s - gamma * s * s * m2;
  return dscale * (g - A * inv_n - xhat * B * inv_n) +
         gamma * s * (rg - RA * inv_n - rxhat * B * inv_n - xhat * RB * inv_n);
}

template <class T>
CN_HD T bn_r_dx_eval(T gamma, T s, T vgamma, T g, T rg) {
  return s * (gamma * rg + vgamma * g);
}

}  // namespace cn
