#include "layers/layers.h"

namespace cn {

template <class T>
void Linear<T>::forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) {
  const int64_t I = this->in_, O = this->out_;
  x_ = x;
  CN_DISPATCH(c.device, gemm<T>, false, true, N, O, I, T(1), x, I, W_, I, T(0), y, O);  // y = x Wᵀ
  CN_DISPATCH(c.device, add_row_vector<T>, y, b_, N, O);
}

template <class T>
void Linear<T>::backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N) {
  const int64_t I = this->in_, O = this->out_;
  dy_ = dy;
  CN_DISPATCH(c.device, gemm<T>, true, false, O, I, N, T(1), dy, O, x_, I, T(0), dW_, I);  // dW = dyᵀ x
  CN_DISPATCH(c.device, column_sum<T>, dy, N, O, db_, false);                               // db = Σ_n dy
  if (dx) CN_DISPATCH(c.device, gemm<T>, false, false, N, I, O, T(1), dy, O, W_, I, T(0), dx, I);  // dx = dy W
}

template class Linear<float>;
template class Linear<double>;

}  // namespace cn
