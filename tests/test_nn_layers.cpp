// The layers of nn/layers.h against hand-computed values and naive loops, float64 gradcheck
// through their parameters, BatchNorm's train/eval behaviour, and nn/init's distributions.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/views.h"
#include "nn/init.h"
#include "nn/layers.h"

using namespace selfsup;
using namespace selfsup::nn;

namespace {

void set(Tensor& t, const std::vector<double>& values) {
  NoGradGuard no_grad;
  t.copy_(from_vector(values, t.shape(), kFloat64));
}

void expect_near(const Tensor& got, const std::vector<double>& want, double tol,
                 const std::string& what = "") {
  auto g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    EXPECT_NEAR(g[i], want[i], tol) << what << " element " << i;
}

std::vector<double> values_of(const Tensor& t) {
  return t.to_vector<double>();
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// Every parameter of m, plus x, through gradcheck (m converted to float64 first).
void expect_gradcheck(Module& m, const Tensor& x64, const std::string& what, double atol = 1e-5) {
  m.to(kFloat64);
  std::vector<Tensor> inputs{x64};
  for (const auto& p : m.parameters())
    inputs.push_back(p);
  auto result = gradcheck([&](const std::vector<Tensor>& in) { return m.forward(in[0]); }, inputs,
                          {1e-6, atol, 1e-3, 7});
  EXPECT_TRUE(result.ok) << what << ": " << result.message;
}

Tensor leaf64(const Shape& shape, uint64_t seed) {
  Generator gen(seed);
  return randn(shape, kFloat64, &gen).requires_grad_();
}

// Direct convolution, the definition: out[n,o,y,x] = b[o] + sum w[o,c,i,j] in[n,c,ys+i-p,xs+j-p].
std::vector<double> naive_conv(const Tensor& x, const Tensor& w, const Tensor& b, int64_t s,
                               int64_t p) {
  auto xv = x.to_vector<double>(), wv = w.to_vector<double>();
  std::vector<double> bv = b.defined() ? b.to_vector<double>() : std::vector<double>();
  int64_t n = x.size(0), c = x.size(1), h = x.size(2), wd = x.size(3);
  int64_t o = w.size(0), k = w.size(2);
  int64_t oh = (h + 2 * p - k) / s + 1, ow = (wd + 2 * p - k) / s + 1;
  std::vector<double> out;
  for (int64_t in = 0; in < n; ++in)
    for (int64_t io = 0; io < o; ++io)
      for (int64_t y = 0; y < oh; ++y)
        for (int64_t xx = 0; xx < ow; ++xx) {
          double acc = bv.empty() ? 0.0 : bv[io];
          for (int64_t ic = 0; ic < c; ++ic)
            for (int64_t i = 0; i < k; ++i)
              for (int64_t j = 0; j < k; ++j) {
                int64_t yy = y * s + i - p, xs = xx * s + j - p;
                if (yy < 0 || yy >= h || xs < 0 || xs >= wd) continue;
                acc += wv[((io * c + ic) * k + i) * k + j] * xv[((in * c + ic) * h + yy) * wd + xs];
              }
          out.push_back(acc);
        }
  return out;
}

// Pooling by its definition; padded cells are -inf for max and count as zeros for average.
std::vector<double> naive_pool(const Tensor& x, int64_t k, int64_t s, int64_t p, bool is_max) {
  auto xv = x.to_vector<double>();
  int64_t nc = x.size(0) * x.size(1), h = x.size(2), w = x.size(3);
  int64_t oh = (h + 2 * p - k) / s + 1, ow = (w + 2 * p - k) / s + 1;
  std::vector<double> out;
  for (int64_t q = 0; q < nc; ++q)
    for (int64_t y = 0; y < oh; ++y)
      for (int64_t xx = 0; xx < ow; ++xx) {
        double acc = is_max ? -INFINITY : 0.0;
        for (int64_t i = 0; i < k; ++i)
          for (int64_t j = 0; j < k; ++j) {
            int64_t yy = y * s + i - p, xs = xx * s + j - p;
            if (yy < 0 || yy >= h || xs < 0 || xs >= w) continue;
            double v = xv[(q * h + yy) * w + xs];
            acc = is_max ? std::max(acc, v) : acc + v;
          }
        out.push_back(is_max ? acc : acc / static_cast<double>(k * k));
      }
  return out;
}

}  // namespace

// ---------------------------------------------------------------- Linear

TEST(NnLinear, HandComputedValues) {
  Linear lin(3, 2);
  EXPECT_EQ(lin.weight.shape(), (Shape{2, 3}));
  EXPECT_EQ(lin.bias.shape(), (Shape{2}));
  set(lin.weight, {1, 2, 3, -1, 0, 0.5});
  set(lin.bias, {0.5, -1});
  Tensor x = from_vector<float>({1, 1, 1, 2, 0, -2}, {2, 3});
  expect_near(lin.forward(x), {6.5, -1.5, -3.5, -4.0}, 1e-6);
  // A transposed (non-contiguous) input gives the same result.
  Tensor xt = raw::transpose(from_vector<float>({1, 2, 1, 0, 1, -2}, {3, 2}), 0, 1);
  expect_near(lin.forward(xt), {6.5, -1.5, -3.5, -4.0}, 1e-6);
}

TEST(NnLinear, LeadingDimsAndNoBias) {
  Linear lin(3, 2, false);
  EXPECT_FALSE(lin.bias.defined());
  EXPECT_EQ(lin.parameters().size(), 1u);
  set(lin.weight, {1, 2, 3, -1, 0, 0.5});
  Tensor x = from_vector<float>({1, 1, 1, 2, 0, -2, 0, 1, 0, 1, 0, 0}, {2, 2, 3});
  Tensor y = lin.forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 2, 2}));
  expect_near(y, {6, -0.5, -4, -3, 2, 0, 1, -1}, 1e-6);
}

