#include "diagnostics/hvp.h"

#include <algorithm>

#include "kernels/rops.h"

namespace cn {

template <class T>
HvpEngine<T>::HvpEngine(Sequential<T>& net, Loss<T>& loss) : net_(net), loss_(loss) {
  R_.resize(net.size());
  dy_.resize(net.size());
  for (size_t i = 0; i < net.size(); ++i) max_width_ = std::max(max_width_, net.layer(i).out_features());
}

template <class T>
void HvpEngine<T>::reserve(int64_t max_n, int64_t max_k) {
  if (max_n <= max_n_ && max_k <= max_k_) return;
  max_n_ = std::max(max_n_, max_n);
  max_k_ = std::max(max_k_, max_k);
  const Device d = net_.device();
  net_.reserve(max_n_, max_k_);
  loss_.reserve(d, max_n_, net_.n_outputs());
  for (size_t i = 0; i < net_.size(); ++i) {
    const int64_t w = net_.layer(i).out_features();
    R_[i].set_device(d);
    R_[i].resize(max_k_ * max_n_ * w);
    dy_[i].set_device(d);
    dy_[i].resize(i + 1 < net_.size() ? max_n_ * w : 0);
  }
  for (auto* b : {&ping_, &pong_}) {
    b->set_device(d);
    b->resize(max_k_ * max_n_ * max_width_);
  }
}

template <class T>
double HvpEngine<T>::forward_loss(const PassCtx& c, const T* x, const T* target, int64_t N) {
  reserve(N, std::max<int64_t>(max_k_, 1));
  const T* z = nullptr;
  {
    const RunningStatsFreeze<T> frozen(net_);  // curvature passes leave running statistics alone
    z = net_.forward(c, x, N);
  }
  return loss_.forward_backward(c, z, target, N, net_.n_outputs());
}

template <class T>
double HvpEngine<T>::gradient(const PassCtx& c, const T* x, const T* target, int64_t N, T* grad) {
  const double value = forward_loss(c, x, target, N);
  net_.backward(c, loss_.dz(), N);
  if (grad) device_copy(c.device, grad, net_.device(), net_.grads().data(), static_cast<size_t>(total()) * sizeof(T));
  prepared_ = false;  // the layers' dy caches now point at the model's own buffers
  ++generation_;
  return value;
}

template <class T>
double HvpEngine<T>::prepare(const PassCtx& c, const T* x, const T* target, int64_t N, CurvatureMode mode) {
  const double value = forward_loss(c, x, target, N);
  ctx_ = c;
  N_ = N;
  mode_ = mode;
  const size_t L = net_.size();
  // Backward without parameter gradients, caching dy at every layer; in Gauss-Newton mode
  // the cached dy are zero (null), which drops every second-order term of the layers.
  for (size_t i = L; i-- > 0;) {
    const T* dy = mode == CurvatureMode::ggn ? nullptr : i + 1 == L ? loss_.dz() : dy_[i].data();
    T* dx = (mode == CurvatureMode::ggn || i == 0) ? nullptr : dy_[i - 1].data();
    net_.layer(i).backward(c, dy, dx, N, GradientMode::input_only);
  }
  prepared_ = true;
  ++generation_;
  return value;
}

template <class T>
const T* HvpEngine<T>::output_grad(size_t i) const {
  return i + 1 == net_.size() ? loss_.dz() : dy_[i].data();
}

template <class T>
void HvpEngine<T>::apply_range(size_t lo, size_t hi, const T* V, int64_t v_stride, T* HV, int64_t hv_stride,
                               int64_t K) {
  CN_CHECK_MSG(prepared_, "HvpEngine: prepare() before apply()");
  CN_CHECK(lo < hi && hi <= net_.size() && K > 0);
  reserve(N_, K);
  const PassCtx& c = ctx_;
  const size_t L = net_.size();
  const int64_t N = N_, C = net_.n_outputs();
  const int64_t base = net_.layer_offset(lo);
  // R-forward from layer lo: upstream tangents are zero.
  const T* Rin = nullptr;
  for (size_t i = lo; i < L; ++i) {
    Layer<T>& l = net_.layer(i);
    const T* Vi = (i < hi && l.num_params() > 0 && V) ? V + (net_.layer_offset(i) - base) : nullptr;
    l.rforward(c, Rin, Vi, v_stride, R_[i].data(), K, N);
    Rin = R_[i].data();
  }
  // The loss: Rdz = ∇²_z L · Rz.
  T* Rdy = ping_.data();
  T* Rdx = pong_.data();
  CN_DISPATCH(c.device, loss_rbackward<T>, loss_.kind(), loss_.probabilities(), R_[L - 1].data(), Rdy, N, C, K);
  // R-backward down to layer lo.
  for (size_t i = L; i-- > lo;) {
    Layer<T>& l = net_.layer(i);
    T* HVi = (i < hi && l.num_params() > 0) ? HV + (net_.layer_offset(i) - base) : nullptr;
    l.rbackward(c, Rdy, i > lo ? Rdx : nullptr, HVi, hv_stride, K, N);
    std::swap(Rdy, Rdx);
  }
}

template <class T>
void HvpEngine<T>::apply(const T* V, T* HV, int64_t K) {
  apply_range(0, net_.size(), V, total(), HV, total(), K);
}

template <class T>
void HvpEngine<T>::apply_layer(size_t layer, const T* V, T* HV, int64_t K) {
  const int64_t p = net_.layer(layer).num_params();
  CN_CHECK_MSG(p > 0, "layer " << layer << " has no parameters");
  apply_range(layer, layer + 1, V, p, HV, p, K);
}

template <class T>
double HvpEngine<T>::hvp(const PassCtx& c, const T* x, const T* target, int64_t N, const T* V, T* HV, int64_t K) {
  reserve(N, K);
  const double value = prepare(c, x, target, N, CurvatureMode::hessian);
  apply(V, HV, K);
  return value;
}

template class HvpEngine<float>;
template class HvpEngine<double>;

}  // namespace cn
