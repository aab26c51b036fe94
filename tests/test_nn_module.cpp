// nn::Module: registration, names, traversal, modes, gradients, dtype conversion and state
// dicts (round trip and every kind of mismatch).
#include <gtest/gtest.h>

#include <cmath>

#include "autograd/graph.h"
#include "nn/layers.h"
#include "nn/module.h"
#include "tests/cuda_test_util.h"

using namespace selfsup;
using namespace selfsup::nn;

namespace {

// A leaf module with one parameter and one buffer of awkward shapes.
class Leaf : public Module {
 public:
  explicit Leaf(int64_t n) : Module("Leaf") {
    w = register_parameter("w", full({n, 3}, 1.5));
    stat = register_buffer("stat", zeros({n}));
  }
  Tensor w, stat;
};

// Two levels of nesting: "a.w", "b.inner.w", ...
class Tree : public Module {
 public:
  explicit Tree(int64_t n = 5) : Module("Tree") {
    scale = register_parameter("scale", ones({7}));
    a = register_module("a", std::make_shared<Leaf>(n));
    auto b = std::make_shared<Sequential>();
    b->push_back(std::make_shared<Leaf>(n + 1));
    b->push_back(std::make_shared<Leaf>(2));
    seq = register_module("b", b);
  }
  Tensor scale;
  std::shared_ptr<Leaf> a;
  std::shared_ptr<Sequential> seq;
};

std::vector<std::string> keys(const NamedTensors& list) {
  std::vector<std::string> out;
  for (const auto& [k, _] : list)
    out.push_back(k);
  return out;
}

std::string error_of(const std::function<void()>& fn) {
  try {
    fn();
  } catch (const Error& e) {
    return e.what();
  }
  return "(no error)";
}

}  // namespace

TEST(NnModule, NamesFollowRegistrationOrderWithDots) {
  Tree t;
  EXPECT_EQ(keys(t.named_parameters()),
            (std::vector<std::string>{"scale", "a.w", "b.0.w", "b.1.w"}));
  EXPECT_EQ(keys(t.named_buffers()), (std::vector<std::string>{"a.stat", "b.0.stat", "b.1.stat"}));
  EXPECT_EQ(keys(t.named_parameters(false)), (std::vector<std::string>{"scale"}));
  EXPECT_TRUE(t.named_buffers(false).empty());
  // PyTorch's state_dict order: each module's parameters, then its buffers, then its children.
  EXPECT_EQ(keys(t.state_dict()), (std::vector<std::string>{"scale", "a.w", "a.stat", "b.0.w",
                                                            "b.0.stat", "b.1.w", "b.1.stat"}));
  EXPECT_EQ(t.parameters().size(), 4u);
  EXPECT_EQ(t.buffers().size(), 3u);
  EXPECT_EQ(t.num_parameters(), 7 + 5 * 3 + 6 * 3 + 2 * 3);
  EXPECT_EQ(t.children().size(), 2u);
  std::vector<std::string> modules;
  for (auto& [name, m] : t.named_modules())
    modules.push_back(name + ":" + m->type_name());
  EXPECT_EQ(modules,
            (std::vector<std::string>{":Tree", "a:Leaf", "b:Sequential", "b.0:Leaf", "b.1:Leaf"}));
}

TEST(NnModule, ParametersRequireGradAndAliasTheHandles) {
  Tree t;
  for (const auto& p : t.parameters())
    EXPECT_TRUE(p.requires_grad());
  for (const auto& b : t.buffers())
    EXPECT_FALSE(b.requires_grad());
  EXPECT_EQ(t.named_parameters()[1].second.impl(), t.a->w.impl());
  EXPECT_EQ(t.state_dict()[2].second.impl(), t.a->stat.impl());
  t.requires_grad_(false);
  for (const auto& p : t.parameters())
    EXPECT_FALSE(p.requires_grad());
}

