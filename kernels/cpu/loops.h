// Private loop helpers for the CPU element-wise and reduction kernels.
//
//  - parallel_for: splits [0, n) into one contiguous range per OpenMP thread when it pays.
//  - Nest: a strided loop nest over K operands that share one iteration shape (a broadcast
//    input simply has stride 0 along the dims it is broadcast over). make_nest simplifies it
//    before it runs: size-1 dims are dropped, dims are put in the memory order of a lead operand
//    and neighbouring dims that every operand walks as one are fused. A contiguous [N, C, H, W]
//    tensor plus a [C, 1, 1] bias becomes a [N, C, H*W] nest whose innermost run is H*W long.
//  - for_each_run_between: walks any flat range of a nest run by run, so a nest splits across
//    threads at arbitrary element boundaries.
#pragma once

#include <omp.h>

#include <algorithm>
#include <array>
#include <cstdint>
#include <numeric>
#include <vector>

#include "core/error.h"
#include "core/shape.h"
#include "core/tensor.h"
#include "kernels/writable.h"

namespace selfsup::cpu::detail {

// Below this many elements (or units of equal work) a loop stays on one thread: waking a thread
// team costs a few microseconds, about what one core needs for ~32k simple element operations.
constexpr int64_t kParallelGrain = 32768;

// Calls body(begin, end) over [0, n): on the calling thread when n <= grain, else once per
// OpenMP thread with an even share. Bodies must not throw (an exception cannot leave a team).
template <typename Body>
void parallel_for(int64_t n, int64_t grain, Body&& body) {
  if (n <= 0) return;
  if (n <= grain || omp_in_parallel() || omp_get_max_threads() == 1) {
    body(int64_t{0}, n);
    return;
  }
#pragma omp parallel
  {
    const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = n * t / nt, end = n * (t + 1) / nt;
    if (begin < end) body(begin, end);
  }
}

// ---- argument checks shared by the kernels ----

inline void check_cpu(const char* op, const Tensor& t) {
  SELFSUP_CHECK(t.device().is_cpu(), op, ": expected a CPU tensor, got one on ", t.device().str());
}

// An output must be on the CPU and must not write one memory location twice: an expanded
// tensor (stride 0 along a dim of size > 1) would make the result depend on the loop order.
inline void check_writable(const char* op, const Tensor& out) {
  check_cpu(op, out);
  kernels::check_not_expanded(op, "out", out);
}

// ---- the loop nest ----

template <size_t K>
struct Nest {
  Shape shape;                    // iteration sizes, outermost first; always at least one dim
  std::array<Shape, K> strides;   // operand k's step along each dim, in elements (0 = broadcast)
  std::array<int64_t, K> base{};  // operand k's element offset at index 0

  int64_t ndim() const { return static_cast<int64_t>(shape.size()); }
  int64_t numel() const { return shape_numel(shape); }
};

// The simplified nest for iteration shape `shape` (see the file comment). Ties in the memory
// order keep their row-major order (a stable sort), so an all-contiguous nest stays as it was.
template <size_t K>
Nest<K> make_nest(const Shape& shape, const std::array<Shape, K>& strides, size_t lead) {
  std::vector<size_t> dims;
  for (size_t d = 0; d < shape.size(); ++d)
    if (shape[d] != 1) dims.push_back(d);
  std::stable_sort(dims.begin(), dims.end(),
                   [&](size_t a, size_t b) { return strides[lead][a] > strides[lead][b]; });

  Nest<K> nest;
  for (size_t d : dims) {
    bool fuses = !nest.shape.empty();
    for (size_t k = 0; k < K && fuses; ++k)
      fuses = nest.strides[k].back() == strides[k][d] * shape[d];
    if (fuses) {  // the previous dim steps exactly over this one: one longer dim
      nest.shape.back() *= shape[d];
      for (size_t k = 0; k < K; ++k)
        nest.strides[k].back() = strides[k][d];
      continue;
    }
    nest.shape.push_back(shape[d]);
    for (size_t k = 0; k < K; ++k)
      nest.strides[k].push_back(strides[k][d]);
  }
  if (nest.shape.empty()) {  // a single element
    nest.shape.push_back(1);
    for (size_t k = 0; k < K; ++k)
      nest.strides[k].push_back(0);
  }
  return nest;
}

// The part of `nest` with index in [begin, end) along dim d.
template <size_t K>
Nest<K> slice_nest(const Nest<K>& nest, int64_t d, int64_t begin, int64_t end) {
  Nest<K> sub = nest;
  sub.shape[d] = end - begin;
  for (size_t k = 0; k < K; ++k)
    sub.base[k] += begin * nest.strides[k][d];
  return sub;
}

// Calls body(offsets, n, steps) for the innermost runs that cover the flat (row-major) elements
// [begin, end) of the nest: offsets[k] is operand k's offset at the run's first element and
// steps[k] its stride along the run.
template <size_t K, typename Body>
void for_each_run_between(const Nest<K>& nest, int64_t begin, int64_t end, Body&& body) {
  if (begin >= end) return;
  const int64_t nd = nest.ndim(), run = nest.shape[nd - 1];
  std::array<int64_t, K> steps;
  for (size_t k = 0; k < K; ++k)
    steps[k] = nest.strides[k][nd - 1];

  // Seek to the row (index over the outer dims) that holds element `begin`.
  Shape idx(nd - 1);
  std::array<int64_t, K> row = nest.base;
  int64_t r = begin / run;
  for (int64_t d = nd - 2; d >= 0; --d) {
    idx[d] = r % nest.shape[d];
    r /= nest.shape[d];
    for (size_t k = 0; k < K; ++k)
      row[k] += idx[d] * nest.strides[k][d];
  }

  int64_t col = begin % run;
  for (int64_t pos = begin; pos < end;) {
    const int64_t n = std::min(run - col, end - pos);
    std::array<int64_t, K> off;
    for (size_t k = 0; k < K; ++k)
      off[k] = row[k] + col * steps[k];
    body(off, n, steps);
    pos += n;
    col = 0;
    // Odometer step to the next row over dims nd-2 .. 0.
    for (int64_t d = nd - 2; d >= 0; --d) {
      for (size_t k = 0; k < K; ++k)
        row[k] += nest.strides[k][d];
      if (++idx[d] < nest.shape[d]) break;
      for (size_t k = 0; k < K; ++k)
        row[k] -= nest.strides[k][d] * nest.shape[d];
      idx[d] = 0;
    }
  }
}

// Every run of the nest, split across threads by element count.
template <size_t K, typename Body>
void parallel_runs(const Nest<K>& nest, Body&& body) {
  parallel_for(nest.numel(), kParallelGrain,
               [&](int64_t begin, int64_t end) { for_each_run_between(nest, begin, end, body); });
}

}  // namespace selfsup::cpu::detail
