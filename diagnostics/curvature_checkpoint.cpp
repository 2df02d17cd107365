#include "diagnostics/curvature_checkpoint.h"

#include <chrono>
#include <cmath>
#include <condition_variable>
#include <deque>
#include <future>
#include <iomanip>
#include <mutex>
#include <sstream>
#include <thread>

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

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) { return std::chrono::duration<double>(Clock::now() - t).count(); }

// Adds the milliseconds since the last lap (or construction) to a CurvatureTiming field;
// does nothing without a timing struct.
class PhaseClock {
 public:
  PhaseClock(CurvatureTiming* timing, Device device) : timing_(timing), device_(device), t_(Clock::now()) {}
  // The device's queued work first, so the phase holds its own device time.
  void lap(double CurvatureTiming::*field) {
    if (!timing_) return;
#ifdef CURVNET_HAVE_CUDA
    if (device_ == Device::cuda) cuda::context().synchronize();
#endif
    const Clock::time_point now = Clock::now();
    timing_->*field += std::chrono::duration<double, std::milli>(now - t_).count();
    t_ = now;
  }
  void restart() { t_ = Clock::now(); }

 private:
  CurvatureTiming* timing_;
  Device device_;
  Clock::time_point t_;
};

}  // namespace

struct CurvatureCheckpoint::Impl {
  DiagnosticsConfig config;
  uint64_t seed;
  int64_t N;
  GpuDenseOptions gpu_options;
  virtual ~Impl() = default;
  virtual CurvatureOutput run(int64_t step, const ModelSnapshot& s, CurvatureTiming* timing) = 0;
  CurvatureBlockHook block_hook;
};

namespace {

// Host values as D on device d.
template <class D>
void upload(Device d, D* dst, const std::vector<double>& src, int64_t n) {
  const std::vector<D> cast(src.begin(), src.begin() + n);
  device_copy(d, dst, Device::cpu, cast.data(), static_cast<size_t>(n) * sizeof(D));
}

#ifdef CURVNET_HAVE_CUDA
// A dense block's spectrum from a solver thread.
template <class D>
struct GpuSolved {
  std::vector<D> values;  // ascending
  int info = 0;
  double ms = 0;  // the solve on its thread
};

// Host threads, each with its own CUDA context (stream, cuBLAS and cuSOLVER handles) made
// current for it and a DenseEigenSolver on that stream, solving the dense blocks handed to
// them: one cuSOLVER handle runs its calls one after another whatever the streams, so
// blocks on different threads are what overlaps. A thread's blocks run in the order they
// were submitted. docs/gpu.md "Curvature checkpoints on the GPU".
template <class D>
class GpuSolverPool {
 public:
  GpuSolverPool(int threads, int device) {
    try {
      for (int i = 0; i < std::max(1, threads); ++i) {
        lanes_.push_back(std::make_unique<Lane>());
        Lane* l = lanes_.back().get();
        l->thread = std::thread([l, device] { loop(*l, device); });
      }
    } catch (...) {  // no thread may outlive a pool that failed to start
      stop();
      throw;
    }
  }
  GpuSolverPool(const GpuSolverPool&) = delete;
  GpuSolverPool& operator=(const GpuSolverPool&) = delete;
  ~GpuSolverPool() { stop(); }
  int threads() const { return static_cast<int>(lanes_.size()); }

  // Solves the p × p block at `block` (device; complete before the call, overwritten by
  // syevd) on thread `lane` with the Jacobi kernel or syevd.
  std::future<GpuSolved<D>> submit(int lane, D* block, int64_t p, bool jacobi) {
    Lane& l = *lanes_.at(static_cast<size_t>(lane));
    Task task([block, p, jacobi](cuda::DenseEigenSolver* solver, std::exception_ptr failed) {
      if (!solver) std::rethrow_exception(failed);
      const auto t0 = Clock::now();
      GpuSolved<D> r;
      r.values.resize(static_cast<size_t>(p));
      try {
        r.info = solver->eigenvalues_to_host<D>(block, p, jacobi, r.values.data());
      } catch (...) {
        // Work queued before the failure may still write the block: it must be done before
        // the caller frees the block into the main stream's cache.
        try {
          cuda::context().synchronize();
        } catch (...) {}
        throw;
      }
      r.ms = std::chrono::duration<double, std::milli>(Clock::now() - t0).count();
      return r;
    });
    std::future<GpuSolved<D>> f = task.get_future();
    {
      std::lock_guard<std::mutex> lock(l.mu);
      l.queue.push_back(std::move(task));
    }
    l.wake.notify_one();
    return f;
  }

