// nn::IntBufferMirror: the host copy of a small int64 buffer (BatchNorm's count, a queue's ring
// pointer) must follow the buffer through every way it can change: writes through the mirror,
// writes from outside (copy_, as load_state_dict does), a new storage (as Module::to makes).
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/views.h"
#include "kernels/cuda/runtime.h"
#include "nn/buffer_mirror.h"
#include "nn/layers.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using test::expect_error;

namespace {

using Values = std::vector<int64_t>;

// The mirror's protocol on one device: reads, own writes, writes from outside, a new storage.
void check_mirror_follows_buffer(Device device) {
  Tensor buffer = raw::to_device(from_vector<int64_t>({3, 7}, {2}), device);
  nn::IntBufferMirror mirror;
  EXPECT_EQ(mirror.read(buffer), (Values{3, 7}));

  const uint64_t before = buffer.version();
  mirror.write(buffer, {4, 9});
  EXPECT_GT(buffer.version(), before);  // readers of the buffer see it changed
  EXPECT_EQ(buffer.to_vector<int64_t>(), (Values{4, 9}));
  EXPECT_EQ(mirror.read(buffer), (Values{4, 9}));

  // Another writer, as load_state_dict's copy_.
  buffer.copy_(raw::to_device(from_vector<int64_t>({40, 41}, {2}), device));
  EXPECT_EQ(mirror.read(buffer), (Values{40, 41}));

  // Another storage at the same version count, as Module::to rebinds a buffer.
  Tensor other = raw::to_device(from_vector<int64_t>({5, 6}, {2}), device);
  while (other.version() < buffer.version())
    other.bump_version();
  ASSERT_EQ(other.version(), buffer.version());
  EXPECT_EQ(mirror.read(other), (Values{5, 6}));

  Tensor scalar = raw::to_device(full({}, 12.0, kInt64), device);
  mirror.write(scalar, {13});
  EXPECT_EQ(scalar.to_vector<int64_t>(), (Values{13}));
  EXPECT_EQ(mirror.read(scalar), (Values{13}));
}

}  // namespace

TEST(IntBufferMirror, FollowsTheBufferOnTheCpu) {
  check_mirror_follows_buffer(kCPU);
}

TEST(IntBufferMirror, FollowsTheBufferOnCuda) {
  SELFSUP_REQUIRE_GPU();
  check_mirror_follows_buffer(Device::cuda());
}

TEST(IntBufferMirror, RefusesOtherBuffersByName) {
  nn::IntBufferMirror mirror;
  Tensor floats = zeros({2});
  expect_error([&] { mirror.read(floats); }, {"IntBufferMirror::read", "int64", "float32 [2]"});
  Tensor matrix = zeros({2, 2}, kInt64);
  expect_error(
      [&] {
        mirror.write(matrix, {1, 2, 3, 4});
      },
      {"IntBufferMirror::write", "0 or 1 dimensions", "int64 [2, 2]"});
  Tensor pair = zeros({2}, kInt64);
  expect_error([&] { mirror.write(pair, {1}); }, {"IntBufferMirror::write", "1 values", "[2]"});
}

// BatchNorm keeps its count on the host: a count loaded from a checkpoint, or a module moved to
// another tensor, must still continue from the buffer's value.
TEST(IntBufferMirror, BatchNormCountContinuesAfterALoadAndAMove) {
  nn::BatchNorm1d bn(nn::BatchNormOptions(2));
  Tensor x = from_vector<float>({1, 10, 3, 20}, {2, 2});
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 1);

  nn::NamedTensors state = bn.state_dict();
  for (auto& [name, t] : state)
    if (name == "num_batches_tracked") t = full({}, 41.0, kInt64);
  bn.load_state_dict(state);
  bn.forward(x);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 42);

  bn.to(kFloat64);  // rebinds the float buffers; the count must survive whatever it does
  bn.forward(raw::to_dtype(x, kFloat64));
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 43);
}

TEST(IntBufferMirror, BatchNormCountOnCuda) {
  SELFSUP_REQUIRE_GPU();
  const Device gpu = Device::cuda();
  nn::BatchNorm1d bn(nn::BatchNormOptions(2).momentum(std::nullopt));
  bn.to(gpu);
  Tensor a = raw::to_device(from_vector<float>({1, 10, 3, 20}, {2, 2}), gpu);
  Tensor b = raw::to_device(from_vector<float>({5, 0, 7, 0}, {2, 2}), gpu);
  bn.forward(a);
  bn.forward(b);
  EXPECT_EQ(bn.num_batches_tracked.item<int64_t>(), 2);
  // The cumulative average: the second batch's factor 1 / 2 came from the host's count.
  test::expect_close(bn.running_mean, {4, 7.5}, 1e-6, "running_mean");
}
