// optim/schedule.cpp — see schedule.h.
#include "optim/schedule.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"

namespace kiln {

double LrSchedule::lr(int64_t step) const {
  KILN_CHECK(step >= 0, "LrSchedule: negative step ", step);
  if (step < warmup_steps) return base_lr * static_cast<double>(step + 1) / warmup_steps;
  const int64_t s = step - warmup_steps;
  switch (kind) {
    case Kind::constant:
      return base_lr;
    case Kind::step:
      return base_lr * std::pow(gamma, static_cast<double>(s / std::max<int64_t>(1, step_size)));
    case Kind::cosine: {
      const int64_t total = std::max<int64_t>(1, total_steps - warmup_steps);
      const double t = std::min(1.0, static_cast<double>(s) / static_cast<double>(total));
      return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + std::cos(M_PI * t));
    }
  }
  return base_lr;
}

std::string LrSchedule::describe() const {
  std::ostringstream os;
  switch (kind) {
    case Kind::constant:
      os << "constant " << base_lr;
      break;
    case Kind::step:
      os << "step " << base_lr << " x" << gamma << " every " << step_size << " steps";
      break;
    case Kind::cosine:
      os << "cosine " << base_lr << " -> " << min_lr << " over " << total_steps << " steps";
      break;
  }
  if (warmup_steps > 0) os << ", linear warm-up " << warmup_steps << " steps";
  return os.str();
}

LrSchedule::Kind parse_schedule_kind(const std::string& name) {
  if (name == "constant") return LrSchedule::Kind::constant;
  if (name == "step") return LrSchedule::Kind::step;
  if (name == "cosine") return LrSchedule::Kind::cosine;
  KILN_FAIL("unknown learning-rate schedule '", name, "': expected constant, step or cosine");
}

}  // namespace kiln
