#include "diagnostics/curvature_checkpoint.h"

#include <chrono>
#include <cmath>
#include <iomanip>
#include <sstream>

#include "core/memory.h"
#include "diagnostics/eigen.h"
#include "diagnostics/hessian_blocks.h"
#include "diagnostics/kfac.h"
#include "diagnostics/local_hessian.h"
#include "diagnostics/spectral_metrics.h"
#include "io/files.h"
#include "io/safetensors.h"
#include "layers/model.h"
#ifdef CURVNET_HAVE_CUDA
#include "kernels/cuda/context.cuh"
#include "kernels/cuda/eigen.h"
#endif

namespace cn {

using json = nlohmann::json;

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

}  // namespace

struct CurvatureCheckpoint::Impl {
  DiagnosticsConfig config;
  uint64_t seed;
  int64_t N;
  virtual ~Impl() = default;
  virtual CurvatureOutput run(int64_t step, const ModelSnapshot& s) = 0;
  CurvatureBlockHook block_hook;
};

namespace {

// Host values as D on device d.
template <class D>
void upload(Device d, D* dst, const std::vector<double>& src, int64_t n) {
  const std::vector<D> cast(src.begin(), src.begin() + n);
  device_copy(d, dst, Device::cpu, cast.data(), static_cast<size_t>(n) * sizeof(D));
}

template <class D>
struct TypedImpl final : CurvatureCheckpoint::Impl {
  Device device;  // where the model copy, the batch and every Hessian-vector product live
  std::unique_ptr<Sequential<D>> net;
  std::unique_ptr<Loss<D>> loss;
  std::unique_ptr<HvpEngine<D>> eng;
  Buffer<D> x, target;  // the curvature batch, uploaded once
  MetricOptions metric_options;
#ifdef CURVNET_HAVE_CUDA
  std::unique_ptr<cuda::DenseEigenSolver> gpu_solver;  // made on first use, on the thread that runs checkpoints
#endif

  TypedImpl(const DiagnosticsConfig& c, const std::vector<LayerSpec>& specs, int64_t n_inputs, LossKind lk,
            const std::vector<double>& xs, const std::vector<double>& ts, int64_t n, uint64_t sd, Device dev)
      : device(dev) {
    config = c;
    seed = sd;
    N = n;
    CN_CHECK_MSG(static_cast<int64_t>(xs.size()) == N * n_inputs,
                 "curvature batch: " << xs.size() << " input values for " << N << " × " << n_inputs);
    net = std::make_unique<Sequential<D>>(specs, n_inputs, device);
    // Room for one direction; the engine grows to the directions a block or a probe batch
    // applies at once when one does (64 HVP columns of every layer's width at N = 512 and
    // width 4096 would be 1 GiB per layer in float64, for nothing when no block is dense).
    net->reserve(N, 1);
    loss = std::make_unique<Loss<D>>(lk);
    loss->reserve(device, N, net->n_outputs());
    eng = std::make_unique<HvpEngine<D>>(*net, *loss);
    eng->reserve(N, 1);
    x.set_device(device);
    target.set_device(device);
    x.resize(static_cast<int64_t>(xs.size()));
    target.resize(static_cast<int64_t>(ts.size()));
    upload(device, x.data(), xs, x.size());
    upload(device, target.data(), ts, target.size());
    metric_options.eps = dtype_eps<D>();
    metric_options.tau_rel = c.tau_rel;  // 0: the dense default for D
    // The running statistics stay as the snapshot loads them.
    for (size_t i = 0; i < net->size(); ++i) net->layer(i).set_update_running(false);
  }

  void load(const ModelSnapshot& s) {
    const int64_t total = net->layout().total;
    CN_CHECK(static_cast<int64_t>(s.params.size()) == total);
    upload(device, net->params().data(), s.params, total);
    for (size_t i = 0; i < net->size(); ++i)
      for (const StateView<D>& v : net->layer(i).state()) {
        const auto it = s.buffers.find(std::to_string(i) + "." + v.name);
        if (it == s.buffers.end()) continue;
        CN_CHECK_MSG(static_cast<int64_t>(it->second.size()) >= v.size, "snapshot buffer " << it->first << " is short");
        upload(v.device, v.data, it->second, v.size);
      }
  }

