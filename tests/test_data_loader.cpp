// ssl/data/loader and AugRng: determinism across thread counts, batch layout, drop_last, early
// stop without hangs or leaks, and worker exceptions reaching the consumer.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <numeric>
#include <set>
#include <thread>

#include "core/random.h"
#include "core/views.h"
#include "data_test_util.h"
#include "ssl/data/loader.h"

using namespace selfsup;
using namespace selfsup::data;
using namespace selfsup::data::testing;

namespace {

// ---- test transforms (the real augmentations live elsewhere) ----

// Adds an independent rng.uniform() to every pixel: any change of stream shows everywhere.
class AddUniform : public Transform {
 public:
  Image apply(const Image& img, AugRng& rng) const override {
    Image out = img;
    for (float& v : out.data)
      v += rng.uniform();
    return out;
  }
  std::string name() const override { return "add_uniform"; }
};

// A random size x size crop: views of another size than the dataset's.
class RandomCrop : public Transform {
 public:
  explicit RandomCrop(int64_t size) : size_(size) {}
  Image apply(const Image& img, AugRng& rng) const override {
    const int64_t y0 = rng.randint(0, img.h - size_ + 1), x0 = rng.randint(0, img.w - size_ + 1);
    Image out(img.c, size_, size_);
    for (int64_t c = 0; c < img.c; ++c) {
      for (int64_t y = 0; y < size_; ++y) {
        for (int64_t x = 0; x < size_; ++x)
          out.at(c, y, x) = img.at(c, y0 + y, x0 + x) + rng.normal();
      }
    }
    return out;
  }
  std::string name() const override { return "random_crop"; }

