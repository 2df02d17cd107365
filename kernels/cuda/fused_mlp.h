// The fused MLP of narrow layers (docs/gpu.md "Fused MLP"): the training passes of a stack of
// Linear(+bias) layers, each followed by at most one elementwise activation, in three
// launches instead of two or three per layer:
//   fused_mlp_forward    one kernel: each thread block takes 16 batch rows through every
//                        layer, the activations kept in shared memory between layers, the
//                        first layer's input streamed in K-chunks (an input wider than 128:
//                        the first layer's GEMM before it, FusedMlp::first_layer_gemm)
//   fused_mlp_backward   one kernel for dL/d(every layer's output), row tiles as above, then
//                        one kernel for every dW and db (one 32×32 tile of a layer's
//                        [dW | db] per block, the batch summed in a fixed order)
// Plain FP32/FP64 FMA through shared memory, never TF32 (docs/design.md §2). The math of the
// activations is kernels/activation.h's act_f / act_d1, the same as act_forward/act_backward.
//
// What the passes write is what the layers' own passes write (layers/linear.cpp,
// layers/activation.cpp, Sequential::forward/backward), in the same buffers: every layer's
// output and the gradient at every layer's output (the doctor reads them), dW and db (=) at
// the layer's offset in the flat gradient buffer (core/param_layout.h).
//
// Plain C++ (no kernels): .cpp files and the CPU build may include it; the eligibility test
// compiles everywhere, the passes exist in the CUDA build only.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/layer_kind.h"
#include "core/error.h"
#include "kernels/activation.h"

namespace cn {

constexpr int64_t kFusedMlpMaxWidth = 128;  // every Linear output (hidden and final)
constexpr int kFusedMlpMaxLinear = 8;       // Linear layers in the stack
constexpr int kFusedMlpMaxLayers = 2 * kFusedMlpMaxLinear;

// One layer of a model as the eligibility test sees it.
struct FusedMlpLayerShape {
  LayerKind kind = LayerKind::linear;
  int64_t in = 0, out = 0;
};

// Why a layer stack cannot take the fused path; empty when it can. Eligible: Linear layers,
// each followed by at most one activation (any kind of kernels/activation.h), the first layer
// a Linear of any input width, every Linear's output at most kFusedMlpMaxWidth wide, at most
// kFusedMlpMaxLinear of them; no BatchNorm (couples the samples of a batch) or Dropout. Both
// float32 and float64.
inline std::string fused_mlp_ineligibility(const std::vector<FusedMlpLayerShape>& layers) {
  if (layers.empty()) return "the model has no layers";
  if (layers.front().kind != LayerKind::linear) return "the model does not start with a linear layer";
  int linear = 0;
  for (size_t i = 0; i < layers.size(); ++i) {
    const FusedMlpLayerShape& l = layers[i];
    const std::string at = "layer " + std::to_string(i) + " (" + layer_kind_name(l.kind) + ")";
    if (l.kind == LayerKind::batchnorm || l.kind == LayerKind::dropout)
      return at + ": only linear layers and activations are fused";
    if (l.kind == LayerKind::linear) {
      if (++linear > kFusedMlpMaxLinear) return "more than " + std::to_string(kFusedMlpMaxLinear) + " linear layers";
      if (l.out > kFusedMlpMaxWidth || l.out < 1)
        return at + ": " + std::to_string(l.out) + " outputs; the fused path takes 1 to " +
               std::to_string(kFusedMlpMaxWidth);
    } else if (layers[i - 1].kind != LayerKind::linear) {
      return at + ": two activations in a row";
    }
  }
  return "";
}

}  // namespace cn

