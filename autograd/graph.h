// The autograd graph, small enough to hold in your head (micrograd's idea, PyTorch's names).
//
// Every differentiable op that sees an input requiring grad records a Node on its output: the
// op's name, its inputs (the parents in the graph) and a closure that maps the gradient of the
// output to the gradients of the inputs. backward() (autograd/engine.cpp) sorts the graph
// topologically from the output and runs the closures in reverse order, summing the gradients
// that reach each tensor, and accumulates them into the .grad of the leaves.
//
// Tensors the closure needs are saved with their storage version; if an in-place op changes one
// before backward runs, backward raises an Error instead of returning a wrong gradient.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/tensor.h"

namespace selfsup {

// Maps d(loss)/d(output) to d(loss)/d(input_k) for each input (an undefined Tensor for an
// input that gets no gradient).
using BackwardFn = std::function<std::vector<Tensor>(const Tensor& grad_output)>;

struct SavedTensor {
  Tensor tensor;     // a detached alias: saving it creates no reference cycle
  uint64_t version;  // the storage version when saved
};

struct Node {
  std::string name;
  std::vector<Tensor> inputs;  // the op's differentiable inputs, in the order BackwardFn returns
  BackwardFn backward;
  std::vector<SavedTensor> saved;

  // Throws if a saved tensor was modified in place since it was saved.
  void check_saved_versions() const;
};

// Whether ops record the graph. On by default; NoGradGuard turns it off for a scope.
struct GradMode {
  static bool is_enabled();
  static void set_enabled(bool enabled);
};

class NoGradGuard {
 public:
  NoGradGuard() : prev_(GradMode::is_enabled()) { GradMode::set_enabled(false); }
  ~NoGradGuard() { GradMode::set_enabled(prev_); }
  NoGradGuard(const NoGradGuard&) = delete;
  NoGradGuard& operator=(const NoGradGuard&) = delete;

 private:
  bool prev_;
};

// True when an op on these inputs must record a node (grad mode on and any input requires grad).
bool any_requires_grad(const std::vector<Tensor>& inputs);

// Records `out` as produced by op `name` from `inputs` if any_requires_grad(inputs); `saved`
// lists the tensors the closure captured, for the in-place check. Returns out.
Tensor record(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward,
              std::vector<Tensor> saved = {});

// Computes gradients of `root` with respect to every leaf that requires grad, accumulating
// them into the leaves' .grad. `gradient` defaults to 1 for a one-element root.
void run_backward(const Tensor& root, const Tensor& gradient);

// Refuses an in-place op on a tensor that requires grad while grad mode is on.
void check_inplace_allowed(const Tensor& t, const char* op);

}  // namespace selfsup
