// The CUDA context: one stream, a cuBLAS handle, a cuSOLVER handle, device scratch space
// and pinned host scratch (cn::cuda::context(), created on first use on the current
// device). Every op of the CUDA backend runs on the current context's stream, so the host
// never waits except where an op says so (a device->host read). A second (side) stream
// with its own cuBLAS handle and scratch lets two independent ops overlap (Linear's weight
// and input gradients): between lane(Lane::side) and lane(Lane::main / joined) of
// kernels/ops.h, stream(), cublas() and workspace() answer for the side stream. A context is driven by
// one host thread at a time: the process-wide one by default; a worker thread (curvature
// checkpoints overlapping training) makes its own Context current with a ContextScope.
// Plain C++ (no kernels): .cpp files may include it.
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>

#include "kernels/cuda/check.cuh"

namespace cn::cuda {

class Context {
 public:
  Context();
  Context(const Context&) = delete;
  Context& operator=(const Context&) = delete;
  ~Context();

  int device() const { return device_; }
  // The stream ops enqueue on now: the side stream between fork_side() and to_main().
  cudaStream_t stream() const { return on_side_ ? side_stream_ : stream_; }
  cublasHandle_t cublas() const { return on_side_ ? side_cublas_ : cublas_; }
  cusolverDnHandle_t cusolver();  // created on first use; main stream only
  // The main stream, whichever lane is current.
  cudaStream_t main_stream() const { return stream_; }

  // Lanes (kernels/ops.h lane()). fork_side: work enqueued from now on runs on the side
  // stream, after everything enqueued on the main stream so far. to_main: back on the main
  // stream; with join, later main-stream work waits for the side stream's so far. Event
  // record and wait are captured into a graph like any launch, so a recording may fork and
  // join (it must join before it ends). Without concurrent_gemms() fork_side does nothing.
  void fork_side();
  void to_main(bool join);
  bool on_side() const { return on_side_; }
  bool forked() const { return forked_; }
  // Whether fork_side() uses the side stream: CURVNET_GEMM_STREAMS=0|1 (default 0) for
  // every context, or this setter for one.
  void set_concurrent_gemms(bool on) { concurrent_gemms_ = on; }
  bool concurrent_gemms() const { return concurrent_gemms_; }

  // Device scratch of at least `bytes`, valid until the next workspace() call. Ops run in
  // stream order, so an op may reuse what the previous op used; it only grows (through
  // the caching allocator), so a training step after the first never allocates. The side
  // stream has its own: two ops running at once never share scratch.
  void* workspace(size_t bytes);
  // Changes whenever a workspace (either lane's) moves to a new block: a recorded Graph
  // that used the old one must be recorded again.
  uint64_t workspace_generation() const { return workspace_generation_; }
  size_t workspace_bytes() const { return on_side_ ? side_workspace_bytes_ : workspace_bytes_; }
  // Pinned host scratch of at least `bytes` for small device->host reads (same rules).
  void* host_scratch(size_t bytes);

  // TF32 tensor cores for float GEMMs: off unless asked (docs/design.md §2: never silently).
  void set_allow_tf32(bool allow);
  bool allow_tf32() const { return allow_tf32_; }

  void synchronize() const;

 private:
  int device_ = 0;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t cublas_ = nullptr;
  cusolverDnHandle_t cusolver_ = nullptr;
  void* workspace_ = nullptr;
  size_t workspace_bytes_ = 0;
  uint64_t workspace_generation_ = 0;
  // The side lane: made with the context (never inside a recording).
  cudaStream_t side_stream_ = nullptr;
  cublasHandle_t side_cublas_ = nullptr;
  cudaEvent_t fork_event_ = nullptr, join_event_ = nullptr;
  void* side_workspace_ = nullptr;
  size_t side_workspace_bytes_ = 0;
  bool on_side_ = false;
  bool forked_ = false;  // the side stream has work since the last join
  bool concurrent_gemms_ = true;
  void* host_scratch_ = nullptr;
  size_t host_scratch_bytes_ = 0;
  bool allow_tf32_ = false;
};

// The calling thread's current context: the one a ContextScope made current, else the
// process-wide one. Throws cn::Error when no CUDA device is usable.
Context& context();

// Makes `ctx` the calling thread's current context until the scope ends. Freed device
// blocks are cached per stream, so work on one context never reuses a block another
// context's stream may still be using.
class ContextScope {
 public:
  explicit ContextScope(Context& ctx);
  ContextScope(const ContextScope&) = delete;
  ContextScope& operator=(const ContextScope&) = delete;
  ~ContextScope();

 private:
  Context* previous_;
};

// The caching allocator behind cn::cuda_memory::alloc/free: freed blocks are kept by
// (rounded) size and handed out again, so only the first training step calls cudaMalloc.
struct MemoryStats {
  int64_t cuda_mallocs = 0;  // cudaMalloc calls so far
  int64_t allocations = 0;   // alloc() calls so far (cache hits included)
  size_t bytes_in_use = 0;   // handed out and not yet freed
  size_t bytes_cached = 0;   // freed, kept for reuse
};
MemoryStats memory_stats();
// Waits for the stream and returns every cached block to the driver.
void release_cached_memory();

// Work recorded once from the context's stream and replayed with one launch (a CUDA graph):
// a small network's training step is bound by kernel launches, not arithmetic. What the
// recording reads and writes is fixed at record time — pointers and scalar arguments — so
// only step-independent work (forward, loss, backward without Dropout) is recorded.
class Graph {
 public:
  Graph() = default;
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;
  ~Graph();
  // Records what `work` enqueues on the context's stream (nothing runs), replacing any
  // earlier recording. The work must not wait for the device nor allocate: run it once
  // unrecorded first, so buffers and library workspaces are sized.
  void record(const std::function<void()>& work);
  // Enqueues the recorded work on the context's stream. False (nothing enqueued) when
  // nothing is recorded or the context's workspace moved since: record again.
  bool replay();
  bool recorded() const { return exec_ != nullptr; }

 private:
  void reset();
  cudaGraph_t graph_ = nullptr;
  cudaGraphExec_t exec_ = nullptr;
  uint64_t workspace_generation_ = 0;
};

// Times work on the context's stream with CUDA events (benchmarks).
class EventTimer {
 public:
  EventTimer();
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  ~EventTimer();
  void start();
  // Records the stop event, waits for it and returns the elapsed milliseconds.
  double stop_ms();

 private:
  cudaEvent_t start_ = nullptr, stop_ = nullptr;
};

}  // namespace cn::cuda
