// Loader: the in-order, bounded, multi-threaded batch pipeline.
#include "ssl/data/loader.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "core/random.h"

namespace selfsup::data {

Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle) {
  SELFSUP_CHECK(n >= 0 && epoch >= 0, "epoch_order: bad n ", n, " or epoch ", epoch);
  if (!shuffle) {
    Tensor order = empty({n}, kInt64);
    std::iota(order.data_ptr<int64_t>(), order.data_ptr<int64_t>() + n, int64_t{0});
    return order;
  }
  Generator gen(seed);
  gen.set_offset(static_cast<uint64_t>(epoch) * static_cast<uint64_t>(n));
  return randperm(n, &gen);
}

Image batch_image(const Tensor& view_batch, int64_t row) {
  SELFSUP_CHECK(
      view_batch.dim() == 4 && view_batch.dtype() == kFloat32 && view_batch.is_contiguous(),
      "batch_image: expected a contiguous float32 [B, C, H, W] batch, got ",
      shape_str(view_batch.shape()));
  SELFSUP_CHECK(row >= 0 && row < view_batch.size(0), "batch_image: row ", row,
                " out of range for a batch of ", view_batch.size(0));
  Image img(view_batch.size(1), view_batch.size(2), view_batch.size(3));
  const float* src = view_batch.data_ptr<float>() + row * static_cast<int64_t>(img.data.size());
  std::copy(src, src + img.data.size(), img.data.begin());
  return img;
}

// ---------------------------------------------------------------------------------------------
// Set-up
// ---------------------------------------------------------------------------------------------

Loader::Loader(Dataset dataset, ViewRecipes recipes, LoaderOptions options)
    : dataset_(std::move(dataset)), recipes_(std::move(recipes)), options_(std::move(options)) {
  validate_dataset(dataset_, "Loader: dataset " + dataset_.name);
  SELFSUP_CHECK(options_.batch_size > 0, "Loader: batch size must be positive, got ",
                options_.batch_size);
  SELFSUP_CHECK(options_.num_workers >= 0, "Loader: negative number of workers ",
                options_.num_workers);
  SELFSUP_CHECK(options_.prefetch >= 1, "Loader: prefetch must be at least 1, got ",
                options_.prefetch);
  SELFSUP_CHECK(batches_per_epoch() > 0, "Loader: ", dataset_.name, " has ", dataset_.size(),
                " samples, fewer than one batch of ", options_.batch_size, " with drop_last");
  if (!options_.allocate && options_.pin_memory)
    options_.allocate = [](const Shape& shape, DType dtype) { return empty_pinned(shape, dtype); };
  if (!options_.allocate)
    options_.allocate = [](const Shape& shape, DType dtype) { return empty(shape, dtype); };
  check_recipes();
}

Loader::~Loader() {
  stop();
}

void Loader::check_recipes() const {
  const size_t k = recipes_.views.size();
  SELFSUP_CHECK(k > 0, "Loader: recipes '", recipes_.name, "' have no views");
  SELFSUP_CHECK(recipes_.view_sizes.size() == k, "Loader: recipes '", recipes_.name, "' have ", k,
                " views but ", recipes_.view_sizes.size(), " view sizes");
  for (size_t v = 0; v < k; ++v) {
    const int64_t s = recipes_.view_sizes[v];
    SELFSUP_CHECK(s > 0, "Loader: view ", v, " of '", recipes_.name, "' has size ", s);
    SELFSUP_CHECK(recipes_.views[v] || (s == dataset_.height() && s == dataset_.width()),
                  "Loader: identity view ", v, " of '", recipes_.name, "' has size ", s,
                  " but the images of ", dataset_.name, " are ", dataset_.height(), "x",
                  dataset_.width());
  }
}

int64_t Loader::batches_per_epoch() const {
  const int64_t n = dataset_.size(), b = options_.batch_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

// ---------------------------------------------------------------------------------------------
// Making one batch
// ---------------------------------------------------------------------------------------------

Tensor Loader::allocate(const Shape& shape, DType dtype) const {
  Tensor t = options_.allocate(shape, dtype);
  SELFSUP_CHECK(t.defined() && t.shape() == shape && t.dtype() == dtype && t.is_contiguous() &&
                    t.device().is_cpu(),
                "Loader: the batch allocator did not return a contiguous host ", dtype_name(dtype),
                " tensor of shape ", shape_str(shape));
  return t;
}

// Row r of every view of `batch`: sample i's image through each view's recipe.
void Loader::fill_views(const Image& img, int64_t i, int64_t epoch, int64_t r, Batch& batch) const {
  const int64_t c = img.c;
  for (int64_t k = 0; k < num_views(); ++k) {
    const TransformPtr& t = recipes_.views[k];
    const int64_t s = recipes_.view_sizes[k];
    float* dst = batch.views[k].data_ptr<float>() + r * c * s * s;
    if (!t) {  // identity; its size was checked against the dataset's
      std::copy(img.data.begin(), img.data.end(), dst);
      continue;
    }
    AugRng rng(options_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i),
               static_cast<uint64_t>(k));
    const Image out = t->apply(img, rng);
    SELFSUP_CHECK(
        out.c == c && out.h == s && out.w == s && out.data.size() == static_cast<size_t>(c * s * s),
        "Loader: view ", k, " of '", recipes_.name, "' (", t->name(), ") made a [", out.c, ", ",
        out.h, ", ", out.w, "] image, expected [", c, ", ", s, ", ", s, "]");
    std::copy(out.data.begin(), out.data.end(), dst);
  }
}