TEST(NnModule, RegistrationRejectsBadAndDuplicateNames) {
  Leaf m(2);
  EXPECT_THROW(m.register_parameter("w", zeros({1})), Error);
  EXPECT_THROW(m.register_buffer("w", zeros({1})), Error);
  EXPECT_THROW(m.register_module("stat", std::make_shared<Identity>()), Error);
  EXPECT_THROW(m.register_parameter("a.b", zeros({1})), Error);
  EXPECT_THROW(m.register_parameter("", zeros({1})), Error);
  EXPECT_THROW(m.register_parameter("u", Tensor()), Error);
  EXPECT_THROW(m.register_module("c", ModulePtr()), Error);
  EXPECT_NE(error_of([&] { m.register_parameter("w", zeros({1})); }).find("'w'"),
            std::string::npos);
}

TEST(NnModule, ForwardOfAModuleWithoutOneThrows) {
  Leaf m(2);
  EXPECT_NE(error_of([&] { m.forward(zeros({1})); }).find("Leaf"), std::string::npos);
}

TEST(NnModule, TrainAndEvalReachEveryDescendant) {
  Tree t;
  EXPECT_TRUE(t.is_training());
  t.eval();
  for (auto& [_, m] : t.named_modules())
    EXPECT_FALSE(m->is_training());
  t.seq->train();
  EXPECT_FALSE(t.is_training());
  EXPECT_TRUE(t.seq->at<Leaf>(1)->is_training());
  t.train();
  for (auto& [_, m] : t.named_modules())
    EXPECT_TRUE(m->is_training());
}

TEST(NnModule, ZeroGradDropsOrZeroesGradients) {
  Tree t;
  t.a->w.set_grad(full({5, 3}, 2.0));
  t.scale.set_grad(full({7}, -1.0));
  t.zero_grad(false);
  for (double v : t.a->w.grad().to_vector<double>())
    EXPECT_EQ(v, 0.0);
  for (double v : t.scale.grad().to_vector<double>())
    EXPECT_EQ(v, 0.0);
  EXPECT_FALSE(t.seq->at<Leaf>(0)->w.grad().defined());  // had none, still has none
  t.zero_grad();
  EXPECT_FALSE(t.a->w.grad().defined());
  EXPECT_FALSE(t.scale.grad().defined());
}

TEST(NnModule, ToConvertsFloatingTensorsInPlaceKeepingHandles) {
  Tree t;
  auto counter = zeros({}, kInt64);
  t.a->register_buffer("count", counter);
  t.a->w.set_grad(ones({5, 3}));
  TensorImpl* before = t.a->w.impl();
  t.to(kFloat64);
  EXPECT_EQ(t.a->w.impl(), before);
  EXPECT_EQ(t.a->w.dtype(), kFloat64);
  EXPECT_EQ(t.a->stat.dtype(), kFloat64);
  EXPECT_EQ(counter.dtype(), kInt64);  // integer buffers keep their dtype
  EXPECT_TRUE(t.a->w.requires_grad());
  EXPECT_FALSE(t.a->w.grad().defined());
  for (double v : t.a->w.to_vector<double>())
    EXPECT_EQ(v, 1.5);
  for (const auto& [name, p] : t.named_parameters())
    EXPECT_EQ(p.dtype(), kFloat64) << name;
}

TEST(NnModule, ToTheDeviceItIsOnChangesNothing) {
  Tree t;
  TensorImpl* before = t.a->w.impl();
  auto storage = t.a->w.impl()->storage;
  t.a->w.set_grad(ones({5, 3}));
  EXPECT_EQ(t.device(), kCPU);
  t.to(kCPU);
  EXPECT_EQ(t.a->w.impl(), before);
  EXPECT_EQ(t.a->w.impl()->storage, storage);  // no copy
  EXPECT_TRUE(t.a->w.grad().defined());        // nothing moved, so the gradient stays
  EXPECT_EQ(Module("Empty").device(), kCPU);
}

TEST(NnModule, ToCudaMovesEveryTensorInPlaceKeepingHandles) {
  SELFSUP_REQUIRE_GPU();
  Tree t;
  auto counter = zeros({}, kInt64);
  t.a->register_buffer("count", counter);
  TensorImpl* before = t.a->w.impl();
  t.to(Device::cuda());
  EXPECT_EQ(t.a->w.impl(), before);
  EXPECT_EQ(t.device(), Device::cuda());
  for (const auto& [name, p] : t.named_parameters())
    EXPECT_EQ(p.device(), Device::cuda()) << name;
  EXPECT_EQ(counter.device(), Device::cuda());
  EXPECT_TRUE(t.a->w.requires_grad());
  t.to(kCPU);
  for (double v : t.a->w.to_vector<double>())
    EXPECT_EQ(v, 1.5);
}

