// The optimisers, gradient clipping and gradient noise of optim/optimizer.h on the CUDA
// backend: the same per-element math (kernels/optim.h), over device pointers, without
// host synchronisation inside a step (docs/design.md §2). Only in builds with CURVNET_HAVE_CUDA.
#pragma once
#include <cstdint>
#include <memory>
#include <vector>

#include "optim/optimizer.h"

namespace cn {

// An Optimizer<T> whose step() takes device pointers (params, grads: layout.total long) and
// runs one fused kernel per distinct set of per-layer coefficients (one in the usual case).
// Its state lives on the device. state() copies it into host vectors (waits for the
// stream) and returns them; values written into those vectors (a checkpoint being loaded)
// are copied back to the device at the start of the next step(). Never allocates in step().
template <class T>
std::unique_ptr<Optimizer<T>> make_optimizer_cuda(const OptimConfig& config, const ParamLayout& layout);

// Gradient clipping (every mode of [clip]) on the device. clip() never waits for the host:
// the norms and the clipped flag of each step go to a device-side ring of `ring_size`
// records indexed by step, which the host reads at its logging cadence with read(step).
template <class T>
class CudaGradClipper {
 public:
  CudaGradClipper(const ClipConfig& config, const ParamLayout& layout, int64_t ring_size = 1024);
  ~CudaGradClipper();
  CudaGradClipper(const CudaGradClipper&) = delete;
  CudaGradClipper& operator=(const CudaGradClipper&) = delete;

  // Clips `grads` in place (params: needed by agc modes) and records step `step`'s result.
  void clip(const T* params, T* grads, int64_t step);
  // The record of `step` (waits for the stream). Throws cn::Error when `step` was never
  // recorded or was overwritten (more than ring_size clips ago).
  ClipResult read(int64_t step) const;
  // Every record still in the ring, oldest first, as (step, result) (one copy, one wait).
  std::vector<std::pair<int64_t, ClipResult>> read_all() const;
  // The training step's read: copies the whole ring (one copy, one wait) into host memory
  // kept for it, so that fetched(step) answers without allocating (docs/gpu.md: a step
  // after warm-up allocates nothing).
  void fetch();
  // The record of `step` as of the last fetch(); throws as read() does.
  ClipResult fetched(int64_t step) const;
  int64_t ring_size() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// grads += N(0, sigma_t^2) on the device: the same Philox draws as add_gradient_noise
// (RngStream::grad_noise keyed by step), so both backends add the same noise.
template <class T>
void add_gradient_noise_cuda(const OptimConfig& config, uint64_t seed, int64_t step, T* grads, int64_t n);

}  // namespace cn
