// curvnet._curvnet.Model32 / Model64: one network (its layers over the flat parameter buffer, the
// loss, the HVP engine) in one dtype, on one device. The Python class curvnet.Model wraps it
// and checks every argument first (docs/python.md §2); the ndarray types here are the second
// guard (.noconvert(): never a silent copy).
#include <algorithm>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include <nanobind/stl/map.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/pair.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>
#include <nlohmann/json.hpp>

#include "bindings.h"
#include "config/config.h"
#include "config/enum_table.h"
#include "core/device.h"
#include "core/error.h"
#include "core/memory.h"
#include "core/philox.h"
#include "diagnostics/curvature_checkpoint.h"
#include "diagnostics/hessian_blocks.h"
#include "diagnostics/hvp.h"
#include "diagnostics/kfac.h"
#include "diagnostics/local_hessian.h"
#include "diagnostics/spectral_metrics.h"
#include "layers/model.h"
#include "train/engine.h"

namespace cnpy {

using namespace cn;

namespace {

template <class T>
using In1 = nb::ndarray<const T, nb::ndim<1>, nb::c_contig, nb::device::cpu>;
template <class T>
using In2 = nb::ndarray<const T, nb::ndim<2>, nb::c_contig, nb::device::cpu>;
// Targets: class indices (N) or N × C values.
template <class T>
using InAny = nb::ndarray<const T, nb::c_contig, nb::device::cpu>;

CurvatureKind curvature_kind(const std::string& name) { return parse_enum(kCurvatureKinds, name, "kind"); }

template <class T>
class PyModel {
 public:
  // From a config: its data set gives the input and output widths; the parameters are
  // initialised as `curvnet train` initialises them (train.seed).
  PyModel(const Config& config, const std::string& device) : config_(config) {
    device_ = resolve_device(device.empty() ? enum_name(kDeviceChoices, config.train.device) : device);
    engine_ = std::make_unique<Engine<T>>(config_, device_);
    net_ = engine_->model.get();
    loss_ = engine_->loss.get();
    target_width_ = engine_->shape.target_width;
    finish();
  }
  // From a layer list: no data set; `n_inputs`, `n_outputs` given.
  PyModel(const Config& config, int64_t n_inputs, int64_t n_outputs, const std::string& device) : config_(config) {
    device_ = resolve_device(device.empty() ? enum_name(kDeviceChoices, config.train.device) : device);
    if (n_inputs <= 0) throw InputError("n_inputs: expected a positive integer");
    own_net_ = std::make_unique<Sequential<T>>(resolve_layers(config.model, n_outputs), n_inputs, device_);
    own_net_->initialize(config.model, config.train.seed);
    own_loss_ = std::make_unique<Loss<T>>(config.loss.kind);
    net_ = own_net_.get();
    loss_ = own_loss_.get();
    target_width_ = config.loss.kind == LossKind::cross_entropy ? 1 : net_->n_outputs();
    finish();
  }

  int64_t n_inputs() const { return net_->n_inputs(); }
  int64_t n_outputs() const { return net_->n_outputs(); }
  int64_t num_params() const { return net_->layout().total; }
  int64_t target_width() const { return target_width_; }
  std::string device() const { return device_name(device_); }
  std::string config_toml() const { return to_toml(config_); }
  bool has_data() const { return engine_ != nullptr; }

  // (index, type, n_params, offset) of every layer.
  std::vector<std::tuple<int64_t, std::string, int64_t, int64_t>> layers() const {
    std::vector<std::tuple<int64_t, std::string, int64_t, int64_t>> out;
    for (size_t i = 0; i < net_->size(); ++i)
      out.emplace_back(static_cast<int64_t>(i), net_->layer(i).type(), net_->layer(i).num_params(),
                       net_->layer_offset(i));
    return out;
  }
  // (name, layer, offset, rows, cols, is_bias) of every parameter tensor.
  std::vector<std::tuple<std::string, int64_t, int64_t, int64_t, int64_t, bool>> segments() const {
    std::vector<std::tuple<std::string, int64_t, int64_t, int64_t, int64_t, bool>> out;
    for (const ParamSegment& s : net_->layout().segments)
      out.emplace_back(s.name, s.layer, s.offset, s.rows, s.cols, s.is_bias);
    return out;
  }

