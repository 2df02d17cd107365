// CUDA twins of gemm, gemm_bias, gemm_bias_grad (cuBLASLt), gemm_batched (cuBLAS; one
// product goes to gemm) and lane (the context's side stream) of kernels/ops.h. curvnet is
// row-major and cuBLAS column-major: a row-major X with leading dimension ld is the
// column-major Xᵀ with the same ld, so C = op(A) op(B) (row-major, M x Nc) is computed as
// the column-major Cᵀ = op(B)ᵀ op(A)ᵀ (Nc x M): operands swapped, each keeping its own
// transpose flag. In that column-major problem (m = Nc, n = M, k = K):
//  - gemm_bias adds bias[j] to row-major column j < Nc, a row of the column-major D:
//    CUBLASLT_EPILOGUE_BIAS (a vector as long as D's rows, broadcast over its columns).
//  - gemm_bias_grad is dW = dyᵀ x, i.e. (ta, tb) = (true, false): cuBLASLt's B operand is
//    dy, op T, k x n = N x O, and db[o] = Σ_n dy[n, o] is its sum over k for each of D's n
//    columns: CUBLASLT_EPILOGUE_BGRADB.
// FP32 / FP64 compute (CUBLAS_COMPUTE_32F_FAST_TF32 only when the context allows TF32). C is
// written with beta as BLAS. Algorithm choice and fallbacks: kernels/cuda/gemm.h.
// float64: cuBLASLt is asked like float32; where it offers no algorithm for an epilogue
// (CUBLAS_COMPUTE_64F support for BIAS/BGRADB varies by version and GPU), that problem runs
// as gemm + add-bias kernel / column_sum instead, with the same results.
#include <cublasLt.h>

#include <algorithm>
#include <atomic>
#include <climits>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <tuple>
#include <vector>

#include "core/error.h"
#include "kernels/cuda/common.cuh"
#include "kernels/cuda/gemm.h"
#include "kernels/ops.h"