TEST(NnLinear, WrongInputSizeNamesBothShapes) {
  Linear lin(3, 2);
  std::string msg = error_of([&] { lin.forward(zeros({4, 5})); });
  EXPECT_NE(msg.find("Linear(3, 2)"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[4, 5]"), std::string::npos) << msg;
}

TEST(NnLinear, Gradcheck) {
  Linear lin(5, 3);
  expect_gradcheck(lin, leaf64({4, 5}, 1), "Linear");
  Linear nobias(3, 7, false);
  expect_gradcheck(nobias, leaf64({2, 3, 3}, 2), "Linear without bias");
}

// ---------------------------------------------------------------- Conv2d

TEST(NnConv2d, OneByOneIsAPerPixelMatmul) {
  Conv2d conv(Conv2dOptions(2, 3, 1));
  set(conv.weight, {1, 2, -1, 0.5, 0, 3});
  set(conv.bias, {0.25, -1, 2});
  Tensor x = from_vector<float>({1, 2, 3, 4, -1, 0, 1, 2}, {1, 2, 2, 2});
  // out[o, pixel] = b[o] + w[o, 0] * x[0, pixel] + w[o, 1] * x[1, pixel]
  expect_near(conv.forward(x),
              {1 - 2 + 0.25, 2 + 0 + 0.25, 3 + 2 + 0.25, 4 + 4 + 0.25,  //
               -1 - 0.5 - 1, -2 + 0 - 1, -3 + 0.5 - 1, -4 + 1 - 1,      //
               0 - 3 + 2, 0 + 0 + 2, 0 + 3 + 2, 0 + 6 + 2},
              1e-6);
}

TEST(NnConv2d, StridePaddingAgainstDirectLoops) {
  Generator gen(3);
  for (auto [k, s, p, bias] : std::vector<std::tuple<int64_t, int64_t, int64_t, bool>>{
           {3, 1, 1, true}, {3, 2, 1, false}, {5, 2, 2, true}, {2, 3, 0, true}}) {
    Conv2d conv(Conv2dOptions(3, 5, k).stride(s).padding(p).bias(bias), &gen);
    EXPECT_EQ(conv.bias.defined(), bias);
    Tensor x = randn({2, 3, 9, 7}, kFloat32, &gen);
    Tensor y = conv.forward(x);
    int64_t oh = (9 + 2 * p - k) / s + 1, ow = (7 + 2 * p - k) / s + 1;
    EXPECT_EQ(y.shape(), (Shape{2, 5, oh, ow}));
    expect_near(y, naive_conv(x, conv.weight, conv.bias, s, p), 1e-4, "conv k" + std::to_string(k));
  }
}

TEST(NnConv2d, NonContiguousInput) {
  Generator gen(4);
  Conv2d conv(Conv2dOptions(2, 3, 3).padding(1), &gen);
  Tensor big = randn({2, 4, 6, 5}, kFloat32, &gen);
  Tensor x = raw::narrow(big, 1, 1, 2);  // channels 1..2: non-contiguous
  expect_near(conv.forward(x), naive_conv(x, conv.weight, conv.bias, 1, 1), 1e-4);
}

TEST(NnConv2d, WrongChannelsNamesTheShape) {
  Conv2d conv(Conv2dOptions(3, 8, 3));
  std::string msg = error_of([&] { conv.forward(zeros({2, 1, 28, 28})); });
  EXPECT_NE(msg.find("[N, 3, H, W]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2, 1, 28, 28]"), std::string::npos) << msg;
  EXPECT_THROW(Conv2d(Conv2dOptions(3, 8, 0)), Error);
}

TEST(NnConv2d, Gradcheck) {
  Conv2d conv(Conv2dOptions(2, 3, 3).stride(2).padding(1));
  expect_gradcheck(conv, leaf64({2, 2, 5, 4}, 5), "Conv2d");
}

// ---------------------------------------------------------------- BatchNorm

TEST(NnBatchNorm, Buffers) {
  BatchNorm2d bn(3);
  std::vector<std::string> names;
  for (auto& [k, _] : bn.state_dict())
    names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"weight", "bias", "running_mean", "running_var",
                                             "num_batches_tracked"}));
  EXPECT_EQ(bn.num_batches_tracked.dtype(), kInt64);
  EXPECT_EQ(bn.num_batches_tracked.dim(), 0);
  expect_near(bn.weight, {1, 1, 1}, 0);
  expect_near(bn.bias, {0, 0, 0}, 0);
  expect_near(bn.running_mean, {0, 0, 0}, 0);
  expect_near(bn.running_var, {1, 1, 1}, 0);
  BatchNorm1d plain(BatchNormOptions(4).affine(false).track_running_stats(false));
  EXPECT_TRUE(plain.state_dict().empty());
}