  // The flat parameter buffer itself (host models); Python makes the views.
  T* params_data() {
    if (device_ != Device::cpu)
      throw std::invalid_argument("parameters: the model lives on the GPU; use parameters_dlpack()");
    return net_->params().data();
  }
  nb::ndarray<nb::array_api> params_dlpack() {
    return nb::ndarray<nb::array_api>(net_->params().data(), {static_cast<size_t>(num_params())}, nb::handle(), {},
                                      nb::dtype<T>(),
                                      device_ == Device::cuda ? nb::device::cuda::value : nb::device::cpu::value, 0);
  }
  std::vector<double> params_copy() const {
    std::vector<T> h(static_cast<size_t>(num_params()));
    device_copy(Device::cpu, h.data(), device_, net_->params().data(), h.size() * sizeof(T));
    return std::vector<double>(h.begin(), h.end());
  }
  void set_params(In1<T> values) {
    if (static_cast<int64_t>(values.shape(0)) != num_params())
      throw std::invalid_argument("values: expected " + std::to_string(num_params()) + " parameters");
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    device_copy(device_, net_->params().data(), Device::cpu, values.data(), values.shape(0) * sizeof(T));
  }
  // BatchNorm's running statistics, "i.running_mean" -> values (copies).
  std::map<std::string, std::vector<double>> buffers() {
    std::map<std::string, std::vector<double>> out;
    for (size_t i = 0; i < net_->size(); ++i)
      for (const StateView<T>& v : net_->layer(i).state()) {
        std::vector<T> b(static_cast<size_t>(v.size));
        device_copy(Device::cpu, b.data(), v.device, v.data, b.size() * sizeof(T));
        out[std::to_string(i) + "." + v.name].assign(b.begin(), b.end());
      }
    return out;
  }
  void load_checkpoint(const std::string& dir) {
    if (!engine_) throw std::invalid_argument("load_checkpoint: the model was built from a layer list (no data set)");
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    engine_->load_checkpoint(dir);
  }
  // A split of the config's data set as (x, targets in the loss's layout), first n rows.
  std::pair<nb::ndarray<nb::numpy, T>, nb::ndarray<nb::numpy, T>> data(const std::string& split, int64_t n) {
    if (!engine_) throw std::invalid_argument("data: the model was built from a layer list (no data set)");
    const Dataset* d = split == "train"  ? &engine_->data.train
                       : split == "val"  ? &engine_->data.val
                       : split == "test" ? &engine_->data.test
                                         : nullptr;
    if (!d) throw std::invalid_argument("split: expected \"train\", \"val\" or \"test\", got \"" + split + "\"");
    const int64_t rows = n < 0 ? d->n : std::min(n, d->n);
    const std::vector<double> t = loss_targets(*d, engine_->shape);
    std::vector<T> x(d->x.begin(), d->x.begin() + rows * d->d);
    std::vector<T> y(t.begin(), t.begin() + rows * target_width_);
    auto xs = owned_array(std::move(x), {static_cast<size_t>(rows), static_cast<size_t>(d->d)});
    if (config_.loss.kind == LossKind::cross_entropy)
      return {xs, owned_array(std::move(y), {static_cast<size_t>(rows)})};
    return {xs, owned_array(std::move(y), {static_cast<size_t>(rows), static_cast<size_t>(target_width_)})};
  }

