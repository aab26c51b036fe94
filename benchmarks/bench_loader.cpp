// Loader throughput in views per second over Fashion-MNIST-sized data: 60000 synthetic 28x28
// grey images, two views per sample, batch 256, with 1 and 2 worker threads, for the published
// SimCLR and BYOL recipes (ssl/data/presets.cpp: crop, flip, colour jitter, grayscale; BYOL adds
// blur and solarisation) and a minimal recipe (random flip + brightness jitter) that shows the
// loader's own overhead. Before timing, each configuration's first batch is checked
// bit-for-bit against the same batch made on the calling thread (the reference).
#include <benchmark/benchmark.h>

#include <random>
#include <string>

#include "ssl/data/loader.h"

using namespace selfsup;
using namespace selfsup::data;

namespace {

class FlipJitter : public Transform {
 public:
  Image apply(const Image& img, AugRng& rng) const override {
    Image out(img.c, img.h, img.w);
    const bool flip = rng.bernoulli(0.5f);
    const float gain = rng.uniform(0.6f, 1.4f);
    for (int64_t c = 0; c < img.c; ++c) {
      for (int64_t y = 0; y < img.h; ++y) {
        for (int64_t x = 0; x < img.w; ++x) {
          const float v = img.at(c, y, flip ? img.w - 1 - x : x) * gain;
          out.at(c, y, x) = v < 1.0f ? v : 1.0f;
        }
      }
    }
    return out;
  }
  std::string name() const override { return "flip_jitter"; }
};

const Dataset& fashion_sized() {
  static const Dataset ds = [] {
    const int64_t n = 60000;
    std::mt19937 gen(1);
    std::vector<uint8_t> px(static_cast<size_t>(n * 28 * 28));
    for (uint8_t& p : px)
      p = static_cast<uint8_t>(gen());
    std::vector<int64_t> labels(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i)
      labels[i] = i % 10;
    Dataset d;
    d.name = "synthetic-fashion-mnist";
    d.images = from_vector(px, {n, 1, 28, 28});
    d.labels = from_vector(labels, {n});
    d.num_classes = 10;
    return d;
  }();
  return ds;
}

ViewRecipes two_views(const std::string& recipe) {
  if (recipe != "flip_jitter") return make_recipes(recipe, 1, 28, 2);
  auto t = std::make_shared<FlipJitter>();
  return {"flip_jitter x2", {t, t}, {28, 28}};
}

bool first_batch_matches_reference(Loader& loader) {
  loader.start_epoch(0);
  std::optional<Batch> got = loader.next();
  Tensor order = epoch_order(loader.dataset().size(), loader.options().seed, 0, true);
  std::optional<Batch> want = loader.make_batch(0, 0, order.data_ptr<int64_t>());
  if (!got || !want) return false;
  for (size_t k = 0; k < got->views.size(); ++k) {
    if (got->views[k].to_vector<float>() != want->views[k].to_vector<float>()) return false;
  }
  return got->indices.to_vector<int64_t>() == want->indices.to_vector<int64_t>();
}

void BM_LoaderViews(benchmark::State& state, const std::string& recipe) {
  LoaderOptions opts;
  opts.batch_size = 256;
  opts.num_workers = static_cast<int>(state.range(0));
  opts.prefetch = 4;
  opts.seed = 1;
  Loader loader(fashion_sized(), two_views(recipe), opts);
  if (!first_batch_matches_reference(loader)) {
    state.SkipWithError("loader batch differs from the reference batch");
    return;
  }
  constexpr int kBatchesPerIteration = 40;
  int64_t views = 0, epoch = 1;
  for (auto _ : state) {
    loader.start_epoch(epoch++);
    for (int b = 0; b < kBatchesPerIteration; ++b) {
      std::optional<Batch> batch = loader.next();
      benchmark::DoNotOptimize(batch->views[0].data_ptr<float>());
      views += batch->size() * static_cast<int64_t>(batch->views.size());
    }
  }
  state.counters["views/s"] =
      benchmark::Counter(static_cast<double>(views), benchmark::Counter::kIsRate);
}

}  // namespace

BENCHMARK_CAPTURE(BM_LoaderViews, simclr, std::string("simclr"))
    ->Arg(1)
    ->Arg(2)
    ->ArgName("threads")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_LoaderViews, byol, std::string("byol"))
    ->Arg(1)
    ->Arg(2)
    ->ArgName("threads")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_LoaderViews, flip_jitter, std::string("flip_jitter"))
    ->Arg(1)
    ->Arg(2)
    ->ArgName("threads")
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

BENCHMARK_MAIN();