TEST(NnModule, StateDictRoundTripCopiesValuesInPlace) {
  Tree src, dst;
  {
    NoGradGuard no_grad;
    src.a->w.copy_(arange(0, 15, 1, kFloat32).view({5, 3}));
    src.seq->at<Leaf>(1)->stat.copy_(tensor({-3.0f, 4.0f}));
  }
  TensorImpl* before = dst.a->w.impl();
  void* data_before = dst.a->w.raw_data_ptr();
  dst.load_state_dict(src.state_dict());
  EXPECT_EQ(dst.a->w.impl(), before);
  EXPECT_EQ(dst.a->w.raw_data_ptr(), data_before);  // copied into, not replaced
  EXPECT_TRUE(dst.a->w.requires_grad());
  auto s = src.state_dict(), d = dst.state_dict();
  ASSERT_EQ(s.size(), d.size());
  for (size_t i = 0; i < s.size(); ++i) {
    EXPECT_EQ(s[i].second.to_vector<double>(), d[i].second.to_vector<double>()) << s[i].first;
    EXPECT_FALSE(s[i].second.shares_storage_with(d[i].second));
  }
}

TEST(NnModule, LoadStateDictConvertsDtype) {
  Tree src, dst;
  dst.to(kFloat64);
  {
    NoGradGuard no_grad;
    src.scale.copy_(arange(0, 7, 1, kFloat32));
  }
  dst.load_state_dict(src.state_dict());
  EXPECT_EQ(dst.scale.dtype(), kFloat64);
  EXPECT_EQ(dst.scale.to_vector<double>(), (std::vector<double>{0, 1, 2, 3, 4, 5, 6}));
}

TEST(NnModule, LoadStateDictNamesMissingUnexpectedAndMismatchedKeys) {
  Tree model;
  auto dict = Tree().state_dict();

  auto missing = dict;
  missing.erase(missing.begin() + 1);  // a.w
  std::string msg = error_of([&] { model.load_state_dict(missing); });
  EXPECT_NE(msg.find("missing key a.w"), std::string::npos) << msg;
  EXPECT_NE(msg.find("Tree"), std::string::npos) << msg;

  auto unexpected = dict;
  unexpected.emplace_back("b.2.w", zeros({2}));
  msg = error_of([&] { model.load_state_dict(unexpected); });
  EXPECT_NE(msg.find("unexpected key b.2.w"), std::string::npos) << msg;

  auto mismatched = Tree(4).state_dict();  // a.w is [4, 3] there, [5, 3] here
  msg = error_of([&] { model.load_state_dict(mismatched); });
  EXPECT_NE(msg.find("a.w is [4, 3] in the state dict but [5, 3] in the module"), std::string::npos)
      << msg;
  EXPECT_NE(msg.find("b.0.stat is [5] in the state dict but [6] in the module"), std::string::npos)
      << msg;
}

TEST(NnModule, FailedLoadLeavesTheModuleUnchanged) {
  Tree model;
  auto dict = Tree().state_dict();
  {
    NoGradGuard no_grad;
    for (auto& [k, t] : dict)
      t.fill_(9.0);
  }
  dict.back().second = zeros({3});  // b.1.stat: wrong shape, last in the list
  EXPECT_THROW(model.load_state_dict(dict), Error);
  for (double v : model.a->w.to_vector<double>())
    EXPECT_EQ(v, 1.5);
}

TEST(NnModule, NonStrictLoadIgnoresKeysButNotShapes) {
  Tree model;
  NamedTensors partial = {{"scale", full({7}, 3.0)}, {"extra", zeros({1})}};
  model.load_state_dict(partial, false);
  for (double v : model.scale.to_vector<double>())
    EXPECT_EQ(v, 3.0);
  NamedTensors wrong = {{"scale", zeros({6})}};
  EXPECT_THROW(model.load_state_dict(wrong, false), Error);
}

TEST(NnModule, StrListsTheTree) {
  Tree t;
  std::string s = t.str();
  EXPECT_NE(s.find("Tree(\n  (a): Leaf()\n  (b): Sequential(\n    (0): Leaf()"), std::string::npos)
      << s;
}
