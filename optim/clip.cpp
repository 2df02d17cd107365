// Gradient clipping (global norm, per-layer norm, value, AGC per layer and per output unit)
// and gradient noise over the flat buffer. Norms accumulate in double over fixed blocks, so
// they do not depend on the number of threads; nothing here allocates.
#include <cmath>
#include <string>

#include "core/error.h"
#include "core/philox.h"
#include "kernels/optim.h"
#include "optim/optimizer.h"

namespace cn {

namespace {

constexpr int64_t kBlock = 1 << 13;  // elements per partial sum
constexpr int64_t kMaxBlocks = 256;  // partial sums kept on the stack
constexpr int64_t kParallelMin = 1 << 14;

// Sum of f(i) for i in [0, n): blocks fixed by n alone, each summed in order, then the
// partials in order, so the result is the same for any thread count.
template <class F>
double blocked_sum(int64_t n, F f) {
  if (n <= 0) return 0.0;
  int64_t nb = (n + kBlock - 1) / kBlock;
  if (nb > kMaxBlocks) nb = kMaxBlocks;
  if (nb == 1) {
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = 0; i < n; ++i) s += f(i);
    return s;
  }
  const int64_t chunk = (n + nb - 1) / nb;
  double part[kMaxBlocks];
#pragma omp parallel for schedule(static)
  for (int64_t b = 0; b < nb; ++b) {
    const int64_t lo = b * chunk;
    const int64_t hi = lo + chunk < n ? lo + chunk : n;
    double s = 0.0;
#pragma omp simd reduction(+ : s)
    for (int64_t i = lo; i < hi; ++i) s += f(i);
    part[b] = s;
  }
  double s = 0.0;
  for (int64_t b = 0; b < nb; ++b) s += part[b];
  return s;
}

template <class T>
double sum_sq(const T* x, int64_t n) {
  return blocked_sum(n, [x](int64_t i) {
    const double v = static_cast<double>(x[i]);
    return v * v;
  });
}

template <class T>
void scale(T* x, int64_t n, double coef) {
  const T c = static_cast<T>(coef);
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
  for (int64_t i = 0; i < n; ++i) x[i] *= c;
}

// Whether segment j is the first of its layer in the layout (so each layer is visited once
// without a scratch list).
bool first_of_layer(const ParamLayout& layout, size_t j) {
  for (size_t k = 0; k < j; ++k)
    if (layout.segments[k].layer == layout.segments[j].layer) return false;
  return true;
}

template <class T>
double layer_sum_sq(const ParamLayout& layout, int64_t layer, const T* x) {
  double s = 0.0;
  for (const ParamSegment& seg : layout.segments)
    if (seg.layer == layer) s += sum_sq(x + seg.offset, seg.size());
  return s;
}

template <class T>
void scale_layer(const ParamLayout& layout, int64_t layer, T* x, double coef) {
  for (const ParamSegment& seg : layout.segments)
    if (seg.layer == layer) scale(x + seg.offset, seg.size(), coef);
}

}  // namespace

template <class T>
ClipResult clip_gradients(const ClipConfig& config, const ParamLayout& layout, const T* params, T* grads) {
  const ClipMode mode = config.mode;
  const int64_t n = layout.total;
  ClipResult r;
  r.norm_before = std::sqrt(sum_sq(grads, n));
  r.norm_after = r.norm_before;

  if (mode == ClipMode::none) return r;
  if (mode == ClipMode::norm) {
    const double coef = clip_norm_coef(config.max_norm, r.norm_before);
    if (coef < 1.0) {  // false for a non-finite norm: the gradient is left for the non-finite check
      scale(grads, n, coef);
      r.clipped = true;
    }
  } else if (mode == ClipMode::layer_norm) {
    for (size_t j = 0; j < layout.segments.size(); ++j) {
      if (!first_of_layer(layout, j)) continue;
      const int64_t layer = layout.segments[j].layer;
      const double coef = clip_norm_coef(config.max_norm, std::sqrt(layer_sum_sq(layout, layer, grads)));
      if (coef < 1.0) {
        scale_layer(layout, layer, grads, coef);
        r.clipped = true;
      }
    }
  } else if (mode == ClipMode::value) {
    const T v = static_cast<T>(config.value);
    const double over = blocked_sum(n, [grads, v](int64_t i) { return (grads[i] > v || grads[i] < -v) ? 1.0 : 0.0; });
    if (over > 0) {
#pragma omp parallel for simd schedule(static) if (n >= kParallelMin)
      for (int64_t i = 0; i < n; ++i) grads[i] = clamp_abs(grads[i], v);
      r.clipped = true;
    }
  } else if (mode == ClipMode::agc) {
    for (size_t j = 0; j < layout.segments.size(); ++j) {
      if (!first_of_layer(layout, j)) continue;
      const int64_t layer = layout.segments[j].layer;
      const double gn = std::sqrt(layer_sum_sq(layout, layer, grads));
      const double pn = std::sqrt(layer_sum_sq(layout, layer, params));
      const double coef = agc_coef(config.agc_lambda, config.agc_eps, gn, pn);
      if (coef < 1.0) {
        scale_layer(layout, layer, grads, coef);
        r.clipped = true;
      }
    }
  } else if (mode == ClipMode::agc_unit) {
    // Units are the rows of each segment: output unit i of a weight matrix (row i), and
    // each element of a vector (bias, BatchNorm scale/shift).
    bool any = false;
    for (const ParamSegment& seg : layout.segments) {
      const int64_t rows = seg.rows, cols = seg.cols;
      T* g = grads + seg.offset;
      const T* p = params + seg.offset;
      const double lambda = config.agc_lambda, nu = config.agc_eps;
#pragma omp parallel for schedule(static) reduction(|| : any) if (seg.size() >= kParallelMin)
      for (int64_t row = 0; row < rows; ++row) {
        T* gr = g + row * cols;
        const T* pr = p + row * cols;
        double gs = 0.0, ps = 0.0;
        for (int64_t c = 0; c < cols; ++c) {
          const double gv = static_cast<double>(gr[c]), pv = static_cast<double>(pr[c]);
          gs += gv * gv;
          ps += pv * pv;
        }
        const double coef = agc_coef(lambda, nu, std::sqrt(gs), std::sqrt(ps));
        if (coef < 1.0) {
          const T cf = static_cast<T>(coef);
          for (int64_t c = 0; c < cols; ++c) gr[c] *= cf;
          any = true;
        }
      }
    }
    r.clipped = any;
  }
  if (r.clipped) r.norm_after = std::sqrt(sum_sq(grads, n));
  return r;
}

template <class T>
void add_gradient_noise(const OptimConfig& config, uint64_t seed, int64_t step, T* grads, int64_t n) {
  if (config.grad_noise_eta == 0.0) return;
  const double sigma = grad_noise_sigma(config.grad_noise_eta, config.grad_noise_gamma, step);
  const PhiloxKey key = philox_key(seed, RngStream::grad_noise);
#pragma omp parallel for schedule(static) if (n >= kParallelMin / 16)
  for (int64_t i = 0; i < n; ++i) grads[i] += static_cast<T>(grad_noise_value(key, i, step, sigma));
}

template ClipResult clip_gradients<float>(const ClipConfig&, const ParamLayout&, const float*, float*);
template ClipResult clip_gradients<double>(const ClipConfig&, const ParamLayout&, const double*, double*);
template void add_gradient_noise<float>(const OptimConfig&, uint64_t, int64_t, float*, int64_t);
template void add_gradient_noise<double>(const OptimConfig&, uint64_t, int64_t, double*, int64_t);

}  // namespace cn
