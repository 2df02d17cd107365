// The Sequential model: a stack of layers over one flat parameter buffer (docs/design.md §3),
// plus the loss. Parameters, gradients and every per-layer cache live on one device.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "config/config.h"
#include "core/memory.h"
#include "core/param_layout.h"
#include "layers/layers.h"

namespace cn {

// The layer stack a config describes: [[model.layers]] as given, or the shorthand expanded
// (per hidden width: Linear -> [BatchNorm] -> activation -> [Dropout]; then a bare Linear
// to `n_outputs`). Every entry gets its index in this order (nn.Sequential's).
std::vector<LayerSpec> resolve_layers(const ModelConfig& model, int64_t n_outputs);
// Activation parameters of an activation layer (relu, tanh, ...); throws InputError for
// a layer of another kind.
ActParams activation_params(const LayerSpec& spec);
// Whether `type` names an activation kind of kLayerKinds.
bool is_activation_type(const std::string& type);
// The kernels' function of an activation kind (the Act of the same name).
Act activation_of(LayerKind kind);

template <class T>
class Sequential {
 public:
  Sequential(const std::vector<LayerSpec>& specs, int64_t n_inputs, Device device = Device::cpu);

  int64_t n_inputs() const { return n_inputs_; }
  int64_t n_outputs() const { return n_outputs_; }
  Device device() const { return device_; }
  size_t size() const { return layers_.size(); }
  Layer<T>& layer(size_t i) { return *layers_[i]; }
  const Layer<T>& layer(size_t i) const { return *layers_[i]; }
  const std::vector<LayerSpec>& specs() const { return specs_; }

  const ParamLayout& layout() const { return layout_; }
  // First flat index of layer i's parameters and their count (0 for parameter-free layers).
  int64_t layer_offset(size_t i) const { return layer_offset_[i]; }
  Buffer<T>& params() { return params_; }
  Buffer<T>& grads() { return grads_; }
  const Buffer<T>& params() const { return params_; }
  const Buffer<T>& grads() const { return grads_; }

  // Draws every parameter from its initialiser (RngStream::init keyed by layer) and resets
  // the running statistics.
  void initialize(const ModelConfig& model, uint64_t seed);
  // Sizes the per-layer caches for batches of up to max_n samples and max_k directions.
  // Calls with smaller sizes later never allocate.
  void reserve(int64_t max_n, int64_t max_k = 1);

  // x: N×n_inputs on the model's device. Returns the output (N×n_outputs), owned by the model.
  const T* forward(const PassCtx& c, const T* x, int64_t N);
  // dz: dL/d(output), N×n_outputs. Writes every parameter gradient.
  void backward(const PassCtx& c, const T* dz, int64_t N);

  // The input and output of layer i in the last forward; the gradient at its output in
  // the last backward.
  const T* layer_input(size_t i) const { return i == 0 ? input_ : acts_[i - 1].data(); }
  const T* layer_output(size_t i) const { return acts_[i].data(); }
  const T* output_grad(size_t i) const { return dacts_[i].data(); }

 private:
  std::vector<LayerSpec> specs_;
  int64_t n_inputs_ = 0, n_outputs_ = 0;
  Device device_;
  std::vector<std::unique_ptr<Layer<T>>> layers_;
  ParamLayout layout_;
  std::vector<int64_t> layer_offset_;
  Buffer<T> params_, grads_;
  std::vector<Buffer<T>> acts_, dacts_;  // per layer: output and dL/d(output), N×width
  const T* input_ = nullptr;
  int64_t max_n_ = 0;
};

// While alive, no layer of the model updates running statistics (passes that measure the
// model must not move them); the previous settings come back on destruction.
template <class T>
class RunningStatsFreeze {
 public:
  explicit RunningStatsFreeze(Sequential<T>& net) : net_(net) {
    saved_.reserve(net.size());
    for (size_t i = 0; i < net.size(); ++i) saved_.push_back(net.layer(i).set_update_running(false));
  }
  ~RunningStatsFreeze() {
    for (size_t i = 0; i < saved_.size(); ++i) net_.layer(i).set_update_running(saved_[i] != 0);
  }
  RunningStatsFreeze(const RunningStatsFreeze&) = delete;
  RunningStatsFreeze& operator=(const RunningStatsFreeze&) = delete;

 private:
  Sequential<T>& net_;
  std::vector<char> saved_;
};

// The loss over a batch (means over the batch; MSE and BCE also over outputs).
template <class T>
class Loss {
 public:
  explicit Loss(LossKind kind) : kind_(kind) {}
  LossKind kind() const { return kind_; }
  void reserve(Device d, int64_t max_n, int64_t C) {
    dz_.set_device(d);
    p_.set_device(d);
    mean_.set_device(d);
    dz_.resize(max_n * C);
    p_.resize(max_n * C);
    mean_.resize(1);
  }
  // z: N×C; target: N class indices (cross_entropy) or N×C values. Returns the mean loss
  // and keeps dL/dz (dz()) and the softmax/sigmoid (probabilities()). On CUDA the return
  // waits for the stream: the hot path uses forward_backward_to.
  double forward_backward(const PassCtx& c, const T* z, const T* target, int64_t N, int64_t C) {
    forward_backward_to(c, z, target, N, C, mean_.data());
    double mean = 0;
    device_copy(Device::cpu, &mean, c.device, mean_.data(), sizeof(double));
    return mean;
  }
  // The same, the mean loss written to `mean` (one double on c.device) without waiting.
  void forward_backward_to(const PassCtx& c, const T* z, const T* target, int64_t N, int64_t C, double* mean) {
    CN_CHECK_MSG(dz_.capacity() >= N * C, "Loss: reserve() was not called for batch " << N);
    CN_DISPATCH(c.device, loss_forward_backward<T>, kind_, z, target, N, C, dz_.data(), p_.data(), mean);
  }
  const T* dz() const { return dz_.data(); }
  const T* probabilities() const { return p_.data(); }

 private:
  LossKind kind_;
  Buffer<T> dz_, p_;
  Buffer<double> mean_;  // forward_backward's result on the device
};

LossKind loss_kind(const std::string& name);  // InputError on an unknown name

}  // namespace cn
