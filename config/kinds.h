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
inline constexpr EnumName<ClipMode> kClipModes[] = {{ClipMode::none, "none"},   {ClipMode::norm, "norm"},
                                                    {ClipMode::layer_norm, "layer_norm"}, {ClipMode::value, "value"},
                                                    {ClipMode::agc, "agc"},     {ClipMode::agc_unit, "agc_unit"}};

// schedule.kind
enum class ScheduleKind { constant, step, exponential, cosine, cosine_restarts, cyclic };
inline constexpr EnumName<ScheduleKind> kScheduleKinds[] = {
    {ScheduleKind::constant, "constant"}, {ScheduleKind::step, "step"},
    {ScheduleKind::exponential, "exponential"}, {ScheduleKind::cosine, "cosine"},
    {ScheduleKind::cosine_restarts, "cosine_restarts"}, {ScheduleKind::cyclic, "cyclic"}};

// loss.kind
enum class LossKind { cross_entropy, mse, bce_logits };
inline constexpr EnumName<LossKind> kLossKinds[] = {
    {LossKind::cross_entropy, "cross_entropy"}, {LossKind::mse, "mse"}, {LossKind::bce_logits, "bce_logits"}};

// model.init, model.bias_init and a Linear layer's init/bias_init
enum class Init { zeros, constant, plain_uniform, xavier_uniform, xavier_normal, he_uniform, he_normal, lecun_uniform,
                  lecun_normal };
inline constexpr EnumName<Init> kInits[] = {
    {Init::zeros, "zeros"},           {Init::constant, "constant"},         {Init::plain_uniform, "plain_uniform"},
    {Init::xavier_uniform, "xavier_uniform"}, {Init::xavier_normal, "xavier_normal"}, {Init::he_uniform, "he_uniform"},
    {Init::he_normal, "he_normal"},   {Init::lecun_uniform, "lecun_uniform"}, {Init::lecun_normal, "lecun_normal"}};

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

// train.early_stopping_metric: the eval.jsonl column (of the val split) early stopping watches
enum class StopMetric { val_loss, val_accuracy, val_f1, val_auc, val_r2, val_mae, val_rmse };
inline constexpr EnumName<StopMetric> kStopMetrics[] = {
    {StopMetric::val_loss, "val_loss"}, {StopMetric::val_accuracy, "val_accuracy"}, {StopMetric::val_f1, "val_f1"},
    {StopMetric::val_auc, "val_auc"},   {StopMetric::val_r2, "val_r2"},             {StopMetric::val_mae, "val_mae"},
    {StopMetric::val_rmse, "val_rmse"}};

// diagnostics.mode: train = batch statistics and a Dropout mask; eval = running statistics
enum class DiagMode { train, eval };
inline constexpr EnumName<DiagMode> kDiagModes[] = {{DiagMode::train, "train"}, {DiagMode::eval, "eval"}};

// diagnostics.kinds: the Hessians a curvature checkpoint computes, also the `kind` of a
// draw from the curvature stream (the values are part of the Philox draw id: fixed).
enum class CurvatureKind : uint32_t { loss = 0, local = 1, ggn = 2, kfac = 3, diag = 4, fisher_diag = 5, full_top = 6 };
inline constexpr EnumName<CurvatureKind> kCurvatureKinds[] = {
    {CurvatureKind::loss, "loss"}, {CurvatureKind::local, "local"}, {CurvatureKind::ggn, "ggn"},
    {CurvatureKind::kfac, "kfac"}, {CurvatureKind::diag, "diag"},   {CurvatureKind::fisher_diag, "fisher_diag"},
    {CurvatureKind::full_top, "full_top"}};

}  // namespace cn
