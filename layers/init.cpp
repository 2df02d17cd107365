#include "layers/init.h"

#include <cmath>

#include "core/error.h"
#include "core/philox.h"

namespace cn {

Init parse_init(const std::string& name) { return parse_enum(kInits, name, "init"); }

double init_variance(Init kind, int64_t fan_in, int64_t fan_out, double gain) {
  const double I = static_cast<double>(fan_in), O = static_cast<double>(fan_out);
  switch (kind) {
    case Init::zeros:
    case Init::constant:
      return 0.0;
    case Init::plain_uniform:
      return 1.0 / (3.0 * I);
    case Init::xavier_uniform:
    case Init::xavier_normal:
      return 2.0 / (I + O);
    case Init::he_uniform:
    case Init::he_normal:
      return gain * gain / I;
    case Init::lecun_uniform:
    case Init::lecun_normal:
      return 1.0 / I;
  }
  return 0.0;
}

void init_fill(Init kind, double constant, int64_t fan_in, int64_t fan_out, double gain, uint64_t seed, uint32_t layer,
               uint64_t draw, double* out, int64_t n) {
  PhiloxDraw rng(seed, RngStream::init, layer, draw);
  const double var = init_variance(kind, fan_in, fan_out, gain);
  switch (kind) {
    case Init::zeros:
    case Init::constant:
      for (int64_t i = 0; i < n; ++i) out[i] = kind == Init::zeros ? 0.0 : constant;
      return;
    case Init::plain_uniform:
    case Init::xavier_uniform:
    case Init::he_uniform:
    case Init::lecun_uniform: {
      const double bound = std::sqrt(3.0 * var);  // U[-a, a] has variance a²/3
      for (int64_t i = 0; i < n; ++i) out[i] = (2.0 * rng.uniform() - 1.0) * bound;
      return;
    }
    case Init::xavier_normal:
    case Init::he_normal:
    case Init::lecun_normal: {
      const double sd = std::sqrt(var);
      for (int64_t i = 0; i < n; ++i) out[i] = rng.normal() * sd;
      return;
    }
  }
}

}  // namespace cn
