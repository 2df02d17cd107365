// The CUDA backend's runtime side: device queries, the caching allocator behind
// cn::cuda_memory, the process-wide context and the error-reporting helpers. Links the
// runtime, cuBLAS and cuSOLVER only — never the driver library (docs/design.md §2).
#include <cstdio>
#include <cstdlib>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/device.h"
#include "core/error.h"
#include "kernels/cuda/check.cuh"
#include "kernels/cuda/context.cuh"

namespace cn {

namespace detail {
void fail_status(const char* file, int line, const char* call, const char* message) {
  std::ostringstream os;
  os << file << ":" << line << ": " << call << " failed: " << (message ? message : "(no message)");
  throw Error(os.str());
}
void warn_status(const char* file, int line, const char* call, const char* message) noexcept {
  std::fprintf(stderr, "%s:%d: %s failed: %s\n", file, line, call, message ? message : "(no message)");
}
}  // namespace detail

// ---- device queries ----------------------------------------------------------------------

namespace {
struct DeviceQuery {
  cudaError_t status = cudaSuccess;
  int count = 0;
};
// Asked once: the answer does not change while the process runs. Without a driver the
// call fails with cudaErrorInsufficientDriver (35): "no GPU", not an error.
const DeviceQuery& device_query() {
  static const DeviceQuery q = [] {
    DeviceQuery r;
    r.status = cudaGetDeviceCount(&r.count);
    if (r.status != cudaSuccess) {
      r.count = 0;
      (void)cudaGetLastError();  // clear the sticky-free error so later queries start clean
    }
    return r;
  }();
  return q;
}
}  // namespace

bool cuda_available() {
  const DeviceQuery& q = device_query();
  return q.status == cudaSuccess && q.count > 0;
}

std::string cuda_device_description() {
  const DeviceQuery& q = device_query();
  std::ostringstream os;
  if (q.status != cudaSuccess) {
    os << "no CUDA device: cudaGetDeviceCount: " << cudaGetErrorString(q.status) << " (error "
       << static_cast<int>(q.status) << ")";
    return os.str();
  }
  if (q.count == 0) return "no CUDA device: cudaGetDeviceCount reports 0 devices";
  int dev = 0;
  cudaDeviceProp prop{};
  if (cudaGetDevice(&dev) != cudaSuccess || cudaGetDeviceProperties(&prop, dev) != cudaSuccess) {
    (void)cudaGetLastError();
    return "CUDA device present, but its properties could not be read";
  }
  int driver = 0, runtime = 0;
  cudaDriverGetVersion(&driver);
  cudaRuntimeGetVersion(&runtime);
  os << prop.name << " (device " << dev << " of " << q.count << ", sm_" << prop.major << prop.minor << ", "
     << static_cast<double>(prop.totalGlobalMem) / (1024.0 * 1024.0 * 1024.0) << " GiB, driver " << driver / 1000 << "."
     << (driver % 1000) / 10 << ", runtime " << runtime / 1000 << "." << (runtime % 1000) / 10 << ")";
  return os.str();
}

namespace cuda {

const char* cusolver_status_name(cusolverStatus_t s) noexcept {
  switch (s) {
    case CUSOLVER_STATUS_SUCCESS:
      return "CUSOLVER_STATUS_SUCCESS";
    case CUSOLVER_STATUS_NOT_INITIALIZED:
      return "CUSOLVER_STATUS_NOT_INITIALIZED";
    case CUSOLVER_STATUS_ALLOC_FAILED:
      return "CUSOLVER_STATUS_ALLOC_FAILED";
    case CUSOLVER_STATUS_INVALID_VALUE:
      return "CUSOLVER_STATUS_INVALID_VALUE";
    case CUSOLVER_STATUS_ARCH_MISMATCH:
      return "CUSOLVER_STATUS_ARCH_MISMATCH";
    case CUSOLVER_STATUS_MAPPING_ERROR:
      return "CUSOLVER_STATUS_MAPPING_ERROR";
    case CUSOLVER_STATUS_EXECUTION_FAILED:
      return "CUSOLVER_STATUS_EXECUTION_FAILED";
    case CUSOLVER_STATUS_INTERNAL_ERROR:
      return "CUSOLVER_STATUS_INTERNAL_ERROR";
    case CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_MATRIX_TYPE_NOT_SUPPORTED";
    case CUSOLVER_STATUS_NOT_SUPPORTED:
      return "CUSOLVER_STATUS_NOT_SUPPORTED";
    case CUSOLVER_STATUS_ZERO_PIVOT:
      return "CUSOLVER_STATUS_ZERO_PIVOT";
    case CUSOLVER_STATUS_INVALID_LICENSE:
      return "CUSOLVER_STATUS_INVALID_LICENSE";
    case CUSOLVER_STATUS_INVALID_WORKSPACE:
      return "CUSOLVER_STATUS_INVALID_WORKSPACE";
    default:
      return "CUSOLVER_STATUS (unknown code)";
  }
}

// ---- the caching allocator ---------------------------------------------------------------
//
// Blocks are rounded up (512 B below 1 MiB, 2 MiB above) and kept, once freed, in a free
// list per (stream of the freeing thread's context, rounded size). Handing a freed block to
// the next allocation on the same stream is safe in stream order (work that used it is
// queued before work that will); another stream never gets it, since work queued on the
// first may still use it. Blocks are never returned to the driver except by release_cached_memory()
// or when cudaMalloc runs out of memory; the allocator itself is never destroyed, so
// Buffers freed during static destruction only go back to the free lists.

namespace {

size_t round_size(size_t bytes) {
  constexpr size_t kSmall = 512, kLarge = size_t(2) << 20, kSmallMax = size_t(1) << 20;
  if (bytes == 0) bytes = 1;
  return bytes < kSmallMax ? (bytes + kSmall - 1) / kSmall * kSmall : (bytes + kLarge - 1) / kLarge * kLarge;
}

class CachingAllocator {
 public:
  void* alloc(size_t bytes) {
    const size_t size = round_size(bytes);
    cudaStream_t stream = context().stream();  // the device and its stream exist before the first block
    std::lock_guard<std::mutex> lock(mu_);
    ++stats_.allocations;
    std::vector<void*>* cached = nullptr;
    if (auto it = free_.find({stream, size}); it != free_.end() && !it->second.empty()) cached = &it->second;
    if (auto it = idle_.find(size); !cached && it != idle_.end() && !it->second.empty()) cached = &it->second;
    if (cached) {
      void* p = cached->back();
      cached->pop_back();
      stats_.bytes_cached -= size;
      stats_.bytes_in_use += size;
      live_[p] = size;
      return p;
    }
    void* p = nullptr;
    cudaError_t st = cudaMalloc(&p, size);
    if (st == cudaErrorMemoryAllocation) {  // give the cache back and try once more
      (void)cudaGetLastError();
      release_locked();
      st = cudaMalloc(&p, size);
    }
    if (st != cudaSuccess) {
      std::ostringstream call;
      call << "cudaMalloc(" << size << " bytes; " << stats_.bytes_in_use << " in use)";
      detail::fail_status(__FILE__, __LINE__, call.str().c_str(), cudaGetErrorString(st));
    }
    ++stats_.cuda_mallocs;
    stats_.bytes_in_use += size;
    live_[p] = size;
    return p;
  }