 private:
  // A thread that could not start fails each of its blocks with why (`failed`).
  using Task = std::packaged_task<GpuSolved<D>(cuda::DenseEigenSolver*, std::exception_ptr)>;
  struct Lane {
    std::thread thread;
    std::mutex mu;
    std::condition_variable wake;
    std::deque<Task> queue;
    bool stop = false;
  };

  // Each thread finishes what it was given, then ends.
  void stop() noexcept {
    for (auto& l : lanes_) {
      {
        std::lock_guard<std::mutex> lock(l->mu);
        l->stop = true;
      }
      l->wake.notify_all();
    }
    for (auto& l : lanes_)
      if (l->thread.joinable()) l->thread.join();
  }

  static void loop(Lane& l, int device) {
    std::unique_ptr<cuda::Context> ctx;
    std::unique_ptr<cuda::ContextScope> scope;
    std::unique_ptr<cuda::DenseEigenSolver> solver;
    std::exception_ptr failed;
    try {
      CN_CUDA_CHECK(cudaSetDevice(device));
      ctx = std::make_unique<cuda::Context>();
      scope = std::make_unique<cuda::ContextScope>(*ctx);
      solver = std::make_unique<cuda::DenseEigenSolver>(ctx->stream());
    } catch (...) {
      failed = std::current_exception();
    }
    for (;;) {
      Task task;
      {
        std::unique_lock<std::mutex> lock(l.mu);
        l.wake.wait(lock, [&] { return l.stop || !l.queue.empty(); });
        if (l.queue.empty()) break;
        task = std::move(l.queue.front());
        l.queue.pop_front();
      }
      task(solver.get(), failed);
    }
    solver.reset();  // its work done and its memory back while this thread's context is current
    scope.reset();
    ctx.reset();
  }

  std::vector<std::unique_ptr<Lane>> lanes_;
};
#endif

template <class D>
struct TypedImpl final : CurvatureCheckpoint::Impl {
  Device device;  // where the model copy, the batch and every Hessian-vector product live
  std::unique_ptr<Sequential<D>> net;
  std::unique_ptr<Loss<D>> loss;
  std::unique_ptr<HvpEngine<D>> eng;
  Buffer<D> x, target;  // the curvature batch, uploaded once
  MetricOptions metric_options;
  CurvatureOutput* out_ = nullptr;  // the run in progress

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

