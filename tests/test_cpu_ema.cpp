// kernels/cpu/ema: target = m * target + (1 - m) * source for lists of tensors, against a naive
// loop; contiguous, transposed and narrowed targets and sources; version bumps; errors that
// name the pair index and both shapes and leave every target untouched.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/ema.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

namespace {

std::vector<double> naive_ema(const Tensor& target, const Tensor& source, double m) {
  auto t = target.to_vector<double>();
  const auto s = source.to_vector<double>();
  for (size_t i = 0; i < t.size(); ++i)
    t[i] = m * t[i] + (1 - m) * s[i];
  return t;
}

class EmaTest : public ::testing::TestWithParam<DType> {
 protected:
  Generator gen{31};
  Tensor randn_(const Shape& s) { return randn(s, GetParam(), &gen); }
};

}  // namespace

TEST_P(EmaTest, UpdatesEveryPairAndBumpsVersions) {
  const DType dt = GetParam();
  const double tol = dt == kFloat32 ? 1e-6 : 1e-15;
  // Awkward sizes, a scalar, an empty tensor, and one big enough for the threaded loop.
  const std::vector<Shape> shapes{{7}, {3, 5, 11}, {}, {0, 4}, {301, 293}};
  std::vector<Tensor> targets, sources;
  std::vector<std::vector<double>> want;
  const double m = 0.993;
  for (const Shape& s : shapes) {
    targets.push_back(randn_(s));
    sources.push_back(randn_(s));
    want.push_back(naive_ema(targets.back(), sources.back(), m));
  }
  std::vector<uint64_t> versions;
  for (const Tensor& t : targets)
    versions.push_back(t.version());
  cpu::ema_update(targets, sources, m);
  for (size_t i = 0; i < shapes.size(); ++i) {
    expect_close(targets[i], want[i], tol, "pair " + std::to_string(i));
    EXPECT_GT(targets[i].version(), versions[i]) << "pair " << i;
  }
}

TEST_P(EmaTest, NonContiguousTargetsAndSources) {
  const DType dt = GetParam();
  const double tol = dt == kFloat32 ? 1e-6 : 1e-15;
  Tensor target_base = randn_({13, 9}), source_base = randn_({9, 20});
  Tensor target = raw::transpose(target_base, 0, 1);     // [9, 13], strides (1, 9)
  Tensor source = raw::narrow(source_base, 1, 4, 13);    // [9, 13], row stride 20
  Tensor untouched = raw::narrow(source_base, 1, 0, 4);  // must not change
  const auto untouched_before = untouched.to_vector<double>();
  const auto want = naive_ema(target, source, 0.9);
  const auto source_before = source.to_vector<double>();
  cpu::ema_update({target}, {source}, 0.9);
  expect_close(target, want, tol, "transposed target");
  EXPECT_EQ(source.to_vector<double>(), source_before);
  EXPECT_EQ(untouched.to_vector<double>(), untouched_before);
  // A contiguous target with a transposed source.
  Tensor t2 = randn_({9, 13});
  const auto want2 = naive_ema(t2, target, 0.5);
  cpu::ema_update({t2}, {target}, 0.5);
  expect_close(t2, want2, tol, "transposed source");
}

TEST_P(EmaTest, MomentumOneKeepsAndZeroCopies) {
  Tensor t = randn_({17, 3}), s = randn_({17, 3});
  const auto before = t.to_vector<double>();
  cpu::ema_update({t}, {s}, 1.0);
  EXPECT_EQ(t.to_vector<double>(), before);
  cpu::ema_update({t}, {s}, 0.0);
  EXPECT_EQ(t.to_vector<double>(), s.to_vector<double>());
}

INSTANTIATE_TEST_SUITE_P(Float, EmaTest, ::testing::Values(kFloat32, kFloat64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Ema, ErrorsNameThePairAndLeaveTargetsUntouched) {
  Tensor good_t = ones({4}), good_s = zeros({4});
  Tensor bad_t = ones({2, 3}), bad_s = zeros({3, 2});
  std::string msg = error_of([&] { cpu::ema_update({good_t, bad_t}, {good_s, bad_s}, 0.5); });
  EXPECT_NE(msg.find("ema_update: pair 1: target shape [2, 3] and source shape [3, 2] differ"),
            std::string::npos)
      << msg;
  EXPECT_EQ(good_t.to_vector<double>(), std::vector<double>(4, 1.0)) << "pair 0 was written";
  msg = error_of([&] { cpu::ema_update({good_t}, {good_s, bad_s}, 0.5); });
  EXPECT_NE(msg.find("ema_update: 1 targets but 2 sources"), std::string::npos) << msg;
  Tensor s64 = zeros({4}, kFloat64);
  msg = error_of([&] { cpu::ema_update({good_t}, {s64}, 0.5); });
  EXPECT_NE(msg.find("ema_update: pair 0 (shapes [4] and [4]): target is float32, source is "
                     "float64"),
            std::string::npos)
      << msg;
  Tensor ti = zeros({4}, kInt64), si = zeros({4}, kInt64);
  msg = error_of([&] { cpu::ema_update({ti}, {si}, 0.5); });
  EXPECT_NE(msg.find("ema_update: pair 0 is int64, expected float32 or float64"), std::string::npos)
      << msg;
}
