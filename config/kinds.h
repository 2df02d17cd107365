// The kinds the config holds, each enum with its name table (config/enum_table.h). The
// names are the config's values, and the TOML reader, the writer, the reference in
// docs/config.md and every message take them from these tables.
#pragma once
#include <cstdint>

#include "config/enum_table.h"

namespace cn {

// optim.name
enum class OptimKind { sgd, momentum, nesterov, adagrad, rmsprop, adam, adamw, nadam, amsgrad };
inline constexpr EnumName<OptimKind> kOptimKinds[] = {
    {OptimKind::sgd, "sgd"},         {OptimKind::momentum, "momentum"}, {OptimKind::nesterov, "nesterov"},
    {OptimKind::adagrad, "adagrad"}, {OptimKind::rmsprop, "rmsprop"},   {OptimKind::adam, "adam"},
    {OptimKind::adamw, "adamw"},     {OptimKind::nadam, "nadam"},       {OptimKind::amsgrad, "amsgrad"}};

// clip.mode
enum class ClipMode : int { none, norm, layer_norm, value, agc, agc_unit };
inline constexpr EnumName<ClipMode> kClipModes[] = {
    {ClipMode::none, "none"},   {ClipMode::norm, "norm"}, {ClipMode::layer_norm, "layer_norm"},
    {ClipMode::value, "value"}, {ClipMode::agc, "agc"},   {ClipMode::agc_unit, "agc_unit"}};

// schedule.kind
enum class ScheduleKind { constant, step, exponential, cosine, cosine_restarts, cyclic };
inline constexpr EnumName<ScheduleKind> kScheduleKinds[] = {{ScheduleKind::constant, "constant"},
                                                            {ScheduleKind::step, "step"},
                                                            {ScheduleKind::exponential, "exponential"},
                                                            {ScheduleKind::cosine, "cosine"},
                                                            {ScheduleKind::cosine_restarts, "cosine_restarts"},
                                                            {ScheduleKind::cyclic, "cyclic"}};

// loss.kind
enum class LossKind { cross_entropy, mse, bce_logits };
inline constexpr EnumName<LossKind> kLossKinds[] = {
    {LossKind::cross_entropy, "cross_entropy"}, {LossKind::mse, "mse"}, {LossKind::bce_logits, "bce_logits"}};

// model.init, model.bias_init and a Linear layer's init/bias_init
enum class Init {
  zeros,
  constant,
  plain_uniform,
  xavier_uniform,
  xavier_normal,
  he_uniform,
  he_normal,
  lecun_uniform,
  lecun_normal
};
inline constexpr EnumName<Init> kInits[] = {{Init::zeros, "zeros"},
                                            {Init::constant, "constant"},
                                            {Init::plain_uniform, "plain_uniform"},
                                            {Init::xavier_uniform, "xavier_uniform"},
                                            {Init::xavier_normal, "xavier_normal"},
                                            {Init::he_uniform, "he_uniform"},
                                            {Init::he_normal, "he_normal"},
                                            {Init::lecun_uniform, "lecun_uniform"},
                                            {Init::lecun_normal, "lecun_normal"}};

// train.device: `automatic` is "auto" (cuda when a GPU is visible, else cpu)
enum class DeviceChoice { automatic, cpu, cuda };
inline constexpr EnumName<DeviceChoice> kDeviceChoices[] = {
    {DeviceChoice::automatic, "auto"}, {DeviceChoice::cpu, "cpu"}, {DeviceChoice::cuda, "cuda"}};

// train.dtype, diagnostics.dtype
enum class DType { float32, float64 };
inline constexpr EnumName<DType> kDTypes[] = {{DType::float32, "float32"}, {DType::float64, "float64"}};

// train.on_nonfinite
enum class OnNonfinite { stop, continue_run };
inline constexpr EnumName<OnNonfinite> kOnNonfinite[] = {{OnNonfinite::stop, "stop"},
                                                         {OnNonfinite::continue_run, "continue"}};

// train.fused_mlp: the CUDA training step's fused MLP kernels (docs/gpu.md "Fused MLP");
// `automatic` is "auto" (fused when the model is eligible)
enum class FusedMlpMode { automatic, on, off };
inline constexpr EnumName<FusedMlpMode> kFusedMlpModes[] = {
    {FusedMlpMode::automatic, "auto"}, {FusedMlpMode::on, "on"}, {FusedMlpMode::off, "off"}};

// train.early_stopping_metric: the eval.jsonl column (of the val split) early stopping watches
enum class StopMetric { val_loss, val_accuracy, val_f1, val_auc, val_r2, val_mae, val_rmse };
inline constexpr EnumName<StopMetric> kStopMetrics[] = {
    {StopMetric::val_loss, "val_loss"}, {StopMetric::val_accuracy, "val_accuracy"},
    {StopMetric::val_f1, "val_f1"},     {StopMetric::val_auc, "val_auc"},
    {StopMetric::val_r2, "val_r2"},     {StopMetric::val_mae, "val_mae"},
    {StopMetric::val_rmse, "val_rmse"}};

// diagnostics.mode: train = batch statistics and a Dropout mask; eval = running statistics
enum class DiagMode { train, eval };
inline constexpr EnumName<DiagMode> kDiagModes[] = {{DiagMode::train, "train"}, {DiagMode::eval, "eval"}};

// diagnostics.kinds: the Hessians a curvature checkpoint computes, also the `kind` of a
// draw from the curvature stream (the values are part of the Philox draw id: fixed).
enum class CurvatureKind : uint32_t { loss = 0, local = 1, ggn = 2, kfac = 3, diag = 4, fisher_diag = 5, full_top = 6 };
inline constexpr EnumName<CurvatureKind> kCurvatureKinds[] = {
    {CurvatureKind::loss, "loss"},        {CurvatureKind::local, "local"}, {CurvatureKind::ggn, "ggn"},
    {CurvatureKind::kfac, "kfac"},        {CurvatureKind::diag, "diag"},   {CurvatureKind::fisher_diag, "fisher_diag"},
    {CurvatureKind::full_top, "full_top"}};

// The alarm rules of the doctor ([alarms] holds their thresholds; docs/doctor.md defines them).
enum class AlarmRule {
  grad_explosion,
  grad_vanishing,
  nonfinite,
  loss_spike,
  frozen_layer,
  dead_units,
  saturation,
  update_ratio,
  weight_norm,
  outlier,
  ill_conditioned,
  spectrum_at_zero,
  saddle,
  sharpness_edge,
  vanishing_by_depth,
  exploding_by_depth,
  loss_plateau,
  symmetric_units,
  signal_collapse,
};
inline constexpr int kAlarmRuleCount = 19;
// The rule names of alarms.jsonl and docs/doctor.md, in the order above.
inline constexpr EnumName<AlarmRule> kAlarmRules[kAlarmRuleCount] = {
    {AlarmRule::grad_explosion, "grad_explosion"},
    {AlarmRule::grad_vanishing, "grad_vanishing"},
    {AlarmRule::nonfinite, "nonfinite"},
    {AlarmRule::loss_spike, "loss_spike"},
    {AlarmRule::frozen_layer, "frozen_layer"},
    {AlarmRule::dead_units, "dead_units"},
    {AlarmRule::saturation, "saturation"},
    {AlarmRule::update_ratio, "update_ratio"},
    {AlarmRule::weight_norm, "weight_norm"},
    {AlarmRule::outlier, "outlier"},
    {AlarmRule::ill_conditioned, "ill_conditioned"},
    {AlarmRule::spectrum_at_zero, "spectrum_at_zero"},
    {AlarmRule::saddle, "saddle"},
    {AlarmRule::sharpness_edge, "sharpness_edge"},
    {AlarmRule::vanishing_by_depth, "vanishing_by_depth"},
    {AlarmRule::exploding_by_depth, "exploding_by_depth"},
    {AlarmRule::loss_plateau, "loss_plateau"},
    {AlarmRule::symmetric_units, "symmetric_units"},
    {AlarmRule::signal_collapse, "signal_collapse"}};

// What to try when a rule fires: the `advice` of every alarms.jsonl row, in the order above
// (docs/doctor.md lists them with the rules).
struct AlarmAdvice {
  AlarmRule rule;
  const char* text;
};
inline constexpr AlarmAdvice kAlarmAdvice[kAlarmRuleCount] = {
    {AlarmRule::grad_explosion,
     "lower the learning rate, clip the gradient (clip.mode = \"norm\") or reduce the initialisation scale"},
    {AlarmRule::grad_vanishing,
     "check the initialisation (he_* for ReLU, xavier_* for tanh/sigmoid), the activation and the learning rate"},
    {AlarmRule::nonfinite,
     "lower the learning rate or clip the gradient; the row names the first tensor that held the value"},
    {AlarmRule::loss_spike,
     "lower the learning rate or add warmup (schedule.warmup_steps); check the batches near "
     "this step"},
    {AlarmRule::frozen_layer,
     "check the layer's lr_scale and weight decay ([[optim.per_layer]]) and whether a gradient reaches it"},
    {AlarmRule::dead_units,
     "use zero or small positive biases with he_* initialisation, a lower learning rate, or leaky_relu"},
    {AlarmRule::saturation,
     "scale the weights down (xavier_* or lecun_* initialisation), standardise the inputs, or add BatchNorm"},
    {AlarmRule::update_ratio, "lower the learning rate (or this layer's lr_scale)"},
    {AlarmRule::weight_norm, "add weight decay or lower the learning rate"},
    {AlarmRule::outlier,
     "look at this layer's inputs and gradient; per-layer lr_scale or gradient clipping (clip.mode "
     "= \"layer_norm\") tames one layer"},
    {AlarmRule::ill_conditioned, "a preconditioned optimiser (adam, rmsprop) or BatchNorm; check for redundant inputs"},
    {AlarmRule::spectrum_at_zero, "many flat directions: check for dead or saturated units and redundant parameters"},
    {AlarmRule::saddle, "momentum, an adaptive optimiser or gradient noise (optim.grad_noise_eta) leaves a saddle"},
    {AlarmRule::sharpness_edge,
     "lower the learning rate below the optimiser's stability limit (2/lambda_max for sgd) or add warmup"},
    {AlarmRule::vanishing_by_depth,
     "use relu/gelu with he_* initialisation instead of sigmoid/tanh in a deep stack, "
     "fewer layers, or BatchNorm"},
    {AlarmRule::exploding_by_depth,
     "reduce the initialisation scale (xavier_* or lecun_*), clip per layer "
     "(clip.mode = \"layer_norm\"), or add BatchNorm"},
    {AlarmRule::loss_plateau,
     "the model does not learn: check that the learning rate is > 0 and large enough, the "
     "labels, and the initialisation"},
    {AlarmRule::symmetric_units,
     "initialise the weights randomly (he_*, xavier_*, lecun_*): identical units get "
     "identical gradients and stay identical"},
    {AlarmRule::signal_collapse,
     "use a variance-preserving initialiser: xavier_* or lecun_* for tanh/sigmoid, he_* for ReLU"}};

inline const char* alarm_rule_name(AlarmRule rule) { return enum_name(kAlarmRules, rule); }
inline const char* alarm_rule_advice(AlarmRule rule) {
  for (const AlarmAdvice& a : kAlarmAdvice)
    if (a.rule == rule) return a.text;
  return "";
}
// Every rule name, in the order above.
inline const std::vector<std::string>& alarm_rule_names() {
  static const std::vector<std::string> names = enum_names(kAlarmRules);
  return names;
}
// ill_conditioned, spectrum_at_zero, saddle and sharpness_edge: the rules fed by curvature rows.
inline bool is_curvature_rule(AlarmRule rule) {
  return rule == AlarmRule::ill_conditioned || rule == AlarmRule::spectrum_at_zero || rule == AlarmRule::saddle ||
         rule == AlarmRule::sharpness_edge;
}
// False for a name that is no rule.
inline bool is_curvature_rule(const std::string& name) {
  const auto rule = find_enum(kAlarmRules, name);
  return rule && is_curvature_rule(*rule);
}

// growth.init: how a new unit's incoming weights start (docs/capacity.md, "Growth")
enum class GrowthInit { random_subsample, highest_loss, input_subset, random_restart };
inline constexpr EnumName<GrowthInit> kGrowthInits[] = {{GrowthInit::random_subsample, "random_subsample"},
                                                        {GrowthInit::highest_loss, "highest_loss"},
                                                        {GrowthInit::input_subset, "input_subset"},
                                                        {GrowthInit::random_restart, "random_restart"}};

// growth.select: which layer grows at a plateau (docs/capacity.md, "Growth")
enum class GrowthSelect { round_robin, rank_ratio };
inline constexpr EnumName<GrowthSelect> kGrowthSelects[] = {{GrowthSelect::round_robin, "round_robin"},
                                                            {GrowthSelect::rank_ratio, "rank_ratio"}};

// A per-layer verdict of `curvnet verdict` (docs/capacity.md, "Verdicts")
enum class VerdictKind {
  healthy,
  too_few,
  too_many,
  redundant,
  exploding,
  frozen,
  ill_conditioned,
  saturated,
  fix_init
};
inline constexpr EnumName<VerdictKind> kVerdictKinds[] = {{VerdictKind::healthy, "healthy"},
                                                          {VerdictKind::too_few, "too_few"},
                                                          {VerdictKind::too_many, "too_many"},
                                                          {VerdictKind::redundant, "redundant"},
                                                          {VerdictKind::exploding, "exploding"},
                                                          {VerdictKind::frozen, "frozen"},
                                                          {VerdictKind::ill_conditioned, "ill_conditioned"},
                                                          {VerdictKind::saturated, "saturated"},
                                                          {VerdictKind::fix_init, "fix_init"}};

}  // namespace cn
