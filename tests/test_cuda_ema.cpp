// Multi-tensor updates on the GPU (kernels/cuda/ema.h): EMA (both versions) against
// cpu::ema_update, and the SGD / AdamW / LARS steps against nn/optim.h's CPU optimizers, over a
// list of awkward shapes: a tensor spanning two chunks, a misaligned one (scalar path), a
// single element. Without a GPU the device tests skip; the argument checks still run.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>

#include "core/random.h"
#include "core/tensor.h"
#include "core/views.h"
#include "kernels/cpu/ema.h"
#include "kernels/cuda/ema.h"
#include "nn/optim.h"
#include "tests/cuda_test_util.h"
#include "tests/tensor_test_util.h"

using namespace selfsup;
using namespace selfsup::test;

TEST(CudaEmaHost, DefaultIsTheMultiTensorVersion) {
  EXPECT_EQ(cuda::kEmaDefault, cuda::kEmaVersions);
}

#if SELFSUP_WITH_CUDA

// These throw before any CUDA call, so they run without a GPU.
TEST(CudaEmaHost, BadArgumentsAreErrorsNamingTheOp) {
  std::vector<Tensor> two{zeros({3}), zeros({4, 5})}, one{zeros({3})};
  std::vector<Tensor> mismatched{zeros({3}), zeros({5, 4})};
  EXPECT_NE(error_of([&] { cuda::ema_update(two, one, 0.99); }).find("2 tensors but 1 sources"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::ema_update(two, mismatched, 0.99);
            }).find("tensor 1: sources shape [5, 4] and shape [4, 5] differ"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::ema_update(two, two, 0.99);
            }).find("must be contiguous float32 on the CUDA device"),
            std::string::npos);
  EXPECT_NE(error_of([&] { cuda::ema_update(two, two, 0.99, 3); }).find("unknown version 3"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cuda::adamw_step(two, two, two, two, {.step = 0});
            }).find("step must be >= 1"),
            std::string::npos);
}

namespace {

// The shapes every test updates: 70003 elements span two 65536-element chunks.
const std::vector<Shape> kShapes = {{67}, {1}, {129, 257}, {3, 5, 7}, {70003}, {64, 33}};

std::vector<Tensor> random_list(Generator& gen) {
  std::vector<Tensor> out;
  for (const Shape& s : kShapes)
    out.push_back(randn(s, kFloat32, &gen));
  return out;
}

// Device copies; tensor 3 is placed one float past an aligned start (a narrowed view of a
// larger buffer, still contiguous), so its chunk takes the scalar path.
std::vector<Tensor> to_device(const std::vector<Tensor>& list) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < list.size(); ++i) {
    if (i != 3) {
      out.push_back(raw::to_device(list[i], Device::cuda()));
      continue;
    }
    Tensor flat = empty({list[i].numel() + 1});
    float* p = flat.data_ptr<float>();
    p[0] = NAN;
    const std::vector<float> v = list[i].to_vector<float>();
    std::copy(v.begin(), v.end(), p + 1);
    Tensor dev = raw::to_device(flat, Device::cuda());
    out.push_back(raw::view(raw::narrow(dev, 0, 1, list[i].numel()), list[i].shape()));
  }
  return out;
}

std::vector<Tensor> zeros_on_device() {
  std::vector<Tensor> out;
  for (const Shape& s : kShapes)
    out.push_back(raw::to_device(zeros(s), Device::cuda()));
  return out;
}

void expect_lists_near(const std::vector<Tensor>& device, const std::vector<Tensor>& cpu,
                       double tol) {
  for (size_t i = 0; i < cpu.size(); ++i) {
    const std::vector<float> got =
        raw::to_device(raw::contiguous(device[i]), kCPU).to_vector<float>();
    const std::vector<float> want = cpu[i].to_vector<float>();
    ASSERT_EQ(got.size(), want.size());
    for (size_t j = 0; j < want.size(); ++j)
      ASSERT_NEAR(got[j], want[j], tol * (1 + std::abs(want[j])))
          << "tensor " << i << " " << shape_str(kShapes[i]) << " element " << j;
  }
}

std::vector<Tensor> clones(const std::vector<Tensor>& list) {
  std::vector<Tensor> out;
  for (const Tensor& t : list)
    out.push_back(raw::clone(t));
  return out;
}

// CPU parameters with these gradients, for the nn/optim.h optimizers.
std::vector<Tensor> cpu_params(const std::vector<Tensor>& values,
                               const std::vector<Tensor>& grads) {
  std::vector<Tensor> out;
  for (size_t i = 0; i < values.size(); ++i) {
    Tensor p = raw::clone(values[i]);
    p.requires_grad_();
    p.set_grad(grads[i]);
    out.push_back(p);
  }
  return out;
}

}  // namespace

