// Weight initialisers (docs/spec.md §1). Variances: plain_uniform 1/(3 I); xavier 2/(I+O);
// he gain²/I with gain √2 (LeakyReLU(a): √(2/(1+a²))); lecun 1/I.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "config/kinds.h"

namespace cn {

Init parse_init(const std::string& name);  // InputError on an unknown name

// The variance an initialiser gives a weight of a layer with fan_in I and fan_out O
// (0 for zeros/constant). `gain` is He's gain.
double init_variance(Init kind, int64_t fan_in, int64_t fan_out, double gain);

// Fills `out` (n values) for layer `layer`; `draw` selects an independent sequence
// (0 = weight, 1 = bias). Deterministic in (seed, layer, draw).
void init_fill(Init kind, double constant, int64_t fan_in, int64_t fan_out, double gain, uint64_t seed, uint32_t layer,
               uint64_t draw, double* out, int64_t n);

}  // namespace cn
