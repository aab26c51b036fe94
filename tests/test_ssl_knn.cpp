// kNN evaluation and collapse diagnostics on synthetic data with known answers.
#include <gtest/gtest.h>

#include <cmath>

#include "core/random.h"
#include "ssl/eval/knn.h"

using namespace selfsup;

namespace {

// Points near one of C well-separated directions, labelled by direction.
void clusters(int64_t n, int64_t c, int64_t d, uint64_t seed, Tensor& x, Tensor& y) {
  Generator g(seed);
  x = randn({n, d}, kFloat32, &g);
  std::vector<int64_t> labels(n);
  float* p = x.data_ptr<float>();
  for (int64_t i = 0; i < n; ++i) {
    labels[i] = i % c;
    for (int64_t j = 0; j < d; ++j)
      p[i * d + j] *= 0.1f;
    p[i * d + labels[i]] += 1.0f;
  }
  y = from_vector(labels, {n});
}

}  // namespace

TEST(Knn, SeparableClustersAreClassifiedPerfectly) {
  Tensor xtr, ytr, xte, yte;
  clusters(300, 5, 8, 1, xtr, ytr);
  clusters(100, 5, 8, 2, xte, yte);
  EXPECT_DOUBLE_EQ(ssl::knn_accuracy(xtr, ytr, xte, yte, 5, {20, 0.1, 32}), 1.0);
}

TEST(Knn, RandomLabelsGiveChanceAccuracy) {
  Tensor xtr, ytr, xte, yte;
  clusters(400, 4, 8, 3, xtr, ytr);
  clusters(400, 4, 8, 4, xte, yte);
  Tensor shuffled = randint(0, 4, {400}, kInt64);
  double acc = ssl::knn_accuracy(xtr, shuffled, xte, yte, 4, {20, 0.1, 64});
  EXPECT_GT(acc, 0.1);
  EXPECT_LT(acc, 0.45);
}

TEST(Knn, MatchesABruteForceVoteOnOneSample) {
  // Train points at angles; the test point's 3 nearest are labels {1, 1, 0}.
  Tensor xtr = from_vector<float>({1, 0, 0.9f, 0.1f, 0.8f, 0.3f, -1, 0, 0, 1}, {5, 2});
  Tensor ytr = from_vector<int64_t>({1, 1, 0, 2, 2}, {5});
  Tensor xte = from_vector<float>({1, 0.05f}, {1, 2});
  EXPECT_DOUBLE_EQ(ssl::knn_accuracy(xtr, ytr, xte, from_vector<int64_t>({1}, {1}), 3, {3, 0.1, 4}),
                   1.0);
  // With k = 1 and a label 0 answer expected, the vote says 1: accuracy 0.
  EXPECT_DOUBLE_EQ(ssl::knn_accuracy(xtr, ytr, xte, from_vector<int64_t>({0}, {1}), 3, {1, 0.1, 4}),
                   0.0);
}

TEST(Knn, BadLabelsAreRefused) {
  Tensor x = randn({4, 3}), y = from_vector<int64_t>({0, 1, 2, 7}, {4});
  EXPECT_THROW(ssl::knn_accuracy(x, y, x, y, 3), Error);
  EXPECT_THROW(ssl::knn_accuracy(x, y, randn({4, 2}), y, 8), Error);
}

TEST(Collapse, IsotropicEmbeddingsAreHealthy) {
  Generator g(5);
  ssl::CollapseStats s = ssl::collapse_stats(randn({2000, 16}, kFloat32, &g));
  EXPECT_NEAR(s.mean_std, 1.0 / 4.0, 0.02);
  EXPECT_GT(s.effective_rank, 14.0);
  EXPECT_FALSE(s.collapsed);
}

TEST(Collapse, ConstantAndRankOneEmbeddingsAreFlagged) {
  Tensor constant = ones({100, 16});
  EXPECT_TRUE(ssl::collapse_stats(constant).collapsed);
  Generator g(6);
  Tensor t = randn({100, 1}, kFloat32, &g);
  std::vector<float> line(100 * 16);
  auto tv = t.to_vector<float>();
  for (int i = 0; i < 100; ++i)
    for (int j = 0; j < 16; ++j)
      line[i * 16 + j] = 1.0f + 0.5f * tv[i] * (j + 1);
  ssl::CollapseStats s = ssl::collapse_stats(from_vector(line, {100, 16}));
  EXPECT_LT(s.effective_rank, 1.5);
  EXPECT_TRUE(s.collapsed);
}
