// The concrete layers: Linear, elementwise activations, BatchNorm, inverted Dropout.
#pragma once
#include <memory>

#include "core/memory.h"
#include "layers/layer.h"

namespace cn {

// Whether Linear's R-backward for one direction forms (Hv)W = Rdyᵀ x + dyᵀ Rx as one GEMM
// over stacked copies [Rdy; dy]ᵀ [x; Rx] (twice the inner dimension) instead of two; on
// the GPU only for layers at least kPairMinWidthGpu wide. Process-wide; CURVNET_R_CONCAT=0|1
// sets the initial value (1).
void set_rpass_pairs_as_one_gemm(bool on);
bool rpass_pairs_as_one_gemm();
constexpr int64_t kPairMinWidthGpu = 256;

// y = x Wᵀ + b; W: O×I (PyTorch's layout), b: O.
template <class T>
class Linear final : public Layer<T> {
 public:
  Linear(int64_t index, int64_t in, int64_t out) : Layer<T>(index, in, out) {}
  LayerKind kind() const override { return LayerKind::linear; }
  std::vector<ParamSpec> param_specs() const override {
    return {{"weight", this->out_, this->in_, false}, {"bias", this->out_, 1, true}};
  }
  void bind(T* params, T* grads) override {
    W_ = params;
    b_ = params + this->out_ * this->in_;
    dW_ = grads;
    db_ = grads + this->out_ * this->in_;
  }
  const T* W() const { return W_; }
  const T* b() const { return b_; }
  const T* input() const { return x_; }
  bool supports_output_hessian(bool training) const override { return true; }
  void output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) override;
  std::vector<T> fisher_diag(const PassCtx& c, const T* x, const T* dy, int64_t N) override;

 protected:
  void forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) override;
  void backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) override;
  void rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K, int64_t N) override;
  void rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) override;

 private:
  T *W_ = nullptr, *b_ = nullptr, *dW_ = nullptr, *db_ = nullptr;
  const T* x_ = nullptr;   // forward input (N×I)
  const T* dy_ = nullptr;  // backward input (N×O)
  const T* Rx_ = nullptr;  // rforward input (K×N×I), may be null
  const T* V_ = nullptr;   // rforward parameter directions
  int64_t v_stride_ = 0;
  // Curvature passes (layers/rpasses.cpp): the stacked directions [VW_0; ...; VW_K-1] and
  // x times their transpose, for the one-GEMM R-forward of small layers; the stacked
  // operands [Rdy; dy] and [x; Rx] of the one-GEMM (Hv)W.
  Buffer<T> vw_stack_, xvw_, pair_dy_, pair_x_;
  bool pair_as_one_gemm(Device d, int64_t K) const;
};

// y = f(x) elementwise.
template <class T>
class Activation final : public Layer<T> {
 public:
  Activation(int64_t index, int64_t features, LayerKind kind, ActParams a)
      : Layer<T>(index, features, features), kind_(kind), act_(a) {}
  LayerKind kind() const override { return kind_; }
  const ActParams* activation() const override { return &act_; }
  const ActParams& params() const { return act_; }
  const T* input() const { return x_; }
  const T* output() const { return y_; }
  bool supports_output_hessian(bool training) const override { return true; }
  void output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) override;

 protected:
  void forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) override;
  void backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) override;
  void rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K, int64_t N) override;
  void rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) override;

 private:
  LayerKind kind_;
  ActParams act_;
  const T* x_ = nullptr;
  const T* y_ = nullptr;
  const T* dy_ = nullptr;
  const T* Rx_ = nullptr;
};

// Batch normalisation over features (docs/spec.md §1): training uses the batch mean and biased
// variance (the exact derivative, 1/N); evaluation uses running statistics updated with
// PyTorch's momentum and the unbiased variance.
template <class T>
class BatchNorm final : public Layer<T> {
 public:
  BatchNorm(int64_t index, int64_t features, double momentum, double eps)
      : Layer<T>(index, features, features), momentum_(momentum), eps_(eps) {}
  LayerKind kind() const override { return LayerKind::batchnorm; }
  std::vector<ParamSpec> param_specs() const override {
    return {{"weight", this->out_, 1, false}, {"bias", this->out_, 1, true}};
  }
  void bind(T* params, T* grads) override {
    gamma_ = params;
    beta_ = params + this->out_;
    dgamma_ = grads;
    dbeta_ = grads + this->out_;
  }
  std::vector<StateView<T>> state() override;
  void reset_state() override;
  void reserve(Device d, int64_t max_n, int64_t max_k) override;
  double eps() const { return eps_; }
  // Updates of the running statistics are on by default; curvature passes switch them off.
  bool set_update_running(bool on) override {
    const bool was = update_running_;
    update_running_ = on;
    return was;
  }
  // Evaluation mode only: there y = γ (x - μ_run) / sqrt(σ²_run + ε) + β is per-sample affine.
  bool supports_output_hessian(bool training) const override { return !training; }
  void output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) override;
  std::vector<T> fisher_diag(const PassCtx& c, const T* x, const T* dy, int64_t N) override;

 protected:
  void forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) override;
  void backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) override;
  void rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K, int64_t N) override;
  void rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) override;

 private:
  double momentum_, eps_;
  bool update_running_ = true;
  bool training_ = true;  // mode of the last forward
  T *gamma_ = nullptr, *beta_ = nullptr, *dgamma_ = nullptr, *dbeta_ = nullptr;
  Buffer<T> running_mean_, running_var_, num_batches_;  // num_batches_tracked: host-side, saved as int64
  Buffer<T> xhat_, mean_, inv_std_;
  const T* dy_ = nullptr;
  Buffer<T> Rxhat_;  // K×N×O, from rforward (for rbackward)
  const T* V_ = nullptr;
  int64_t v_stride_ = 0;
  // Curvature passes (layers/rpasses.cpp): mean(x̂ Rx) per direction and feature (K×O),
  // and the parameter gradients an input-only backward discards.
  Buffer<T> Rstat_, scratch_grads_;
};

// Inverted dropout; p = drop probability. The mask is a function of (seed, layer, step).
template <class T>
class Dropout final : public Layer<T> {
 public:
  Dropout(int64_t index, int64_t features, double p) : Layer<T>(index, features, features), p_(p) {}
  LayerKind kind() const override { return LayerKind::dropout; }
  double p() const { return p_; }
  bool uses_step_randomness() const override { return true; }
  void reserve(Device d, int64_t max_n, int64_t max_k) override {
    mask_.set_device(d), mask_.resize(max_n * this->out_);
  }
  const T* mask() const { return active_ ? mask_.data() : nullptr; }
  bool supports_output_hessian(bool training) const override { return true; }
  void output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) override;

 protected:
  void forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) override;
  void backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) override;
  void rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K, int64_t N) override;
  void rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) override;

 private:
  double p_;
  bool active_ = false;  // a mask was applied in the last forward (training and p > 0)
  Buffer<T> mask_;
};

}  // namespace cn
