// Instrumentation overhead: one training step of the M-size MLP (784-1024x4-10, batch
// 1024, Adam, float32) without the doctor, with it at the default logging cadence
// (statistics every 10 steps) and with statistics on every step.
#include <benchmark/benchmark.h>

#include "core/philox.h"
#include "diagnostics/doctor.h"
#include "layers/model.h"
#include "optim/optimizer.h"

namespace {

void run(benchmark::State& state, int64_t log_every) {
  cn::Config config;
  config.model.hidden = {1024, 1024, 1024, 1024};
  config.train.log_every = std::max<int64_t>(log_every, 1);
  const int64_t N = 1024;
  cn::Sequential<float> model(cn::resolve_layers(config.model, 10), 784);
  model.initialize(config.model, 0);
  model.reserve(N);
  cn::Loss<float> loss(cn::LossKind::cross_entropy);
  loss.reserve(cn::Device::cpu, N, 10);
  auto opt = cn::make_optimizer<float>(config.optim, model.layout());
  std::unique_ptr<cn::Doctor<float>> doctor;
  if (log_every > 0) doctor = std::make_unique<cn::Doctor<float>>(config, model);
  std::vector<float> x(N * 784), y(N);
  cn::PhiloxDraw d(1, cn::RngStream::data, 0, 0);
  for (auto& v : x) v = static_cast<float>(d.normal());
  for (int64_t n = 0; n < N; ++n) y[n] = static_cast<float>(n % 10);
  int64_t s = 0;
  auto step = [&]() {
    cn::PassCtx c;
    const float* z = model.forward(c, x.data(), N);
    const double l = loss.forward_backward(c, z, y.data(), N, 10);
    model.backward(c, loss.dz(), N);
    const cn::ClipResult clip =
        cn::clip_gradients<float>(config.clip, model.layout(), model.params().data(), model.grads().data());
    const int64_t done = s + 1;
    const bool logged = doctor && done % config.train.log_every == 0;
    if (doctor) doctor->before_update(done, l, clip, logged, N);
    opt->step(model.params().data(), model.grads().data(), 1e-4, s);
    if (doctor) {
      doctor->after_update(done, logged);
      if (logged) {
        benchmark::DoNotOptimize(doctor->take_stats_rows());
        benchmark::DoNotOptimize(doctor->take_alarm_rows());
      }
    }
    ++s;
  };
  step();
  for (auto _ : state) step();
}

void BM_StepM_NoDoctor(benchmark::State& s) { run(s, 0); }
void BM_StepM_DoctorLogEvery10(benchmark::State& s) { run(s, 10); }
void BM_StepM_DoctorLogEveryStep(benchmark::State& s) { run(s, 1); }

}  // namespace

BENCHMARK(BM_StepM_NoDoctor)->Unit(benchmark::kMillisecond)->Iterations(30);
BENCHMARK(BM_StepM_DoctorLogEvery10)->Unit(benchmark::kMillisecond)->Iterations(30);
BENCHMARK(BM_StepM_DoctorLogEveryStep)->Unit(benchmark::kMillisecond)->Iterations(30);
