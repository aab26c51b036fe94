// SwAV and DeepCluster (ssl/methods/swav.cpp, deepcluster.cpp): the swapped prediction loss by
// hand and by gradcheck; the codes carry no gradient; the prototypes stay unit-norm and are
// frozen for the first epoch; the feature queue; DeepCluster's pseudo-labels come from a k-means
// of the normalised projections, its head is re-initialised to the centroids at every clustering
// and its loss is the cross-entropy against those labels; bad options; one short end-to-end run
// per method through ssl::train() (skipped where Fashion-MNIST is not installed).
#include <gtest/gtest.h>

#include <unistd.h>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "autograd/gradcheck.h"
#include "autograd/ops.h"
#include "core/views.h"
#include "kernels/cpu/kmeans.h"
#include "kernels/cpu/sinkhorn.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "ssl/data/dataset.h"
#include "ssl/eval/features.h"
#include "ssl/losses/losses.h"
#include "ssl/methods/deepcluster.h"
#include "ssl/train/trainer.h"
#include "tests/ssl_test_util.h"

using namespace selfsup;
using test::have_fashion_mnist;
using test::metrics;
using test::temp_dir;
namespace fs = std::filesystem;
using Mat = std::vector<std::vector<double>>;

namespace {

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

Mat to_mat(const Tensor& t) {
  const auto v = raw::contiguous(t.detach()).to_vector<double>();
  Mat m(t.size(0), std::vector<double>(t.size(1)));
  for (int64_t i = 0; i < t.size(0); ++i)
    for (int64_t j = 0; j < t.size(1); ++j)
      m[i][j] = v[i * t.size(1) + j];
  return m;
}

std::vector<double> log_softmax_row(const std::vector<double>& x, double t) {
  double m = -INFINITY, s = 0;
  for (double v : x)
    m = std::max(m, v / t);
  for (double v : x)
    s += std::exp(v / t - m);
  std::vector<double> out;
  for (double v : x)
    out.push_back(v / t - m - std::log(s));
  return out;
}

// The swapped prediction loss in plain loops: (1/S) sum_s (1/(V-1)) sum_{t != s} mean_b CE.
double swav_reference(const std::vector<Mat>& scores, const std::vector<Mat>& codes, double t) {
  const size_t views = scores.size();
  double total = 0;
  for (size_t s = 0; s < codes.size(); ++s)
    for (size_t v = 0; v < views; ++v) {
      if (v == s) continue;
      double ce = 0;
      for (size_t b = 0; b < scores[v].size(); ++b) {
        const auto lp = log_softmax_row(scores[v][b], t);
        for (size_t k = 0; k < lp.size(); ++k)
          ce -= codes[s][b][k] * lp[k];
      }
      total += ce / scores[v].size();
    }
  return total / (codes.size() * (views - 1));
}

Tensor param(const nn::Module& m, const std::string& key) {
  for (const auto& [k, p] : m.named_parameters())
    if (k == key) return p;
  throw Error("no parameter " + key);
}

Tensor buffer(const nn::Module& m, const std::string& key) {
  for (const auto& [k, b] : m.named_buffers())
    if (k == key) return b;
  throw Error("no buffer " + key);
}

nn::Module& child(const nn::Module& m, const std::string& name) {
  for (const auto& [k, c] : m.named_children())
    if (k == name) return *c;
  throw Error("no child " + name);
}

ssl::MethodOptions small_options() {
  ssl::MethodOptions o;
  o.width = 0.5;
  o.proj_hidden = 32;
  o.proj_dim = 16;
  o.prototypes = 7;
  o.clusters = 5;
  o.local_crops = 0;
  return o;
}

std::vector<Tensor> views(int64_t n, int64_t locals, uint64_t seed) {
  Generator g(seed);
  std::vector<Tensor> v = {rand({n, 1, 12, 12}, kFloat32, &g), rand({n, 1, 12, 12}, kFloat32, &g)};
  for (int64_t i = 0; i < locals; ++i)
    v.push_back(rand({n, 1, 8, 8}, kFloat32, &g));
  return v;
}

data::Dataset random_dataset(int64_t n, uint64_t seed) {
  Generator g(seed);
  data::Dataset ds;
  ds.name = "random";
  ds.images = raw::to_dtype(randint(0, 256, {n, 1, 12, 12}, kInt64, &g), kUInt8);
  ds.labels = zeros({n}, kInt64);
  ds.num_classes = 1;
  return ds;
}

ssl::EpochContext epoch_ctx(int64_t epoch, const data::Dataset* ds = nullptr) {
  return {epoch, 3, ds, 16};
}

double row_norm(const std::vector<double>& r) {
  double s = 0;
  for (double v : r)
    s += v * v;
  return std::sqrt(s);
}

}  // namespace

