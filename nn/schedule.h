// Learning-rate schedules. The SSL recipes (SimCLR, BYOL, Barlow Twins, ...) use a linear
// warm-up followed by a cosine decay:
//
//   lr(t) = base * t / W                                            for t < W
//   lr(t) = final + 0.5 * (base - final) * (1 + cos(pi * (t - W) / (T - W)))   for W <= t < T
//   lr(t) = final                                                   for t >= T
//
// with t the step, W the warm-up steps and T the total steps.
#pragma once

#include <cstdint>

namespace selfsup::optim {

class Optimizer;

struct CosineSchedule {
  double base_lr = 0.1;
  double final_lr = 0.0;
  int64_t warmup_steps = 0;
  int64_t total_steps = 1;

  // Checks 0 <= warmup_steps <= total_steps, total_steps > 0 and non-negative rates.
  void validate() const;
  double lr(int64_t step) const;
  // Sets the optimizer's lr for this step (each group's lr = lr(step) * its lr_scale).
  void apply(Optimizer& optimizer, int64_t step) const;
};

}  // namespace selfsup::optim