  std::vector<D> loss_or_ggn_block(const CurvatureBatch<D>& b, size_t layer, CurvatureMode mode) {
    return mode == CurvatureMode::hessian ? loss_block(*eng, b, layer) : ggn_block(*eng, b, layer);
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

  // A dense block's row from its spectrum (every value host-side), the metrics and the
  // self-checks: the symmetry residual measured before the solve, the solver's info, and
  // the trace from the eigenvalues against Hutchinson probes of the same block computed by
  // Hessian-vector products (not from the dense matrix): an independent check.
  json dense_row_from(const std::vector<double>& eigenvalues, const std::vector<double>& diag, double symmetry,
                      int info, const std::vector<bool>& is_bias, const HutchinsonResult& h, SpectralMetrics* metrics) {
    SpectralMetrics m = spectral_metrics(eigenvalues, diag, is_bias, metric_options);
    m.method = "dense";
    json row = to_json(m);
    *metrics = m;
    row["symmetry_residual"] = json_number(symmetry);
    row["solver_info"] = info;
    double tr = 0;
    for (double v : eigenvalues) tr += v;
    row["check_trace_hutchinson"] = json_number(h.trace);
    row["check_trace_stderr"] = json_number(h.standard_error);
    std::vector<std::string> failed;
    const double sym_tol = 1e3 * dtype_eps<D>();
    if (!(symmetry <= sym_tol)) failed.push_back("symmetry residual above " + fmt(sym_tol));
    if (info != 0) failed.push_back("syevd info " + std::to_string(info));
    // Hutchinson's error is statistical: 5 standard errors, plus rounding of the sums.
    double scale = 0;
    for (double v : eigenvalues) scale += std::fabs(v);
    if (!(std::fabs(h.trace - tr) <= 5 * h.standard_error + 1e3 * dtype_eps<D>() * (scale + 1e-300)))
      failed.push_back("trace " + fmt(tr) + " vs Hutchinson " + fmt(h.trace) + " ± " + fmt(h.standard_error));
    row["checks"] = failed.empty() ? "passed" : "failed: " + join(failed);
    return row;
  }

  HutchinsonResult trace_check(const DeviceOperator& op, int64_t p, const ProbeKey& k) const {
    return hutchinson_trace(op, p, static_cast<int>(config.probes), k);
  }

  // A dense block on the host (the CPU path): LAPACK ?syevd, metrics, self-checks.
  json dense_row_host(const D* block, int64_t p, const std::vector<bool>& is_bias, const DeviceOperator& op,
                      const ProbeKey& k, std::vector<double>* eigenvalues, SpectralMetrics* metrics,
                      PhaseClock& clock) {
    std::vector<double> diag(static_cast<size_t>(p));
    for (int64_t i = 0; i < p; ++i) diag[i] = static_cast<double>(block[i * p + i]);
    clock.lap(&CurvatureTiming::assembly_ms);
    const EigResult<D> eig = eigh(block, p);
    eigenvalues->assign(eig.values.begin(), eig.values.end());
    clock.lap(&CurvatureTiming::eigensolver_ms);
    const HutchinsonResult h = trace_check(op, p, k);
    clock.lap(&CurvatureTiming::checks_ms);
    json row = dense_row_from(*eigenvalues, diag, eig.symmetry_residual, eig.info, is_bias, h, metrics);
    clock.lap(&CurvatureTiming::metrics_ms);
    return row;
  }

#ifdef CURVNET_HAVE_CUDA
  // A dense block built on the GPU, its row written when its solve returns (finish_dense):
  // the block stays on the device until then.
  struct PendingDense {
    size_t row = 0;  // its place in the output's rows and observations
    size_t layer = 0;
    std::string prefix;
    int64_t p = 0;
    std::vector<bool> is_bias;
    cuda::BlockSummary summary;
    DeviceOperator op;  // the block's products, for its trace check
    ProbeKey key;
    HutchinsonResult check;
    Buffer<D> block;
    std::future<GpuSolved<D>> solved;
    Clock::time_point started;
    PendingDense() = default;
    PendingDense(PendingDense&&) = default;
    PendingDense& operator=(PendingDense&&) = delete;
    // Never free a block a solver thread may still be writing (an abandoned checkpoint).
    ~PendingDense() {
      if (solved.valid()) solved.wait();
    }
  };
  std::unique_ptr<GpuSolverPool<D>> pool;  // made on first use, by the thread that runs checkpoints
  std::deque<PendingDense> pending;
  std::vector<int64_t> submitted_sizes;  // this run's blocks, in order (their solver threads)
  size_t pending_bytes = 0;

  // Engine memory per HVP direction: the R-pass buffers of every layer and the two
  // ping-pong buffers at the curvature batch, counted twice for the layers' own caches.
  size_t hvp_bytes_per_direction() const {
    int64_t widths = 0, widest = 0;
    for (size_t i = 0; i < net->size(); ++i) {
      widths += net->layer(i).out_features();
      widest = std::max(widest, net->layer(i).out_features());
    }
    return static_cast<size_t>(N) * static_cast<size_t>(2 * widths + 2 * widest) * sizeof(D);
  }

  // Builds the block on the context's stream, reads its diagonal and symmetry residual on
  // the device and hands it to a solver thread; the next block is built at once (its trace
  // check waits for finish_dense, so no check delays a later block's solve). The row is a
  // placeholder until finish_dense.
  void start_dense_gpu(size_t row, size_t layer, CurvatureMode mode, const CurvatureBatch<D>& b,
                       const DeviceOperator& op, const ProbeKey& k, const std::string& prefix, PhaseClock& clock,
                       CurvatureTiming* timing) {
    PendingDense pd;
    pd.started = Clock::now();
    pd.row = row;
    pd.layer = layer;
    pd.prefix = prefix;
    pd.p = net->layer(layer).num_params();
    pd.is_bias = bias_mask(layer);
    const int64_t p = pd.p;
    const size_t bytes = static_cast<size_t>(p * p) * sizeof(D);
    if (!pending.empty() && pending_bytes + bytes > gpu_options.max_pending_bytes) finish_dense(clock, timing);
    clock.restart();
    hvp_block(*eng, b, layer, mode, pd.block, hvp_columns_per_product(p, hvp_bytes_per_direction(), gpu_options));
    clock.lap(&CurvatureTiming::hvp_ms);
    pd.summary = cuda::summarize_block<D>(pd.block.data(), p, cuda::context().stream());  // waits for the block
    if (!pool || pool->threads() != gpu_options.solver_threads) {  // options change between runs only
      pool.reset();
      pool = std::make_unique<GpuSolverPool<D>>(gpu_options.solver_threads, cuda::context().device());
    }
    submitted_sizes.push_back(p);
    const int lane = assign_blocks_to_threads(submitted_sizes, pool->threads()).back();
    const bool jacobi = choose_gpu_eigen_solver(p, cuda::batched_max_n<D>(), gpu_options) == GpuEigenSolver::jacobi;
    pd.solved = pool->submit(lane, pd.block.data(), p, jacobi);
    pd.op = op;
    pd.key = k;
    clock.lap(&CurvatureTiming::assembly_ms);
    pending_bytes += bytes;
    pending.push_back(std::move(pd));
  }

  // Runs the pending blocks' trace checks (HVPs on this thread's stream while the solver
  // threads work), then waits for every solve, in submission order, and writes the rows.
  void finish_dense(PhaseClock& clock, CurvatureTiming* timing) {
    clock.restart();
    for (PendingDense& pd : pending) pd.check = trace_check(pd.op, pd.p, pd.key);
    clock.lap(&CurvatureTiming::checks_ms);
    while (!pending.empty()) {
      PendingDense& pd = pending.front();
      const GpuSolved<D> r = pd.solved.get();
      clock.lap(&CurvatureTiming::eigensolver_ms);
      if (timing) {
        timing->solver_busy_ms += r.ms;
        timing->solver_threads = pool->threads();
      }
      std::vector<double> eig(r.values.begin(), r.values.end());
      CurvatureObservation& obs = out_->observations[pd.row];
      json row = dense_row_from(eig, pd.summary.diagonal, pd.summary.symmetry_residual, r.info, pd.is_bias, pd.check,
                                &obs.metrics);
      row["block_method"] = "hvp_columns";
      (*out_).spectra[pd.prefix + ".eigenvalues"] = std::move(eig);
      (*out_).spectra[pd.prefix + ".tau"] = {obs.metrics.tau};
      finish_row(pd.layer, obs.kind, &obs.metrics, &row, pd.started);
      out_->rows[pd.row] = std::move(row);
      pending_bytes -= static_cast<size_t>(pd.p * pd.p) * sizeof(D);
      pending.pop_front();  // the block goes back to this thread's stream: its solve is over
      clock.lap(&CurvatureTiming::metrics_ms);
    }
  }
#endif

  // What every per-layer row carries beyond its kind's own fields.
  void finish_row(size_t layer, CurvatureKind kind, SpectralMetrics* metrics, json* row, Clock::time_point started) {
    add_structural_rank(layer, kind, metrics, row);
    (*row)["step"] = out_->step;
    (*row)["layer"] = layer;
    (*row)["kind"] = enum_name(kCurvatureKinds, kind);
    (*row)["seconds"] = seconds_since(started);
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

  CurvatureOutput run(int64_t step, const ModelSnapshot& s, CurvatureTiming* timing) override {
    const auto t0 = Clock::now();
    if (timing) *timing = CurvatureTiming{};
    CurvatureOutput out;
    out.step = step;
    out_ = &out;
#ifdef CURVNET_HAVE_CUDA
    pending.clear();
    pending_bytes = 0;
    submitted_sizes.clear();
    try {
      run_blocks(step, s, out, timing);
    } catch (...) {
      pending.clear();  // waits for the solves in flight before their blocks are freed
      pending_bytes = 0;
      out_ = nullptr;
      throw;
    }
#else
    run_blocks(step, s, out, timing);
#endif
    out_ = nullptr;
    out.seconds = seconds_since(t0);
    if (timing) timing->total_ms = 1e3 * out.seconds;
    return out;
  }

  void run_blocks(int64_t step, const ModelSnapshot& s, CurvatureOutput& out, CurvatureTiming* timing) {
    PhaseClock clock(timing, device);
    load(s);
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
    auto dense = [&](size_t layer, CurvatureKind kind) {
      return (kind == CurvatureKind::loss || kind == CurvatureKind::ggn) &&
             net->layer(layer).num_params() <= config.dense_max_params;
    };
    auto announce = [&](int64_t layer, CurvatureKind kind) {
      if (!block_hook) return;
      CurvatureBlock blk{step, layer, kind, 0, false, index++, count};
      if (layer >= 0) {
        blk.n_params = net->layer(static_cast<size_t>(layer)).num_params();
        blk.dense = dense(static_cast<size_t>(layer), kind);
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
        const auto tk = Clock::now();
        const size_t at = out.rows.size();
        out.observations.push_back({static_cast<int64_t>(layer), kind, {}, std::nullopt});
        out.rows.emplace_back();
        if (timing && dense(layer, kind)) ++timing->dense_blocks;
#ifdef CURVNET_HAVE_CUDA
        // On a GPU a dense block is solved on a solver thread while the next ones are built;
        // its row is written when its solve returns, in its place.
        if (device == Device::cuda && dense(layer, kind)) {
          const CurvatureMode mode = kind == CurvatureKind::loss ? CurvatureMode::hessian : CurvatureMode::ggn;
          const int64_t p = net->layer(layer).num_params();
          const DeviceOperator op = to_operator(layer_matvec(*eng, b, layer, mode), p);
          start_dense_gpu(at, layer, mode, b, op, key(step, static_cast<int64_t>(layer), kind),
                          kind_name + "." + std::to_string(layer), clock, timing);
          continue;
        }
#endif
        json row = layer_row(step, layer, kind, kind_name, b, &out.spectra, &out.observations[at].metrics, clock);
        finish_row(layer, kind, &out.observations[at].metrics, &row, tk);
        out.rows[at] = std::move(row);
      }
    }
#ifdef CURVNET_HAVE_CUDA
    finish_dense(clock, timing);
#endif
  }

  json layer_row(int64_t step, size_t layer, CurvatureKind kind, const std::string& kind_name,
                 const CurvatureBatch<D>& b, std::map<std::string, std::vector<double>>* spectra,
                 SpectralMetrics* metrics, PhaseClock& clock) {
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
        // columns and is solved there (run_blocks: start_dense_gpu).
        const bool kron = kron_applicable(*net, layer, b.ctx.training);
        CN_CHECK_MSG(device == Device::cpu, "a dense block on the GPU goes to start_dense_gpu");
        clock.restart();
        std::vector<D> host_block = kron ? kron_block(*eng, b, layer, mode) : loss_or_ggn_block(b, layer, mode);
        clock.lap(&CurvatureTiming::hvp_ms);
        std::vector<double> eig;
        json row = dense_row_host(host_block.data(), p, is_bias, op, k, &eig, metrics, clock);
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
CurvatureOutput CurvatureCheckpoint::run(int64_t step, const ModelSnapshot& s, CurvatureTiming* timing) {
  return impl_->run(step, s, timing);
}
void CurvatureCheckpoint::set_gpu_dense_options(const GpuDenseOptions& options) {
  CN_CHECK_MSG(options.solver_threads >= 1, "GpuDenseOptions::solver_threads = " << options.solver_threads);
  impl_->gpu_options = options;
}
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
