// Parameter initialisation, after torch.nn.init: every function fills a tensor in place,
// without recording a graph, drawing from gen (the default generator when null) so that a
// seed fixes a model's initial weights.
//
// Fans of a weight [out, in, k...]: fan_in = in * prod(k), fan_out = out * prod(k).
//
// Draws follow core/random.h: a uniform fill of n elements takes n Philox counters (the same
// numbers as rand(shape, kFloat64, gen)); a normal fill takes one counter per pair of elements
// (Box-Muller's cosine and sine branches). Elements are drawn in row-major order, so a view
// gets the same values as a contiguous tensor of its shape.
#pragma once

#include <string>
#include <utility>

#include "core/random.h"
#include "core/tensor.h"

namespace selfsup::nn::init {

enum class FanMode { FanIn, FanOut };

// (fan_in, fan_out) of a tensor with at least 2 dims.
std::pair<int64_t, int64_t> calculate_fans(const Tensor& t);

// The gain PyTorch recommends for a nonlinearity: "linear", "conv2d", "sigmoid" -> 1,
// "tanh" -> 5/3, "relu" -> sqrt(2), "leaky_relu" -> sqrt(2 / (1 + a^2)), "selu" -> 3/4.
double calculate_gain(const std::string& nonlinearity, double a = 0.0);

void uniform_(Tensor& t, double low = 0.0, double high = 1.0, Generator* gen = nullptr);
void normal_(Tensor& t, double mean = 0.0, double std = 1.0, Generator* gen = nullptr);
// Normal(mean, std) redrawn until inside [low, high] (ViT-style initialisation).
void trunc_normal_(Tensor& t, double mean = 0.0, double std = 1.0, double low = -2.0,
                   double high = 2.0, Generator* gen = nullptr);
void constant_(Tensor& t, double value);
void zeros_(Tensor& t);
void ones_(Tensor& t);

// He et al. 2015: std = gain / sqrt(fan); uniform on [-sqrt(3) std, sqrt(3) std] or normal.
// The defaults are PyTorch's (a = 0, fan_in, leaky_relu).
void kaiming_uniform_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                      const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
void kaiming_normal_(Tensor& t, double a = 0.0, FanMode mode = FanMode::FanIn,
                     const std::string& nonlinearity = "leaky_relu", Generator* gen = nullptr);
// Glorot & Bengio 2010: std = gain * sqrt(2 / (fan_in + fan_out)).
void xavier_uniform_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);
void xavier_normal_(Tensor& t, double gain = 1.0, Generator* gen = nullptr);

// PyTorch's default for Linear and Conv2d: kaiming_uniform_ with a = sqrt(5) for the weight
// (a bound of 1/sqrt(fan_in)) and uniform(-1/sqrt(fan_in), 1/sqrt(fan_in)) for the bias
// (which may be undefined).
void default_linear_conv_(Tensor& weight, Tensor& bias, Generator* gen = nullptr);

}  // namespace selfsup::nn::init