// ================================================================================ SwAV loss

TEST(SwavLoss, MatchesTheSwappedPredictionByHand) {
  // 2 global views and 1 local view of 2 images, 3 prototypes; hand-picked codes.
  const std::vector<Mat> s = {{{0.9, -0.2, 0.1}, {0.0, 0.5, -0.7}},
                              {{0.3, 0.3, -0.4}, {-0.8, 0.6, 0.2}},
                              {{0.2, -0.9, 0.7}, {0.4, 0.1, 0.0}}};
  const std::vector<Mat> q = {{{0.7, 0.2, 0.1}, {0.1, 0.8, 0.1}},
                              {{0.5, 0.5, 0.0}, {0.2, 0.3, 0.5}}};
  std::vector<Tensor> scores, codes;
  auto tensor_of = [](const Mat& m) {
    std::vector<double> flat;
    for (const auto& r : m)
      flat.insert(flat.end(), r.begin(), r.end());
    return from_vector(flat, {static_cast<int64_t>(m.size()), static_cast<int64_t>(m[0].size())});
  };
  for (const Mat& m : s)
    scores.push_back(tensor_of(m));
  for (const Mat& m : q)
    codes.push_back(tensor_of(m));
  // By hand for one term, as a sanity anchor: code 0 of image 0 predicting view 1 at T = 0.1.
  const auto lp = log_softmax_row(s[1][0], 0.1);
  const double term = -(0.7 * lp[0] + 0.2 * lp[1] + 0.1 * lp[2]);
  EXPECT_NEAR(term,
              -(0.7 * (3 - std::log(2 * std::exp(3.0) + std::exp(-4.0))) +
                0.2 * (3 - std::log(2 * std::exp(3.0) + std::exp(-4.0))) +
                0.1 * (-4 - std::log(2 * std::exp(3.0) + std::exp(-4.0)))),
              1e-12);
  EXPECT_NEAR(ssl::swav_loss(scores, codes, 0.1).item(), swav_reference(s, q, 0.1), 1e-12);
  EXPECT_NEAR(ssl::swav_loss(scores, codes, 0.5).item(), swav_reference(s, q, 0.5), 1e-12);
}

TEST(SwavLoss, GradcheckAgainstFiniteDifferences) {
  Generator g(1);
  std::vector<Tensor> scores;
  for (int v = 0; v < 4; ++v)
    scores.push_back(randn({3, 5}, kFloat64, &g).requires_grad_());
  const std::vector<Tensor> codes = {ssl::swav_codes(scores[0]), ssl::swav_codes(scores[1])};
  auto f = [&](const std::vector<Tensor>& in) { return ssl::swav_loss(in, codes, 0.1); };
  const GradcheckResult r = gradcheck(f, scores);
  EXPECT_TRUE(r.ok) << r.message;
}

