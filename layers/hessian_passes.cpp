// Per-layer pieces of the curvature blocks (diagnostics/hessian_blocks.h): the backward of
// per-sample output Hessians on the Kronecker path (CPU backend, host memory) and the
// per-sample-gradient Fisher diagonal. Each layer states here how its own maths enters them.
#include <cmath>

#include "kernels/batchnorm.h"
#include "kernels/rops.h"
#include "layers/layers.h"

namespace cn {

namespace {
template <class T>
void to_host(T* host, Device d, const T* src, int64_t n) {
  device_copy(Device::cpu, host, d, src, static_cast<size_t>(n) * sizeof(T));
}
}  // namespace

// ---- Linear: M_x = Wᵀ M_y W; Fisher from the per-sample gradients N dy_n x̃_nᵀ -------------

template <class T>
void Linear<T>::output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) {
  const Device d = Device::cpu;
  const int64_t I = this->in_, O = this->out_;
  // scratch_n = M_n W (all n in one GEMM), then M_n = Wᵀ scratch_n.
  CN_DISPATCH(d, gemm<T>, false, false, N * O, I, O, T(1), M, O, W_, I, T(0), scratch, I);
  CN_DISPATCH(d, gemm_batched<T>, true, false, I, I, O, T(1), W_, I, 0, scratch, I, O * I, T(0), M, I, I * I, N);
}

template <class T>
std::vector<T> Linear<T>::fisher_diag(const PassCtx& c, const T* x, const T* dy, int64_t N) {
  const Device d = c.device;
  const int64_t I = this->in_, O = this->out_, p = O * I + O;
  std::vector<T> out(static_cast<size_t>(p));
  // F_W = N (dy²)ᵀ (x²), F_b = N Σ_n dy²  (per-sample gradients N dy_n x̃_nᵀ).
  Buffer<T> dy2(N * O, d), x2(N * I, d), F(p, d);
  CN_DISPATCH(d, scaled_square<T>, dy, dy2.data(), N * O, T(1));
  CN_DISPATCH(d, scaled_square<T>, x, x2.data(), N * I, T(1));
  CN_DISPATCH(d, gemm<T>, true, false, O, I, N, T(N), dy2.data(), O, x2.data(), I, T(0), F.data(), I);
  CN_DISPATCH(d, column_sum<T>, dy2.data(), N, O, F.data() + O * I, false);
  to_host(out.data(), d, F.data(), p);
  for (int64_t o = 0; o < O; ++o) out[O * I + o] *= T(N);
  return out;
}

// ---- Activation: M_x = diag(f'(x)) M_y diag(f'(x)) + diag(dy f''(x)) ----------------------

template <class T>
void Activation<T>::output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) {
  CN_DISPATCH(Device::cpu, act_hess_backward<T>, act_, x_, y_, dy, M, N, this->out_);
}

// ---- BatchNorm (evaluation mode): y = γ (x - μ_run) / sqrt(σ²_run + ε) + β ------------------

template <class T>
void BatchNorm<T>::output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) {
  const int64_t F = this->out_;
  const T* running_var = running_var_.data();
  std::vector<T> scale(static_cast<size_t>(F));
  for (int64_t o = 0; o < F; ++o) scale[o] = gamma_[o] / bn_std(running_var[o], eps_);
  CN_DISPATCH(Device::cpu, hess_diag_sandwich<T>, scale.data(), 0, M, N, F);
}

// g_n(γ) = N dy_n x̂_n, g_n(β) = N dy_n; x̂ recomputed from the layer's input (batch
// statistics in training mode, running ones in evaluation mode).
template <class T>
std::vector<T> BatchNorm<T>::fisher_diag(const PassCtx& c, const T* xin, const T* dyin, int64_t N) {
  const Device d = c.device;
  const int64_t O = this->out_;
  std::vector<T> out(static_cast<size_t>(2 * O));
  std::vector<T> x(static_cast<size_t>(N * O)), dy(static_cast<size_t>(N * O));
  to_host(x.data(), d, xin, N * O);
  to_host(dy.data(), d, dyin, N * O);
  const auto st = state();
  std::vector<T> rm(static_cast<size_t>(O)), rv(static_cast<size_t>(O));
  to_host(rm.data(), st[0].device, st[0].data, O);
  to_host(rv.data(), st[1].device, st[1].data, O);
  for (int64_t o = 0; o < O; ++o) {
    double mu = rm[o], var = rv[o];
    if (c.training) {
      mu = 0;
      for (int64_t n = 0; n < N; ++n) mu += x[n * O + o];
      mu /= N;
      var = 0;
      for (int64_t n = 0; n < N; ++n) var += bn_sq_dev<double>(x[n * O + o], mu);
      var /= N;
    }
    const double s = bn_inv_std<double>(var, eps_);
    double fg = 0, fb = 0;
    for (int64_t n = 0; n < N; ++n) {
      const double g = dy[n * O + o], h = bn_xhat<double>(x[n * O + o], mu, s);
      fg += g * g * h * h;
      fb += g * g;
    }
    out[o] = static_cast<T>(N * fg);
    out[O + o] = static_cast<T>(N * fb);
  }
  return out;
}

// ---- Dropout: the stored mask on both sides -------------------------------------------------

template <class T>
void Dropout<T>::output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) {
  const int64_t F = this->out_;
  if (active_) CN_DISPATCH(Device::cpu, hess_diag_sandwich<T>, mask_.data(), F, M, N, F);
}

#define CN_HESSIAN_PASSES_INSTANTIATE(T)                                                          \
  template void Linear<T>::output_hessian_backward(const T*, T*, T*, int64_t);                    \
  template std::vector<T> Linear<T>::fisher_diag(const PassCtx&, const T*, const T*, int64_t);    \
  template void Activation<T>::output_hessian_backward(const T*, T*, T*, int64_t);                \
  template void BatchNorm<T>::output_hessian_backward(const T*, T*, T*, int64_t);                 \
  template std::vector<T> BatchNorm<T>::fisher_diag(const PassCtx&, const T*, const T*, int64_t); \
  template void Dropout<T>::output_hessian_backward(const T*, T*, T*, int64_t);
CN_HESSIAN_PASSES_INSTANTIATE(float)
CN_HESSIAN_PASSES_INSTANTIATE(double)

}  // namespace cn
