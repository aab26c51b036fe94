#include "nn/optim.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>

#include "autograd/graph.h"
#include "core/views.h"
#include "kernels/dispatch.h"

namespace selfsup::optim {

namespace {

// Shortest text that reads back as the same double.
std::string format_double(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

double parse_double(const std::map<std::string, std::string>& meta, const std::string& key) {
  auto it = meta.find(key);
  SELFSUP_CHECK(it != meta.end(), "optimizer load_state_dict: missing metadata '", key, "'");
  try {
    size_t used = 0;
    double v = std::stod(it->second, &used);
    if (used == it->second.size()) return v;
  } catch (const std::exception&) {
  }
  throw Error("optimizer load_state_dict: metadata '" + key + "' = '" + it->second +
              "' is not a number");
}

int64_t parse_int(const std::map<std::string, std::string>& meta, const std::string& key) {
  double v = parse_double(meta, key);
  SELFSUP_CHECK(v == std::floor(v) && v >= 0, "optimizer load_state_dict: metadata '", key,
                "' = ", v, " is not a non-negative integer");
  return static_cast<int64_t>(v);
}

// Splits "state.<index>.<name>": index and the position where name starts.
bool parse_state_key(const std::string& key, size_t& index, size_t& name_at) {
  const std::string prefix = "state.";
  if (key.rfind(prefix, 0) != 0) return false;
  size_t pos = prefix.size();
  size_t digits_end = key.find_first_not_of("0123456789", pos);
  if (digits_end == pos || digits_end == std::string::npos || digits_end - pos > 12) return false;
  if (key[digits_end] != '.' || digits_end + 1 == key.size()) return false;
  index = std::stoull(key.substr(pos, digits_end - pos));
  name_at = digits_end + 1;
  return true;
}

}  // namespace

// ---------------------------------------------------------------- ParamState

Tensor& ParamState::buffer(const std::string& name, const Tensor& param) {
  for (auto& [n, t] : buffers)
    if (n == name) return t;
  buffers.emplace_back(name,
                       zeros(param.shape(), TensorOptions(param.dtype()).device(param.device())));
  return buffers.back().second;
}

// ---------------------------------------------------------------- Optimizer

std::vector<ParamGroup> single_group(const std::vector<Tensor>& params) {
  ParamGroup g;
  g.params = params;
  return {g};
}

std::vector<ParamGroup> split_weight_decay(const std::vector<Tensor>& params, double weight_decay) {
  ParamGroup decay, no_decay;
  decay.weight_decay = weight_decay;
  no_decay.weight_decay = 0.0;
  no_decay.lars_exclude = true;
  for (const Tensor& p : params)
    (p.dim() >= 2 ? decay : no_decay).params.push_back(p);
  std::vector<ParamGroup> groups;
  for (ParamGroup* g : {&decay, &no_decay})
    if (!g->params.empty()) groups.push_back(*g);
  return groups;
}

Optimizer::Optimizer(std::string type_name, std::vector<ParamGroup> groups, double lr,
                     double weight_decay)
    : type_name_(std::move(type_name)), groups_(std::move(groups)) {
  SELFSUP_CHECK(!groups_.empty(), type_name_, ": needs at least one parameter group");
  SELFSUP_CHECK(lr >= 0 && weight_decay >= 0, type_name_, ": lr ", lr, " and weight_decay ",
                weight_decay, " must be non-negative");
  std::set<const TensorImpl*> seen;
  size_t index = 0;
  for (size_t g = 0; g < groups_.size(); ++g) {
    ParamGroup& group = groups_[g];
    if (!group.lr) group.lr = lr;
    if (!group.weight_decay) group.weight_decay = weight_decay;
    SELFSUP_CHECK(*group.lr >= 0 && *group.weight_decay >= 0, type_name_, ": group ", g,
                  " has a negative lr or weight_decay");
    for (const Tensor& p : group.params) {
      SELFSUP_CHECK(p.defined() && is_floating(p.dtype()) && p.is_contiguous(), type_name_,
                    ": parameter ", index, " must be a defined, contiguous, floating tensor");
      SELFSUP_CHECK(seen.insert(p.impl()).second, type_name_, ": parameter ", index,
                    " appears more than once in the parameter groups");
      ++index;
    }
  }
  state_.resize(index);
}

void Optimizer::step() {
  NoGradGuard no_grad;
  size_t index = 0;
  for (const ParamGroup& group : groups_) {
    GroupBatch batch;
    for (const Tensor& param : group.params) {
      ParamState& st = state_[index++];
      Tensor grad = param.grad();
      if (!grad.defined()) continue;
      SELFSUP_CHECK(grad.shape() == param.shape() && grad.dtype() == param.dtype(), type_name_,
                    ": gradient ", shape_str(grad.shape()), " ", dtype_name(grad.dtype()),
                    " does not match parameter ", index - 1, " ", shape_str(param.shape()), " ",
                    dtype_name(param.dtype()));
      if (!grad.is_contiguous()) grad = raw::contiguous(grad);
      batch.params.push_back(param);
      batch.grads.push_back(grad);
      batch.states.push_back(&st);
    }
    if (batch.params.empty()) continue;
    update(group, batch);
    for (const Tensor& param : batch.params)
      param.bump_version();
  }
}

void Optimizer::zero_grad(bool set_to_none) {
  NoGradGuard no_grad;
  for (const ParamGroup& group : groups_)
    for (const Tensor& p : group.params) {
      Tensor g = p.grad();
      if (!g.defined()) continue;
      if (set_to_none)
        p.set_grad(Tensor());
      else
        g.zero_();
    }
}

double Optimizer::lr(size_t group) const {
  SELFSUP_CHECK(group < groups_.size(), type_name_, ": no parameter group ", group, " (of ",
                groups_.size(), ")");
  return *groups_[group].lr;
}

void Optimizer::set_lr(size_t group, double lr) {
  SELFSUP_CHECK(group < groups_.size(), type_name_, ": no parameter group ", group, " (of ",
                groups_.size(), ")");
  SELFSUP_CHECK(lr >= 0 && std::isfinite(lr), type_name_, ": lr must be finite and >= 0, got ", lr);
  groups_[group].lr = lr;
}

void Optimizer::set_lr(double lr) {
  for (size_t g = 0; g < groups_.size(); ++g)
    set_lr(g, lr * groups_[g].lr_scale);
}

const ParamState& Optimizer::state(size_t i) const {
  SELFSUP_CHECK(i < state_.size(), type_name_, ": no parameter ", i, " (of ", state_.size(), ")");
  return state_[i];
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState out;
  out.metadata["type"] = type_name_;
  out.metadata["num_groups"] = std::to_string(groups_.size());
  for (const auto& [key, value] : hyperparameters())
    out.metadata[key] = value;
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::string prefix = "group." + std::to_string(g) + ".";
    out.metadata[prefix + "lr"] = format_double(*groups_[g].lr);
    out.metadata[prefix + "weight_decay"] = format_double(*groups_[g].weight_decay);
    out.metadata[prefix + "lr_scale"] = format_double(groups_[g].lr_scale);
    out.metadata[prefix + "lars_exclude"] = groups_[g].lars_exclude ? "1" : "0";
    out.metadata[prefix + "num_params"] = std::to_string(groups_[g].params.size());
  }
  for (size_t i = 0; i < state_.size(); ++i) {
    if (state_[i].step == 0 && state_[i].buffers.empty()) continue;
    std::string prefix = "state." + std::to_string(i) + ".";
    out.metadata[prefix + "step"] = std::to_string(state_[i].step);
    for (const auto& [name, t] : state_[i].buffers)
      out.tensors.emplace_back(prefix + name, t);
  }
  return out;
}

void Optimizer::load_state_dict(const OptimizerState& in) {
  const auto& meta = in.metadata;
  auto type = meta.find("type");
  SELFSUP_CHECK(type != meta.end() && type->second == type_name_,
                "optimizer load_state_dict: the state is of a ",
                type == meta.end() ? std::string("(untyped)") : type->second,
                " optimizer, this is ", type_name_);
  SELFSUP_CHECK(parse_int(meta, "num_groups") == static_cast<int64_t>(groups_.size()),
                "optimizer load_state_dict: the state has ", meta.at("num_groups"),
                " parameter groups, this optimizer ", groups_.size());
  std::vector<const Tensor*> params;
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::string key = "group." + std::to_string(g) + ".num_params";
    SELFSUP_CHECK(parse_int(meta, key) == static_cast<int64_t>(groups_[g].params.size()),
                  "optimizer load_state_dict: '", key, "' is ", meta.at(key),
                  ", this optimizer's group ", g, " has ", groups_[g].params.size());
    for (const Tensor& p : groups_[g].params)
      params.push_back(&p);
  }
  // Check every tensor before changing anything.
  std::vector<ParamState> loaded(state_.size());
  for (const auto& [key, t] : in.tensors) {
    size_t index = 0, name_at = 0;
    bool parsed = parse_state_key(key, index, name_at);
    SELFSUP_CHECK(parsed && index < params.size(), "optimizer load_state_dict: unexpected tensor '",
                  key, "' (", params.size(), " parameters)");
    const Tensor& p = *params[index];
    SELFSUP_CHECK(t.shape() == p.shape(), "optimizer load_state_dict: tensor '", key,
                  "' has shape ", shape_str(t.shape()), ", parameter ", index, " has ",
                  shape_str(p.shape()));
    Tensor copy = raw::to_dtype(raw::contiguous(t), p.dtype());
    if (copy.device() != p.device()) copy = raw::to_device(copy, p.device());
    if (copy.shares_storage_with(t)) copy = raw::clone(copy);
    loaded[index].buffers.emplace_back(key.substr(name_at), copy);
  }
  for (size_t i = 0; i < loaded.size(); ++i) {
    std::string key = "state." + std::to_string(i) + ".step";
    if (meta.count(key)) loaded[i].step = parse_int(meta, key);
  }
  for (size_t g = 0; g < groups_.size(); ++g) {
    std::string prefix = "group." + std::to_string(g) + ".";
    double lr = parse_double(meta, prefix + "lr");
    double wd = parse_double(meta, prefix + "weight_decay");
    groups_[g].lr = lr;
    groups_[g].weight_decay = wd;
    if (meta.count(prefix + "lr_scale"))
      groups_[g].lr_scale = parse_double(meta, prefix + "lr_scale");
  }
  state_ = std::move(loaded);
}

