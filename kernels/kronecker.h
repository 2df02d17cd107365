// The Kronecker path's transform of per-sample output Hessians M (N x F x F, one F x F
// block per sample) back through a layer, written once for the CPU loops and the CUDA
// kernels:
//   through y = d ⊙ x (Dropout's mask, evaluation-mode BatchNorm's γ s):  M_x = diag(d) M_y diag(d)
//   through an activation:  M_x = diag(f') M_y diag(f') + diag(dy f'')   (f'' dy: act_d2_dy)
#pragma once
#include "core/hd.h"

namespace cn {

// Entry (i, j) of diag(d) M diag(d), given m = M_ij.
template <class T>
CN_HD T kron_sandwich(T m, T d_i, T d_j) {
  return m * (d_i * d_j);
}

}  // namespace cn
