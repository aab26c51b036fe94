// The Transform plumbing: function-backed transforms, composition, identity and random_apply.
// The concrete augmentations are in geometry.cpp, color.cpp and pretext.cpp; the method recipes
// in presets.cpp.
#include "ssl/data/augment.h"

#include <utility>

#include "ssl/data/transform_util.h"
#include "ssl/data/transforms.h"

namespace selfsup::data {

namespace {

class FunctionTransform final : public Transform {
 public:
  using Fn = std::function<Image(const Image&, AugRng&)>;
  FunctionTransform(std::string name, Fn fn) : name_(std::move(name)), fn_(std::move(fn)) {}
  Image apply(const Image& img, AugRng& rng) const override { return fn_(img, rng); }
  std::string name() const override { return name_; }

 private:
  std::string name_;
  Fn fn_;
};

class Compose final : public Transform {
 public:
  explicit Compose(std::vector<TransformPtr> ts) : ts_(std::move(ts)) {}
  Image apply(const Image& img, AugRng& rng) const override {
    if (ts_.empty()) return img;
    Image out = ts_.front()->apply(img, rng);
    for (size_t i = 1; i < ts_.size(); ++i)
      out = ts_[i]->apply(out, rng);
    return out;
  }
  std::string name() const override {
    std::string s = "Compose[";
    for (size_t i = 0; i < ts_.size(); ++i)
      s.append(i ? ", " : "").append(ts_[i]->name());
    return s + "]";
  }

 private:
  std::vector<TransformPtr> ts_;
};

}  // namespace

TransformPtr compose(std::vector<TransformPtr> transforms) {
  for (size_t i = 0; i < transforms.size(); ++i)
    SELFSUP_CHECK(transforms[i] != nullptr, "compose: transform ", i, " of ", transforms.size(),
                  " is null");
  return std::make_shared<Compose>(std::move(transforms));
}

namespace transforms {

TransformPtr from_function(std::string name, std::function<Image(const Image&, AugRng&)> fn) {
  SELFSUP_CHECK(static_cast<bool>(fn), "from_function: empty function for '", name, "'");
  return std::make_shared<FunctionTransform>(std::move(name), std::move(fn));
}

TransformPtr identity() {
  return from_function("Identity", [](const Image& img, AugRng&) { return img; });
}

TransformPtr random_apply(TransformPtr t, float p) {
  SELFSUP_CHECK(t != nullptr, "random_apply: null transform");
  detail::check_probability("random_apply", p);
  std::string name = "RandomApply(" + t->name() + ", p=" + detail::num(p) + ")";
  return from_function(std::move(name), [t = std::move(t), p](const Image& img, AugRng& rng) {
    return rng.bernoulli(p) ? t->apply(img, rng) : img;
  });
}

}  // namespace transforms
}  // namespace selfsup::data
