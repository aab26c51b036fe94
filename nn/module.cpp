#include "nn/module.h"

#include <map>
#include <ostream>

#include "autograd/graph.h"
#include "core/views.h"

namespace selfsup::nn {

// ---------------------------------------------------------------- StateDictDiff

namespace {

// Appends at most `limit` items of a list, then "(and N more)".
template <typename T, typename F>
void append_limited(std::string& out, const std::vector<T>& items, size_t limit, F describe) {
  for (size_t i = 0; i < items.size() && i < limit; ++i) {
    if (i) out += ", ";
    out += describe(items[i]);
  }
  if (items.size() > limit) out += " (and " + std::to_string(items.size() - limit) + " more)";
}

}  // namespace

std::string StateDictDiff::describe(const std::string& key_prefix) const {
  constexpr size_t kLimit = 4;
  std::string out;
  auto separate = [&] {
    if (!out.empty()) out += "; ";
  };
  auto key = [&](const std::string& k) { return key_prefix + k; };
  if (!missing.empty()) {
    separate();
    out += missing.size() == 1 ? "missing key " : "missing keys ";
    append_limited(out, missing, kLimit, key);
  }
  if (!unexpected.empty()) {
    separate();
    out += unexpected.size() == 1 ? "unexpected key " : "unexpected keys ";
    append_limited(out, unexpected, kLimit, key);
  }
  if (!mismatched.empty()) {
    separate();
    out += "shape mismatch for ";
    append_limited(out, mismatched, kLimit, [&](const Mismatch& m) {
      return key(m.key) + " is " + shape_str(m.found) + " in the state dict but " +
             shape_str(m.expected) + " in the module";
    });
  }
  return out;
}

// ---------------------------------------------------------------- registration

Tensor Module::forward(const Tensor&) {
  throw Error(type_name_ + ": this module has no single-tensor forward(x)");
}

void Module::check_new_name(const std::string& name) const {
  SELFSUP_CHECK(!name.empty() && name.find('.') == std::string::npos, type_name_,
                ": a parameter, buffer or child name must be non-empty and contain no '.', got '",
                name, "'");
  auto taken = [&](const auto& list) {
    for (const auto& [n, _] : list)
      if (n == name) return true;
    return false;
  };
  SELFSUP_CHECK(!taken(parameters_) && !taken(buffers_) && !taken(children_), type_name_,
                ": the name '", name, "' is already registered");
}

Tensor Module::register_parameter(const std::string& name, Tensor t, bool requires_grad) {
  check_new_name(name);
  SELFSUP_CHECK(t.defined(), type_name_, ": parameter '", name, "' is undefined");
  SELFSUP_CHECK(t.is_leaf(), type_name_, ": parameter '", name,
                "' must be a leaf tensor (detach() it first)");
  t.requires_grad_(requires_grad);
  parameters_.emplace_back(name, t);
  return t;
}

Tensor Module::register_buffer(const std::string& name, Tensor t) {
  check_new_name(name);
  SELFSUP_CHECK(t.defined(), type_name_, ": buffer '", name, "' is undefined");
  buffers_.emplace_back(name, t);
  return t;
}

void Module::add_child(const std::string& name, ModulePtr module) {
  check_new_name(name);
  SELFSUP_CHECK(module != nullptr, type_name_, ": child module '", name, "' is null");
  children_.emplace_back(name, std::move(module));
}

// ---------------------------------------------------------------- traversal

void Module::collect(const std::string& prefix, bool params, bool recurse,
                     NamedTensors& out) const {
  for (const auto& [name, t] : params ? parameters_ : buffers_)
    out.emplace_back(prefix + name, t);
  if (!recurse) return;
  for (const auto& [name, child] : children_)
    child->collect(prefix + name + ".", params, true, out);
}

NamedTensors Module::named_parameters(bool recurse) const {
  NamedTensors out;
  collect("", true, recurse, out);
  return out;
}

NamedTensors Module::named_buffers(bool recurse) const {
  NamedTensors out;
  collect("", false, recurse, out);
  return out;
}

std::vector<Tensor> Module::parameters(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_parameters(recurse))
    out.push_back(t);
  return out;
}

std::vector<Tensor> Module::buffers(bool recurse) const {
  std::vector<Tensor> out;
  for (auto& [_, t] : named_buffers(recurse))
    out.push_back(t);
  return out;
}

std::vector<ModulePtr> Module::children() const {
  std::vector<ModulePtr> out;
  for (const auto& [_, c] : children_)
    out.push_back(c);
  return out;
}