TEST(NnBatchNorm, TrainingByHandThenEvalUsesRunningStats) {
  BatchNorm2d bn(BatchNormOptions(2).momentum(0.1).eps(1e-5));
  set(bn.weight, {2, 0.5});
  set(bn.bias, {1, -1});
  // x [2, 2, 1, 2]; channel 0 holds {1, 3, 5, 7}, channel 1 holds {0, 0, 2, -2}.
  Tensor x = from_vector<float>({1, 3, 0, 0, 5, 7, 2, -2}, {2, 2, 1, 2});
  double mean0 = 4, var0 = 5, mean1 = 0, var1 = 2;  // biased variances
  double uvar0 = 20.0 / 3, uvar1 = 8.0 / 3;         // unbiased, for the running variance
  auto norm = [](double v, double m, double var, double w, double b) {
    return (v - m) / std::sqrt(var + 1e-5) * w + b;
  };
  Tensor y = bn.forward(x);
  expect_near(
      y,
      {norm(1, mean0, var0, 2, 1), norm(3, mean0, var0, 2, 1), norm(0, mean1, var1, 0.5, -1),
       norm(0, mean1, var1, 0.5, -1), norm(5, mean0, var0, 2, 1), norm(7, mean0, var0, 2, 1),
       norm(2, mean1, var1, 0.5, -1), norm(-2, mean1, var1, 0.5, -1)},
      1e-5);
  expect_near(bn.running_mean, {0.1 * mean0, 0.1 * mean1}, 1e-6);
  expect_near(bn.running_var, {0.9 + 0.1 * uvar0, 0.9 + 0.1 * uvar1}, 1e-6);
  EXPECT_EQ(bn.num_batches_tracked.item(), 1);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.item(), 2);
  double rm0 = 0.9 * 0.1 * mean0 + 0.1 * mean0, rv0 = 0.9 * (0.9 + 0.1 * uvar0) + 0.1 * uvar0;
  double rm1 = 0.0, rv1 = 0.9 * (0.9 + 0.1 * uvar1) + 0.1 * uvar1;
  expect_near(bn.running_mean, {rm0, rm1}, 1e-6);
  expect_near(bn.running_var, {rv0, rv1}, 1e-5);

  bn.eval();
  Tensor z = bn.forward(x);
  expect_near(z,
              {norm(1, rm0, rv0, 2, 1), norm(3, rm0, rv0, 2, 1), norm(0, rm1, rv1, 0.5, -1),
               norm(0, rm1, rv1, 0.5, -1), norm(5, rm0, rv0, 2, 1), norm(7, rm0, rv0, 2, 1),
               norm(2, rm1, rv1, 0.5, -1), norm(-2, rm1, rv1, 0.5, -1)},
              1e-5);
  EXPECT_EQ(bn.num_batches_tracked.item(), 2);  // eval neither counts nor updates
  expect_near(bn.running_mean, {rm0, rm1}, 1e-6);
}