namespace cn::cuda {

// --- kernels

// C = beta * C over an M x Nc row-major block (the K = 0 case: no product to add).
// beta = 0 writes zeros without reading C (BLAS semantics: NaN in C does not survive).
template <class T>
__global__ void scale_matrix_kernel(T* C, int64_t M, int64_t Nc, int64_t ldc, T beta) {
  CN_GRID_STRIDE(i, M * Nc) {
    T& c = C[(i / Nc) * ldc + i % Nc];
    c = beta == T(0) ? T(0) : beta * c;
  }
}

// C[m, n] += bias[n] over an M x Nc row-major block (gemm_bias without the epilogue).
template <class T>
__global__ void add_bias_rows_kernel(T* C, const T* bias, int64_t M, int64_t Nc, int64_t ldc) {
  CN_GRID_STRIDE(i, M * Nc) C[(i / Nc) * ldc + i % Nc] += bias[i % Nc];
}

// Keeps the GPU busy for about `ns` nanoseconds, so the host can queue a whole round of
// timed candidates before the first starts: the events then time the GPU, not the host.
__global__ void spin_kernel(int64_t ns) {
  uint64_t t0 = 0, t = 0;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
  do {
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  } while (static_cast<int64_t>(t - t0) < ns);
}

// --- cuBLAS (gemm_batched, and what cuBLASLt cannot do)

namespace {

inline cublasOperation_t op(bool t) { return t ? CUBLAS_OP_T : CUBLAS_OP_N; }

int to_int(int64_t v, const char* what) {
  CN_CHECK_MSG(v >= 0 && v <= INT_MAX, what << " = " << v << " does not fit cuBLAS's int");
  return static_cast<int>(v);
}

cublasStatus_t blas_gemm(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                         const float* alpha, const float* A, int lda, const float* B, int ldb, const float* beta,
                         float* C, int ldc) {
  return cublasSgemm(h, oa, ob, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t blas_gemm(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                         const double* alpha, const double* A, int lda, const double* B, int ldb, const double* beta,
                         double* C, int ldc) {
  return cublasDgemm(h, oa, ob, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
}
cublasStatus_t blas_gemm_strided(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                                 const float* alpha, const float* A, int lda, long long sa, const float* B, int ldb,
                                 long long sb, const float* beta, float* C, int ldc, long long sc, int count) {
  return cublasSgemmStridedBatched(h, oa, ob, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}
cublasStatus_t blas_gemm_strided(cublasHandle_t h, cublasOperation_t oa, cublasOperation_t ob, int m, int n, int k,
                                 const double* alpha, const double* A, int lda, long long sa, const double* B, int ldb,
                                 long long sb, const double* beta, double* C, int ldc, long long sc, int count) {
  return cublasDgemmStridedBatched(h, oa, ob, m, n, k, alpha, A, lda, sa, B, ldb, sb, beta, C, ldc, sc, count);
}

template <class T>
void scale_matrix(T* C, int64_t M, int64_t Nc, int64_t ldc, T beta) {
  scale_matrix_kernel<<<grid_for(M * Nc), kBlock, 0, stream()>>>(C, M, Nc, ldc, beta);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void add_bias_rows(T* C, const T* bias, int64_t M, int64_t Nc, int64_t ldc) {
  add_bias_rows_kernel<<<grid_for(M * Nc), kBlock, 0, stream()>>>(C, bias, M, Nc, ldc);
  CN_CUDA_CHECK(cudaGetLastError());
}

template <class T>
void cublas_gemm(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda, const T* B,
                 int64_t ldb, T beta, T* C, int64_t ldc) {
  CN_CUBLAS_CHECK(blas_gemm(context().cublas(), op(tb), op(ta), to_int(Nc, "Nc"), to_int(M, "M"), to_int(Kd, "K"),
                            &alpha, B, to_int(ldb, "ldb"), A, to_int(lda, "lda"), &beta, C, to_int(ldc, "ldc")));
}

// --- cuBLASLt: plans per problem key

constexpr size_t kLtWorkspaceBytes = size_t(32) << 20;  // split-K and stream-K partials
constexpr int kMaxCandidates = 8;
// A timed candidate replaces the heuristic's first only when this much faster: timings of
// near-equal kernels jitter, and a stable choice keeps runs reproducible.
constexpr double kSwitchRatio = 0.97;

enum class Epi : int { none = 0, bias = 1, bgradb = 2 };
const char* epi_name(Epi e) { return e == Epi::bias ? "bias" : e == Epi::bgradb ? "bgradb" : "none"; }

// The largest power of two (<= 256) that divides the address: cuBLASLt picks kernels by it.
uint32_t align_of(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  uint32_t r = 256;
  while (r > 1 && a % r != 0) r >>= 1;
  return r;
}

struct Key {
  int device = 0, dtype_bytes = 4, tf32 = 0, epi = 0, ta = 0, tb = 0, workspace = 1;
  int64_t M = 0, Nc = 0, K = 0, lda = 0, ldb = 0, ldc = 0;
  uint32_t align_a = 0, align_b = 0, align_c = 0, align_bias = 0;
  auto tie() const {
    return std::tie(device, dtype_bytes, tf32, epi, ta, tb, workspace, M, Nc, K, lda, ldb, ldc, align_a, align_b,
                    align_c, align_bias);
  }
  bool operator<(const Key& o) const { return tie() < o.tie(); }
};

struct Plan {
  bool queried = false;
  std::string fallback;  // non-empty: cuBLASLt does not serve this key (the reason)
  std::vector<cublasLtMatmulHeuristicResult_t> candidates;
  int chosen = 0;
  bool tuned = false;
  std::vector<double> us;
  int64_t calls = 0;
};

struct LtState {
  std::mutex mu;
  std::map<Key, Plan> plans;
  std::atomic<int> mode{static_cast<int>(initial_mode())};

  // CURVNET_GEMM=cublas|lt_heuristic|lt_tuned; lt_tuned unless set (see gemm.h).
  static GemmMode initial_mode() {
    const char* v = std::getenv("CURVNET_GEMM");
    const std::string s = v ? v : "lt_tuned";
    if (s == "cublas") return GemmMode::cublas;
    if (s == "lt_heuristic") return GemmMode::lt_heuristic;
    if (s == "lt_tuned") return GemmMode::lt_tuned;
    throw InputError("CURVNET_GEMM: expected cublas, lt_heuristic or lt_tuned, got '" + s + "'");
  }
};
LtState& lt_state() {
  static LtState* s = new LtState();  // never destroyed, as the context
  return *s;
}

// One cuBLASLt handle per host thread: a handle must not be used by two threads at once,
// and each thread drives one context at a time. The main thread's is never destroyed
// (tearing it down at exit races the runtime's shutdown); a worker's goes with its thread.
const std::thread::id kMainThread = std::this_thread::get_id();
struct LtHandle {
  cublasLtHandle_t h = nullptr;
  ~LtHandle() {
    if (h && std::this_thread::get_id() != kMainThread) CN_CUBLAS_WARN(cublasLtDestroy(h));
  }
};
cublasLtHandle_t lt_handle() {
  thread_local LtHandle handle;
  if (!handle.h) CN_CUBLAS_CHECK(cublasLtCreate(&handle.h));
  return handle.h;
}

template <class T>
constexpr cudaDataType_t cuda_type() {
  return sizeof(T) == 4 ? CUDA_R_32F : CUDA_R_64F;
}

// The descriptors of one call, on the stack (no allocation per call).
struct LtDescs {
  cublasLtMatmulDescOpaque_t op;
  cublasLtMatrixLayoutOpaque_t a, b, c;
};

template <class T>
void init_descs(LtDescs& d, bool tf32, Epi epi, bool ta, bool tb, int64_t M, int64_t Nc, int64_t K, int64_t lda,
                int64_t ldb, int64_t ldc, const void* bias) {
  const cudaDataType_t dt = cuda_type<T>();
  const cublasComputeType_t ct =
      sizeof(T) == 8 ? CUBLAS_COMPUTE_64F : (tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F);
  CN_CUBLAS_CHECK(cublasLtMatmulDescInit(&d.op, ct, dt));
  const cublasOperation_t opa = op(tb), opb = op(ta);  // operands swapped (see the top)
  CN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&d.op, CUBLASLT_MATMUL_DESC_TRANSA, &opa, sizeof(opa)));
  CN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&d.op, CUBLASLT_MATMUL_DESC_TRANSB, &opb, sizeof(opb)));
  if (epi != Epi::none) {
    const cublasLtEpilogue_t e = epi == Epi::bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_BGRADB;
    CN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&d.op, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof(e)));
    CN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&d.op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
    const int32_t bt = dt;
    CN_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(&d.op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, &bt, sizeof(bt)));
  }
  // Stored (before op) column-major shapes: row-major B is cuBLASLt's A, row-major A its B.
  CN_CUBLAS_CHECK(
      cublasLtMatrixLayoutInit(&d.a, dt, static_cast<uint64_t>(tb ? K : Nc), static_cast<uint64_t>(tb ? Nc : K), ldb));
  CN_CUBLAS_CHECK(
      cublasLtMatrixLayoutInit(&d.b, dt, static_cast<uint64_t>(ta ? M : K), static_cast<uint64_t>(ta ? K : M), lda));
  CN_CUBLAS_CHECK(cublasLtMatrixLayoutInit(&d.c, dt, static_cast<uint64_t>(Nc), static_cast<uint64_t>(M), ldc));
}

