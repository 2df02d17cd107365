// CUDA twin of loss_forward_backward (kernels/ops.h): the per-row/per-element math is
// kernels/loss.h; z, target, dz, p are N x C row-major.
//   cross_entropy  one thread per row: ce_row (softmax p (=), loss_n), ce_row_grad (dz = (p - onehot) / N (=))
//   mse            per element: mse_elem ((z - t)^2, dz = 2 (z - t) / (N C) (=))
//   bce_logits     per element: bce_logits_elem, p = sigmoid(z) (= when p), bce_logits_grad (dz = (p - t) / (N C))
// The per-sample losses go to scratch as double and are summed with cub::DeviceReduce
// (fixed order for a given size: reproducible) straight into the caller's device double;
// each term is divided by the count first, so the sum is the mean (double: the rounding is
// far below float's). The host never waits, so the op can be captured in a CUDA graph and
// a training step reads losses only at the logging cadence.
#include <cub/device/device_reduce.cuh>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/ops.h"

namespace cn::cuda {

// --- kernels

template <class T>
__global__ void cross_entropy_kernel(const T* z, const T* target, int64_t N, int64_t C, T* dz, T* p, double* loss,
                                     double loss_scale) {
  CN_GRID_STRIDE(n, N) {
    const int label = static_cast<int>(target[n]);
    const T* zr = z + n * C;
    T* pr = p + n * C;
    loss[n] = static_cast<double>(ce_row(zr, static_cast<int>(C), label, pr)) * loss_scale;
    ce_row_grad(pr, C, label, T(1) / T(N), dz + n * C);
  }
}

template <class T>
__global__ void mse_kernel(const T* z, const T* target, int64_t m, T* dz, double* loss, double loss_scale) {
  const T scale = T(2) / T(m);
  CN_GRID_STRIDE(i, m) loss[i] = static_cast<double>(mse_elem(z[i], target[i], scale, dz[i])) * loss_scale;
}

template <class T>
__global__ void bce_logits_kernel(const T* z, const T* target, int64_t m, T* dz, T* p, double* loss,
                                  double loss_scale) {
  const T inv_m = T(1) / T(m);
  CN_GRID_STRIDE(i, m) {
    loss[i] = static_cast<double>(bce_logits_elem(z[i], target[i])) * loss_scale;
    const T s = sigmoid_of(z[i]);
    if (p) p[i] = s;
    dz[i] = bce_logits_grad(s, target[i], inv_m);
  }
}

// --- launchers

namespace {
constexpr size_t kAlign = 256;
size_t align_up(size_t b) { return (b + kAlign - 1) / kAlign * kAlign; }
}  // namespace

template <class T>
void loss_forward_backward(LossKind kind, const T* z, const T* target, int64_t N, int64_t C, T* dz, T* p,
                           double* mean) {
  CN_CHECK(N > 0 && C > 0);
  const int64_t m = kind == LossKind::cross_entropy ? N : N * C;  // terms of the sum
  cudaStream_t s = stream();

  // Scratch: the m terms and CUB's temporary storage.
  size_t cub_bytes = 0;
  CN_CUDA_CHECK(cub::DeviceReduce::Sum(nullptr, cub_bytes, static_cast<const double*>(nullptr),
                                       static_cast<double*>(nullptr), m, s));
  const size_t terms_bytes = align_up(static_cast<size_t>(m) * sizeof(double));
  char* ws = static_cast<char*>(context().workspace(terms_bytes + cub_bytes));
  double* terms = reinterpret_cast<double*>(ws);
  void* cub_tmp = ws + terms_bytes;
  const double loss_scale = 1.0 / static_cast<double>(m);  // each term pre-divided: the sum is the mean

  switch (kind) {
    case LossKind::cross_entropy:
      CN_CHECK_MSG(p, "cross_entropy needs the softmax buffer p");
      cross_entropy_kernel<<<grid_for(N), kBlock, 0, s>>>(z, target, N, C, dz, p, terms, loss_scale);
      break;
    case LossKind::mse:
      mse_kernel<<<grid_for(m), kBlock, 0, s>>>(z, target, m, dz, terms, loss_scale);
      break;
    case LossKind::bce_logits:
      bce_logits_kernel<<<grid_for(m), kBlock, 0, s>>>(z, target, m, dz, p, terms, loss_scale);
      break;
    default:
      throw Error("unknown loss kind");
  }
  CN_CUDA_CHECK(cudaGetLastError());
  CN_CUDA_CHECK(cub::DeviceReduce::Sum(cub_tmp, cub_bytes, terms, mean, m, s));
}

template void loss_forward_backward<float>(LossKind, const float*, const float*, int64_t, int64_t, float*, float*,
                                           double*);
template void loss_forward_backward<double>(LossKind, const double*, const double*, int64_t, int64_t, double*, double*,
                                            double*);

}  // namespace cn::cuda
