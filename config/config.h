// The resolved run configuration (docs/design.md §5). Every key has its default here; parsing,
// validation (file/line/key in every error) and the TOML writer live in config.cpp.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "config/kinds.h"
#include "config/layer_kind.h"

namespace cn {

struct DataConfig {
  std::string dataset = "fashion-mnist";  // a name of `curvnet datasets` (docs/datasets.md)
  std::string path;                       // csv: the file
  std::string label_column;               // csv: name or 0-based index
  int64_t batch_size = 256;
  bool shuffle = true;
  double val_fraction = 0.1;
  double test_fraction = 0.2;
  bool standardize = true;
  int64_t n_samples = 2000;
  double noise = 0.1;
  int64_t teacher_hidden = 32;  // teacher: the generated teacher's hidden width
};

// One entry of [[model.layers]]: type = linear (out, init, bias_init) | an activation
// name | batchnorm | dropout (p).
struct LayerSpec {
  LayerKind type = LayerKind::linear;
  int64_t out = 0;                // linear
  std::optional<Init> init;       // linear; absent = model.init
  std::optional<Init> bias_init;  // linear; absent = model.bias_init
  double p = 0.0;                 // dropout: drop probability
  double slope = 0.01;            // leaky_relu
  double alpha = 1.0;             // elu
  double momentum = 0.1;          // batchnorm
  double eps = 1e-5;              // batchnorm
};

struct ModelConfig {
  std::vector<int64_t> hidden = {256, 128};
  LayerKind activation = LayerKind::relu;  // an activation kind (is_activation)
  double leaky_slope = 0.01;
  double elu_alpha = 1.0;
  bool batchnorm = false;
  double bn_momentum = 0.1;
  double dropout = 0.0;
  Init init = Init::he_normal;
  Init bias_init = Init::zeros;
  double init_constant = 0.0;     // for init/bias_init = "constant"
  double init_scale = 1.0;        // multiplies the random weight initialisers' standard deviation
  std::vector<LayerSpec> layers;  // non-empty: replaces the hidden/activation shorthand
};

struct LossConfig {
  LossKind kind = LossKind::cross_entropy;
};

struct PerLayerOptim {
  int64_t layer = 0;
  std::optional<double> weight_decay, l1;
  double lr_scale = 1.0;
};

struct OptimConfig {
  OptimKind name = OptimKind::adam;
  double lr = 1e-3;
  double momentum = 0.9;
  double beta1 = 0.9, beta2 = 0.999;  // the TOML key is betas = [b1, b2]
  double eps = 1e-8;
  double alpha = 0.99;
  double weight_decay = 0.0;
  double l1 = 0.0;
  double grad_noise_eta = 0.0;
  double grad_noise_gamma = 0.55;
  std::vector<PerLayerOptim> per_layer;
};

struct ScheduleConfig {
  ScheduleKind kind = ScheduleKind::constant;
  int64_t warmup_steps = 0;
  int64_t total_steps = 0;
  int64_t step_size = 1000;
  double gamma = 0.1;
  double min_lr = 0.0;
  double max_lr = 0.0;  // cyclic: upper bound (0 = 10 x optim.lr)
};

struct ClipConfig {
  ClipMode mode = ClipMode::none;
  double max_norm = 1.0;
  double value = 1.0;
  double agc_lambda = 0.01;
  double agc_eps = 1e-3;
};

struct TrainConfig {
  int64_t epochs = 2;
  int64_t steps = 0;
  uint64_t seed = 0;
  DeviceChoice device = DeviceChoice::automatic;
  DType dtype = DType::float32;
  std::optional<int64_t> eval_every;  // absent: one epoch (filled in when resolved)
  int64_t log_every = 10;
  StopMetric early_stopping_metric = StopMetric::val_loss;
  int64_t patience = 0;
  OnNonfinite on_nonfinite = OnNonfinite::stop;
  int64_t threads = 0;                         // 0 = all cores
  FusedMlpMode fused_mlp = FusedMlpMode::off;  // the CUDA step's fused MLP kernels (docs/gpu.md)
};

struct CheckpointConfig {
  std::optional<int64_t> every;  // absent: one epoch
};

struct DiagnosticsConfig {
  int64_t every = 0;
  std::vector<CurvatureKind> kinds = {CurvatureKind::loss, CurvatureKind::local};
  DiagMode mode = DiagMode::train;
  std::vector<int64_t> layers;
  int64_t batch_size = 512;
  int64_t dense_max_params = 8192;
  double budget = 0.0;
  DType dtype = DType::float64;
  int64_t lanczos_k = 20;
  int64_t probes = 10;
  double tau_rel = 0.0;  // near-zero tolerance τ = tau_rel · max|λ|; 0 = per method (docs/curvature.md §4)
};

struct AlarmsConfig {
  double grad_norm_high = 1e2;
  double grad_norm_low = 1e-2;
  double update_ratio_high = 0.1;
  double sigma = 3.0;
  // docs/doctor.md defines every rule; 0 switches a threshold rule off.
  double loss_spike_delta = 0.5;       // loss_spike: loss > (1 + delta) x running minimum
  int64_t loss_spike_window = 10;      // loss_spike: the running minimum's window (logged steps)
  double loss_spike_floor = 0.1;       // loss_spike: ... and loss - minimum > this (loss units)
  double plateau_delta = 0.05;         // loss_plateau: |loss - first loss| <= this x |first loss| ...
  int64_t plateau_steps = 10;          // ... for this many logged steps in a row
  double loss_high_ratio = 0.5;        // "loss still high": loss > this x the first logged loss
  double frozen_grad_low = 1e-4;       // frozen_layer: a layer's weight-gradient norm below this
  double frozen_update_low = 1e-4;     // frozen_layer: or its update ratio below this x the largest layer's
  double depth_ratio_low = 1e-2;       // vanishing_by_depth: Linear grad_l2 < this x the last Linear layer's
  double depth_ratio_high = 1e2;       // exploding_by_depth: Linear grad_l2 > this x the last Linear layer's
  double unit_spread_low = 1e-3;       // symmetric_units: a hidden Linear layer's unit_spread below this
  double collapse_factor = 0.5;        // signal_collapse: per-layer pre-activation variance ratio below this
  double dead_share_high = 0.5;        // dead_units: share of dead units above this
  int64_t dead_window = 5;             // dead_units: logged batches a unit must stay inactive
  double saturation_high = 0.5;        // saturation: share of saturated units above this
  double weight_norm_high = 10.0;      // weight_norm: RMS of a layer's weights above this
  int64_t outlier_window = 20;         // outlier: logged steps of a layer's own history
  double condition_high = 1e11;        // ill_conditioned: condition over the kept eigenvalues above this
  double near_zero_high = 0.5;         // spectrum_at_zero: share of eigenvalues near zero above this
  double saddle_symmetry = 0.5;        // saddle: spectrum symmetry at or above this ...
  double saddle_negative_share = 0.1;  // ... and negative-eigenvalue share at or above this
  double sharpness_fraction = 1.0;     // sharpness_edge: lambda_max >= this x the stability limit
};

// [growth]: widen hidden Linear layers during training when the validation loss
// plateaus (docs/capacity.md, "Growth").
struct GrowthConfig {
  bool enabled = false;
  int64_t units = 4;            // k: units added per growth event
  int64_t max_width = 64;       // a layer grows no wider
  std::vector<int64_t> layers;  // Linear layer indices that may grow; empty = every hidden Linear
  GrowthSelect select = GrowthSelect::round_robin;
  GrowthInit init = GrowthInit::random_subsample;
  int64_t patience = 3;      // evaluations without a relative improvement of min_delta
  double min_delta = 0.01;   // relative improvement of the validation loss that counts
  int64_t batch_size = 512;  // training samples the highest_loss and rank_ratio rules read
};

struct Config {
  std::string name = "run";  // the config file's stem
  std::string source = "";   // the file it came from ("" = built-in defaults)
  DataConfig data;
  ModelConfig model;
  LossConfig loss;
  OptimConfig optim;
  ScheduleConfig schedule;
  ClipConfig clip;
  TrainConfig train;
  CheckpointConfig checkpoint;
  DiagnosticsConfig diagnostics;
  AlarmsConfig alarms;
  GrowthConfig growth;
};

// Reads a TOML file, applies `--set section.key=value` overrides (a value is parsed as a
// TOML value; a bare word is a string), validates every key (unknown keys, wrong types,
// out-of-range values -> InputError naming file, line and key) and returns the config.
Config load_config(const std::string& path, const std::vector<std::string>& overrides = {});
// Same, from TOML text (`origin` names it in errors).
Config parse_config(const std::string& toml_text, const std::string& origin,
                    const std::vector<std::string>& overrides = {});
// The resolved config as TOML, every key present (re-parsing it gives the same Config).
std::string to_toml(const Config& config);
// Keys (as "section.key") whose values differ between a and b.
std::vector<std::string> config_differences(const Config& a, const Config& b);
// The config reference (Markdown tables: key, type, default, range, meaning), generated
// from the same schema the parser uses; docs/config.md embeds it (a test keeps them equal).
std::string config_reference_markdown();

}  // namespace cn
