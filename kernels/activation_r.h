// R-operator math of an elementwise activation y = f(x) (Pearlmutter), written once for
// the CPU loops and the CUDA kernels.
//   forward tangent:  Ry  = f'(x) Rx
//   backward tangent: Rdx = f'(x) Rdy + f''(x) Rx dy     (dx = f'(x) dy differentiated)
// Per-sample output Hessians (the Kronecker path) transform as
//   M_x = diag(f'(x)) M_y diag(f'(x)) + diag(dy f''(x)).
#pragma once
#include "kernels/activation.h"
#include "core/hd.h"

namespace cn {

template <class T>
CN_HD T act_r_forward(const ActParams& a, T x, T y, T rx) {
  return act_d1(a, x, y) * rx;
}

// rx or dy may be zero (no upstream tangent / Gauss-Newton mode).
template <class T>
CN_HD T act_r_backward(const ActParams& a, T x, T y, T dy, T rx, T rdy) {
  return act_d1(a, x, y) * rdy + act_d2(a, x, y) * rx * dy;
}

}  // namespace cn
