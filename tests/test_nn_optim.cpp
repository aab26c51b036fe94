// Optimizers, schedule and gradient clipping against values worked out by hand.
#include <gtest/gtest.h>

#include <cmath>
#include <numbers>

#include "autograd/graph.h"
#include "nn/optim.h"
#include "nn/schedule.h"

using namespace selfsup;
using namespace selfsup::optim;

namespace {

Tensor param(const std::vector<double>& values, const Shape& shape, DType dtype = kFloat64) {
  return from_vector(values, shape, dtype).requires_grad_();
}

void grad(const Tensor& p, const std::vector<double>& values) {
  p.set_grad(from_vector(values, p.shape(), p.dtype()));
}

void expect_values(const Tensor& t, const std::vector<double>& want, double tol = 1e-12) {
  auto got = t.to_vector<double>();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    EXPECT_NEAR(got[i], want[i], tol) << "element " << i;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

const Tensor* find(const NamedTensors& list, const std::string& key) {
  for (const auto& [k, t] : list)
    if (k == key) return &t;
  return nullptr;
}

}  // namespace

// ---------------------------------------------------------------- SGD

TEST(NnOptimSgd, NesterovMomentumWeightDecayTwoStepsByHand) {
  Tensor p = param({1.0, -2.0}, {2});
  SGD sgd({p}, {.lr = 0.5, .momentum = 0.9, .weight_decay = 0.1, .nesterov = true});
  // Step 1: d = g + 0.1 p = [0.6, 0.8]; buf = d; d = d + 0.9 buf = [1.14, 1.52]; p -= 0.5 d.
  grad(p, {0.5, 1.0});
  sgd.step();
  expect_values(p, {0.43, -2.76});
  expect_values(sgd.state(0).buffers[0].second, {0.6, 0.8});
  // Step 2: d = [-1, 0.25] + 0.1 p = [-0.957, -0.026]; buf = 0.9 [0.6, 0.8] + d =
  // [-0.417, 0.694]; d = d + 0.9 buf = [-1.3323, 0.5986]; p -= 0.5 d.
  grad(p, {-1.0, 0.25});
  sgd.step();
  expect_values(sgd.state(0).buffers[0].second, {-0.417, 0.694});
  expect_values(p, {1.09615, -3.0593});
  EXPECT_EQ(sgd.state(0).step, 2);
}

TEST(NnOptimSgd, DampeningSkipsTheFirstStep) {
  Tensor p = param({2.0}, {1});
  SGD sgd({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.5});
  grad(p, {1.0});
  sgd.step();  // buf = g = 1 (PyTorch copies the first gradient undampened)
  expect_values(p, {1.9});
  grad(p, {1.0});
  sgd.step();  // buf = 0.9 + 0.5 * 1 = 1.4
  expect_values(p, {1.76});
}

TEST(NnOptimSgd, PlainFloat32AndSkippedParameters) {
  Tensor a = param({1, 2, 3}, {3}, kFloat32), b = param({5}, {1}, kFloat32);
  SGD sgd({a, b}, {.lr = 0.25});
  grad(a, {4, -4, 0.5});
  uint64_t version = a.version();
  sgd.step();
  expect_values(a, {0, 3, 2.875}, 1e-6);
  expect_values(b, {5});  // no gradient: untouched
  EXPECT_GT(a.version(), version);
  EXPECT_TRUE(sgd.state(0).buffers.empty());  // no momentum: no state tensor
}

TEST(NnOptimSgd, BadOptionsAndParameters) {
  Tensor p = param({1}, {1});
  EXPECT_THROW(SGD({p}, {.lr = 0.1, .momentum = 0.0, .nesterov = true}), Error);
  EXPECT_THROW(SGD({p}, {.lr = -1}), Error);
  EXPECT_THROW(SGD(std::vector<Tensor>{p, p}, SgdOptions{}), Error);
  EXPECT_THROW(SGD(std::vector<ParamGroup>{}, SgdOptions{}), Error);
  Tensor q = param({1, 2}, {2});
  SGD sgd({q}, {});
  q.set_grad(from_vector<float>({1, 2}, {2}));  // a float32 gradient for a float64 parameter
  EXPECT_NE(error_of([&] { sgd.step(); }).find("does not match parameter 0"), std::string::npos);
}

// ---------------------------------------------------------------- AdamW

TEST(NnOptimAdamW, TwoStepsByHand) {
  Tensor p = param({1.0, 0.0}, {2});
  AdamW adam({p}, {.lr = 0.1, .beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.01});
  // Step 1 (element 0): p = 0.999; m = 0.05; v = 0.00025; p -= 0.1 / 0.1 * 0.05 /
  // (sqrt(0.00025) / sqrt(0.001) + 1e-8) = 0.1 / (1 + 2e-8).
  grad(p, {0.5, 0.0});
  adam.step();
  expect_values(p, {0.999 - 0.1 / (1 + 2e-8), 0.0});
  // Step 2: p *= 0.999; m = -0.055; v = 0.00124975;
  // p -= (0.1 / 0.19) * m / (sqrt(v / (1 - 0.999^2)) + 1e-8).
  grad(p, {-1.0, 0.0});
  adam.step();
  double p1 = 0.999 - 0.1 / (1 + 2e-8);
  double want = p1 * 0.999 + (0.1 / 0.19) * 0.055 / (std::sqrt(0.00124975 / 0.001999) + 1e-8);
  expect_values(p, {want, 0.0}, 1e-12);
  EXPECT_NEAR(want, 0.9347113542385653, 1e-12);
  const Tensor* m = find(adam.state(0).buffers, "exp_avg");
  const Tensor* v = find(adam.state(0).buffers, "exp_avg_sq");
  ASSERT_TRUE(m && v);
  expect_values(*m, {-0.055, 0.0});
  expect_values(*v, {0.00124975, 0.0});
}

// ---------------------------------------------------------------- LARS

TEST(NnOptimLars, OneStepWithExcludedBias) {
  Tensor w = param({3, 0, 0, 4}, {2, 2});  // ||w|| = 5
  Tensor b = param({1, -1}, {2});
  LARS lars({w, b}, {.lr = 2.0, .momentum = 0.9, .weight_decay = 0.1, .eta = 0.01});
  grad(w, {0.3, 0, 0, -0.4});  // ||g|| = 0.5
  grad(b, {0.2, 0.4});
  lars.step();
  // w: trust = 0.01 * 5 / (0.5 + 0.1 * 5) = 0.05; d = 0.05 * (g + 0.1 w) = [0.03, 0, 0, 0].
  expect_values(w, {3 - 2 * 0.03, 0, 0, 4});
  // b (1-d): no adaptation, no decay: p -= lr * g.
  expect_values(b, {1 - 0.4, -1 - 0.8});
  // Momentum: the next step adds 0.9 * buf.
  grad(w, {0, 0, 0, 0});
  grad(b, {0, 0});
  lars.step();
  // w: ||g|| = 0 so trust = 1 and d = 0.1 * w; buf = 0.9 * [0.03, 0, 0, 0] + d.
  double w0 = 3 - 0.06, w3 = 4;
  expect_values(w, {w0 - 2 * (0.9 * 0.03 + 0.1 * w0), 0, 0, w3 - 2 * 0.1 * w3});
  expect_values(b, {0.6 - 2 * 0.9 * 0.2, -1.8 - 2 * 0.9 * 0.4});
}

TEST(NnOptimLars, GroupFlagExcludesMatricesToo) {
  Tensor w = param({3, 0, 0, 4}, {2, 2});
  ParamGroup g;
  g.params = {w};
  g.lars_exclude = true;
  LARS lars(std::vector<ParamGroup>{g}, {.lr = 1.0, .momentum = 0.0, .weight_decay = 0.5});
  grad(w, {1, 1, 1, 1});
  lars.step();
  expect_values(w, {2, -1, -1, 3});
}

// ---------------------------------------------------------------- groups, lr, zero_grad

TEST(NnOptim, ParameterGroupsHaveTheirOwnLrAndDecay) {
  Tensor a = param({1.0}, {1}), b = param({1.0}, {1});
  ParamGroup ga, gb;
  ga.params = {a};
  gb.params = {b};
  gb.lr = 1.0;
  gb.weight_decay = 0.5;
  gb.lr_scale = 0.1;
  SGD sgd(std::vector<ParamGroup>{ga, gb}, {.lr = 0.1, .weight_decay = 0.0});
  EXPECT_EQ(sgd.lr(0), 0.1);
  EXPECT_EQ(sgd.lr(1), 1.0);
  EXPECT_EQ(*sgd.param_groups()[0].weight_decay, 0.0);
  grad(a, {1.0});
  grad(b, {1.0});
  sgd.step();
  expect_values(a, {0.9});
  expect_values(b, {1.0 - 1.0 * (1.0 + 0.5)});
  sgd.set_lr(0.5);  // each group: 0.5 * lr_scale
  EXPECT_EQ(sgd.lr(0), 0.5);
  EXPECT_NEAR(sgd.lr(1), 0.05, 1e-15);
  sgd.set_lr(0, 0.25);
  EXPECT_EQ(sgd.lr(0), 0.25);
  EXPECT_THROW(sgd.set_lr(2, 0.1), Error);
  EXPECT_THROW(sgd.set_lr(0, -1.0), Error);
  sgd.zero_grad(false);
  expect_values(a.grad(), {0.0});
  sgd.zero_grad();
  EXPECT_FALSE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
}

TEST(NnOptim, SplitWeightDecayKeepsBiasesAndNormsUndecayed) {
  Tensor w = param({1, 1, 1, 1}, {2, 2}), b = param({1, 1}, {2}), k = param({1}, {1, 1, 1, 1});
  auto groups = split_weight_decay({w, b, k}, 0.5);
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].params.size(), 2u);  // w and the 4-d kernel
  EXPECT_EQ(*groups[0].weight_decay, 0.5);
  EXPECT_EQ(groups[1].params[0].impl(), b.impl());
  EXPECT_EQ(*groups[1].weight_decay, 0.0);
  EXPECT_TRUE(groups[1].lars_exclude);
  SGD sgd(groups, {.lr = 1.0});
  grad(w, {0, 0, 0, 0});
  grad(b, {0, 0});
  grad(k, {0});
  sgd.step();
  expect_values(w, {0.5, 0.5, 0.5, 0.5});
  expect_values(b, {1, 1});
  EXPECT_EQ(split_weight_decay({b}, 0.1).size(), 1u);
}