  CurvatureBatch<D> batch(int64_t step) const {
    CurvatureBatch<D> b;
    b.ctx.device = device;
    b.ctx.training = config.mode == DiagMode::train;
    b.ctx.dropout_key = philox_key(seed, RngStream::curvature);
    b.ctx.step = static_cast<uint64_t>(step);
    b.x = x.data();
    b.target = target.data();
    b.N = N;
    return b;
  }

  std::vector<bool> bias_mask(size_t layer) const {
    std::vector<bool> m;
    for (const ParamSegment& seg : net->layout().segments)
      if (seg.layer == static_cast<int64_t>(layer)) m.insert(m.end(), static_cast<size_t>(seg.size()), seg.is_bias);
    return m;
  }

  // Lanczos, SLQ and Hutchinson work on float64 vectors. In float64 they stay where the
  // model lives (the GPU included); a float32 model gets host vectors, each product
  // converting one vector on the way in and out.
  DeviceOperator to_operator(const CurvatureMatVec<D>& op, int64_t n) const {
    if constexpr (std::is_same_v<D, double>) {
      return {device, [op](const double* v, double* out) { op(v, out, 1); }};
    } else {
      const Device d = device;
      auto vin = std::make_shared<Buffer<D>>(n, d), vout = std::make_shared<Buffer<D>>(n, d);
      auto host = std::make_shared<std::vector<D>>(n);
      const size_t bytes = static_cast<size_t>(n) * sizeof(D);
      return {Device::cpu, [op, vin, vout, host, d, n, bytes](const double* v, double* out) {
                for (int64_t i = 0; i < n; ++i) (*host)[i] = static_cast<D>(v[i]);
                device_copy(d, vin->data(), Device::cpu, host->data(), bytes);
                op(vin->data(), vout->data(), 1);
                device_copy(Device::cpu, host->data(), d, vout->data(), bytes);
                for (int64_t i = 0; i < n; ++i) out[i] = static_cast<double>((*host)[i]);
              }};
    }
  }

  ProbeKey key(int64_t step, int64_t layer, CurvatureKind kind) const {
    return ProbeKey{seed, curvature_draw_id(layer, kind), static_cast<uint64_t>(step)};
  }

  // The one place a dense block's spectrum is computed: LAPACK ?syevd for a block on the
  // host, cuSOLVER Xsyevd (on the current context's stream) for one built on the GPU
  // (`where`). Also gives the block's diagonal.
  EigResult<D> block_spectrum(const D* block, Device where, int64_t p, std::vector<double>* diag) {
    std::vector<D> staged;
    if (where != Device::cpu) {  // the host copy: the diagonal and the symmetry residual
      staged.resize(static_cast<size_t>(p * p));
      device_copy(Device::cpu, staged.data(), where, block, staged.size() * sizeof(D));
    }
    const D* host = where == Device::cpu ? block : staged.data();
    diag->resize(static_cast<size_t>(p));
    for (int64_t i = 0; i < p; ++i) (*diag)[i] = static_cast<double>(host[i * p + i]);
#ifdef CURVNET_HAVE_CUDA
    if (where == Device::cuda) {
      if (!gpu_solver) gpu_solver = std::make_unique<cuda::DenseEigenSolver>(cuda::context().stream());
      Buffer<D> work(p * p, Device::cuda), w(p, Device::cuda);  // syevd overwrites its input
      device_copy(Device::cuda, work.data(), Device::cuda, block, static_cast<size_t>(p * p) * sizeof(D));
      EigResult<D> r;
      r.symmetry_residual = symmetry_residual(host, p);
      r.info = gpu_solver->eigenvalues(work.data(), p, w.data());
      r.values.resize(static_cast<size_t>(p));
      device_copy(Device::cpu, r.values.data(), Device::cuda, w.data(), r.values.size() * sizeof(D));
      return r;
    }
#endif
    return eigh(host, p);
  }

