// core/: shapes, views, copies, factories, printing and errors.
#include <gtest/gtest.h>

#include "core/random.h"
#include "core/storage.h"
#include "core/tensor.h"
#include "core/views.h"

using namespace selfsup;

TEST(Shape, BroadcastFollowsNumPy) {
  EXPECT_EQ(broadcast_shapes({3, 1, 5}, {4, 1}, "t"), (Shape{3, 4, 5}));
  EXPECT_EQ(broadcast_shapes({}, {2, 2}, "t"), (Shape{2, 2}));
  EXPECT_THROW(broadcast_shapes({3}, {4}, "add"), Error);
  try {
    broadcast_shapes({2, 3}, {4}, "add");
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("add: shapes [2, 3] and [4]"), std::string::npos);
  }
}

TEST(Tensor, FactoriesAndItem) {
  Tensor z = zeros({2, 3});
  EXPECT_EQ(z.shape(), (Shape{2, 3}));
  EXPECT_EQ(z.dtype(), kFloat32);
  EXPECT_TRUE(z.is_contiguous());
  EXPECT_EQ(full({1}, 2.5, kFloat64).item(), 2.5);
  Tensor a = arange(0, 5, 1.0, kInt64);
  EXPECT_EQ(a.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4}));
  EXPECT_THROW(z.item(), Error);
  EXPECT_THROW(zeros({-1}), Error);
}

TEST(Tensor, TransposeNarrowAndContiguousCopy) {
  Tensor a = from_vector<float>({0, 1, 2, 3, 4, 5}, {2, 3});
  Tensor t = raw::transpose(a, 0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 2}));
  EXPECT_FALSE(t.is_contiguous());
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
  Tensor c = raw::contiguous(t);
  EXPECT_TRUE(c.is_contiguous());
  EXPECT_FALSE(c.shares_storage_with(a));
  Tensor n = raw::narrow(a, 1, 1, 2);
  EXPECT_EQ(n.to_vector<float>(), (std::vector<float>{1, 2, 4, 5}));
  EXPECT_THROW(raw::narrow(a, 1, 2, 2), Error);
  Tensor s = raw::slice(a, 1, 0, 3, 2);
  EXPECT_EQ(s.to_vector<float>(), (std::vector<float>{0, 2, 3, 5}));
  EXPECT_EQ(raw::select(a, 0, 1).to_vector<float>(), (std::vector<float>{3, 4, 5}));
}

TEST(Tensor, ViewNeedsCompatibleStridesReshapeCopies) {
  Tensor a = arange(0, 24, 1.0);
  Tensor v = raw::view(a, {2, -1, 4});
  EXPECT_EQ(v.shape(), (Shape{2, 3, 4}));
  EXPECT_TRUE(v.shares_storage_with(a));
  Tensor p = raw::permute(v, {2, 0, 1});
  EXPECT_THROW(raw::view(p, {-1}), Error);
  Tensor r = raw::reshape(p, {-1});
  EXPECT_EQ(r.numel(), 24);
  EXPECT_EQ(r.to_vector<float>()[1], 4.0f);  // p[0][0][1] = v[0][1][0] = 4
  // Splitting a dim of a transposed tensor is a legal view.
  Tensor t = raw::transpose(raw::view(a, {4, 6}), 0, 1);  // [6, 4]
  Tensor tv = raw::view(t, {2, 3, 4});
  EXPECT_TRUE(tv.shares_storage_with(a));
  EXPECT_EQ(tv.to_vector<float>(), raw::contiguous(t).to_vector<float>());
}

TEST(Tensor, ExpandSqueezeUnsqueeze) {
  Tensor a = from_vector<float>({1, 2, 3}, {3, 1});
  Tensor e = raw::expand(a, {2, 3, 4});
  EXPECT_EQ(e.strides(), (Shape{0, 1, 0}));
  EXPECT_EQ(e.to_vector<float>()[5], 2.0f);
  EXPECT_THROW(raw::expand(a, {2, 2}), Error);
  EXPECT_EQ(raw::squeeze(a).shape(), (Shape{3}));
  EXPECT_EQ(raw::unsqueeze(a, 0).shape(), (Shape{1, 3, 1}));
  EXPECT_EQ(raw::unsqueeze(a, -1).shape(), (Shape{3, 1, 1}));
}

TEST(Tensor, CopyBroadcastsAndConverts) {
  Tensor dst = zeros({2, 3}, kFloat64);
  raw::copy_(dst, from_vector<int64_t>({7, 8, 9}, {3}));
  EXPECT_EQ(dst.to_vector<double>(), (std::vector<double>{7, 8, 9, 7, 8, 9}));
  uint64_t v = dst.version();
  raw::copy_(dst, scalar_tensor(1.0));
  EXPECT_EQ(dst.version(), v + 1);
  EXPECT_THROW(raw::copy_(dst, zeros({4})), Error);
}

