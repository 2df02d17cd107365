// How the CUDA gemm, gemm_bias and gemm_bias_grad (kernels/ops.h) pick their kernels, and
// what they picked (kernels/cuda/gemm.cu). Plain C++: benchmarks and tests include it.
//
// Three modes, chosen by the environment variable CURVNET_GEMM (default lt_tuned) or
// set_gemm_mode. cublas: cublas<t>gemm, the bias added and summed by separate kernels.
// lt_heuristic / lt_tuned: cuBLASLt, the bias fused into the GEMM's epilogue; its heuristic
// proposes up to 8 algorithms for a problem key (shape, transposes, leading dimensions,
// pointer alignment, dtype, TF32, epilogue), and lt_tuned times them on the first eager
// call with that key on the context's stream and keeps the fastest (the heuristic's first
// unless another is clearly faster) for the rest of the process. Calls made while the
// stream is being recorded into a graph never time: they use the kept choice, or the
// heuristic's first. Whatever cuBLASLt cannot do falls back to the cublas path, with the
// same results. lt_tuned is the default: it was faster on every training step measured
// (docs/gpu.md). gemm_batched with one product takes gemm's path; with more, cuBLAS's
// strided batched GEMM in every mode.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace cn::cuda {

enum class GemmMode {
  cublas,        // cublas<t>gemm, bias added / summed by separate kernels
  lt_heuristic,  // cuBLASLt, the heuristic's first algorithm: fixed by the library alone
  lt_tuned,      // cuBLASLt, the fastest candidate timed on first use (the default)
};
// Process-wide. Changing it does not forget what was timed.
void set_gemm_mode(GemmMode mode);
GemmMode gemm_mode();

// One problem key seen so far and what serves it.
struct GemmPlanInfo {
  int dtype_bytes = 4;  // 4 float, 8 double
  bool tf32 = false;
  std::string epilogue;  // "none", "bias" (gemm_bias), "bgradb" (gemm_bias_grad)
  bool ta = false, tb = false;
  int64_t M = 0, Nc = 0, K = 0;  // the row-major problem of kernels/ops.h
  bool workspace = true;         // false: first seen during a graph recording, before any workspace
  std::string path;              // "cublasLt" or "fallback: <why>"
  int candidates = 0;            // algorithms the heuristic proposed (and that fit the workspace)
  int chosen = -1;               // index into them; -1 with the fallback
  bool tuned = false;            // chosen by timing (else the heuristic's first, so far)
  std::vector<double> us;        // median microseconds per candidate when tuned (< 0: failed)
  int64_t calls = 0;
};
std::vector<GemmPlanInfo> gemm_plans();
// A line per plan, for logs and benchmark output.
std::string describe(const GemmPlanInfo& p);
// Forgets every plan (benchmarks that compare the modes from a clean start).
void clear_gemm_plans();

}  // namespace cn::cuda
