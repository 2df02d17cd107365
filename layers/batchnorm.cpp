#include "layers/layers.h"

namespace cn {

template <class T>
std::vector<StateView<T>> BatchNorm<T>::state() {
  return {{"running_mean", running_mean_.data(), running_mean_.size(), running_mean_.device()},
          {"running_var", running_var_.data(), running_var_.size(), running_var_.device()},
          {"num_batches_tracked", num_batches_.data(), num_batches_.size(), Device::cpu}};
}

template <class T>
void BatchNorm<T>::reset_state() {
  const int64_t O = this->out_;
  std::vector<T> ones(O, T(1));
  running_mean_.resize(O);
  running_mean_.zero();
  running_var_.resize(O);
  device_copy(running_var_.device(), running_var_.data(), Device::cpu, ones.data(), O * sizeof(T));
  num_batches_.resize(1);
  num_batches_.zero();
}

template <class T>
void BatchNorm<T>::reserve(Device d, int64_t max_n, int64_t max_k) {
  const int64_t O = this->out_;
  if (running_mean_.device() != d || running_mean_.empty()) {
    // Move the running statistics across devices, keeping their values.
    std::vector<T> rm(O, T(0)), rv(O, T(1));
    if (!running_mean_.empty()) {
      device_copy(Device::cpu, rm.data(), running_mean_.device(), running_mean_.data(), O * sizeof(T));
      device_copy(Device::cpu, rv.data(), running_var_.device(), running_var_.data(), O * sizeof(T));
    }
    for (auto* b : {&running_mean_, &running_var_}) b->set_device(d);
    running_mean_.resize(O);
    running_var_.resize(O);
    device_copy(d, running_mean_.data(), Device::cpu, rm.data(), O * sizeof(T));
    device_copy(d, running_var_.data(), Device::cpu, rv.data(), O * sizeof(T));
    if (num_batches_.empty()) {
      num_batches_.resize(1);
      num_batches_.zero();
    }
  }
  for (auto* b : {&xhat_, &mean_, &inv_std_, &Rxhat_}) b->set_device(d);
  xhat_.resize(max_n * O);
  mean_.resize(O);
  inv_std_.resize(O);
  Rxhat_.resize(max_k * max_n * O);
}

template <class T>
void BatchNorm<T>::forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) {
  const int64_t O = this->out_;
  CN_CHECK_MSG(xhat_.capacity() >= N * O, "BatchNorm: reserve() was not called for batch " << N);
  training_ = c.training;
  if (c.training) {
    CN_CHECK_MSG(N > 1, "BatchNorm in training mode needs more than one sample per batch");
    CN_DISPATCH(c.device, bn_forward_train<T>, x, gamma_, beta_, N, O, eps_, y, xhat_.data(), mean_.data(),
                inv_std_.data());
    if (update_running_) {
      CN_DISPATCH(c.device, bn_update_running<T>, mean_.data(), inv_std_.data(), N, O, eps_, momentum_,
                  running_mean_.data(), running_var_.data());
      num_batches_[0] += T(1);  // a host-side counter: no device round trip
    }
  } else {
    CN_DISPATCH(c.device, bn_forward_eval<T>, x, gamma_, beta_, running_mean_.data(), running_var_.data(), N, O, eps_,
                y, xhat_.data(), inv_std_.data());
  }
}

template <class T>
void BatchNorm<T>::backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) {
  const int64_t O = this->out_;
  dy_ = dy;
  T *dg = dgamma_, *db = dbeta_;
  if (mode == GradientMode::input_only) {
    if (!dx) return;
    if (!dy) {
      device_zero(c.device, dx, static_cast<size_t>(N * O) * sizeof(T));
      return;
    }
    // The kernels write the parameter gradients along with dx: into scratch, not the model's.
    scratch_grads_.set_device(c.device);
    scratch_grads_.resize(2 * O);
    dg = scratch_grads_.data();
    db = dg + O;
  }
  if (training_) {
    CN_DISPATCH(c.device, bn_backward_train<T>, dy, xhat_.data(), gamma_, inv_std_.data(), N, O, dx, dg, db);
  } else {
    CN_DISPATCH(c.device, bn_backward_eval<T>, dy, xhat_.data(), gamma_, inv_std_.data(), N, O, dx, dg, db);
  }
}

template class BatchNorm<float>;
template class BatchNorm<double>;

}  // namespace cn
