// Inverted dropout mask (p = drop probability): kept units are scaled by 1/(1-p). The
// uniform draw for element i comes from Philox keyed by (layer, step), so the CPU and
// CUDA backends produce the same mask for the same seed and counters.
#pragma once
#include <cstdint>

#include "core/hd.h"
#include "core/philox.h"

namespace cn {

template <class T>
CN_HD T dropout_mask_value(PhiloxKey key, uint64_t i, uint32_t layer, uint64_t step, double p) {
  return philox_uniform(key, i, layer, step) > p ? T(1.0 / (1.0 - p)) : T(0);
}

}  // namespace cn
