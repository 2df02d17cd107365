#include "train/trainer.h"

#include <omp.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <ctime>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <sstream>

#include "core/error.h"
#include "data/dataset.h"
#include "diagnostics/alarms.h"
#include "diagnostics/curvature_checkpoint.h"
#include "diagnostics/doctor.h"
#include "io/files.h"
#include "io/report.h"
#include "io/safetensors.h"
#include "io/tensorboard.h"
#include "layers/model.h"
#ifdef CURVNET_HAVE_CUDA
#include "kernels/cuda/context.cuh"
#include "optim/cuda/optimizer_cuda.h"
#endif
#include "train/checkpoint.h"
#include "train/curvature_worker.h"

namespace cn {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

std::string utc_now(const char* fmt) {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, fmt, &tm);
  return buf;
}

bool higher_is_better(const std::string& metric) {
  return metric == "val_accuracy" || metric == "val_f1" || metric == "val_auc" || metric == "val_r2" ||
         metric == "val_precision" || metric == "val_recall";
}

// What the network predicts and how targets are laid out for the loss.
struct TaskShape {
  Task task = Task::classification;
  int64_t n_classes = 0;  // classification
  int64_t n_outputs = 0;  // the network's output width
  int64_t target_width = 0;
  bool one_hot = false;
};

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

// Targets of a split in the loss's layout (as double; cast per batch).
std::vector<double> loss_targets(const Dataset& d, const TaskShape& s) {
  if (!s.one_hot) return d.y;
  std::vector<double> t(static_cast<size_t>(d.n * s.target_width), 0.0);
  for (int64_t i = 0; i < d.n; ++i) t[i * s.target_width + static_cast<int64_t>(d.y[i])] = 1.0;
  return t;
}

}  // namespace

// Everything one training run holds, for one dtype.
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
  Buffer<T> xb, yb;             // the batch on the device
  std::vector<T> xb_host, yb_host;
  std::vector<int64_t> order;   // this epoch's sample order
  int64_t order_epoch = -1;
  int64_t steps_per_epoch = 0, total_steps = 0, batch = 0;
  TrainState st;
  ClipResult last_clip;
  std::unique_ptr<Doctor<T>> doctor;  // statistics, NaN trace and alarms (train() sets it up)
  std::vector<double> step_losses;    // batch losses read since the train loop last took them, in step order
#ifdef CURVNET_HAVE_CUDA
  std::unique_ptr<CudaGradClipper<T>> cuda_clipper;  // clipping with the norms kept on the device
  // The CUDA hot path: the training split lives on the device and batches are gathered
  // there; forward, loss and backward replay as one recorded graph per batch size (when
  // no layer depends on the step, i.e. no Dropout); batch losses and clip records stay in
  // device rings the host reads at the logging cadence, so a step never waits for the device.
  struct CudaSteps {
    static constexpr int64_t kRing = 1024;  // the clipper's ring has the same size
    Buffer<T> x, targets;                   // the training split as T (empty: gathered on the host)
    Buffer<int64_t> order;                  // this epoch's sample order
    int64_t order_epoch = -1;
    Buffer<double> losses;                  // batch loss of step s at s % kRing
    Buffer<double> graph_loss;              // where the recorded graph leaves the loss
    bool use_graphs = false;
    std::map<int64_t, cuda::Graph> graphs;  // by batch size
    // Host-side counters a forward bumps (BatchNorm's num_batches_tracked): a replay runs
    // no host code and a recording runs it once more, so the step keeps them itself.
    std::vector<T*> host_counters;
    std::vector<std::pair<int64_t, int64_t>> pending;  // (step, batch size) the host has not read
  };
  std::unique_ptr<CudaSteps> cuda_steps;
