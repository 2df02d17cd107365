// A study (docs/study.md §1): a base config, a grid of config values and sizes, and what each
// grid point's run is given (curvature cadence, threads, natural loss). STUDY.toml is read
// and checked here; `curvnet sweep` (apps/cmd_sweep.h) runs the points.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"

namespace cn::study {

// A network size by parameter budget: the widest `depth`-layer MLP of equal hidden widths
// whose parameter count stays within `params` for the data set's inputs and outputs.
struct SizeSpec {
  std::string name;
  int64_t params = 0;
  int64_t depth = 1;
};
// small: 1,000 parameters, one hidden layer; medium: 10,000, two; huge: 100,000, three.
std::vector<SizeSpec> default_sizes();

// One grid dimension: a dotted config key (or "size") and its values as TOML text
// (for --set) and as JSON (for index.jsonl's `point`).
struct GridAxis {
  std::string key;
  std::vector<std::string> toml_values;
  std::vector<nlohmann::json> json_values;
};

struct Study {
  std::string path;       // the study file
  std::string base_toml;  // the base config's TOML text
  std::string base_origin;
  bool base_sets_loss = false;        // the base config (or the grid) chooses loss.kind
  bool base_sets_eval_every = false;  // ... or train.eval_every (else: the curvature cadence)
  std::vector<GridAxis> axes;         // in index order: the last one varies fastest
  int64_t checkpoints = 50;           // curvature checkpoints per run; 0 = the base's diagnostics.every
  int64_t threads = 1;                // train.threads of every run (results do not depend on --jobs)
  std::vector<SizeSpec> sizes;        // the names `size` may take
  std::string resolved;               // DIR/study.toml: self-contained (the base inlined)
};

// Reads and checks STUDY.toml. InputError (exit 2) naming the file, line and key.
Study load_study(const std::string& path);

int64_t grid_size(const Study& s);
// Grid key -> value of point `index` (mixed radix over the axes, the last axis fastest).
nlohmann::json grid_point(const Study& s, int64_t index);

// What a point's run trains: its config (TOML text and parsed) and what the study derived.
struct ResolvedPoint {
  Config config;
  std::string toml;        // the resolved config (to_toml)
  nlohmann::json derived;  // hidden, loss, diagnostics_every, total_steps, params
};
// Data shapes per data config, loaded once per sweep.
struct DataShape {
  int64_t n_train = 0, n_in = 0, n_out = 0;
  bool classification = true;
};
using ShapeCache = std::map<std::string, DataShape>;
// InputError when the point's config is invalid (a bad value in the grid) or its data
// cannot be loaded: the point fails, the study goes on.
ResolvedPoint resolve_point(const Study& s, int64_t index, ShapeCache& cache);

// Parameters of an MLP n_in -> depth x width -> n_out (weights and biases).
int64_t mlp_params(int64_t n_in, int64_t width, int64_t depth, int64_t n_out);
// The largest width (at least 1) whose MLP stays within `params`.
int64_t width_for_budget(int64_t params, int64_t depth, int64_t n_in, int64_t n_out);
// The smallest diagnostics.every that gives at most `checkpoints` curvature checkpoints
// over `total_steps` (step 0, every multiple, and the last step).
int64_t curvature_every(int64_t total_steps, int64_t checkpoints);
int64_t curvature_count(int64_t total_steps, int64_t every);

}  // namespace cn::study
