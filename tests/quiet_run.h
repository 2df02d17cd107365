// Options for a training run inside a test: into `out`, with its printed lines swallowed.
#pragma once

#include <sstream>
#include <string>

#include "train/trainer.h"

namespace cn {

inline TrainOptions quiet(const std::string& out) {
  static std::ostringstream sink;
  TrainOptions o;
  o.out_dir = out;
  o.out = &sink;
  o.progress = 0;
  return o;
}

}  // namespace cn