TEST(SwavLoss, CodesAreSinkhornAndCarryNoGradient) {
  Generator g(2);
  const Tensor s = (rand({6, 4}, kFloat64, &g) * 2.0 - 1.0).requires_grad_();
  const Tensor q = ssl::swav_codes(s, 0.05, 3);
  EXPECT_FALSE(q.requires_grad());
  Tensor want = empty({6, 4}, kFloat64);
  cpu::sinkhorn(s.detach(), 0.05, 3, want);
  EXPECT_EQ(q.to_vector<double>(), want.to_vector<double>());
  // With the codes of scores s0, s1 as targets, d loss / d s_t is exactly
  // (softmax(s_t / T) - q_s) / (T B) / (S (V - 1)) summed over the codes predicting t: no term
  // through the codes, which would appear if they were differentiable functions of s0 and s1.
  const Tensor s0 = (rand({5, 3}, kFloat64, &g) * 2.0 - 1.0).requires_grad_();
  const Tensor s1 = (rand({5, 3}, kFloat64, &g) * 2.0 - 1.0).requires_grad_();
  const Tensor q0 = ssl::swav_codes(s0), q1 = ssl::swav_codes(s1);
  ssl::swav_loss({s0, s1}, {q0, q1}, 0.1).backward();
  const Mat p1 = to_mat(softmax(s1.detach() * 10.0, 1)), qm0 = to_mat(q0);
  const Mat grad1 = to_mat(s1.grad());
  for (int b = 0; b < 5; ++b)
    for (int k = 0; k < 3; ++k)  // only code 0 predicts view 1: S = 2, V - 1 = 1
      EXPECT_NEAR(grad1[b][k], (p1[b][k] - qm0[b][k]) / (0.1 * 5) / 2, 1e-12);
}

TEST(SwavLoss, BadArgumentsAreErrors) {
  const Tensor a = zeros({2, 3}, kFloat64);
  EXPECT_NE(error_of([&] { ssl::swav_loss({a}, {a}, 0.1); }).find("needs at least 2 views"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ssl::swav_loss({a, a}, {zeros({3, 3}, kFloat64)}, 0.1);
            }).find("swav_loss: codes 0 [3, 3] and scores [2, 3] differ"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              ssl::swav_loss({a, a}, {a}, 0.0);
            }).find("temperature"),
            std::string::npos);
}

// ============================================================================== SwAV method

TEST(Swav, DefaultsAreTwoGlobalAndFourLocalViews) {
  ssl::MethodOptions o = small_options();
  o.local_crops = -1;
  auto m = ssl::make_method("swav", o);
  EXPECT_EQ(m->num_views(), 6);
  EXPECT_EQ(m->augment_preset(), "swav");
  o.local_crops = 1;
  EXPECT_EQ(ssl::make_method("swav", o)->num_views(), 3);
}

TEST(Swav, PrototypesStayUnitNormAcrossSteps) {
  ssl::MethodOptions o = small_options();
  o.local_crops = 2;
  auto m = ssl::make_method("swav", o);
  m->before_epoch(epoch_ctx(1));  // past the frozen epoch: the prototypes learn
  Tensor w = param(*m, "prototypes.weight");
  for (const auto& r : to_mat(w))
    EXPECT_NEAR(row_norm(r), 1.0, 1e-6);  // unit from the start
  optim::SGD sgd(m->parameters(), {.lr = 5.0});
  for (int step = 0; step < 3; ++step) {
    m->step(views(8, 2, 10 + step)).loss.backward();
    ASSERT_TRUE(w.grad().defined());
    sgd.step();
    double worst = 0;  // the optimizer moves them off the sphere ...
    for (const auto& r : to_mat(w))
      worst = std::max(worst, std::abs(row_norm(r) - 1.0));
    EXPECT_GT(worst, 1e-3);
    m->after_optimizer_step((step + 1) / 3.0);  // ... and the method puts them back
    for (const auto& r : to_mat(w))
      EXPECT_NEAR(row_norm(r), 1.0, 1e-6);
    sgd.zero_grad();
  }
}