TEST(NnBatchNorm, CumulativeAverageWithoutMomentum) {
  BatchNorm1d bn(BatchNormOptions(2).momentum(std::nullopt));
  Tensor a = from_vector<float>({1, 10, 3, 20}, {2, 2});  // means {2, 15}, unbiased vars {2, 50}
  Tensor b = from_vector<float>({5, 0, 7, 0}, {2, 2});    // means {6, 0}, unbiased vars {2, 0}
  bn.forward(a);
  expect_near(bn.running_mean, {2, 15}, 1e-6);  // factor 1 / 1: the batch's statistics
  expect_near(bn.running_var, {2, 50}, 1e-5);
  bn.forward(b);
  expect_near(bn.running_mean, {4, 7.5}, 1e-6);  // factor 1 / 2: the average of both
  expect_near(bn.running_var, {2, 25}, 1e-5);
}

TEST(NnBatchNorm, OneDimensionalInputsAndNoTracking) {
  Generator gen(8);
  Tensor x = randn({5, 3, 4}, kFloat32, &gen);
  BatchNorm1d bn(3);
  Tensor y = bn.forward(x);
  // Each channel of the output has mean 0 and biased variance ~1 over (N, L).
  auto v = values_of(y);
  for (int64_t c = 0; c < 3; ++c) {
    double s = 0, s2 = 0;
    for (int64_t n = 0; n < 5; ++n)
      for (int64_t l = 0; l < 4; ++l) {
        double e = v[(n * 3 + c) * 4 + l];
        s += e;
        s2 += e * e;
      }
    EXPECT_NEAR(s / 20, 0, 1e-5);
    EXPECT_NEAR(s2 / 20, 1, 1e-3);
  }
  // Without running statistics, eval normalises with the batch's own.
  BatchNorm1d free(BatchNormOptions(3).track_running_stats(false));
  free.eval();
  expect_near(free.forward(x), values_of(y), 1e-6);
}

TEST(NnBatchNorm, BadInputs) {
  BatchNorm1d bn(4);
  std::string msg = error_of([&] { bn.forward(zeros({1, 4})); });
  EXPECT_NE(msg.find("more than 1 value per channel"), std::string::npos) << msg;
  msg = error_of([&] { bn.forward(zeros({8, 3})); });
  EXPECT_NE(msg.find("[8, 3]"), std::string::npos) << msg;
  BatchNorm2d bn2(4);
  EXPECT_THROW(bn2.forward(zeros({8, 4})), Error);
  bn.eval();
  EXPECT_NO_THROW(bn.forward(zeros({1, 4})));  // eval with running stats: one sample is fine
}