// ---------------------------------------------------------------- SGD

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& o)
    : Optimizer("SGD", std::move(groups), o.lr, o.weight_decay), options(o) {
  SELFSUP_CHECK(o.momentum >= 0 && o.dampening >= 0, "SGD: momentum ", o.momentum,
                " and dampening ", o.dampening, " must be non-negative");
  SELFSUP_CHECK(!o.nesterov || (o.momentum > 0 && o.dampening == 0),
                "SGD: Nesterov momentum needs momentum > 0 and dampening 0");
}

void SGD::update(const ParamGroup& group, const GroupBatch& batch) {
  // The momentum buffer takes d itself on a parameter's first step: one kernel call for the
  // parameters on their first step, one for the rest (in practice one of the two is empty).
  for (bool first : {true, false}) {
    std::vector<Tensor> params, grads, buffers;
    for (size_t i = 0; i < batch.params.size(); ++i) {
      ParamState& st = *batch.states[i];
      if ((st.step == 0) != first) continue;
      params.push_back(batch.params[i]);
      grads.push_back(batch.grads[i]);
      if (options.momentum != 0) buffers.push_back(st.buffer("momentum_buffer", batch.params[i]));
    }
    if (params.empty()) continue;
    dispatch::sgd_step(params, grads, buffers,
                       {*group.lr, options.momentum, options.dampening, *group.weight_decay,
                        options.nesterov, first});
  }
  for (ParamState* st : batch.states)
    ++st->step;
}

