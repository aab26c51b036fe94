// kernels/cpu/index: index_select, index_add_, gather, scatter_add_ and cat against naive
// multi-index loops, for every dtype and dim, with repeated indices, contiguous and strided
// tensors, poisoned outputs, and bounds / shape / dtype errors.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>

#include "core/random.h"
#include "core/views.h"
#include "kernels/cpu/index.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using selfsup::test::error_of;

namespace {

// Values 0..199 for integer types, so a uint8 poison of 233 can never be a real value.
Tensor random_values(const Shape& s, DType dt, Generator& gen) {
  return is_floating(dt) ? randn(s, dt, &gen) : randint(0, 200, s, dt, &gen);
}

Tensor poisoned(const Shape& s, DType dt) {
  const double poison = is_floating(dt) ? std::numeric_limits<double>::quiet_NaN()
                        : dt == kUInt8  ? 233.0
                                        : -12345.0;
  return full(s, poison, dt);
}

// Element-wise equality on values read as double: NaN != NaN, so a poisoned element fails.
void expect_equal(const Tensor& got, const std::vector<double>& want, const std::string& what) {
  const auto g = got.to_vector<double>();
  ASSERT_EQ(g.size(), want.size()) << what;
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_EQ(g[i], want[i]) << what << " at " << i;
}

// Integer types wrap (uint8) where the kernel's arithmetic would; floats sum in double and are
// compared exactly only when the sums are exact, so adds use small integer-valued floats.
double wrap(double v, DType dt) {
  return dt == kUInt8 ? std::fmod(v + 256.0 * 64, 256.0) : v;
}

Shape unravel(int64_t flat, const Shape& shape) {
  Shape idx(shape.size());
  for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
    idx[d] = flat % shape[d];
    flat /= shape[d];
  }
  return idx;
}

int64_t ravel(const Shape& idx, const Shape& shape) {
  int64_t flat = 0;
  for (size_t d = 0; d < shape.size(); ++d)
    flat = flat * shape[d] + idx[d];
  return flat;
}

// A non-contiguous copy of t: the same values behind a permuted layout (or a stride of 2).
Tensor strided_copy(const Tensor& t) {
  if (t.dim() == 1) {  // every other element of a [n, 2] buffer
    const Tensor wide = raw::contiguous(raw::expand(raw::unsqueeze(t, 1), {t.numel(), 2}));
    return raw::select(wide, 1, 0);
  }
  Shape perm(t.dim());
  for (int64_t d = 0; d < t.dim(); ++d)
    perm[d] = (d + 1) % t.dim();
  Shape inv(t.dim());
  for (int64_t d = 0; d < t.dim(); ++d)
    inv[perm[d]] = d;
  return raw::permute(raw::contiguous(raw::permute(t, perm)), inv);
}

// A poisoned output of `shape` with a permuted (non-contiguous) layout.
Tensor poisoned_strided(const Shape& shape, DType dt) {
  return strided_copy(poisoned(shape, dt));
}

const std::vector<DType> kAllDtypes{kFloat32, kFloat64, kInt64, kUInt8};

}  // namespace

TEST(IndexSelect, EveryDimDtypeAndLayout) {
  Generator gen(1);
  const Shape shape{4, 6, 5};
  for (DType dt : kAllDtypes)
    for (int64_t dim : {0, 1, 2, -1}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      const Tensor x = random_values(shape, dt, gen);
      const Tensor index = randint(0, shape[d], {7}, kInt64, &gen);  // repeats likely
      Shape out_shape = shape;
      out_shape[d] = 7;
      const auto xv = x.to_vector<double>();
      const auto iv = index.to_vector<int64_t>();
      std::vector<double> want(shape_numel(out_shape));
      for (int64_t f = 0; f < shape_numel(out_shape); ++f) {
        Shape p = unravel(f, out_shape);
        p[d] = iv[p[d]];
        want[f] = xv[ravel(p, shape)];
      }
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(dim);
      Tensor out = poisoned(out_shape, dt);
      cpu::index_select(x, dim, index, out);
      expect_equal(out, want, what);
      Tensor out_s = poisoned_strided(out_shape, dt);
      cpu::index_select(strided_copy(x), dim, strided_copy(index), out_s);
      expect_equal(out_s, want, what + " strided");
    }
}

