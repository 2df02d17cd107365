// R-operator passes (DESIGN §3) of every layer.
#include "layers/layers.h"

namespace cn {

#define CN_R_UNAVAILABLE(L)                                                                                  \
  template <class T>                                                                                         \
  void L<T>::rforward_impl(const PassCtx&, const T*, const T*, int64_t, T*, int64_t, int64_t) {              \
    throw Error("rforward is not available yet for " + type());                                             \
  }                                                                                                          \
  template <class T>                                                                                         \
  void L<T>::rbackward_impl(const PassCtx&, const T*, T*, T*, int64_t, int64_t, int64_t) {                   \
    throw Error("rbackward is not available yet for " + type());                                            \
  }                                                                                                          \
  template void L<float>::rforward_impl(const PassCtx&, const float*, const float*, int64_t, float*, int64_t, \
                                        int64_t);                                                            \
  template void L<double>::rforward_impl(const PassCtx&, const double*, const double*, int64_t, double*,      \
                                         int64_t, int64_t);                                                  \
  template void L<float>::rbackward_impl(const PassCtx&, const float*, float*, float*, int64_t, int64_t,      \
                                         int64_t);                                                           \
  template void L<double>::rbackward_impl(const PassCtx&, const double*, double*, double*, int64_t, int64_t,  \
                                          int64_t);
CN_R_UNAVAILABLE(Linear)
CN_R_UNAVAILABLE(Activation)
CN_R_UNAVAILABLE(BatchNorm)
CN_R_UNAVAILABLE(Dropout)

}  // namespace cn