std::string status_text(const char* what, cublasStatus_t st) {
  std::ostringstream os;
  os << what << ": " << cublasGetStatusString(st);
  return os.str();
}

void query(Plan& plan, cublasLtHandle_t h, LtDescs& d, const Key& key, size_t ws_bytes) {
  plan.queried = true;
  cublasLtMatmulPreferenceOpaque_t pref;
  CN_CUBLAS_CHECK(cublasLtMatmulPreferenceInit(&pref));
  const uint64_t ws = ws_bytes;
  CN_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
  // cuBLASLt's A is our B (see the top); C and D are the same buffer.
  const uint32_t aa = key.align_b, ab = key.align_a, ac = key.align_c;
  CN_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &aa, sizeof(aa)));
  CN_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &ab, sizeof(ab)));
  CN_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &ac, sizeof(ac)));
  CN_CUBLAS_CHECK(
      cublasLtMatmulPreferenceSetAttribute(&pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &ac, sizeof(ac)));
  cublasLtMatmulHeuristicResult_t res[kMaxCandidates] = {};
  int n = 0;
  // NOT_SUPPORTED (no algorithm for this combination, e.g. an epilogue) is an answer, not
  // an error: the problem takes the fallback.
  const cublasStatus_t st =
      cublasLtMatmulAlgoGetHeuristic(h, &d.op, &d.a, &d.b, &d.c, &d.c, &pref, kMaxCandidates, res, &n);
  if (st != CUBLAS_STATUS_SUCCESS) {
    plan.fallback = status_text("heuristic", st);
    return;
  }
  for (int i = 0; i < n; ++i)
    if (res[i].state == CUBLAS_STATUS_SUCCESS && res[i].workspaceSize <= ws_bytes) plan.candidates.push_back(res[i]);
  if (plan.candidates.empty()) plan.fallback = "heuristic: no algorithm";
}

