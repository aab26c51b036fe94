// ssl/data/subset: balanced labelled subsets (determinism, balance, no duplicates), take, first_n.
#include <gtest/gtest.h>

#include <set>

#include "data_test_util.h"
#include "ssl/data/subset.h"

using namespace selfsup;
using namespace selfsup::data;
using namespace selfsup::data::testing;

namespace {

// n samples of 1x3x2; labels from `labels`; pixel bytes encode the sample index.
Dataset make(const std::vector<int64_t>& labels, int64_t num_classes) {
  const int64_t n = static_cast<int64_t>(labels.size());
  std::vector<uint8_t> px(static_cast<size_t>(n * 6));
  for (size_t k = 0; k < px.size(); ++k)
    px[k] = static_cast<uint8_t>(k * 7 % 251);
  Dataset ds;
  ds.name = "made";
  ds.images = from_vector(px, {n, 1, 3, 2});
  ds.labels = from_vector(labels, {n});
  ds.num_classes = num_classes;
  return ds;
}

// 1000 samples, 10 classes of 100, labels in a scrambled order.
Dataset balanced() {
  std::vector<int64_t> labels(1000);
  for (int64_t i = 0; i < 1000; ++i)
    labels[i] = (i * 37) % 10;
  return make(labels, 10);
}

std::vector<int64_t> count_per_class(const Dataset& ds, const std::vector<int64_t>& idx) {
  std::vector<int64_t> counts(static_cast<size_t>(ds.num_classes), 0);
  for (int64_t i : idx)
    ++counts[ds.label(i)];
  return counts;
}

void expect_sorted_unique_in_range(const std::vector<int64_t>& idx, int64_t n) {
  for (size_t k = 0; k < idx.size(); ++k) {
    ASSERT_GE(idx[k], 0);
    ASSERT_LT(idx[k], n);
    if (k > 0) {
      ASSERT_LT(idx[k - 1], idx[k]);
    }
  }
}

}  // namespace

TEST(LabelledSubset, FractionIsBalancedAndDeterministic) {
  Dataset ds = balanced();
  for (double fraction : {0.01, 0.1, 0.37, 1.0}) {
    std::vector<int64_t> idx = labelled_subset(ds, fraction, 3);
    expect_sorted_unique_in_range(idx, 1000);
    const int64_t per = std::llround(fraction * 100);
    EXPECT_EQ(count_per_class(ds, idx), std::vector<int64_t>(10, per)) << fraction;
    EXPECT_EQ(labelled_subset(ds, fraction, 3), idx);
  }
  EXPECT_NE(labelled_subset(ds, 0.1, 3), labelled_subset(ds, 0.1, 4));
  // The 1% subset is a real random choice, not the first samples of each class.
  std::vector<int64_t> one = labelled_subset(ds, 0.05, 1);
  EXPECT_GT(one.back(), 500);
}

TEST(LabelledSubset, StratifiedOnUnbalancedClasses) {
  // Class 0: 300 samples, class 1: 60, class 2: 3, class 3: none.
  std::vector<int64_t> labels;
  for (int i = 0; i < 300; ++i)
    labels.push_back(0);
  for (int i = 0; i < 60; ++i)
    labels.push_back(1);
  for (int i = 0; i < 3; ++i)
    labels.push_back(2);
  Dataset ds = make(labels, 4);
  std::vector<int64_t> idx = labelled_subset(ds, 0.1, 0);
  EXPECT_EQ(count_per_class(ds, idx), (std::vector<int64_t>{30, 6, 1, 0}));  // at least one
}

TEST(LabelledSubset, CountPerClass) {
  Dataset ds = balanced();
  std::vector<int64_t> idx = labelled_subset_per_class(ds, 13, 9);
  expect_sorted_unique_in_range(idx, 1000);
  EXPECT_EQ(count_per_class(ds, idx), std::vector<int64_t>(10, 13));
  EXPECT_EQ(labelled_subset_per_class(ds, 13, 9), idx);
  // Classes are chosen independently: asking for more keeps... a different but valid choice.
  EXPECT_EQ(count_per_class(ds, labelled_subset_per_class(ds, 100, 9)),
            std::vector<int64_t>(10, 100));
  expect_error([&] { labelled_subset_per_class(ds, 101, 9); }, {"class 0 has 100 samples", "101"});
  expect_error([&] { labelled_subset_per_class(ds, 0, 9); }, {"positive"});
  expect_error([&] { labelled_subset(ds, 0.0, 9); }, {"fraction 0"});
  expect_error([&] { labelled_subset(ds, 1.5, 9); }, {"fraction 1.5"});
}

TEST(Take, CopiesSamplesInTheGivenOrder) {
  Dataset ds = balanced();
  Dataset t = take(ds, {999, 3, 3, 500});
  ASSERT_EQ(t.images.shape(), (Shape{4, 1, 3, 2}));
  const int64_t src[4] = {999, 3, 3, 500};
  for (int k = 0; k < 4; ++k) {
    EXPECT_EQ(t.label(k), ds.label(src[k]));
    EXPECT_EQ(t.image(k).data, ds.image(src[k]).data);
  }
  EXPECT_FALSE(t.images.shares_storage_with(ds.images));
  expect_error([&] { take(ds, {1000}); }, {"take: index 1000", "size 1000"});
}

TEST(FirstN, ViewOfTheFirstSamples) {
  Dataset ds = balanced();
  Dataset f = first_n(ds, 17);
  EXPECT_EQ(f.size(), 17);
  EXPECT_EQ(f.labels.size(0), 17);
  EXPECT_TRUE(f.images.shares_storage_with(ds.images));
  EXPECT_TRUE(f.images.is_contiguous());
  EXPECT_EQ(f.image(16).data, ds.image(16).data);
  EXPECT_EQ(first_n(ds, 5000).size(), 1000);
  expect_error([&] { first_n(ds, 0); }, {"first_n"});
}