  // Output of the network (or of every layer) on x; running statistics untouched.
  std::vector<nb::ndarray<nb::numpy, T>> forward(In2<T> x, bool training, uint64_t step, bool all_layers) {
    const int64_t N = static_cast<int64_t>(x.shape(0));
    std::vector<std::vector<T>> outs;
    std::vector<int64_t> widths;
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      const T* xd = stage(x.data(), N * n_inputs(), xbuf_);
      net_->reserve(N, 1);
      RunningStatsFreeze<T> freeze(*net_);
      net_->forward(ctx(training, step), xd, N);
      for (size_t i = all_layers ? 0 : net_->size() - 1; i < net_->size(); ++i) {
        const int64_t w = width(i);
        std::vector<T> h(static_cast<size_t>(N * w));
        device_copy(Device::cpu, h.data(), device_, net_->layer_output(i), h.size() * sizeof(T));
        outs.push_back(std::move(h));
        widths.push_back(w);
      }
    }
    std::vector<nb::ndarray<nb::numpy, T>> result;
    for (size_t i = 0; i < outs.size(); ++i)
      result.push_back(owned_array(std::move(outs[i]), {static_cast<size_t>(N), static_cast<size_t>(widths[i])}));
    return result;
  }

  double loss(In2<T> x, InAny<T> y, bool training, uint64_t step) {
    const int64_t N = batch_of(x, y);
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    const T* xd = stage(x.data(), N * n_inputs(), xbuf_);
    const T* yd = stage(y.data(), N * target_width_, ybuf_);
    hvp_->reserve(N, 1);
    return hvp_->forward_loss(ctx(training, step), xd, yd, N);
  }

  std::pair<double, nb::ndarray<nb::numpy, T>> gradient(In2<T> x, InAny<T> y, bool training, uint64_t step) {
    const int64_t N = batch_of(x, y);
    std::vector<T> g(static_cast<size_t>(num_params()));
    double l = 0;
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      const T* xd = stage(x.data(), N * n_inputs(), xbuf_);
      const T* yd = stage(y.data(), N * target_width_, ybuf_);
      l = hvp_->gradient(ctx(training, step), xd, yd, N);
      device_copy(Device::cpu, g.data(), device_, net_->grads().data(), g.size() * sizeof(T));
    }
    return {l, owned_array(std::move(g), {static_cast<size_t>(num_params())})};
  }

