#include "nn/init.h"

#include <cmath>
#include <vector>

#include "core/views.h"

namespace selfsup::nn::init {

namespace {

// Draws are made in float64 (so bounds are exact) and then copied, converted, into t, which
// may be any floating dtype and any strides. Initialisation is not a hot path.
Tensor draw_uniform(const Tensor& t, Generator* gen) {
  return rand(t.shape(), kFloat64, gen);
}
Tensor draw_normal(const Tensor& t, Generator* gen) {
  return randn(t.shape(), kFloat64, gen);
}

void check_floating_target(const Tensor& t, const char* fn) {
  SELFSUP_CHECK(t.defined(), fn, ": the tensor is undefined");
  SELFSUP_CHECK(is_floating(t.dtype()), fn, ": expects a floating tensor, got ",
                dtype_name(t.dtype()));
}

// Writes a + b * u for each drawn u into t.
void affine_into(Tensor& t, Tensor drawn, double a, double b) {
  double* p = drawn.data_ptr<double>();
  int64_t n = drawn.numel();
  for (int64_t i = 0; i < n; ++i)
    p[i] = a + b * p[i];
  raw::copy_(t, drawn);
}

double fan_for(const Tensor& t, FanMode mode) {
  auto [fan_in, fan_out] = calculate_fans(t);
  return static_cast<double>(mode == FanMode::FanIn ? fan_in : fan_out);
}

}  // namespace

std::pair<int64_t, int64_t> calculate_fans(const Tensor& t) {
  SELFSUP_CHECK(t.dim() >= 2, "calculate_fans: needs a tensor with at least 2 dims, got ",
                shape_str(t.shape()));
  int64_t receptive = 1;
  for (int64_t d = 2; d < t.dim(); ++d)
    receptive *= t.size(d);
  return {t.size(1) * receptive, t.size(0) * receptive};
}

double calculate_gain(const std::string& nonlinearity, double a) {
  if (nonlinearity == "linear" || nonlinearity == "conv2d" || nonlinearity == "sigmoid" ||
      nonlinearity == "identity")
    return 1.0;
  if (nonlinearity == "tanh") return 5.0 / 3.0;
  if (nonlinearity == "relu") return std::sqrt(2.0);
  if (nonlinearity == "leaky_relu") return std::sqrt(2.0 / (1.0 + a * a));
  if (nonlinearity == "selu") return 0.75;
  throw Error("calculate_gain: unknown nonlinearity '" + nonlinearity +
              "' (linear, conv2d, sigmoid, tanh, relu, leaky_relu, selu)");
}

void uniform_(Tensor& t, double low, double high, Generator* gen) {
  check_floating_target(t, "uniform_");
  SELFSUP_CHECK(low <= high, "uniform_: low ", low, " is above high ", high);
  affine_into(t, draw_uniform(t, gen), low, high - low);
}

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  check_floating_target(t, "normal_");
  SELFSUP_CHECK(std >= 0, "normal_: std must be non-negative, got ", std);
  affine_into(t, draw_normal(t, gen), mean, std);
}

void trunc_normal_(Tensor& t, double mean, double std, double low, double high, Generator* gen) {
  check_floating_target(t, "trunc_normal_");
  SELFSUP_CHECK(std > 0 && low < high && low <= mean + 3 * std && high >= mean - 3 * std,
                "trunc_normal_: needs std > 0 and [low, high] = [", low, ", ", high,
                "] near the mean ", mean);
  Tensor out = draw_normal(t, gen);
  double* p = out.data_ptr<double>();
  for (int64_t i = 0; i < out.numel(); ++i)
    p[i] = mean + std * p[i];
  // Redraw the rejected elements, all of them at once each round, until none is left.
  std::vector<int64_t> rejected;
  for (int64_t i = 0; i < out.numel(); ++i)
    if (p[i] < low || p[i] > high) rejected.push_back(i);
  while (!rejected.empty()) {
    Tensor more = randn({static_cast<int64_t>(rejected.size())}, kFloat64, gen);
    const double* q = more.data_ptr<double>();
    std::vector<int64_t> still;
    for (size_t k = 0; k < rejected.size(); ++k) {
      double v = mean + std * q[k];
      if (v < low || v > high)
        still.push_back(rejected[k]);
      else
        p[rejected[k]] = v;
    }
    rejected.swap(still);
  }
  raw::copy_(t, out);
}

void constant_(Tensor& t, double value) {
  SELFSUP_CHECK(t.defined(), "constant_: the tensor is undefined");
  raw::copy_(t, full({}, value, kFloat64));
}

void zeros_(Tensor& t) {
  constant_(t, 0.0);
}
void ones_(Tensor& t) {
  constant_(t, 1.0);
}

void kaiming_uniform_(Tensor& t, double a, FanMode mode, const std::string& nonlinearity,
                      Generator* gen) {
  check_floating_target(t, "kaiming_uniform_");
  double bound = std::sqrt(3.0) * calculate_gain(nonlinearity, a) / std::sqrt(fan_for(t, mode));
  uniform_(t, -bound, bound, gen);
}

void kaiming_normal_(Tensor& t, double a, FanMode mode, const std::string& nonlinearity,
                     Generator* gen) {
  check_floating_target(t, "kaiming_normal_");
  normal_(t, 0.0, calculate_gain(nonlinearity, a) / std::sqrt(fan_for(t, mode)), gen);
}

void xavier_uniform_(Tensor& t, double gain, Generator* gen) {
  check_floating_target(t, "xavier_uniform_");
  auto [fan_in, fan_out] = calculate_fans(t);
  double bound = std::sqrt(3.0) * gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out));
  uniform_(t, -bound, bound, gen);
}

void xavier_normal_(Tensor& t, double gain, Generator* gen) {
  check_floating_target(t, "xavier_normal_");
  auto [fan_in, fan_out] = calculate_fans(t);
  normal_(t, 0.0, gain * std::sqrt(2.0 / static_cast<double>(fan_in + fan_out)), gen);
}

void default_linear_conv_(Tensor& weight, Tensor& bias, Generator* gen) {
  kaiming_uniform_(weight, std::sqrt(5.0), FanMode::FanIn, "leaky_relu", gen);
  if (!bias.defined()) return;
  double bound = 1.0 / std::sqrt(fan_for(weight, FanMode::FanIn));
  uniform_(bias, -bound, bound, gen);
}

}  // namespace selfsup::nn::init
