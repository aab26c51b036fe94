// Training on the GPU (`selfsup train --device cuda`): the device flag's errors, and for every SSL
// method one training step on the GPU against the same step on the CPU: the same batch, the
// same initial weights, the same loss and gradients within float32 tolerance. The GPU tests skip
// where there is no GPU; the flag's errors are checked everywhere.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "autograd/ops.h"
#include "core/views.h"
#include "ssl/data/augment.h"
#include "ssl/data/dataset.h"
#include "ssl/data/loader.h"
#include "ssl/methods/method.h"
#include "ssl/train/trainer.h"
#include "tests/cuda_test_util.h"
#include "tests/ssl_test_util.h"

using namespace selfsup;

namespace {

std::string error_of_training(const ssl::TrainConfig& c) {
  try {
    ssl::train(c);
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

// 16 random 28x28 grey images in 4 classes: enough for one batch of 8 and DeepCluster's k = 4.
data::Dataset synthetic_dataset() {
  Generator gen(11);
  data::Dataset d;
  d.name = "synthetic/train";
  d.images = raw::to_dtype(mul(rand({16, 1, 28, 28}, kFloat32, &gen), 255.0), kUInt8);
  std::vector<int64_t> labels(16);
  for (int64_t i = 0; i < 16; ++i)
    labels[i] = i % 4;
  d.labels = from_vector<int64_t>(labels, {16});
  d.num_classes = 4;
  return d;
}

ssl::MethodOptions small_options(const std::string& method) {
  ssl::MethodOptions o;
  o.width = 0.5;
  o.proj_hidden = 32;
  o.proj_dim = 16;
  o.queue_size = 32;
  o.clusters = 4;
  o.image_size = 28;
  if (method == "mae") {
    o.model = "vit-tiny";
    o.width = 0.25;
  }
  return o;
}

// |a - b| over |b| for two same-shaped tensors (b's norm floored so a zero gradient compares
// absolutely).
double relative_difference(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = a.to_vector<double>(), y = b.to_vector<double>();
  double diff = 0, norm = 0;
  for (size_t i = 0; i < y.size(); ++i) {
    diff += (x[i] - y[i]) * (x[i] - y[i]);
    norm += y[i] * y[i];
  }
  return std::sqrt(diff) / std::max(std::sqrt(norm), 1e-6);
}

}  // namespace

TEST(TrainOnCuda, UnknownDeviceIsAClearError) {
  ssl::TrainConfig c;
  c.device = "tpu";
  c.out = test::temp_dir("device_tpu");
  EXPECT_NE(error_of_training(c).find("train: unknown device 'tpu' (cpu, cuda or auto)"),
            std::string::npos);
}

TEST(TrainOnCuda, WithoutAGpuTheCudaDeviceIsAClearError) {
  if (cuda::gpu_available()) GTEST_SKIP() << "a GPU is present, so --device cuda trains";
  ssl::TrainConfig c;
  c.device = "cuda";
  c.out = test::temp_dir("device_cuda");
  const std::string error = error_of_training(c);
  EXPECT_NE(error.find("train: --device cuda, but no GPU can be used: "), std::string::npos)
      << error;
}

class EveryMethodOnCuda : public ::testing::TestWithParam<std::string> {};

// One step on each device from the same weights and the same batch. Methods that draw random
// numbers in their step (masks, permutations) draw them from their own seeded generator, so both
// copies draw the same ones.
TEST_P(EveryMethodOnCuda, OneStepGivesTheCpuLossAndGradients) {
  SELFSUP_REQUIRE_GPU();
  const std::string name = GetParam();
  const data::Dataset dataset = synthetic_dataset();
  const ssl::MethodOptions options = small_options(name);
  auto on_cpu = ssl::make_method(name, options);
  auto on_gpu = ssl::make_method(name, options);
  on_gpu->to(Device::cuda());

  data::Loader loader(dataset,
                      data::make_recipes(on_cpu->augment_preset(), 1, 28, on_cpu->num_views()),
                      data::LoaderOptions{8, 0, 1, false, true, 0, false, nullptr});
  loader.start_epoch(0);
  const auto batch = loader.next();
  ASSERT_TRUE(batch.has_value());
  std::vector<Tensor> gpu_views;
  for (const Tensor& v : batch->views)
    gpu_views.push_back(raw::to_device(v, Device::cuda()));

  on_cpu->before_epoch({0, 1, &dataset, 8});
  on_gpu->before_epoch({0, 1, &dataset, 8});
  ssl::StepOutput want = on_cpu->step_indexed(batch->views, batch->indices);
  ssl::StepOutput got = on_gpu->step_indexed(gpu_views, batch->indices);
  const double want_loss = want.loss.item(), got_loss = got.loss.item();
  EXPECT_NEAR(got_loss, want_loss, 1e-3 * (1 + std::fabs(want_loss))) << name;

  want.loss.backward();
  got.loss.backward();
  const auto cpu_params = on_cpu->named_parameters(), gpu_params = on_gpu->named_parameters();
  ASSERT_EQ(cpu_params.size(), gpu_params.size());
  for (size_t i = 0; i < cpu_params.size(); ++i) {
    const Tensor& gc = cpu_params[i].second.grad();
    const Tensor& gg = gpu_params[i].second.grad();
    ASSERT_EQ(gc.defined(), gg.defined()) << name << " " << cpu_params[i].first;
    if (!gc.defined()) continue;
    EXPECT_EQ(gg.device(), Device::cuda()) << name << " " << cpu_params[i].first;
    EXPECT_LT(relative_difference(gg, gc), 1e-3) << name << " " << cpu_params[i].first;
  }
}

INSTANTIATE_TEST_SUITE_P(Methods, EveryMethodOnCuda, ::testing::ValuesIn(ssl::method_names()),
                         [](const auto& info) { return info.param; });
