// The kinds of layer and their names, the one table that configs, output files ("type"
// columns) and error messages take them from. Every kind that is not linear, batchnorm or
// dropout is an elementwise activation: it maps to the kernels' Act of the same name
// (kActNames in kernels/activation.h), never by position.
//
// A new activation: its value and name here, its Act value, name and f, f', f'' in
// kernels/activation.h. Configs, the docs' generated tables, the layer stack and the
// curvature passes pick it up from the two tables.
#pragma once
#include <cstddef>
#include <string>

#include "config/enum_table.h"
#include "core/error.h"

namespace cn {

enum class LayerKind { linear, relu, leaky_relu, elu, sigmoid, tanh, identity, gelu, softplus, batchnorm, dropout };

using LayerKindName = EnumName<LayerKind>;

// In the order configs and the docs list them.
inline constexpr LayerKindName kLayerKinds[] = {
    {LayerKind::linear, "linear"},         {LayerKind::relu, "relu"},
    {LayerKind::leaky_relu, "leaky_relu"}, {LayerKind::elu, "elu"},
    {LayerKind::sigmoid, "sigmoid"},       {LayerKind::tanh, "tanh"},
    {LayerKind::identity, "identity"},     {LayerKind::gelu, "gelu"},
    {LayerKind::softplus, "softplus"},     {LayerKind::batchnorm, "batchnorm"},
    {LayerKind::dropout, "dropout"},
};

constexpr bool is_activation(LayerKind k) {
  return k != LayerKind::linear && k != LayerKind::batchnorm && k != LayerKind::dropout;
}

inline const char* layer_kind_name(LayerKind k) {
  const char* name = enum_name(kLayerKinds, k);
  if (!*name) throw Error("layer kind " + std::to_string(static_cast<int>(k)) + " has no name in kLayerKinds");
  return name;
}

// The kind named `name`; false when none is.
inline bool find_layer_kind(const std::string& name, LayerKind* kind) {
  const auto k = find_enum(kLayerKinds, name);
  if (k) *kind = *k;
  return k.has_value();
}

}  // namespace cn
