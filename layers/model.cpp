#include "layers/model.h"

#include <cmath>

#include "layers/init.h"

namespace cn {

bool is_activation_type(const std::string& type) {
  LayerKind k;
  return find_layer_kind(type, &k) && is_activation(k);
}

Act activation_of(LayerKind kind) {
  const std::string name = layer_kind_name(kind);
  if (const auto act = find_enum(kActNames, name)) return *act;
  throw Error("layer kind '" + name + "' has no activation of that name in kernels/activation.h");
}

ActParams activation_params(const LayerSpec& spec) {
  if (!is_activation(spec.type))
    throw InputError("layer type '" + std::string(layer_kind_name(spec.type)) + "' is not an activation");
  return ActParams{activation_of(spec.type), spec.slope, spec.alpha};
}

LossKind loss_kind(const std::string& name) { return parse_enum(kLossKinds, name, "loss.kind"); }

std::vector<LayerSpec> resolve_layers(const ModelConfig& model, int64_t n_outputs) {
  std::vector<LayerSpec> out;
  if (!model.layers.empty()) {
    out = model.layers;
  } else {
    for (int64_t width : model.hidden) {
      LayerSpec lin;
      lin.type = LayerKind::linear;
      lin.out = width;
      out.push_back(lin);
      if (model.batchnorm) {
        LayerSpec bn;
        bn.type = LayerKind::batchnorm;
        bn.momentum = model.bn_momentum;
        out.push_back(bn);
      }
      LayerSpec act;
      act.type = model.activation;
      act.slope = model.leaky_slope;
      act.alpha = model.elu_alpha;
      out.push_back(act);
      if (model.dropout > 0) {
        LayerSpec dr;
        dr.type = LayerKind::dropout;
        dr.p = model.dropout;
        out.push_back(dr);
      }
    }
    LayerSpec head;
    head.type = LayerKind::linear;
    head.out = n_outputs;
    out.push_back(head);
  }
  for (auto& s : out) {
    if (s.type == LayerKind::linear && !s.init) s.init = model.init;
    if (s.type == LayerKind::linear && !s.bias_init) s.bias_init = model.bias_init;
  }
  return out;
}

template <class T>
Sequential<T>::Sequential(const std::vector<LayerSpec>& specs, int64_t n_inputs, Device device)
    : specs_(specs), n_inputs_(n_inputs), device_(device) {
  int64_t width = n_inputs;
  for (size_t i = 0; i < specs.size(); ++i) {
    const LayerSpec& s = specs[i];
    const int64_t idx = static_cast<int64_t>(i);
    const LayerKind kind = s.type;
    if (kind == LayerKind::linear) {
      CN_CHECK_MSG(s.out > 0, "layer " << i << ": linear needs out > 0");
      layers_.push_back(std::make_unique<Linear<T>>(idx, width, s.out));
      width = s.out;
    } else if (kind == LayerKind::batchnorm) {
      layers_.push_back(std::make_unique<BatchNorm<T>>(idx, width, s.momentum, s.eps));
    } else if (kind == LayerKind::dropout) {
      layers_.push_back(std::make_unique<Dropout<T>>(idx, width, s.p));
    } else {
      layers_.push_back(std::make_unique<Activation<T>>(idx, width, kind, activation_params(s)));
    }
  }
  n_outputs_ = width;
  CN_CHECK_MSG(!layers_.empty(), "the model has no layers");

  int64_t offset = 0;
  for (auto& l : layers_) {
    layer_offset_.push_back(offset);
    for (const ParamSpec& p : l->param_specs()) {
      ParamSegment seg;
      seg.name = std::to_string(l->index()) + "." + p.name;
      seg.layer = l->index();
      seg.offset = offset;
      seg.rows = p.rows;
      seg.cols = p.cols;
      seg.is_bias = p.is_bias;
      layout_.segments.push_back(seg);
      offset += p.size();
    }
  }
  layout_.total = offset;
  params_.set_device(device);
  grads_.set_device(device);
  params_.resize(offset);
  grads_.resize(offset);
  params_.zero();
  grads_.zero();
  for (size_t i = 0; i < layers_.size(); ++i)
    layers_[i]->bind(params_.data() + layer_offset_[i], grads_.data() + layer_offset_[i]);
  acts_.resize(layers_.size());
  dacts_.resize(layers_.size());
  for (auto& b : acts_) b.set_device(device);
  for (auto& b : dacts_) b.set_device(device);
}

template <class T>
void Sequential<T>::initialize(const ModelConfig& model, uint64_t seed) {
  std::vector<double> host(static_cast<size_t>(layout_.total), 0.0);
  for (size_t i = 0; i < layers_.size(); ++i) {
    Layer<T>& l = *layers_[i];
    const int64_t off = layer_offset_[i];
    if (l.kind() == LayerKind::linear) {
      // He's gain follows the activation after this Linear (LeakyReLU's slope), skipping
      // BatchNorm/Dropout in between.
      double gain = std::sqrt(2.0);
      for (size_t j = i + 1; j < layers_.size(); ++j) {
        const LayerKind next = layers_[j]->kind();
        if (next == LayerKind::linear) break;
        if (next == LayerKind::leaky_relu) {
          gain = std::sqrt(2.0 / (1.0 + specs_[j].slope * specs_[j].slope));
          break;
        }
        if (is_activation(next)) break;
      }
      const int64_t I = l.in_features(), O = l.out_features();
      const Init w_init = specs_[i].init.value_or(model.init);
      init_fill(w_init, model.init_constant, I, O, gain, seed, static_cast<uint32_t>(i), 0, host.data() + off, O * I);
      // init_gain scales the random initialisers only (a constant is taken as written).
      if (model.init_gain != 1.0 && w_init != Init::zeros && w_init != Init::constant)
        for (int64_t k = 0; k < O * I; ++k) host[static_cast<size_t>(off + k)] *= model.init_gain;
      init_fill(specs_[i].bias_init.value_or(model.bias_init), model.init_constant, I, O, gain, seed,
                static_cast<uint32_t>(i), 1, host.data() + off + O * I, O);
    } else if (l.kind() == LayerKind::batchnorm) {
      const int64_t O = l.out_features();
      for (int64_t o = 0; o < O; ++o) host[off + o] = 1.0;  // γ = 1, β = 0 (PyTorch)
    }
    l.reset_state();
  }
  std::vector<T> cast(host.begin(), host.end());
  device_copy(device_, params_.data(), Device::cpu, cast.data(), cast.size() * sizeof(T));
}

template <class T>
void Sequential<T>::reserve(int64_t max_n, int64_t max_k) {
  max_n_ = std::max(max_n_, max_n);
  for (size_t i = 0; i < layers_.size(); ++i) {
    acts_[i].resize(max_n_ * layers_[i]->out_features());
    dacts_[i].resize(max_n_ * layers_[i]->out_features());
    layers_[i]->reserve(device_, max_n_, max_k);
  }
}

template <class T>
const T* Sequential<T>::forward(const PassCtx& c, const T* x, int64_t N) {
  CN_CHECK_MSG(N <= max_n_, "Sequential: batch " << N << " exceeds reserve(" << max_n_ << ")");
  input_ = x;
  const T* in = x;
  for (size_t i = 0; i < layers_.size(); ++i) {
    layers_[i]->forward(c, in, acts_[i].data(), N);
    in = acts_[i].data();
  }
  return in;
}

template <class T>
void Sequential<T>::backward(const PassCtx& c, const T* dz, int64_t N) {
  const size_t L = layers_.size();
  device_copy(device_, dacts_[L - 1].data(), device_, dz, static_cast<size_t>(N * n_outputs_) * sizeof(T));
  for (size_t i = L; i-- > 0;) {
    T* dx = i == 0 ? nullptr : dacts_[i - 1].data();
    layers_[i]->backward(c, dacts_[i].data(), dx, N);
  }
}

template class Sequential<float>;
template class Sequential<double>;

}  // namespace cn
