#include "train/curvature_worker.h"

#include <optional>
#include <utility>

#ifdef CURVNET_HAVE_CUDA
#include "kernels/cuda/context.cuh"
#endif

namespace cn {

CurvatureWorker::CurvatureWorker(std::function<std::unique_ptr<CurvatureCheckpoint>()> make)
    : thread_([this, make = std::move(make)] { loop(make); }) {}

CurvatureWorker::~CurvatureWorker() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void CurvatureWorker::loop(std::function<std::unique_ptr<CurvatureCheckpoint>()> make) {
#ifdef CURVNET_HAVE_CUDA
  // The worker's own context, made current for everything below (also for `make`, so the
  // checkpoint's buffers are cached with this context's stream).
  std::unique_ptr<cuda::Context> ctx;
  std::unique_ptr<cuda::ContextScope> scope;
#endif
  std::unique_ptr<CurvatureCheckpoint> checkpoint;
  // Set up at once, not at the first job: the context, its library handles and the
  // checkpoint's buffers are made while the run starts up, off the first checkpoint's time.
  try {
#ifdef CURVNET_HAVE_CUDA
    if (cuda_available()) {  // once: a second scope would restore a freed context
      ctx = std::make_unique<cuda::Context>();
      scope = std::make_unique<cuda::ContextScope>(*ctx);
      ctx->cusolver();  // the solver library's handle takes long to make the first time
    }
#endif
    checkpoint = make();
  } catch (...) {
    std::lock_guard<std::mutex> lock(mu_);
    error_ = std::current_exception();  // what is queued is dropped; the caller rethrows it
  }
  idle_.notify_all();
  for (;;) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty()) break;  // stop_ and nothing left
      if (error_) {               // the caller rethrows the first error: what is queued is moot
        queue_.clear();
        continue;
      }
      current_ = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    // current_ changes only under the lock, on this thread: read here without it.
    std::optional<CurvatureOutput> out;
    std::exception_ptr error;
    try {
      out = checkpoint->run(current_.step, current_.snapshot);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mu_);  // finished and no longer running at once
      if (out) done_.push_back(std::move(*out));
      if (error && !error_) error_ = error;
      --running_;
    }
    idle_.notify_all();
  }
  checkpoint.reset();  // its buffers go back while the worker's context is still current
#ifdef CURVNET_HAVE_CUDA
  scope.reset();
  ctx.reset();
#endif
}

void CurvatureWorker::submit(int64_t step, ModelSnapshot snapshot) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    queue_.push_back(CurvatureJob{step, std::move(snapshot)});
  }
  wake_.notify_one();
}

std::vector<CurvatureOutput> CurvatureWorker::take_locked() {
  if (error_) std::rethrow_exception(error_);
  std::vector<CurvatureOutput> out = std::move(done_);
  done_.clear();
  return out;  // jobs run one at a time in queue order: already in step order
}

std::vector<CurvatureOutput> CurvatureWorker::take_finished(std::vector<CurvatureJob>* unfinished) {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<CurvatureOutput> done = take_locked();
  if (unfinished) {
    unfinished->clear();
    if (running_ > 0) unfinished->push_back(current_);
    unfinished->insert(unfinished->end(), queue_.begin(), queue_.end());
  }
  return done;
}

std::vector<CurvatureOutput> CurvatureWorker::finish() {
  std::unique_lock<std::mutex> lock(mu_);
  idle_.wait(lock, [&] { return (queue_.empty() && running_ == 0) || error_; });
  return take_locked();
}

int64_t CurvatureWorker::in_flight() const {
  std::lock_guard<std::mutex> lock(mu_);
  return static_cast<int64_t>(queue_.size()) + running_;
}

}  // namespace cn