TEST(Swav, PrototypesAreFrozenDuringTheFirstEpoch) {
  auto m = ssl::make_method("swav", small_options());
  m->before_epoch(epoch_ctx(0));
  m->step(views(8, 0, 3)).loss.backward();
  EXPECT_FALSE(param(*m, "prototypes.weight").grad().defined());
  EXPECT_TRUE(param(*m, "projector.0.weight").grad().defined());
  m->zero_grad();
  m->before_epoch(epoch_ctx(1));
  m->step(views(8, 0, 3)).loss.backward();
  EXPECT_TRUE(param(*m, "prototypes.weight").grad().defined());
}

TEST(Swav, FreezePrototypesSetsHowManyEpochsTheyWait) {
  auto learns_in = [](int64_t freeze, int64_t epoch) {
    ssl::MethodOptions o = small_options();
    o.freeze_prototypes = freeze;
    auto m = ssl::make_method("swav", o);
    m->before_epoch(epoch_ctx(epoch));
    m->step(views(8, 0, 3)).loss.backward();
    return param(*m, "prototypes.weight").grad().defined();
  };
  EXPECT_TRUE(learns_in(0, 0));
  EXPECT_FALSE(learns_in(3, 2));
  EXPECT_TRUE(learns_in(3, 3));
  EXPECT_FALSE(learns_in(-1, 0));  // -1: the default, one epoch
  EXPECT_TRUE(learns_in(-1, 1));
}

