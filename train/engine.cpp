#include "train/engine.h"

#include <cmath>
#include <filesystem>
#include <map>
#include <sstream>

#include "core/error.h"
#include "io/files.h"
#include "layers/fused_mlp_view.h"
#ifdef CURVNET_HAVE_CUDA
#include "kernels/cuda/context.cuh"
#include "optim/cuda/optimizer_cuda.h"
#endif

namespace cn {

namespace fs = std::filesystem;
using json = nlohmann::json;

TaskShape task_shape(const Dataset& train, LossKind loss) {
  TaskShape s;
  s.task = train.task;
  if (train.task == Task::classification) {
    s.n_classes = train.n_outputs;
    if (loss == LossKind::cross_entropy) {
      s.n_outputs = s.n_classes;
      s.target_width = 1;
    } else if (loss == LossKind::bce_logits && s.n_classes == 2) {
      s.n_outputs = 1;  // one logit for class 1
      s.target_width = 1;
    } else {
      s.n_outputs = s.target_width = s.n_classes;
      s.one_hot = true;
    }
  } else {
    if (loss == LossKind::cross_entropy)
      throw InputError("loss.kind = \"cross_entropy\": data set '" + train.name +
                       "' is a regression task; expected mse (or bce_logits for targets in [0, 1])");
    s.n_outputs = s.target_width = train.n_outputs;
  }
  return s;
}

namespace {

// An explicit [[model.layers]] stack sets the output width itself: the width of its last
// linear layer (the input width when it has none) must be what the loss reads per sample.
void check_output_width(const Config& config, const Dataset& train, const TaskShape& shape,
                        const std::vector<LayerSpec>& layers) {
  if (config.model.layers.empty()) return;  // the generated head has the task's width
  int64_t width = train.d, last_linear = -1;
  for (size_t i = 0; i < layers.size(); ++i)
    if (layers[i].type == LayerKind::linear) {
      width = layers[i].out;
      last_linear = static_cast<int64_t>(i);
    }
  if (width == shape.n_outputs) return;
  const std::string last = "model.layers[" + std::to_string(layers.size() - 1) + "]";
  const bool ends_linear = last_linear == static_cast<int64_t>(layers.size()) - 1;
  const std::string source = last_linear < 0 ? "no linear layer: the input width"
                             : ends_linear   ? "linear, out = " + std::to_string(width)
                                             : "set by model.layers[" + std::to_string(last_linear) +
                                                 "], linear, out = " + std::to_string(width);
  throw InputError(last + ": the model ends with " + std::to_string(width) + " outputs (" + source + "); data set '" +
                   train.name + "' with loss.kind = \"" + enum_name(kLossKinds, config.loss.kind) + "\" expects " +
                   std::to_string(shape.n_outputs));
}

// Early stopping watches a validation metric: one the task does not report, or no
// validation split at all, would never stop the run.
void check_early_stopping(const Config& config, const Splits& data, const TaskShape& shape) {
  if (config.train.patience <= 0) return;
  const std::string patience = "train.patience = " + std::to_string(config.train.patience);
  std::ostringstream fraction;
  fraction << config.data.val_fraction;
  if (data.val.n == 0)
    throw InputError(patience + " needs a validation split, but data.val_fraction = " + fraction.str() +
                     " leaves data set '" + data.train.name +
                     "' none; set data.val_fraction > 0 or train.patience = 0");
  const StopMetric m = config.train.early_stopping_metric;
  const bool classification_only = m == StopMetric::val_accuracy || m == StopMetric::val_f1 || m == StopMetric::val_auc;
  const bool regression_only = m == StopMetric::val_r2 || m == StopMetric::val_mae || m == StopMetric::val_rmse;
  const bool classification = shape.task == Task::classification;
  if ((classification && regression_only) || (!classification && classification_only))
    throw InputError(
        std::string("train.early_stopping_metric = \"") + enum_name(kStopMetrics, m) + "\" with " + patience +
        ": data set '" + data.train.name + "' is a " + (classification ? "classification" : "regression") +
        " task that does not report it; expected " +
        (classification ? "val_loss, val_accuracy, val_f1 or val_auc" : "val_loss, val_r2, val_mae or val_rmse"));
}

// train.fused_mlp = "on" promises the fused kernels: a model they cannot run is a config error
// on every device (a config that trains on the GPU fails the same way on the CPU).
template <class T>
void check_fused_mlp(const Config& config, const Sequential<T>& model) {
  if (config.train.fused_mlp != FusedMlpMode::on) return;
  const std::string why = fused_mlp_ineligibility(fused_mlp_shapes(model));
  if (!why.empty())
    throw InputError("train.fused_mlp = \"on\": the model is not eligible (" + why +
                     "); expected \"auto\" or \"off\" for this model");
}

}  // namespace

std::vector<double> loss_targets(const Dataset& d, const TaskShape& s) {
  if (!s.one_hot) return d.y;
  std::vector<double> t(static_cast<size_t>(d.n * s.target_width), 0.0);
  for (int64_t i = 0; i < d.n; ++i) t[i * s.target_width + static_cast<int64_t>(d.y[i])] = 1.0;
  return t;
}

#ifdef CURVNET_HAVE_CUDA
// The CUDA hot path: the training split lives on the device and batches are gathered
// there; forward, loss and backward replay as one recorded graph per batch size (when
// no layer depends on the step, i.e. no Dropout); batch losses and clip records stay in
// device rings the host reads at the logging cadence, so a step never waits for the device.
template <class T>
struct Engine<T>::CudaSteps {
  static constexpr int64_t kRing = 1024;        // the clipper's ring has the same size
  std::unique_ptr<CudaGradClipper<T>> clipper;  // clipping with the norms kept on the device
  Buffer<T> x, targets;                         // the training split as T (empty: gathered on the host)
  Buffer<int64_t> order;                        // this epoch's sample order
  int64_t order_epoch = -1;
  Buffer<double> losses;      // batch loss of step s at s % kRing
  Buffer<double> graph_loss;  // where the recorded graph leaves the loss
  bool use_graphs = false;
  std::map<int64_t, cuda::Graph> graphs;  // by batch size
  // Host-side counters a forward bumps (BatchNorm's num_batches_tracked): a replay runs
  // no host code and a recording runs it once more, so the step keeps them itself.
  std::vector<T*> host_counters;
  // (step, batch size) the host has not read; `taken` is what read_pending works through.
  // Both keep their capacity (kRing / 2 entries at most), and `ring` is the host copy of
  // `losses`, so a step after warm-up allocates nothing (docs/gpu.md).
  std::vector<std::pair<int64_t, int64_t>> pending, taken;
  std::vector<double> ring;
  bool fused = false;               // forward and backward by the fused MLP kernels (train.fused_mlp)
  bool layer_caches_bound = false;  // the layers' own passes ran once (see step)

