// Exponential moving average of a list of tensors, in place:
//   target = momentum * target + (1 - momentum) * source          for each (target, source)
//
// Per element: 3 FLOPs, 3 memory touches (read target, read source, write target), so it is
// bound by memory bandwidth. Contiguous pairs run as one flat, vectorisable loop (threaded
// when large); other layouts walk both tensors' strides run by run.
#include "kernels/cpu/ema.h"

#include <array>
#include <type_traits>

#include "core/strided.h"

namespace selfsup::cpu {

namespace {

constexpr int64_t kParallelElements = 1 << 16;

template <typename T>
void ema_flat(T* target, const T* source, int64_t n, T keep, T take) {
#pragma omp parallel for simd schedule(static) if (n > kParallelElements)
  for (int64_t i = 0; i < n; ++i)
    target[i] = keep * target[i] + take * source[i];
}

template <typename T>
void ema_strided(Tensor& target, const Tensor& source, T keep, T take) {
  T* t = target.data_ptr<T>();
  const T* s = source.data_ptr<T>();
  std::array<const Shape*, 2> strides{&target.strides(), &source.strides()};
  for_each_run(
      target.shape(), strides, {0, 0},
      [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& step) {
        for (int64_t i = 0; i < n; ++i) {
          T& ti = t[off[0] + i * step[0]];
          ti = keep * ti + take * s[off[1] + i * step[1]];
        }
      });
}

void check_pair(size_t i, const Tensor& target, const Tensor& source) {
  SELFSUP_CHECK(target.defined() && source.defined(), "ema_update: pair ", i,
                " has an undefined tensor");
  SELFSUP_CHECK(target.shape() == source.shape(), "ema_update: pair ", i, ": target shape ",
                shape_str(target.shape()), " and source shape ", shape_str(source.shape()),
                " differ");
  SELFSUP_CHECK(target.dtype() == source.dtype(), "ema_update: pair ", i, " (shapes ",
                shape_str(target.shape()), " and ", shape_str(source.shape()), "): target is ",
                dtype_name(target.dtype()), ", source is ", dtype_name(source.dtype()));
  SELFSUP_CHECK(is_floating(target.dtype()), "ema_update: pair ", i, " is ",
                dtype_name(target.dtype()), ", expected float32 or float64");
  SELFSUP_CHECK(target.device().is_cpu() && source.device().is_cpu(), "ema_update: pair ", i,
                " is not on the CPU");
}

}  // namespace

void ema_update(const std::vector<Tensor>& targets, const std::vector<Tensor>& sources,
                double momentum) {
  SELFSUP_CHECK(targets.size() == sources.size(), "ema_update: ", targets.size(), " targets but ",
                sources.size(), " sources");
  // Every pair is checked before any is written, so a bad list leaves the targets untouched.
  for (size_t i = 0; i < targets.size(); ++i)
    check_pair(i, targets[i], sources[i]);
  for (size_t i = 0; i < targets.size(); ++i) {
    Tensor target = targets[i];  // a handle: writes go to the shared storage
    const Tensor& source = sources[i];
    dispatch_dtype(target.dtype(), [&](auto tag) {
      using T = decltype(tag);
      if constexpr (std::is_floating_point_v<T>) {
        const T keep = static_cast<T>(momentum), take = static_cast<T>(1.0 - momentum);
        if (target.is_contiguous() && source.is_contiguous())
          ema_flat(target.data_ptr<T>(), source.data_ptr<T>(), target.numel(), keep, take);
        else
          ema_strided(target, source, keep, take);
      }
    });
    target.bump_version();
  }
}

}  // namespace selfsup::cpu