TEST(Swav, QueueFillsAfterTheFirstEpochAndThenJoinsTheCodes) {
  // Two identical methods, one with a queue of 24 rows: each step enqueues 2 x 8 global rows.
  ssl::MethodOptions o = small_options();
  auto plain = ssl::make_method("swav", o);
  o.swav_queue = 24;
  auto queued = ssl::make_method("swav", o);
  const Tensor state = buffer(*queued, "queue_state"), queue = buffer(*queued, "queue");
  queued->step(views(8, 0, 4));  // epoch 0: no enqueueing
  EXPECT_EQ(state.to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
  plain->before_epoch(epoch_ctx(1));
  queued->before_epoch(epoch_ctx(1));
  std::vector<double> plain_loss, queued_loss;
  Tensor last_embedding;
  for (int step = 0; step < 3; ++step) {
    const auto v = views(8, 0, 20 + step);
    plain_loss.push_back(plain->step(v).loss.item());
    ssl::StepOutput out = queued->step(v);
    queued_loss.push_back(out.loss.item());
    last_embedding = out.embedding;
  }
  // Steps 1 and 2 ran with a queue not yet full (0, then 16 of 24 rows): the same codes.
  EXPECT_NEAR(queued_loss[0], plain_loss[0], 1e-6);
  EXPECT_NEAR(queued_loss[1], plain_loss[1], 1e-6);
  EXPECT_GT(std::abs(queued_loss[2] - plain_loss[2]), 1e-6);  // step 3 used 24 queued rows
  // After 3 steps (48 rows through a ring of 24) the ring's next row is 0 again, and rows 8..15
  // hold step 3's view-0 projections (its 16 rows went to rows 8..23).
  EXPECT_EQ(state.to_vector<int64_t>(), (std::vector<int64_t>{0, 24}));
  const Mat q = to_mat(queue), e = to_mat(last_embedding);
  for (int i = 0; i < 8; ++i)
    for (size_t j = 0; j < e[i].size(); ++j)
      EXPECT_NEAR(q[8 + i][j], e[i][j], 1e-6);
  for (const auto& r : q)
    EXPECT_NEAR(row_norm(r), 1.0, 1e-5);
}

TEST(Swav, OptionsSurviveTheRunConfigurationJson) {
  ssl::TrainConfig c;
  c.method_options.prototypes = 300;
  c.method_options.sinkhorn_eps = 0.03;
  c.method_options.swav_queue = 512;
  c.method_options.freeze_prototypes = 4;
  ssl::MethodOptions m = ssl::TrainConfig::from_json(c.to_json()).method_options;
  EXPECT_EQ(m.prototypes, 300);
  EXPECT_EQ(m.sinkhorn_eps, 0.03);
  EXPECT_EQ(m.swav_queue, 512);
  EXPECT_EQ(m.freeze_prototypes, 4);
}

TEST(Swav, BadOptionsAreOneLineErrors) {
  auto bad = [](auto set) {
    ssl::MethodOptions o = small_options();
    set(o);
    return error_of([&] { ssl::make_method("swav", o); });
  };
  EXPECT_NE(
      bad([](auto& o) { o.prototypes = -3; }).find("swav: --prototypes must be positive, got -3"),
      std::string::npos);
  EXPECT_NE(bad([](auto& o) { o.local_crops = -2; }).find("--local-crops must be >= 0, got -2"),
            std::string::npos);
  EXPECT_NE(bad([](auto& o) { o.sinkhorn_eps = -0.1; }).find("--sinkhorn-eps"), std::string::npos);
  EXPECT_NE(bad([](auto& o) { o.sinkhorn_iters = -1; }).find("--sinkhorn-iters"),
            std::string::npos);
  EXPECT_NE(bad([](auto& o) { o.swav_queue = -5; }).find("--swav-queue must be >= 0, got -5"),
            std::string::npos);
  EXPECT_NE(bad([](auto& o) {
              o.freeze_prototypes = -2;
            }).find("swav: --freeze-prototypes must be >= 0, got -2"),
            std::string::npos);
  auto m = ssl::make_method("swav", small_options());
  EXPECT_NE(error_of([&] { m->step(views(4, 1, 5)); }).find("swav: expected 2 views"),
            std::string::npos);
}

// ======================================================================== DeepCluster method

TEST(DeepCluster, PseudoLabelsComeFromAKMeansOfTheNormalisedProjections) {
  const data::Dataset ds = random_dataset(40, 6);
  auto m = ssl::make_method("deepcluster", small_options());
  m->before_epoch(epoch_ctx(0, &ds));
  const ssl::Clustering& c = ssl::deepcluster_clustering(*m);
  EXPECT_EQ(c.epoch, 0);
  ASSERT_EQ(c.pseudo_labels.shape(), Shape({40}));
  ASSERT_EQ(c.centroids.shape(), Shape({5, 16}));
  // The test's own projections: eval mode, unit rows.
  m->eval();
  Tensor z;
  {
    NoGradGuard g;
    z = normalize(child(*m, "projector").forward(m->features(ssl::images_as_float(ds, 0, 40))), 1);
  }
  m->train();
  const Mat zm = to_mat(z), cm = to_mat(c.centroids);
  const auto labels = c.pseudo_labels.to_vector<int64_t>();
  // Every centroid is the mean of the projections labelled with it ...
  Mat sums(5, std::vector<double>(16, 0.0));
  std::vector<int> counts(5, 0);
  for (int i = 0; i < 40; ++i) {
    ASSERT_GE(labels[i], 0);
    ASSERT_LT(labels[i], 5);
    ++counts[labels[i]];
    for (int j = 0; j < 16; ++j)
      sums[labels[i]][j] += zm[i][j];
  }
  for (int k = 0; k < 5; ++k) {
    ASSERT_GT(counts[k], 0);
    for (int j = 0; j < 16; ++j)
      EXPECT_NEAR(cm[k][j], sums[k][j] / counts[k], 1e-5);
  }
  // ... and, the k-means having converged, every label is its projection's nearest centroid.
  ASSERT_LT(c.iterations, 20);
  Tensor nearest = empty({40}, kInt64), dist = empty({40});
  cpu::kmeans_assign(raw::to_dtype(z, kFloat32), c.centroids, nearest, dist);
  EXPECT_EQ(nearest.to_vector<int64_t>(), labels);
}

TEST(DeepCluster, HeadIsReinitialisedToTheCentroidsAtEveryClustering) {
  const data::Dataset ds = random_dataset(40, 7);
  auto m = ssl::make_method("deepcluster", small_options());
  const Tensor w = param(*m, "head.weight");
  auto expect_head_is_normalised_centroids = [&] {
    const Mat wm = to_mat(w), cm = to_mat(ssl::deepcluster_clustering(*m).centroids);
    for (size_t k = 0; k < cm.size(); ++k)
      for (size_t j = 0; j < cm[k].size(); ++j)
        EXPECT_NEAR(wm[k][j], cm[k][j] / row_norm(cm[k]), 1e-6);
  };
  m->before_epoch(epoch_ctx(0, &ds));
  expect_head_is_normalised_centroids();
  // Train the head away from the centroids, then cluster again for the next epoch.
  optim::SGD sgd(m->parameters(), {.lr = 1.0});
  m->step_indexed(views(8, 0, 8), arange(8, kInt64)).loss.backward();
  ASSERT_TRUE(w.grad().defined());
  sgd.step();
  const auto trained = w.to_vector<float>();
  m->before_epoch(epoch_ctx(1, &ds));
  EXPECT_EQ(ssl::deepcluster_clustering(*m).epoch, 1);
  expect_head_is_normalised_centroids();
  EXPECT_NE(w.to_vector<float>(), trained);
}

TEST(DeepCluster, LossIsCrossEntropyAgainstThePseudoLabelsOfTheRows) {
  const data::Dataset ds = random_dataset(40, 8);
  ssl::MethodOptions o = small_options();
  o.local_crops = 1;
  auto m = ssl::make_method("deepcluster", o);
  m->before_epoch(epoch_ctx(0, &ds));
  const auto labels = ssl::deepcluster_clustering(*m).pseudo_labels.to_vector<int64_t>();
  const auto v = views(6, 1, 9);
  const Tensor indices = tensor<int64_t>({33, 2, 17, 5, 39, 20});
  const double got = m->step_indexed(v, indices).loss.item();
  // By hand: the same forward (train mode, one batch per resolution), logits z . w / 0.1.
  NoGradGuard g;
  auto embed = [&](const std::vector<Tensor>& group) {
    return normalize(child(*m, "projector").forward(m->features(cat(group, 0))), 1);
  };
  const Mat logits = to_mat(matmul(cat({embed({v[0], v[1]}), embed({v[2]})}, 0),
                                   transpose(param(*m, "head.weight"), 0, 1)));
  const auto idx = indices.to_vector<int64_t>();
  double want = 0;
  for (size_t r = 0; r < logits.size(); ++r) {
    const auto lp = log_softmax_row(logits[r], 0.1);
    want -= lp[labels[idx[r % 6]]];
  }
  want /= logits.size();
  EXPECT_NEAR(got, want, 1e-4);
  // Other rows, other labels: the loss follows the indices.
  const double other = m->step_indexed(v, tensor<int64_t>({0, 1, 3, 4, 6, 7})).loss.item();
  EXPECT_NE(got, other);
}

TEST(DeepCluster, LearnsItsPseudoLabels) {
  // Within one clustering the targets are fixed: a few steps on the same batch fit them.
  const data::Dataset ds = random_dataset(40, 11);
  auto m = ssl::make_method("deepcluster", small_options());
  m->before_epoch(epoch_ctx(0, &ds));
  optim::AdamW adamw(m->parameters(), {.lr = 1e-2});
  const auto v = views(16, 0, 12);
  const Tensor indices = arange(16, kInt64);
  std::vector<double> losses;
  for (int step = 0; step < 6; ++step) {
    ssl::StepOutput out = m->step_indexed(v, indices);
    losses.push_back(out.loss.item());
    adamw.zero_grad();
    out.loss.backward();
    adamw.step();
  }
  EXPECT_LT(losses.back(), 0.7 * losses.front());
}

TEST(DeepCluster, MisuseIsAOneLineError) {
  const data::Dataset ds = random_dataset(4, 9);
  auto m = ssl::make_method("deepcluster", small_options());
  EXPECT_NE(error_of([&] {
              m->step_indexed(views(4, 0, 1), arange(4, kInt64));
            }).find("deepcluster: no clustering yet: before_epoch() must run"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m->step(views(4, 0, 1)); }).find("needs the dataset index of each row"),
            std::string::npos);
  EXPECT_NE(error_of([&] { m->before_epoch(epoch_ctx(0, &ds)); })
                .find("deepcluster: 5 clusters need at least as many training images, random has "
                      "4 (lower --clusters)"),
            std::string::npos);
  const data::Dataset big = random_dataset(12, 10);
  m->before_epoch(epoch_ctx(0, &big));
  EXPECT_NE(error_of([&] {
              m->step_indexed(views(4, 0, 1), tensor<int64_t>({0, 1, 12, 3}));
            })
                .find("deepcluster: dataset index 12 of row 2 is outside the clustered training "
                      "set of 12 images"),
            std::string::npos);
  ssl::MethodOptions o = small_options();
  o.clusters = -4;
  EXPECT_NE(error_of([&] {
              ssl::make_method("deepcluster", o);
            }).find("deepcluster: --clusters must be positive, got -4"),
            std::string::npos);
  auto swav = ssl::make_method("swav", small_options());
  EXPECT_NE(error_of([&] { ssl::deepcluster_clustering(*swav); }).find("'swav' is not deepcluster"),
            std::string::npos);
}