TEST(NnOptim, StateIsAllocatedOnceAndUpdatedInPlace) {
  Tensor p = param({1, 2, 3}, {3});
  AdamW adam({p}, {});
  grad(p, {1, 1, 1});
  adam.step();
  void* m = adam.state(0).buffers[0].second.raw_data_ptr();
  void* data = p.raw_data_ptr();
  adam.step();
  adam.step();
  EXPECT_EQ(adam.state(0).buffers[0].second.raw_data_ptr(), m);
  EXPECT_EQ(p.raw_data_ptr(), data);
  EXPECT_EQ(adam.state(0).step, 3);
}

// ---------------------------------------------------------------- state dicts

TEST(NnOptim, StateDictNamesAndRoundTrip) {
  auto make = [] {
    return std::vector<Tensor>{param({1, -2, 3, 0.5}, {2, 2}), param({0.25, 4}, {2})};
  };
  auto pa = make(), pb = make();
  SgdOptions o{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-3, .nesterov = true};
  SGD a(pa, o), b(pb, o);
  std::vector<std::vector<double>> grads = {{1, 2, 3, 4}, {-1, 0.5}, {0.5, 0, -2, 1}, {3, 3}};
  grad(pa[0], grads[0]);
  grad(pa[1], grads[1]);
  a.step();
  a.set_lr(0.02);
  OptimizerState st = a.state_dict();
  EXPECT_EQ(st.metadata.at("type"), "SGD");
  EXPECT_EQ(st.metadata.at("group.0.lr"), "0.02");
  EXPECT_EQ(st.metadata.at("group.0.num_params"), "2");
  EXPECT_EQ(st.metadata.at("state.1.step"), "1");
  EXPECT_EQ(st.metadata.at("nesterov"), "1");
  ASSERT_NE(find(st.tensors, "state.0.momentum_buffer"), nullptr);
  ASSERT_NE(find(st.tensors, "state.1.momentum_buffer"), nullptr);
  EXPECT_EQ(st.tensors.size(), 2u);

  // b takes a's state and a's parameter values, then both step with the same gradients.
  b.load_state_dict(st);
  EXPECT_EQ(b.lr(), 0.02);
  {
    NoGradGuard no_grad;
    pb[0].copy_(pa[0]);
    pb[1].copy_(pa[1]);
  }
  for (auto* ps : {&pa, &pb}) {
    grad((*ps)[0], grads[2]);
    grad((*ps)[1], grads[3]);
  }
  a.step();
  b.step();
  EXPECT_EQ(pa[0].to_vector<double>(), pb[0].to_vector<double>());
  EXPECT_EQ(pa[1].to_vector<double>(), pb[1].to_vector<double>());
  // The loaded state is a copy: changing a's buffers after the export leaves b's alone.
  EXPECT_FALSE(find(a.state_dict().tensors, "state.0.momentum_buffer")
                   ->shares_storage_with(*find(b.state_dict().tensors, "state.0.momentum_buffer")));
}

