// The flat parameter layout: where each parameter tensor of a model lives in the one
// contiguous buffer that parameters, gradients and optimiser states share (docs/design.md).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cn {

// One parameter tensor inside the flat buffer (same offsets for params, grads, states).
struct ParamSegment {
  std::string name;      // "0.weight", "0.bias", "1.weight" (nn.Sequential state_dict name)
  int64_t layer = 0;     // the layer's index in the stack
  int64_t offset = 0;    // first element in the flat buffer
  int64_t rows = 0;      // weight: out features (output units); vector: its length
  int64_t cols = 1;      // weight: in features; vector: 1
  bool is_bias = false;  // biases and BatchNorm shift
  int64_t size() const { return rows * cols; }
};

struct ParamLayout {
  std::vector<ParamSegment> segments;
  int64_t total = 0;
};

}  // namespace cn