// ============================================================================= end to end

namespace {}  // namespace

class ClusterMethod : public ::testing::TestWithParam<std::string> {};

TEST_P(ClusterMethod, TrainsAndResumesOnASmallSubset) {
  if (!have_fashion_mnist()) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const std::string run = (fs::temp_directory_path() /
                           ("selfsup_test_cluster_" + GetParam() + "_" + std::to_string(getpid())))
                              .string();
  fs::remove_all(run);
  ssl::TrainConfig c;
  c.method = GetParam();
  c.out = run;
  c.epochs = 2;
  c.batch_size = 32;
  c.subset = 64;
  c.num_workers = 1;
  c.lr = 0.02;
  c.warmup_epochs = 0;
  c.knn_train = 64;
  c.knn_test = 64;
  c.knn_k = 5;
  c.method_options.width = 0.5;
  c.method_options.proj_hidden = 64;
  c.method_options.proj_dim = 32;
  c.method_options.prototypes = 20;
  c.method_options.clusters = 10;
  c.method_options.local_crops = 2;
  c.method_options.swav_queue = 64;
  const ssl::TrainResult r = ssl::train(c);
  EXPECT_EQ(r.epochs_done, 2);
  auto m = metrics(run);
  ASSERT_EQ(m.size(), 2u);
  for (const auto& line : m)
    EXPECT_TRUE(std::isfinite(line["loss"].get<double>()));
  EXPECT_GE(r.knn_top1, 0.0);
  // DeepCluster's epochs train against different clusterings, so their losses are not
  // comparable (DeepCluster.LearnsItsPseudoLabels checks that it learns); SwAV's are.
  if (GetParam() == "swav") {
    EXPECT_LT(m[1]["loss"].get<double>(), m[0]["loss"].get<double>());
  } else {
    EXPECT_GT(m[1]["kmeans_inertia"].get<double>(), 0.0);
  }
  // Resume: the epoch hook runs again (DeepCluster re-clusters; SwAV knows it is past epoch 0).
  c.epochs = 3;
  const ssl::TrainResult more = ssl::train(c, run);
  EXPECT_EQ(more.epochs_done, 3);
  m = metrics(run);
  ASSERT_EQ(m.size(), 3u);
  EXPECT_EQ(m[2]["step"].get<int64_t>(), 3 * 2);  // 64 images / 32 per batch = 2 steps
  EXPECT_TRUE(std::isfinite(m[2]["loss"].get<double>()));
  ssl::TrainConfig loaded;
  auto method = ssl::load_method(ssl::checkpoint_path(run), &loaded);
  EXPECT_EQ(method->name(), GetParam());
  EXPECT_EQ(loaded.method_options.local_crops, 2);
  fs::remove_all(run);
}

INSTANTIATE_TEST_SUITE_P(Methods, ClusterMethod, ::testing::Values("swav", "deepcluster"),
                         [](const auto& info) { return info.param; });
