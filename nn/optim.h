// Optimizers with PyTorch's update rules: SGD (momentum, dampening, Nesterov, weight decay),
// AdamW (decoupled weight decay, bias correction) and LARS (layer-wise trust ratio, the large-
// batch optimizer of SimCLR / BYOL / Barlow Twins), plus clip_grad_norm_.
//
// Parameters come in groups, each with its own lr and weight_decay (unset: the optimizer's)
// and flags. step() updates, in place and without recording a graph, every parameter that has
// a gradient; per-parameter state (momentum buffers, Adam moments) is created on its first
// step and never reallocated. Each group is updated by one kernel call (kernels/cpu/optim.h on
// the CPU, the multi-tensor kernels of kernels/cuda/ema.h on the GPU, float32 there).
//
// state_dict() exports the state as named tensors plus string metadata, the shape of a
// safetensors file: tensors "state.<i>.<buffer>" (i counts parameters over all groups, as
// PyTorch does, e.g. "state.3.momentum_buffer") and metadata "type", "group.<g>.lr",
// "group.<g>.weight_decay", "state.<i>.step", ...
#pragma once

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "nn/module.h"

namespace selfsup::optim {

using nn::NamedTensors;

struct ParamGroup {
  std::vector<Tensor> params;
  std::optional<double> lr;            // unset: the optimizer's lr
  std::optional<double> weight_decay;  // unset: the optimizer's weight_decay
  // LARS: every parameter of this group skips trust-ratio adaptation and weight decay (1-d
  // parameters skip them anyway when LarsOptions::exclude_1d is set). Ignored by SGD/AdamW.
  bool lars_exclude = false;
  // set_lr(lr) gives this group lr * lr_scale (e.g. 0.1 for a fine-tuned backbone).
  double lr_scale = 1.0;
};

// What step() keeps for one parameter.
struct ParamState {
  int64_t step = 0;
  NamedTensors buffers;  // e.g. {"momentum_buffer", ...}, shaped like the parameter
  // The buffer called name, created zero-filled like `param` if absent.
  Tensor& buffer(const std::string& name, const Tensor& param);
};

struct OptimizerState {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update of every parameter with a gradient (those without one are skipped).
  void step();
  // Drops (default) or zeroes every parameter's gradient.
  void zero_grad(bool set_to_none = true);

  const std::string& type_name() const { return type_name_; }
  std::vector<ParamGroup>& param_groups() { return groups_; }
  const std::vector<ParamGroup>& param_groups() const { return groups_; }
  double lr(size_t group = 0) const;
  void set_lr(size_t group, double lr);
  // Every group's lr = lr * its lr_scale: what a schedule calls each step.
  void set_lr(double lr);
  // The state of parameter i (counted over all groups).
  const ParamState& state(size_t i) const;

  OptimizerState state_dict() const;
  // Restores group hyperparameters and per-parameter state. The optimizer must be of the same
  // type with the same group layout and parameter shapes; otherwise an Error names the key.
  void load_state_dict(const OptimizerState& state);

 protected:
  Optimizer(std::string type_name, std::vector<ParamGroup> groups, double lr, double weight_decay);
  // Updates, in place, the parameters of one group that have a gradient: batch.params[i] with
  // gradient batch.grads[i] (contiguous, same dtype and shape) and state *batch.states[i]. One
  // call per group per step, so the GPU updates the whole group in one multi-tensor launch.
  struct GroupBatch {
    std::vector<Tensor> params, grads;
    std::vector<ParamState*> states;
  };
  virtual void update(const ParamGroup& group, const GroupBatch& batch) = 0;
  // The optimizer-wide hyperparameters, for the metadata ("momentum", "betas", ...).
  virtual std::map<std::string, std::string> hyperparameters() const = 0;

 private:
  std::string type_name_;
  std::vector<ParamGroup> groups_;
  std::vector<ParamState> state_;  // one per parameter, over all groups in order
};

// A single group holding every parameter, with the optimizer's defaults.
std::vector<ParamGroup> single_group(const std::vector<Tensor>& params);
// The common SSL split: group 0 holds the weight matrices and kernels (>= 2 dims) with
// weight_decay; group 1 the biases and norm parameters (1-d) with none, flagged lars_exclude.
// An empty group is left out.
std::vector<ParamGroup> split_weight_decay(const std::vector<Tensor>& params, double weight_decay);

// ---------------------------------------------------------------- SGD

struct SgdOptions {
  double lr = 0.1;
  double momentum = 0.0;
  double dampening = 0.0;
  double weight_decay = 0.0;
  bool nesterov = false;
};

// PyTorch's rule, for gradient g of parameter p:
//   d = g + weight_decay * p
//   if momentum: buf = d on the first step, else momentum * buf + (1 - dampening) * d
//                d = nesterov ? d + momentum * buf : buf
//   p -= lr * d
class SGD : public Optimizer {
 public:
  SGD(std::vector<ParamGroup> groups, const SgdOptions& options);
  SGD(const std::vector<Tensor>& params, const SgdOptions& options)
      : SGD(single_group(params), options) {}
  SgdOptions options;

 protected:
  void update(const ParamGroup& group, const GroupBatch& batch) override;
  std::map<std::string, std::string> hyperparameters() const override;
};

// ---------------------------------------------------------------- AdamW

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9, beta2 = 0.999;
  double eps = 1e-8;
  double weight_decay = 1e-2;
};

// PyTorch's rule (Loshchilov & Hutter 2019), t = the parameter's step count after increment:
//   p *= 1 - lr * weight_decay
//   m = beta1 m + (1 - beta1) g;   v = beta2 v + (1 - beta2) g^2
//   p -= lr / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
class AdamW : public Optimizer {
 public:
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);
  AdamW(const std::vector<Tensor>& params, const AdamWOptions& options)
      : AdamW(single_group(params), options) {}
  AdamWOptions options;

 protected:
  void update(const ParamGroup& group, const GroupBatch& batch) override;
  std::map<std::string, std::string> hyperparameters() const override;
};

// ---------------------------------------------------------------- LARS

struct LarsOptions {
  double lr = 0.1;
  double momentum = 0.9;
  double weight_decay = 1e-6;
  double eta = 1e-3;       // trust coefficient
  bool exclude_1d = true;  // biases and norm weights skip adaptation and weight decay
};

// You et al. 2017, as the SSL papers use it. For a parameter that is not excluded:
//   q = eta * ||p|| / (||g|| + weight_decay * ||p||)   (1 when ||p|| or ||g|| is 0)
//   d = q * (g + weight_decay * p)
// and for an excluded one d = g. Then  buf = momentum * buf + d;  p -= lr * buf.
class LARS : public Optimizer {
 public:
  LARS(std::vector<ParamGroup> groups, const LarsOptions& options);
  LARS(const std::vector<Tensor>& params, const LarsOptions& options)
      : LARS(single_group(params), options) {}
  LarsOptions options;

 protected:
  void update(const ParamGroup& group, const GroupBatch& batch) override;
  std::map<std::string, std::string> hyperparameters() const override;
};

// ---------------------------------------------------------------- gradient clipping

// Scales every gradient by max_norm / (total + 1e-6) when the total 2-norm of all gradients
// exceeds max_norm (PyTorch's rule). Returns the total norm before clipping.
double clip_grad_norm_(const std::vector<Tensor>& params, double max_norm);

// The 2-norm of a contiguous or strided floating tensor, accumulated in double.
double l2_norm(const Tensor& t);

}  // namespace selfsup::optim