  void free(void* p) noexcept {
    if (!p) return;
    cudaStream_t stream = nullptr;
    try {
      stream = context().stream();
    } catch (...) {  // no usable device: nothing can be queued on a stream either
    }
    std::lock_guard<std::mutex> lock(mu_);
    auto it = live_.find(p);
    if (it == live_.end()) {
      std::fprintf(stderr, "curvnet: cuda_memory::free of a pointer it did not allocate (%p)\n", p);
      return;
    }
    const size_t size = it->second;
    live_.erase(it);
    stats_.bytes_in_use -= size;
    stats_.bytes_cached += size;
    free_[{stream, size}].push_back(p);
  }

  MemoryStats stats() {
    std::lock_guard<std::mutex> lock(mu_);
    return stats_;
  }

  void release() {
    std::lock_guard<std::mutex> lock(mu_);
    release_locked();
  }

  // After `stream` finished all its work (and before it is destroyed): its cached blocks
  // are idle, and any stream may take them.
  void retire_stream(cudaStream_t stream) {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = free_.begin(); it != free_.end();) {
      if (it->first.first != stream) {
        ++it;
        continue;
      }
      std::vector<void*>& idle = idle_[it->first.second];
      idle.insert(idle.end(), it->second.begin(), it->second.end());
      it = free_.erase(it);
    }
  }