  explicit CudaSteps(Engine& e);
  void step(Engine& e, const PassCtx& c, int64_t begin, int64_t n, bool read_now);
  bool read_pending(Engine& e);
};

template <class T>
Engine<T>::CudaSteps::CudaSteps(Engine& e) {
  const Device device = e.device;
  clipper = std::make_unique<CudaGradClipper<T>>(e.config.clip, e.model->layout(), kRing);
  for (auto* b : {&x, &targets}) b->set_device(device);
  for (auto* b : {&losses, &graph_loss}) b->set_device(device);
  order.set_device(device);
  losses.resize(kRing);
  graph_loss.resize(1);
  pending.reserve(kRing);
  taken.reserve(kRing);
  ring.resize(kRing);
  // Datasets up to 2 GiB live on the device; larger ones are gathered on the host.
  const int64_t D = e.data.train.d, W = e.shape.target_width, n = e.data.train.n;
  if (static_cast<double>(n * (D + W)) * sizeof(T) <= 2.0 * (1 << 30)) {
    const std::vector<T> xs(e.data.train.x.begin(), e.data.train.x.end()),
        ts(e.train_targets.begin(), e.train_targets.end());
    x.resize(n * D);
    targets.resize(n * W);
    order.resize(n);
    device_copy(device, x.data(), Device::cpu, xs.data(), xs.size() * sizeof(T));
    device_copy(device, targets.data(), Device::cpu, ts.data(), ts.size() * sizeof(T));
  }
  // A recorded graph replays the same step: a layer that depends on the step (Dropout) turns graphs off.
  use_graphs = true;
  Sequential<T>* model = e.model.get();
  for (size_t i = 0; i < model->size(); ++i) {
    if (model->layer(i).uses_step_randomness()) use_graphs = false;
    for (const StateView<T>& v : model->layer(i).state())
      if (v.name == "num_batches_tracked" && v.device == Device::cpu) host_counters.push_back(v.data);
  }
  fused = e.config.train.fused_mlp != FusedMlpMode::off && fused_mlp_ineligibility(fused_mlp_shapes(*model)).empty();
}

template <class T>
void Engine<T>::CudaSteps::step(Engine& e, const PassCtx& c, int64_t begin, int64_t n, bool read_now) {
  const int64_t s = e.st.step, D = e.data.train.d, W = e.shape.target_width;
  const Device device = e.device;
  if (x.size() > 0) {
    if (order_epoch != e.order_epoch) {
      device_copy(device, order.data(), Device::cpu, e.order.data(), e.order.size() * sizeof(int64_t));
      order_epoch = e.order_epoch;
    }
    cuda::gather_rows<T>(x.data(), D, order.data() + begin, n, e.xb.data());
    cuda::gather_rows<T>(targets.data(), W, order.data() + begin, n, e.yb.data());
  } else {
    e.gather(e.data.train, e.train_targets, e.order.data(), begin, n);
  }
  double* slot = losses.data() + s % kRing;
  auto forward_backward = [&](double* loss_out) {
    // The layers' passes; when fused, once first (never recorded: a recording follows a plain
    // call), so that every layer's caches point at the buffers the fused kernels then fill.
    if (!fused || !layer_caches_bound) {
      const T* z = e.model->forward(c, e.xb.data(), n);
      e.loss->forward_backward_to(c, z, e.yb.data(), n, e.shape.n_outputs, loss_out);
      e.model->backward(c, e.loss->dz(), n);
      layer_caches_bound = true;
      if (!fused) return;
    }
    const cuda::FusedMlp<T> net = fused_mlp_of(*e.model);
    cuda::fused_mlp_forward<T>(net, e.xb.data(), n);
    e.loss->forward_backward_to(c, e.model->layer_output(e.model->size() - 1), e.yb.data(), n, e.shape.n_outputs,
                                loss_out);
    cuda::fused_mlp_backward<T>(net, e.xb.data(), e.loss->dz(), n);
  };
  if (use_graphs) {
    cuda::Graph& graph = graphs[n];
    if (graph.replay()) {
      for (T* counter : host_counters) *counter += T(1);
    } else {                                // first step at this batch size, or the workspace moved
      forward_backward(graph_loss.data());  // sizes every buffer the recording will use
      std::vector<T> counted;
      for (T* counter : host_counters) counted.push_back(*counter);
      graph.record([&] { forward_backward(graph_loss.data()); });
      for (size_t k = 0; k < counted.size(); ++k) *host_counters[k] = counted[k];
    }
    device_copy(device, slot, device, graph_loss.data(), sizeof(double));
  } else {
    forward_backward(slot);
  }
  T* g = e.model->grads().data();
  add_gradient_noise_cuda<T>(e.config.optim, e.config.train.seed, s, g, e.model->layout().total);
  clipper->clip(e.model->params().data(), g, s);
  pending.emplace_back(s, n);
  const bool read = read_now || e.logged_step(s + 1) || static_cast<int64_t>(pending.size()) >= kRing / 2;
  if (read && !read_pending(e)) return;  // halted
  e.apply_update(s, read);
}

// Reads the losses and clip records of the pending steps and shows each to the doctor
// in step order; the last one is the current step, whose update is not applied yet.
// Steps before it were updated without waiting, so a non-finite value among them is
// traced here, at the logging step after it. False when that halted the run.
template <class T>
bool Engine<T>::CudaSteps::read_pending(Engine& e) {
  device_copy(Device::cpu, ring.data(), e.device, losses.data(), ring.size() * sizeof(double));
  clipper->fetch();
  taken.swap(pending);
  pending.clear();
  for (size_t i = 0; i < taken.size(); ++i) {
    const auto [s, n] = taken[i];
    const bool current = i + 1 == taken.size();
    const double l = ring[static_cast<size_t>(s % kRing)];
    e.last_clip = clipper->fetched(s);
    e.step_losses.push_back(l);
    if (!e.doctor) continue;
    if (e.doctor->before_update(s + 1, l, e.last_clip, current && e.logged_step(s + 1), n) &&
        e.config.train.on_nonfinite == OnNonfinite::stop) {
      e.halted = true;
      return false;
    }
    if (!current) e.doctor->after_update(s + 1, false);
  }
  return true;
}

#else
template <class T>
struct Engine<T>::CudaSteps {};
#endif

int64_t total_step_count(const TrainConfig& t, int64_t steps_per_epoch) {
  if (t.steps > 0) return t.steps;
  int64_t total = 0;
  if (__builtin_mul_overflow(t.epochs, steps_per_epoch, &total) || total < 0)
    throw InputError("train.epochs: " + std::to_string(t.epochs) + " epochs of " + std::to_string(steps_per_epoch) +
                     " steps overflow the step count; expected fewer epochs (or train.steps)");
  return total;
}

template <class T>
Engine<T>::Engine(const Config& c, Device d) : config(c), device(d) {
  data = load_splits(config.data, config.train.seed);
  if (data.train.n == 0) throw InputError("data: the training split is empty");
  shape = task_shape(data.train, config.loss.kind);
  train_targets = loss_targets(data.train, shape);
  batch = std::min<int64_t>(config.data.batch_size, data.train.n);
  steps_per_epoch = (data.train.n + batch - 1) / batch;
  total_steps = total_step_count(config.train, steps_per_epoch);
  const std::vector<LayerSpec> layers = resolve_layers(config.model, shape.n_outputs);
  check_output_width(config, data.train, shape, layers);
  check_early_stopping(config, data, shape);
  model = std::make_unique<Sequential<T>>(layers, data.train.d, device);
  check_fused_mlp(config, *model);
  model->reserve(std::max<int64_t>(batch, eval_chunk()));
  model->initialize(config.model, config.train.seed);
  loss = std::make_unique<Loss<T>>(config.loss.kind);
  loss->reserve(device, std::max<int64_t>(batch, eval_chunk()), shape.n_outputs);
#ifdef CURVNET_HAVE_CUDA
  if (device == Device::cuda) {
    optimizer = make_optimizer_cuda<T>(config.optim, model->layout());
    cuda_steps = std::make_unique<CudaSteps>(*this);
  }
#endif
  if (!optimizer) optimizer = make_optimizer<T>(config.optim, model->layout());
  for (auto* b : {&xb, &yb}) b->set_device(device);
  xb.resize(eval_chunk() * data.train.d);
  yb.resize(eval_chunk() * shape.target_width);
  xb_host.resize(static_cast<size_t>(xb.size()));
  yb_host.resize(static_cast<size_t>(yb.size()));
  st.seed = config.train.seed;
  st.first_total_steps = total_steps;
}

template <class T>
Engine<T>::~Engine() = default;

template <class T>
void Engine<T>::ensure_order(int64_t epoch) {
  if (order_epoch == epoch) return;
  order = epoch_order(data.train.n, config.data.shuffle, config.train.seed, epoch);
  order_epoch = epoch;
}

template <class T>
void Engine<T>::gather(const Dataset& d, const std::vector<double>& targets, const int64_t* idx, int64_t begin,
                       int64_t n) {
  const int64_t D = d.d, W = shape.target_width;
  for (int64_t r = 0; r < n; ++r) {
    const int64_t i = idx ? idx[begin + r] : begin + r;
    for (int64_t j = 0; j < D; ++j) xb_host[r * D + j] = static_cast<T>(d.x[i * D + j]);
    for (int64_t j = 0; j < W; ++j) yb_host[r * W + j] = static_cast<T>(targets[i * W + j]);
  }
  device_copy(device, xb.data(), Device::cpu, xb_host.data(), static_cast<size_t>(n * D) * sizeof(T));
  device_copy(device, yb.data(), Device::cpu, yb_host.data(), static_cast<size_t>(n * W) * sizeof(T));
}

template <class T>
double Engine<T>::lr_at(int64_t step) const {
  return scheduled_lr(config.schedule, config.optim.lr, step, st.first_total_steps);
}

template <class T>
PassCtx Engine<T>::training_ctx(int64_t s) const {
  PassCtx c;
  c.device = device;
  c.training = true;
  c.dropout_key = philox_key(config.train.seed, RngStream::dropout);
  c.step = static_cast<uint64_t>(s);
  return c;
}

template <class T>
double Engine<T>::forward_backward(const PassCtx& c, int64_t begin, int64_t n) {
  gather(data.train, train_targets, order.data(), begin, n);
  const T* z = model->forward(c, xb.data(), n);
  const double l = loss->forward_backward(c, z, yb.data(), n, shape.n_outputs);
  model->backward(c, loss->dz(), n);
  return l;
}

template <class T>
void Engine<T>::step(bool read_now) {
  const int64_t s = st.step;
  const int64_t epoch = s / steps_per_epoch, pos = s % steps_per_epoch;
  ensure_order(epoch);
  st.epoch = epoch;
  const int64_t begin = pos * batch, n = std::min(batch, data.train.n - begin);
  const PassCtx c = training_ctx(s);
#ifdef CURVNET_HAVE_CUDA
  if (cuda_steps) return cuda_steps->step(*this, c, begin, n, read_now);
#endif
  const double l = forward_backward(c, begin, n);
  T* g = model->grads().data();
  add_gradient_noise<T>(config.optim, config.train.seed, s, g, model->layout().total);
  last_clip = clip_gradients<T>(config.clip, model->layout(), model->params().data(), g);
  step_losses.push_back(l);
  const int64_t done = s + 1;  // the step number the logs give this update
  if (doctor && doctor->before_update(done, l, last_clip, logged_step(done), n) &&
      config.train.on_nonfinite == OnNonfinite::stop) {
    halted = true;
    return;
  }
  apply_update(s);
}

template <class T>
void Engine<T>::apply_update(int64_t s, bool seen_by_doctor) {
  optimizer->step(model->params().data(), model->grads().data(), lr_at(s), s);
  if (param_mask.size() > 0)
    CN_DISPATCH(device, multiply<T>, model->params().data(), param_mask.data(), model->params().data(),
                model->layout().total);
  if (doctor && seen_by_doctor) doctor->after_update(s + 1, logged_step(s + 1));
  st.step = s + 1;
  st.epoch = st.step / steps_per_epoch;
}

template <class T>
json Engine<T>::evaluate(const Dataset& d, const std::string& split) {
  const std::vector<double> targets = loss_targets(d, shape);
  const int64_t C = shape.n_outputs, chunk = eval_chunk();
  std::vector<double> scores(static_cast<size_t>(d.n * C));
  std::vector<T> host(static_cast<size_t>(chunk * C));
  double total = 0;
  PassCtx c;
  c.device = device;
  c.training = false;
  for (int64_t b = 0; b < d.n; b += chunk) {
    const int64_t n = std::min(chunk, d.n - b);
    gather(d, targets, nullptr, b, n);
    const T* z = model->forward(c, xb.data(), n);
    total += loss->forward_backward(c, z, yb.data(), n, C) * static_cast<double>(n);
    device_copy(Device::cpu, host.data(), device, z, static_cast<size_t>(n * C) * sizeof(T));
    for (int64_t i = 0; i < n * C; ++i) scores[b * C + i] = static_cast<double>(host[i]);
  }
  json row;
  row["step"] = st.step;
  row["epoch"] = st.step == 0 ? 0 : (st.step - 1) / steps_per_epoch;
  row["split"] = split;
  set_metric(row, "loss", d.n > 0 ? total / static_cast<double>(d.n) : std::nan(""));
  if (shape.task == Task::classification) {
    const auto m = classification_metrics(scores, d.y, d.n, shape.n_classes);
    set_metric(row, "accuracy", m.accuracy);
    set_metric(row, "precision", m.precision);
    set_metric(row, "recall", m.recall);
    set_metric(row, "f1", m.f1);
    set_metric(row, "auc", m.auc);
  } else {
    const auto m = regression_metrics(scores, d.y, d.n, shape.n_outputs);
    set_metric(row, "r2", m.r2);
    set_metric(row, "mae", m.mae);
    set_metric(row, "rmse", m.rmse);
  }
  return row;
}

template <class T>
ModelSnapshot Engine<T>::snapshot() {
  ModelSnapshot snap;
  std::vector<T> h(static_cast<size_t>(model->layout().total));
  device_copy(Device::cpu, h.data(), device, model->params().data(), h.size() * sizeof(T));
  snap.params.assign(h.begin(), h.end());
  for (size_t i = 0; i < model->size(); ++i)
    for (const StateView<T>& v : model->layer(i).state()) {
      std::vector<T> b(static_cast<size_t>(v.size));
      device_copy(Device::cpu, b.data(), v.device, v.data, b.size() * sizeof(T));
      snap.buffers[std::to_string(i) + "." + v.name].assign(b.begin(), b.end());
    }
  snap.optimizer = config.optim.name;
  snap.momentum = config.optim.momentum;
  snap.lr = lr_at(st.step);
  snap.preconditioner = optimizer->preconditioner(st.step);
  return snap;
}

template <class T>
std::unique_ptr<CurvatureCheckpoint> Engine<T>::curvature(const Dataset* split) const {
  const Dataset& d = split ? *split : data.train;
  const std::vector<double> targets = split ? loss_targets(d, shape) : train_targets;
  const int64_t n = std::min<int64_t>(config.diagnostics.batch_size, d.n);
  std::vector<double> x(d.x.begin(), d.x.begin() + n * d.d);
  std::vector<double> t(targets.begin(), targets.begin() + n * shape.target_width);
  return std::make_unique<CurvatureCheckpoint>(config.diagnostics, model->specs(), data.train.d, config.loss.kind,
                                               std::move(x), std::move(t), n, config.train.seed, device);
}

template <class T>
void Engine<T>::set_param_mask(const std::vector<double>& mask) {
  st.param_mask = mask;
  if (mask.empty()) {
    param_mask = Buffer<T>();
    return;
  }
  const int64_t n = model->layout().total;
  if (static_cast<int64_t>(mask.size()) != n)
    throw InputError("prune.mask: " + std::to_string(mask.size()) + " values for a model of " + std::to_string(n) +
                     " parameters");
  const std::vector<T> m(mask.begin(), mask.end());
  param_mask.set_device(device);
  param_mask.resize(n);
  device_copy(device, param_mask.data(), Device::cpu, m.data(), m.size() * sizeof(T));
  CN_DISPATCH(device, multiply<T>, model->params().data(), param_mask.data(), model->params().data(), n);
}

template <class T>
void Engine<T>::save_checkpoint(const std::string& dir) {
  fs::create_directories(dir);
  ensure_order(st.epoch);
  st.data_order = order;
  save_model(*model, dir + "/" + RunLayout::kModelFile);
  save_state(*optimizer, st, dir + "/" + RunLayout::kStateFile);
}

template <class T>
void Engine<T>::load_checkpoint(const std::string& dir) {
  const std::string model_path = dir + "/" + RunLayout::kModelFile, state_path = dir + "/" + RunLayout::kStateFile;
  load_model(*model, model_path);
  const TrainState loaded = load_state(*optimizer, state_path);
  if (loaded.seed != config.train.seed)
    throw InputError(state_path + ": rng.seed " + std::to_string(loaded.seed) + " differs from train.seed " +
                     std::to_string(config.train.seed));
  const auto named = parse_step_name(std::filesystem::path(dir).filename().string());
  if (named && loaded.step != *named)
    throw InputError(state_path + ": step " + std::to_string(loaded.step) + " differs from the checkpoint's step " +
                     std::to_string(*named));
  if (loaded.epoch != loaded.step / steps_per_epoch)
    throw InputError(state_path + ": epoch " + std::to_string(loaded.epoch) + " does not match step " +
                     std::to_string(loaded.step) + " (" + std::to_string(steps_per_epoch) + " steps per epoch)");
  st = loaded;
  set_param_mask(loaded.param_mask);
  ensure_order(st.epoch);
  if (!st.data_order.empty() && st.data_order != order)
    throw InputError(state_path + ": data_order does not match the data set's order for epoch " +
                     std::to_string(st.epoch) + " (has the data changed?)");
}

template struct Engine<float>;
template struct Engine<double>;

}  // namespace cn
