// The curvature benchmarks' problem: a 32-64-64-64-10 tanh MLP (Xavier-normal weights),
// a batch of 512 standard-normal inputs with cycling labels, kinds = ["loss"] on every
// layer with parameters (the four Linear blocks: 2112, 4160, 4160 and 650 parameters, all
// under dense_max_params, so every spectrum is dense).
#pragma once
#include <cstdint>
#include <vector>

#include "core/philox.h"
#include "diagnostics/curvature_checkpoint.h"
#include "layers/model.h"

namespace cn::bench {

struct CurvatureProblem {
  static constexpr int64_t kInputs = 32, kClasses = 10, kBatch = 512;
  std::vector<LayerSpec> specs;
  std::vector<double> x, y;
  ModelSnapshot snap;
  DiagnosticsConfig dc;

  explicit CurvatureProblem(int64_t probes) {
    ModelConfig mc;
    mc.hidden = {64, 64, 64};
    mc.activation = LayerKind::tanh;
    mc.init = cn::Init::xavier_normal;
    specs = resolve_layers(mc, kClasses);
    Sequential<double> net(specs, kInputs);
    net.initialize(mc, 0);
    x.resize(kBatch * kInputs);
    y.resize(kBatch);
    PhiloxDraw d(3, RngStream::data, 0, 0);
    for (auto& v : x) v = d.normal();
    for (int64_t n = 0; n < kBatch; ++n) y[n] = static_cast<double>(n % kClasses);
    dc.kinds = {cn::CurvatureKind::loss};
    dc.batch_size = kBatch;
    dc.probes = probes;  // Hutchinson probes of the trace self-check
    snap.params.assign(net.params().data(), net.params().data() + net.layout().total);
  }

  CurvatureCheckpoint checkpoint(Device device = Device::cpu) const {
    return CurvatureCheckpoint(dc, specs, kInputs, LossKind::cross_entropy, x, y, kBatch, 0, device);
  }
};

inline int64_t eigenvalue_count(const CurvatureOutput& out) {
  int64_t n = 0;
  for (const auto& [name, v] : out.spectra) n += static_cast<int64_t>(v.size());
  return n;
}

}  // namespace cn::bench
