// Curvature checkpoints on a worker thread, so that training goes on while a checkpoint's
// Hessian blocks are built and their spectra solved (docs/design.md §4). With the CUDA backend the
// worker drives its own context (stream, cuBLAS and cuSOLVER handles, workspace): its
// kernels run beside the training step's instead of queueing behind them, and the host
// parts of a checkpoint (LAPACK, the metrics) run on the worker's thread.
#pragma once
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "diagnostics/curvature_checkpoint.h"

namespace cn {

// A curvature checkpoint to compute: the step and the model state it describes.
struct CurvatureJob {
  int64_t step = 0;
  ModelSnapshot snapshot;
};

class CurvatureWorker {
 public:
  // `make` builds the checkpoint engine; it runs on the worker thread as soon as the
  // worker starts (with the worker's context current), as does every CurvatureCheckpoint::run.
  // What `make` reads must therefore stay unchanged while the worker starts.
  explicit CurvatureWorker(std::function<std::unique_ptr<CurvatureCheckpoint>()> make);
  CurvatureWorker(const CurvatureWorker&) = delete;
  CurvatureWorker& operator=(const CurvatureWorker&) = delete;
  ~CurvatureWorker();  // finishes the queued checkpoints, discarding their results

  // Queues the checkpoint of `step` at the given model state; never waits for earlier ones.
  void submit(int64_t step, ModelSnapshot snapshot);
  // The checkpoints finished so far, in step order, without waiting. Rethrows the first
  // error the worker met. With `unfinished`, also the jobs queued or running at that same
  // moment (copies, in step order): every submitted job is in exactly one of the two.
  std::vector<CurvatureOutput> take_finished(std::vector<CurvatureJob>* unfinished = nullptr);
  // Waits until every queued checkpoint is done and returns those not taken yet.
  std::vector<CurvatureOutput> finish();
  // Checkpoints queued or running.
  int64_t in_flight() const;

 private:
  void loop(std::function<std::unique_ptr<CurvatureCheckpoint>()> make);
  std::vector<CurvatureOutput> take_locked();

  mutable std::mutex mu_;
  std::condition_variable wake_, idle_;
  std::deque<CurvatureJob> queue_;
  CurvatureJob current_;  // the running job (read without the lock by the worker only)
  std::vector<CurvatureOutput> done_;
  int64_t running_ = 0;
  bool stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

}  // namespace cn