TEST(IndexSelect, LargeRowsThreaded) {
  Generator gen(2);
  Tensor x = randn({1000, 67}, kFloat32, &gen);
  Tensor index = randint(0, 1000, {731}, kInt64, &gen);
  Tensor out = poisoned({731, 67}, kFloat32);
  cpu::index_select(x, 0, index, out);
  const auto xv = x.to_vector<double>(), ov = out.to_vector<double>();
  const auto iv = index.to_vector<int64_t>();
  for (int64_t i = 0; i < 731; ++i)
    for (int64_t j = 0; j < 67; ++j)
      ASSERT_EQ(ov[i * 67 + j], xv[iv[i] * 67 + j]);
}

TEST(IndexAdd, RepeatedIndicesAccumulate) {
  Generator gen(3);
  const Shape shape{5, 4, 6};
  for (DType dt : kAllDtypes)
    for (int64_t dim : {0, 1, 2}) {
      const int64_t n = 9;
      Shape src_shape = shape;
      src_shape[dim] = n;
      // Integer-valued floats so the float sums are exact in any order.
      const Tensor out0 = randint(0, 200, shape, dt, &gen);
      const Tensor src = randint(0, 200, src_shape, dt, &gen);
      const Tensor index = randint(0, shape[dim], {n}, kInt64, &gen);
      auto want = out0.to_vector<double>();
      const auto sv = src.to_vector<double>();
      const auto iv = index.to_vector<int64_t>();
      for (int64_t f = 0; f < shape_numel(src_shape); ++f) {
        Shape p = unravel(f, src_shape);
        p[dim] = iv[p[dim]];
        double& w = want[ravel(p, shape)];
        w = wrap(w + sv[f], dt);
      }
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(dim);
      Tensor out = raw::clone(out0);
      const uint64_t v0 = out.version();
      cpu::index_add_(out, dim, index, src);
      expect_equal(out, want, what);
      EXPECT_GT(out.version(), v0) << what;
      Tensor out_s = strided_copy(out0);
      cpu::index_add_(out_s, dim, strided_copy(index), strided_copy(src));
      expect_equal(out_s, want, what + " strided");
    }
}

TEST(Gather, EveryDimWithSmallerIndex) {
  Generator gen(4);
  const Shape shape{5, 7, 4};
  for (DType dt : kAllDtypes)
    for (int64_t dim : {0, 1, 2, -1}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      Shape index_shape{3, 6, 2};  // smaller than x along the other dims
      index_shape[d] = 9;          // any length along dim
      const Tensor x = random_values(shape, dt, gen);
      const Tensor index = randint(0, shape[d], index_shape, kInt64, &gen);
      const auto xv = x.to_vector<double>();
      const auto iv = index.to_vector<int64_t>();
      std::vector<double> want(shape_numel(index_shape));
      for (int64_t f = 0; f < shape_numel(index_shape); ++f) {
        Shape p = unravel(f, index_shape);
        p[d] = iv[f];
        want[f] = xv[ravel(p, shape)];
      }
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(dim);
      Tensor out = poisoned(index_shape, dt);
      cpu::gather(x, dim, index, out);
      expect_equal(out, want, what);
      Tensor out_s = poisoned_strided(index_shape, dt);
      cpu::gather(strided_copy(x), dim, strided_copy(index), out_s);
      expect_equal(out_s, want, what + " strided");
    }
}

TEST(ScatterAdd, EveryDimWithRepeats) {
  Generator gen(5);
  const Shape shape{5, 7, 4};
  for (DType dt : kAllDtypes)
    for (int64_t dim : {0, 1, 2}) {
      Shape index_shape{4, 5, 3};
      index_shape[dim] = 11;  // more entries than slots: repeats guaranteed
      const Tensor out0 = randint(0, 200, shape, dt, &gen);
      const Tensor src = randint(0, 200, index_shape, dt, &gen);
      const Tensor index = randint(0, shape[dim], index_shape, kInt64, &gen);
      auto want = out0.to_vector<double>();
      const auto sv = src.to_vector<double>();
      const auto iv = index.to_vector<int64_t>();
      for (int64_t f = 0; f < shape_numel(index_shape); ++f) {
        Shape p = unravel(f, index_shape);
        p[dim] = iv[f];
        double& w = want[ravel(p, shape)];
        w = wrap(w + sv[f], dt);
      }
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(dim);
      Tensor out = raw::clone(out0);
      const uint64_t v0 = out.version();
      cpu::scatter_add_(out, dim, index, src);
      expect_equal(out, want, what);
      EXPECT_GT(out.version(), v0) << what;
      Tensor out_s = strided_copy(out0);
      cpu::scatter_add_(out_s, dim, strided_copy(index), strided_copy(src));
      expect_equal(out_s, want, what + " strided");
    }
}