  // H·V for K directions (V: K × P, row k = direction k) into `out` (K × P, host memory).
  double hvp_into(In2<T> x, InAny<T> y, In2<T> v, nb::ndarray<T, nb::ndim<2>, nb::c_contig, nb::device::cpu> out,
                  bool training, uint64_t step, bool ggn) {
    const int64_t N = batch_of(x, y), K = static_cast<int64_t>(v.shape(0)), P = num_params();
    nb::gil_scoped_release release;
    std::lock_guard<std::mutex> lock(mutex_);
    const T* xd = stage(x.data(), N * n_inputs(), xbuf_);
    const T* yd = stage(y.data(), N * target_width_, ybuf_);
    const T* vd = stage(v.data(), K * P, vbuf_);
    T* hd = out.data();
    if (device_ != Device::cpu) {
      hbuf_.resize(K * P);
      hd = hbuf_.data();
    }
    hvp_->reserve(N, K);
    double l = 0;
    if (ggn) {
      l = hvp_->prepare(ctx(training, step), xd, yd, N, CurvatureMode::ggn);
      hvp_->apply(vd, hd, K);
    } else {
      l = hvp_->hvp(ctx(training, step), xd, yd, N, vd, hd, K);
    }
    if (device_ != Device::cpu)
      device_copy(Device::cpu, out.data(), device_, hd, static_cast<size_t>(K * P) * sizeof(T));
    return l;
  }
  // The same, the result left on the model's device and handed out through DLPack (a CUDA
  // model: no copy to the host).
  nb::ndarray<nb::array_api> hvp_device(In2<T> x, InAny<T> y, In2<T> v, bool training, uint64_t step, bool ggn) {
    const int64_t N = batch_of(x, y), K = static_cast<int64_t>(v.shape(0)), P = num_params();
    auto* result = new Buffer<T>(K * P, device_);
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      const T* xd = stage(x.data(), N * n_inputs(), xbuf_);
      const T* yd = stage(y.data(), N * target_width_, ybuf_);
      const T* vd = stage(v.data(), K * P, vbuf_);
      hvp_->reserve(N, K);
      hvp_->prepare(ctx(training, step), xd, yd, N, ggn ? CurvatureMode::ggn : CurvatureMode::hessian);
      hvp_->apply(vd, result->data(), K);
    }
    nb::capsule owner(result, [](void* p) noexcept { delete static_cast<Buffer<T>*>(p); });
    const size_t shape[2] = {static_cast<size_t>(K), static_cast<size_t>(P)};
    return nb::ndarray<nb::array_api>(result->data(), 2, shape, owner, nullptr, nb::dtype<T>(),
                                      device_ == Device::cuda ? nb::device::cuda::value : nb::device::cpu::value, 0);
  }

  // One layer's curvature of `kind` on the batch: a p × p matrix (loss, ggn, local, kfac),
  // a vector of p values (diag, fisher_diag), or the whole network's P × P Hessian (full_top).
  nb::ndarray<nb::numpy, double> hessian_block(In2<T> x, InAny<T> y, int64_t layer, const std::string& kind_name,
                                               bool training, uint64_t step, int64_t dense_max, int64_t probes,
                                               uint64_t seed) {
    const int64_t N = batch_of(x, y);
    const CurvatureKind kind = curvature_kind(kind_name);
    if (kind != CurvatureKind::full_top && (layer < 0 || layer >= static_cast<int64_t>(net_->size())))
      throw std::out_of_range("layer: expected 0 ≤ layer < " + std::to_string(net_->size()) + ", got " +
                              std::to_string(layer));
    std::vector<double> values;
    size_t rows = 0, cols = 0;
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      const T* xd = stage(x.data(), N * n_inputs(), xbuf_);
      const T* yd = stage(y.data(), N * target_width_, ybuf_);
      hvp_->reserve(N, 64);
      CurvatureBatch<T> b{ctx(training, step), xd, yd, N};
      const size_t l = static_cast<size_t>(std::max<int64_t>(layer, 0));
      const int64_t p = kind == CurvatureKind::full_top ? num_params() : net_->layer(l).num_params();
      if (p == 0) throw std::invalid_argument("layer: layer " + std::to_string(layer) + " has no parameters");
      rows = cols = static_cast<size_t>(p);
      auto widen = [](const std::vector<T>& v) { return std::vector<double>(v.begin(), v.end()); };
      switch (kind) {
        case CurvatureKind::loss:
          values = widen(loss_block(*hvp_, b, l));
          break;
        case CurvatureKind::ggn:
          values = widen(ggn_block(*hvp_, b, l));
          break;
        case CurvatureKind::diag:
          values = widen(hessian_diag(*hvp_, b, l, dense_max, probes, seed, step));
          cols = 0;
          break;
        case CurvatureKind::fisher_diag:
          values = widen(fisher_diag(*hvp_, b, l));
          cols = 0;
          break;
        case CurvatureKind::kfac: {
          hvp_->prepare(b.ctx, xd, yd, N);
          values = kfac_matrix(kfac_factors(*hvp_, l));
          break;
        }
        case CurvatureKind::local:
          values = local_block(b, l);
          break;
        case CurvatureKind::full_top: {
          if (layer >= 0) throw std::invalid_argument("layer: full_top is the whole network's Hessian: layer=None");
          values = full_hessian(b);
          break;
        }
      }
    }
    if (cols == 0) return owned_array(std::move(values), {rows});
    return owned_array(std::move(values), {rows, cols});
  }

  // A curvature checkpoint on this batch, as `curvnet hessian` computes it: the rows
  // (JSON text, diagnostics.jsonl's fields) and the spectra (the safetensors tensors).
  std::pair<std::vector<std::string>, std::map<std::string, nb::ndarray<nb::numpy, double>>> spectrum(
      In2<T> x, InAny<T> y, const std::vector<std::string>& kinds, const std::vector<int64_t>& layers,
      const std::string& mode, int64_t dense_max_params, int64_t lanczos_k, int64_t probes, double tau_rel,
      const std::string& dtype, uint64_t seed, int64_t step, double lr) {
    const int64_t N = batch_of(x, y);
    DiagnosticsConfig dc = config_.diagnostics;
    dc.kinds.clear();
    for (const std::string& k : kinds) dc.kinds.push_back(curvature_kind(k));
    dc.layers = layers;
    dc.mode = parse_enum(kDiagModes, mode, "mode");
    dc.batch_size = N;
    dc.dense_max_params = dense_max_params;
    dc.lanczos_k = lanczos_k;
    dc.probes = probes;
    dc.tau_rel = tau_rel;
    dc.dtype = parse_enum(kDTypes, dtype, "dtype");
    CurvatureOutput out;
    {
      nb::gil_scoped_release release;
      std::lock_guard<std::mutex> lock(mutex_);
      std::vector<double> xv(x.data(), x.data() + N * n_inputs());
      std::vector<double> yv(y.data(), y.data() + N * target_width_);
      CurvatureCheckpoint cp(dc, net_->specs(), n_inputs(), config_.loss.kind, std::move(xv), std::move(yv), N, seed,
                             device_);
      ModelSnapshot snap;
      snap.params = params_copy();
      snap.buffers = buffers();
      snap.lr = lr;
      snap.optimizer = config_.optim.name;
      snap.momentum = config_.optim.momentum;
      out = cp.run(step, snap);
    }
    std::vector<std::string> rows;
    for (const nlohmann::json& r : out.rows) rows.push_back(r.dump());
    std::map<std::string, nb::ndarray<nb::numpy, double>> spectra;
    for (auto& [name, v] : out.spectra) {
      const size_t n = v.size();
      spectra.emplace(name, owned_array(std::move(v), {n}));
    }
    return {rows, spectra};
  }

 private:
  void finish() {
    hvp_ = std::make_unique<HvpEngine<T>>(*net_, *loss_);
    for (auto* b : {&xbuf_, &ybuf_, &vbuf_, &hbuf_}) b->set_device(device_);
  }
  int64_t width(size_t i) const { return net_->layer(i).out_features(); }
  PassCtx ctx(bool training, uint64_t step) const {
    PassCtx c;
    c.device = device_;
    c.training = training;
    c.dropout_key = philox_key(config_.train.seed, RngStream::curvature);
    c.step = step;
    return c;
  }
  // Host data as the engine wants it: the pointer itself on the CPU, a device copy on CUDA.
  const T* stage(const T* host, int64_t n, Buffer<T>& buf) {
    if (device_ == Device::cpu) return host;
    buf.resize(n);
    device_copy(device_, buf.data(), Device::cpu, host, static_cast<size_t>(n) * sizeof(T));
    return buf.data();
  }
  int64_t batch_of(const In2<T>& x, const InAny<T>& y) const {
    const int64_t N = static_cast<int64_t>(x.shape(0));
    const int64_t count = static_cast<int64_t>(y.size());
    if (count != N * target_width_)
      throw std::invalid_argument("y: expected " + std::to_string(N * target_width_) + " target values for " +
                                  std::to_string(N) + " samples");
    return N;
  }
  std::vector<double> local_block(const CurvatureBatch<T>& b, size_t l) {
    const LocalApplicability a = local_applicability(net_->specs(), l);
    const int64_t p = net_->layer(l).num_params();
    if (a.status == kStatusNotApplicable) throw std::invalid_argument("kind: local: " + a.reason);
    if (a.status == kStatusZeroMatrix) return std::vector<double>(static_cast<size_t>(p * p), 0.0);
    hvp_->forward_loss(b.ctx, b.x, b.target, b.N);
    const int64_t I = net_->layer(l).in_features(), O = width(l);
    std::vector<T> xin(static_cast<size_t>(b.N * I)), h(static_cast<size_t>(b.N * O));
    device_copy(Device::cpu, xin.data(), device_, net_->layer_input(l), xin.size() * sizeof(T));
    device_copy(Device::cpu, h.data(), device_, net_->layer_output(l), h.size() * sizeof(T));
    return local_hessian_full(xin.data(), h.data(), b.N, I, O, a.act);
  }
  std::vector<double> full_hessian(const CurvatureBatch<T>& b) {
    const int64_t P = num_params(), chunk = std::min<int64_t>(P, 64);
    if (P > 20000) throw std::invalid_argument("kind: full_top: the dense P × P Hessian needs P ≤ 20000");
    CurvatureMatVec<T> mv = full_matvec(*hvp_, b);
    std::vector<double> H(static_cast<size_t>(P * P));
    Buffer<T> V(chunk * P, device_), HV(chunk * P, device_);
    std::vector<T> hv(static_cast<size_t>(chunk * P));
    for (int64_t j0 = 0; j0 < P; j0 += chunk) {
      const int64_t k = std::min(chunk, P - j0);
      std::vector<T> e(static_cast<size_t>(k * P), T(0));
      for (int64_t j = 0; j < k; ++j) e[static_cast<size_t>(j * P + j0 + j)] = T(1);
      device_copy(device_, V.data(), Device::cpu, e.data(), e.size() * sizeof(T));
      mv(V.data(), HV.data(), k);
      device_copy(Device::cpu, hv.data(), device_, HV.data(), static_cast<size_t>(k * P) * sizeof(T));
      for (int64_t j = 0; j < k; ++j)
        for (int64_t i = 0; i < P; ++i) H[static_cast<size_t>(i * P + j0 + j)] = hv[static_cast<size_t>(j * P + i)];
    }
    return H;
  }

  Config config_;
  Device device_ = Device::cpu;
  std::unique_ptr<Engine<T>> engine_;
  std::unique_ptr<Sequential<T>> own_net_;
  std::unique_ptr<Loss<T>> own_loss_;
  Sequential<T>* net_ = nullptr;
  Loss<T>* loss_ = nullptr;
  std::unique_ptr<HvpEngine<T>> hvp_;
  int64_t target_width_ = 1;
  Buffer<T> xbuf_, ybuf_, vbuf_, hbuf_;
  // One call at a time: the GIL is released while the engine works, and the caches, the
  // staging buffers and the HVP engine's state belong to the model.
  std::mutex mutex_;
};

