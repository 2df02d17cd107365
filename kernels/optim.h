// Per-element math of the optimisers, clipping and gradient noise, written once for the
// CPU loops (optim/*.cpp) and the CUDA kernels. Update rules follow torch.optim step for
// step (docs/optimisers.md gives every formula); the order of the floating-point
// operations mirrors torch's single-tensor code so float64 results agree to rounding.
#pragma once
#include <cmath>
#include <cstdint>

#include "config/kinds.h"
#include "core/hd.h"
#include "core/philox.h"

namespace cn {

// How many state buffers (each as long as the parameter buffer) a kind keeps.
CN_HD int optim_state_count(OptimKind k) {
  switch (k) {
    case OptimKind::sgd:
      return 0;
    case OptimKind::momentum:
    case OptimKind::nesterov:
    case OptimKind::adagrad:
    case OptimKind::rmsprop:
      return 1;
    case OptimKind::adam:
    case OptimKind::adamw:
    case OptimKind::nadam:
      return 2;
    case OptimKind::amsgrad:
      return 3;
  }
  return 0;
}

// The scalars of one update of one parameter segment, computed on the host once per step
// and segment (lr already includes the segment's lr_scale and the schedule).
template <class T>
struct OptimScalars {
  T lr = 0;            // the segment's learning rate
  T weight_decay = 0;  // coupled L2 (adamw: the decoupled factor below instead)
  T l1 = 0;            // g += l1 * sign(p)
  T momentum = 0;      // momentum, nesterov
  T alpha = 0;         // rmsprop smoothing
  T eps = 0;
  T beta1 = 0, beta2 = 0;
  T one_minus_alpha = 0, one_minus_beta1 = 0, one_minus_beta2 = 0;
  T step_size = 0;     // adam family: lr / (1 - beta1^t)
  T bc2_sqrt = 0;      // adam family: sqrt(1 - beta2^t)
  T bc2 = 0;           // nadam: 1 - beta2^t
  T nadam_c_grad = 0;  // nadam: -lr (1 - mu_t) / (1 - prod_{i<=t} mu_i)
  T nadam_c_avg = 0;   // nadam: -lr mu_{t+1} / (1 - prod_{i<=t+1} mu_i)
  T decay = 1;         // adamw: 1 - lr * weight_decay
  bool first = false;  // the first update (step 0): momentum buffers start at g
};

template <class T>
CN_HD T sign_of(T x) {
  return x > T(0) ? T(1) : (x < T(0) ? T(-1) : T(0));
}

// The gradient with the penalties added: (g + l1 sign(p)) + wd p. torch.optim adds wd p to
// the gradient it is given; the L1 term is part of that given gradient.
template <class T>
CN_HD T penalised_grad(T g, T p, T weight_decay, T l1) {
  return (g + l1 * sign_of(p)) + weight_decay * p;
}

// The Adam family's preconditioner, the denominator of the update in NAdam's order of
// operations: sqrt(v / (1 - beta2^t)) + eps (bc2 = 1 - beta2^t). Adam and AMSGrad divide
// sqrt(v) by sqrt(bc2) instead, as torch does; the two agree to rounding.
template <class T>
CN_HD T adam_preconditioner(T v, T bc2, T eps) {
  return std::sqrt(v / bc2) + eps;
}

// One element of one update. s0, s1, s2 are the kind's state buffers (unused ones may be
// null); i indexes the parameter, its gradient and its states alike.
template <OptimKind K, class T>
CN_HD void optim_element(const OptimScalars<T>& s, T* p, const T* grad, T* s0, T* s1, T* s2, int64_t i) {
  T param = p[i];
  if constexpr (K == OptimKind::adamw) {
    param = param * s.decay;  // decoupled decay before the gradient step (torch.optim.AdamW)
    const T g = grad[i] + s.l1 * sign_of(p[i]);
    T m = s0[i], v = s1[i];
    m = m * s.beta1 + s.one_minus_beta1 * g;
    v = v * s.beta2 + s.one_minus_beta2 * g * g;
    s0[i] = m;
    s1[i] = v;
    const T denom = std::sqrt(v) / s.bc2_sqrt + s.eps;
    p[i] = param + (-s.step_size) * (m / denom);
    return;
  } else {
    const T g = penalised_grad(grad[i], param, s.weight_decay, s.l1);
    if constexpr (K == OptimKind::sgd) {
      p[i] = param + (-s.lr) * g;
    } else if constexpr (K == OptimKind::momentum || K == OptimKind::nesterov) {
      const T buf = s.first ? g : s0[i] * s.momentum + g;
      s0[i] = buf;
      const T d = (K == OptimKind::nesterov) ? g + s.momentum * buf : buf;
      p[i] = param + (-s.lr) * d;
    } else if constexpr (K == OptimKind::adagrad) {
      const T sum = s0[i] + g * g;
      s0[i] = sum;
      const T std_ = std::sqrt(sum) + s.eps;
      p[i] = param + (-s.lr) * (g / std_);
    } else if constexpr (K == OptimKind::rmsprop) {
      const T sq = s0[i] * s.alpha + s.one_minus_alpha * g * g;
      s0[i] = sq;
      const T avg = std::sqrt(sq) + s.eps;
      p[i] = param + (-s.lr) * (g / avg);
    } else if constexpr (K == OptimKind::adam || K == OptimKind::amsgrad) {
      T m = s0[i], v = s1[i];
      m = m * s.beta1 + s.one_minus_beta1 * g;
      v = v * s.beta2 + s.one_minus_beta2 * g * g;
      s0[i] = m;
      s1[i] = v;
      T vhat = v;
      if constexpr (K == OptimKind::amsgrad) {
        vhat = s2[i] > v ? s2[i] : v;  // torch.maximum(max_exp_avg_sq, exp_avg_sq)
        s2[i] = vhat;
      }
      const T denom = std::sqrt(vhat) / s.bc2_sqrt + s.eps;
      p[i] = param + (-s.step_size) * (m / denom);
    } else if constexpr (K == OptimKind::nadam) {
      T m = s0[i], v = s1[i];
      m = m * s.beta1 + s.one_minus_beta1 * g;
      v = v * s.beta2 + s.one_minus_beta2 * g * g;
      s0[i] = m;
      s1[i] = v;
      const T denom = adam_preconditioner(v, s.bc2, s.eps);
      param = param + s.nadam_c_grad * (g / denom);
      p[i] = param + s.nadam_c_avg * (m / denom);
    }
  }
}

// ---- clipping ------------------------------------------------------------------------

// torch.nn.utils.clip_grad_norm_: the factor min(1, max_norm / (norm + 1e-6)).
CN_HD double clip_norm_coef(double max_norm, double norm) {
  const double c = max_norm / (norm + 1e-6);
  return c < 1.0 ? c : 1.0;
}

// Adaptive gradient clipping: the factor for a unit with gradient norm gn and parameter
// norm pn: lambda max(pn, nu) / gn when gn / max(pn, nu) > lambda, else 1.
CN_HD double agc_coef(double lambda, double nu, double grad_norm, double param_norm) {
  const double floor_norm = param_norm > nu ? param_norm : nu;
  const double max_norm = lambda * floor_norm;
  return grad_norm > max_norm ? max_norm / grad_norm : 1.0;
}

template <class T>
CN_HD T clamp_abs(T x, T value) {
  return x > value ? value : (x < -value ? -value : x);
}

// ---- gradient noise --------------------------------------------------------------------

// sigma_t = sqrt(eta / (1 + t)^gamma), t = the number of updates already done.
CN_HD double grad_noise_sigma(double eta, double gamma, int64_t step) {
  return std::sqrt(eta / std::pow(1.0 + static_cast<double>(step), gamma));
}

// The noise added to element i of the flat gradient at `step`.
CN_HD double grad_noise_value(PhiloxKey key, int64_t i, int64_t step, double sigma) {
  return sigma * philox_normal(key, static_cast<uint64_t>(i), 0u, static_cast<uint64_t>(step));
}

// torch.optim's name of state buffer j (the kernel's s0, s1, s2) of a kind: the names the
// checkpoints use, whichever backend ran the update.
inline const char* optim_state_name(OptimKind k, int j) {
  switch (k) {
    case OptimKind::momentum:
    case OptimKind::nesterov:
      return "momentum_buffer";
    case OptimKind::adagrad:
      return "sum";
    case OptimKind::rmsprop:
      return "square_avg";
    case OptimKind::adam:
    case OptimKind::adamw:
    case OptimKind::nadam:
    case OptimKind::amsgrad:
      return j == 0 ? "exp_avg" : (j == 1 ? "exp_avg_sq" : "max_exp_avg_sq");
    case OptimKind::sgd:
      break;
  }
  return "";
}

// ---- the scalars of one update (host side, shared by the CPU and CUDA optimisers) -----

// NAdam's momentum schedule (torch momentum_decay = 4e-3): mu_t = beta1 (1 - 0.5 0.96^(t psi)).
inline double nadam_momentum(double beta1, double t) { return beta1 * (1.0 - 0.5 * std::pow(0.96, t * 4e-3)); }

// What one update shares across segments (torch's t = step + 1). NAdam keeps the running
// product of its mu_t as optimiser state (`mu_product`, stored in T like torch's tensor,
// reset to 1 at step 0); this advances it.
struct OptimStepValues {
  double bc1 = 1, bc2 = 1;                                    // 1 - beta^t
  double mu = 0, mu_next = 0, mu_prod = 0, mu_prod_next = 0;  // nadam
};
template <class T>
OptimStepValues optim_step_values(OptimKind kind, double beta1, double beta2, int64_t step, T* mu_product) {
  OptimStepValues v;
  const double t = static_cast<double>(step) + 1.0;
  v.bc1 = 1.0 - std::pow(beta1, t);
  v.bc2 = 1.0 - std::pow(beta2, t);
  if (kind == OptimKind::nadam) {
    if (step == 0) *mu_product = T(1);
    v.mu = nadam_momentum(beta1, t);
    v.mu_next = nadam_momentum(beta1, t + 1.0);
    *mu_product = static_cast<T>(static_cast<double>(*mu_product) * v.mu);
    v.mu_prod = static_cast<double>(*mu_product);  // as stored (float: rounded like torch's tensor)
    v.mu_prod_next = v.mu_prod * v.mu_next;        // prod_{i<=t+1} mu_i (torch >= 2.0; 1.13 multiplied mu_t twice)
  }
  return v;
}

// The scalars of one segment's update: seg_lr = lr x the segment's lr_scale; weight_decay
// and l1 are the segment's; the rest comes from [optim].
template <class T>
OptimScalars<T> optim_segment_scalars(OptimKind kind, const OptimStepValues& v, int64_t step, double seg_lr,
                                      double weight_decay, double l1, double momentum, double alpha, double eps,
                                      double beta1, double beta2) {
  OptimScalars<T> s;
  s.lr = static_cast<T>(seg_lr);
  s.weight_decay = static_cast<T>(weight_decay);
  s.l1 = static_cast<T>(l1);
  s.momentum = static_cast<T>(momentum);
  s.alpha = static_cast<T>(alpha);
  s.one_minus_alpha = static_cast<T>(1.0 - alpha);
  s.eps = static_cast<T>(eps);
  s.beta1 = static_cast<T>(beta1);
  s.beta2 = static_cast<T>(beta2);
  s.one_minus_beta1 = static_cast<T>(1.0 - beta1);
  s.one_minus_beta2 = static_cast<T>(1.0 - beta2);
  s.step_size = static_cast<T>(seg_lr / v.bc1);
  s.bc2_sqrt = static_cast<T>(std::sqrt(v.bc2));
  s.bc2 = static_cast<T>(v.bc2);
  if (kind == OptimKind::nadam) {
    s.nadam_c_grad = static_cast<T>(-seg_lr * (1.0 - v.mu) / (1.0 - v.mu_prod));
    s.nadam_c_avg = static_cast<T>(-seg_lr * v.mu_next / (1.0 - v.mu_prod_next));
  }
  s.decay = static_cast<T>(1.0 - seg_lr * weight_decay);
  s.first = (step == 0);
  return s;
}

}  // namespace cn