TEST(NnBatchNorm, Gradcheck) {
  BatchNorm2d bn(3);
  {
    Generator gen(9);
    set(bn.weight, randn({3}, kFloat64, &gen).to_vector<double>());
  }
  expect_gradcheck(bn, leaf64({3, 3, 2, 3}, 10), "BatchNorm2d train");
  BatchNorm1d bn1(4);
  expect_gradcheck(bn1, leaf64({5, 4}, 11), "BatchNorm1d train");
  bn1.eval();
  expect_gradcheck(bn1, leaf64({2, 4, 3}, 12), "BatchNorm1d eval");
}

// ---------------------------------------------------------------- LayerNorm

TEST(NnLayerNorm, HandComputedValues) {
  LayerNorm ln({3});
  set(ln.weight, {1, 2, 0.5});
  set(ln.bias, {0, 1, -1});
  Tensor x = from_vector<float>({1, 2, 3, -2, 0, 8}, {2, 3});
  double s1 = std::sqrt(2.0 / 3 + 1e-5), s2 = std::sqrt(56.0 / 3 + 1e-5);  // biased variances
  expect_near(ln.forward(x),
              {-1 / s1, 1, 0.5 / s1 - 1, (-2 - 2) / s2, 2 * (0 - 2) / s2 + 1, 0.5 * 6 / s2 - 1},
              1e-5);
  std::string msg = error_of([&] { ln.forward(zeros({2, 4})); });
  EXPECT_NE(msg.find("[2, 4]"), std::string::npos) << msg;
}

TEST(NnLayerNorm, Gradcheck) {
  LayerNorm ln({2, 3});
  EXPECT_EQ(ln.weight.shape(), (Shape{2, 3}));
  {
    Generator gen(13);
    set(ln.weight, randn({2, 3}, kFloat64, &gen).to_vector<double>());
    set(ln.bias, randn({2, 3}, kFloat64, &gen).to_vector<double>());
  }
  expect_gradcheck(ln, leaf64({4, 2, 3}, 14), "LayerNorm");
}

// ---------------------------------------------------------------- activations and pooling

TEST(NnActivations, ReluAndGeluByFormula) {
  Tensor x = from_vector<double>({-2, -0.5, 0, 0.3, 1.7}, {5});
  expect_near(ReLU().forward(x), {0, 0, 0, 0.3, 1.7}, 0);
  std::vector<double> want;
  for (double v : values_of(x))
    want.push_back(0.5 * v * (1 + std::erf(v / std::sqrt(2.0))));
  expect_near(GELU().forward(x), want, 1e-12);
}

TEST(NnPooling, AgainstNaiveLoops) {
  Generator gen(15);
  Tensor x = randn({2, 3, 7, 9}, kFloat64, &gen);
  for (auto [k, s, p] :
       std::vector<std::tuple<int64_t, int64_t, int64_t>>{{2, -1, 0}, {3, 2, 1}, {3, 1, 1}}) {
    int64_t stride = s > 0 ? s : k;
    MaxPool2d mp(k, s, p);
    AvgPool2d ap(k, s, p);
    EXPECT_EQ(mp.stride, stride);
    expect_near(mp.forward(x), naive_pool(x, k, stride, p, true), 1e-12, "max");
    expect_near(ap.forward(x), naive_pool(x, k, stride, p, false), 1e-12, "avg");
  }
}