 private:
  void release_locked() {
    CN_CUDA_WARN(cudaDeviceSynchronize());  // every stream's work on the cached blocks is done
    for (auto& [key, blocks] : free_)
      for (void* p : blocks) CN_CUDA_WARN(cudaFree(p));
    for (auto& [size, blocks] : idle_)
      for (void* p : blocks) CN_CUDA_WARN(cudaFree(p));
    free_.clear();
    idle_.clear();
    stats_.bytes_cached = 0;
  }

  std::mutex mu_;
  std::map<std::pair<cudaStream_t, size_t>, std::vector<void*>> free_;
  std::map<size_t, std::vector<void*>> idle_;  // by size: blocks of retired streams
  std::unordered_map<void*, size_t> live_;
  MemoryStats stats_;
};

CachingAllocator& allocator() {
  static CachingAllocator* a = new CachingAllocator();  // never destroyed (see above)
  return *a;
}

}  // namespace

MemoryStats memory_stats() { return allocator().stats(); }
void release_cached_memory() { allocator().release(); }

// ---- the context -------------------------------------------------------------------------

namespace {
// CURVNET_GEMM_STREAMS=0|1: whether Linear's two backward GEMMs (and the R-backward's
// parameter and input products) overlap on two streams; 0 unless set: on once a GPU run
// has measured it faster and its tests have passed there (docs/gpu.md).
bool concurrent_gemms_from_env() {
  static const bool on = [] {
    const char* v = std::getenv("CURVNET_GEMM_STREAMS");
    const std::string s = v ? v : "0";
    if (s == "1") return true;
    if (s == "0") return false;
    throw InputError("CURVNET_GEMM_STREAMS: expected 0 or 1, got '" + s + "'");
  }();
  return on;
}
}  // namespace

Context::Context() : concurrent_gemms_(concurrent_gemms_from_env()) {  // may throw: before any handle
  if (!cuda_available()) throw Error("CUDA backend used, but " + cuda_device_description());
  CN_CUDA_CHECK(cudaGetDevice(&device_));
  // A blocking stream: it stays ordered with the legacy default stream, so code that uses
  // plain cudaMemcpy (or a library on stream 0) cannot race curvnet's own work.
  CN_CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamDefault));
  CN_CUBLAS_CHECK(cublasCreate(&cublas_));
  CN_CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
  // Plain FP32/FP64 arithmetic: no TF32 unless set_allow_tf32(true).
  CN_CUBLAS_CHECK(cublasSetMathMode(cublas_, CUBLAS_DEFAULT_MATH));
  // The side lane, made here and not on first use: a first use may come inside a graph
  // recording, where creating handles (and their allocations) is not allowed. Blocking like
  // the main stream, and with its own cuBLAS handle (a handle's internal workspace belongs
  // to one stream at a time).
  CN_CUDA_CHECK(cudaStreamCreateWithFlags(&side_stream_, cudaStreamDefault));
  CN_CUBLAS_CHECK(cublasCreate(&side_cublas_));
  CN_CUBLAS_CHECK(cublasSetStream(side_cublas_, side_stream_));
  CN_CUBLAS_CHECK(cublasSetMathMode(side_cublas_, CUBLAS_DEFAULT_MATH));
  CN_CUDA_CHECK(cudaEventCreateWithFlags(&fork_event_, cudaEventDisableTiming));
  CN_CUDA_CHECK(cudaEventCreateWithFlags(&join_event_, cudaEventDisableTiming));
}

