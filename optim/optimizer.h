// Optimisers, schedules, clipping and gradient noise over the flat parameter buffer.
// Update rules follow torch.optim (README: "Optimisers" says where the slides differ).
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/error.h"
#include "core/param_layout.h"

namespace cn {

// Per-segment coefficients resolved from [optim] and [[optim.per_layer]].
struct SegmentCoeffs {
  double weight_decay = 0, l1 = 0, lr_scale = 1;
};

// The coefficients of every segment (same order as layout.segments): [optim] values,
// overridden by the [[optim.per_layer]] entries naming the segment's layer (a later entry
// for the same layer wins). InputError when an entry names a layer without parameters.
std::vector<SegmentCoeffs> resolve_segment_coeffs(const OptimConfig& config, const ParamLayout& layout);

template <class T>
class Optimizer {
 public:
  virtual ~Optimizer() = default;
  // One update of `params` from `grads` (both layout.total long) at learning rate lr.
  // The L2/L1 penalties of the config are added to the gradient inside (never to `grads`
  // itself). `step` counts updates already done (0 on the first call). Must not allocate.
  virtual void step(T* params, const T* grads, double lr, int64_t step) = 0;
  // Named state buffers (each layout.total long, or 1 for scalars), for checkpoints.
  virtual std::vector<std::pair<std::string, std::vector<T>*>> state() = 0;
  // The diagonal preconditioner after `step` updates, as float64 (layout.total long): the
  // Adam family's P = sqrt(v / (1 - beta2^t)) + eps, the denominator of its update. Empty
  // for optimisers without one and before the first update.
  virtual std::vector<double> preconditioner(int64_t step) { return {}; }
  // Moves the state onto a grown layout (docs/optimisers.md, "Growing the network"):
  // element i of the new buffer takes old element source[i], or, for source[i] = -1 (a new
  // parameter), zero state and its own step count starting at `step` (the updates already
  // done), so the Adam family's bias correction treats it as fresh. InputError for a kind
  // whose state cannot be split by element (NAdam's shared mu product) or a backend without it.
  virtual void relayout(const ParamLayout& layout, const std::vector<int64_t>& source, int64_t step) {
    throw InputError("growth: this optimiser backend cannot extend its state (expected train.device = cpu)");
  }
};

// The Adam family's P = sqrt(v / (1 - beta2^step)) + eps from the optimiser's state buffer
// ("exp_avg_sq", or "max_exp_avg_sq" for AMSGrad): what both backends' preconditioner()
// return. Empty for other optimisers and at step 0, without reading state() (on CUDA that
// copies the state to the host).
template <class T>
std::vector<double> adam_family_preconditioner(Optimizer<T>& optimizer, const OptimConfig& config, int64_t step);

template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer(const OptimConfig& config, const ParamLayout& layout);

// Learning rate after `step` updates (step 0 = the first update), warm-up included.
double scheduled_lr(const ScheduleConfig& schedule, double base_lr, int64_t step, int64_t total_steps);

struct ClipResult {
  double norm_before = 0;  // global L2 norm of the gradient before clipping
  double norm_after = 0;
  bool clipped = false;
};
// Clips `grads` in place per the config (params needed by AGC). Must not allocate.
template <class T>
ClipResult clip_gradients(const ClipConfig& config, const ParamLayout& layout, const T* params, T* grads);

// g += N(0, sigma_t^2), sigma_t^2 = eta / (1 + t)^gamma, from RngStream::grad_noise keyed by step.
template <class T>
void add_gradient_noise(const OptimConfig& config, uint64_t seed, int64_t step, T* grads, int64_t n);

}  // namespace cn
