// Re-layout of a model by unit (docs/capacity.md §re-layout): a narrower (or wider) network
// is built with a new flat layout and every value that belongs to a unit is carried
// across — parameters, the optimiser's state, BatchNorm's running statistics and the
// weight mask. Nothing patches a live buffer in place (docs/design.md §3).
//
// A "unit group" is the set of features one Linear layer produces: its output units, the
// features of the BatchNorm/activation/Dropout layers that follow it, and the input
// columns of the next Linear. A UnitMap gives, per group (keyed by the index of the Linear
// layer that produces it), the old unit each new unit comes from; -1 marks a new unit
// (parameters, optimiser state and mask 0, running mean 0 and variance 1, BatchNorm's
// weight 1) that the caller initialises. Groups not in the map keep their units. Removal
// lists the kept units; insertion appends -1 entries; both go through plan_relayout.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "config/config.h"
#include "train/engine.h"

namespace cn {

using UnitMap = std::map<int64_t, std::vector<int64_t>>;

// A model's state on the host, as float64, with what a checkpoint holds beside it.
struct HostModel {
  std::vector<LayerSpec> specs;
  int64_t n_inputs = 0;
  std::vector<double> params;                                      // the flat buffer
  std::map<std::string, std::vector<double>> buffers;              // "i.running_mean", "i.running_var", ...
  std::vector<std::pair<std::string, std::vector<double>>> optim;  // the optimiser's named state buffers
  std::vector<double> mask;                                        // empty, or 0/1 per parameter
};

struct Relayout {
  std::vector<LayerSpec> specs;  // the new stack (Linear outs changed)
  int64_t old_total = 0, new_total = 0;
  std::vector<int64_t> source;  // per element of the new flat buffer: its old index, -1 = new
  std::vector<int64_t>
      fill;  // per element of the new flat buffer: 1 where a new element starts at 1 (BatchNorm's weight)
  // Per layer with per-feature state: the old feature of each new feature (-1 = new).
  std::map<int64_t, std::vector<int64_t>> features;
};

// InputError when a group's key is not a hidden Linear layer (the last Linear's outputs are
// the task's), a width would be 0, or an old index is out of range or repeated.
Relayout plan_relayout(const std::vector<LayerSpec>& specs, int64_t n_inputs, const UnitMap& map);

// The model re-laid out: parameters, optimiser buffers (those layout-total long; scalars
// copied), running statistics (num_batches_tracked copied) and the mask gathered by plan.
HostModel relayout(const HostModel& m, const UnitMap& map);

// The Linear layers' unit groups: for each Linear layer, the index of the Linear that
// produces its input (-1: the network's input).
std::vector<int64_t> input_group(const std::vector<LayerSpec>& specs);

// The config of the re-laid-out model: model.hidden (shorthand) or model.layers[i].out.
Config config_with_specs(const Config& config, const std::vector<LayerSpec>& specs);

// Reads / writes an engine's model, optimiser state and mask as a HostModel.
template <class T>
HostModel read_host_model(Engine<T>& e);
// The engine's model must have m.specs' layout.
template <class T>
void write_host_model(Engine<T>& e, const HostModel& m);

}  // namespace cn
