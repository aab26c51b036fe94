// The SSL objectives against plain-loop references on tiny random inputs, and by gradcheck.
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/gradcheck.h"
#include "ssl/losses/losses.h"

using namespace selfsup;
using Mat = std::vector<std::vector<double>>;

namespace {

Mat to_mat(const Tensor& t) {
  auto v = t.to_vector<double>();
  Mat m(t.size(0), std::vector<double>(t.size(1)));
  for (int64_t i = 0; i < t.size(0); ++i)
    for (int64_t j = 0; j < t.size(1); ++j)
      m[i][j] = v[i * t.size(1) + j];
  return m;
}

std::vector<double> unit(std::vector<double> r) {
  double n = 0;
  for (double x : r)
    n += x * x;
  for (double& x : r)
    x /= std::sqrt(n);
  return r;
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i)
    s += a[i] * b[i];
  return s;
}

Tensor rnd(Shape s, uint64_t seed) {
  Generator g(seed);
  return randn(s, kFloat64, &g).requires_grad_();
}

double nt_xent_reference(const Mat& z1, const Mat& z2, double t) {
  Mat z;
  for (auto& r : z1)
    z.push_back(unit(r));
  for (auto& r : z2)
    z.push_back(unit(r));
  size_t m = z.size(), n = z1.size();
  double total = 0;
  for (size_t i = 0; i < m; ++i) {
    double denom = 0;
    for (size_t j = 0; j < m; ++j)
      if (j != i) denom += std::exp(dot(z[i], z[j]) / t);
    total += -dot(z[i], z[(i + n) % m]) / t + std::log(denom);
  }
  return total / m;
}

// Standardise columns over rows (biased variance, eps as the kernel uses).
Mat standardise(const Mat& z, double eps) {
  Mat out = z;
  size_t n = z.size(), d = z[0].size();
  for (size_t j = 0; j < d; ++j) {
    double mu = 0, var = 0;
    for (size_t i = 0; i < n; ++i)
      mu += z[i][j] / n;
    for (size_t i = 0; i < n; ++i)
      var += (z[i][j] - mu) * (z[i][j] - mu) / n;
    for (size_t i = 0; i < n; ++i)
      out[i][j] = (z[i][j] - mu) / std::sqrt(var + eps);
  }
  return out;
}

}  // namespace

TEST(Losses, NtXentMatchesReference) {
  Tensor z1 = rnd({5, 3}, 1), z2 = rnd({5, 3}, 2);
  double got = ssl::nt_xent_loss(z1, z2, 0.5).item();
  EXPECT_NEAR(got, nt_xent_reference(to_mat(z1), to_mat(z2), 0.5), 1e-10);
}

TEST(Losses, NtXentIsLowWhenViewsAgree) {
  Tensor z = rnd({8, 16}, 3);
  double same = ssl::nt_xent_loss(z, z, 0.1).item();
  double other = ssl::nt_xent_loss(z, rnd({8, 16}, 4), 0.1).item();
  EXPECT_LT(same, other);
}

TEST(Losses, InfoNceMatchesReference) {
  Tensor q = rnd({3, 4}, 5), k = rnd({3, 4}, 6), queue = rnd({6, 4}, 7);
  Mat qm = to_mat(q), km = to_mat(k), qu = to_mat(queue);
  double t = 0.2, expect = 0;
  for (size_t i = 0; i < qm.size(); ++i) {
    auto qi = unit(qm[i]);
    double pos = dot(qi, unit(km[i])) / t, denom = std::exp(pos);
    for (auto& r : qu)
      denom += std::exp(dot(qi, unit(r)) / t);
    expect += (std::log(denom) - pos) / qm.size();
  }
  EXPECT_NEAR(ssl::info_nce_loss(q, k, queue, t).item(), expect, 1e-10);
  ssl::info_nce_loss(q, k, queue, t).backward();
  EXPECT_TRUE(q.grad().defined());
  EXPECT_FALSE(k.grad().defined());  // keys are detached
}

TEST(Losses, ByolAndSimSiamUseCosineAndStopGradient) {
  Tensor p = rnd({4, 5}, 8), z = rnd({4, 5}, 9);
  Mat pm = to_mat(p), zm = to_mat(z);
  double cos = 0;
  for (size_t i = 0; i < pm.size(); ++i)
    cos += dot(unit(pm[i]), unit(zm[i])) / pm.size();
  EXPECT_NEAR(ssl::byol_loss(p, z).item(), 2 - 2 * cos, 1e-12);
  EXPECT_NEAR(ssl::simsiam_loss(p, z).item(), -cos, 1e-12);
  ssl::simsiam_loss(p, z).backward();
  EXPECT_TRUE(p.grad().defined());
  EXPECT_FALSE(z.grad().defined());
}

