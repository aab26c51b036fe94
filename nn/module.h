// nn::Module: the base of every layer and model, shaped like torch::nn::Module.
//
// A module owns named parameters (tensors that learn: requires_grad leaves), named buffers
// (state that does not learn: BatchNorm's running statistics) and named child modules. Names
// compose with dots, as in PyTorch, so a ResNet's parameters read "layer1.0.conv1.weight" and
// its state_dict() can be compared key by key with torchvision's.
//
// Modules are held by std::shared_ptr (std::shared_ptr<Linear>, like torch's ModuleHolder).
// A parameter handle kept by a subclass (Linear::weight) shares its TensorImpl with the entry
// registered here, so to(dtype) and load_state_dict(), which rewrite tensors in place, keep
// every handle valid.
#pragma once

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace selfsup::nn {

// (name, tensor) pairs in a fixed order: the type of state dicts and of safetensors files.
using NamedTensors = std::vector<std::pair<std::string, Tensor>>;

class Module;
using ModulePtr = std::shared_ptr<Module>;

// How a state dict differs from a module's: what load_state_dict checks before it copies.
struct StateDictDiff {
  struct Mismatch {
    std::string key;
    Shape expected;  // the module's shape
    Shape found;     // the state dict's shape
  };
  std::vector<std::string> missing;     // in the module, not in the dict
  std::vector<std::string> unexpected;  // in the dict, not in the module
  std::vector<Mismatch> mismatched;     // in both, with different shapes

  bool empty() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  // One line naming every problem (at most a few of each kind), e.g.
  // "missing key fc.bias; shape mismatch for conv1.weight is [64, 1, 3, 3] in the state dict
  // but [64, 3, 3, 3] in the module"
  std::string describe(const std::string& key_prefix = "") const;
};

class Module {
 public:
  explicit Module(std::string type_name) : type_name_(std::move(type_name)) {}
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // "Linear", "ResNet", ...: used in error messages and printing.
  const std::string& type_name() const { return type_name_; }

  // The single-tensor forward every layer here has. A module that takes other inputs does
  // not override it; calling it then throws.
  virtual Tensor forward(const Tensor& x);
  Tensor operator()(const Tensor& x) { return forward(x); }

  // ---- registration: the names become the keys of named_parameters() and state_dict() ----
  // Registers t (a leaf; requires_grad is set to `requires_grad`) and returns it.
  Tensor register_parameter(const std::string& name, Tensor t, bool requires_grad = true);
  Tensor register_buffer(const std::string& name, Tensor t);
  template <typename M>
  std::shared_ptr<M> register_module(const std::string& name, std::shared_ptr<M> module) {
    add_child(name, module);
    return module;
  }

  // ---- traversal (pre-order: own entries first, then each child's, in registration order) ----
  std::vector<Tensor> parameters(bool recurse = true) const;
  NamedTensors named_parameters(bool recurse = true) const;
  std::vector<Tensor> buffers(bool recurse = true) const;
  NamedTensors named_buffers(bool recurse = true) const;
  std::vector<ModulePtr> children() const;
  const std::vector<std::pair<std::string, ModulePtr>>& named_children() const { return children_; }
  // This module ("") and every descendant, with dotted names.
  std::vector<std::pair<std::string, Module*>> named_modules();
  // Total number of parameter elements.
  int64_t num_parameters() const;

  // ---- modes and gradients ----
  // Sets training mode on this module and every descendant (BatchNorm, Dropout read it).
  void train(bool on = true);
  void eval() { train(false); }
  bool is_training() const { return training_; }
  // Drops every parameter's gradient (set_to_none, PyTorch's default) or fills it with zeros.
  void zero_grad(bool set_to_none = true);
  // Turns gradient tracking of every parameter on or off (e.g. to freeze an encoder).
  void requires_grad_(bool on = true);
  // Converts every floating parameter and buffer to dtype, in place (handles stay valid;
  // gradients are dropped). Integer buffers such as num_batches_tracked keep their dtype.
  void to(DType dtype);
  // Moves every parameter and buffer to device, in place (handles stay valid; gradients are
  // dropped): model.to(Device::cuda()) before building its optimizer, as in PyTorch.
  void to(Device device);
  // The device of the first parameter (or buffer); the CPU for a module without tensors.
  Device device() const;

  // ---- state dicts ----
  // Parameters and buffers under PyTorch's names, module by module: "bn1.weight", "bn1.bias",
  // "bn1.running_mean", ... The tensors alias the module's (no copy).
  NamedTensors state_dict() const;
  // Compares keys and shapes of `dict` with state_dict().
  StateDictDiff diff_state_dict(const NamedTensors& dict) const;
  // Copies every value of `dict` into the tensor of the same name, in place, without
  // recording a graph (values are converted to the module's dtype). Everything is checked
  // before anything is copied: a missing or unexpected key (when strict) or a shape mismatch
  // (always) throws an Error naming the keys and both shapes, leaving the module unchanged.
  void load_state_dict(const NamedTensors& dict, bool strict = true);

  // A one-line-per-module tree: "ResNet(\n  (conv1): Conv2d(3, 64, kernel=3, ...)\n ...".
  std::string str() const;
  // This module's own description without its children, e.g. "Linear(in=4, out=3, bias=true)".
  virtual std::string extra_repr() const { return ""; }

 private:
  void add_child(const std::string& name, ModulePtr module);
  void check_new_name(const std::string& name) const;
  void collect(const std::string& prefix, bool params, bool recurse, NamedTensors& out) const;
  void str_into(std::string& out, int indent) const;

  std::string type_name_;
  bool training_ = true;
  NamedTensors parameters_;
  NamedTensors buffers_;
  std::vector<std::pair<std::string, ModulePtr>> children_;
};

std::ostream& operator<<(std::ostream& os, const Module& m);

}  // namespace selfsup::nn