TEST(Cat, EveryDimDtypeAndLayout) {
  Generator gen(6);
  for (DType dt : kAllDtypes)
    for (int64_t dim : {0, 1, 2, -1}) {
      const int64_t d = dim < 0 ? dim + 3 : dim;
      const Shape base{3, 4, 5};
      std::vector<Tensor> xs;
      Shape out_shape = base;
      out_shape[d] = 0;
      for (int64_t len : {2, 0, 3, 1}) {  // an empty input in the middle
        Shape s = base;
        s[d] = len;
        xs.push_back(random_values(s, dt, gen));
        out_shape[d] += len;
      }
      std::vector<double> want(shape_numel(out_shape));
      for (int64_t f = 0; f < shape_numel(out_shape); ++f) {
        Shape p = unravel(f, out_shape);
        for (const Tensor& x : xs) {
          if (p[d] < x.size(d)) {
            want[f] = x.to_vector<double>()[ravel(p, x.shape())];
            break;
          }
          p[d] -= x.size(d);
        }
      }
      const std::string what = std::string(dtype_name(dt)) + " dim " + std::to_string(dim);
      Tensor out = poisoned(out_shape, dt);
      cpu::cat(xs, dim, out);
      expect_equal(out, want, what);
      std::vector<Tensor> mixed = xs;
      mixed[2] = strided_copy(xs[2]);
      Tensor out_s = poisoned_strided(out_shape, dt);
      cpu::cat(mixed, dim, out_s);
      expect_equal(out_s, want, what + " strided");
    }
}

TEST(Cat, LargeContiguousThreaded) {
  Generator gen(7);
  Tensor a = randn({150, 130}, kFloat64, &gen), b = randn({150, 171}, kFloat64, &gen);
  Tensor out = poisoned({150, 301}, kFloat64);
  cpu::cat({a, b}, 1, out);
  const auto av = a.to_vector<double>(), bv = b.to_vector<double>(), ov = out.to_vector<double>();
  for (int64_t i = 0; i < 150; ++i) {
    for (int64_t j = 0; j < 130; ++j)
      ASSERT_EQ(ov[i * 301 + j], av[i * 130 + j]);
    for (int64_t j = 0; j < 171; ++j)
      ASSERT_EQ(ov[i * 301 + 130 + j], bv[i * 171 + j]);
  }
}

TEST(Index, OutOfRangeIndicesNameOpValueAndSize) {
  Tensor x = zeros({4, 5}), out = zeros({4, 2});
  std::string msg = error_of([&] {
    cpu::index_select(x, 1, from_vector<int64_t>({1, 5}, {2}), out);
  });
  EXPECT_NE(msg.find("index_select: index 5 is out of range for dim 1 with size 5"),
            std::string::npos)
      << msg;
  msg = error_of([&] { cpu::index_select(x, 1, from_vector<int64_t>({-1, 0}, {2}), out); });
  EXPECT_NE(msg.find("index_select: index -1 is out of range"), std::string::npos) << msg;
  // index_add_ checks every index before writing: out stays as it was.
  Tensor acc = ones({4, 5});
  msg = error_of([&] { cpu::index_add_(acc, 0, from_vector<int64_t>({0, 7}, {2}), ones({2, 5})); });
  EXPECT_NE(msg.find("index_add_: index 7 is out of range for dim 0 with size 4"),
            std::string::npos)
      << msg;
  EXPECT_EQ(acc.to_vector<double>(), std::vector<double>(20, 1.0));
  Tensor gi = from_vector<int64_t>({0, 1, 2, 3, 4, 6, 0, 0}, {4, 2});
  msg = error_of([&] { cpu::gather(x, 1, gi, out); });
  EXPECT_NE(msg.find("gather: index 6 is out of range for dim 1 with size 5"), std::string::npos)
      << msg;
  msg = error_of([&] { cpu::scatter_add_(acc, 1, gi, ones({4, 2})); });
  EXPECT_NE(msg.find("scatter_add_: index 6 is out of range for dim 1 with size 5"),
            std::string::npos)
      << msg;
  EXPECT_EQ(acc.to_vector<double>(), std::vector<double>(20, 1.0));
}

