// R-operator passes (docs/design.md §3) of every layer: Pearlmutter's directional derivatives of
// the forward and backward passes, for K directions at once (tangents K×N×width).
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <string>

#include "kernels/rops.h"
#include "layers/layers.h"

namespace cn {

namespace {
// x [VW_0; ...; VW_K-1]ᵀ runs as one GEMM when the stacked directions stay small;
// beyond this many elements the K GEMMs are large enough on their own.
constexpr int64_t kStackLimit = int64_t(1) << 22;

// CURVNET_R_CONCAT=0|1 (1 unless set): the initial value of rpass_pairs_as_one_gemm().
bool pairs_from_env() {
  const char* v = std::getenv("CURVNET_R_CONCAT");
  const std::string s = v ? v : "1";
  if (s == "1") return true;
  if (s == "0") return false;
  throw InputError("CURVNET_R_CONCAT: expected 0 or 1, got '" + s + "'");
}
std::atomic<int>& pairs_setting() {
  static std::atomic<int> on{pairs_from_env() ? 1 : 0};
  return on;
}
}  // namespace

void set_rpass_pairs_as_one_gemm(bool on) { pairs_setting().store(on ? 1 : 0); }
bool rpass_pairs_as_one_gemm() { return pairs_setting().load() != 0; }

// ---- Linear: y = x Wᵀ + b ---------------------------------------------------------------
// Ry  = Rx Wᵀ + x VWᵀ + Vb
// (Hv)W = Rdyᵀ x + dyᵀ Rx,  (Hv)b = Σ_n Rdy,  Rdx = Rdy W + dy VW
// For one direction, (Hv)W is one product over the stacked operands [Rdy; dy]ᵀ [x; Rx]
// (rpass_pairs_as_one_gemm), on the CPU as on the GPU, so the CPU's float64 checks cover it.

template <class T>
void Linear<T>::rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K,
                              int64_t N) {
  const int64_t I = this->in_, O = this->out_;
  Rx_ = Rx;
  V_ = V;
  v_stride_ = v_stride;
  const T* x = x_;
  if (K == 1 && V) {
    // x VWᵀ + Vb in one product (the bias in its epilogue), then Rx Wᵀ added to it.
    CN_DISPATCH(c.device, gemm_bias<T>, false, true, N, O, I, x, I, V, I, V + O * I, Ry, O);
    if (Rx) CN_DISPATCH(c.device, gemm<T>, false, true, N, O, I, T(1), Rx, I, W_, I, T(1), Ry, O);
    return;
  }
  if (Rx)  // all K directions in one GEMM: (K·N × I)(I × O)
    CN_DISPATCH(c.device, gemm<T>, false, true, K * N, O, I, T(1), Rx, I, W_, I, T(0), Ry, O);
  if (!V) {
    if (!Rx) device_zero(c.device, Ry, static_cast<size_t>(K * N * O) * sizeof(T));
    return;
  }
  const T beta = Rx ? T(1) : T(0);
  if (K * O * I <= kStackLimit) {
    // Stack the K weight directions into one (K·O × I) matrix: x [VW_k]ᵀ is one GEMM.
    vw_stack_.set_device(c.device);
    xvw_.set_device(c.device);
    vw_stack_.resize(K * O * I);
    xvw_.resize(N * K * O);
    CN_DISPATCH(c.device, pack_strided<T>, V, v_stride, O * I, vw_stack_.data(), K);
    CN_DISPATCH(c.device, gemm<T>, false, true, N, K * O, I, T(1), x, I, vw_stack_.data(), I, T(0), xvw_.data(), K * O);
    CN_DISPATCH(c.device, linear_r_unstack<T>, xvw_.data(), V + O * I, v_stride, Ry, K, N, O, Rx != nullptr);
  } else {
    CN_DISPATCH(c.device, gemm_batched<T>, false, true, N, O, I, T(1), x, I, 0, V, I, v_stride, beta, Ry, O, N * O, K);
    CN_DISPATCH(c.device, add_row_vector_strided<T>, Ry, V + O * I, v_stride, K, N, O);
  }
}

template <class T>
bool Linear<T>::pair_as_one_gemm(Device d, int64_t K) const {
  if (K != 1 || !Rx_ || !dy_ || !rpass_pairs_as_one_gemm()) return false;
  // On the CPU the copies are a small part of the product at every width. On the GPU a
  // narrow layer's products are bound by launches, not arithmetic: the four copies would
  // cost more than the one product saves.
  return d == Device::cpu || std::min(this->in_, this->out_) >= kPairMinWidthGpu;
}

