// A curvature checkpoint (docs/design.md §4): on the fixed curvature batch, every selected layer's
// Hessian blocks of every selected kind, their spectra (dense ?syevd up to
// diagnostics.dense_max_params parameters, else Lanczos + SLQ + Hutchinson), the docs/spec.md §3
// metrics and the self-checks. It works on its own copy of the model (in
// diagnostics.dtype, on the device it is given: the training device), so training is
// never disturbed: BatchNorm's running statistics are not updated, and Dropout masks and
// probes come from RngStream::curvature keyed by (step, layer, kind). On CUDA the
// Hessian-vector products, dense blocks and their spectra run on the GPU, several blocks
// at once on solver threads with their own CUDA contexts (docs/gpu.md "Curvature
// checkpoints on the GPU"); rows keep their order.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "config/config.h"
#include "core/device.h"
#include "diagnostics/alarms.h"
#include "diagnostics/eigen.h"
#include "kernels/loss.h"

namespace cn {

struct CurvatureOutput {
  int64_t step = 0;
  std::vector<nlohmann::json> rows;                    // diagnostics.jsonl rows
  std::vector<CurvatureObservation> observations;      // the same rows' metrics, typed (for the alarms)
  std::map<std::string, std::vector<double>> spectra;  // spectra/step_N.safetensors tensors
  double seconds = 0;
};

// Where a checkpoint's time went, in milliseconds, filled by run() when asked for. Each part
// is a host clock around work the device has finished (only when timing is asked for, the
// device is synchronised at the end of each phase), the parts never overlap on the calling
// thread, so they add up to at most total_ms (the rest: loading the snapshot, rows of other
// kinds, bookkeeping). docs/gpu.md "Curvature checkpoints on the GPU".
struct CurvatureTiming {
  double hvp_ms = 0;          // dense blocks built: HVP columns (GPU, CPU) or the Kronecker form (CPU)
  double assembly_ms = 0;     // their diagonals and symmetry residuals; on the GPU the hand-over to a solver thread
  double eigensolver_ms = 0;  // their spectra: LAPACK (CPU); on the GPU the wait for the solver threads
                              // that other work did not hide
  double metrics_ms = 0;      // spectral metrics, rows and spectra of the dense blocks
  double checks_ms = 0;       // the dense blocks' Hutchinson trace checks (HVPs)
  double total_ms = 0;        // run() from start to end
  double solver_busy_ms = 0;  // GPU: the solver threads' own solve times, summed (overlaps the parts)
  int solver_threads = 0;     // GPU: threads that solved blocks (0 on the CPU)
  int dense_blocks = 0;
};

// The model's state at a checkpoint, as float64 host values in layout order.
struct ModelSnapshot {
  std::vector<double> params;
  std::map<std::string, std::vector<double>> buffers;  // "i.running_mean", "i.running_var"
  std::vector<double> preconditioner;                  // adaptive optimisers: the diagonal P (empty: none)
  double lr = 0;
  OptimKind optimizer = OptimKind::sgd;
  double momentum = 0;
};

// One block of a curvature checkpoint, announced before it is computed.
struct CurvatureBlock {
  int64_t step = 0;
  int64_t layer = -1;  // -1: the whole network (full_top)
  CurvatureKind kind = CurvatureKind::loss;
  int64_t n_params = 0;
  bool dense = false;        // loss/ggn: the p × p block and its eigendecomposition; else iterative or closed form
  int index = 0, count = 0;  // this block's place among the checkpoint's blocks (0-based)
};
// Told before each block; returning false abandons the checkpoint (CurvatureAbandoned).
using CurvatureBlockHook = std::function<bool(const CurvatureBlock&)>;
struct CurvatureAbandoned : std::exception {
  const char* what() const noexcept override { return "curvature checkpoint abandoned"; }
};

class CurvatureCheckpoint {
 public:
  // x: N × n_inputs, target: the loss's targets for those samples (class indices or N × C),
  // uploaded to `device` once. Device::cuda without a visible GPU: InputError.
  CurvatureCheckpoint(const DiagnosticsConfig& config, const std::vector<LayerSpec>& specs, int64_t n_inputs,
                      LossKind loss, std::vector<double> x, std::vector<double> target, int64_t N, uint64_t seed,
                      Device device = Device::cpu);
  ~CurvatureCheckpoint();
  CurvatureCheckpoint(const CurvatureCheckpoint&) = delete;
  CurvatureCheckpoint& operator=(const CurvatureCheckpoint&) = delete;

  // Throws CurvatureAbandoned when the block hook says stop (nothing of the step is kept).
  // With `timing`, also the breakdown of the time (synchronising the device between phases).
  CurvatureOutput run(int64_t step, const ModelSnapshot& snapshot, CurvatureTiming* timing = nullptr);
  // How dense blocks are built and solved on the GPU (no effect on the CPU). The results do
  // not depend on it: the same eigenvalues whatever the solver threads.
  void set_gpu_dense_options(const GpuDenseOptions& options);
  void set_block_hook(CurvatureBlockHook hook);
  int64_t batch() const;

  // Writes spectra as safetensors (atomically); the rows go to diagnostics.jsonl by the caller.
  static void write_spectra(const std::string& path, const CurvatureOutput& out);

  struct Impl;  // the dtype-specific engine (curvature_checkpoint.cpp)

 private:
  std::unique_ptr<Impl> impl_;
};

// The text table `curvnet hessian` prints (one line per row: layer, kind, n, method,
// λmax, λmin, trace, condition, effective rank, negative share, status).
std::string curvature_table(const std::vector<nlohmann::json>& rows);

}  // namespace cn
