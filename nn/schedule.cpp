#include "nn/schedule.h"

#include <cmath>
#include <numbers>

#include "core/error.h"
#include "nn/optim.h"

namespace selfsup::optim {

void CosineSchedule::validate() const {
  SELFSUP_CHECK(total_steps > 0 && warmup_steps >= 0 && warmup_steps <= total_steps,
                "CosineSchedule: needs 0 <= warmup_steps <= total_steps and total_steps > 0, got ",
                "warmup_steps=", warmup_steps, " total_steps=", total_steps);
  SELFSUP_CHECK(base_lr >= 0 && final_lr >= 0, "CosineSchedule: rates must be non-negative, got ",
                "base_lr=", base_lr, " final_lr=", final_lr);
}

double CosineSchedule::lr(int64_t step) const {
  validate();
  if (step < 0) step = 0;
  if (step < warmup_steps)
    return base_lr * static_cast<double>(step) / static_cast<double>(warmup_steps);
  if (step >= total_steps) return final_lr;
  double progress =
      static_cast<double>(step - warmup_steps) / static_cast<double>(total_steps - warmup_steps);
  return final_lr + 0.5 * (base_lr - final_lr) * (1.0 + std::cos(std::numbers::pi * progress));
}

void CosineSchedule::apply(Optimizer& optimizer, int64_t step) const {
  optimizer.set_lr(lr(step));
}

}  // namespace selfsup::optim
