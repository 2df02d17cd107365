// A model's layer stack as the fused MLP kernels see it (kernels/cuda/fused_mlp.h; docs/gpu.md
// "Fused MLP"): its shapes, for the eligibility rule, and its plan, pointers into the model's
// flat buffers and per-layer caches. The engine, the benchmark and the tests build it here.
#pragma once
#include <vector>

#include "core/error.h"
#include "kernels/cuda/fused_mlp.h"
#include "layers/model.h"

namespace cn {

template <class T>
std::vector<FusedMlpLayerShape> fused_mlp_shapes(const Sequential<T>& model) {
  std::vector<FusedMlpLayerShape> shapes;
  for (size_t i = 0; i < model.size(); ++i)
    shapes.push_back({model.layer(i).kind(), model.layer(i).in_features(), model.layer(i).out_features()});
  return shapes;
}

// Fixed-size: building the plan never allocates (it is built inside the training step).
template <class T>
cuda::FusedMlp<T> fused_mlp_of(Sequential<T>& model) {
  const int count = static_cast<int>(model.size());
  CN_CHECK_MSG(count <= kFusedMlpMaxLayers, "fused MLP: " << count << " layers");
  cuda::FusedMlpLayerView<T> views[kFusedMlpMaxLayers];
  for (int i = 0; i < count; ++i) {
    const size_t li = static_cast<size_t>(i);
    Layer<T>& l = model.layer(li);
    cuda::FusedMlpLayerView<T>& v = views[i];
    v.kind = l.kind();
    v.in = l.in_features();
    v.out = l.out_features();
    if (const ActParams* a = l.activation()) v.act = *a;
    v.params = model.params().data() + model.layer_offset(li);
    v.grads = model.grads().data() + model.layer_offset(li);
    // The model owns these buffers; the fused kernels fill them as the layers' passes would.
    v.output = const_cast<T*>(model.layer_output(li));
    v.output_grad = const_cast<T*>(model.output_grad(li));
  }
  return cuda::fused_mlp_plan(views, count);
}

}  // namespace cn