struct Events {
  std::vector<cudaEvent_t> all;
  ~Events() {
    for (cudaEvent_t e : all) CN_CUDA_WARN(cudaEventDestroy(e));
  }
  cudaEvent_t make() {
    cudaEvent_t e = nullptr;
    CN_CUDA_CHECK(cudaEventCreate(&e));
    all.push_back(e);
    return e;
  }
};

// Times every candidate (rounds of one run each, interleaved, medians) on `stream` and
// keeps the fastest in plan.chosen. `run(i)` enqueues candidate i; it writes only the
// call's outputs (beta = 0), so the timing runs leave nothing behind that the real call
// does not overwrite.
template <class Run>
void tune(Plan& plan, cudaStream_t stream, const Run& run) {
  const int n = static_cast<int>(plan.candidates.size());
  plan.tuned = true;
  std::vector<char> ok(static_cast<size_t>(n), 0);
  for (int i = 0; i < n; ++i) ok[i] = run(i) == CUBLAS_STATUS_SUCCESS;  // also loads the kernels' modules
  int first = -1, n_ok = 0;
  for (int i = 0; i < n; ++i)
    if (ok[i]) {
      if (first < 0) first = i;
      ++n_ok;
    }
  plan.us.assign(static_cast<size_t>(n), -1.0);
  if (first < 0) {
    plan.fallback = "every candidate failed to launch";
    return;
  }
  plan.chosen = first;
  if (n_ok == 1) return;

  std::vector<std::vector<float>> ms(static_cast<size_t>(n));
  Events events;
  auto round = [&] {
    std::vector<std::pair<cudaEvent_t, cudaEvent_t>> ev(static_cast<size_t>(n), {nullptr, nullptr});
    for (int i = 0; i < n; ++i)
      if (ok[i]) ev[i] = {events.make(), events.make()};
    // Covers the host's enqueueing (two event records and a launch per candidate, up to
    // tens of µs each), so no candidate's time includes a launch gap.
    spin_kernel<<<1, 1, 0, stream>>>(50000 + 30000 * int64_t(n_ok));
    CN_CUDA_CHECK(cudaGetLastError());
    for (int i = 0; i < n; ++i) {
      if (!ok[i]) continue;
      CN_CUDA_CHECK(cudaEventRecord(ev[i].first, stream));
      const cublasStatus_t st = run(i);
      CN_CUDA_CHECK(cudaEventRecord(ev[i].second, stream));
      if (st != CUBLAS_STATUS_SUCCESS) ok[i] = 0;
    }
    CN_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (int i = 0; i < n; ++i) {
      if (!ok[i]) continue;
      float t = 0;
      CN_CUDA_CHECK(cudaEventElapsedTime(&t, ev[i].first, ev[i].second));
      ms[i].push_back(t);
    }
  };
  round();
  // Fewer rounds for long products: a few milliseconds per problem key in all.
  const double t0 = ms[first].empty() ? 0.0 : ms[first][0];
  const int rounds = t0 > 2.0 ? 2 : (t0 > 0.3 ? 3 : 7);
  for (int r = 1; r < rounds; ++r) round();

  int best = -1;
  for (int i = 0; i < n; ++i) {
    if (!ok[i] || ms[i].empty()) continue;
    std::vector<float> v = ms[i];
    std::nth_element(v.begin(), v.begin() + v.size() / 2, v.end());
    plan.us[i] = 1e3 * v[v.size() / 2];
    if (best < 0 || plan.us[i] < plan.us[best]) best = i;
  }
  if (best < 0) {
    plan.fallback = "every candidate failed to launch";
    return;
  }
  int keep = ok[first] ? first : best;
  if (best != keep && plan.us[best] < kSwitchRatio * plan.us[keep]) keep = best;
  plan.chosen = keep;
}

