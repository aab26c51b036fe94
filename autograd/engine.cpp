// The backward engine: a topological sort and a loop.
#include <unordered_map>
#include <unordered_set>

#include "autograd/graph.h"
#include "autograd/ops.h"
#include "core/views.h"

namespace selfsup {

namespace {
thread_local bool g_grad_enabled = true;
}

bool GradMode::is_enabled() {
  return g_grad_enabled;
}
void GradMode::set_enabled(bool enabled) {
  g_grad_enabled = enabled;
}

void Node::check_saved_versions() const {
  for (const SavedTensor& s : saved)
    SELFSUP_CHECK(s.tensor.version() == s.version, "backward of ", name, ": a tensor of shape ",
                  shape_str(s.tensor.shape()),
                  " saved for the gradient was modified by an in-place op (version ", s.version,
                  " -> ", s.tensor.version(), "); use an out-of-place op instead");
}

bool any_requires_grad(const std::vector<Tensor>& inputs) {
  if (!GradMode::is_enabled()) return false;
  for (const Tensor& t : inputs)
    if (t.defined() && t.requires_grad()) return true;
  return false;
}

Tensor record(Tensor out, const char* name, std::vector<Tensor> inputs, BackwardFn backward,
              std::vector<Tensor> saved) {
  if (!any_requires_grad(inputs)) return out;
  auto node = std::make_shared<Node>();
  node->name = name;
  node->inputs = std::move(inputs);
  node->backward = std::move(backward);
  for (const Tensor& s : saved)
    if (s.defined()) node->saved.push_back({s.detach(), s.version()});
  // An op may hand back its input unchanged (contiguous() of a contiguous tensor): give the
  // output its own impl so the input's autograd state is untouched.
  for (const Tensor& in : node->inputs)
    if (in.impl() == out.impl()) out = out.detach();
  out.impl()->grad_fn = std::move(node);
  out.impl()->requires_grad = true;
  return out;
}

void check_inplace_allowed(const Tensor& t, const char* op) {
  SELFSUP_CHECK(!(GradMode::is_enabled() && t.requires_grad()), op,
                ": in-place op on a tensor of shape ", shape_str(t.shape()),
                " that requires grad; wrap it in NoGradGuard or use the out-of-place op");
}

namespace {

// Tensors in an order where every tensor comes after all tensors computed from it
// (reverse post-order of an iterative depth-first search from the root).
std::vector<TensorImpl*> topological_order(const Tensor& root) {
  std::vector<TensorImpl*> post;
  std::unordered_set<TensorImpl*> visited;
  std::vector<std::pair<TensorImpl*, size_t>> stack{{root.impl(), 0}};
  visited.insert(root.impl());
  while (!stack.empty()) {
    auto& [impl, next] = stack.back();
    Node* node = impl->grad_fn.get();
    if (node && next < node->inputs.size()) {
      const Tensor& in = node->inputs[next++];
      if (in.defined() && in.requires_grad() && visited.insert(in.impl()).second)
        stack.push_back({in.impl(), 0});
      continue;
    }
    post.push_back(impl);
    stack.pop_back();
  }
  return {post.rbegin(), post.rend()};
}

void accumulate(std::unordered_map<TensorImpl*, Tensor>& grads, TensorImpl* key, const Tensor& g) {
  auto it = grads.find(key);
  if (it == grads.end())
    grads.emplace(key, g);
  else
    it->second = add(it->second, g);
}

}  // namespace

void run_backward(const Tensor& root, const Tensor& gradient) {
  SELFSUP_CHECK(root.requires_grad(), "backward: the tensor of shape ", shape_str(root.shape()),
                " does not require grad (no input of its graph requires grad, or it was made "
                "under NoGradGuard)");
  Tensor seed = gradient;
  if (!seed.defined()) {
    SELFSUP_CHECK(root.numel() == 1,
                  "backward: a gradient argument is needed for a non-scalar "
                  "output of shape ",
                  shape_str(root.shape()));
    seed = ones(root.shape(), TensorOptions(root.dtype()).device(root.device()));
  }
  SELFSUP_CHECK(seed.shape() == root.shape(), "backward: gradient of shape ",
                shape_str(seed.shape()), " for an output of shape ", shape_str(root.shape()));

  NoGradGuard no_grad;  // the backward closures compute, they do not record
  std::unordered_map<TensorImpl*, Tensor> grads;
  grads.emplace(root.impl(), seed);
  for (TensorImpl* impl : topological_order(root)) {
    auto it = grads.find(impl);
    if (it == grads.end()) continue;
    Tensor g = it->second;
    grads.erase(it);
    Node* node = impl->grad_fn.get();
    if (!node) {  // a leaf: accumulate into .grad
      impl->grad = (impl->grad ? add(Tensor(impl->grad), g) : raw::clone(g)).impl_ptr();
      continue;
    }
    node->check_saved_versions();
    std::vector<Tensor> input_grads = node->backward(g);
    SELFSUP_CHECK(input_grads.size() == node->inputs.size(), "backward of ", node->name,
                  ": returned ", input_grads.size(), " gradients for ", node->inputs.size(),
                  " inputs");
    for (size_t k = 0; k < input_grads.size(); ++k) {
      const Tensor& in = node->inputs[k];
      if (!in.defined() || !in.requires_grad() || !input_grads[k].defined()) continue;
      SELFSUP_CHECK(input_grads[k].shape() == in.shape(), "backward of ", node->name,
                    ": gradient of shape ", shape_str(input_grads[k].shape()), " for input ", k,
                    " of shape ", shape_str(in.shape()));
      accumulate(grads, in.impl(), input_grads[k]);
    }
  }
}

void Tensor::backward(const Tensor& gradient) const {
  run_backward(*this, gradient);
}

}  // namespace selfsup
