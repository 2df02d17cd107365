// The engine of one training run, for one dtype: the data, the model, the loss and the
// optimiser, one update at a time (docs/design.md §1), evaluation, the model as the curvature
// engine sees it, and the checkpoint files. train() (train/training_loop.h) drives it;
// `curvnet eval`/`curvnet hessian` and StepRunner use it alone. The CUDA hot path lives
// in engine.cpp only.
#pragma once
#include <algorithm>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "data/dataset.h"
#include "diagnostics/curvature_checkpoint.h"
#include "diagnostics/doctor.h"
#include "layers/model.h"
#include "optim/optimizer.h"
#include "train/checkpoint.h"

namespace cn {

// What the network predicts and how targets are laid out for the loss.
struct TaskShape {
  Task task = Task::classification;
  int64_t n_classes = 0;  // classification
  int64_t n_outputs = 0;  // the network's output width
  int64_t target_width = 0;
  bool one_hot = false;
};

TaskShape task_shape(const Dataset& train, LossKind loss);
// Targets of a split in the loss's layout (as double; cast per batch).
std::vector<double> loss_targets(const Dataset& d, const TaskShape& s);
// The run's length in steps: train.steps, else train.epochs x steps per epoch; an
// InputError naming train.epochs when the product does not fit.
int64_t total_step_count(const TrainConfig& t, int64_t steps_per_epoch);

template <class T>
struct Engine {
  Config config;
  Device device;
  Splits data;
  TaskShape shape;
  std::vector<double> train_targets;
  std::unique_ptr<Sequential<T>> model;
  std::unique_ptr<Loss<T>> loss;
  std::unique_ptr<Optimizer<T>> optimizer;
  Buffer<T> xb, yb;  // the batch on the device
  std::vector<T> xb_host, yb_host;
  std::vector<int64_t> order;  // this epoch's sample order
  int64_t order_epoch = -1;
  int64_t steps_per_epoch = 0, total_steps = 0, batch = 0;
  TrainState st;
  ClipResult last_clip;
  std::unique_ptr<Doctor<T>> doctor;  // statistics, NaN trace and alarms (train() sets it up)
  std::vector<double> step_losses;    // batch losses read since the train loop last took them, in step order
  bool halted = false;                // a non-finite value stopped the run (train.on_nonfinite = "stop")
  // The CUDA hot path's state (engine.cpp); null on the CPU.
  struct CudaSteps;
  std::unique_ptr<CudaSteps> cuda_steps;

  Engine(const Config& c, Device d);
  ~Engine();
  int64_t eval_chunk() const { return std::max<int64_t>(config.data.batch_size, 1024); }
  void ensure_order(int64_t epoch);
  // Copies rows [begin, begin+n) of `idx` (or of the identity when idx is null) to the device.
  void gather(const Dataset& d, const std::vector<double>& targets, const int64_t* idx, int64_t begin, int64_t n);
  double lr_at(int64_t step) const;
  // The context of update `s`'s training pass (its Dropout masks are keyed by the step).
  PassCtx training_ctx(int64_t s) const;
  // Rows [begin, begin+n) of the epoch's order: gathered, forward, loss and backward (the
  // gradients in model->grads()); returns the batch loss. The CPU step and step 0's statistics.
  double forward_backward(const PassCtx& c, int64_t begin, int64_t n);

  // One update. Its batch loss (before the update) goes to step_losses; on CUDA only at
  // logging steps or when `read_now`, earlier steps' losses with it (see CudaSteps).
  void step(bool read_now = false);
  bool logged_step(int64_t done) const { return done % config.train.log_every == 0 || done == total_steps; }
  // `seen_by_doctor`: false for a CUDA step the host has not read yet (the doctor sees it
  // when the host reads it).
  void apply_update(int64_t s, bool seen_by_doctor = true);

  // Loss and quality metrics of the model (evaluation mode) on a split.
  nlohmann::json evaluate(const Dataset& d, const std::string& split);
  // The model as the curvature engine sees it (float64 host copies).
  ModelSnapshot snapshot();
  // The fixed curvature batch: the first diagnostics.batch_size samples of `split` (the
  // training split when null) in file order (after standardisation), the same at every
  // checkpoint. The checkpoint's model copy lives on the training device.
  std::unique_ptr<CurvatureCheckpoint> curvature(const Dataset* split = nullptr) const;

  // Weight pruning's mask (st.param_mask, 0/1 per parameter; empty = none), multiplied into
  // the parameters after every update so that removed weights stay 0; setting it applies it.
  void set_param_mask(const std::vector<double>& mask);
  Buffer<T> param_mask;  // the mask on the device (empty: none)

  void save_checkpoint(const std::string& dir);  // into a checkpoints/step_N directory
  void load_checkpoint(const std::string& dir);
};

extern template struct Engine<float>;
extern template struct Engine<double>;

}  // namespace cn