// An expanded output (stride 0 along a dim longer than 1) would take several results in one
// place: every indexing op refuses it, naming the dim.
TEST(Index, ExpandedOutputsAreRefused) {
  const Tensor x = ones({4, 5});
  Tensor rows = raw::expand(zeros({1, 5}), {4, 5});  // 4 rows, one memory row
  const std::string stride0 = "out of shape [4, 5] has stride 0 along dim 0";
  EXPECT_NE(error_of([&] {
              cpu::index_select(x, 0, from_vector<int64_t>({0, 1, 2, 3}, {4}), rows);
            }).find("index_select: " + stride0),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::gather(x, 1, zeros({4, 5}, kInt64), rows);
            }).find("gather: " + stride0),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::scatter_add_(rows, 1, zeros({4, 5}, kInt64), x);
            }).find("scatter_add_: " + stride0),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::index_add_(rows, 1, zeros({5}, kInt64), x);
            }).find("index_add_: " + stride0),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cpu::cat({ones({2, 5}), ones({2, 5})}, 0, rows);
            }).find("cat: " + stride0),
            std::string::npos);
}

TEST(Index, ShapeAndDtypeErrors) {
  Tensor x = zeros({4, 5});
  Tensor out = zeros({4, 3});
  std::string msg = error_of([&] {
    cpu::index_select(x, 1, from_vector<int64_t>({1, 2}, {2}), out);
  });
  EXPECT_NE(msg.find("index_select: out has shape [4, 3], expected [4, 2]"), std::string::npos)
      << msg;
  Tensor out2 = zeros({4, 2});
  msg = error_of([&] { cpu::index_select(x, 1, from_vector<float>({1, 2}, {2}), out2); });
  EXPECT_NE(msg.find("index_select: index must be int64, got float32"), std::string::npos) << msg;
  msg = error_of([&] { cpu::index_select(x, 2, zeros({2}, kInt64), out2); });
  EXPECT_NE(msg.find("index_select: dim 2 is out of range"), std::string::npos) << msg;
  Tensor out64 = zeros({4, 2}, kFloat64);
  msg = error_of([&] { cpu::index_select(x, 1, zeros({2}, kInt64), out64); });
  EXPECT_NE(msg.find("index_select: out is float64 but x is float32"), std::string::npos) << msg;
  msg = error_of([&] { cpu::gather(x, 1, zeros({5, 2}, kInt64), out2); });
  EXPECT_NE(msg.find("gather: index [5, 2] is larger than x [4, 5] along dim 0"), std::string::npos)
      << msg;
  msg = error_of([&] { cpu::scatter_add_(x, 1, zeros({4, 2}, kInt64), ones({4, 3})); });
  EXPECT_NE(msg.find("scatter_add_: src has shape [4, 3], expected the index shape [4, 2]"),
            std::string::npos)
      << msg;
  msg = error_of([&] { cpu::index_add_(x, 0, zeros({3}, kInt64), ones({2, 5})); });
  EXPECT_NE(msg.find("index_add_: src has shape [2, 5], expected [3, 5]"), std::string::npos)
      << msg;
  Tensor cat_out = zeros({4, 9});
  msg = error_of([&] { cpu::cat({zeros({4, 5}), zeros({3, 4})}, 1, cat_out); });
  EXPECT_NE(msg.find("cat: tensor 1 has shape [3, 4], which does not match out [4, 9]"),
            std::string::npos)
      << msg;
  msg = error_of([&] { cpu::cat({zeros({4, 5}), zeros({4, 3})}, 1, cat_out); });
  EXPECT_NE(msg.find("cat: the inputs add up to 8 along dim 1 but out [4, 9] has 9"),
            std::string::npos)
      << msg;
  msg = error_of([&] { cpu::cat({zeros({4, 5}), zeros({4, 4}, kInt64)}, 1, cat_out); });
  EXPECT_NE(msg.find("cat: tensor 1 is int64 but out is float32"), std::string::npos) << msg;
  msg = error_of([&] { cpu::cat({}, 0, cat_out); });
  EXPECT_NE(msg.find("cat: no tensors to join"), std::string::npos) << msg;
}
