#include "nn/layers.h"

#include "autograd/ops.h"
#include "nn/init.h"

namespace selfsup::nn {

namespace {

std::string bool_str(bool b) {
  return b ? "true" : "false";
}

}  // namespace

// ---------------------------------------------------------------- Linear

Linear::Linear(int64_t in, int64_t out, bool with_bias, Generator* gen)
    : Module("Linear"), in_features(in), out_features(out) {
  SELFSUP_CHECK(in > 0 && out > 0, "Linear: sizes must be positive, got in_features=", in,
                " out_features=", out);
  weight = register_parameter("weight", empty({out, in}));
  if (with_bias) bias = register_parameter("bias", empty({out}));
  init::default_linear_conv_(weight, bias, gen);
}

Tensor Linear::forward(const Tensor& x) {
  SELFSUP_CHECK(x.dim() >= 1 && x.size(-1) == in_features, "Linear(", in_features, ", ",
                out_features, "): expected input [..., ", in_features, "], got ",
                shape_str(x.shape()));
  return linear(x, weight, bias);
}

std::string Linear::extra_repr() const {
  return "in_features=" + std::to_string(in_features) +
         ", out_features=" + std::to_string(out_features) + ", bias=" + bool_str(bias.defined());
}

// ---------------------------------------------------------------- Conv2d

Conv2d::Conv2d(const Conv2dOptions& o, Generator* gen) : Module("Conv2d"), options(o) {
  SELFSUP_CHECK(o.in_channels_ > 0 && o.out_channels_ > 0 && o.kernel_size_ > 0 && o.stride_ > 0 &&
                    o.padding_ >= 0,
                "Conv2d: invalid options in_channels=", o.in_channels_,
                " out_channels=", o.out_channels_, " kernel_size=", o.kernel_size_,
                " stride=", o.stride_, " padding=", o.padding_);
  weight = register_parameter(
      "weight", empty({o.out_channels_, o.in_channels_, o.kernel_size_, o.kernel_size_}));
  if (o.bias_) bias = register_parameter("bias", empty({o.out_channels_}));
  init::default_linear_conv_(weight, bias, gen);
}

Tensor Conv2d::forward(const Tensor& x) {
  SELFSUP_CHECK(x.dim() == 4 && x.size(1) == options.in_channels_, "Conv2d(", options.in_channels_,
                ", ", options.out_channels_, "): expected input [N, ", options.in_channels_,
                ", H, W], got ", shape_str(x.shape()));
  return conv2d(x, weight, bias, options.stride_, options.padding_);
}

std::string Conv2d::extra_repr() const {
  return std::to_string(options.in_channels_) + ", " + std::to_string(options.out_channels_) +
         ", kernel_size=" + std::to_string(options.kernel_size_) +
         ", stride=" + std::to_string(options.stride_) +
         ", padding=" + std::to_string(options.padding_) + ", bias=" + bool_str(bias.defined());
}

// ---------------------------------------------------------------- BatchNorm

BatchNorm::BatchNorm(const std::string& type_name, const BatchNormOptions& o, int64_t min_dim,
                     int64_t max_dim)
    : Module(type_name), options(o), min_dim_(min_dim), max_dim_(max_dim) {
  int64_t c = o.num_features_;
  SELFSUP_CHECK(c > 0 && o.eps_ > 0, type_name, ": needs num_features > 0 and eps > 0, got ", c,
                " and ", o.eps_);
  SELFSUP_CHECK(!o.momentum_ || (*o.momentum_ >= 0 && *o.momentum_ <= 1), type_name,
                ": momentum must be in [0, 1], got ", o.momentum_.value_or(0));
  if (o.affine_) {
    weight = register_parameter("weight", ones({c}));
    bias = register_parameter("bias", zeros({c}));
  }
  if (o.track_running_stats_) {
    running_mean = register_buffer("running_mean", zeros({c}));
    running_var = register_buffer("running_var", ones({c}));
    num_batches_tracked = register_buffer("num_batches_tracked", zeros({}, kInt64));
  }
}

int64_t BatchNorm::increment_batches_tracked() {
  const int64_t count = batches_tracked_.read(num_batches_tracked)[0] + 1;
  batches_tracked_.write(num_batches_tracked, {count});
  return count;
}

Tensor BatchNorm::forward(const Tensor& x) {
  int64_t c = options.num_features_;
  SELFSUP_CHECK(x.dim() >= min_dim_ && x.dim() <= max_dim_ && x.size(1) == c, type_name(), "(", c,
                "): expected a ", min_dim_, (min_dim_ == max_dim_ ? "" : " or more"),
                "-d input with ", c, " channels in dim 1, got ", shape_str(x.shape()));
  bool tracking = running_mean.defined();
  // Without running statistics the batch's own are used in eval too, as in PyTorch.
  bool batch_stats = is_training() || !tracking;
  if (batch_stats)
    SELFSUP_CHECK(x.numel() / c > 1, type_name(), ": expected more than 1 value per channel ",
                  "when using batch statistics, got input ", shape_str(x.shape()));
  double factor = options.momentum_.value_or(0.0);
  if (is_training() && tracking) {
    const int64_t count = increment_batches_tracked();
    if (!options.momentum_) factor = 1.0 / static_cast<double>(count);
  }
  // Training updates the running statistics in place; eval reads them (undefined when not
  // tracking, so nothing is updated or read).
  return batch_norm(x, running_mean, running_var, weight, bias, batch_stats, factor, options.eps_);
}

std::string BatchNorm::extra_repr() const {
  return std::to_string(options.num_features_) + ", eps=" + std::to_string(options.eps_) +
         ", momentum=" + (options.momentum_ ? std::to_string(*options.momentum_) : "None") +
         ", affine=" + bool_str(options.affine_) +
         ", track_running_stats=" + bool_str(options.track_running_stats_);
}

BatchNorm1d::BatchNorm1d(const BatchNormOptions& o) : BatchNorm("BatchNorm1d", o, 2, 3) {}
BatchNorm2d::BatchNorm2d(const BatchNormOptions& o) : BatchNorm("BatchNorm2d", o, 4, 4) {}

// ---------------------------------------------------------------- LayerNorm

LayerNorm::LayerNorm(Shape shape, double eps_, bool elementwise_affine)
    : Module("LayerNorm"), normalized_shape(std::move(shape)), eps(eps_) {
  SELFSUP_CHECK(!normalized_shape.empty() && shape_numel(normalized_shape) > 0 && eps > 0,
                "LayerNorm: needs a non-empty normalized_shape and eps > 0, got ",
                shape_str(normalized_shape), " and ", eps);
  if (elementwise_affine) {
    weight = register_parameter("weight", ones(normalized_shape));
    bias = register_parameter("bias", zeros(normalized_shape));
  }
}

Tensor LayerNorm::forward(const Tensor& x) {
  auto nd = static_cast<int64_t>(normalized_shape.size());
  bool fits = x.dim() >= nd && Shape(x.shape().end() - nd, x.shape().end()) == normalized_shape;
  SELFSUP_CHECK(fits, "LayerNorm", shape_str(normalized_shape), ": expected input [..., ",
                shape_str(normalized_shape).substr(1), ", got ", shape_str(x.shape()));
  return layer_norm(x, nd, weight, bias, eps);
}

std::string LayerNorm::extra_repr() const {
  return shape_str(normalized_shape) + ", eps=" + std::to_string(eps) +
         ", elementwise_affine=" + bool_str(weight.defined());
}

// ---------------------------------------------------------------- activations, pooling, ...

Tensor ReLU::forward(const Tensor& x) {
  return relu(x);
}
Tensor GELU::forward(const Tensor& x) {
  return gelu(x);
}

namespace {

std::string pool_repr(int64_t k, int64_t s, int64_t p) {
  return "kernel_size=" + std::to_string(k) + ", stride=" + std::to_string(s) +
         ", padding=" + std::to_string(p);
}

}  // namespace

MaxPool2d::MaxPool2d(int64_t k, int64_t s, int64_t p)
    : Module("MaxPool2d"), kernel_size(k), stride(s > 0 ? s : k), padding(p) {}
Tensor MaxPool2d::forward(const Tensor& x) {
  return max_pool2d(x, kernel_size, stride, padding);
}
std::string MaxPool2d::extra_repr() const {
  return pool_repr(kernel_size, stride, padding);
}

AvgPool2d::AvgPool2d(int64_t k, int64_t s, int64_t p)
    : Module("AvgPool2d"), kernel_size(k), stride(s > 0 ? s : k), padding(p) {}
Tensor AvgPool2d::forward(const Tensor& x) {
  return avg_pool2d(x, kernel_size, stride, padding);
}
std::string AvgPool2d::extra_repr() const {
  return pool_repr(kernel_size, stride, padding);
}

AdaptiveAvgPool2d::AdaptiveAvgPool2d(int64_t h, int64_t w)
    : Module("AdaptiveAvgPool2d"), output_h(h), output_w(w) {
  SELFSUP_CHECK(h > 0 && w > 0, "AdaptiveAvgPool2d: output size must be positive, got ", h, "x", w);
}
Tensor AdaptiveAvgPool2d::forward(const Tensor& x) {
  return adaptive_avg_pool2d(x, output_h, output_w);
}
std::string AdaptiveAvgPool2d::extra_repr() const {
  return "output_size=(" + std::to_string(output_h) + ", " + std::to_string(output_w) + ")";
}

Flatten::Flatten(int64_t start, int64_t end) : Module("Flatten"), start_dim(start), end_dim(end) {}
Tensor Flatten::forward(const Tensor& x) {
  return flatten(x, start_dim, end_dim);
}
std::string Flatten::extra_repr() const {
  return "start_dim=" + std::to_string(start_dim) + ", end_dim=" + std::to_string(end_dim);
}

Dropout::Dropout(double p_, Generator* gen_) : Module("Dropout"), p(p_), gen(gen_) {
  SELFSUP_CHECK(p >= 0 && p <= 1, "Dropout: probability must be in [0, 1], got ", p);
}
Tensor Dropout::forward(const Tensor& x) {
  return dropout(x, p, is_training(), gen);
}
std::string Dropout::extra_repr() const {
  return "p=" + std::to_string(p);
}

// ---------------------------------------------------------------- Sequential

Sequential::Sequential(std::initializer_list<ModulePtr> modules) : Module("Sequential") {
  for (const auto& m : modules)
    push_back(m);
}

Sequential::Sequential(const std::vector<ModulePtr>& modules) : Module("Sequential") {
  for (const auto& m : modules)
    push_back(m);
}

void Sequential::push_back(ModulePtr module) {
  register_module(std::to_string(size()), std::move(module));
}

const ModulePtr& Sequential::operator[](size_t i) const {
  SELFSUP_CHECK(i < size(), "Sequential: index ", i, " is out of range for ", size(), " modules");
  return named_children()[i].second;
}

Tensor Sequential::forward(const Tensor& x) {
  Tensor y = x;
  for (const auto& [_, m] : named_children())
    y = m->forward(y);
  return y;
}

}  // namespace selfsup::nn