TEST(NnOptim, LoadStateDictRefusesAnotherOptimizer) {
  Tensor p = param({1, 2}, {2}), q = param({1, 2, 3}, {3});
  AdamW adam({p}, {});
  grad(p, {1, 1});
  adam.step();
  SGD sgd({param({1, 2}, {2})}, {.momentum = 0.9});
  std::string msg = error_of([&] { sgd.load_state_dict(adam.state_dict()); });
  EXPECT_NE(msg.find("AdamW"), std::string::npos) << msg;

  AdamW other({q}, {});  // same type, parameter of another shape
  msg = error_of([&] { other.load_state_dict(adam.state_dict()); });
  EXPECT_NE(msg.find("state.0.exp_avg"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[2]"), std::string::npos) << msg;
  EXPECT_NE(msg.find("[3]"), std::string::npos) << msg;

  AdamW two({param({1, 2}, {2}), param({3}, {1})}, {});
  msg = error_of([&] { two.load_state_dict(adam.state_dict()); });
  EXPECT_NE(msg.find("num_params"), std::string::npos) << msg;

  OptimizerState extra = adam.state_dict();
  extra.tensors.emplace_back("state.7.exp_avg", zeros({2}, kFloat64));
  AdamW same({param({1, 2}, {2})}, {});
  msg = error_of([&] { same.load_state_dict(extra); });
  EXPECT_NE(msg.find("state.7.exp_avg"), std::string::npos) << msg;
  EXPECT_EQ(same.state(0).step, 0);  // nothing was loaded
}

// ---------------------------------------------------------------- schedule

TEST(NnSchedule, WarmupThenCosine) {
  CosineSchedule s{.base_lr = 1.0, .final_lr = 0.1, .warmup_steps = 10, .total_steps = 110};
  EXPECT_DOUBLE_EQ(s.lr(0), 0.0);
  EXPECT_DOUBLE_EQ(s.lr(5), 0.5);
  EXPECT_DOUBLE_EQ(s.lr(9), 0.9);
  EXPECT_DOUBLE_EQ(s.lr(10), 1.0);
  EXPECT_NEAR(s.lr(60), 0.55, 1e-15);  // halfway: cos(pi / 2) = 0
  EXPECT_NEAR(s.lr(35), 0.1 + 0.45 * (1 + std::cos(std::numbers::pi / 4)), 1e-15);
  EXPECT_NEAR(s.lr(109), 0.1 + 0.45 * (1 + std::cos(std::numbers::pi * 99 / 100)), 1e-15);
  EXPECT_DOUBLE_EQ(s.lr(110), 0.1);
  EXPECT_DOUBLE_EQ(s.lr(1000), 0.1);
  CosineSchedule no_warmup{.base_lr = 2.0, .final_lr = 0.0, .warmup_steps = 0, .total_steps = 4};
  EXPECT_DOUBLE_EQ(no_warmup.lr(0), 2.0);
  EXPECT_NEAR(no_warmup.lr(2), 1.0, 1e-15);
  CosineSchedule bad{.base_lr = 1, .final_lr = 0, .warmup_steps = 5, .total_steps = 4};
  EXPECT_THROW(bad.lr(0), Error);

  Tensor a = param({1.0}, {1}), b = param({1.0}, {1});
  ParamGroup ga, gb;
  ga.params = {a};
  gb.params = {b};
  gb.lr_scale = 0.5;
  SGD sgd(std::vector<ParamGroup>{ga, gb}, {});
  s.apply(sgd, 5);
  EXPECT_DOUBLE_EQ(sgd.lr(0), 0.5);
  EXPECT_DOUBLE_EQ(sgd.lr(1), 0.25);
}

// ---------------------------------------------------------------- clipping

TEST(NnOptim, ClipGradNorm) {
  Tensor a = param({0, 0}, {2}), b = param({0}, {1}), c = param({0}, {1});
  grad(a, {3, 4});
  grad(b, {12});  // total norm sqrt(9 + 16 + 144) = 13; c has no gradient
  double total = clip_grad_norm_({a, b, c}, 100.0);
  EXPECT_DOUBLE_EQ(total, 13.0);
  expect_values(a.grad(), {3, 4});  // under the limit: untouched
  total = clip_grad_norm_({a, b, c}, 6.5);
  EXPECT_DOUBLE_EQ(total, 13.0);
  double coef = 6.5 / (13.0 + 1e-6);
  expect_values(a.grad(), {3 * coef, 4 * coef});
  expect_values(b.grad(), {12 * coef});
  EXPECT_NEAR(clip_grad_norm_({a, b, c}, 100.0), 6.5, 1e-6);
  EXPECT_THROW(clip_grad_norm_({a}, 0.0), Error);
  Tensor f = param({0, 0, 0}, {3}, kFloat32);
  grad(f, {1, 2, 2});
  EXPECT_NEAR(clip_grad_norm_({f}, 1.0), 3.0, 1e-6);
  expect_values(f.grad(), {1.0 / 3, 2.0 / 3, 2.0 / 3}, 1e-6);
}
