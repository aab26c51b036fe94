#include "nn/init.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "core/views.h"

namespace selfsup::nn::init {

namespace {

constexpr int64_t kParallelThreshold = 1 << 16;

// The draws follow core/random.h's convention (element i of a draw starting at generator
// offset o uses Philox counter o + i), written straight into the destination: initialising a
// ResNet-50 touches 23.5M elements, and a temporary plus a converting copy per tensor would
// double the time.

// p[i] = low + (high - low) * u_i with u_i uniform in [0, 1) (53 random bits).
template <typename T>
void fill_uniform(T* p, int64_t n, double low, double high, Generator& gen) {
  uint64_t first = gen.advance(static_cast<uint64_t>(n));
  uint64_t seed = gen.seed();
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t i = 0; i < n; ++i) {
    PhiloxOut r = philox4x32(seed, first + static_cast<uint64_t>(i));
    p[i] = static_cast<T>(low + (high - low) * uniform_double(r.v[0], r.v[1]));
  }
}

// p[i] = mean + std * z_i with z_i standard normal. Box-Muller turns the four words of one
// Philox draw into two normals (the cosine and the sine branch), so elements 2k and 2k + 1
// share counter o + k.
template <typename T>
void fill_normal(T* p, int64_t n, double mean, double std, Generator& gen) {
  int64_t pairs = (n + 1) / 2;
  uint64_t first = gen.advance(static_cast<uint64_t>(pairs));
  uint64_t seed = gen.seed();
#pragma omp parallel for schedule(static) if (n > kParallelThreshold)
  for (int64_t k = 0; k < pairs; ++k) {
    PhiloxOut r = philox4x32(seed, first + static_cast<uint64_t>(k));
    double u1 = std::max(uniform_double(r.v[0], r.v[1]), 1e-300);
    double u2 = uniform_double(r.v[2], r.v[3]);
    double radius = std::sqrt(-2.0 * std::log(u1)), angle = 6.283185307179586 * u2;
    p[2 * k] = static_cast<T>(mean + std * radius * std::cos(angle));
    if (2 * k + 1 < n) p[2 * k + 1] = static_cast<T>(mean + std * radius * std::sin(angle));
  }
}

void check_floating_target(const Tensor& t, const char* fn) {
  SELFSUP_CHECK(t.defined(), fn, ": the tensor is undefined");
  SELFSUP_CHECK(is_floating(t.dtype()) && t.device() == kCPU, fn,
                ": expects a floating CPU tensor, got ", dtype_name(t.dtype()));
}

// Runs fill(pointer, n) on t's elements: in place when t is contiguous, else on a contiguous
// scratch tensor that is then copied into the view.
template <typename Fill>
void fill_elements(Tensor& t, Fill fill) {
  Tensor dst = t.is_contiguous() ? t : empty(t.shape(), t.dtype());
  if (dst.dtype() == kFloat32)
    fill(dst.data_ptr<float>(), dst.numel());
  else
    fill(dst.data_ptr<double>(), dst.numel());
  if (dst.impl() != t.impl()) raw::copy_(t, dst);
  t.bump_version();
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
  Generator& g = gen ? *gen : default_generator();
  fill_elements(t, [&](auto* p, int64_t n) { fill_uniform(p, n, low, high, g); });
}

void normal_(Tensor& t, double mean, double std, Generator* gen) {
  check_floating_target(t, "normal_");
  SELFSUP_CHECK(std >= 0, "normal_: std must be non-negative, got ", std);
  Generator& g = gen ? *gen : default_generator();
  fill_elements(t, [&](auto* p, int64_t n) { fill_normal(p, n, mean, std, g); });
}

void trunc_normal_(Tensor& t, double mean, double std, double low, double high, Generator* gen) {
  check_floating_target(t, "trunc_normal_");
  SELFSUP_CHECK(std > 0 && low < high && low <= mean + 3 * std && high >= mean - 3 * std,
                "trunc_normal_: needs std > 0 and [low, high] = [", low, ", ", high,
                "] near the mean ", mean);
  Generator& g = gen ? *gen : default_generator();
  Tensor out = empty(t.shape(), kFloat64);
  double* p = out.data_ptr<double>();
  fill_normal(p, out.numel(), mean, std, g);
  // Redraw the rejected elements, all of them at once each round, until none is left.
  std::vector<int64_t> rejected;
  for (int64_t i = 0; i < out.numel(); ++i)
    if (p[i] < low || p[i] > high) rejected.push_back(i);
  std::vector<double> redraw;
  while (!rejected.empty()) {
    redraw.resize(rejected.size());
    fill_normal(redraw.data(), static_cast<int64_t>(redraw.size()), mean, std, g);
    std::vector<int64_t> still;
    for (size_t k = 0; k < rejected.size(); ++k) {
      if (redraw[k] < low || redraw[k] > high)
        still.push_back(rejected[k]);
      else
        p[rejected[k]] = redraw[k];
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