template <class T>
void Linear<T>::rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) {
  const int64_t I = this->in_, O = this->out_;
  // (Hv)θ and Rdx are independent: (Hv)θ on the side lane, Rdx (what the layer below
  // waits for) on the main one.
  LanePair lanes(c.device, HV && Rdx);
  if (HV) {
    // (Hv)W_k = Rdy_kᵀ x (+ dyᵀ Rx_k), (Hv)b_k = Σ_n Rdy_k
    if (pair_as_one_gemm(c.device, K)) {
      // One product of twice the inner dimension: [Rdy; dy]ᵀ [x; Rx] = Rdyᵀ x + dyᵀ Rx.
      const size_t no = static_cast<size_t>(N * O), ni = static_cast<size_t>(N * I);
      pair_dy_.set_device(c.device);
      pair_x_.set_device(c.device);
      pair_dy_.resize(2 * N * O);  // allocates only when the batch grows
      pair_x_.resize(2 * N * I);
      T* a = pair_dy_.data();
      T* b = pair_x_.data();
      device_copy(c.device, a, c.device, Rdy, no * sizeof(T));
      device_copy(c.device, a + no, c.device, dy_, no * sizeof(T));
      device_copy(c.device, b, c.device, x_, ni * sizeof(T));
      device_copy(c.device, b + ni, c.device, Rx_, ni * sizeof(T));
      CN_DISPATCH(c.device, gemm<T>, true, false, O, I, 2 * N, T(1), a, O, b, I, T(0), HV, I);
      CN_DISPATCH(c.device, column_sum_strided<T>, Rdy, K, N, O, HV + O * I, hv_stride);
    } else if (K == 1) {
      // Rdyᵀ x with Σ_n Rdy from the same product (the bias gradient's epilogue).
      CN_DISPATCH(c.device, gemm_bias_grad<T>, O, I, N, Rdy, O, x_, I, HV, I, HV + O * I);
      if (Rx_ && dy_) CN_DISPATCH(c.device, gemm<T>, true, false, O, I, N, T(1), dy_, O, Rx_, I, T(1), HV, I);
    } else {
      CN_DISPATCH(c.device, gemm_batched<T>, true, false, O, I, N, T(1), Rdy, O, N * O, x_, I, 0, T(0), HV, I,
                  hv_stride, K);
      if (Rx_ && dy_)
        CN_DISPATCH(c.device, gemm_batched<T>, true, false, O, I, N, T(1), dy_, O, 0, Rx_, I, N * I, T(1), HV, I,
                    hv_stride, K);
      CN_DISPATCH(c.device, column_sum_strided<T>, Rdy, K, N, O, HV + O * I, hv_stride);
    }
  }
  lanes.main();
  if (Rdx) {
    CN_DISPATCH(c.device, gemm<T>, false, false, K * N, I, O, T(1), Rdy, O, W_, I, T(0), Rdx, I);  // Rdy W, all K
    if (V_ && dy_)
      CN_DISPATCH(c.device, gemm_batched<T>, false, false, N, I, O, T(1), dy_, O, 0, V_, I, v_stride_, T(1), Rdx, I,
                  N * I, K);
  }
  lanes.join();
}

// ---- Activation: y = f(x) ---------------------------------------------------------------

template <class T>
void Activation<T>::rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K,
                                  int64_t N) {
  Rx_ = Rx;
  CN_DISPATCH(c.device, act_rforward<T>, act_, x_, y_, Rx, Ry, N * this->out_, K);
}

template <class T>
void Activation<T>::rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K,
                                   int64_t N) {
  if (Rdx) CN_DISPATCH(c.device, act_rbackward<T>, act_, x_, y_, dy_, Rx_, Rdy, Rdx, N * this->out_, K);
}

// ---- BatchNorm (training mode couples the batch; evaluation mode is affine) -------------

template <class T>
void BatchNorm<T>::rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K,
                                 int64_t N) {
  const int64_t O = this->out_;
  CN_CHECK_MSG(Rxhat_.capacity() >= K * N * O, "BatchNorm: reserve() was not called for " << K << " directions");
  Rstat_.set_device(c.device);
  Rstat_.resize(K * O);  // allocates only when K grows
  V_ = V;
  v_stride_ = v_stride;
  CN_DISPATCH(c.device, bn_rforward<T>, training_, xhat_.data(), inv_std_.data(), gamma_, Rx, V, V ? V + O : nullptr,
              v_stride, N, O, K, Rxhat_.data(), Rstat_.data(), Ry);
}

template <class T>
void BatchNorm<T>::rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K,
                                  int64_t N) {
  CN_DISPATCH(c.device, bn_rbackward<T>, training_, dy_, xhat_.data(), inv_std_.data(), gamma_, Rxhat_.data(),
              Rstat_.data(), V_, v_stride_, Rdy, N, this->out_, K, Rdx, HV, hv_stride);
}

// ---- Dropout: the stored mask -------------------------------------------------------------

template <class T>
void Dropout<T>::rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K,
                               int64_t N) {
  const int64_t n = N * this->out_;
  if (active_)
    CN_DISPATCH(c.device, multiply_k<T>, Rx, mask_.data(), Ry, n, K);
  else if (Rx)
    device_copy(c.device, Ry, c.device, Rx, static_cast<size_t>(K * n) * sizeof(T));
  else
    device_zero(c.device, Ry, static_cast<size_t>(K * n) * sizeof(T));
}

template <class T>
void Dropout<T>::rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K,
                                int64_t N) {
  if (!Rdx) return;
  const int64_t n = N * this->out_;
  if (active_)
    CN_DISPATCH(c.device, multiply_k<T>, Rdy, mask_.data(), Rdx, n, K);
  else
    device_copy(c.device, Rdx, c.device, Rdy, static_cast<size_t>(K * n) * sizeof(T));
}

#define CN_R_INSTANTIATE(L, T)                                                                          \
  template void L<T>::rforward_impl(const PassCtx&, const T*, const T*, int64_t, T*, int64_t, int64_t); \
  template void L<T>::rbackward_impl(const PassCtx&, const T*, T*, T*, int64_t, int64_t, int64_t);
#define CN_R_INSTANTIATE_ALL(T)   \
  CN_R_INSTANTIATE(Linear, T)     \
  CN_R_INSTANTIATE(Activation, T) \
  CN_R_INSTANTIATE(BatchNorm, T)  \
  CN_R_INSTANTIATE(Dropout, T)
CN_R_INSTANTIATE_ALL(float)
CN_R_INSTANTIATE_ALL(double)

}  // namespace cn