TEST(NnPooling, AdaptiveAverageToOneIsTheMean) {
  Generator gen(16);
  Tensor x = randn({2, 3, 5, 7}, kFloat64, &gen);
  Tensor y = AdaptiveAvgPool2d(1).forward(x);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 1, 1}));
  auto xv = values_of(x);
  std::vector<double> want;
  for (int64_t q = 0; q < 6; ++q) {
    double s = 0;
    for (int64_t i = 0; i < 35; ++i)
      s += xv[q * 35 + i];
    want.push_back(s / 35);
  }
  expect_near(y, want, 1e-12);
  // 4x6 -> 2x3 splits evenly into 2x2 windows: the same as avg_pool2d(2).
  Tensor z = randn({1, 2, 4, 6}, kFloat64, &gen);
  expect_near(AdaptiveAvgPool2d(2, 3).forward(z), naive_pool(z, 2, 2, 0, false), 1e-12);
}

TEST(NnPooling, Gradcheck) {
  Sequential net({std::make_shared<MaxPool2d>(2), std::make_shared<AvgPool2d>(3, 1, 1),
                  std::make_shared<AdaptiveAvgPool2d>(2, 1)});
  Tensor x = leaf64({2, 2, 6, 7}, 17);
  auto r = gradcheck([&](const std::vector<Tensor>& in) { return net.forward(in[0]); }, {x});
  EXPECT_TRUE(r.ok) << r.message;
}

// ---------------------------------------------------------------- Flatten, Dropout, Identity

TEST(NnShapes, FlattenAndIdentity) {
  Tensor x = arange(0, 60, 1, kFloat32).view({2, 3, 2, 5});
  EXPECT_EQ(Flatten().forward(x).shape(), (Shape{2, 30}));
  EXPECT_EQ(Flatten(0, 1).forward(x).shape(), (Shape{6, 2, 5}));
  EXPECT_EQ(Flatten(2).forward(x).shape(), (Shape{2, 3, 10}));
  expect_near(Flatten().forward(x), values_of(x), 0);
  Tensor i = Identity().forward(x);
  EXPECT_EQ(i.impl(), x.impl());
}

TEST(NnDropout, TrainDropsAndScalesEvalPassesThrough) {
  Generator gen(18);
  Dropout drop(0.3, &gen);
  Tensor x = full({40, 50}, 2.0);
  Tensor y = drop.forward(x);
  int64_t zeros_seen = 0;
  for (double v : values_of(y)) {
    if (v == 0)
      ++zeros_seen;
    else
      EXPECT_NEAR(v, 2.0 / 0.7, 1e-6);
  }
  EXPECT_NEAR(static_cast<double>(zeros_seen) / 2000, 0.3, 0.04);
  // The same generator state gives the same mask.
  Generator again(18);
  Dropout drop2(0.3, &again);
  EXPECT_EQ(values_of(drop2.forward(x)), values_of(y));
  drop.eval();
  EXPECT_EQ(drop.forward(x).impl(), x.impl());
  EXPECT_THROW(Dropout(1.5), Error);
}

// ---------------------------------------------------------------- Sequential

TEST(NnSequential, NamesByIndexAndChainsForward) {
  Generator gen(19);
  auto l1 = std::make_shared<Linear>(4, 6, true, &gen);
  auto l2 = std::make_shared<Linear>(6, 2, true, &gen);
  Sequential seq({l1, std::make_shared<ReLU>(), l2});
  EXPECT_EQ(seq.size(), 3u);
  std::vector<std::string> names;
  for (auto& [k, _] : seq.named_parameters())
    names.push_back(k);
  EXPECT_EQ(names, (std::vector<std::string>{"0.weight", "0.bias", "2.weight", "2.bias"}));
  Tensor x = randn({3, 4}, kFloat32, &gen);
  Tensor want = l2->forward(relu(l1->forward(x)));
  expect_near(seq.forward(x), values_of(want), 1e-6);
  EXPECT_EQ(seq.at<Linear>(2).get(), l2.get());
  EXPECT_THROW(seq.at<Linear>(1), Error);
  EXPECT_THROW(seq[3], Error);
  Sequential grown;
  grown.push_back(std::make_shared<Identity>());
  grown.push_back(l1);
  EXPECT_EQ(grown.named_parameters()[0].first, "1.weight");
}

