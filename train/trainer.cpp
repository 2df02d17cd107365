#include "train/trainer.h"

#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "io/run_layout.h"
#include "train/checkpoint.h"
#include "train/engine.h"
#include "train/growth.h"
#include "train/run_dir.h"
#include "train/training_loop.h"

namespace cn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// Keys a resumed run may change (docs/design.md §5).
bool resumable_difference(const std::string& key) {
  return key == "train.steps" || key == "train.epochs" || key == "train.log_every" || key == "schedule.total_steps" ||
         key.rfind("diagnostics.", 0) == 0 || key == "name" || key == "source";
}

TrainSummary run_loop(const Config& config, const TrainOptions& o, const std::string& run_dir, bool resuming) {
  if (config.train.dtype == DType::float64) return TrainingLoop<double>(config, o, run_dir, resuming).run();
  return TrainingLoop<float>(config, o, run_dir, resuming).run();
}

}  // namespace

TrainSummary train(const Config& given, const TrainOptions& o) {
  Config config = given;
  std::string run_dir;
  bool resuming = !o.resume_dir.empty();
  RunLock lock;  // held until the run has ended
  if (resuming) {
    run_dir = o.resume_dir;
    const std::string saved_path = RunLayout(run_dir).config();
    if (!fs::exists(saved_path))
      throw InputError("--resume " + run_dir + ": no config.toml (is this a run directory?)");
    lock.acquire(run_dir);
    const Config saved = load_config(saved_path);
    if (o.config_given) {
      Config resolved = config;  // compare against what the first start resolved
      if (!resolved.train.eval_every) resolved.train.eval_every = saved.train.eval_every;
      if (!resolved.checkpoint.every) resolved.checkpoint.every = saved.checkpoint.every;
      if (!resolved.schedule.total_steps) resolved.schedule.total_steps = saved.schedule.total_steps;
      for (const std::string& key : config_differences(saved, resolved))
        if (!resumable_difference(key))
          throw InputError("--resume " + run_dir + ": " + key +
                           " differs from the run's saved config; only train.steps, train.epochs, train.log_every, "
                           "schedule.total_steps and diagnostics.* may change");
      config = resolved;
    } else {
      config = saved;
    }
    // Stopped between its first files and its step-0 checkpoint, the run trained nothing:
    // it starts again in place. (With checkpoints off there is nothing to resume from.)
    if (list_checkpoints(run_dir).empty() && config.checkpoint.every.value_or(1) > 0) {
      RunDir::remove_run_files(run_dir);
      resuming = false;
    }
  } else {
    // A directory made here goes again when the run cannot start (its data or model is bad
    // input), so the corrected command can use the same --out.
    std::error_code ec;
    const bool made_here = o.out_dir.empty() || !fs::exists(o.out_dir, ec);
    run_dir = RunDir::create(o.out_dir, config.name, lock);
    try {
      return run_loop(config, o, run_dir, false);
    } catch (const InputError&) {
      if (made_here) {
        lock.release();           // removes the lock file
        fs::remove(run_dir, ec);  // only when nothing else was written
      }
      throw;
    }
  }
  return run_loop(config, o, run_dir, resuming);
}

nlohmann::json evaluate_checkpoint(const std::string& path, const std::string& split, const std::string& device) {
  const std::string ckpt = resolve_checkpoint(path);
  const Config config = load_config(RunLayout(checkpoint_run_dir(ckpt)).config());
  const int64_t step = checkpoint_step(ckpt);
  auto run = [&](auto tag) -> json {
    using T = decltype(tag);
    Engine<T> e(config, resolve_device(device.empty() ? enum_name(kDeviceChoices, config.train.device) : device));
    widen_to_checkpoint(e, config, ckpt);
    load_model(*e.model, ckpt + "/" + RunLayout::kModelFile);
    e.st.step = step;
    const Dataset* d = split == "train"  ? &e.data.train
                       : split == "val"  ? &e.data.val
                       : split == "test" ? &e.data.test
                                         : nullptr;
    if (!d) throw InputError("--split " + split + ": expected train, val or test");
    if (d->n == 0) throw InputError("--split " + split + ": the split is empty for data set " + config.data.dataset);
    json row = e.evaluate(*d, split);
    row["checkpoint"] = ckpt;
    return row;
  };
  return config.train.dtype == DType::float64 ? run(double{}) : run(float{});
}

CurvatureOutput checkpoint_curvature(const std::string& path, const HessianOptions& ho) {
  const std::string ckpt = resolve_checkpoint(path);
  Config config = load_config(RunLayout(checkpoint_run_dir(ckpt)).config());
  if (!ho.kinds.empty()) config.diagnostics.kinds = ho.kinds;
  if (!ho.layers.empty()) config.diagnostics.layers = ho.layers;
  if (ho.batch_size > 0) config.diagnostics.batch_size = ho.batch_size;
  if (ho.mode) config.diagnostics.mode = *ho.mode;
  if (ho.tau_rel > 0) config.diagnostics.tau_rel = ho.tau_rel;
  const Device device = resolve_device(ho.device.empty() ? enum_name(kDeviceChoices, config.train.device) : ho.device);
  auto run = [&](auto tag) -> CurvatureOutput {
    using T = decltype(tag);
    Engine<T> e(config, device);
    widen_to_checkpoint(e, config, ckpt);  // a grown run: the widths the checkpoint holds
    e.load_checkpoint(ckpt);
    const Dataset* d = ho.split == "train"  ? nullptr
                       : ho.split == "val"  ? &e.data.val
                       : ho.split == "test" ? &e.data.test
                                            : throw InputError("--data " + ho.split + ": expected train, val or test");
    if (d && d->n == 0)
      throw InputError("--data " + ho.split + ": the split is empty for data set " + config.data.dataset);
    return e.curvature(d)->run(e.st.step, e.snapshot());
  };
  return config.train.dtype == DType::float64 ? run(double{}) : run(float{});
}

struct StepRunner::Impl {
  std::unique_ptr<Engine<float>> f32;
  std::unique_ptr<Engine<double>> f64;
};

StepRunner::StepRunner(const Config& config) : impl_(std::make_unique<Impl>()) {
  const Device d = resolve_device(enum_name(kDeviceChoices, config.train.device));
  if (config.train.dtype == DType::float64)
    impl_->f64 = std::make_unique<Engine<double>>(config, d);
  else
    impl_->f32 = std::make_unique<Engine<float>>(config, d);
}
StepRunner::~StepRunner() = default;
double StepRunner::step() {
  auto one = [](auto& e) {
    e.step(true);
    const double l = e.step_losses.empty() ? std::nan("") : e.step_losses.back();
    e.step_losses.clear();
    return l;
  };
  return impl_->f64 ? one(*impl_->f64) : one(*impl_->f32);
}
int64_t StepRunner::steps_done() const { return impl_->f64 ? impl_->f64->st.step : impl_->f32->st.step; }
int64_t StepRunner::num_params() const {
  return impl_->f64 ? impl_->f64->model->layout().total : impl_->f32->model->layout().total;
}
std::vector<double> StepRunner::parameters() const {
  auto copy = [](auto& e) {
    using T = std::remove_reference_t<decltype(e.model->params()[0])>;
    std::vector<T> h(static_cast<size_t>(e.model->layout().total));
    device_copy(Device::cpu, h.data(), e.device, e.model->params().data(), h.size() * sizeof(T));
    return std::vector<double>(h.begin(), h.end());
  };
  return impl_->f64 ? copy(*impl_->f64) : copy(*impl_->f32);
}

}  // namespace cn