std::map<std::string, std::string> SGD::hyperparameters() const {
  return {{"momentum", format_double(options.momentum)},
          {"dampening", format_double(options.dampening)},
          {"nesterov", options.nesterov ? "1" : "0"}};
}

// ---------------------------------------------------------------- AdamW

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& o)
    : Optimizer("AdamW", std::move(groups), o.lr, o.weight_decay), options(o) {
  SELFSUP_CHECK(o.beta1 >= 0 && o.beta1 < 1 && o.beta2 >= 0 && o.beta2 < 1 && o.eps >= 0,
                "AdamW: needs betas in [0, 1) and eps >= 0, got (", o.beta1, ", ", o.beta2,
                ") and ", o.eps);
}

void AdamW::update(const ParamGroup& group, const GroupBatch& batch) {
  // The bias corrections depend on each parameter's step count: one kernel call per distinct
  // count (in practice one).
  std::map<int64_t, std::array<std::vector<Tensor>, 4>> by_step;  // params, grads, m, v
  for (size_t i = 0; i < batch.params.size(); ++i) {
    ParamState& st = *batch.states[i];
    auto& lists = by_step[++st.step];
    lists[0].push_back(batch.params[i]);
    lists[1].push_back(batch.grads[i]);
    lists[2].push_back(st.buffer("exp_avg", batch.params[i]));
    lists[3].push_back(st.buffer("exp_avg_sq", batch.params[i]));
  }
  for (const auto& [step, lists] : by_step)
    dispatch::adamw_step(
        lists[0], lists[1], lists[2], lists[3],
        {*group.lr, options.beta1, options.beta2, options.eps, *group.weight_decay, step});
}