// One product through cuBLASLt. False when cuBLASLt does not serve this problem (nothing
// was enqueued): the caller runs its fallback.
template <class T>
bool lt_matmul(Epi epi, bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda,
               const T* B, int64_t ldb, T beta, T* C, int64_t ldc, const T* bias) {
  LtState& S = lt_state();
  const auto mode = static_cast<GemmMode>(S.mode.load());
  if (mode == GemmMode::cublas) return false;
  Context& ctx = context();
  const cudaStream_t st = ctx.stream();
  cudaStreamCaptureStatus capture = cudaStreamCaptureStatusNone;
  CN_CUDA_CHECK(cudaStreamIsCapturing(st, &capture));
  const bool capturing = capture != cudaStreamCaptureStatusNone;

  std::lock_guard<std::mutex> lock(S.mu);
  // The workspace comes from the context (stream-ordered scratch shared with other ops);
  // it is sized outside recordings only, so a recording never allocates. A key first seen
  // inside a recording, before this context has one, is planned without workspace.
  void* ws = nullptr;
  size_t ws_bytes = 0;
  if (!capturing || ctx.workspace_bytes() >= kLtWorkspaceBytes) {
    ws = ctx.workspace(kLtWorkspaceBytes);
    ws_bytes = kLtWorkspaceBytes;
  }

  Key key;
  key.device = ctx.device();
  key.dtype_bytes = sizeof(T);
  key.tf32 = sizeof(T) == 4 && ctx.allow_tf32();
  key.epi = static_cast<int>(epi);
  key.ta = ta;
  key.tb = tb;
  key.workspace = ws_bytes > 0;
  key.M = M;
  key.Nc = Nc;
  key.K = Kd;
  key.lda = lda;
  key.ldb = ldb;
  key.ldc = ldc;
  key.align_a = align_of(A);
  key.align_b = align_of(B);
  key.align_c = align_of(C);
  key.align_bias = epi == Epi::none ? 0 : align_of(bias);

  LtDescs d;
  init_descs<T>(d, key.tf32 != 0, epi, ta, tb, M, Nc, Kd, lda, ldb, ldc, bias);
  const cublasLtHandle_t h = lt_handle();
  Plan& plan = S.plans[key];
  if (!plan.queried) query(plan, h, d, key, ws_bytes);
  if (!plan.fallback.empty() || plan.candidates.empty()) return false;  // empty: a query that threw

  auto run = [&](int i) {
    return cublasLtMatmul(h, &d.op, &alpha, B, &d.a, A, &d.b, &beta, C, &d.c, C, &d.c,
                          &plan.candidates[static_cast<size_t>(i)].algo, ws, ws_bytes, st);
  };
  if (mode == GemmMode::lt_tuned && !plan.tuned && !capturing && beta == T(0)) {
    tune(plan, st, run);
    if (!plan.fallback.empty()) return false;
  }
  const int i = mode == GemmMode::lt_tuned ? plan.chosen : 0;
  const cublasStatus_t s = run(i);
  if (s != CUBLAS_STATUS_SUCCESS) {
    // A launch refused for a planned algorithm: this key takes the fallback from now on.
    plan.fallback = status_text("cublasLtMatmul", s);
    return false;
  }
  ++plan.calls;
  return true;
}

}  // namespace

// --- gemm mode and plans (kernels/cuda/gemm.h)

void set_gemm_mode(GemmMode mode) { lt_state().mode.store(static_cast<int>(mode)); }
GemmMode gemm_mode() { return static_cast<GemmMode>(lt_state().mode.load()); }

std::vector<GemmPlanInfo> gemm_plans() {
  LtState& S = lt_state();
  std::lock_guard<std::mutex> lock(S.mu);
  std::vector<GemmPlanInfo> out;
  for (const auto& [k, p] : S.plans) {
    GemmPlanInfo g;
    g.dtype_bytes = k.dtype_bytes;
    g.tf32 = k.tf32 != 0;
    g.epilogue = epi_name(static_cast<Epi>(k.epi));
    g.ta = k.ta != 0;
    g.tb = k.tb != 0;
    g.M = k.M;
    g.Nc = k.Nc;
    g.K = k.K;
    g.workspace = k.workspace != 0;
    g.path = p.fallback.empty() ? "cublasLt" : "fallback: " + p.fallback;
    g.candidates = static_cast<int>(p.candidates.size());
    g.chosen = p.fallback.empty() ? p.chosen : -1;
    g.tuned = p.tuned;
    g.us = p.us;
    g.calls = p.calls;
    out.push_back(std::move(g));
  }
  return out;
}

std::string describe(const GemmPlanInfo& p) {
  std::ostringstream os;
  os << (p.dtype_bytes == 4 ? (p.tf32 ? "tf32" : "f32") : "f64") << " " << p.epilogue << " ta=" << p.ta
     << " tb=" << p.tb << " M=" << p.M << " N=" << p.Nc << " K=" << p.K << (p.workspace ? "" : " (no workspace)")
     << ": " << p.path;
  if (p.chosen >= 0) {
    os << ", algorithm " << p.chosen << " of " << p.candidates << (p.tuned ? " (timed)" : " (heuristic)");
    if (p.tuned && p.chosen < static_cast<int>(p.us.size())) {
      os << ", " << p.us[static_cast<size_t>(p.chosen)] << " us";
      if (!p.us.empty() && p.us[0] > 0) os << " vs " << p.us[0] << " us for the heuristic's first";
    }
  }
  os << ", " << p.calls << " calls";
  return os.str();
}