  // A dense symmetric block (p × p on device `where`): spectrum, metrics, self-checks
  // against the operator.
  json dense_row(const D* block, Device where, int64_t p, const std::vector<bool>& is_bias, const DeviceOperator& op,
                 const ProbeKey& k, std::vector<double>* eigenvalues, SpectralMetrics* metrics) {
    std::vector<double> diag;
    const EigResult<D> eig = block_spectrum(block, where, p, &diag);
    eigenvalues->assign(eig.values.begin(), eig.values.end());
    SpectralMetrics m = spectral_metrics(*eigenvalues, diag, is_bias, metric_options);
    m.method = "dense";
    json row = to_json(m);
    *metrics = m;
    row["symmetry_residual"] = json_number(eig.symmetry_residual);
    row["solver_info"] = eig.info;
    // Trace from the eigenvalues against Hutchinson probes of the same block, computed by
    // Hessian-vector products (not from the dense matrix): an independent check.
    const HutchinsonResult h = hutchinson_trace(op, p, static_cast<int>(config.probes), k);
    double tr = 0;
    for (double v : *eigenvalues) tr += v;
    row["check_trace_hutchinson"] = json_number(h.trace);
    row["check_trace_stderr"] = json_number(h.standard_error);
    std::vector<std::string> failed;
    const double sym_tol = 1e3 * dtype_eps<D>();
    if (!(eig.symmetry_residual <= sym_tol)) failed.push_back("symmetry residual above " + fmt(sym_tol));
    if (eig.info != 0) failed.push_back("syevd info " + std::to_string(eig.info));
    // Hutchinson's error is statistical: 5 standard errors, plus rounding of the sums.
    double scale = 0;
    for (double v : *eigenvalues) scale += std::fabs(v);
    if (!(std::fabs(h.trace - tr) <= 5 * h.standard_error + 1e3 * dtype_eps<D>() * (scale + 1e-300)))
      failed.push_back("trace " + fmt(tr) + " vs Hutchinson " + fmt(h.trace) + " ± " + fmt(h.standard_error));
    row["checks"] = failed.empty() ? "passed" : "failed: " + join(failed);
    return row;
  }

  // Lanczos (extremes, converged pairs), SLQ deflated by the converged pairs (the quadrature
  // the metrics and the spectra file come from), and plain Hutchinson as an independent
  // check of the trace (docs/curvature.md §3).
  json iterative_row(const DeviceOperator& op, int64_t p, const ProbeKey& k, const std::string& prefix,
                     std::map<std::string, std::vector<double>>* spectra, SpectralMetrics* metrics) {
    LanczosOptions lo;
    lo.k = static_cast<int>(config.lanczos_k);
    lo.key = k;
    lo.converged_tol = kDeflationTol;
    const LanczosResult lz = lanczos(op, p, lo);
    SlqOptions so;
    so.n_probes = static_cast<int>(config.probes);
    so.key = k;
    so.key.b ^= 0x5A5A5A5Aull << 32;  // its own probes, not Lanczos's start vector
    if (config.tau_rel > 0) so.tau_rel = config.tau_rel;
    so.deflate = &lz;
    const SlqResult sq = slq(op, p, so);
    ProbeKey hk = k;
    hk.b ^= 0xA5A5A5A5ull << 32;
    const HutchinsonResult h = hutchinson_trace(op, p, static_cast<int>(config.probes), hk);
    const SpectralMetrics m = iterative_metrics(p, &lz, &sq, &h);
    json row = to_json(m);
    *metrics = m;
    row["deflated"] = sq.deflated;
    row["slq_steps"] = sq.steps;
    (*spectra)[prefix + ".ritz_nodes"] = sq.nodes;
    (*spectra)[prefix + ".ritz_weights"] = sq.weights;
    (*spectra)[prefix + ".ritz_probe_steps"] = std::vector<double>(sq.probe_steps.begin(), sq.probe_steps.end());
    (*spectra)[prefix + ".tau"] = {sq.tau};
    (*spectra)[prefix + ".zero_mass"] = {sq.zero_mass};
    (*spectra)[prefix + ".density_grid"] = sq.grid;
    (*spectra)[prefix + ".density"] = sq.density;
    std::vector<double> extremes = lz.smallest;
    extremes.insert(extremes.end(), lz.largest.rbegin(), lz.largest.rend());
    (*spectra)[prefix + ".lanczos_extremes"] = extremes;
    // Self-check: the deflated SLQ trace against plain Hutchinson (independent probes).
    const double err =
        std::sqrt(sq.trace.standard_error * sq.trace.standard_error + h.standard_error * h.standard_error);
    row["check_trace_hutchinson"] = json_number(h.trace);
    row["check_trace_stderr"] = json_number(h.standard_error);
    row["checks"] = std::fabs(sq.trace.value - h.trace) <= 5 * err + 1e-12 * std::fabs(h.trace)
                        ? "passed"
                        : "failed: SLQ trace " + fmt(sq.trace.value) + " vs Hutchinson " + fmt(h.trace);
    return row;
  }

