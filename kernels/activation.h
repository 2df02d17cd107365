// Elementwise activations: f, f' and f'' written once for the CPU loops and CUDA kernels.
// f' and f'' take both x (the input) and y = f(x), whichever is cheaper to use.
// Conventions at kinks follow PyTorch: relu'(0) = 0, leaky_relu'(0) = slope, elu'(0) = alpha.
#pragma once
#include <cmath>

#include "config/enum_table.h"
#include "core/hd.h"

namespace cn {

enum class Act { identity, relu, leaky_relu, elu, sigmoid, tanh, gelu, softplus };

// Every activation by name: layer kinds map to it by name, and the CPU loops instantiate
// one vectorised loop per entry.
using ActName = EnumName<Act>;
inline constexpr ActName kActNames[] = {
    {Act::identity, "identity"}, {Act::relu, "relu"},         {Act::leaky_relu, "leaky_relu"},
    {Act::elu, "elu"},           {Act::sigmoid, "sigmoid"},   {Act::tanh, "tanh"},
    {Act::gelu, "gelu"},         {Act::softplus, "softplus"},
};

struct ActParams {
  Act kind = Act::identity;
  double slope = 0.01;  // leaky_relu
  double alpha = 1.0;   // elu
};

template <class T>
CN_HD T sigmoid_of(T x) {
  // Stable for large |x|: exp of a non-positive argument only.
  if (x >= T(0)) return T(1) / (T(1) + std::exp(-x));
  const T e = std::exp(x);
  return e / (T(1) + e);
}

template <class T>
CN_HD T act_f(const ActParams& a, T x) {
  switch (a.kind) {
    case Act::identity:
      return x;
    case Act::relu:
      return x <= T(0) ? T(0) : x;  // NaN stays NaN, as in PyTorch: a non-finite weight is traced, not hidden
    case Act::leaky_relu:
      return x > T(0) ? x : T(a.slope) * x;
    case Act::elu:
      return x > T(0) ? x : T(a.alpha) * std::expm1(x);
    case Act::sigmoid:
      return sigmoid_of(x);
    case Act::tanh:
      return std::tanh(x);
    case Act::gelu:
      return T(0.5) * x * (T(1) + std::erf(x * T(0.70710678118654752440)));  // x * Phi(x)
    case Act::softplus:
      return (x > T(0) ? x : T(0)) + std::log1p(std::exp(-std::fabs(x)));
  }
  return x;
}

// f'(x), given x and y = f(x).
template <class T>
CN_HD T act_d1(const ActParams& a, T x, T y) {
  switch (a.kind) {
    case Act::identity:
      return T(1);
    case Act::relu:
      return x > T(0) ? T(1) : T(0);
    case Act::leaky_relu:
      return x > T(0) ? T(1) : T(a.slope);
    case Act::elu:
      return x > T(0) ? T(1) : y + T(a.alpha);
    case Act::sigmoid:
      return y * (T(1) - y);
    case Act::tanh:
      return T(1) - y * y;
    case Act::gelu: {
      const T pdf = T(0.39894228040143267794) * std::exp(T(-0.5) * x * x);
      return T(0.5) * (T(1) + std::erf(x * T(0.70710678118654752440))) + x * pdf;
    }
    case Act::softplus:
      return sigmoid_of(x);
  }
  return T(1);
}

// f''(x), given x and y = f(x). Piecewise-linear activations have f'' = 0 everywhere
// (their kink is a measure-zero set; the local Hessian of such a layer is the zero matrix).
template <class T>
CN_HD T act_d2(const ActParams& a, T x, T y) {
  switch (a.kind) {
    case Act::identity:
    case Act::relu:
    case Act::leaky_relu:
      return T(0);
    case Act::elu:
      return x > T(0) ? T(0) : y + T(a.alpha);
    case Act::sigmoid:
      return y * (T(1) - y) * (T(1) - T(2) * y);
    case Act::tanh:
      return T(-2) * y * (T(1) - y * y);
    case Act::gelu:
      return T(0.39894228040143267794) * std::exp(T(-0.5) * x * x) * (T(2) - x * x);
    case Act::softplus: {
      const T s = sigmoid_of(x);
      return s * (T(1) - s);
    }
  }
  return T(0);
}

// True when f'' == 0 everywhere: the layer's local Hessian is exactly the zero matrix.
CN_HD bool act_is_piecewise_linear(Act k) { return k == Act::identity || k == Act::relu || k == Act::leaky_relu; }

}  // namespace cn
