// Balanced labelled subsets and first-n cuts.
#include "ssl/data/subset.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/random.h"
#include "core/views.h"

namespace selfsup::data {

namespace {

// The samples of each class, in dataset order.
std::vector<std::vector<int64_t>> indices_by_class(const Dataset& ds) {
  std::vector<std::vector<int64_t>> by_class(static_cast<size_t>(ds.num_classes));
  for (int64_t i = 0; i < ds.size(); ++i)
    by_class[ds.label(i)].push_back(i);
  return by_class;
}

// `count` members of `members` chosen by a Philox permutation; the generator of each class is
// keyed by (seed, class) so a class's choice does not depend on the others.
void choose(const std::vector<int64_t>& members, int64_t count, uint64_t seed, int64_t cls,
            std::vector<int64_t>& out) {
  Generator gen(seed * 0x9E3779B97F4A7C15ull + static_cast<uint64_t>(cls) + 1);
  Tensor perm = randperm(static_cast<int64_t>(members.size()), &gen);
  const int64_t* p = perm.data_ptr<int64_t>();
  for (int64_t k = 0; k < count; ++k)
    out.push_back(members[p[k]]);
}

}  // namespace

std::vector<int64_t> labelled_subset(const Dataset& ds, double fraction, uint64_t seed) {
  SELFSUP_CHECK(fraction > 0.0 && fraction <= 1.0, "labelled_subset: fraction ", fraction,
                " is outside (0, 1]");
  std::vector<int64_t> out;
  const auto by_class = indices_by_class(ds);
  for (size_t c = 0; c < by_class.size(); ++c) {
    const int64_t n = static_cast<int64_t>(by_class[c].size());
    if (n == 0) continue;
    const int64_t count = std::clamp<int64_t>(std::llround(fraction * n), 1, n);
    choose(by_class[c], count, seed, static_cast<int64_t>(c), out);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<int64_t> labelled_subset_per_class(const Dataset& ds, int64_t count_per_class,
                                               uint64_t seed) {
  SELFSUP_CHECK(count_per_class > 0, "labelled_subset: count per class must be positive, got ",
                count_per_class);
  std::vector<int64_t> out;
  const auto by_class = indices_by_class(ds);
  for (size_t c = 0; c < by_class.size(); ++c) {
    const int64_t n = static_cast<int64_t>(by_class[c].size());
    SELFSUP_CHECK(n >= count_per_class, "labelled_subset: ", ds.name, " class ", c, " has ", n,
                  " samples, fewer than the ", count_per_class, " asked for");
    choose(by_class[c], count_per_class, seed, static_cast<int64_t>(c), out);
  }
  std::sort(out.begin(), out.end());
  return out;
}

Dataset take(const Dataset& ds, const std::vector<int64_t>& indices) {
  const int64_t n = static_cast<int64_t>(indices.size());
  const int64_t per_image = ds.channels() * ds.height() * ds.width();
  Dataset out = ds;
  out.images = empty({n, ds.channels(), ds.height(), ds.width()}, kUInt8);
  out.labels = empty({n}, kInt64);
  const uint8_t* src = ds.images.data_ptr<uint8_t>();
  uint8_t* dst = out.images.data_ptr<uint8_t>();
  int64_t* lab = out.labels.data_ptr<int64_t>();
  for (int64_t k = 0; k < n; ++k) {
    const int64_t i = indices[k];
    SELFSUP_CHECK(i >= 0 && i < ds.size(), "take: index ", i, " out of range for ", ds.name,
                  " of size ", ds.size());
    std::memcpy(dst + k * per_image, src + i * per_image, per_image);
    lab[k] = ds.label(i);
  }
  return out;
}

Dataset first_n(const Dataset& ds, int64_t n) {
  SELFSUP_CHECK(n > 0, "first_n: n must be positive, got ", n);
  Dataset out = ds;
  const int64_t m = std::min(n, ds.size());
  out.images = raw::narrow(ds.images, 0, 0, m);
  out.labels = raw::narrow(ds.labels, 0, 0, m);
  return out;
}

}  // namespace selfsup::data