  // The block's shape as the structural rank bound needs it (docs/curvature.md §4).
  BlockShape block_shape(size_t layer) const {
    BlockShape s;
    const Layer<D>& l = net->layer(layer);
    s.p = l.num_params();
    s.batch = N;
    s.linear = l.kind() == LayerKind::linear;
    s.d_in = l.in_features();
    s.d_out = l.out_features();
    for (bool b : bias_mask(layer)) s.bias = s.bias || b;
    const int64_t C = net->n_outputs();
    s.softmax_outputs = loss->kind() == LossKind::cross_entropy;
    s.outputs_rank = s.softmax_outputs ? C - 1 : C;
    const bool training = config.mode == DiagMode::train;
    s.output_layer = true;
    s.piecewise_linear_after = true;
    for (size_t i = layer + 1; i < net->size(); ++i) {
      const LayerKind k = net->layer(i).kind();
      if (k != LayerKind::identity) s.output_layer = false;
      const bool linear_map = k == LayerKind::linear || k == LayerKind::relu || k == LayerKind::leaky_relu ||
                              k == LayerKind::identity || k == LayerKind::dropout ||
                              (k == LayerKind::batchnorm && !training);
      if (!linear_map) s.piecewise_linear_after = false;
    }
    return s;
  }

  void add_structural_rank(size_t layer, CurvatureKind kind, SpectralMetrics* m, json* row) const {
    if (m->status == kStatusNotApplicable) return;
    const StructuralRank sr = structural_rank(kind, block_shape(layer));
    m->set_structural_rank(sr.bound, sr.rule);
    const json j = to_json(*m);
    for (const char* key : {"structural_rank", "rank_deficit_beyond_structure", "structural_rank_rule"}) {
      (*row)[key] = j.contains(key) ? j[key] : json(nullptr);
      row->erase(std::string(key) + "_status");
    }
  }

  static std::string fmt(double v) {
    std::ostringstream os;
    os << std::setprecision(6) << v;
    return os.str();
  }
  static std::string join(const std::vector<std::string>& v) {
    std::string s;
    for (const auto& x : v) s += (s.empty() ? "" : "; ") + x;
    return s;
  }

