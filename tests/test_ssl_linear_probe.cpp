// The linear probe: standardisation against hand values and train-only statistics, accuracy on
// separable and on random-label features, determinism, and bad input.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "autograd/ops.h"
#include "core/random.h"
#include "core/views.h"
#include "ssl/eval/linear_probe.h"

namespace selfsup::ssl {
namespace {

// Gaussian blobs: class c of num_classes has its centre at `spread` on axis c (D > C), points
// scattered with std `noise`. Labels cycle through the classes.
struct Blobs {
  Tensor features;  // float32 [N, D]
  Tensor labels;    // int64 [N]
};

Blobs make_blobs(int64_t n, int64_t d, int64_t num_classes, double spread, double noise,
                 uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({n, d}, kFloat32, &gen);
  std::vector<int64_t> y(n);
  float* p = x.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    y[i] = i % num_classes;
    for (int64_t j = 0; j < d; ++j)
      p[i * d + j] *= static_cast<float>(noise);
    p[i * d + y[i]] += static_cast<float>(spread);
  }
  return {x, from_vector(y, {n})};
}

template <typename Fn>
void expect_error(Fn fn, const std::vector<std::string>& fragments) {
  try {
    fn();
    FAIL() << "expected a selfsup::Error";
  } catch (const Error& e) {
    for (const auto& f : fragments)
      EXPECT_NE(std::string(e.what()).find(f), std::string::npos)
          << "message '" << e.what() << "' lacks '" << f << "'";
  }
}

// ---------------------------------------------------------------- standardisation

TEST(Standardizer, MatchesHandValuesAndDropsConstantDims) {
  // Columns: mean 3, population var 8/3; constant 5; mean 5, var 26/3.
  Tensor train = from_vector<float>({1, 5, 2, 3, 5, 4, 5, 5, 9}, {3, 3});
  Standardizer s = Standardizer::fit(train);
  EXPECT_EQ(s.mean.to_vector<float>(), (std::vector<float>{3, 5, 5}));
  std::vector<float> inv = s.inv_std.to_vector<float>();
  EXPECT_NEAR(inv[0], 1.0 / std::sqrt(8.0 / 3.0), 1e-6);
  EXPECT_EQ(inv[1], 0.0f);
  EXPECT_NEAR(inv[2], 1.0 / std::sqrt(26.0 / 3.0), 1e-6);

  // A test row far from the training data is mapped with the training statistics only.
  Tensor test = from_vector<float>({7, 6, 5, -1, 100, 11}, {2, 3});
  std::vector<float> z = s.apply(test).to_vector<float>();
  std::vector<double> want = {4 / std::sqrt(8.0 / 3.0),  0, 0,
                              -4 / std::sqrt(8.0 / 3.0), 0, 6 / std::sqrt(26.0 / 3.0)};
  ASSERT_EQ(z.size(), want.size());
  for (size_t i = 0; i < z.size(); ++i)
    EXPECT_NEAR(z[i], want[i], 1e-5) << "element " << i;
}

TEST(Standardizer, AcceptsFloat64AndTransposedViews) {
  Generator gen(3);
  Tensor base = randn({5, 11}, kFloat64, &gen);  // [D, N]
  Tensor train = raw::transpose(base, 0, 1);     // [N, D] = [11, 5], non-contiguous
  ASSERT_FALSE(train.is_contiguous());
  Standardizer s = Standardizer::fit(train);
  Tensor z = s.apply(train);
  ASSERT_EQ(z.shape(), (Shape{11, 5}));
  EXPECT_EQ(z.dtype(), kFloat32);
  // Standardised training columns: mean 0, population std 1 (naive loop over the view).
  std::vector<double> x = train.to_vector<double>();
  std::vector<float> zv = z.to_vector<float>();
  for (int64_t j = 0; j < 5; ++j) {
    double m = 0, sq = 0;
    for (int64_t i = 0; i < 11; ++i)
      m += zv[i * 5 + j];
    m /= 11;
    for (int64_t i = 0; i < 11; ++i)
      sq += (zv[i * 5 + j] - m) * (zv[i * 5 + j] - m);
    EXPECT_NEAR(m, 0.0, 1e-5);
    EXPECT_NEAR(std::sqrt(sq / 11), 1.0, 1e-5);
    // And element-wise against the formula.
    double mean = 0, var = 0;
    for (int64_t i = 0; i < 11; ++i)
      mean += x[i * 5 + j];
    mean /= 11;
    for (int64_t i = 0; i < 11; ++i)
      var += (x[i * 5 + j] - mean) * (x[i * 5 + j] - mean);
    double sd = std::sqrt(var / 11);
    for (int64_t i = 0; i < 11; ++i)
      EXPECT_NEAR(zv[i * 5 + j], (x[i * 5 + j] - mean) / sd, 1e-5);
  }
}

TEST(Standardizer, RejectsWrongWidth) {
  Standardizer s = Standardizer::fit(ones({4, 3}));
  expect_error([&] { s.apply(ones({4, 2})); }, {"Standardizer", "[4, 2]", "3"});
}

// ---------------------------------------------------------------- accuracy

TEST(Top1Accuracy, CountsArgmaxMatches) {
  Tensor logits = from_vector<float>(
      {0.1f, 0.9f, 0.0f, 2.0f, 1.0f, 0.0f, 0.0f, 0.0f, 5.0f, 1.0f, 3.0f, 2.0f}, {4, 3});
  // Predictions 1, 0, 2, 1.
  EXPECT_DOUBLE_EQ(top1_accuracy(logits, tensor<int64_t>({1, 0, 2, 1})), 1.0);
  EXPECT_DOUBLE_EQ(top1_accuracy(logits, tensor<int64_t>({1, 1, 2, 0})), 0.5);
  EXPECT_DOUBLE_EQ(top1_accuracy(logits, tensor<int64_t>({0, 1, 0, 0})), 0.0);
}

// ---------------------------------------------------------------- the probe

TEST(LinearProbe, SeparableBlobsReachFullAccuracy) {
  Blobs train = make_blobs(301, 7, 3, 4.0, 0.5, 1);
  Blobs test = make_blobs(157, 7, 3, 4.0, 0.5, 2);
  LinearProbeOptions o;
  o.epochs = 40;
  o.batch_size = 64;
  LinearProbeResult r =
      linear_probe(train.features, train.labels, test.features, test.labels, 3, o);
  EXPECT_GE(r.test_top1, 0.99);
  EXPECT_GE(r.train_top1, 0.99);
  EXPECT_LT(r.final_loss, 0.1);
  EXPECT_EQ(r.steps, 40 * 5);  // ceil(301 / 64) = 5 batches per epoch, the last one kept
}

TEST(LinearProbe, RandomLabelsScoreChance) {
  Generator gen(5);
  const int64_t classes = 4;
  Tensor train_x = randn({400, 9}, kFloat32, &gen);
  Tensor train_y = randint(0, classes, {400}, kInt64, &gen);
  Tensor test_x = randn({800, 9}, kFloat32, &gen);
  Tensor test_y = randint(0, classes, {800}, kInt64, &gen);
  LinearProbeOptions o;
  o.epochs = 30;
  o.batch_size = 50;
  LinearProbeResult r = linear_probe(train_x, train_y, test_x, test_y, classes, o);
  // 1 / 4 +- 5 standard deviations of a binomial mean over 800 draws (0.015).
  EXPECT_NEAR(r.test_top1, 0.25, 0.08);
}

// With training statistics a constant shift of the test set moves it across the decision
// boundary; had the probe standardised the test set with its own statistics, the shift would
// cancel and the accuracy stay perfect.
TEST(LinearProbe, StandardisesTestWithTrainStatistics) {
  Blobs train = make_blobs(200, 5, 2, 4.0, 0.5, 7);
  Blobs test = make_blobs(120, 5, 2, 4.0, 0.5, 8);
  LinearProbeOptions o;
  o.epochs = 30;
  o.batch_size = 32;
  LinearProbeResult clean =
      linear_probe(train.features, train.labels, test.features, test.labels, 2, o);
  EXPECT_GE(clean.test_top1, 0.99);
  // Class 0 sits at +4 on axis 0, class 1 at +4 on axis 1: shifting everything by +4 on axis 0
  // and -4 on axis 1 moves class 1 onto class 0 (and class 0 further out on its side).
  Tensor shifted = raw::clone(test.features);
  float* p = shifted.data_ptr<float>();
  for (int64_t i = 0; i < shifted.size(0); ++i) {
    p[i * 5 + 0] += 4.0f;
    p[i * 5 + 1] -= 4.0f;
  }
  LinearProbeResult moved = linear_probe(train.features, train.labels, shifted, test.labels, 2, o);
  EXPECT_LE(moved.test_top1, 0.6);
  EXPECT_EQ(moved.train_top1, clean.train_top1);  // the test set never touches training
}

TEST(LinearProbe, DeterministicForASeedAndIndependentOfLayout) {
  Blobs train = make_blobs(97, 6, 3, 1.0, 1.0, 11);  // overlapping: the loss stays informative
  Blobs test = make_blobs(53, 6, 3, 1.0, 1.0, 12);
  LinearProbeOptions o;
  o.epochs = 15;
  o.batch_size = 16;
  o.seed = 42;
  LinearProbeResult a =
      linear_probe(train.features, train.labels, test.features, test.labels, 3, o);
  LinearProbeResult b =
      linear_probe(train.features, train.labels, test.features, test.labels, 3, o);
  EXPECT_EQ(a.final_loss, b.final_loss);
  EXPECT_EQ(a.test_top1, b.test_top1);
  EXPECT_EQ(a.train_top1, b.train_top1);

  // The same values as float64 in a transposed layout give the same probe, bit for bit.
  Tensor t64 = raw::to_dtype(raw::contiguous(raw::transpose(train.features, 0, 1)), kFloat64);
  Tensor train_view = raw::transpose(t64, 0, 1);
  ASSERT_FALSE(train_view.is_contiguous());
  LinearProbeResult c = linear_probe(train_view, train.labels, test.features, test.labels, 3, o);
  EXPECT_EQ(a.final_loss, c.final_loss);
  EXPECT_EQ(a.test_top1, c.test_top1);

  o.seed = 43;
  LinearProbeResult d =
      linear_probe(train.features, train.labels, test.features, test.labels, 3, o);
  EXPECT_NE(a.final_loss, d.final_loss);
}

TEST(LinearProbe, BadInputThrowsNamingTheValue) {
  Tensor x = ones({10, 3});
  Tensor y = zeros({10}, kInt64);
  Tensor tx = ones({4, 3});
  Tensor ty = zeros({4}, kInt64);
  expect_error([&] { linear_probe(ones({10}), y, tx, ty, 2); }, {"linear_probe", "[10]"});
  expect_error(
      [&] {
        linear_probe(x, y, ones({4, 2}), ty, 2);
      },
      {"linear_probe", "[10, 3]", "[4, 2]"});
  expect_error([&] { linear_probe(x, zeros({9}, kInt64), tx, ty, 2); },
               {"linear_probe", "train labels", "[9]", "10"});
  expect_error([&] { linear_probe(x, zeros({10}), tx, ty, 2); }, {"int64", "float32"});
  expect_error([&] { linear_probe(x, y, tx, full({4}, 2, kInt64), 2); },
               {"test label 2", "[0, 2)"});
  expect_error([&] { linear_probe(x, y, tx, ty, 1); }, {"num_classes", "1"});
  expect_error(
      [&] {
        linear_probe(ones({0, 3}), zeros({0}, kInt64), tx, ty, 2);
      },
      {"empty", "[0, 3]"});
  expect_error([&] { linear_probe(x, y, tx, ty, 2, {.epochs = 0}); }, {"epochs", "0"});
  expect_error([&] { linear_probe(x, y, tx, ty, 2, {.batch_size = -3}); }, {"batch_size", "-3"});
  Tensor nan_x = ones({10, 3});
  nan_x.data_ptr<float>()[7] = std::numeric_limits<float>::quiet_NaN();
  expect_error([&] { linear_probe(nan_x, y, tx, ty, 2); },
               {"train features", "non-finite", "row 2", "column 1"});
  expect_error([&] { linear_probe(x, y, ones({4, 3}, kUInt8), ty, 2); }, {"test", "uint8"});
}

}  // namespace
}  // namespace selfsup::ssl
