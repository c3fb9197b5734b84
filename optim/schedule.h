// optim/schedule.h — learning-rate schedules as pure functions of the optimizer step.
//
// lr(step) depends on nothing but its arguments, so a resumed run recomputes the rate it would have
// had. `step` counts updates from 0 (the rate of the first update is lr(0)). Warm-up, when set,
// ramps linearly from base_lr / warmup_steps to base_lr over the first warmup_steps updates; the
// decay (step, cosine) then runs over the remaining steps:
//   constant  base_lr
//   step      base_lr * gamma^floor(s / step_size)                       (StepLR, in updates)
//   cosine    min_lr + (base_lr - min_lr) * (1 + cos(pi * s / total)) / 2 (CosineAnnealingLR)
#pragma once

#include <cstdint>
#include <string>

namespace kiln {

struct LrSchedule {
  enum class Kind { constant, step, cosine } kind = Kind::constant;
  double base_lr = 1e-3;
  int64_t warmup_steps = 0;
  int64_t step_size = 1;    // step: updates between decays
  double gamma = 0.1;       // step: decay factor
  int64_t total_steps = 1;  // cosine: updates in the whole run (warm-up included)
  double min_lr = 0.0;      // cosine: the final rate

  double lr(int64_t step) const;
  std::string describe() const;
};

// "constant" | "step" | "cosine"; throws naming the accepted values.
LrSchedule::Kind parse_schedule_kind(const std::string& name);

}  // namespace kiln
