// The ops every layer, loss and curvature pass is built from. Each has a CPU twin
// (kernels/cpu/, OpenMP loops and OpenBLAS) and a CUDA twin (kernels/cuda/) with the same
// name and signature; the dispatchers below pick one by device. Row-major throughout;
// N = batch, I = inputs, O = outputs, C = classes/targets, K = HVP directions.
#pragma once
#include <cstdint>

#include "core/device.h"
#include "core/philox.h"
#include "kernels/activation.h"
#include "kernels/loss.h"

namespace cn {

// What a pass needs besides its tensors.
struct PassCtx {
  Device device = Device::cpu;
  bool training = true;
  PhiloxKey dropout_key{0, 0};  // training: (seed, RngStream::dropout); curvature: its own stream
  uint64_t step = 0;            // the counter of the draw (the update about to be made)
};

// Where the ops that follow run (lane()): two independent ops may overlap on the CUDA
// backend. side: after everything enqueued so far, on a second stream; main: back on the
// main stream, not waiting; joined: back on the main stream, later work waiting for the
// side's. The CPU runs ops in program order and does nothing.
enum class Lane { side, main, joined };

#define CN_OPS_DECLARE(ns)                                                                                            \
  namespace ns {                                                                                                      \
  /* Switches the lane of the ops that follow (see Lane). */                                                          \
  void lane(Lane l);                                                                                                  \
  /* C (M x Nc) = alpha * op(A) op(B) + beta * C, row-major; ta/tb transpose A/B. */                                  \
  template <class T>                                                                                                  \
  void gemm(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda, const T* B,        \
            int64_t ldb, T beta, T* C, int64_t ldc);                                                                  \
  /* `count` independent GEMMs with the same shapes, matrices `stride*` elements apart. */                            \
  template <class T>                                                                                                  \
  void gemm_batched(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda,            \
                    int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc,             \
                    int64_t strideC, int64_t count);                                                                  \
  /* C (M x Nc) = op(A) op(B) + bias, bias (Nc values) added to every row: Linear's forward. */                       \
  template <class T>                                                                                                  \
  void gemm_bias(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, const T* A, int64_t lda, const T* B,            \
                 int64_t ldb, const T* bias, T* C, int64_t ldc);                                                      \
  /* Linear's parameter gradients: C (M x Nc) = Aᵀ B with A Kd x M and B Kd x Nc, and */                            \
  /* bias_grad[m] = sum over k of A[k, m] (=). */                                                                     \
  template <class T>                                                                                                  \
  void gemm_bias_grad(int64_t M, int64_t Nc, int64_t Kd, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,      \
                      int64_t ldc, T* bias_grad);                                                                     \
  /* y[n, o] += b[o] for every row n (N x O). */                                                                      \
  template <class T>                                                                                                  \
  void add_row_vector(T* y, const T* b, int64_t N, int64_t O);                                                        \
  /* s[o] (=, or += when accumulate) sum over rows n of x[n, o]. */                                                   \
  template <class T>                                                                                                  \
  void column_sum(const T* x, int64_t N, int64_t O, T* s, bool accumulate);                                           \
  /* y = f(x), elementwise over n values. */                                                                          \
  template <class T>                                                                                                  \
  void act_forward(const ActParams& a, const T* x, T* y, int64_t n);                                                  \
  /* dx = dy * f'(x). */                                                                                              \
  template <class T>                                                                                                  \
  void act_backward(const ActParams& a, const T* x, const T* y, const T* dy, T* dx, int64_t n);                       \
  /* BatchNorm, training mode, over N x O: batch mean/biased variance per feature; writes y, */                       \
  /* the normalised xhat, mean and inv_std (1/sqrt(var+eps)). */                                                      \
  template <class T>                                                                                                  \
  void bn_forward_train(const T* x, const T* gamma, const T* beta, int64_t N, int64_t O, double eps, T* y, T* xhat,   \
                        T* mean, T* inv_std);                                                                         \
  /* Exact derivative of the training forward (1/N): dgamma, dbeta (=) and dx. */                                     \
  template <class T>                                                                                                  \
  void bn_backward_train(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,   \
                         T* dgamma, T* dbeta);                                                                        \
  /* Evaluation mode: running statistics; inv_std is written from running_var. */                                     \
  template <class T>                                                                                                  \
  void bn_forward_eval(const T* x, const T* gamma, const T* beta, const T* running_mean, const T* running_var,        \
                       int64_t N, int64_t O, double eps, T* y, T* xhat, T* inv_std);                                  \
  /* Evaluation mode backward (affine per feature): dx = dy γ inv_std; dgamma, dbeta (=). */                         \
  template <class T>                                                                                                  \
  void bn_backward_eval(const T* dy, const T* xhat, const T* gamma, const T* inv_std, int64_t N, int64_t O, T* dx,    \
                        T* dgamma, T* dbeta);                                                                         \
  /* running <- (1-m) running + m batch (variance unbiased: N/(N-1)), as PyTorch. */                                  \
  template <class T>                                                                                                  \
  void bn_update_running(const T* mean, const T* inv_std, int64_t N, int64_t O, double eps, double momentum,          \
                         T* running_mean, T* running_var);                                                            \
  /* mask = dropout_mask_value(...) for n elements; y = x * mask. */                                                  \
  template <class T>                                                                                                  \
  void dropout_forward(const T* x, T* y, T* mask, int64_t n, double p, PhiloxKey key, uint32_t layer, uint64_t step); \
  /* y = x * mask, elementwise (also Dropout's backward). */                                                          \
  template <class T>                                                                                                  \
  void multiply(const T* x, const T* mask, T* y, int64_t n);                                                          \
  /* dst row r = src row rows[r], rows `width` wide (a mini-batch from a dataset held on the device). */              \
  template <class T>                                                                                                  \
  void gather_rows(const T* src, int64_t width, const int64_t* rows, int64_t n, T* dst);                              \
  /* Mean loss over the batch into *mean (memory of the op's device: the host never waits); */                        \
  /* writes dz = dL/dz (N x C) and, for cross-entropy, the softmax p. */                                              \
  /* Targets: class indices (N) for cross_entropy, N x C values otherwise. */                                         \
  template <class T>                                                                                                  \
  void loss_forward_backward(LossKind kind, const T* z, const T* target, int64_t N, int64_t C, T* dz, T* p,           \
                             double* mean);                                                                           \
  }

CN_OPS_DECLARE(cpu)
#ifdef CURVNET_HAVE_CUDA
CN_OPS_DECLARE(cuda)
#define CN_DISPATCH(ctx_device, fn, ...) \
  ((ctx_device) == ::cn::Device::cuda ? ::cn::cuda::fn(__VA_ARGS__) : ::cn::cpu::fn(__VA_ARGS__))
#else
#define CN_DISPATCH(ctx_device, fn, ...) ((void)(ctx_device), ::cn::cpu::fn(__VA_ARGS__))
#endif

// Two independent ops on two lanes (Lane): constructed with `on`, it forks to the side
// lane for the first op; main() returns to the main lane for the second; join() makes
// later work wait for both. Off, everything stays on the main lane. The destructor joins
// when an exception left the lanes apart (a recording must not end with them apart).
// Pairs do not nest: the ops between the fork and main() must not open another.
class LanePair {
 public:
  LanePair(Device d, bool on) : device_(d), on_(on) {
    if (on_) CN_DISPATCH(device_, lane, Lane::side);
  }
  LanePair(const LanePair&) = delete;
  LanePair& operator=(const LanePair&) = delete;
  void main() {
    if (on_) CN_DISPATCH(device_, lane, Lane::main);
  }
  void join() {
    if (!on_) return;
    on_ = false;
    CN_DISPATCH(device_, lane, Lane::joined);
  }
  ~LanePair() {
    if (!on_) return;
    try {
      CN_DISPATCH(device_, lane, Lane::joined);
    } catch (...) {  // already unwinding from the first failure
    }
  }

 private:
  Device device_;
  bool on_;
};

}  // namespace cn
