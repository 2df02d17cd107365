// A run's spectra in one file (docs/design.md §5, "Run directory"): RUN/spectra_series.safetensors
// holds every checkpoint's tensors of spectra/step_N.safetensors as float32, named
// "step_<N>/<tensor name>". `curvnet sweep` packs each finished run this way; readers take
// either form.
#pragma once
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "io/safetensors.h"

namespace cn {

inline constexpr const char* kSpectraSeriesFile = "spectra_series.safetensors";

// (step, its tensors) in ascending step order, from the series file and the spectra/
// directory of `run_dir` together (a step in both: the directory's tensors win).
std::vector<std::pair<int64_t, SafeTensorMap>> read_run_spectra(const std::string& run_dir);

// Packs spectra/step_N.safetensors (and an earlier series file) into the series file as
// float32, then removes spectra/. Idempotent: a pack cut short by a kill is completed by the
// next. Returns the number of steps in the series.
int64_t pack_spectra_series(const std::string& run_dir);

// Removes every checkpoints/step_N but the first and the last complete ones (the
// initialisation and what --resume and eval read). Returns how many were removed.
int64_t prune_checkpoints(const std::string& run_dir);

}  // namespace cn
