#include "train/checkpoint.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "core/error.h"
#include "io/safetensors.h"

namespace cn {

namespace {
// Shape of a parameter tensor as PyTorch stores it.
template <class T>
std::vector<int64_t> torch_shape(const Sequential<T>& model, const ParamSegment& seg) {
  if (model.layer(static_cast<size_t>(seg.layer)).kind() == LayerKind::linear && seg.name.size() > 7 &&
      seg.name.compare(seg.name.size() - 7, 7, ".weight") == 0)
    return {seg.rows, seg.cols};
  return {seg.size()};
}
}  // namespace

template <class T>
void save_model(const Sequential<T>& model, const std::string& path) {
  std::vector<T> host(static_cast<size_t>(model.layout().total));
  device_copy(Device::cpu, host.data(), model.device(), model.params().data(), host.size() * sizeof(T));
  SafetensorsWriter w;
  for (const ParamSegment& seg : model.layout().segments)
    w.add<T>(seg.name, torch_shape(model, seg), host.data() + seg.offset);
  auto& mutable_model = const_cast<Sequential<T>&>(model);  // state() hands out views
  for (size_t i = 0; i < model.size(); ++i) {
    for (const StateView<T>& s : mutable_model.layer(i).state()) {
      std::vector<T> v(static_cast<size_t>(s.size));
      device_copy(Device::cpu, v.data(), s.device, s.data, v.size() * sizeof(T));
      const std::string name = std::to_string(i) + "." + s.name;
      if (s.name == "num_batches_tracked") {
        const int64_t n = static_cast<int64_t>(v[0]);
        w.add<int64_t>(name, {}, &n);
      } else {
        w.add<T>(name, {s.size}, v);
      }
    }
  }
  w.metadata("format", "pt");
  w.write(path);
}

template <class T>
void load_model(Sequential<T>& model, const std::string& path) {
  SafetensorsFile f{path, read_safetensors(path), {}};
  std::vector<T> host(static_cast<size_t>(model.layout().total));
  for (const ParamSegment& seg : model.layout().segments) {
    const auto v = f.get<double>(seg.name, torch_shape(model, seg));
    std::copy(v.begin(), v.end(), host.begin() + seg.offset);
  }
  device_copy(model.device(), model.params().data(), Device::cpu, host.data(), host.size() * sizeof(T));
  for (size_t i = 0; i < model.size(); ++i) {
    for (const StateView<T>& s : model.layer(i).state()) {
      const std::string name = std::to_string(i) + "." + s.name;
      std::vector<double> v =
          s.name == "num_batches_tracked" ? f.get<double>(name, std::vector<int64_t>{}) : f.get<double>(name, {s.size});
      std::vector<T> cast(v.begin(), v.end());
      device_copy(s.device, s.data, Device::cpu, cast.data(), cast.size() * sizeof(T));
    }
  }
}

void save_data_record(const Splits& s, const std::string& dataset, const std::string& path) {
  SafetensorsWriter w;
  w.add<int64_t>("train_rows", {static_cast<int64_t>(s.train_rows.size())}, s.train_rows);
  w.add<int64_t>("val_rows", {static_cast<int64_t>(s.val_rows.size())}, s.val_rows);
  w.add<int64_t>("test_rows", {static_cast<int64_t>(s.test_rows.size())}, s.test_rows);
  if (!s.feature_mean.empty()) {
    w.add<double>("feature_mean", {static_cast<int64_t>(s.feature_mean.size())}, s.feature_mean);
    w.add<double>("feature_std", {static_cast<int64_t>(s.feature_std.size())}, s.feature_std);
  }
  w.metadata("dataset", dataset);
  w.metadata("source", s.source);
  w.metadata("format", "curvnet-data");
  w.write(path);
}

template <class T>
void save_state(Optimizer<T>& optimizer, const TrainState& st, const std::string& path) {
  SafetensorsWriter w;
  for (auto& [name, buf] : optimizer.state()) w.add<T>("optim." + name, {static_cast<int64_t>(buf->size())}, *buf);
  const int64_t step = st.step, epoch = st.epoch, seed = static_cast<int64_t>(st.seed),
                bad = st.evals_without_improvement, has_best = st.has_best, total = st.first_total_steps;
  w.add<int64_t>("step", {}, &step);
  w.add<int64_t>("epoch", {}, &epoch);
  w.add<int64_t>("rng.seed", {}, &seed);
  w.add<int64_t>("data_order", {static_cast<int64_t>(st.data_order.size())}, st.data_order);
  w.add<double>("early_stopping.best", {}, &st.best_metric);
  w.add<int64_t>("early_stopping.has_best", {}, &has_best);
  w.add<int64_t>("early_stopping.bad_evals", {}, &bad);
  w.add<int64_t>("schedule.first_total_steps", {}, &total);
  const int64_t window_steps = st.log_window_steps, curvature_due = st.curvature_due;
  w.add<double>("log.window_loss", {}, &st.log_window_loss);
  w.add<int64_t>("log.window_steps", {}, &window_steps);
  w.add<int64_t>("curvature.due", {}, &curvature_due);
  if (!st.doctor.empty()) w.metadata("doctor", st.doctor);
  if (!st.param_mask.empty()) w.add<double>("prune.mask", {static_cast<int64_t>(st.param_mask.size())}, st.param_mask);
  w.metadata("format", "curvnet-state");
  w.write(path);
}

template <class T>
TrainState load_state(Optimizer<T>& optimizer, const std::string& path) {
  const SafetensorsFile f = load_safetensors(path);
  for (auto& [name, buf] : optimizer.state()) {
    const auto v = f.get<double>("optim." + name, {static_cast<int64_t>(buf->size())});
    std::copy(v.begin(), v.end(), buf->begin());
  }
  TrainState st;
  const std::vector<int64_t> scalar;
  // Every counter is range-checked here, so no later use (a resume cutting the logs back,
  // the loop's bounds) sees a value no save writes.
  auto counter = [&](const std::string& name, int64_t lo, int64_t hi) {
    const int64_t v = f.get<int64_t>(name, scalar)[0];
    if (v < lo || v > hi)
      throw InputError(path + ": " + name + " = " + std::to_string(v) + " is outside [" + std::to_string(lo) + ", " +
                       std::to_string(hi) + "]");
    return v;
  };
  auto finite = [&](const std::string& name) {
    const double v = f.get<double>(name, scalar)[0];
    if (!std::isfinite(v)) throw InputError(path + ": " + name + " is not finite");
    return v;
  };
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  st.step = counter("step", 0, kMax);
  st.epoch = counter("epoch", 0, st.step);
  st.seed = static_cast<uint64_t>(f.get<int64_t>("rng.seed", scalar)[0]);
  st.data_order = f.get<int64_t>("data_order");
  st.has_best = counter("early_stopping.has_best", 0, 1) != 0;
  st.best_metric = st.has_best ? finite("early_stopping.best") : f.get<double>("early_stopping.best", scalar)[0];
  st.evals_without_improvement = counter("early_stopping.bad_evals", 0, st.step);
  st.first_total_steps = counter("schedule.first_total_steps", 1, kMax);
  if (f.has("log.window_loss")) {
    st.log_window_loss = finite("log.window_loss");
    st.log_window_steps = counter("log.window_steps", 0, st.step);
    st.curvature_due = counter("curvature.due", 0, 1) != 0;
  }
  if (const auto it = f.metadata.find("doctor"); it != f.metadata.end()) st.doctor = it->second;
  if (f.has("prune.mask")) {
    st.param_mask = f.get<double>("prune.mask");
    for (double m : st.param_mask)
      if (m != 0.0 && m != 1.0) throw InputError(path + ": prune.mask holds a value other than 0 and 1");
  }
  return st;
}

#define CN_INSTANTIATE(T)                                                            \
  template void save_model<T>(const Sequential<T>&, const std::string&);             \
  template void load_model<T>(Sequential<T>&, const std::string&);                   \
  template void save_state<T>(Optimizer<T>&, const TrainState&, const std::string&); \
  template TrainState load_state<T>(Optimizer<T>&, const std::string&);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)

}  // namespace cn
