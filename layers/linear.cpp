#include "layers/layers.h"

namespace cn {

template <class T>
void Linear<T>::forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) {
  const int64_t I = this->in_, O = this->out_;
  x_ = x;
  CN_DISPATCH(c.device, gemm_bias<T>, false, true, N, O, I, x, I, W_, I, b_, y, O);  // y = x Wᵀ + b
}

template <class T>
void Linear<T>::backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) {
  const int64_t I = this->in_, O = this->out_;
  dy_ = dy;
  const bool params = mode == GradientMode::params;
  // The two products are independent: the parameter gradients on the side lane, dx (what
  // the layer below waits for) on the main one.
  LanePair lanes(c.device, params && dx && dy);
  if (params) CN_DISPATCH(c.device, gemm_bias_grad<T>, O, I, N, dy, O, x_, I, dW_, I, db_);  // dW = dyᵀ x, db = Σ_n dy
  lanes.main();
  if (dx) {
    if (dy)
      CN_DISPATCH(c.device, gemm<T>, false, false, N, I, O, T(1), dy, O, W_, I, T(0), dx, I);  // dx = dy W
    else
      device_zero(c.device, dx, static_cast<size_t>(N * I) * sizeof(T));
  }
  lanes.join();
}

template class Linear<float>;
template class Linear<double>;

}  // namespace cn
