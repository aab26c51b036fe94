// The CPU/CUDA switch for indexing and joining (see dispatch.h): check one device, call that
// backend.
#include "kernels/cpu/index.h"
#include "kernels/cuda/index.h"
#include "kernels/dispatch.h"

namespace selfsup::dispatch {

using detail::common_device;

// ============================================================================================
// Indexing and joining
// ============================================================================================

void index_select(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  if (common_device("index_select", {&x, &index, &out}).is_cuda())
    return cuda::index_select(x, dim, index, out);
  cpu::index_select(x, dim, index, out);
}

void index_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (common_device("index_add_", {&out, &index, &src}).is_cuda())
    return cuda::index_add_(out, dim, index, src);
  cpu::index_add_(out, dim, index, src);
}

void gather(const Tensor& x, int64_t dim, const Tensor& index, Tensor& out) {
  if (common_device("gather", {&x, &index, &out}).is_cuda())
    return cuda::gather(x, dim, index, out);
  cpu::gather(x, dim, index, out);
}

void scatter_add_(Tensor& out, int64_t dim, const Tensor& index, const Tensor& src) {
  if (common_device("scatter_add_", {&out, &index, &src}).is_cuda())
    return cuda::scatter_add_(out, dim, index, src);
  cpu::scatter_add_(out, dim, index, src);
}

namespace {

// common_device over a list: every input, then out; the message names the first two that
// differ ("cat: tensors on cpu and cuda:0").
Device cat_device(const std::vector<Tensor>& xs, const Tensor& out) {
  const Tensor* first = nullptr;
  for (const Tensor& x : xs) {
    if (!x.defined()) continue;
    if (first)
      common_device("cat", {first, &x});
    else
      first = &x;
  }
  return first ? common_device("cat", {first, &out}) : common_device("cat", {&out});
}

}  // namespace

void cat(const std::vector<Tensor>& xs, int64_t dim, Tensor& out) {
  if (cat_device(xs, out).is_cuda()) return cuda::cat(xs, dim, out);
  cpu::cat(xs, dim, out);
}

}  // namespace selfsup::dispatch