Context::~Context() {
  // The process-wide context is never destroyed (see context()); this serves contexts
  // made by hand (a worker thread's, tests). Its work finishes first: its cached blocks
  // are then safe for any stream.
  on_side_ = false;  // frees below are keyed by the main stream
  if (side_stream_) CN_CUDA_WARN(cudaStreamSynchronize(side_stream_));
  if (stream_) CN_CUDA_WARN(cudaStreamSynchronize(stream_));
  if (workspace_) allocator().free(workspace_);
  if (side_workspace_) allocator().free(side_workspace_);
  if (stream_) allocator().retire_stream(stream_);  // a later stream may reuse the handle's value
  if (side_stream_) allocator().retire_stream(side_stream_);
  if (host_scratch_) CN_CUDA_WARN(cudaFreeHost(host_scratch_));
  if (cusolver_) CN_CUSOLVER_WARN(cusolverDnDestroy(cusolver_));
  if (side_cublas_) CN_CUBLAS_WARN(cublasDestroy(side_cublas_));
  if (cublas_) CN_CUBLAS_WARN(cublasDestroy(cublas_));
  if (fork_event_) CN_CUDA_WARN(cudaEventDestroy(fork_event_));
  if (join_event_) CN_CUDA_WARN(cudaEventDestroy(join_event_));
  if (side_stream_) CN_CUDA_WARN(cudaStreamDestroy(side_stream_));
  if (stream_) CN_CUDA_WARN(cudaStreamDestroy(stream_));
}

void Context::fork_side() {
  if (on_side_ || !concurrent_gemms_) return;
  CN_CUDA_CHECK(cudaEventRecord(fork_event_, stream_));
  CN_CUDA_CHECK(cudaStreamWaitEvent(side_stream_, fork_event_, 0));
  on_side_ = true;
  forked_ = true;
}

// The lane and the fork are separate states: a pair switches back to the main lane (to
// enqueue its main-stream work) before it joins, and the join must still wait for what the
// side stream has since the fork.
void Context::to_main(bool join) {
  on_side_ = false;
  if (!join || !forked_) return;
  forked_ = false;
  CN_CUDA_CHECK(cudaEventRecord(join_event_, side_stream_));
  CN_CUDA_CHECK(cudaStreamWaitEvent(stream_, join_event_, 0));
}

cusolverDnHandle_t Context::cusolver() {
  if (!cusolver_) {
    CN_CUSOLVER_CHECK(cusolverDnCreate(&cusolver_));
    CN_CUSOLVER_CHECK(cusolverDnSetStream(cusolver_, stream_));
  }
  return cusolver_;
}

void* Context::workspace(size_t bytes) {
  void*& block = on_side_ ? side_workspace_ : workspace_;
  size_t& size = on_side_ ? side_workspace_bytes_ : workspace_bytes_;
  if (bytes > size) {
    if (block) allocator().free(block);  // stream-ordered (freed on this lane's stream): safe to reuse at once
    block = nullptr;
    size = 0;
    block = allocator().alloc(bytes);
    size = round_size(bytes);
    ++workspace_generation_;
  }
  return block;
}

void* Context::host_scratch(size_t bytes) {
  if (bytes > host_scratch_bytes_) {
    // Earlier reads through the old buffer have completed: every reader synchronises.
    if (host_scratch_) CN_CUDA_CHECK(cudaFreeHost(host_scratch_));
    host_scratch_ = nullptr;
    host_scratch_bytes_ = 0;
    const size_t size = bytes < 4096 ? 4096 : bytes;
    CN_CUDA_CHECK(cudaMallocHost(&host_scratch_, size));
    host_scratch_bytes_ = size;
  }
  return host_scratch_;
}

void Context::set_allow_tf32(bool allow) {
  const cublasMath_t m = allow ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_DEFAULT_MATH;
  CN_CUBLAS_CHECK(cublasSetMathMode(cublas_, m));
  CN_CUBLAS_CHECK(cublasSetMathMode(side_cublas_, m));
  allow_tf32_ = allow;
}

void Context::synchronize() const {
  CN_CUDA_CHECK(cudaStreamSynchronize(side_stream_));  // joined work is done by then anyway; unjoined too
  CN_CUDA_CHECK(cudaStreamSynchronize(stream_));
}