TEST(NnSequential, Gradcheck) {
  Sequential seq({std::make_shared<Linear>(3, 5), std::make_shared<GELU>(),
                  std::make_shared<LayerNorm>(Shape{5}), std::make_shared<Linear>(5, 2)});
  expect_gradcheck(seq, leaf64({4, 3}, 20), "Linear-GELU-LayerNorm-Linear");
}

// ---------------------------------------------------------------- init

TEST(NnInit, FansAndGains) {
  EXPECT_EQ(init::calculate_fans(zeros({8, 3, 5, 5})), (std::pair<int64_t, int64_t>{75, 200}));
  EXPECT_EQ(init::calculate_fans(zeros({4, 6})), (std::pair<int64_t, int64_t>{6, 4}));
  EXPECT_THROW(init::calculate_fans(zeros({4})), Error);
  EXPECT_DOUBLE_EQ(init::calculate_gain("relu"), std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("leaky_relu", std::sqrt(5.0)), std::sqrt(2.0 / 6.0));
  EXPECT_DOUBLE_EQ(init::calculate_gain("tanh"), 5.0 / 3.0);
  EXPECT_DOUBLE_EQ(init::calculate_gain("linear"), 1.0);
  EXPECT_THROW(init::calculate_gain("swish"), Error);
}

namespace {

struct Moments {
  double mean, std, min, max;
};

Moments moments_of(const Tensor& t) {
  auto v = t.to_vector<double>();
  double s = 0, s2 = 0, lo = INFINITY, hi = -INFINITY;
  for (double e : v) {
    s += e;
    s2 += e * e;
    lo = std::min(lo, e);
    hi = std::max(hi, e);
  }
  double n = static_cast<double>(v.size()), mean = s / n;
  return {mean, std::sqrt(s2 / n - mean * mean), lo, hi};
}

}  // namespace

TEST(NnInit, DistributionsHaveTheirBoundsAndSpread) {
  Generator gen(21);
  Tensor w = empty({300, 40, 3, 3});  // fan_in 360, fan_out 2700
  init::kaiming_uniform_(w, 0.0, init::FanMode::FanIn, "relu", &gen);
  double bound = std::sqrt(6.0 / 360);
  Moments m = moments_of(w);
  EXPECT_LE(m.max, bound);
  EXPECT_GE(m.min, -bound);
  EXPECT_NEAR(m.max, bound, bound * 0.01);
  EXPECT_NEAR(m.std, bound / std::sqrt(3.0), bound * 0.01);

  init::kaiming_normal_(w, 0.0, init::FanMode::FanOut, "relu", &gen);
  m = moments_of(w);
  EXPECT_NEAR(m.mean, 0, 0.001);
  EXPECT_NEAR(m.std, std::sqrt(2.0 / 2700), std::sqrt(2.0 / 2700) * 0.01);

  Tensor l = empty({200, 500}, kFloat64);
  init::xavier_uniform_(l, 2.0, &gen);
  double xb = 2.0 * std::sqrt(6.0 / 700);
  m = moments_of(l);
  EXPECT_LE(m.max, xb);
  EXPECT_GE(m.min, -xb);
  EXPECT_NEAR(m.std, xb / std::sqrt(3.0), xb * 0.01);
  init::xavier_normal_(l, 1.0, &gen);
  EXPECT_NEAR(moments_of(l).std, std::sqrt(2.0 / 700), std::sqrt(2.0 / 700) * 0.01);

  init::trunc_normal_(l, 0.5, 1.0, -0.5, 1.0, &gen);
  m = moments_of(l);
  EXPECT_GE(m.min, -0.5);
  EXPECT_LE(m.max, 1.0);
  init::uniform_(l, -3, -2, &gen);
  m = moments_of(l);
  EXPECT_GE(m.min, -3);
  EXPECT_LT(m.max, -2);
  EXPECT_NEAR(m.mean, -2.5, 0.01);
  init::normal_(l, 4, 0.5, &gen);
  m = moments_of(l);
  EXPECT_NEAR(m.mean, 4, 0.01);
  EXPECT_NEAR(m.std, 0.5, 0.01);
  init::constant_(l, -1.25);
  m = moments_of(l);
  EXPECT_EQ(m.min, -1.25);
  EXPECT_EQ(m.max, -1.25);
}

