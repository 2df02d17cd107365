#include "layers/layers.h"

namespace cn {

template <class T>
void Dropout<T>::forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) {
  const int64_t n = N * this->out_;
  active_ = c.training && p_ > 0;
  if (!active_) {
    device_copy(c.device, y, c.device, x, n * sizeof(T));
    return;
  }
  CN_CHECK_MSG(mask_.capacity() >= n, "Dropout: reserve() was not called for batch " << N);
  CN_DISPATCH(c.device, dropout_forward<T>, x, y, mask_.data(), n, p_, c.dropout_key,
              static_cast<uint32_t>(this->index_), c.step);
}

template <class T>
void Dropout<T>::backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) {
  if (!dx) return;
  const int64_t n = N * this->out_;
  if (!dy)
    device_zero(c.device, dx, static_cast<size_t>(n) * sizeof(T));
  else if (active_)
    CN_DISPATCH(c.device, multiply<T>, dy, mask_.data(), dx, n);
  else
    device_copy(c.device, dx, c.device, dy, n * sizeof(T));
}

template class Dropout<float>;
template class Dropout<double>;

}  // namespace cn
