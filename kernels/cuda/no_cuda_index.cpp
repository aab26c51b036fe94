// Indexing and joining stubs (kernels/cuda/index.h), built instead of index.cu in a CPU-only
// build so kernels/dispatch_index.cpp links. No CUDA tensor can exist there; called, they say so.
#include "core/error.h"
#include "kernels/cuda/index.h"

namespace selfsup::cuda {

namespace {
[[noreturn]] void no_index_backend(const char* op) {
  throw Error(std::string(op) + ": this build has no CUDA backend");
}
}  // namespace

void index_select(const Tensor&, int64_t, const Tensor&, Tensor&) {
  no_index_backend("index_select");
}
void index_add_(Tensor&, int64_t, const Tensor&, const Tensor&) {
  no_index_backend("index_add_");
}
void gather(const Tensor&, int64_t, const Tensor&, Tensor&) {
  no_index_backend("gather");
}
void scatter_add_(Tensor&, int64_t, const Tensor&, const Tensor&) {
  no_index_backend("scatter_add_");
}
void cat(const std::vector<Tensor>&, int64_t, Tensor&) {
  no_index_backend("cat");
}
std::optional<int64_t> detail::first_out_of_range(const Tensor&, int64_t) {
  no_index_backend("index check");
}

}  // namespace selfsup::cuda