 private:
  int64_t size_;
};

// Throws on the image whose first pixel is 1.0 (exactly one sample is marked so).
class ThrowOnMarked : public Transform {
 public:
  Image apply(const Image& img, AugRng&) const override {
    if (img.data[0] == 1.0f) throw Error("ThrowOnMarked: marked sample reached");
    return img;
  }
  std::string name() const override { return "throw_on_marked"; }
};

class Sleepy : public Transform {
 public:
  Image apply(const Image& img, AugRng&) const override {
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    return img;
  }
  std::string name() const override { return "sleepy"; }
};

// N samples of C x 6 x 6, pixels <= 200, labels i % 5.
Dataset synthetic(int64_t n, int64_t c = 2) {
  Dataset ds;
  ds.name = "synthetic";
  std::vector<uint8_t> px = random_bytes(static_cast<size_t>(n * c * 36), 11, 200);
  ds.images = from_vector(px, {n, c, 6, 6});
  std::vector<int64_t> labels(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    labels[i] = i % 5;
  ds.labels = from_vector(labels, {n});
  ds.num_classes = 5;
  return ds;
}

// Three views: identity (null), add-uniform (6x6), random crop (4x4).
ViewRecipes three_views() {
  return {"test",
          {nullptr, std::make_shared<AddUniform>(), std::make_shared<RandomCrop>(4)},
          {6, 6, 4}};
}

LoaderOptions opts(int workers, int64_t batch = 10, bool drop_last = false, uint64_t seed = 5) {
  LoaderOptions o;
  o.batch_size = batch;
  o.num_workers = workers;
  o.prefetch = 3;
  o.drop_last = drop_last;
  o.seed = seed;
  return o;
}

std::vector<Batch> whole_epoch(Loader& loader, int64_t epoch) {
  loader.start_epoch(epoch);
  std::vector<Batch> out;
  while (auto b = loader.next())
    out.push_back(std::move(*b));
  return out;
}

std::vector<float> floats(const Tensor& t) {
  return t.to_vector<float>();
}

// The batches of an epoch computed directly from the definition: order from epoch_order, view
// k of sample i = recipe k applied with AugRng(seed, epoch, i, k).
void expect_epoch_matches_definition(const std::vector<Batch>& got, const Dataset& ds,
                                     const ViewRecipes& r, const LoaderOptions& o, int64_t epoch) {
  Tensor order = epoch_order(ds.size(), o.seed, epoch, o.shuffle);
  const int64_t* ord = order.data_ptr<int64_t>();
  int64_t pos = 0;
  for (size_t b = 0; b < got.size(); ++b) {
    EXPECT_EQ(got[b].index, static_cast<int64_t>(b));
    EXPECT_EQ(got[b].epoch, epoch);
    for (int64_t row = 0; row < got[b].size(); ++row, ++pos) {
      const int64_t i = ord[pos];
      ASSERT_EQ(got[b].indices.data_ptr<int64_t>()[row], i);
      ASSERT_EQ(got[b].labels.data_ptr<int64_t>()[row], i % 5);
      for (size_t k = 0; k < r.views.size(); ++k) {
        AugRng rng(o.seed, epoch, i, k);
        Image want = r.views[k] ? r.views[k]->apply(ds.image(i), rng) : ds.image(i);
        ASSERT_EQ(batch_image(got[b].views[k], row).data, want.data) << b << " " << row << " " << k;
      }
    }
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
// AugRng and the epoch order
// ---------------------------------------------------------------------------------------------

TEST(AugRng, SameArgumentsSameNumbersOtherArgumentsOthers) {
  AugRng a(7, 1, 2, 3), b(7, 1, 2, 3);
  std::vector<float> first;
  for (int k = 0; k < 50; ++k) {
    first.push_back(a.uniform());
    ASSERT_EQ(first.back(), b.uniform());
  }
  // Changing any one of seed, epoch, sample, view changes the stream; swapping does too.
  for (auto rng : {AugRng(8, 1, 2, 3), AugRng(7, 2, 2, 3), AugRng(7, 1, 3, 3), AugRng(7, 1, 2, 4),
                   AugRng(7, 2, 1, 3), AugRng(7, 1, 3, 2)}) {
    int same = 0;
    for (int k = 0; k < 50; ++k)
      same += rng.uniform() == first[k];
    EXPECT_LT(same, 3);
  }
  // The stream is Philox at the documented counter: key = seed, 64-bit id split over the
  // stream word and the counter's upper half. Different (sample, view) ids give distinct blocks.
  std::set<float> firsts;
  for (uint64_t s = 0; s < 200; ++s) {
    for (uint64_t v = 0; v < 4; ++v)
      firsts.insert(AugRng(0, 0, s, v).uniform());
  }
  EXPECT_GT(firsts.size(), 795u);
}

TEST(AugRng, RangesAndMoments) {
  AugRng rng(3, 0, 0, 0);
  const int n = 40000;
  double sum = 0, sum_sq = 0, nsum = 0, nsum_sq = 0;
  int hits = 0;
  std::vector<int> counts(7, 0);
  for (int k = 0; k < n; ++k) {
    const float u = rng.uniform();
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    sum += u;
    sum_sq += u * u;
    const float r = rng.uniform(-2.0f, 3.0f);
    ASSERT_GE(r, -2.0f);
    ASSERT_LT(r, 3.0f);
    const int64_t i = rng.randint(-3, 4);
    ASSERT_GE(i, -3);
    ASSERT_LT(i, 4);
    ++counts[i + 3];
    hits += rng.bernoulli(0.3f);
    const double z = rng.normal();
    nsum += z;
    nsum_sq += z * z;
  }
  EXPECT_NEAR(sum / n, 0.5, 0.01);
  EXPECT_NEAR(sum_sq / n - 0.25, 1.0 / 12, 0.01);
  for (int c : counts)
    EXPECT_NEAR(c, n / 7.0, 0.06 * n / 7.0);
  EXPECT_NEAR(double(hits) / n, 0.3, 0.015);
  EXPECT_NEAR(nsum / n, 0.0, 0.03);
  EXPECT_NEAR(nsum_sq / n, 1.0, 0.04);
  EXPECT_THROW(rng.randint(4, 4), Error);
}

TEST(EpochOrder, PermutationFromSeedAndEpoch) {
  Tensor a = epoch_order(103, 9, 0, true);
  std::vector<int64_t> v = a.to_vector<int64_t>();
  std::vector<int64_t> sorted = v;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 103; ++i)
    ASSERT_EQ(sorted[i], i);
  EXPECT_EQ(epoch_order(103, 9, 0, true).to_vector<int64_t>(), v);
  EXPECT_NE(epoch_order(103, 9, 1, true).to_vector<int64_t>(), v);
  EXPECT_NE(epoch_order(103, 10, 0, true).to_vector<int64_t>(), v);
  // Epoch e is core's randperm from a Generator(seed) at offset e * n.
  Generator gen(9);
  gen.set_offset(2 * 103);
  EXPECT_EQ(epoch_order(103, 9, 2, true).to_vector<int64_t>(),
            randperm(103, &gen).to_vector<int64_t>());
  std::vector<int64_t> iota(103);
  std::iota(iota.begin(), iota.end(), 0);
  EXPECT_EQ(epoch_order(103, 9, 4, false).to_vector<int64_t>(), iota);
}

// ---------------------------------------------------------------------------------------------
// Batches
// ---------------------------------------------------------------------------------------------

TEST(Loader, BatchesFollowTheDefinition) {
  Dataset ds = synthetic(103);
  ViewRecipes r = three_views();
  LoaderOptions o = opts(2);
  Loader loader(ds, r, o);
  EXPECT_EQ(loader.batches_per_epoch(), 11);
  for (int64_t epoch : {0, 3}) {
    std::vector<Batch> batches = whole_epoch(loader, epoch);
    ASSERT_EQ(batches.size(), 11u);
    EXPECT_EQ(batches[0].views[0].shape(), (Shape{10, 2, 6, 6}));
    EXPECT_EQ(batches[0].views[1].shape(), (Shape{10, 2, 6, 6}));
    EXPECT_EQ(batches[0].views[2].shape(), (Shape{10, 2, 4, 4}));
    EXPECT_EQ(batches[0].views[0].dtype(), kFloat32);
    EXPECT_EQ(batches[10].size(), 3);  // 103 = 10 * 10 + 3
    expect_epoch_matches_definition(batches, ds, r, o, epoch);
    // Every sample exactly once.
    std::set<int64_t> seen;
    for (const Batch& b : batches) {
      for (int64_t i : b.indices.to_vector<int64_t>())
        seen.insert(i);
    }
    EXPECT_EQ(seen.size(), 103u);
  }
}

TEST(Loader, BitIdenticalForAnyNumberOfThreads) {
  Dataset ds = synthetic(97);
  std::vector<std::vector<Batch>> runs;
  for (int workers : {0, 1, 2, 4}) {
    Loader loader(ds, three_views(), opts(workers, 8, false, 21));
    runs.push_back(whole_epoch(loader, 2));
  }
  for (size_t run = 1; run < runs.size(); ++run) {
    ASSERT_EQ(runs[run].size(), runs[0].size());
    for (size_t b = 0; b < runs[0].size(); ++b) {
      for (size_t k = 0; k < 3; ++k) {
        ASSERT_EQ(floats(runs[run][b].views[k]), floats(runs[0][b].views[k])) << run << " " << b;
      }
      ASSERT_EQ(runs[run][b].indices.to_vector<int64_t>(), runs[0][b].indices.to_vector<int64_t>());
    }
  }
  // ... and the seed matters.
  Loader other(ds, three_views(), opts(2, 8, false, 22));
  EXPECT_NE(floats(whole_epoch(other, 2)[0].views[1]), floats(runs[0][0].views[1]));
}

TEST(Loader, DropLast) {
  Dataset ds = synthetic(103);
  Loader loader(ds, three_views(), opts(2, 10, true));
  EXPECT_EQ(loader.batches_per_epoch(), 10);
  std::vector<Batch> batches = whole_epoch(loader, 0);
  ASSERT_EQ(batches.size(), 10u);
  for (const Batch& b : batches)
    EXPECT_EQ(b.size(), 10);
  expect_epoch_matches_definition(batches, ds, three_views(), opts(2, 10, true), 0);
  EXPECT_EQ(loader.next(), std::nullopt);  // stays finished
}

TEST(Loader, RestartMidEpochAndEarlyStopFreeEverything) {
  Dataset ds = synthetic(200);
  std::mutex mu;
  std::vector<std::weak_ptr<Storage>> allocated;
  LoaderOptions o = opts(4, 4);
  o.prefetch = 2;
  o.allocate = [&](const Shape& shape, DType dtype) {
    Tensor t = empty(shape, dtype);
    std::lock_guard<std::mutex> lock(mu);
    allocated.push_back(t.impl()->storage);
    return t;
  };
  ViewRecipes r{"sleepy", {std::make_shared<Sleepy>()}, {6}};
  {
    Loader loader(ds, r, o);
    loader.start_epoch(0);
    ASSERT_TRUE(loader.next().has_value());
    loader.start_epoch(1);  // abandons epoch 0 mid-way
    std::optional<Batch> b = loader.next();
    ASSERT_TRUE(b.has_value());
    EXPECT_EQ(b->epoch, 1);
    EXPECT_EQ(b->indices.to_vector<int64_t>(),
              raw::narrow(epoch_order(200, o.seed, 1, true), 0, 0, 4).to_vector<int64_t>());
    ASSERT_TRUE(loader.next().has_value());
    // Leaving the scope with workers busy and batches queued: must not hang.
  }
  {
    Loader never_consumed(ds, r, o);
    never_consumed.start_epoch(0);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // let the queue fill
    never_consumed.stop();
    never_consumed.stop();  // twice is fine
    EXPECT_EQ(never_consumed.next(), std::nullopt);
  }
  std::lock_guard<std::mutex> lock(mu);
  EXPECT_GT(allocated.size(), 3u);
  for (const auto& w : allocated)
    EXPECT_TRUE(w.expired()) << "a batch tensor outlived the loader";
}

TEST(Loader, WorkerExceptionReachesTheConsumerInOrder) {
  Dataset ds = synthetic(50, 1);
  ds.images.data_ptr<uint8_t>()[37 * 36] = 255;  // mark sample 37: in batch 3 when unshuffled
  ViewRecipes r{
      "throws", {std::make_shared<AddUniform>(), std::make_shared<ThrowOnMarked>()}, {6, 6}};
  for (int workers : {0, 1, 2, 4}) {
    LoaderOptions o = opts(workers, 10);
    o.shuffle = false;
    Loader loader(ds, r, o);
    loader.start_epoch(0);
    for (int b = 0; b < 3; ++b)
      ASSERT_TRUE(loader.next().has_value()) << workers;
    expect_error([&] { loader.next(); }, {"ThrowOnMarked: marked sample reached"});
    expect_error([&] { loader.next(); }, {"ThrowOnMarked"});  // stays failed
    loader.start_epoch(1);                                    // and can start over
    ASSERT_TRUE(loader.next().has_value());
  }
}

TEST(Loader, ViewOfTheWrongSizeIsAnError) {
  Dataset ds = synthetic(20);
  ViewRecipes r{"bad", {std::make_shared<RandomCrop>(4)}, {5}};
  for (int workers : {0, 2}) {
    Loader loader(ds, r, opts(workers, 4));
    loader.start_epoch(0);
    expect_error([&] { loader.next(); },
                 {"view 0 of 'bad'", "random_crop", "[2, 4, 4]", "[2, 5, 5]"});
  }
}

TEST(Loader, BadOptionsAndRecipes) {
  Dataset ds = synthetic(20);
  auto add = std::make_shared<AddUniform>();
  expect_error([&] { Loader(ds, {"r", {add}, {6}}, opts(1, 0)); }, {"batch size"});
  LoaderOptions no_prefetch = opts(1);
  no_prefetch.prefetch = 0;
  expect_error([&] { Loader(ds, {"r", {add}, {6}}, no_prefetch); }, {"prefetch"});
  expect_error(
      [&] {
        Loader(ds, {"r", {add}, {6}}, opts(1, 21, true));
      },
      {"20 samples", "batch of 21"});
  expect_error([&] { Loader(ds, {"r", {add, add}, {6}}, opts(1)); }, {"2 views but 1 view sizes"});
  expect_error([&] { Loader(ds, {"r", {}, {}}, opts(1)); }, {"no views"});
  expect_error([&] { Loader(ds, {"r", {nullptr}, {4}}, opts(1)); }, {"identity view 0", "6x6"});
  Loader fine(ds, {"r", {add}, {6}}, opts(1));
  expect_error([&] { fine.next(); }, {"start_epoch"});
  LoaderOptions bad_alloc = opts(1);
  bad_alloc.allocate = [](const Shape&, DType dtype) { return empty({1}, dtype); };
  Loader short_buffers(ds, {"r", {add}, {6}}, bad_alloc);
  short_buffers.start_epoch(0);
  expect_error([&] { short_buffers.next(); }, {"batch allocator", "[10, 2, 6, 6]"});
  Dataset bad_label = ds;
  bad_label.labels = from_vector(std::vector<int64_t>(20, 5), {20});
  expect_error([&] { Loader(bad_label, {"r", {add}, {6}}, opts(1)); }, {"label 5 of sample 0"});
}

namespace {

// Stands in for the CUDA backend's pinned host allocator (which needs a GPU).
class FakePinnedAllocator : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override {
    ++allocations;
    return {std::malloc(nbytes ? nbytes : 1), [](void* p) { std::free(p); }};
  }
  std::atomic<int> allocations{0};  // the loader's worker threads allocate concurrently
};

}  // namespace

TEST(Loader, BatchesArePinnedWhenTheBackendOffersIt) {
  Dataset ds = synthetic(30);
  Allocator* previous = get_pinned_host_allocator();
  FakePinnedAllocator fake;
  set_pinned_host_allocator(&fake);
  LoaderOptions pinned = opts(2, 10), plain = opts(2, 10);
  plain.pin_memory = false;
  Loader pinned_loader(ds, three_views(), pinned), plain_loader(ds, three_views(), plain);
  std::vector<Batch> a = whole_epoch(pinned_loader, 1), b = whole_epoch(plain_loader, 1);
  set_pinned_host_allocator(previous);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_TRUE(a[i].labels.is_pinned());
    EXPECT_FALSE(b[i].labels.is_pinned());
    for (size_t k = 0; k < a[i].views.size(); ++k) {
      EXPECT_TRUE(a[i].views[k].is_pinned());
      EXPECT_FALSE(b[i].views[k].is_pinned());
      EXPECT_EQ(floats(a[i].views[k]), floats(b[i].views[k])) << "batch " << i << " view " << k;
    }
  }
  EXPECT_EQ(fake.allocations.load(), 3 * (3 + 2)) << "3 batches x (3 views + labels + indices)";
}