namespace {
thread_local Context* current_context = nullptr;  // set by ContextScope
}  // namespace

Context& context() {
  if (current_context) return *current_context;
  // Never destroyed: tearing down handles during static destruction races the runtime's
  // own shutdown; the driver reclaims everything at exit.
  static Context* ctx = new Context();
  return *ctx;
}

ContextScope::ContextScope(Context& ctx) : previous_(current_context) { current_context = &ctx; }
ContextScope::~ContextScope() { current_context = previous_; }

EventTimer::EventTimer() {
  CN_CUDA_CHECK(cudaEventCreate(&start_));
  CN_CUDA_CHECK(cudaEventCreate(&stop_));
}
EventTimer::~EventTimer() {
  if (start_) CN_CUDA_WARN(cudaEventDestroy(start_));
  if (stop_) CN_CUDA_WARN(cudaEventDestroy(stop_));
}
void EventTimer::start() { CN_CUDA_CHECK(cudaEventRecord(start_, context().main_stream())); }
Graph::~Graph() { reset(); }

void Graph::reset() {
  if (exec_) CN_CUDA_WARN(cudaGraphExecDestroy(exec_));
  if (graph_) CN_CUDA_WARN(cudaGraphDestroy(graph_));
  exec_ = nullptr;
  graph_ = nullptr;
}

void Graph::record(const std::function<void()>& work) {
  reset();
  Context& ctx = context();
  CN_CHECK_MSG(!ctx.on_side(), "Graph::record on the side lane");
  cudaStream_t s = ctx.main_stream();
  // Taken before: a workspace that grew during the recording left nodes on the freed
  // block, and replay() then refuses the graph (the next record() sees the grown one).
  const uint64_t generation = ctx.workspace_generation();
  // Thread-local mode: another thread's unrelated CUDA calls do not break the recording.
  CN_CUDA_CHECK(cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  try {
    work();
    CN_CHECK_MSG(!ctx.forked(), "Graph::record: the recorded work left the side lane unjoined");
  } catch (...) {
    cudaGraph_t broken = nullptr;
    (void)cudaStreamEndCapture(s, &broken);
    if (broken) (void)cudaGraphDestroy(broken);
    (void)cudaGetLastError();
    throw;
  }
  CN_CUDA_CHECK(cudaStreamEndCapture(s, &graph_));
  CN_CUDA_CHECK(cudaGraphInstantiate(&exec_, graph_, 0));
  workspace_generation_ = generation;
}

bool Graph::replay() {
  Context& ctx = context();
  if (!exec_ || workspace_generation_ != ctx.workspace_generation()) return false;
  CN_CUDA_CHECK(cudaGraphLaunch(exec_, ctx.main_stream()));
  return true;
}

double EventTimer::stop_ms() {
  CN_CUDA_CHECK(cudaEventRecord(stop_, context().main_stream()));
  CN_CUDA_CHECK(cudaEventSynchronize(stop_));
  float ms = 0;
  CN_CUDA_CHECK(cudaEventElapsedTime(&ms, start_, stop_));
  return static_cast<double>(ms);
}

}  // namespace cuda

// ---- cn::cuda_memory: what core/memory.cpp calls for Device::cuda ------------------------

namespace cuda_memory {

void* alloc(size_t bytes) { return cuda::allocator().alloc(bytes); }

void free(void* p) noexcept { cuda::allocator().free(p); }

// Stream-ordered on the context's stream; a copy to the host waits for its data (the only
// synchronising case). A host source may be reused as soon as this returns: the runtime
// stages pageable memory before cudaMemcpyAsync returns.
void copy(void* dst, bool dst_on_device, const void* src, bool src_on_device, size_t bytes) {
  if (bytes == 0) return;
  cudaStream_t s = cuda::context().stream();
  CN_CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, s));
  if (!dst_on_device) CN_CUDA_CHECK(cudaStreamSynchronize(s));
}

void zero(void* p, size_t bytes) {
  if (bytes == 0) return;
  CN_CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, cuda::context().stream()));
}

}  // namespace cuda_memory
}  // namespace cn