void clear_gemm_plans() {
  LtState& S = lt_state();
  std::lock_guard<std::mutex> lock(S.mu);
  S.plans.clear();
}

// --- the ops

void lane(Lane l) {
  Context& ctx = context();
  if (l == Lane::side)
    ctx.fork_side();
  else
    ctx.to_main(l == Lane::joined);
}

template <class T>
void gemm(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda, const T* B,
          int64_t ldb, T beta, T* C, int64_t ldc) {
  if (M == 0 || Nc == 0) return;
  if (Kd == 0) return scale_matrix(C, M, Nc, ldc, beta);
  if (lt_matmul<T>(Epi::none, ta, tb, M, Nc, Kd, alpha, A, lda, B, ldb, beta, C, ldc, nullptr)) return;
  cublas_gemm<T>(ta, tb, M, Nc, Kd, alpha, A, lda, B, ldb, beta, C, ldc);
}

template <class T>
void gemm_bias(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, const T* A, int64_t lda, const T* B, int64_t ldb,
               const T* bias, T* C, int64_t ldc) {
  if (M == 0 || Nc == 0) return;
  if (Kd > 0 && lt_matmul<T>(Epi::bias, ta, tb, M, Nc, Kd, T(1), A, lda, B, ldb, T(0), C, ldc, bias)) return;
  gemm<T>(ta, tb, M, Nc, Kd, T(1), A, lda, B, ldb, T(0), C, ldc);
  add_bias_rows(C, bias, M, Nc, ldc);
}

template <class T>
void gemm_bias_grad(int64_t M, int64_t Nc, int64_t Kd, const T* A, int64_t lda, const T* B, int64_t ldb, T* C,
                    int64_t ldc, T* bias_grad) {
  if (M == 0) return;
  if (Kd > 0 && Nc > 0 &&
      lt_matmul<T>(Epi::bgradb, true, false, M, Nc, Kd, T(1), A, lda, B, ldb, T(0), C, ldc, bias_grad))
    return;
  gemm<T>(true, false, M, Nc, Kd, T(1), A, lda, B, ldb, T(0), C, ldc);
  column_sum_ld<T>(A, Kd, M, lda, bias_grad, false);
}

template <class T>
void gemm_batched(bool ta, bool tb, int64_t M, int64_t Nc, int64_t Kd, T alpha, const T* A, int64_t lda,
                  int64_t strideA, const T* B, int64_t ldb, int64_t strideB, T beta, T* C, int64_t ldc, int64_t strideC,
                  int64_t count) {
  if (M == 0 || Nc == 0 || count == 0) return;
  // One product (an R-pass for one direction): the tuned cuBLASLt path of gemm.
  if (count == 1) return gemm<T>(ta, tb, M, Nc, Kd, alpha, A, lda, B, ldb, beta, C, ldc);
  if (Kd == 0) {
    for (int64_t k = 0; k < count; ++k) scale_matrix(C + k * strideC, M, Nc, ldc, beta);
    return;
  }
  CN_CUBLAS_CHECK(blas_gemm_strided(context().cublas(), op(tb), op(ta), to_int(Nc, "Nc"), to_int(M, "M"),
                                    to_int(Kd, "K"), &alpha, B, to_int(ldb, "ldb"), strideB, A, to_int(lda, "lda"),
                                    strideA, &beta, C, to_int(ldc, "ldc"), strideC, to_int(count, "count")));
}

#define CN_INSTANTIATE(T)                                                                                            \
  template void gemm<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, const T*, int64_t, T, T*,       \
                        int64_t);                                                                                    \
  template void gemm_bias<T>(bool, bool, int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, const T*,  \
                             T*, int64_t);                                                                           \
  template void gemm_bias_grad<T>(int64_t, int64_t, int64_t, const T*, int64_t, const T*, int64_t, T*, int64_t, T*); \
  template void gemm_batched<T>(bool, bool, int64_t, int64_t, int64_t, T, const T*, int64_t, int64_t, const T*,      \
                                int64_t, int64_t, T, T*, int64_t, int64_t, int64_t);
CN_INSTANTIATE(float)
CN_INSTANTIATE(double)
#undef CN_INSTANTIATE

}  // namespace cn::cuda