  CurvatureOutput run(int64_t step, const ModelSnapshot& s) override {
    const auto t0 = std::chrono::steady_clock::now();
    load(s);
    CurvatureOutput out;
    out.step = step;
    const CurvatureBatch<D> b = batch(step);
    std::vector<size_t> layers;
    if (config.layers.empty()) {
      for (size_t i = 0; i < net->size(); ++i)
        if (net->layer(i).num_params() > 0) layers.push_back(i);
    } else {
      for (int64_t l : config.layers) {
        if (l < 0 || l >= static_cast<int64_t>(net->size()) || net->layer(static_cast<size_t>(l)).num_params() == 0)
          throw InputError("diagnostics.layers: " + std::to_string(l) + " is not a layer with parameters");
        layers.push_back(static_cast<size_t>(l));
      }
    }
    int count = 0;
    for (const CurvatureKind kind : config.kinds)
      count += kind == CurvatureKind::full_top ? 1 : static_cast<int>(layers.size());
    int index = 0;
    auto announce = [&](int64_t layer, CurvatureKind kind) {
      if (!block_hook) return;
      CurvatureBlock blk{step, layer, kind, 0, false, index++, count};
      if (layer >= 0) {
        blk.n_params = net->layer(static_cast<size_t>(layer)).num_params();
        blk.dense =
            (kind == CurvatureKind::loss || kind == CurvatureKind::ggn) && blk.n_params <= config.dense_max_params;
      }
      if (!block_hook(blk)) throw CurvatureAbandoned();
    };
    for (const CurvatureKind kind : config.kinds) {
      const std::string kind_name = enum_name(kCurvatureKinds, kind);
      if (kind == CurvatureKind::full_top) {
        announce(-1, kind);
        out.observations.emplace_back();
        out.rows.push_back(full_top_row(step, s, b, &out.spectra, &out.observations.back()));
        continue;
      }
      for (size_t layer : layers) {
        announce(static_cast<int64_t>(layer), kind);
        const auto tk = std::chrono::steady_clock::now();
        out.observations.push_back({static_cast<int64_t>(layer), kind, {}, std::nullopt});
        json row = layer_row(step, layer, kind, kind_name, b, &out.spectra, &out.observations.back().metrics);
        add_structural_rank(layer, kind, &out.observations.back().metrics, &row);
        row["step"] = step;
        row["layer"] = layer;
        row["kind"] = kind_name;
        row["seconds"] = seconds_since(tk);
        out.rows.push_back(std::move(row));
      }
    }
    out.seconds = seconds_since(t0);
    return out;
  }