std::map<std::string, std::string> AdamW::hyperparameters() const {
  return {{"beta1", format_double(options.beta1)},
          {"beta2", format_double(options.beta2)},
          {"eps", format_double(options.eps)}};
}

// ---------------------------------------------------------------- LARS

LARS::LARS(std::vector<ParamGroup> groups, const LarsOptions& o)
    : Optimizer("LARS", std::move(groups), o.lr, o.weight_decay), options(o) {
  SELFSUP_CHECK(o.momentum >= 0 && o.eta > 0, "LARS: needs momentum >= 0 and eta > 0, got ",
                o.momentum, " and ", o.eta);
}

void LARS::update(const ParamGroup& group, const GroupBatch& batch) {
  std::vector<Tensor> buffers;
  std::vector<bool> excluded;
  for (size_t i = 0; i < batch.params.size(); ++i) {
    ++batch.states[i]->step;
    buffers.push_back(batch.states[i]->buffer("momentum_buffer", batch.params[i]));
    excluded.push_back(group.lars_exclude || (options.exclude_1d && batch.params[i].dim() <= 1));
  }
  dispatch::lars_step(batch.params, batch.grads, buffers, excluded,
                      {*group.lr, options.momentum, *group.weight_decay, options.eta});
}

std::map<std::string, std::string> LARS::hyperparameters() const {
  return {{"momentum", format_double(options.momentum)},
          {"eta", format_double(options.eta)},
          {"exclude_1d", options.exclude_1d ? "1" : "0"}};
}

// ---------------------------------------------------------------- clipping

double l2_norm(const Tensor& t) {
  return std::sqrt(dispatch::sum_of_squares(t));
}

double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm) {
  SELFSUP_CHECK(max_norm > 0, "clip_grad_norm_: max_norm must be positive, got ", max_norm);
  double total_sq = 0;
  for (const Tensor& p : params) {
    Tensor g = p.grad();
    if (!g.defined()) continue;
    double n = l2_norm(g);
    total_sq += n * n;
  }
  double total = std::sqrt(total_sq);
  double coef = max_norm / (total + 1e-6);
  if (coef < 1) {
    NoGradGuard no_grad;
    for (const Tensor& p : params) {
      Tensor g = p.grad();
      if (g.defined()) g.mul_(coef);
    }
  }
  return total;
}

}  // namespace selfsup::optim
