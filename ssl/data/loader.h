// Loader: worker threads that turn a Dataset into batches of K augmented views, ahead of the
// trainer.
//
//   Loader loader(dataset, recipes, {.batch_size = 256, .num_workers = 2, .seed = 7});
//   for (int64_t epoch = 0; epoch < epochs; ++epoch) {
//     loader.start_epoch(epoch);
//     while (auto batch = loader.next()) {
//       // batch->views[k]: float32 [B, C, S_k, S_k]; batch->labels, batch->indices: int64 [B]
//     }
//   }
//
// Determinism: the epoch's order is a Philox permutation of the dataset from (seed, epoch), and
// view k of sample i draws its random numbers from AugRng(seed, epoch, i, k). Nothing depends on
// which thread makes a batch, so batches are bit-identical for any number of workers.
//
// Flow: batches are made in order; a worker may start batch b only while b < (next batch the
// consumer will take) + prefetch, so at most `prefetch` batches wait ahead of the consumer (the
// bounded queue). next() hands them out in order. An exception thrown while making batch b is
// re-thrown by next() when the consumer reaches b. stop(), start_epoch() and the destructor
// end the workers promptly at any point; queued batches are freed.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <exception>
#include <functional>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "core/tensor.h"
#include "ssl/data/augment.h"
#include "ssl/data/dataset.h"

namespace selfsup::data {

// Allocates one batch tensor (shape, dtype). By default (no allocator given) batches live in
// pinned host memory when pin_memory is set and the CUDA backend has registered its pinned
// allocator (a CUDA build on a machine with a GPU), so their upload runs at full bus speed; in
// ordinary host memory otherwise. The loader itself never calls CUDA (core/storage.h).
using BatchAllocator = std::function<Tensor(const Shape& shape, DType dtype)>;

struct LoaderOptions {
  int64_t batch_size = 256;
  int num_workers = 2;   // 0: no threads, next() makes each batch on the caller's thread
  int64_t prefetch = 4;  // batches made ahead of the consumer (the queue's capacity), >= 1
  bool shuffle = true;
  bool drop_last = true;  // drop the last, smaller batch of an epoch
  uint64_t seed = 0;
  bool pin_memory = true;   // pinned host memory when the CUDA backend offers it
  BatchAllocator allocate;  // null: empty_pinned() or empty() (see BatchAllocator)
};

struct Batch {
  int64_t epoch = 0;
  int64_t index = 0;          // batch number within the epoch
  std::vector<Tensor> views;  // views[k]: float32 [B, C, S_k, S_k]
  Tensor labels;              // int64 [B]
  Tensor indices;             // int64 [B]: the dataset index of each row
  int64_t size() const { return labels.size(0); }
};

// The order of the samples in an epoch: 0..n-1 when !shuffle, else randperm(n) drawn from a
// Generator with key `seed` at offset epoch * n (each epoch its own range of Philox counters).
Tensor epoch_order(int64_t n, uint64_t seed, int64_t epoch, bool shuffle);

// Row `row` of a view batch [B, C, S, S] as an Image (for previews and tests).
Image batch_image(const Tensor& view_batch, int64_t row);

class Loader {
 public:
  // recipes.views[k] may be null: view k is then the image itself (identity; its size must be
  // the dataset's, square). Every view's output must be [C, S_k, S_k], C the dataset's channels.
  Loader(Dataset dataset, ViewRecipes recipes, LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  const Dataset& dataset() const { return dataset_; }
  const LoaderOptions& options() const { return options_; }
  int64_t num_views() const { return static_cast<int64_t>(recipes_.views.size()); }
  int64_t batches_per_epoch() const;

  // Begins making the batches of `epoch` (ending the previous epoch first if still running).
  void start_epoch(int64_t epoch);
  // The next batch in order, or nullopt when the epoch is done (or stopped). Re-throws an
  // exception a worker hit while making this batch.
  std::optional<Batch> next();
  // Ends the workers and frees queued batches. Safe to call at any time, more than once.
  void stop();

  // Makes batch b of `epoch` from `order` on the calling thread: what every worker runs.
  // Returns nullopt only when `cancel` is set while it works.
  std::optional<Batch> make_batch(int64_t epoch, int64_t b, const int64_t* order,
                                  const std::atomic<bool>* cancel = nullptr) const;

 private:
  void check_recipes() const;
  Tensor allocate(const Shape& shape, DType dtype) const;
  void fill_views(const Image& img, int64_t i, int64_t epoch, int64_t r, Batch& batch) const;
  void worker_loop();

  Dataset dataset_;
  ViewRecipes recipes_;
  LoaderOptions options_;

  // The running epoch. Everything below mu_ is guarded by it.
  int64_t epoch_ = -1;
  Tensor order_;  // int64 [N]
  std::vector<std::thread> workers_;
  std::atomic<bool> stopping_{false};
  std::mutex mu_;
  std::condition_variable worker_cv_;    // a worker waits for room ahead of the consumer
  std::condition_variable consumer_cv_;  // the consumer waits for its next batch
  int64_t next_claim_ = 0;               // next batch a worker will start
  int64_t next_deliver_ = 0;             // next batch next() returns
  std::map<int64_t, Batch> ready_;       // made, not yet taken
  int64_t failed_at_ = INT64_MAX;        // lowest batch whose making threw
  std::exception_ptr error_;
};

}  // namespace selfsup::data