template <class T>
void bind_model(nb::module_& m, const char* name) {
  using M = PyModel<T>;
  nb::class_<M>(m, name, "One network in one dtype (use curvnet.Model).")
      .def(
          "__init__",
          [](M* self, const std::string& toml, const std::string& origin, const std::string& device) {
            new (self) M(parse_config(toml, origin), device);
          },
          nb::arg("toml"), nb::arg("origin"), nb::arg("device") = "",
          "From a config's TOML text (`origin` names it in errors and gives the run's name).")
      .def(
          "__init__",
          [](M* self, const std::string& toml, const std::string& origin, int64_t n_inputs, int64_t n_outputs,
             const std::string& device) { new (self) M(parse_config(toml, origin), n_inputs, n_outputs, device); },
          nb::arg("toml"), nb::arg("origin"), nb::arg("n_inputs"), nb::arg("n_outputs"), nb::arg("device") = "",
          "From [model.layers] without a data set: the input and output widths given.")
      .def_prop_ro("n_inputs", &M::n_inputs)
      .def_prop_ro("n_outputs", &M::n_outputs)
      .def_prop_ro("num_params", &M::num_params)
      .def_prop_ro("target_width", &M::target_width)
      .def_prop_ro("device", &M::device)
      .def_prop_ro("has_data", &M::has_data)
      .def("config_toml", &M::config_toml)
      .def("layers", &M::layers)
      .def("segments", &M::segments)
      .def(
          "params_view",
          [](nb::handle self, bool writable) -> nb::object {
            M& model = nb::cast<M&>(self);
            T* data = model.params_data();
            const size_t n = static_cast<size_t>(model.num_params());
            if (writable) return nb::cast(nb::ndarray<nb::numpy, T, nb::ndim<1>>(data, {n}, self));
            return nb::cast(nb::ndarray<nb::numpy, const T, nb::ndim<1>>(data, {n}, self));
          },
          nb::arg("writable") = false,
          "The flat parameter buffer as a numpy array (no copy; it keeps the model alive).")
      .def("params_dlpack", &M::params_dlpack, nb::rv_policy::reference_internal,
           "The flat parameter buffer through DLPack on the model's device (no copy).")
      .def("params_copy", &M::params_copy)
      .def("set_params", &M::set_params, nb::arg("values").noconvert())
      .def("buffers", &M::buffers)
      .def("load_checkpoint", &M::load_checkpoint, nb::arg("path"))
      .def("data", &M::data, nb::arg("split"), nb::arg("n") = -1)
      .def("forward", &M::forward, nb::arg("x").noconvert(), nb::arg("training"), nb::arg("step"),
           nb::arg("all_layers"))
      .def("loss", &M::loss, nb::arg("x").noconvert(), nb::arg("y").noconvert(), nb::arg("training"), nb::arg("step"))
      .def("gradient", &M::gradient, nb::arg("x").noconvert(), nb::arg("y").noconvert(), nb::arg("training"),
           nb::arg("step"))
      .def("hvp_into", &M::hvp_into, nb::arg("x").noconvert(), nb::arg("y").noconvert(), nb::arg("v").noconvert(),
           nb::arg("out").noconvert(), nb::arg("training"), nb::arg("step"), nb::arg("ggn"))
      .def("hvp_device", &M::hvp_device, nb::arg("x").noconvert(), nb::arg("y").noconvert(), nb::arg("v").noconvert(),
           nb::arg("training"), nb::arg("step"), nb::arg("ggn"))
      .def("hessian_block", &M::hessian_block, nb::arg("x").noconvert(), nb::arg("y").noconvert(), nb::arg("layer"),
           nb::arg("kind"), nb::arg("training"), nb::arg("step"), nb::arg("dense_max"), nb::arg("probes"),
           nb::arg("seed"))
      .def("spectrum", &M::spectrum, nb::arg("x").noconvert(), nb::arg("y").noconvert(), nb::arg("kinds"),
           nb::arg("layers"), nb::arg("mode"), nb::arg("dense_max_params"), nb::arg("lanczos_k"), nb::arg("probes"),
           nb::arg("tau_rel"), nb::arg("dtype"), nb::arg("seed"), nb::arg("step"), nb::arg("lr"));
}

}  // namespace

void register_model(nb::module_& m) {
  bind_model<float>(m, "Model32");
  bind_model<double>(m, "Model64");
  m.def(
      "metrics",
      [](const std::vector<double>& eigenvalues, std::optional<double> tau, double tau_rel, double eps) {
        MetricOptions o;
        o.tau = tau;
        o.tau_rel = tau_rel;
        o.eps = eps;
        return to_json(spectral_metrics(eigenvalues, o)).dump();
      },
      nb::arg("eigenvalues"), nb::arg("tau") = nb::none(), nb::arg("tau_rel") = 0.0,
      nb::arg("eps") = std::numeric_limits<double>::epsilon(),
      "The spectral metrics of an eigenvalue vector (JSON text of a diagnostics row's metric fields).");
}

}  // namespace cnpy
