// The layers: thin modules over the differentiable ops of autograd/ops.h, with PyTorch's
// parameter names, shapes, defaults and initialisation.
//
// Every layer with parameters takes an optional Generator* (the default generator when null)
// that its initialisation draws from. Parameters are float32; Module::to(kFloat64) converts.
#pragma once

#include <initializer_list>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random.h"
#include "nn/buffer_mirror.h"
#include "nn/module.h"

namespace selfsup::nn {

// ---------------------------------------------------------------- Linear

// y = x W^T + b. weight [out, in], bias [out]. Input [..., in].
class Linear : public Module {
 public:
  Linear(int64_t in_features, int64_t out_features, bool bias = true, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  int64_t in_features, out_features;
  Tensor weight, bias;  // bias undefined when constructed without
};

// ---------------------------------------------------------------- Conv2d

// Conv2dOptions(in, out, kernel).stride(2).padding(1).bias(false), as in torch::nn.
struct Conv2dOptions {
  Conv2dOptions(int64_t in_channels, int64_t out_channels, int64_t kernel_size)
      : in_channels_(in_channels), out_channels_(out_channels), kernel_size_(kernel_size) {}
  Conv2dOptions& stride(int64_t s) {
    stride_ = s;
    return *this;
  }
  Conv2dOptions& padding(int64_t p) {
    padding_ = p;
    return *this;
  }
  Conv2dOptions& bias(bool b) {
    bias_ = b;
    return *this;
  }

  int64_t in_channels_, out_channels_, kernel_size_;
  int64_t stride_ = 1, padding_ = 0;
  bool bias_ = true;
};

// Cross-correlation of x [N, C_in, H, W] with weight [C_out, C_in, k, k], plus bias [C_out].
class Conv2d : public Module {
 public:
  explicit Conv2d(const Conv2dOptions& options, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Conv2dOptions options;
  Tensor weight, bias;
};

// ---------------------------------------------------------------- normalisation

// BatchNormOptions(num_features).eps(1e-5).momentum(0.1).affine(true).track_running_stats(true).
// momentum nullopt gives PyTorch's cumulative average (factor 1 / num_batches_tracked).
struct BatchNormOptions {
  explicit BatchNormOptions(int64_t num_features) : num_features_(num_features) {}
  BatchNormOptions& eps(double e) {
    eps_ = e;
    return *this;
  }
  BatchNormOptions& momentum(std::optional<double> m) {
    momentum_ = m;
    return *this;
  }
  BatchNormOptions& affine(bool a) {
    affine_ = a;
    return *this;
  }
  BatchNormOptions& track_running_stats(bool t) {
    track_running_stats_ = t;
    return *this;
  }

  int64_t num_features_;
  double eps_ = 1e-5;
  std::optional<double> momentum_ = 0.1;
  bool affine_ = true;
  bool track_running_stats_ = true;
};

// Batch normalisation over the channel dim 1. Training: normalise with the batch statistics
// and update running_mean / running_var (unbiased) with momentum, counting batches in
// num_batches_tracked. Eval: normalise with the running statistics (or, without them, with the
// batch's). Parameters weight (1) and bias (0) [C] when affine.
class BatchNorm : public Module {
 public:
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  BatchNormOptions options;
  Tensor weight, bias;                                    // undefined unless affine
  Tensor running_mean, running_var, num_batches_tracked;  // undefined unless tracking

 protected:
  BatchNorm(const std::string& type_name, const BatchNormOptions& options, int64_t min_dim,
            int64_t max_dim);

 private:
  // num_batches_tracked += 1; returns the new count. The count is kept on the host too, so
  // a forward on a GPU does not wait to read it back (see nn/buffer_mirror.h).
  int64_t increment_batches_tracked();

  int64_t min_dim_, max_dim_;  // accepted input ranks
  IntBufferMirror batches_tracked_;
};

// Over [N, C] or [N, C, L].
class BatchNorm1d : public BatchNorm {
 public:
  explicit BatchNorm1d(const BatchNormOptions& options);
  explicit BatchNorm1d(int64_t num_features) : BatchNorm1d(BatchNormOptions(num_features)) {}
};

// Over [N, C, H, W].
class BatchNorm2d : public BatchNorm {
 public:
  explicit BatchNorm2d(const BatchNormOptions& options);
  explicit BatchNorm2d(int64_t num_features) : BatchNorm2d(BatchNormOptions(num_features)) {}
};

// Normalises over the trailing dims given by normalized_shape, with weight (1) and bias (0)
// of that shape when elementwise_affine.
class LayerNorm : public Module {
 public:
  explicit LayerNorm(Shape normalized_shape, double eps = 1e-5, bool elementwise_affine = true);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;

  Shape normalized_shape;
  double eps;
  Tensor weight, bias;
};

// ---------------------------------------------------------------- activations, pooling, ...

class ReLU : public Module {
 public:
  ReLU() : Module("ReLU") {}
  Tensor forward(const Tensor& x) override;
};

// The exact (erf) GELU.
class GELU : public Module {
 public:
  GELU() : Module("GELU") {}
  Tensor forward(const Tensor& x) override;
};

// stride -1 means stride = kernel_size, as in PyTorch.
class MaxPool2d : public Module {
 public:
  explicit MaxPool2d(int64_t kernel_size, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t kernel_size, stride, padding;
};

class AvgPool2d : public Module {
 public:
  explicit AvgPool2d(int64_t kernel_size, int64_t stride = -1, int64_t padding = 0);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t kernel_size, stride, padding;
};

class AdaptiveAvgPool2d : public Module {
 public:
  explicit AdaptiveAvgPool2d(int64_t output_size) : AdaptiveAvgPool2d(output_size, output_size) {}
  AdaptiveAvgPool2d(int64_t output_h, int64_t output_w);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t output_h, output_w;
};

// Flattens dims start_dim..end_dim into one (default: all but the batch dim).
class Flatten : public Module {
 public:
  explicit Flatten(int64_t start_dim = 1, int64_t end_dim = -1);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  int64_t start_dim, end_dim;
};

// Inverted dropout in training, identity in eval. The mask draws from gen (or the default
// generator at the time of the forward).
class Dropout : public Module {
 public:
  explicit Dropout(double p = 0.5, Generator* gen = nullptr);
  Tensor forward(const Tensor& x) override;
  std::string extra_repr() const override;
  double p;
  Generator* gen;
};

class Identity : public Module {
 public:
  Identity() : Module("Identity") {}
  Tensor forward(const Tensor& x) override { return x; }
};

// ---------------------------------------------------------------- Sequential

// Applies its children in order; they are named "0", "1", ... as in torch.nn.Sequential.
class Sequential : public Module {
 public:
  Sequential() : Module("Sequential") {}
  Sequential(std::initializer_list<ModulePtr> modules);
  explicit Sequential(const std::vector<ModulePtr>& modules);

  void push_back(ModulePtr module);
  size_t size() const { return named_children().size(); }
  const ModulePtr& operator[](size_t i) const;
  // The i-th module as an M (throws if it is another type).
  template <typename M>
  std::shared_ptr<M> at(size_t i) const {
    auto m = std::dynamic_pointer_cast<M>((*this)[i]);
    SELFSUP_CHECK(m != nullptr, "Sequential: module ", i, " is a ", (*this)[i]->type_name(),
                  ", not the type asked for");
    return m;
  }
  Tensor forward(const Tensor& x) override;
};

}  // namespace selfsup::nn