  json layer_row(int64_t step, size_t layer, CurvatureKind kind, const std::string& kind_name,
                 const CurvatureBatch<D>& b, std::map<std::string, std::vector<double>>* spectra,
                 SpectralMetrics* metrics) {
    const int64_t p = net->layer(layer).num_params();
    const std::string prefix = kind_name + "." + std::to_string(layer);
    const ProbeKey k = key(step, static_cast<int64_t>(layer), kind);
    const std::vector<bool> is_bias = bias_mask(layer);
    switch (kind) {
      case CurvatureKind::loss:
      case CurvatureKind::ggn: {
        const CurvatureMode mode = kind == CurvatureKind::loss ? CurvatureMode::hessian : CurvatureMode::ggn;
        const DeviceOperator op = to_operator(layer_matvec(*eng, b, layer, mode), p);
        if (p > config.dense_max_params) return iterative_row(op, p, k, prefix, spectra, metrics);
        // The Kronecker form is a CPU path; on a GPU the block comes from batched HVP
        // columns and stays there until its spectrum.
        const bool kron = device == Device::cpu && kron_applicable(*net, layer, b.ctx.training);
        std::vector<D> host_block;
        Buffer<D> device_block;
        if (kron)
          host_block = kron_block(*eng, b, layer, mode);
        else
          hvp_block(*eng, b, layer, mode, device_block);
        std::vector<double> eig;
        json row = kron ? dense_row(host_block.data(), Device::cpu, p, is_bias, op, k, &eig, metrics)
                        : dense_row(device_block.data(), device, p, is_bias, op, k, &eig, metrics);
        row["block_method"] = kron ? "kronecker" : "hvp_columns";
        (*spectra)[prefix + ".eigenvalues"] = std::move(eig);
        (*spectra)[prefix + ".tau"] = {metrics->tau};
        return row;
      }
      case CurvatureKind::local: {
        net->forward(b.ctx, b.x, N);
        LocalHessianOptions lo;
        lo.eig_device = net->device();  // on CUDA: the batched Jacobi kernel for the unit blocks
        const LocalHessianResult r = local_hessian(*net, layer, N, lo);
        *metrics = local_hessian_metrics(r, metric_options);
        json row = to_json(*metrics);
        row["symmetry_residual"] = r.max_symmetry_residual;
        row["solver_info"] = r.max_info;
        if (r.status != kStatusNotApplicable) {
          (*spectra)[prefix + ".eigenvalues"] = r.eigenvalues;
          (*spectra)[prefix + ".tau"] = {metrics->tau};
        }
        if (!r.reason.empty()) row["reason"] = r.reason;
        return row;
      }
      case CurvatureKind::kfac: {
        if (net->layer(layer).kind() != LayerKind::linear) {
          *metrics = not_applicable_metrics(p, "K-FAC covers Linear layers");
          json row = to_json(*metrics);
          return row;
        }
        eng->prepare(b.ctx, b.x, b.target, N);
        const KfacSpectrum sp = kfac_spectrum(kfac_factors(*eng, layer));
        *metrics = kfac_metrics(sp, metric_options);
        json row = to_json(*metrics);
        row["solver_info"] = sp.info;
        row["symmetry_residual"] = sp.symmetry_residual;
        // The products with a numerically zero factor are exactly 0 here (τ = 0 for them).
        (*spectra)[prefix + ".eigenvalues"] = kfac_kept_products(sp, metric_options.effective_tau_rel());
        (*spectra)[prefix + ".tau"] = {0.0};
        (*spectra)[prefix + ".a_eigenvalues"] = sp.a_eigenvalues;
        (*spectra)[prefix + ".g_eigenvalues"] = sp.g_eigenvalues;
        return row;
      }
      case CurvatureKind::diag:
      case CurvatureKind::fisher_diag: {
        const std::vector<D> d = kind == CurvatureKind::diag ? hessian_diag(*eng, b, layer, config.dense_max_params,
                                                                            256, seed, static_cast<uint64_t>(step))
                                                             : fisher_diag(*eng, b, layer);
        std::vector<double> v(d.begin(), d.end());
        json row;
        row["n_params"] = p;
        row["method"] = kind == CurvatureKind::fisher_diag ? "per_sample_gradients"
                        : p <= config.dense_max_params     ? "exact"
                                                           : "hutchinson";
        double sum = 0, bias = 0, mx = -INFINITY, mn = INFINITY;
        for (size_t i = 0; i < v.size(); ++i) {
          sum += v[i];
          if (is_bias[i]) bias += v[i];
          mx = std::max(mx, v[i]);
          mn = std::min(mn, v[i]);
        }
        row["trace"] = json_number(sum);
        row["mean"] = json_number(sum / static_cast<double>(p));
        row["max"] = json_number(mx);
        row["min"] = json_number(mn);
        row["bias_trace_share"] = sum != 0 ? json_number(bias / sum) : json(nullptr);
        (*spectra)[prefix + ".values"] = std::move(v);
        return row;
      }
      case CurvatureKind::full_top:
        break;
    }
    return json::object();
  }

  json full_top_row(int64_t step, const ModelSnapshot& s, const CurvatureBatch<D>& b,
                    std::map<std::string, std::vector<double>>* spectra, CurvatureObservation* obs) {
    const auto t0 = std::chrono::steady_clock::now();
    const int64_t n = net->layout().total;
    LanczosOptions lo;
    lo.k = static_cast<int>(config.lanczos_k);
    lo.key = key(step, -1, CurvatureKind::full_top);
    const LanczosResult lz = lanczos(to_operator(full_matvec(*eng, b), n), n, lo);
    json row;
    row["step"] = step;
    row["layer"] = nullptr;
    row["kind"] = enum_name(kCurvatureKinds, CurvatureKind::full_top);
    row["n_params"] = n;
    row["method"] = "lanczos";
    row["status"] = lz.largest.empty() ? "empty" : "ok";
    row["lambda_max"] = json_number(lz.lambda_max());
    row["lambda_min"] = json_number(lz.lambda_min());
    obs->layer = -1;
    obs->kind = CurvatureKind::full_top;
    obs->metrics.n = n;
    obs->metrics.method = "lanczos";
    obs->metrics.status = row["status"].get<std::string>();
    obs->metrics.lambda_max = lz.lambda_max();
    obs->metrics.lambda_min = lz.lambda_min();
    (*spectra)["full_top.eigenvalues"] = lz.largest;
    // The stability edge the sharpness rule compares λmax with.
    if (s.lr > 0) {
      const bool heavy_ball = s.optimizer == OptimKind::momentum || s.optimizer == OptimKind::nesterov;
      row["stability_edge"] = (heavy_ball ? 2.0 + 2.0 * s.momentum : 2.0) / s.lr;
    }
    if (!s.preconditioner.empty()) {
      std::vector<D> pre(s.preconditioner.begin(), s.preconditioner.end());
      const LanczosResult pz = lanczos(to_operator(preconditioned_matvec(*eng, b, pre), n), n, lo);
      row["preconditioned_lambda_max"] = json_number(pz.lambda_max());
      obs->preconditioned_lambda_max = pz.lambda_max();
      (*spectra)["full_top.preconditioned_eigenvalues"] = pz.largest;
    }
    row["seconds"] = seconds_since(t0);
    return row;
  }
};

}  // namespace