TEST(Losses, BarlowTwinsMatchesReference) {
  Tensor z1 = rnd({7, 3}, 10), z2 = rnd({7, 3}, 11);
  Mat a = standardise(to_mat(z1), 1e-5), b = standardise(to_mat(z2), 1e-5);
  double lambda = 0.05, expect = 0;
  for (size_t i = 0; i < 3; ++i)
    for (size_t j = 0; j < 3; ++j) {
      double c = 0;
      for (size_t n = 0; n < 7; ++n)
        c += a[n][i] * b[n][j] / 7;
      expect += i == j ? (1 - c) * (1 - c) : lambda * c * c;
    }
  EXPECT_NEAR(ssl::barlow_twins_loss(z1, z2, lambda).item(), expect, 1e-9);
}

TEST(Losses, VicregTermsMatchReference) {
  Tensor z1 = rnd({6, 4}, 12), z2 = rnd({6, 4}, 13);
  Mat a = to_mat(z1), b = to_mat(z2);
  double inv = 0;
  for (size_t n = 0; n < 6; ++n)
    for (size_t j = 0; j < 4; ++j)
      inv += (a[n][j] - b[n][j]) * (a[n][j] - b[n][j]) / 24;
  auto var_cov = [](const Mat& z, double& hinge, double& cov) {
    size_t n = z.size(), d = z[0].size();
    std::vector<double> mu(d, 0);
    for (size_t j = 0; j < d; ++j)
      for (size_t i = 0; i < n; ++i)
        mu[j] += z[i][j] / n;
    hinge = 0;
    cov = 0;
    for (size_t j = 0; j < d; ++j)
      for (size_t k = 0; k < d; ++k) {
        double c = 0;
        for (size_t i = 0; i < n; ++i)
          c += (z[i][j] - mu[j]) * (z[i][k] - mu[k]) / (n - 1);
        if (j == k)
          hinge += std::max(0.0, 1 - std::sqrt(c + 1e-4)) / d;
        else
          cov += c * c / d;
      }
  };
  double ha, ca, hb, cb;
  var_cov(a, ha, ca);
  var_cov(b, hb, cb);
  ssl::VicregTerms t = ssl::vicreg_loss(z1, z2);
  EXPECT_NEAR(t.invariance.item(), inv, 1e-12);
  EXPECT_NEAR(t.variance.item(), ha + hb, 1e-12);
  EXPECT_NEAR(t.covariance.item(), ca + cb, 1e-12);
  EXPECT_NEAR(t.loss.item(), 25 * inv + 25 * (ha + hb) + (ca + cb), 1e-9);
}

TEST(Losses, TripletMatchesReference) {
  Tensor a = rnd({4, 3}, 14), p = rnd({4, 3}, 15), n = rnd({4, 3}, 16);
  Mat am = to_mat(a), pm = to_mat(p), nm = to_mat(n);
  double expect = 0;
  for (size_t i = 0; i < 4; ++i) {
    double dp = 0, dn = 0;
    for (size_t j = 0; j < 3; ++j) {
      dp += (am[i][j] - pm[i][j]) * (am[i][j] - pm[i][j]);
      dn += (am[i][j] - nm[i][j]) * (am[i][j] - nm[i][j]);
    }
    expect += std::max(0.0, std::sqrt(dp) - std::sqrt(dn) + 1.0) / 4;
  }
  EXPECT_NEAR(ssl::triplet_loss(a, p, n, 1.0).item(), expect, 1e-6);
}

TEST(Losses, GradientsPassGradcheck) {
  using V = const std::vector<Tensor>&;
  // (name, loss, whether the second input gets a gradient: BYOL's target is detached)
  std::vector<std::tuple<const char*, GradcheckFn, bool>> fns = {
      {"nt_xent", [](V x) { return ssl::nt_xent_loss(x[0], x[1], 0.5); }, true},
      {"barlow", [](V x) { return ssl::barlow_twins_loss(x[0], x[1], 0.1); }, true},
      {"vicreg", [](V x) { return ssl::vicreg_loss(x[0], x[1]).loss; }, true},
      {"byol", [](V x) { return ssl::byol_loss(x[0], x[1]); }, false},
  };
  for (auto& [name, f, second_grad] : fns) {
    Tensor z1 = rnd({5, 4}, 20), z2 = rnd({5, 4}, 21);
    if (!second_grad) z2 = z2.detach();
    GradcheckResult r = gradcheck(f, {z1, z2});
    EXPECT_TRUE(r.ok) << name << ": " << r.message;
  }
}

TEST(Losses, BadShapesNameBothShapes) {
  try {
    ssl::nt_xent_loss(rnd({4, 3}, 1), rnd({5, 3}, 2), 0.5);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("[4, 3] and [5, 3]"), std::string::npos) << e.what();
  }
}
