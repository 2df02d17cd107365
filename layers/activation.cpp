#include "layers/layers.h"

namespace cn {

template <class T>
void Activation<T>::forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) {
  x_ = x;
  y_ = y;
  CN_DISPATCH(c.device, act_forward<T>, act_, x, y, N * this->out_);
}

template <class T>
void Activation<T>::backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) {
  dy_ = dy;
  if (!dx) return;
  if (dy)
    CN_DISPATCH(c.device, act_backward<T>, act_, x_, y_, dy, dx, N * this->out_);
  else
    device_zero(c.device, dx, static_cast<size_t>(N * this->out_) * sizeof(T));
}

template class Activation<float>;
template class Activation<double>;

}  // namespace cn
