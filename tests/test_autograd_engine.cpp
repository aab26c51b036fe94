// The autograd engine's rules: accumulation, reuse, detach, NoGradGuard, views, in-place checks.
#include <gtest/gtest.h>

#include "autograd/ops.h"
#include "core/views.h"

using namespace selfsup;

namespace {
std::vector<double> vec(const Tensor& t) {
  return t.to_vector<double>();
}
Tensor leaf(std::vector<double> v, Shape s) {
  return from_vector<double>(v, s).requires_grad_();
}
}  // namespace

TEST(Autograd, TensorUsedTwiceSumsBothPaths) {
  Tensor x = leaf({1, -2, 3}, {3});
  (x * x + x).sum().backward();  // d/dx (x^2 + x) = 2x + 1
  EXPECT_EQ(vec(x.grad()), (std::vector<double>{3, -3, 7}));
}

TEST(Autograd, GradientsAccumulateAcrossBackwardCalls) {
  Tensor x = leaf({1, 2}, {2});
  (x * 3.0).sum().backward();
  (x * 3.0).sum().backward();
  EXPECT_EQ(vec(x.grad()), (std::vector<double>{6, 6}));
  x.set_grad(Tensor());
  (x * 2.0).sum().backward();
  EXPECT_EQ(vec(x.grad()), (std::vector<double>{2, 2}));
}

TEST(Autograd, DetachStopsTheGradient) {
  Tensor x = leaf({2, 5}, {2});
  Tensor y = x * x.detach();  // d/dx = x.detach() only
  y.sum().backward();
  EXPECT_EQ(vec(x.grad()), (std::vector<double>{2, 5}));
  EXPECT_FALSE(x.detach().requires_grad());
  EXPECT_TRUE(x.detach().shares_storage_with(x));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1, 2}, {2});
  Tensor y;
  {
    NoGradGuard guard;
    y = x * 2.0;
  }
  EXPECT_FALSE(y.requires_grad());
  EXPECT_TRUE(GradMode::is_enabled());
  EXPECT_THROW(y.sum().backward(), Error);
}

TEST(Autograd, GradientFlowsThroughViews) {
  Tensor x = leaf({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor y = x.t().narrow(0, 1, 2).reshape({-1});  // x[:, 1:3] in transposed order
  (y * from_vector<double>({1, 2, 3, 4}, {4})).sum().backward();
  // y = [x01, x11, x02, x12] weighted 1, 2, 3, 4
  EXPECT_EQ(vec(x.grad()), (std::vector<double>{0, 1, 3, 0, 2, 4}));
}

TEST(Autograd, BroadcastGradientsSumBack) {
  Tensor a = leaf({1, 2, 3}, {3});
  Tensor b = leaf({10, 20}, {2, 1});
  (a * b).sum().backward();
  EXPECT_EQ(vec(a.grad()), (std::vector<double>{30, 30, 30}));
  EXPECT_EQ(vec(b.grad()), (std::vector<double>{6, 6}));
  EXPECT_EQ(b.grad().shape(), (Shape{2, 1}));
}

TEST(Autograd, InPlaceChangeOfASavedValueIsAnError) {
  Tensor x = leaf({1, 2}, {2});
  Tensor w = from_vector<double>({3, 4}, {2});
  Tensor y = x * w;  // saves w
  w.add_(from_vector<double>({1, 1}, {2}));
  try {
    y.sum().backward();
    FAIL() << "backward used a modified saved tensor";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("backward of mul"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("in-place"), std::string::npos) << e.what();
  }
  // A saved output changed in place (exp saves its result).
  Tensor z = exp(x);
  {
    NoGradGuard guard;
    z.mul_(2.0);
  }
  EXPECT_THROW(z.sum().backward(), Error);
}

TEST(Autograd, InPlaceOnATensorThatRequiresGradIsRefused) {
  Tensor x = leaf({1, 2}, {2});
  EXPECT_THROW(x.mul_(2.0), Error);
  EXPECT_THROW((x * 2.0).add_(x), Error);
  NoGradGuard guard;  // as an optimizer step does
  x.mul_(2.0);
  EXPECT_EQ(vec(x), (std::vector<double>{2, 4}));
}

// An in-place op whose operand overlaps the tensor it writes (a transposed view of it, one of
// its rows broadcast) reads the operand as it was before the op, as the out-of-place op does.
TEST(Autograd, InPlaceWithAnOverlappingOperandReadsItBeforeTheWrite) {
  const Tensor base = from_vector<double>({1, 2, 3, 4, 5, 6, 7, 8, 9}, {3, 3});
  Tensor x = raw::clone(base);
  const Tensor want_sum = add(base, raw::transpose(base, 0, 1));
  x.add_(raw::transpose(x, 0, 1));
  EXPECT_EQ(vec(x), vec(want_sum));

  Tensor y = raw::clone(base);
  const Tensor want_product = mul(base, raw::narrow(base, 0, 1, 1));
  y.mul_(raw::narrow(y, 0, 1, 1));  // row 1 broadcast over all rows, row 1 itself included
  EXPECT_EQ(vec(y), vec(want_product));

  Tensor z = raw::clone(base);
  z.add_(z, 2.0);  // the very same view: read in place, each element before its own write
  EXPECT_EQ(vec(z), vec(mul(base, 3.0)));
}

TEST(Autograd, NonScalarBackwardNeedsAGradient) {
  Tensor x = leaf({1, 2, 3}, {3});
  Tensor y = x * 2.0;
  EXPECT_THROW(y.backward(), Error);
  y.backward(from_vector<double>({1, 0, -1}, {3}));
  EXPECT_EQ(vec(x.grad()), (std::vector<double>{2, 0, -2}));
  EXPECT_THROW(y.backward(zeros({2}, kFloat64)), Error);
}

TEST(Autograd, LongChainsDoNotOverflowTheStack) {
  Tensor x = leaf({1.0}, {1});
  Tensor y = x;
  for (int i = 0; i < 5000; ++i)
    y = y * 1.0001;
  y.sum().backward();
  EXPECT_NEAR(x.grad().item(), std::pow(1.0001, 5000), 1e-9);
}

TEST(Autograd, ComposedExpressionMatchesHandDerivedGradient) {
  // L = sum(sigmoid(W x + b)^2):  dL/dW = (2 s (1 - s) s)_i x_j, dL/db = 2 s^2 (1 - s)
  Tensor w = leaf({0.1, -0.2, 0.3, 0.4, 0.5, -0.6}, {2, 3});
  Tensor b = leaf({0.05, -0.1}, {2});
  Tensor x = from_vector<double>({1.0, 2.0, -1.0}, {3, 1});
  Tensor s = sigmoid(add(reshape(matmul(w, x), {2}), b));
  square(s).sum().backward();
  auto sv = vec(s), xv = vec(x), gw = vec(w.grad()), gb = vec(b.grad());
  for (int i = 0; i < 2; ++i) {
    double d = 2 * sv[i] * sv[i] * (1 - sv[i]);
    EXPECT_NEAR(gb[i], d, 1e-12);
    for (int j = 0; j < 3; ++j)
      EXPECT_NEAR(gw[i * 3 + j], d * xv[j], 1e-12);
  }
}

TEST(Autograd, IntegerTensorsCannotRequireGrad) {
  EXPECT_THROW(zeros({2}, kInt64).requires_grad_(), Error);
  Tensor x = leaf({1}, {1});
  EXPECT_THROW((x * 2.0).requires_grad_(), Error);  // not a leaf
}