#endif
  bool halted = false;                // a non-finite value stopped the run (train.on_nonfinite = "stop")

  explicit Engine(const Config& c, Device d) : config(c), device(d) {
    data = load_splits(config.data, config.train.seed);
    if (data.train.n == 0) throw InputError("data: the training split is empty");
    shape = task_shape(data.train, config.loss.kind);
    train_targets = loss_targets(data.train, shape);
    batch = std::min<int64_t>(config.data.batch_size, data.train.n);
    steps_per_epoch = (data.train.n + batch - 1) / batch;
    total_steps = config.train.steps > 0 ? config.train.steps : config.train.epochs * steps_per_epoch;
    model = std::make_unique<Sequential<T>>(resolve_layers(config.model, shape.n_outputs), data.train.d, device);
    model->reserve(std::max<int64_t>(batch, eval_chunk()));
    model->initialize(config.model, config.train.seed);
    loss = std::make_unique<Loss<T>>(config.loss.kind);
    loss->reserve(device, std::max<int64_t>(batch, eval_chunk()), shape.n_outputs);
#ifdef CURVNET_HAVE_CUDA
    if (device == Device::cuda) {
      optimizer = make_optimizer_cuda<T>(config.optim, model->layout());
      cuda_clipper = std::make_unique<CudaGradClipper<T>>(config.clip, model->layout(), CudaSteps::kRing);
      cuda_steps = std::make_unique<CudaSteps>();
      CudaSteps& cs = *cuda_steps;
      for (auto* b : {&cs.x, &cs.targets}) b->set_device(device);
      for (auto* b : {&cs.losses, &cs.graph_loss}) b->set_device(device);
      cs.order.set_device(device);
      cs.losses.resize(CudaSteps::kRing);
      cs.graph_loss.resize(1);
      // Datasets up to 2 GiB live on the device; larger ones are gathered on the host.
      const int64_t D = data.train.d, W = shape.target_width, n = data.train.n;
      if (static_cast<double>(n * (D + W)) * sizeof(T) <= 2.0 * (1 << 30)) {
        const std::vector<T> xs(data.train.x.begin(), data.train.x.end()), ts(train_targets.begin(), train_targets.end());
        cs.x.resize(n * D);
        cs.targets.resize(n * W);
        cs.order.resize(n);
        device_copy(device, cs.x.data(), Device::cpu, xs.data(), xs.size() * sizeof(T));
        device_copy(device, cs.targets.data(), Device::cpu, ts.data(), ts.size() * sizeof(T));
      }
      cs.use_graphs = true;
      for (size_t i = 0; i < model->size(); ++i) {
        if (dynamic_cast<const Dropout<T>*>(&model->layer(i))) cs.use_graphs = false;
        for (const StateView<T>& v : model->layer(i).state())
          if (v.name == "num_batches_tracked" && v.device == Device::cpu) cs.host_counters.push_back(v.data);
      }
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
  int64_t eval_chunk() const { return std::max<int64_t>(config.data.batch_size, 1024); }

  void ensure_order(int64_t epoch) {
    if (order_epoch == epoch) return;
    order = epoch_order(data.train.n, config.data.shuffle, config.train.seed, epoch);
    order_epoch = epoch;
  }

  // Copies rows [begin, begin+n) of `idx` (or of the identity when idx is null) to the device.
  void gather(const Dataset& d, const std::vector<double>& targets, const int64_t* idx, int64_t begin, int64_t n) {
    const int64_t D = d.d, W = shape.target_width;
    for (int64_t r = 0; r < n; ++r) {
      const int64_t i = idx ? idx[begin + r] : begin + r;
      for (int64_t j = 0; j < D; ++j) xb_host[r * D + j] = static_cast<T>(d.x[i * D + j]);
      for (int64_t j = 0; j < W; ++j) yb_host[r * W + j] = static_cast<T>(targets[i * W + j]);
    }
    device_copy(device, xb.data(), Device::cpu, xb_host.data(), static_cast<size_t>(n * D) * sizeof(T));
    device_copy(device, yb.data(), Device::cpu, yb_host.data(), static_cast<size_t>(n * W) * sizeof(T));
  }

  double lr_at(int64_t step) const {
    return scheduled_lr(config.schedule, config.optim.lr, step, st.first_total_steps);
  }

  // One update. Its batch loss (before the update) goes to step_losses; on CUDA only at
  // logging steps or when `read_now`, earlier steps' losses with it (see CudaSteps).
  void step(bool read_now = false) {
    const int64_t s = st.step;
    const int64_t epoch = s / steps_per_epoch, pos = s % steps_per_epoch;
    ensure_order(epoch);
    st.epoch = epoch;
    const int64_t begin = pos * batch, n = std::min(batch, data.train.n - begin);
    PassCtx c;
    c.device = device;
    c.training = true;
    c.dropout_key = philox_key(config.train.seed, RngStream::dropout);
    c.step = static_cast<uint64_t>(s);
#ifdef CURVNET_HAVE_CUDA
    if (cuda_steps) return step_cuda(c, begin, n, read_now);
#endif
    gather(data.train, train_targets, order.data(), begin, n);
    const T* z = model->forward(c, xb.data(), n);
    const double l = loss->forward_backward(c, z, yb.data(), n, shape.n_outputs);
    model->backward(c, loss->dz(), n);
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

  bool logged_step(int64_t done) const { return done % config.train.log_every == 0 || done == total_steps; }

  // `seen_by_doctor`: false for a CUDA step the host has not read yet (read_pending shows
  // it to the doctor later).
  void apply_update(int64_t s, bool seen_by_doctor = true) {
    optimizer->step(model->params().data(), model->grads().data(), lr_at(s), s);
    if (doctor && seen_by_doctor) doctor->after_update(s + 1, logged_step(s + 1));
    st.step = s + 1;
    st.epoch = st.step / steps_per_epoch;
  }

#ifdef CURVNET_HAVE_CUDA
  void step_cuda(const PassCtx& c, int64_t begin, int64_t n, bool read_now) {
    CudaSteps& cs = *cuda_steps;
    const int64_t s = st.step, D = data.train.d, W = shape.target_width;
    if (cs.x.size() > 0) {
      if (cs.order_epoch != order_epoch) {
        device_copy(device, cs.order.data(), Device::cpu, order.data(), order.size() * sizeof(int64_t));
        cs.order_epoch = order_epoch;
      }
      cuda::gather_rows<T>(cs.x.data(), D, cs.order.data() + begin, n, xb.data());
      cuda::gather_rows<T>(cs.targets.data(), W, cs.order.data() + begin, n, yb.data());
    } else {
      gather(data.train, train_targets, order.data(), begin, n);
    }
    double* slot = cs.losses.data() + s % CudaSteps::kRing;
    auto forward_backward = [&](double* loss_out) {
      const T* z = model->forward(c, xb.data(), n);
      loss->forward_backward_to(c, z, yb.data(), n, shape.n_outputs, loss_out);
      model->backward(c, loss->dz(), n);
    };
    if (cs.use_graphs) {
      cuda::Graph& graph = cs.graphs[n];
      if (graph.replay()) {
        for (T* counter : cs.host_counters) *counter += T(1);
      } else {  // first step at this batch size, or the workspace moved
        forward_backward(cs.graph_loss.data());  // sizes every buffer the recording will use
        std::vector<T> counted;
        for (T* counter : cs.host_counters) counted.push_back(*counter);
        graph.record([&] { forward_backward(cs.graph_loss.data()); });
        for (size_t k = 0; k < counted.size(); ++k) *cs.host_counters[k] = counted[k];
      }
      device_copy(device, slot, device, cs.graph_loss.data(), sizeof(double));
    } else {
      forward_backward(slot);
    }
    T* g = model->grads().data();
    add_gradient_noise_cuda<T>(config.optim, config.train.seed, s, g, model->layout().total);
    cuda_clipper->clip(model->params().data(), g, s);
    cs.pending.emplace_back(s, n);
    const bool read = read_now || logged_step(s + 1) ||
                      static_cast<int64_t>(cs.pending.size()) >= CudaSteps::kRing / 2;
    if (read && !read_pending()) return;  // halted
    apply_update(s, read);
  }

  // Reads the losses and clip records of the pending steps and shows each to the doctor
  // in step order; the last one is the current step, whose update is not applied yet.
  // Steps before it were updated without waiting, so a non-finite value among them is
  // traced here, at the logging step after it. False when that halted the run.
  bool read_pending() {
    CudaSteps& cs = *cuda_steps;
    std::vector<double> ring(static_cast<size_t>(CudaSteps::kRing));
    device_copy(Device::cpu, ring.data(), device, cs.losses.data(), ring.size() * sizeof(double));
    std::map<int64_t, ClipResult> clips;
    for (const auto& [step, r] : cuda_clipper->read_all()) clips[step] = r;
    const auto pending = std::move(cs.pending);
    cs.pending.clear();
    for (size_t i = 0; i < pending.size(); ++i) {
      const auto [s, n] = pending[i];
      const bool current = i + 1 == pending.size();
      const double l = ring[static_cast<size_t>(s % CudaSteps::kRing)];
      const auto it = clips.find(s);
      CN_CHECK_MSG(it != clips.end(), "the clip record of step " << s << " is missing");
      last_clip = it->second;
      step_losses.push_back(l);
      if (!doctor) continue;
      if (doctor->before_update(s + 1, l, last_clip, current && logged_step(s + 1), n) &&
          config.train.on_nonfinite == OnNonfinite::stop) {
        halted = true;
        return false;
      }
      if (!current) doctor->after_update(s + 1, false);
    }
    return true;
  }
#endif

  // Loss and quality metrics of the model (evaluation mode) on a split.
  json evaluate(const Dataset& d, const std::string& split) {
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

  // The model as the curvature engine sees it (float64 host copies).
  ModelSnapshot snapshot() {
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
    // Adam-family preconditioner P = sqrt(v / (1 - beta2^t)) + eps (the denominator of the update).
    const OptimKind o = config.optim.name;
    if ((o == OptimKind::adam || o == OptimKind::adamw || o == OptimKind::nadam || o == OptimKind::amsgrad) && st.step > 0) {
      for (auto& [name, buf] : optimizer->state()) {
        if (name != (o == OptimKind::amsgrad ? "max_exp_avg_sq" : "exp_avg_sq")) continue;
        const double corr = 1.0 - std::pow(config.optim.beta2, static_cast<double>(st.step));
        snap.preconditioner.resize(buf->size());
        for (size_t i = 0; i < buf->size(); ++i)
          snap.preconditioner[i] = std::sqrt(static_cast<double>((*buf)[i]) / corr) + config.optim.eps;
      }
    }
    return snap;
  }

  // The fixed curvature batch: the first diagnostics.batch_size training samples in file
  // order (after standardisation), the same at every checkpoint. The checkpoint's model
  // copy lives on the training device.
  std::unique_ptr<CurvatureCheckpoint> curvature(const Dataset* split = nullptr) const {
    const Dataset& d = split ? *split : data.train;
    const std::vector<double> targets = split ? loss_targets(d, shape) : train_targets;
    const int64_t n = std::min<int64_t>(config.diagnostics.batch_size, d.n);
    std::vector<double> x(d.x.begin(), d.x.begin() + n * d.d);
    std::vector<double> t(targets.begin(), targets.begin() + n * shape.target_width);
    return std::make_unique<CurvatureCheckpoint>(config.diagnostics, model->specs(), data.train.d,
                                                 config.loss.kind, std::move(x), std::move(t), n,
                                                 config.train.seed, device);
  }

  void save_checkpoint(const std::string& run_dir) {
    const std::string dir = checkpoint_dir(run_dir, st.step);
    fs::create_directories(dir);
    ensure_order(st.epoch);
    st.data_order = order;
    save_model(*model, dir + "/model.safetensors");
    save_state(*optimizer, st, dir + "/state.safetensors");
  }

  void load_checkpoint(const std::string& dir) {
    load_model(*model, dir + "/model.safetensors");
    const TrainState loaded = load_state(*optimizer, dir + "/state.safetensors");
    if (loaded.seed != config.train.seed)
      throw InputError(dir + "/state.safetensors: rng.seed " + std::to_string(loaded.seed) +
                       " differs from train.seed " + std::to_string(config.train.seed));
    st = loaded;
    ensure_order(st.epoch);
    if (!st.data_order.empty() && st.data_order != order)
      throw InputError(dir + "/state.safetensors: data_order does not match the data set's order for epoch " +
                       std::to_string(st.epoch) + " (has the data changed?)");
  }
};

namespace {

// Keys a resumed run may change (DESIGN §5).
bool resumable_difference(const std::string& key) {
  return key == "train.steps" || key == "train.epochs" || key == "train.log_every" || key.rfind("diagnostics.", 0) == 0 ||
         key == "name" || key == "source";
}

std::string prepare_run_dir(const Config& config, const TrainOptions& o) {
  std::string dir = o.out_dir;
  if (dir.empty()) {
    dir = (fs::path("runs") / (utc_now("%Y%m%dT%H%M%SZ") + "-" + config.name)).string();
    for (int i = 1; fs::exists(dir); ++i)
      dir = (fs::path("runs") / (utc_now("%Y%m%dT%H%M%SZ") + "-" + config.name + "-" + std::to_string(i))).string();
  }
  std::error_code ec;
  if (fs::exists(dir, ec)) {
    if (!fs::is_directory(dir, ec)) throw InputError("--out " + dir + ": exists and is not a directory");
    if (!fs::is_empty(dir, ec)) throw InputError("--out " + dir + ": the run directory must not exist or be empty");
  }
  fs::create_directories(dir, ec);
  if (ec) throw InputError("--out " + dir + ": cannot create the directory: " + ec.message());
  return dir;
}

class Progress {
 public:
  Progress(std::ostream& out, bool live) : out_(out), live_(live) {}
  void update(const std::string& line, bool force) {
    const double t = now_s();
    if (live_) {
      if (!force && t - last_ < 0.1) return;
      out_ << "\r\033[K" << line << std::flush;
      dirty_ = true;
    } else {
      if (!force && t - last_ < 5.0) return;
      out_ << line << "\n" << std::flush;
    }
    last_ = t;
  }
  void message(const std::string& line) {
    if (dirty_) out_ << "\r\033[K";
    dirty_ = false;
    out_ << line << "\n" << std::flush;
  }

 private:
  std::ostream& out_;
  bool live_;
  bool dirty_ = false;
  double last_ = -1e9;
};

// Takes the curvature's tensors out of a spectra file, keeping the doctor's
// ("weights.<i>.singular_values", "grads.<i>.singular_values"); a file left empty goes.
void remove_curvature_spectra(const std::string& path) {
  std::map<std::string, std::string> metadata;
  SafetensorsWriter kept;
  for (auto& [name, t] : read_safetensors(path, &metadata))
    if (name.rfind("weights.", 0) == 0 || name.rfind("grads.", 0) == 0) kept.add_raw(name, std::move(t));
  if (kept.size() == 0) {
    fs::remove(path);
    return;
  }
  for (const auto& [key, value] : metadata) kept.metadata(key, value);
  kept.write(path);
}

std::string fmt_duration(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = static_cast<long>(s + 0.5);
  std::ostringstream os;
  os << t / 60 << ":" << std::setw(2) << std::setfill('0') << t % 60;
  return os.str();
}

template <class T>
TrainSummary run_training(Config config, const TrainOptions& o, const std::string& run_dir, bool resuming) {
  std::ostream& out = o.out ? *o.out : std::cout;
  const bool live = o.progress >= 0 ? o.progress == 1 : isatty(STDOUT_FILENO);
  Progress progress(out, live);
  const Device device = resolve_device(o.device.empty() ? enum_name(kDeviceChoices, config.train.device) : o.device);
  if (config.train.threads > 0) omp_set_num_threads(static_cast<int>(config.train.threads));

  const double t_start = now_s();
  Engine<T> e(config, device);
  e.doctor = std::make_unique<Doctor<T>>(config, *e.model);
  // Resolve the defaults that depend on the data (one epoch) and record them.
  if (!config.train.eval_every) config.train.eval_every = e.steps_per_epoch;
  if (!config.checkpoint.every) config.checkpoint.every = e.steps_per_epoch;
  const std::string config_path = run_dir + "/config.toml";

  if (resuming) {
    const auto steps = list_checkpoints(run_dir);
    if (steps.empty()) throw InputError("--resume " + run_dir + ": no complete checkpoint under checkpoints/");
    const std::string dir = checkpoint_dir(run_dir, steps.back());
    e.load_checkpoint(dir);
    if (!e.st.doctor.empty()) {  // checked before anything in the run directory changes
      try {
        e.doctor->restore(json::parse(e.st.doctor));
      } catch (const std::exception& err) {
        throw InputError(dir + "/state.safetensors: metadata \"doctor\": " + err.what() +
                         " (expected the doctor state this run's model and config save)");
      }
    }
    e.total_steps = config.train.steps > 0 ? config.train.steps : config.train.epochs * e.steps_per_epoch;
    const int64_t s = e.st.step;
    // The logs go back to what they held at the save. A curvature checkpoint at the saved
    // step runs after the save; it is run again (unless this run has none), so what it
    // logged goes too.
    const bool redo = e.st.curvature_due && config.diagnostics.every > 0;
    for (const char* log : {"metrics.jsonl", "eval.jsonl", "stats.jsonl"}) truncate_after_step(run_dir + "/" + log, s);
    truncate_after_step(run_dir + "/diagnostics.jsonl", s, [redo](const json&) { return redo; });
    truncate_after_step(run_dir + "/alarms.jsonl", s,
                        [redo](const json& row) { return redo && is_curvature_rule(row.value("rule", "")); });
    TensorBoardWriter::truncate_after_step(run_dir, s,
                                           [redo](const std::string& tag) { return redo && is_curvature_tag(tag); });
    std::vector<fs::path> spectra_files;  // listed first: the loop below changes the directory
    if (fs::is_directory(run_dir + "/spectra"))
      for (const auto& f : fs::directory_iterator(run_dir + "/spectra")) spectra_files.push_back(f.path());
    for (const fs::path& f : spectra_files) {
      const std::string name = f.stem().string();
      if (name.rfind("step_", 0) != 0) continue;
      if (f.extension() != ".safetensors") {  // a write a crash left unfinished
        fs::remove(f);
        continue;
      }
      const int64_t at = std::atoll(name.c_str() + 5);
      if (at > s) fs::remove(f);
      if (at == s && redo) remove_curvature_spectra(f.string());
    }
    progress.message("resuming " + run_dir + " from step " + std::to_string(s));
  }
  write_file_atomic(config_path, to_toml(config));
  json meta = {{"version", CURVNET_VERSION},
               {"git_revision", CURVNET_GIT_REV},
               {"device", device_name(device)},
               {"dtype", enum_name(kDTypes, config.train.dtype)},
               {"seed", config.train.seed},
               {"threads", omp_get_max_threads()},
               {"dataset", config.data.dataset},
               {"data_source", e.data.source},
               {"n_params", e.model->layout().total},
               {"start_time", utc_now("%Y-%m-%dT%H:%M:%SZ")},
               {"end_time", nullptr}};
  if (device == Device::cuda) meta["gpu"] = cuda_device_description();
  write_file_atomic(run_dir + "/meta.json", meta.dump(2) + "\n");

  JsonLinesWriter metrics(run_dir + "/metrics.jsonl"), evals(run_dir + "/eval.jsonl"),
      alarms(run_dir + "/alarms.jsonl"), stats(run_dir + "/stats.jsonl"), diagnostics;
  TensorBoardWriter tb(run_dir);
  // Every JSON-lines row also goes to TensorBoard under the same names.
  auto log_row = [&](JsonLinesWriter& w, RunLog kind, const json& row) {
    w.write(row);
    tb.row(kind, row);
  };
  // Adds tensors to spectra/step_s.safetensors: the doctor's at a model checkpoint and the
  // curvature's when it arrives, in either order.
  auto add_step_spectra = [&](int64_t s, const std::map<std::string, std::vector<double>>& added) {
    if (added.empty()) return;
    fs::create_directories(run_dir + "/spectra");
    const std::string path = run_dir + "/spectra/step_" + std::to_string(s) + ".safetensors";
    CurvatureOutput file;
    file.step = s;
    file.spectra = added;
    if (fs::exists(path))
      for (const auto& [name, t] : read_safetensors(path))
        if (!added.count(name)) file.spectra.emplace(name, safetensor_values<double>(t, path, name));
    CurvatureCheckpoint::write_spectra(path, file);
    SafeTensorMap new_tensors;
    for (auto& [name, t] : read_safetensors(path))
      if (added.count(name)) new_tensors.emplace(name, std::move(t));
    tb.spectra(s, new_tensors);
  };
  auto drain_doctor = [&]() {
    for (const json& row : e.doctor->take_stats_rows()) log_row(stats, RunLog::stats, row);
    for (const json& row : e.doctor->take_alarm_rows()) {
      alarms.write(row);
      if (row.value("rule", "") == "nonfinite") progress.message("alarm: " + row.value("message", ""));
    }
  };
  const int64_t curv_every = config.diagnostics.every;
  // On the CPU a checkpoint runs in the loop; on CUDA on a worker thread with its own
  // context, while training goes on (its results are logged when they arrive).
  std::unique_ptr<CurvatureCheckpoint> curvature;
  std::unique_ptr<CurvatureWorker> curvature_worker;
  if (curv_every > 0) {
    if (device == Device::cuda)
      curvature_worker = std::make_unique<CurvatureWorker>([&e] { return e.curvature(); });
    else
      curvature = e.curvature();
    diagnostics.open(run_dir + "/diagnostics.jsonl");
    fs::create_directories(run_dir + "/spectra");
  }
  double curv_seconds = 0;
  int64_t curv_done = 0;
  json curv_steps = json::array(), curv_skipped = json::array();
  auto curvature_arrived = [&](const CurvatureOutput& out) {
    for (const json& row : out.rows) log_row(diagnostics, RunLog::diagnostics, row);
    diagnostics.flush();
    e.doctor->on_curvature(out.step, out.observations, e.lr_at(out.step));
    add_step_spectra(out.step, out.spectra);
    curv_seconds += out.seconds;
    ++curv_done;
  };
  // Logs what the worker finished; with `wait`, first waits for everything queued.
  auto collect_curvature = [&](bool wait) {
    if (!curvature_worker) return;
    for (const CurvatureOutput& out : wait ? curvature_worker->finish() : curvature_worker->take_finished())
      curvature_arrived(out);
  };
  // The loss since the last logged step (the metrics row's "loss").
  double window_loss = e.st.log_window_loss;
  int64_t window_steps = e.st.log_window_steps;
  // Everything the logs hold up to this step is written and flushed before the save, and
  // the state saved with it continues them, so a run resumed from here writes what the
  // uninterrupted run would. `curvature_due`: this step's curvature checkpoint runs after
  // the save (a resume runs it again). A checkpoint taken only because the run was
  // interrupted (not `scheduled`) adds no weight spectra, so the resumed run's logs are
  // the uninterrupted run's.
  auto model_checkpoint = [&](bool curvature_due, bool scheduled) {
    collect_curvature(true);  // earlier steps' curvature
    if (scheduled) {
      std::map<std::string, std::vector<double>> spectra;
      for (const json& row : e.doctor->on_checkpoint(e.st.step, &spectra)) log_row(stats, RunLog::stats, row);
      add_step_spectra(e.st.step, spectra);
    }
    drain_doctor();
    for (JsonLinesWriter* w : {&metrics, &evals, &stats, &diagnostics, &alarms}) w->flush();
    tb.flush();
    e.st.log_window_loss = window_loss;
    e.st.log_window_steps = window_steps;
    e.st.curvature_due = curvature_due;
    e.st.doctor = e.doctor->state().dump();
    e.save_checkpoint(run_dir);
  };
  // A curvature checkpoint at step s (the parameters of step_s). With a budget, it is
  // skipped when it would lift the curvature share of the wall time above the budget
  // (its cost estimated by the finished ones).
  auto curvature_checkpoint = [&]() {
    const int64_t s = e.st.step;
    if (config.diagnostics.budget > 0 && curv_done > 0) {
      const double elapsed = now_s() - t_start;
      const double estimate = curv_seconds / static_cast<double>(curv_done);
      if (curv_seconds + estimate > config.diagnostics.budget * (elapsed + estimate)) {
        curv_skipped.push_back(s);
        return;
      }
    }
    curv_steps.push_back(s);
    if (curvature_worker)
      curvature_worker->submit(s, e.snapshot());
    else
      curvature_arrived(curvature->run(s, e.snapshot()));
  };
  const int64_t eval_every = *config.train.eval_every, ckpt_every = *config.checkpoint.every;
  const bool early = config.train.patience > 0;
  const std::string es_metric = enum_name(kStopMetrics, config.train.early_stopping_metric);
  const bool es_higher = higher_is_better(es_metric);

  if (!resuming) {
    progress.message("run directory: " + run_dir);
    progress.message("data: " + config.data.dataset + " train " + std::to_string(e.data.train.n) + " val " +
                     std::to_string(e.data.val.n) + " test " + std::to_string(e.data.test.n) + ", " +
                     std::to_string(e.model->layout().total) + " parameters, " + device_name(device) + " " +
                     enum_name(kDTypes, config.train.dtype) + ", " + std::to_string(e.total_steps) + " steps");
    const bool curvature_now = curvature || curvature_worker;
    if (ckpt_every > 0) model_checkpoint(curvature_now, true);  // step_0: the initialisation
    if (curvature_now) curvature_checkpoint();
    drain_doctor();
  } else if (e.st.curvature_due && (curvature || curvature_worker)) {
    curvature_checkpoint();  // the saved step's, which ran after the save
  }

  TrainSummary sum;
  sum.run_dir = run_dir;
  double last_log_t = now_s();
  int64_t window_items = 0;
  double last_val = std::nan("");
  const double loop_start = now_s();
  const int64_t first_step = e.st.step;

  auto evaluate_val = [&]() {
    if (e.data.val.n == 0) return;
    json row = e.evaluate(e.data.val, "val");
    log_row(evals, RunLog::eval, row);
    const std::string key = es_metric.substr(4);
    if (row.contains(key) && row[key].is_number()) {
      last_val = row[key].get<double>();
      if (early) {
        const bool better = !e.st.has_best || (es_higher ? last_val > e.st.best_metric : last_val < e.st.best_metric);
        if (better) {
          e.st.best_metric = last_val;
          e.st.has_best = true;
          e.st.evals_without_improvement = 0;
        } else {
          ++e.st.evals_without_improvement;
        }
      }
    }
    sum.final_eval = row;
  };

  while (e.st.step < e.total_steps) {
    // Steps after which the host reads the model must read their losses too (CUDA).
    const int64_t next = e.st.step + 1;
    auto due = [next](int64_t every) { return every > 0 && next % every == 0; };
    // A stop asked for (SIGINT/SIGTERM in the CLI) takes effect after this update.
    const bool stop_asked = o.should_stop && o.should_stop(next) && next < e.total_steps;
    e.step(due(eval_every) || due(ckpt_every) || due(curv_every) || stop_asked);
    for (const double l : e.step_losses) {
      sum.last_loss = l;
      window_loss += l;
      ++window_steps;
    }
    e.step_losses.clear();
    const int64_t s = e.st.step;  // updates done
    window_items += std::min(e.batch, e.data.train.n - ((s - 1) % e.steps_per_epoch) * e.batch);
    if (e.halted) {
      drain_doctor();
      sum.nonfinite = true;
      break;
    }
    const bool last = s == e.total_steps;
    if (s % config.train.log_every == 0 || last) {
      const double t = now_s();
      json row = {{"step", s}, {"epoch", (s - 1) / e.steps_per_epoch}, {"lr", e.lr_at(s - 1)},
                  {"clipped", e.last_clip.clipped}, {"time_s", t - t_start}};
      set_metric(row, "loss", window_loss / static_cast<double>(window_steps));
      set_metric(row, "grad_norm", e.last_clip.norm_before);
      set_metric(row, "grad_norm_clipped", e.last_clip.norm_after);
      row["items_per_s"] = t > last_log_t ? static_cast<double>(window_items) / (t - last_log_t) : 0.0;
      log_row(metrics, RunLog::metrics, row);
      window_loss = 0;
      window_steps = window_items = 0;
      last_log_t = t;
    }
    if ((eval_every > 0 && s % eval_every == 0) || (last && eval_every > 0)) evaluate_val();
    const bool stop_early = early && e.st.evals_without_improvement >= config.train.patience;
    // A step that ends the run anyway is not an interruption (a resume from it would train on).
    const bool interrupt = stop_asked && !stop_early;
    const bool curvature_now = (curvature || curvature_worker) && (s % curv_every == 0 || last || stop_early);
    const bool scheduled_checkpoint = ckpt_every > 0 && (s % ckpt_every == 0 || last || stop_early);
    const bool checkpoint_now = scheduled_checkpoint || (ckpt_every > 0 && interrupt);
    if (checkpoint_now) model_checkpoint(curvature_now, scheduled_checkpoint);
    if (curvature_now && !(interrupt && checkpoint_now)) curvature_checkpoint();  // else the resume runs it
    collect_curvature(false);
    drain_doctor();
    {
      const double elapsed = now_s() - loop_start;
      const double rate = static_cast<double>(s - first_step) / std::max(elapsed, 1e-9);
      std::ostringstream line;
      line << "epoch " << (s - 1) / e.steps_per_epoch + 1 << " step " << s << "/" << e.total_steps << " loss "
           << std::setprecision(4) << sum.last_loss;
      if (std::isfinite(last_val)) line << " " << es_metric << " " << std::setprecision(4) << last_val;
      line << " " << std::fixed << std::setprecision(0) << rate * static_cast<double>(e.batch) << " items/s ETA "
           << fmt_duration(static_cast<double>(e.total_steps - s) / std::max(rate, 1e-9));
      progress.update(line.str(), last);
    }
    if (interrupt) {
      sum.interrupted = true;
      progress.message("interrupted after step " + std::to_string(s) +
                       (checkpoint_now ? "; continue with: curvnet train --resume " + run_dir
                                       : "; checkpoints are off (checkpoint.every = 0), so it cannot be resumed"));
      break;
    }
    if (stop_early) {
      sum.early_stopped = true;
      progress.message("early stopping: " + es_metric + " did not improve for " + std::to_string(config.train.patience) +
                       " evaluations");
      break;
    }
  }
  collect_curvature(true);
  if (e.data.test.n > 0 && !sum.nonfinite && !sum.interrupted) {
    json row = e.evaluate(e.data.test, "test");
    log_row(evals, RunLog::eval, row);
    sum.final_eval = row;
  }
  drain_doctor();
  metrics.close();
  evals.close();
  alarms.close();
  stats.close();
  diagnostics.close();
  tb.close();
  progress.message("alarms: " + e.doctor->summary());
  if (curvature || curvature_worker) {
    meta["curvature_steps"] = curv_steps;
    meta["curvature_skipped_steps"] = curv_skipped;
    meta["curvature_seconds"] = curv_seconds;
  }
  sum.steps = e.st.step;
  sum.wall_s = now_s() - t_start;
  meta["end_time"] = utc_now("%Y-%m-%dT%H:%M:%SZ");
  meta["steps"] = e.st.step;
  meta["interrupted"] = sum.interrupted;
  meta["wall_s"] = sum.wall_s;
  write_file_atomic(run_dir + "/meta.json", meta.dump(2) + "\n");
  write_report(run_dir);
  progress.message("report: " + run_dir + "/report.html");
  return sum;
}

}  // namespace

TrainSummary train(const Config& given, const TrainOptions& o) {
  Config config = given;
  std::string run_dir;
  bool resuming = !o.resume_dir.empty();
  if (resuming) {
    run_dir = o.resume_dir;
    const std::string saved_path = run_dir + "/config.toml";
    if (!fs::exists(saved_path)) throw InputError("--resume " + run_dir + ": no config.toml (is this a run directory?)");
    const Config saved = load_config(saved_path);
    if (o.config_given) {
      Config resolved = config;  // compare against what the first start resolved
      if (!resolved.train.eval_every) resolved.train.eval_every = saved.train.eval_every;
      if (!resolved.checkpoint.every) resolved.checkpoint.every = saved.checkpoint.every;
      for (const std::string& key : config_differences(saved, resolved))
        if (!resumable_difference(key))
          throw InputError("--resume " + run_dir + ": " + key +
                           " differs from the run's saved config; only train.steps, train.epochs, train.log_every and "
                           "diagnostics.* may change");
      config = resolved;
    } else {
      config = saved;
    }
  } else {
    run_dir = prepare_run_dir(config, o);
  }
  if (config.train.dtype == DType::float64) return run_training<double>(config, o, run_dir, resuming);
  return run_training<float>(config, o, run_dir, resuming);
}

nlohmann::json evaluate_checkpoint(const std::string& path, const std::string& split, const std::string& device) {
  const fs::path ckpt = resolve_checkpoint(path);
  const fs::path run_dir = ckpt.parent_path().parent_path();
  const Config config = load_config((run_dir / "config.toml").string());
  auto run = [&](auto tag) -> json {
    using T = decltype(tag);
    Engine<T> e(config, resolve_device(device.empty() ? enum_name(kDeviceChoices, config.train.device) : device));
    load_model(*e.model, (ckpt / "model.safetensors").string());
    const std::string step_name = ckpt.filename().string();
    e.st.step = std::stoll(step_name.substr(5));
    const Dataset* d = split == "train" ? &e.data.train : split == "val" ? &e.data.val : split == "test" ? &e.data.test : nullptr;
    if (!d) throw InputError("--split " + split + ": expected train, val or test");
    if (d->n == 0) throw InputError("--split " + split + ": the split is empty for data set " + config.data.dataset);
    json row = e.evaluate(*d, split);
    row["checkpoint"] = ckpt.string();
    return row;
  };
  return config.train.dtype == DType::float64 ? run(double{}) : run(float{});
}

CurvatureOutput checkpoint_curvature(const std::string& path, const HessianOptions& ho) {
  const fs::path ckpt = resolve_checkpoint(path);
  const fs::path run_dir = ckpt.parent_path().parent_path();
  Config config = load_config((run_dir / "config.toml").string());
  if (!ho.kinds.empty()) config.diagnostics.kinds = ho.kinds;
  if (!ho.layers.empty()) config.diagnostics.layers = ho.layers;
  if (ho.batch_size > 0) config.diagnostics.batch_size = ho.batch_size;
  if (ho.mode) config.diagnostics.mode = *ho.mode;
  const Device device = resolve_device(ho.device.empty() ? enum_name(kDeviceChoices, config.train.device) : ho.device);
  auto run = [&](auto tag) -> CurvatureOutput {
    using T = decltype(tag);
    Engine<T> e(config, device);
    e.load_checkpoint(ckpt.string());
    const Dataset* d = ho.split == "train" ? nullptr
                       : ho.split == "val" ? &e.data.val
                       : ho.split == "test" ? &e.data.test
                                            : throw InputError("--data " + ho.split + ": expected train, val or test");
    if (d && d->n == 0) throw InputError("--data " + ho.split + ": the split is empty for data set " + config.data.dataset);
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
