// The layer interface (docs/design.md §3). Four passes over a mini-batch, each public and
// non-virtual (checks once, then calls the *_impl that holds only the maths):
//   forward   y = f(x; θ), caching what the other passes need
//   backward  dx from dy, caching dy; in GradientMode::params also writing (=) the layer's
//             parameter gradients
//   rforward  Ry from Rx and the parameter direction Vθ (K directions at once)
//   rbackward R(dx) from R(dy), writing (=) the layer's (Hv)θ for each direction
// Tensors are row-major: x N×I, y N×O; tangents carry a leading K axis (K×N×I).
// Pointers passed to forward/backward must stay valid until the R-passes that follow.
//
// The curvature diagnostics read a layer through the public virtuals below (the running
// statistics switch, the output-Hessian backward of the Kronecker path, the per-sample
// Fisher diagonal, the activation function); a layer without one of them keeps the default
// (no state to freeze, "not available" errors, no activation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/layer_kind.h"
#include "core/error.h"
#include "kernels/ops.h"

namespace cn {

// What backward writes besides dx.
enum class GradientMode {
  params,      // the parameter gradients too (=); dy must be given
  input_only,  // dx only, the gradient buffer untouched; dy may be null (= zero: the
               // Gauss-Newton passes, where every second-order term of the layer drops)
};

struct ParamSpec {
  std::string name;  // "weight" | "bias"
  int64_t rows = 0, cols = 1;
  bool is_bias = false;
  int64_t size() const { return rows * cols; }
};

// A non-trainable tensor saved with the model (BatchNorm's running statistics).
template <class T>
struct StateView {
  std::string name;
  T* data = nullptr;
  int64_t size = 0;
  Device device = Device::cpu;
};

template <class T>
class Layer {
 public:
  Layer(int64_t index, int64_t in, int64_t out) : index_(index), in_(in), out_(out) {}
  virtual ~Layer() = default;
  Layer(const Layer&) = delete;
  Layer& operator=(const Layer&) = delete;

  virtual LayerKind kind() const = 0;
  // The kind's name ("linear", "relu", "batchnorm", "dropout", ...), as output files write it.
  std::string type() const { return layer_kind_name(kind()); }
  int64_t index() const { return index_; }
  int64_t in_features() const { return in_; }
  int64_t out_features() const { return out_; }
  virtual std::vector<ParamSpec> param_specs() const { return {}; }
  int64_t num_params() const {
    int64_t n = 0;
    for (const auto& s : param_specs()) n += s.size();
    return n;
  }
  // Views into the flat parameter and gradient buffers at this layer's first element.
  virtual void bind(T* params, T* grads) {}
  virtual std::vector<StateView<T>> state() { return {}; }
  // Resets non-parameter state (running statistics) to its initial value.
  virtual void reset_state() {}
  // Allocates the per-batch caches for up to `max_n` samples and `max_k` directions.
  virtual void reserve(Device d, int64_t max_n, int64_t max_k) {}
  // Whether a training-mode forward updates running statistics (on by default); returns
  // the previous setting. Layers without running statistics ignore it and return false.
  virtual bool set_update_running(bool on) { return false; }
  // Whether the forward draws from a stream keyed by the step (Dropout's mask): such a pass
  // cannot be replayed from a recorded graph.
  virtual bool uses_step_randomness() const { return false; }
  // The elementwise function of an activation layer; null for every other layer.
  virtual const ActParams* activation() const { return nullptr; }

  // ---- pieces of the curvature blocks (diagnostics/hessian_blocks.h) ----
  // Whether output_hessian_backward applies in this mode (BatchNorm in training mode
  // couples the samples: no per-sample Hessians).
  virtual bool supports_output_hessian(bool training) const { return false; }
  // The Kronecker path, on the host after a forward and backward on the CPU backend:
  // per-sample Hessians of the loss in this layer's output, M: N × O × O, become those in
  // its input, N × I × I, in place. dy: dL/d(output) of the last backward (null: the
  // Gauss-Newton part, second-order terms dropped); scratch: N·max(I, O)² values.
  virtual void output_hessian_backward(const T* dy, T* M, T* scratch, int64_t N) {
    throw Error("the output-Hessian backward is not available for layer type " + type());
  }
  // The empirical Fisher diagonal of this layer's parameters, (1/N) Σ_n g_n², with g_n
  // = N × sample n's contribution to the batch gradient: x is the layer's input, dy the
  // gradient of the mean loss at its output (N rows each, on c.device). num_params()
  // values on the host, in the flat parameter order.
  virtual std::vector<T> fisher_diag(const PassCtx& c, const T* x, const T* dy, int64_t N) {
    throw Error("fisher_diag: layer " + std::to_string(index_) + " is " + type());
  }

  void forward(const PassCtx& c, const T* x, T* y, int64_t N) {
    CN_CHECK(x && y && N > 0);
    forward_impl(c, x, y, N);
  }
  // dx: N×I (null: not needed).
  void backward(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode = GradientMode::params) {
    CN_CHECK((dy || mode == GradientMode::input_only) && N > 0);
    backward_impl(c, dy, dx, N, mode);
  }
  // Rx: K×N×I (null = zero: the network input does not depend on θ); V: K directions of
  // this layer's parameters, each num_params() long, `v_stride` apart (null = zero);
  // Ry: K×N×O.
  void rforward(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K, int64_t N) {
    CN_CHECK(Ry && K > 0 && N > 0);
    rforward_impl(c, Rx, V, v_stride, Ry, K, N);
  }
  // Rdy: K×N×O; Rdx: K×N×I (null: not needed); HV: K blocks num_params() long,
  // `hv_stride` apart (written with =).
  void rbackward(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) {
    CN_CHECK(Rdy && K > 0 && N > 0);
    rbackward_impl(c, Rdy, Rdx, HV, hv_stride, K, N);
  }

 protected:
  virtual void forward_impl(const PassCtx& c, const T* x, T* y, int64_t N) = 0;
  virtual void backward_impl(const PassCtx& c, const T* dy, T* dx, int64_t N, GradientMode mode) = 0;
  virtual void rforward_impl(const PassCtx& c, const T* Rx, const T* V, int64_t v_stride, T* Ry, int64_t K, int64_t N) {
    throw Error("rforward is not available for layer type " + type());
  }
  virtual void rbackward_impl(const PassCtx& c, const T* Rdy, T* Rdx, T* HV, int64_t hv_stride, int64_t K, int64_t N) {
    throw Error("rbackward is not available for layer type " + type());
  }

  int64_t index_, in_, out_;
};

}  // namespace cn
