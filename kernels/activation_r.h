// R-operator math of an elementwise activation y = f(x) (Pearlmutter), written once for
// the CPU loops and the CUDA kernels.
//   forward tangent:  Ry  = f'(x) Rx
//   backward tangent: Rdx = f'(x) Rdy + f''(x) dy Rx     (dx = f'(x) dy differentiated)
// Per-sample output Hessians (the Kronecker path) transform as
//   M_x = diag(f'(x)) M_y diag(f'(x)) + diag(dy f''(x)).
// The loops over K directions compute d1 = f'(x) and d2_dy = f''(x) dy once per element
// and apply them to every direction: the (d1, ...) overloads.
#pragma once
#include "core/hd.h"
#include "kernels/activation.h"

namespace cn {

// f''(x) dy: the second-order factor of the backward tangent, and the diagonal the
// Kronecker path adds.
template <class T>
CN_HD T act_d2_dy(const ActParams& a, T x, T y, T dy) {
  return act_d2(a, x, y) * dy;
}

template <class T>
CN_HD T act_r_forward(T d1, T rx) {
  return d1 * rx;
}
template <class T>
CN_HD T act_r_forward(const ActParams& a, T x, T y, T rx) {
  return act_r_forward(act_d1(a, x, y), rx);
}

// Without the f'' term (no upstream tangent, Gauss-Newton mode, or f'' = 0) the backward
// tangent is f'(x) Rdy, the forward map applied to Rdy (the Jacobian is diagonal):
// act_r_forward(d1, rdy), exactly, not plus a zero.
template <class T>
CN_HD T act_r_backward(T d1, T d2_dy, T rdy, T rx) {
  return d1 * rdy + d2_dy * rx;
}
template <class T>
CN_HD T act_r_backward(const ActParams& a, T x, T y, T dy, T rx, T rdy) {
  return act_r_backward(act_d1(a, x, y), act_d2_dy(a, x, y, dy), rdy, rx);
}

}  // namespace cn
