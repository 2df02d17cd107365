// Learning-rate schedules (docs/optimisers.md gives every formula).
#include <cmath>
#include <string>

#include "core/error.h"
#include "optim/optimizer.h"

namespace cn {

namespace {

constexpr double kPi = 3.14159265358979323846;

void need_step_size(const ScheduleConfig& s) {
  if (s.step_size <= 0)
    throw InputError("schedule.step_size: must be > 0 for kind '" + std::string(enum_name(kScheduleKinds, s.kind)) +
                     "' (got " + std::to_string(s.step_size) + ")");
}

}  // namespace

double scheduled_lr(const ScheduleConfig& schedule, double base_lr, int64_t step, int64_t total_steps) {
  CN_CHECK(step >= 0);
  const int64_t warmup = schedule.warmup_steps > 0 ? schedule.warmup_steps : 0;
  // Linear warm-up: base_lr (step + 1) / warmup for the first `warmup` updates.
  if (step < warmup) return base_lr * static_cast<double>(step + 1) / static_cast<double>(warmup);
  const int64_t u = step - warmup;  // the schedule's own clock
  const double ud = static_cast<double>(u);
  switch (schedule.kind) {
    case ScheduleKind::constant:
      return base_lr;
    case ScheduleKind::step: {  // torch StepLR
      need_step_size(schedule);
      return base_lr * std::pow(schedule.gamma, static_cast<double>(u / schedule.step_size));
    }
    case ScheduleKind::exponential: {  // continuous: torch ExponentialLR when step_size = 1
      need_step_size(schedule);
      return base_lr * std::pow(schedule.gamma, ud / static_cast<double>(schedule.step_size));
    }
    case ScheduleKind::cosine: {  // torch CosineAnnealingLR over the steps after warm-up, then flat
      const int64_t horizon = (schedule.total_steps > 0 ? schedule.total_steps : total_steps) - warmup;
      if (horizon <= 0)
        throw InputError("schedule.total_steps: cosine needs a horizon longer than warmup_steps (total " +
                         std::to_string(schedule.total_steps > 0 ? schedule.total_steps : total_steps) + ", warmup " +
                         std::to_string(warmup) + ")");
      if (u >= horizon) return schedule.min_lr;
      return schedule.min_lr +
             (base_lr - schedule.min_lr) * (1.0 + std::cos(kPi * ud / static_cast<double>(horizon))) / 2.0;
    }
    case ScheduleKind::cosine_restarts: {  // torch CosineAnnealingWarmRestarts(T_0 = step_size, T_mult = 1)
      need_step_size(schedule);
      const double tcur = static_cast<double>(u % schedule.step_size);
      return schedule.min_lr +
             (base_lr - schedule.min_lr) * (1.0 + std::cos(kPi * tcur / static_cast<double>(schedule.step_size))) / 2.0;
    }
    case ScheduleKind::cyclic: {  // torch CyclicLR(mode = "triangular", step_size_up = step_size)
      need_step_size(schedule);
      const double max_lr = schedule.max_lr > 0 ? schedule.max_lr : 10.0 * base_lr;
      const double ss = static_cast<double>(schedule.step_size);
      const double cycle = std::floor(1.0 + ud / (2.0 * ss));
      const double x = std::fabs(ud / ss - 2.0 * cycle + 1.0);
      const double h = 1.0 - x;
      return base_lr + (max_lr - base_lr) * (h > 0 ? h : 0.0);
    }
  }
  throw InputError("schedule.kind: unknown schedule");
}

}  // namespace cn