class CudaEma : public ::testing::TestWithParam<int> {};

TEST_P(CudaEma, MatchesTheCpuUpdate) {
  SELFSUP_REQUIRE_GPU();
  Generator gen(31);
  const std::vector<Tensor> targets = random_list(gen), sources = random_list(gen);
  std::vector<Tensor> target_dev = to_device(targets);
  const std::vector<Tensor> source_dev = to_device(sources);
  std::vector<Tensor> want = clones(targets);
  for (double momentum : {0.996, 0.5}) {
    cpu::ema_update(want, sources, momentum);
    cuda::ema_update(target_dev, source_dev, momentum, GetParam());
  }
  expect_lists_near(target_dev, want, 1e-6);
}

INSTANTIATE_TEST_SUITE_P(Versions, CudaEma, ::testing::Values(1, 2),
                         [](const ::testing::TestParamInfo<int>& info) {
                           std::string name = "v";
                           name += std::to_string(info.param);
                           return name;
                         });

TEST(CudaOptimSteps, SgdMatchesNnOptim) {
  SELFSUP_REQUIRE_GPU();
  for (bool nesterov : {false, true})
    for (double momentum : {0.0, 0.9}) {
      SCOPED_TRACE(std::string("nesterov ") + (nesterov ? "on" : "off") + " momentum " +
                   std::to_string(momentum));
      Generator gen(32);
      const std::vector<Tensor> values = random_list(gen), grads = random_list(gen);
      optim::SgdOptions o{.lr = 0.05,
                          .momentum = momentum,
                          .dampening = nesterov ? 0.0 : 0.1,
                          .weight_decay = 1e-3,
                          .nesterov = nesterov};
      std::vector<Tensor> params = cpu_params(values, grads);
      optim::SGD sgd(params, o);
      std::vector<Tensor> p_dev = to_device(values);
      const std::vector<Tensor> g_dev = to_device(grads);
      std::vector<Tensor> buf_dev = momentum != 0 ? zeros_on_device() : std::vector<Tensor>{};
      for (int step = 0; step < 3; ++step) {
        sgd.step();
        cuda::sgd_step(p_dev, g_dev, buf_dev,
                       {.lr = o.lr,
                        .momentum = o.momentum,
                        .dampening = o.dampening,
                        .weight_decay = o.weight_decay,
                        .nesterov = o.nesterov,
                        .first_step = step == 0});
      }
      expect_lists_near(p_dev, params, 1e-5);
    }
}

TEST(CudaOptimSteps, AdamWMatchesNnOptim) {
  SELFSUP_REQUIRE_GPU();
  Generator gen(33);
  const std::vector<Tensor> values = random_list(gen), grads = random_list(gen);
  optim::AdamWOptions o{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.05};
  std::vector<Tensor> params = cpu_params(values, grads);
  optim::AdamW adamw(params, o);
  std::vector<Tensor> p_dev = to_device(values);
  const std::vector<Tensor> g_dev = to_device(grads);
  std::vector<Tensor> m_dev = zeros_on_device(), v_dev = zeros_on_device();
  for (int64_t step = 1; step <= 3; ++step) {
    adamw.step();
    cuda::adamw_step(p_dev, g_dev, m_dev, v_dev,
                     {.lr = o.lr,
                      .beta1 = o.beta1,
                      .beta2 = o.beta2,
                      .eps = o.eps,
                      .weight_decay = o.weight_decay,
                      .step = step});
  }
  expect_lists_near(p_dev, params, 1e-5);
}

TEST(CudaOptimSteps, LarsMatchesNnOptim) {
  SELFSUP_REQUIRE_GPU();
  Generator gen(34);
  const std::vector<Tensor> values = random_list(gen), grads = random_list(gen);
  optim::LarsOptions o{
      .lr = 0.2, .momentum = 0.9, .weight_decay = 1e-4, .eta = 1e-3, .exclude_1d = true};
  std::vector<Tensor> params = cpu_params(values, grads);
  optim::LARS lars(params, o);
  std::vector<bool> excluded;
  for (const Shape& s : kShapes)
    excluded.push_back(s.size() <= 1);
  std::vector<Tensor> p_dev = to_device(values);
  const std::vector<Tensor> g_dev = to_device(grads);
  std::vector<Tensor> buf_dev = zeros_on_device();
  for (int step = 0; step < 3; ++step) {
    lars.step();
    cuda::lars_step(
        p_dev, g_dev, buf_dev, excluded,
        {.lr = o.lr, .momentum = o.momentum, .weight_decay = o.weight_decay, .eta = o.eta});
  }
  expect_lists_near(p_dev, params, 1e-5);
}

#else

TEST(CudaEma, NeedsTheCudaBackend) {
  GTEST_SKIP() << "this build has no CUDA backend";
}

#endif
