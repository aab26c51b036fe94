// The op table: every differentiable op, with broadcast and non-contiguous sample inputs, run
// through gradcheck in float64 (the idea of PyTorch's OpInfo). Adding an op means adding a row.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/op_utils.h"
#include "autograd/ops.h"
#include "core/views.h"
#include "tests/cuda_test_util.h"

using namespace selfsup;

namespace {

enum class Dist { Normal, Positive, AwayFromZero, Probabilities, Index };

struct InputSpec {
  Shape shape;
  Dist dist = Dist::Normal;
  bool transposed = false;  // make the leaf a non-contiguous (transposed) view
  bool grad = true;
  int64_t index_high = 0;  // for Dist::Index: values in [0, index_high)
};

struct OpCase {
  std::string name;
  std::vector<InputSpec> inputs;
  std::function<Tensor(const std::vector<Tensor>&)> fn;
};

Tensor make_input(const InputSpec& s, Generator& gen) {
  if (s.dist == Dist::Index) return randint(0, s.index_high, s.shape, kInt64, &gen);
  Shape base_shape = s.shape;
  if (s.transposed) std::swap(base_shape[base_shape.size() - 1], base_shape[base_shape.size() - 2]);
  Tensor t = randn(base_shape, kFloat64, &gen);
  double* p = t.data_ptr<double>();
  for (int64_t i = 0; i < t.numel(); ++i) {
    if (s.dist == Dist::Positive) p[i] = 0.5 + std::abs(p[i]);
    if (s.dist == Dist::AwayFromZero) p[i] = (p[i] >= 0 ? 0.2 : -0.2) + p[i];
  }
  if (s.dist == Dist::Probabilities) {  // rows summing to one
    t = raw::contiguous(t);
    int64_t c = t.shape().back();
    for (int64_t r = 0; r < t.numel() / c; ++r) {
      double total = 0;
      for (int64_t j = 0; j < c; ++j)
        total += (p[r * c + j] = std::exp(p[r * c + j]));
      for (int64_t j = 0; j < c; ++j)
        p[r * c + j] /= total;
    }
  }
  if (s.transposed) t = raw::transpose(t, -1, -2);
  if (s.grad) t.requires_grad_();
  return t;
}

InputSpec in(Shape s, Dist d = Dist::Normal) {
  return {std::move(s), d};
}
InputSpec tr(Shape s, Dist d = Dist::Normal) {
  return {std::move(s), d, true};
}
InputSpec idx(Shape s, int64_t high) {
  return {std::move(s), Dist::Index, false, false, high};
}
InputSpec fixed(Shape s, Dist d = Dist::Normal) {
  return {std::move(s), d, false, false};
}

using V = const std::vector<Tensor>&;

std::vector<OpCase> op_table() {
  return {
      // element-wise, with broadcasting and non-contiguous inputs
      {"add_broadcast", {in({3, 4}), in({4})}, [](V x) { return add(x[0], x[1]); }},
      {"sub_broadcast", {in({2, 1, 3}), in({4, 1})}, [](V x) { return sub(x[0], x[1]); }},
      {"mul_transposed", {tr({3, 5}), in({3, 5})}, [](V x) { return mul(x[0], x[1]); }},
      {"div", {in({3, 4}), in({3, 1}, Dist::Positive)}, [](V x) { return div(x[0], x[1]); }},
      {"maximum", {in({5, 3}), in({3})}, [](V x) { return maximum(x[0], x[1]); }},
      {"minimum", {in({5, 3}), tr({5, 3})}, [](V x) { return minimum(x[0], x[1]); }},
      {"pow_scalar", {in({7}, Dist::Positive)}, [](V x) { return pow(x[0], 2.5); }},
      {"pow_tensor", {in({3, 2}, Dist::Positive), in({2})}, [](V x) { return pow(x[0], x[1]); }},
      {"scalar_ops", {in({4})}, [](V x) { return 2.0 - x[0] * 3.0 + 1.0 / (x[0] * x[0] + 1.0); }},
      {"neg", {tr({3, 4})}, [](V x) { return neg(x[0]); }},
      {"exp", {in({3, 4})}, [](V x) { return exp(x[0]); }},
      {"log", {in({3, 4}, Dist::Positive)}, [](V x) { return log(x[0]); }},
      {"sqrt", {in({3, 4}, Dist::Positive)}, [](V x) { return sqrt(x[0]); }},
      {"abs", {in({3, 4}, Dist::AwayFromZero)}, [](V x) { return abs(x[0]); }},
      {"square", {tr({2, 3})}, [](V x) { return square(x[0]); }},
      {"relu", {in({4, 5}, Dist::AwayFromZero)}, [](V x) { return relu(x[0]); }},
      {"gelu", {in({4, 5})}, [](V x) { return gelu(x[0]); }},
      {"sigmoid", {tr({4, 5})}, [](V x) { return sigmoid(x[0]); }},
      {"tanh", {in({4, 5})}, [](V x) { return tanh(x[0]); }},
      {"clamp", {in({30}, Dist::AwayFromZero)}, [](V x) { return clamp(x[0], -0.7, 0.9); }},
      {"where", {in({3, 4}), in({4})}, [](V x) { return where(gt(x[0], 0.0), x[0], x[1]); }},
      // reductions
      {"sum_all", {tr({3, 4})}, [](V x) { return sum(x[0]); }},
      {"sum_dims",
       {in({2, 3, 4})},
       [](V x) {
         return sum(x[0], {0, 2});
       }},
      {"sum_keepdim", {in({2, 3, 4})}, [](V x) { return sum(x[0], {1}, true); }},
      {"mean", {in({2, 3, 4})}, [](V x) { return mean(x[0], {-1}); }},
      {"var", {in({5, 4})}, [](V x) { return var(x[0], {0}); }},
      {"std_keepdim", {tr({5, 4})}, [](V x) { return selfsup::std(x[0], {1}, 1, true); }},
      {"max_dim", {in({4, 6})}, [](V x) { return max(x[0], 1).first; }},
      {"min_dim_keep", {in({4, 6})}, [](V x) { return min(x[0], 0, true).first; }},
      {"normalize", {in({4, 6})}, [](V x) { return normalize(x[0], 1); }},
      // linear algebra
      {"matmul", {in({3, 5}), in({5, 4})}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul_transposed", {tr({3, 5}), tr({5, 4})}, [](V x) { return matmul(x[0], x[1]); }},
      {"matmul_nd", {in({2, 3, 5}), in({5, 2})}, [](V x) { return matmul(x[0], x[1]); }},
      {"bmm", {in({2, 3, 4}), tr({2, 4, 5})}, [](V x) { return bmm(x[0], x[1]); }},
      {"linear", {in({4, 3}), in({5, 3}), in({5})}, [](V x) { return linear(x[0], x[1], x[2]); }},
      // softmax and losses
      {"softmax", {in({3, 5})}, [](V x) { return softmax(x[0], 1); }},
      {"softmax_dim0", {tr({3, 5})}, [](V x) { return softmax(x[0], 0); }},
      {"log_softmax", {in({3, 5})}, [](V x) { return log_softmax(x[0], -1); }},
      {"cross_entropy", {in({5, 7}), idx({5}, 7)}, [](V x) { return cross_entropy(x[0], x[1]); }},
      {"cross_entropy_soft",
       {in({5, 7}), fixed({5, 7}, Dist::Probabilities)},
       [](V x) { return cross_entropy_soft(x[0], x[1]); }},
      {"cross_correlation",
       {in({9, 4}), in({9, 4})},
       [](V x) { return cross_correlation(x[0], x[1]); }},
      {"cross_correlation_loss",
       {in({9, 4}), tr({9, 4})},
       [](V x) { return cross_correlation_loss(x[0], x[1], 0.3); }},
      {"mse_loss", {in({3, 4}), in({3, 4})}, [](V x) { return mse_loss(x[0], x[1]); }},
      // indexing and joining
      {"index_select", {in({5, 3}), idx({7}, 5)}, [](V x) { return index_select(x[0], 0, x[1]); }},
      {"gather", {in({4, 6}), idx({4, 3}, 6)}, [](V x) { return gather(x[0], 1, x[1]); }},
      {"scatter_add",
       {in({4, 6}), idx({4, 3}, 6), in({4, 3})},
       [](V x) { return scatter_add(x[0], 1, x[1], x[2]); }},
      {"cat",
       {in({2, 3}), tr({4, 3})},
       [](V x) {
         return cat({x[0], x[1]}, 0);
       }},
      {"stack",
       {in({2, 3}), in({2, 3})},
       [](V x) {
         return stack({x[0], x[1]}, 1);
       }},
      {"split",
       {in({7, 2})},
       [](V x) {
         auto parts = split(x[0], 3, 0);
         return add(mul(parts[0], 2.0), sum(parts[2]));
       }},
      // views
      {"view_reshape",
       {in({2, 6})},
       [](V x) {
         return reshape(view(x[0], {3, 4}), {4, 3});
       }},
      {"reshape_noncontig", {tr({3, 4})}, [](V x) { return reshape(x[0], {-1}); }},
      {"permute",
       {in({2, 3, 4})},
       [](V x) {
         return permute(x[0], {2, 0, 1});
       }},
      {"narrow_slice_select",
       {in({5, 6})},
       [](V x) { return select(slice(narrow(x[0], 0, 1, 3), 1, 0, 6, 2), 0, 1); }},
      {"expand",
       {in({3, 1})},
       [](V x) {
         return expand(x[0], {2, 3, 4});
       }},
      {"squeeze_unsqueeze", {in({3, 1, 2})}, [](V x) { return unsqueeze(squeeze(x[0], 1), 0); }},
      {"flatten_contiguous", {tr({2, 3})}, [](V x) { return flatten(contiguous(x[0])); }},
      // convolution, pooling, normalisation
      {"conv2d",
       {in({2, 3, 7, 6}), in({4, 3, 3, 3}), in({4})},
       [](V x) { return conv2d(x[0], x[1], x[2], 2, 1); }},
      {"conv2d_1x1_nobias",
       {in({2, 5, 4, 3}), in({3, 5, 1, 1})},
       [](V x) { return conv2d(x[0], x[1]); }},
      {"max_pool2d", {in({2, 2, 5, 6})}, [](V x) { return max_pool2d(x[0], 2); }},
      {"max_pool2d_pad", {in({1, 2, 5, 5})}, [](V x) { return max_pool2d(x[0], 3, 2, 1); }},
      {"avg_pool2d", {in({2, 2, 5, 6})}, [](V x) { return avg_pool2d(x[0], 3, 2, 1); }},
      {"adaptive_avg_pool2d",
       {in({2, 3, 5, 7})},
       [](V x) { return adaptive_avg_pool2d(x[0], 3, 2); }},
      {"batch_norm_train",
       {in({6, 3, 2, 2}), in({3}), in({3})},
       [](V x) { return batch_norm(x[0], Tensor(), Tensor(), x[1], x[2], true); }},
      {"batch_norm_1d",
       {in({7, 4})},
       [](V x) { return batch_norm(x[0], Tensor(), Tensor(), Tensor(), Tensor(), true); }},
      {"batch_norm_eval",
       {in({4, 3, 2}), in({3}), in({3})},
       [](V x) {
         const TensorOptions like = TensorOptions(x[0].dtype()).device(x[0].device());
         Tensor rm = from_vector<double>({0.1, -0.2, 0.3}, {3}, like);
         Tensor rv = from_vector<double>({1.5, 0.5, 2.0}, {3}, like);
         return batch_norm(x[0], rm, rv, x[1], x[2], false);
       }},
      {"layer_norm",
       {in({3, 2, 5}), in({2, 5}), in({2, 5})},
       [](V x) { return layer_norm(x[0], 2, x[1], x[2]); }},
      {"dropout",
       {in({6, 5})},
       [](V x) {
         Generator gen(99);  // the same mask on every call
         return dropout(x[0], 0.3, true, &gen);
       }},
  };
}

class OpTable : public ::testing::TestWithParam<OpCase> {};

TEST_P(OpTable, GradcheckFloat64) {
  const OpCase& c = GetParam();
  Generator gen(2024);
  std::vector<Tensor> inputs;
  for (const InputSpec& s : c.inputs)
    inputs.push_back(make_input(s, gen));
  GradcheckResult r = gradcheck(c.fn, inputs);
  EXPECT_TRUE(r.ok) << c.name << ": " << r.message;
}

TEST_P(OpTable, Float32ForwardMatchesFloat64) {
  const OpCase& c = GetParam();
  Generator gen(7);
  std::vector<Tensor> in64, in32;
  for (const InputSpec& s : c.inputs) {
    Tensor t = make_input(s, gen);
    in64.push_back(t);
    in32.push_back(is_floating(t.dtype()) ? raw::to_dtype(t, kFloat32) : t);
  }
  NoGradGuard guard;
  auto y64 = c.fn(in64).to_vector<double>();
  auto y32 = c.fn(in32).to_vector<double>();
  ASSERT_EQ(y64.size(), y32.size());
  for (size_t i = 0; i < y64.size(); ++i)
    EXPECT_NEAR(y32[i], y64[i], 1e-4 * (1 + std::abs(y64[i]))) << c.name << " element " << i;
}

// The float32 copy of input t (made by make_input from spec s) on `device`, with t's layout: a
// transposed leaf stays a transposed view there too.
Tensor same_input_on(const Tensor& t, const InputSpec& s, Device device) {
  Tensor base = s.transposed ? raw::transpose(t.detach(), -1, -2) : t.detach();  // contiguous
  if (is_floating(base.dtype())) base = raw::to_dtype(base, kFloat32);
  base = raw::to_device(raw::contiguous(base), device);
  Tensor out = s.transposed ? raw::transpose(base, -1, -2) : base;
  if (s.grad) out.requires_grad_();
  return out;
}

// |got - want| / |want| over all elements (want's norm floored, so zeros compare absolutely).
double relative_difference(const Tensor& got, const Tensor& want) {
  const std::vector<double> g = got.to_vector<double>(), w = want.to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    diff += (g[i] - w[i]) * (g[i] - w[i]);
    norm += w[i] * w[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-6);
}

// Every op forward and backward on the GPU against the CPU, in float32, from the same inputs (same
// values, same layouts): the output and every input's gradient within 1e-4 of the CPU's, relative
// to its norm. The backward is seeded with the same random weights on both devices.
TEST_P(OpTable, CudaMatchesCpuForwardAndBackward) {
  SELFSUP_REQUIRE_GPU();
  const OpCase& c = GetParam();
  Generator gen(11);
  std::vector<Tensor> on_cpu, on_gpu;
  for (const InputSpec& s : c.inputs) {
    const Tensor t = make_input(s, gen);
    on_cpu.push_back(same_input_on(t, s, kCPU));
    on_gpu.push_back(same_input_on(t, s, Device::cuda()));
  }
  const Tensor want = c.fn(on_cpu), got = c.fn(on_gpu);
  ASSERT_EQ(got.device(), Device::cuda()) << c.name;
  ASSERT_EQ(got.shape(), want.shape()) << c.name;
  EXPECT_LT(relative_difference(got, want), 1e-4) << c.name << " forward";
  const Tensor weights = randn(want.shape(), kFloat32, &gen);
  sum(mul(want, weights)).backward();
  sum(mul(got, raw::to_device(weights, Device::cuda()))).backward();
  for (size_t i = 0; i < c.inputs.size(); ++i) {
    if (!c.inputs[i].grad) continue;
    ASSERT_TRUE(on_gpu[i].grad().defined()) << c.name << " input " << i;
    EXPECT_LT(relative_difference(on_gpu[i].grad(), on_cpu[i].grad()), 1e-4)
        << c.name << " gradient of input " << i;
  }
}

INSTANTIATE_TEST_SUITE_P(Ops, OpTable, ::testing::ValuesIn(op_table()),
                         [](const auto& info) { return info.param.name; });

}  // namespace

// The GPU's cross_correlation (composed from element-wise ops, reductions and a matmul) is the
// fused CPU kernel's formula: the same matrix and the same gradients, in float64.
TEST(CrossCorrelation, ComposedFormMatchesTheFusedKernel) {
  Generator gen(5);
  Tensor za = randn({7, 5}, kFloat64, &gen).requires_grad_();
  Tensor zb = randn({7, 5}, kFloat64, &gen).requires_grad_();
  Tensor weights = randn({5, 5}, kFloat64, &gen);
  Tensor fused = cross_correlation(za, zb, 1e-5);
  Tensor composed = detail::cross_correlation_composed(za, zb, 1e-5);
  const auto f = fused.to_vector<double>(), c = composed.to_vector<double>();
  for (size_t i = 0; i < f.size(); ++i)
    EXPECT_NEAR(c[i], f[i], 1e-12) << "element " << i;
  sum(mul(fused, weights)).backward();
  const auto ga = za.grad().to_vector<double>(), gb = zb.grad().to_vector<double>();
  za.set_grad(Tensor());
  zb.set_grad(Tensor());
  sum(mul(composed, weights)).backward();
  const auto ca = za.grad().to_vector<double>(), cb = zb.grad().to_vector<double>();
  for (size_t i = 0; i < ga.size(); ++i) {
    EXPECT_NEAR(ca[i], ga[i], 1e-10) << "grad za " << i;
    EXPECT_NEAR(cb[i], gb[i], 1e-10) << "grad zb " << i;
  }
}

// The fused Barlow Twins loss is the loss composed on the cross-correlation matrix: the same
// value and the same gradients, in float64, for a loss scaled on its way back.
TEST(CrossCorrelation, FusedLossMatchesTheLossComposedOnTheMatrix) {
  Generator gen(6);
  const int64_t d = 5;
  const double lambda = 0.3;
  Tensor za = randn({7, d}, kFloat64, &gen).requires_grad_();
  Tensor zb = randn({7, d}, kFloat64, &gen).requires_grad_();
  Tensor c = cross_correlation(za, zb);
  Tensor eye_d = eye(d, TensorOptions(kFloat64));
  Tensor on_diagonal = sum(square(1.0 - sum(mul(c, eye_d), {1})));
  Tensor off_diagonal = sum(square(mul(c, 1.0 - eye_d)));
  Tensor composed = add(on_diagonal, mul(off_diagonal, lambda));
  Tensor fused = cross_correlation_loss(za, zb, lambda);
  EXPECT_NEAR(fused.item<double>(), composed.item<double>(), 1e-12);
  mul(composed, 2.5).backward();
  const auto ca = za.grad().to_vector<double>(), cb = zb.grad().to_vector<double>();
  za.set_grad(Tensor());
  zb.set_grad(Tensor());
  mul(fused, 2.5).backward();
  const auto ga = za.grad().to_vector<double>(), gb = zb.grad().to_vector<double>();
  for (size_t i = 0; i < ga.size(); ++i) {
    EXPECT_NEAR(ga[i], ca[i], 1e-10) << "grad za " << i;
    EXPECT_NEAR(gb[i], cb[i], 1e-10) << "grad zb " << i;
  }
}

TEST(Gradcheck, CatchesAWrongGradient) {
  // An op whose recorded backward is deliberately wrong (2x instead of 3x).
  auto bad = [](V x) {
    Tensor out = raw::clone(x[0]);
    Tensor scaled = mul(out.detach(), 3.0);
    return record(scaled, "bad", {x[0]},
                  [](const Tensor& g) { return std::vector<Tensor>{mul(g, 2.0)}; });
  };
  Tensor x = randn({4}, kFloat64).requires_grad_();
  GradcheckResult r = gradcheck(bad, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("analytic"), std::string::npos);
}

TEST(Gradcheck, RefusesFloat32Inputs) {
  Tensor x = randn({3}).requires_grad_();
  EXPECT_THROW(gradcheck([](V v) { return exp(v[0]); }, {x}), Error);
}