TEST(Random, PhiloxIsCounterBasedAndSeeded) {
  Generator g1(123), g2(123), g3(124);
  Tensor a = rand({1000}, kFloat32, &g1), b = rand({1000}, kFloat32, &g2);
  Tensor c = rand({1000}, kFloat32, &g3);
  EXPECT_EQ(a.to_vector<float>(), b.to_vector<float>());
  EXPECT_NE(a.to_vector<float>(), c.to_vector<float>());
  // The second draw continues the stream: element 0 of it is element 1000 of one long draw.
  Generator g4(123);
  Tensor longer = rand({2000}, kFloat32, &g4);
  Tensor second = rand({1000}, kFloat32, &g1);
  EXPECT_EQ(second.to_vector<float>()[0], longer.to_vector<float>()[1000]);
  auto va = a.to_vector<float>();
  double mean = 0;
  for (float x : va) {
    EXPECT_GE(x, 0.0f);
    EXPECT_LT(x, 1.0f);
    mean += x / va.size();
  }
  EXPECT_NEAR(mean, 0.5, 0.05);
  Tensor n = randn({20000}, kFloat64, &g3);
  auto vn = n.to_vector<double>();
  double m = 0, s = 0;
  for (double x : vn)
    m += x / vn.size();
  for (double x : vn)
    s += (x - m) * (x - m) / vn.size();
  EXPECT_NEAR(m, 0.0, 0.03);
  EXPECT_NEAR(s, 1.0, 0.05);
}

TEST(Random, PhiloxKnownAnswer) {
  // Random123's published known-answer vector for philox4x32-10 with counter = key = 0.
  PhiloxOut r = philox4x32(0, 0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(Random, RandpermIsAPermutation) {
  Generator g(7);
  auto p = randperm(100, &g).to_vector<int64_t>();
  std::vector<int64_t> sorted = p;
  std::sort(sorted.begin(), sorted.end());
  for (int64_t i = 0; i < 100; ++i)
    EXPECT_EQ(sorted[i], i);
}

TEST(Tensor, PrintsShapeAndDtype) {
  Tensor a = from_vector<float>({1, 2, 3, 4}, {2, 2});
  std::string s = a.str();
  EXPECT_NE(s.find("[[1, 2],"), std::string::npos) << s;
  EXPECT_NE(s.find("shape=[2, 2], dtype=float32"), std::string::npos) << s;
}

TEST(Tensor, DataPtrChecksDtype) {
  Tensor a = zeros({2});
  EXPECT_THROW(a.data_ptr<double>(), Error);
  EXPECT_THROW(Tensor().shape(), Error);
  EXPECT_THROW(zeros({2}, kInt64).requires_grad_(), Error);
}

// ---- pinned host memory plumbing (the CUDA backend registers the real allocator) ----

namespace {

// Stands in for the CUDA backend's pinned allocator: counts what it hands out and gets back.
class CountingHostAllocator : public Allocator {
 public:
  DataPtr allocate(size_t nbytes) override {
    ++allocations;
    last_nbytes = nbytes;
    return {std::malloc(nbytes ? nbytes : 1), [this](void* p) {
              ++frees;
              std::free(p);
            }};
  }
  int allocations = 0, frees = 0;
  size_t last_nbytes = 0;
};

}  // namespace

TEST(PinnedMemory, WithoutABackendEmptyPinnedIsOrdinaryHostMemory) {
  if (get_pinned_host_allocator()) GTEST_SKIP() << "a pinned allocator is registered here";
  Tensor t = empty_pinned({5, 3}, kFloat64);
  EXPECT_FALSE(t.is_pinned());
  EXPECT_EQ(t.shape(), (Shape{5, 3}));
  EXPECT_EQ(t.dtype(), kFloat64);
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_FALSE(empty({4}).is_pinned());
}

TEST(PinnedMemory, EmptyPinnedUsesTheRegisteredAllocator) {
  Allocator* previous = get_pinned_host_allocator();
  CountingHostAllocator counting;
  set_pinned_host_allocator(&counting);
  {
    Tensor t = empty_pinned({7, 11}, kFloat32);
    EXPECT_TRUE(t.is_pinned());
    EXPECT_TRUE(t.device().is_cpu());
    EXPECT_EQ(counting.allocations, 1);
    EXPECT_EQ(counting.last_nbytes, 7u * 11u * 4u);
    Tensor view = raw::narrow(t, 0, 2, 3);  // a view shares the pinned storage
    EXPECT_TRUE(view.is_pinned());
    EXPECT_FALSE(raw::clone(t).is_pinned());  // a copy is ordinary memory
    EXPECT_EQ(counting.frees, 0);
  }
  EXPECT_EQ(counting.frees, 1);
  set_pinned_host_allocator(previous);
  EXPECT_THROW(empty_pinned({2, -1}), Error);
}

// The CPU allocator keeps freed large blocks and hands them back for the next request of the
// same rounded size (no fresh pages to fault in); small blocks are not cached; emptying the
// cache returns its blocks.
TEST(CpuAllocator, ReusesFreedLargeBlocksAndCanBeEmptied) {
  cpu_empty_cache();
  const CpuAllocatorStats before = cpu_allocator_stats();
  void* first = nullptr;
  {
    Tensor big = empty({300000});  // 1.2 MB of float32: cached when freed
    first = big.raw_data_ptr();
    EXPECT_EQ(cpu_allocator_stats().system_allocs, before.system_allocs + 1);
  }
  EXPECT_GE(cpu_allocator_stats().bytes_cached, size_t{1200000});
  {
    Tensor again = empty({299000});  // rounds to the same 2 MiB block
    EXPECT_EQ(again.raw_data_ptr(), first);
    EXPECT_EQ(cpu_allocator_stats().system_allocs, before.system_allocs + 1);  // no new block
    EXPECT_EQ(cpu_allocator_stats().bytes_cached, before.bytes_cached);
  }
  {
    Tensor small = empty({100});  // 400 bytes: straight from the C library, never cached
    EXPECT_EQ(cpu_allocator_stats().bytes_in_use, before.bytes_in_use);
  }
  cpu_empty_cache();
  EXPECT_EQ(cpu_allocator_stats().bytes_cached, size_t{0});
}