CurvatureCheckpoint::CurvatureCheckpoint(const DiagnosticsConfig& config, const std::vector<LayerSpec>& specs,
                                         int64_t n_inputs, LossKind loss, std::vector<double> x,
                                         std::vector<double> target, int64_t N, uint64_t seed, Device device) {
  if (device == Device::cuda && !cuda_available())
    throw InputError("curvature checkpoint on cuda: " + cuda_device_description());
  if (config.dtype == DType::float32)
    impl_ = std::make_unique<TypedImpl<float>>(config, specs, n_inputs, loss, x, target, N, seed, device);
  else
    impl_ = std::make_unique<TypedImpl<double>>(config, specs, n_inputs, loss, x, target, N, seed, device);
}
CurvatureCheckpoint::~CurvatureCheckpoint() = default;
CurvatureOutput CurvatureCheckpoint::run(int64_t step, const ModelSnapshot& s) { return impl_->run(step, s); }
int64_t CurvatureCheckpoint::batch() const { return impl_->N; }
void CurvatureCheckpoint::set_block_hook(CurvatureBlockHook hook) { impl_->block_hook = std::move(hook); }

void CurvatureCheckpoint::write_spectra(const std::string& path, const CurvatureOutput& out) {
  SafetensorsWriter w;
  for (const auto& [name, values] : out.spectra) w.add<double>(name, {static_cast<int64_t>(values.size())}, values);
  w.metadata("step", std::to_string(out.step));
  w.write(path);
}

std::string curvature_table(const std::vector<json>& rows) {
  std::ostringstream os;
  auto num = [](const json& row, const char* k) -> std::string {
    if (!row.contains(k) || !row[k].is_number()) return "-";
    std::ostringstream s;
    s << std::setprecision(4) << row[k].get<double>();
    return s.str();
  };
  os << std::left << std::setw(6) << "layer" << std::setw(12) << "kind" << std::setw(9) << "n" << std::setw(24)
     << "method" << std::setw(12) << "lambda_max" << std::setw(12) << "lambda_min" << std::setw(12) << "trace"
     << std::setw(12) << "condition" << std::setw(10) << "eff_rank" << std::setw(9) << "neg"
     << "status\n";
  for (const json& r : rows) {
    const std::string layer = r["layer"].is_null() ? "all" : std::to_string(r["layer"].get<int64_t>());
    os << std::setw(6) << layer << std::setw(12) << r.value("kind", "") << std::setw(9)
       << (r.contains("n_params") ? std::to_string(r["n_params"].get<int64_t>()) : "-") << std::setw(24)
       << r.value("method", "") << std::setw(12) << num(r, "lambda_max") << std::setw(12) << num(r, "lambda_min")
       << std::setw(12) << num(r, "trace") << std::setw(12) << num(r, "condition") << std::setw(10)
       << num(r, "effective_rank") << std::setw(9) << num(r, "negative_share")
       << r.value("status", r.value("checks", "")) << "\n";
  }
  return os.str();
}

}  // namespace cn