std::optional<Batch> Loader::make_batch(int64_t epoch, int64_t b, const int64_t* order,
                                        const std::atomic<bool>* cancel) const {
  const int64_t n = dataset_.size(), begin = b * options_.batch_size;
  const int64_t rows = std::min(options_.batch_size, n - begin);
  SELFSUP_CHECK(b >= 0 && rows > 0, "Loader::make_batch: batch ", b, " is outside the epoch");
  const int64_t c = dataset_.channels();
  Batch batch;
  batch.epoch = epoch;
  batch.index = b;
  for (int64_t s : recipes_.view_sizes)
    batch.views.push_back(allocate({rows, c, s, s}, kFloat32));
  batch.labels = allocate({rows}, kInt64);
  batch.indices = allocate({rows}, kInt64);
  int64_t* labels = batch.labels.data_ptr<int64_t>();
  int64_t* indices = batch.indices.data_ptr<int64_t>();
  for (int64_t r = 0; r < rows; ++r) {
    if (cancel && cancel->load(std::memory_order_relaxed)) return std::nullopt;
    const int64_t i = order[begin + r];
    labels[r] = dataset_.label(i);
    indices[r] = i;
    fill_views(dataset_.image(i), i, epoch, r, batch);
  }
  return batch;
}

// ---------------------------------------------------------------------------------------------
// The pipeline
// ---------------------------------------------------------------------------------------------

void Loader::start_epoch(int64_t epoch) {
  SELFSUP_CHECK(epoch >= 0, "Loader::start_epoch: negative epoch ", epoch);
  stop();
  epoch_ = epoch;
  order_ = epoch_order(dataset_.size(), options_.seed, epoch, options_.shuffle);
  next_claim_ = next_deliver_ = 0;
  failed_at_ = INT64_MAX;
  error_ = nullptr;
  stopping_ = false;
  for (int w = 0; w < options_.num_workers; ++w)
    workers_.emplace_back([this] { worker_loop(); });
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  worker_cv_.notify_all();
  consumer_cv_.notify_all();
  for (std::thread& t : workers_)
    t.join();
  workers_.clear();
  ready_.clear();
}

void Loader::worker_loop() {
  const int64_t total = batches_per_epoch();
  const int64_t* order = order_.data_ptr<int64_t>();
  for (;;) {
    int64_t b;
    {
      std::unique_lock<std::mutex> lock(mu_);
      worker_cv_.wait(lock, [&] {
        return stopping_ || next_claim_ >= std::min(total, failed_at_) ||
               next_claim_ < next_deliver_ + options_.prefetch;
      });
      if (stopping_ || next_claim_ >= std::min(total, failed_at_)) return;
      b = next_claim_++;
    }
    try {
      std::optional<Batch> batch = make_batch(epoch_, b, order, &stopping_);
      if (!batch) return;  // stopped while working
      std::lock_guard<std::mutex> lock(mu_);
      ready_.emplace(b, std::move(*batch));
    } catch (...) {
      std::lock_guard<std::mutex> lock(mu_);
      if (b < failed_at_) {
        failed_at_ = b;
        error_ = std::current_exception();
      }
    }
    consumer_cv_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  SELFSUP_CHECK(epoch_ >= 0, "Loader::next: call start_epoch first");
  const int64_t total = batches_per_epoch();
  if (options_.num_workers == 0) {
    if (stopping_ || next_deliver_ >= total) return std::nullopt;
    std::optional<Batch> batch = make_batch(epoch_, next_deliver_, order_.data_ptr<int64_t>());
    ++next_deliver_;  // only once made: a batch that threw throws again, as with workers
    return batch;
  }
  std::unique_lock<std::mutex> lock(mu_);
  consumer_cv_.wait(lock, [&] {
    return stopping_ || next_deliver_ >= total || failed_at_ == next_deliver_ ||
           ready_.count(next_deliver_) > 0;
  });
  if (stopping_ || next_deliver_ >= total) return std::nullopt;
  if (failed_at_ == next_deliver_) std::rethrow_exception(error_);
  auto it = ready_.find(next_deliver_);
  Batch batch = std::move(it->second);
  ready_.erase(it);
  ++next_deliver_;
  lock.unlock();
  worker_cv_.notify_all();
  return batch;
}

}  // namespace selfsup::data