namespace cn::cuda {

// One layer of a model as the fused passes see it (built by the caller from its layer stack).
template <class T>
struct FusedMlpLayerView {
  LayerKind kind = LayerKind::linear;
  int64_t in = 0, out = 0;
  ActParams act;             // activation layers
  T* params = nullptr;       // Linear: W (out × in, row-major) then b, at the layer's offset
  T* grads = nullptr;        // the same offsets in the flat gradient buffer
  T* output = nullptr;       // the layer's output buffer (N × out)
  T* output_grad = nullptr;  // dL/d(the layer's output) (N × out)
};

// A Linear and the activation after it (if any).
template <class T>
struct FusedMlpGroup {
  int in = 0, out = 0;
  const T* W = nullptr;
  const T* b = nullptr;
  T* dW = nullptr;
  T* db = nullptr;
  bool has_act = false;
  ActParams act;
  T* z = nullptr;          // Linear output (N × out)
  T* y = nullptr;          // activation output (N × out); null without one
  T* dz = nullptr;         // dL/dz
  T* dy = nullptr;         // dL/dy; null without an activation
  T* out_value = nullptr;  // y when there is an activation, else z: the next group's input
  T* out_grad = nullptr;   // dy when there is an activation, else dz
};

// The kernels' argument: fixed-size, passed by value, so building one never allocates and a
// recorded graph keeps its pointers.
template <class T>
struct FusedMlp {
  int groups = 0;
  // The first layer's z = x Wᵀ + b by the backend's GEMM (gemm_bias of kernels/ops.h) before
  // the forward kernel, which then starts at its activation; else streamed through the kernel.
  // fused_mlp_plan sets it for inputs wider than kFusedMlpMaxWidth (a long K loop on a few
  // thread blocks against a GEMM that spreads it over the GPU); either way gives the same results.
  bool first_layer_gemm = false;
  FusedMlpGroup<T> g[kFusedMlpMaxLinear];
};

// The groups of an eligible stack (fused_mlp_ineligibility empty); throws cn::Error otherwise.
template <class T>
FusedMlp<T> fused_mlp_plan(const FusedMlpLayerView<T>* layers, int count) {
  FusedMlp<T> net;
  CN_CHECK_MSG(count >= 1 && count <= kFusedMlpMaxLayers, "fused MLP: " << count << " layers");
  for (int i = 0; i < count; ++i) {
    const FusedMlpLayerView<T>& l = layers[i];
    if (l.kind == LayerKind::linear) {
      CN_CHECK_MSG(net.groups < kFusedMlpMaxLinear && l.out >= 1 && l.out <= kFusedMlpMaxWidth && l.in >= 1,
                   "fused MLP: layer " << i << " is not eligible");
      FusedMlpGroup<T>& g = net.g[net.groups++];
      g.in = static_cast<int>(l.in);
      g.out = static_cast<int>(l.out);
      g.W = l.params;
      g.b = l.params + l.out * l.in;
      g.dW = l.grads;
      g.db = l.grads + l.out * l.in;
      g.z = g.out_value = l.output;
      g.dz = g.out_grad = l.output_grad;
    } else {
      CN_CHECK_MSG(is_activation(l.kind) && net.groups > 0 && !net.g[net.groups - 1].has_act,
                   "fused MLP: layer " << i << " is not eligible");
      FusedMlpGroup<T>& g = net.g[net.groups - 1];
      g.has_act = true;
      g.act = l.act;
      g.y = g.out_value = l.output;
      g.dy = g.out_grad = l.output_grad;
    }
  }
  net.first_layer_gemm = net.g[0].in > kFusedMlpMaxWidth;
  return net;
}

// Training forward of N rows of x (N × g[0].in): every group's z and y. Asynchronous on the
// context's stream; no allocation, no host wait (graph-capturable).
template <class T>
void fused_mlp_forward(const FusedMlp<T>& net, const T* x, int64_t N);
// Backward from dz_out = dL/d(the last layer's output) (N × g[last].out), after
// fused_mlp_forward on the same x: every layer's output gradient (the last one a copy of
// dz_out), and dW, db of every Linear (=). The input gradient of the first layer is not formed.
template <class T>
void fused_mlp_backward(const FusedMlp<T>& net, const T* x, const T* dz_out, int64_t N);

}  // namespace cn::cuda