std::vector<std::pair<std::string, Module*>> Module::named_modules() {
  std::vector<std::pair<std::string, Module*>> out{{"", this}};
  for (const auto& [name, child] : children_)
    for (auto& [sub, m] : child->named_modules())
      out.emplace_back(sub.empty() ? name : name + "." + sub, m);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& t : parameters())
    n += t.numel();
  return n;
}

// ---------------------------------------------------------------- modes and gradients

void Module::train(bool on) {
  training_ = on;
  for (const auto& [_, child] : children_)
    child->train(on);
}

void Module::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (const auto& p : parameters()) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    if (set_to_none)
      p.set_grad(Tensor());
    else
      g.zero_();
  }
}

void Module::requires_grad_(bool on) {
  for (auto p : parameters())
    p.requires_grad_(on);
}

namespace {

// Points every handle of `t` at `converted`'s data: the shared TensorImpl is rewritten, so
// optimizers and views built on the handle see the new tensor. Gradients are dropped.
void rebind(const Tensor& t, const Tensor& converted) {
  TensorImpl* impl = t.impl();
  impl->storage = converted.impl()->storage;
  impl->shape = converted.shape();
  impl->strides = converted.strides();
  impl->offset = converted.offset();
  impl->dtype = converted.dtype();
  impl->grad.reset();
}

}  // namespace

void Module::to(DType dtype) {
  auto convert = [dtype](const Tensor& t) {
    if (!is_floating(t.dtype()) || t.dtype() == dtype) return;
    rebind(t, raw::to_dtype(t, dtype));
  };
  for (const auto& t : parameters())
    convert(t);
  for (const auto& t : buffers())
    convert(t);
}

void Module::to(Device device) {
  auto move = [device](const Tensor& t) {
    if (t.device() == device) return;
    rebind(t, raw::to_device(t, device));
  };
  for (const auto& t : parameters())
    move(t);
  for (const auto& t : buffers())
    move(t);
}

Device Module::device() const {
  for (const auto& t : parameters())
    return t.device();
  for (const auto& t : buffers())
    return t.device();
  return kCPU;
}

// ---------------------------------------------------------------- state dicts

NamedTensors Module::state_dict() const {
  NamedTensors out;
  // Module by module, parameters before buffers, as PyTorch orders its state dicts.
  for (const auto& [name, t] : parameters_)
    out.emplace_back(name, t);
  for (const auto& [name, t] : buffers_)
    out.emplace_back(name, t);
  for (const auto& [name, child] : children_)
    for (auto& [key, t] : child->state_dict())
      out.emplace_back(name + "." + key, t);
  return out;
}

StateDictDiff Module::diff_state_dict(const NamedTensors& dict) const {
  StateDictDiff diff;
  std::map<std::string, const Tensor*> given;
  for (const auto& [key, t] : dict)
    given.emplace(key, &t);
  std::map<std::string, bool> own;
  for (const auto& [key, t] : state_dict()) {
    own.emplace(key, true);
    auto it = given.find(key);
    if (it == given.end())
      diff.missing.push_back(key);
    else if (!it->second->defined() || it->second->shape() != t.shape())
      diff.mismatched.push_back(
          {key, t.shape(), it->second->defined() ? it->second->shape() : Shape{}});
  }
  for (const auto& [key, _] : dict)
    if (!own.count(key)) diff.unexpected.push_back(key);
  return diff;
}

void Module::load_state_dict(const NamedTensors& dict, bool strict) {
  StateDictDiff diff = diff_state_dict(dict);
  if (!strict) {
    diff.missing.clear();
    diff.unexpected.clear();
  }
  SELFSUP_CHECK(diff.empty(), "load_state_dict (", type_name_, "): ", diff.describe());
  std::map<std::string, const Tensor*> given;
  for (const auto& [key, t] : dict)
    given.emplace(key, &t);
  NoGradGuard no_grad;
  for (auto& [key, t] : state_dict()) {
    auto it = given.find(key);
    if (it != given.end()) t.copy_(*it->second);
  }
}

// ---------------------------------------------------------------- printing

void Module::str_into(std::string& out, int indent) const {
  out += type_name_ + "(" + extra_repr();
  if (children_.empty()) {
    out += ")";
    return;
  }
  for (const auto& [name, child] : children_) {
    out.append("\n").append(indent + 2, ' ').append("(").append(name).append("): ");
    child->str_into(out, indent + 2);
  }
  out.append("\n").append(indent, ' ').append(")");
}

std::string Module::str() const {
  std::string out;
  str_into(out, 0);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Module& m) {
  return os << m.str();
}

}  // namespace selfsup::nn