TEST(NnInit, NonContiguousTargetsAreFilledEverywhere) {
  Generator gen(22);
  Tensor base = full({6, 8}, NAN, kFloat64);
  Tensor view = raw::transpose(raw::narrow(base, 1, 2, 5), 0, 1);  // [5, 6], strided
  init::uniform_(view, 1, 2, &gen);
  auto v = values_of(base);
  for (int64_t r = 0; r < 6; ++r)
    for (int64_t c = 0; c < 8; ++c) {
      double e = v[r * 8 + c];
      if (c >= 2 && c < 7)
        EXPECT_TRUE(e >= 1 && e < 2) << r << "," << c;
      else
        EXPECT_TRUE(std::isnan(e)) << r << "," << c;  // outside the view: untouched
    }
}

TEST(NnInit, UniformFollowsThePhiloxStreamOfRand) {
  Generator a(31), b(31);
  for (DType dt : {kFloat32, kFloat64}) {
    Tensor t = empty({7, 13}, dt);
    init::uniform_(t, -2.0, 3.0, &a);
    auto want = rand({7, 13}, kFloat64, &b).to_vector<double>();
    auto got = t.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i)
      EXPECT_NEAR(got[i], -2.0 + 5.0 * want[i], dt == kFloat32 ? 1e-6 : 1e-15) << i;
  }
  EXPECT_EQ(a.offset(), b.offset());
}

TEST(NnInit, ViewsGetTheValuesOfAContiguousTensorOfTheirShape) {
  Generator a(32), b(32);
  Tensor plain = empty({5, 7}, kFloat64);
  init::normal_(plain, 1.0, 2.0, &a);
  Tensor base = empty({7, 5}, kFloat64);
  Tensor view = raw::transpose(base, 0, 1);
  init::normal_(view, 1.0, 2.0, &b);
  EXPECT_EQ(view.to_vector<double>(), plain.to_vector<double>());
  EXPECT_EQ(a.offset(), 18u);  // 35 normals: 18 Philox draws of two
}

TEST(NnInit, PyTorchDefaultsForLinearAndConv) {
  Generator gen(23);
  Linear lin(250, 400, true, &gen);
  double bound = 1.0 / std::sqrt(250.0);
  Moments w = moments_of(lin.weight), b = moments_of(lin.bias);
  EXPECT_LE(w.max, bound);
  EXPECT_GE(w.min, -bound);
  EXPECT_NEAR(w.max, bound, bound * 0.01);
  EXPECT_NEAR(w.std, bound / std::sqrt(3.0), bound * 0.02);
  EXPECT_LE(b.max, bound);
  EXPECT_GE(b.min, -bound);
  Conv2d conv(Conv2dOptions(16, 64, 3), &gen);
  double cb = 1.0 / std::sqrt(16.0 * 9);
  w = moments_of(conv.weight);
  EXPECT_LE(w.max, cb);
  EXPECT_NEAR(w.max, cb, cb * 0.02);
  EXPECT_LE(moments_of(conv.bias).max, cb);
}

TEST(NnInit, SeedFixesTheWeights) {
  Generator a(7), b(7), c(8);
  Linear la(5, 4, true, &a), lb(5, 4, true, &b), lc(5, 4, true, &c);
  EXPECT_EQ(values_of(la.weight), values_of(lb.weight));
  EXPECT_EQ(values_of(la.bias), values_of(lb.bias));
  EXPECT_NE(values_of(la.weight), values_of(lc.weight));
  EXPECT_NE(values_of(la.weight)[0], values_of(la.bias)[0]);  // successive draws, not reused
  // The default generator is used when none is given: manual_seed makes it repeatable.
  manual_seed(99);
  Linear d1(3, 3);
  manual_seed(99);
  Linear d2(3, 3);
  EXPECT_EQ(values_of(d1.weight), values_of(d2.weight));
}
