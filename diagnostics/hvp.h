// The HVP engine (docs/design.md §3): exact Hessian-vector products of the mean mini-batch loss by
// Pearlmutter's R-operator, for K directions at once, over the model's flat parameter
// layout. One product is one forward, one backward (caching dy at every layer, no
// parameter gradients), one R-forward and one R-backward; prepare() + apply() split the
// first two from the last two so that many products at the same point (Hessian blocks,
// Lanczos) pay for the forward and backward once.
//
// Curvature passes never disturb training: BatchNorm's running statistics are not updated
// (restored to the previous setting after every forward), the model's gradient buffer is
// written only by gradient(), and Dropout masks come from the caller's PassCtx (for
// curvature checkpoints: dropout_key = philox_key(seed, RngStream::curvature)).
#pragma once
#include <cstdint>
#include <vector>

#include "core/memory.h"
#include "layers/model.h"

namespace cn {

// hessian: the exact loss Hessian. ggn: the generalised Gauss-Newton Jᵀ ∇²_z L J (every
// second-order term of the layers dropped; positive semi-definite for the convex losses).
enum class CurvatureMode { hessian, ggn };

template <class T>
class HvpEngine {
 public:
  HvpEngine(Sequential<T>& net, Loss<T>& loss);

  Sequential<T>& net() { return net_; }
  const Sequential<T>& net() const { return net_; }
  Loss<T>& loss() { return loss_; }
  int64_t total() const { return net_.layout().total; }

  // Sizes every buffer (the model's and loss's caches too) for batches of up to max_n
  // samples and max_k directions. Later calls with smaller sizes never allocate; the
  // passes below call it themselves when a batch or K outgrows the reserve.
  void reserve(int64_t max_n, int64_t max_k);

  // The mean loss at (x, target) and its flat gradient (written to the model's grads()
  // buffer and, when `grad` is given, copied there: total() values on the model's device).
  double gradient(const PassCtx& c, const T* x, const T* target, int64_t N, T* grad = nullptr);

  // Exact Hessian-vector products: HV = ∇²L · V for K directions stacked K × total (flat
  // layout, row k = direction k). Returns the mean loss.
  double hvp(const PassCtx& c, const T* x, const T* target, int64_t N, const T* V, T* HV, int64_t K);

  // Forward, loss and backward at (x, target) in the given mode; x and target must stay
  // valid while apply* run. Returns the mean loss.
  double prepare(const PassCtx& c, const T* x, const T* target, int64_t N, CurvatureMode mode = CurvatureMode::hessian);
  // R-forward + R-backward at the prepared point: HV = H·V, both K × total.
  void apply(const T* V, T* HV, int64_t K);
  // Directions that are zero outside layers [lo, hi): V and HV hold only those layers'
  // parameters (the flat layout from layer_offset(lo) on), rows `stride` apart; HV gets
  // the same rows of H·V. The R-forward starts at layer lo and the R-backward stops there.
  void apply_range(size_t lo, size_t hi, const T* V, int64_t v_stride, T* HV, int64_t hv_stride, int64_t K);
  // One layer's parameters: V, HV are K × num_params(layer), contiguous.
  void apply_layer(size_t layer, const T* V, T* HV, int64_t K);

  bool prepared() const { return prepared_; }
  CurvatureMode mode() const { return mode_; }
  int64_t batch() const { return N_; }
  const PassCtx& ctx() const { return ctx_; }
  // Counts prepare() and gradient() calls: a cached closure re-prepares when it changed.
  uint64_t generation() const { return generation_; }
  // Parameters of a layer: flat offset and count.
  int64_t layer_params(size_t i) const { return net_.layer(i).num_params(); }

  // Forward (running statistics untouched) and the loss: used by the passes above and by
  // the Hessian blocks; leaves dz in loss().dz().
  double forward_loss(const PassCtx& c, const T* x, const T* target, int64_t N);
  // The gradient at every layer's output from the last prepare() (hessian mode): N × width.
  const T* output_grad(size_t i) const;

 private:
  Sequential<T>& net_;
  Loss<T>& loss_;
  int64_t max_n_ = 0, max_k_ = 0, max_width_ = 0;
  std::vector<Buffer<T>> R_;   // per layer: R(output), K × N × width
  std::vector<Buffer<T>> dy_;  // per layer except the last: dL/d(output), N × width
  Buffer<T> ping_, pong_;      // R(dy) / R(dx) of the backward sweep
  PassCtx ctx_;
  int64_t N_ = 0;
  CurvatureMode mode_ = CurvatureMode::hessian;
  bool prepared_ = false;
  uint64_t generation_ = 0;
};

}  // namespace cn
