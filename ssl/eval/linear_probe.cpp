#include "ssl/eval/linear_probe.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "autograd/ops.h"
#include "core/views.h"
#include "nn/layers.h"
#include "nn/optim.h"
#include "nn/schedule.h"

namespace selfsup::ssl {

namespace {

// A contiguous float32 CPU copy (or the tensor itself when it already is one), cut from any
// graph.
Tensor as_float32(const Tensor& t) {
  Tensor cpu = raw::to_device(t.detach(), kCPU);
  return raw::contiguous(raw::to_dtype(cpu, kFloat32));
}

void check_features(const Tensor& f, const char* what) {
  SELFSUP_CHECK(f.defined(), "linear_probe: ", what, " features are undefined");
  SELFSUP_CHECK(f.dim() == 2, "linear_probe: ", what, " features must be [N, D], got ",
                shape_str(f.shape()));
  SELFSUP_CHECK(f.dtype() == kFloat32 || f.dtype() == kFloat64, "linear_probe: ", what,
                " features must be float32 or float64, got ", dtype_name(f.dtype()));
  SELFSUP_CHECK(f.size(0) > 0, "linear_probe: ", what, " features are empty ",
                shape_str(f.shape()));
}

// Every element finite: a NaN would otherwise spread through the probe and end as a silent
// chance-level score.
void check_finite(const Tensor& f32, const char* what) {
  const float* p = f32.data_ptr<float>();
  const int64_t n = f32.numel();
  int64_t bad = -1;
  for (int64_t i = 0; i < n && bad < 0; ++i)
    if (!std::isfinite(p[i])) bad = i;
  SELFSUP_CHECK(bad < 0, "linear_probe: ", what, " features hold a non-finite value (", p[bad],
                ") at row ", bad / f32.size(1), ", column ", bad % f32.size(1));
}

void check_labels(const Tensor& labels, int64_t rows, int64_t num_classes, const char* what) {
  SELFSUP_CHECK(labels.defined() && labels.dim() == 1 && labels.size(0) == rows,
                "linear_probe: ", what, " labels ",
                labels.defined() ? shape_str(labels.shape()) : "(undefined)", " do not match ",
                rows, " feature rows");
  SELFSUP_CHECK(labels.dtype() == kInt64, "linear_probe: ", what, " labels must be int64, got ",
                dtype_name(labels.dtype()));
  for (int64_t y : labels.to_vector<int64_t>())
    SELFSUP_CHECK(y >= 0 && y < num_classes, "linear_probe: ", what, " label ", y,
                  " is outside [0, ", num_classes, ")");
}

void check_options(const LinearProbeOptions& o, int64_t num_classes) {
  SELFSUP_CHECK(num_classes >= 2, "linear_probe: num_classes must be at least 2, got ",
                num_classes);
  SELFSUP_CHECK(o.epochs >= 1, "linear_probe: epochs must be positive, got ", o.epochs);
  SELFSUP_CHECK(o.batch_size >= 1, "linear_probe: batch_size must be positive, got ", o.batch_size);
  SELFSUP_CHECK(o.lr > 0 && std::isfinite(o.lr), "linear_probe: lr must be positive, got ", o.lr);
  SELFSUP_CHECK(o.weight_decay >= 0, "linear_probe: weight_decay must be >= 0, got ",
                o.weight_decay);
}

// Runs the calling thread's OpenMP regions on one thread for the guard's lifetime (the nthreads
// ICV is per thread: other threads are unaffected). A probe step is a [B, D] x [D, C] product
// with C ~ 10: microseconds of work, which a thread team only slows down, and on a busy machine
// a descheduled team member stalls every step for a scheduler time slice.
class SingleThreaded {
 public:
  SingleThreaded() : saved_(omp_get_max_threads()) { omp_set_num_threads(1); }
  ~SingleThreaded() { omp_set_num_threads(saved_); }
  SingleThreaded(const SingleThreaded&) = delete;
  SingleThreaded& operator=(const SingleThreaded&) = delete;

 private:
  int saved_;
};

// Logits of features [N, D] in one no-grad pass.
Tensor predict(nn::Linear& head, const Tensor& features) {
  NoGradGuard no_grad;
  return head.forward(features);
}

}  // namespace

// ---------------------------------------------------------------- standardisation

Standardizer Standardizer::fit(const Tensor& features) {
  check_features(features, "train");
  Tensor f = as_float32(features);
  const int64_t n = f.size(0), d = f.size(1);
  const float* x = f.data_ptr<float>();
  // Two passes in double: the mean, then the squared deviations from it (no cancellation).
  std::vector<double> mean(d, 0.0), var(d, 0.0);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      mean[j] += x[i * d + j];
  for (double& m : mean)
    m /= static_cast<double>(n);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j) {
      double dev = x[i * d + j] - mean[j];
      var[j] += dev * dev;
    }
  Standardizer s{empty({d}, kFloat32), empty({d}, kFloat32)};
  float* m_out = s.mean.data_ptr<float>();
  float* inv_out = s.inv_std.data_ptr<float>();
  for (int64_t j = 0; j < d; ++j) {
    double sd = std::sqrt(var[j] / static_cast<double>(n));
    // Constant up to float rounding of its own values (sd == 0 included): such noise must not
    // be blown up to unit variance.
    bool constant = sd <= 1e-6 * std::abs(mean[j]);
    m_out[j] = static_cast<float>(mean[j]);
    inv_out[j] = constant ? 0.0f : static_cast<float>(1.0 / sd);
  }
  return s;
}

Tensor Standardizer::apply(const Tensor& features) const {
  SELFSUP_CHECK(features.defined() && features.dim() == 2, "Standardizer: features must be ",
                "[N, D], got ", features.defined() ? shape_str(features.shape()) : "(undefined)");
  SELFSUP_CHECK(features.size(1) == mean.numel(), "Standardizer: features ",
                shape_str(features.shape()), " do not have the ", mean.numel(),
                " dims it was fitted on");
  Tensor f = as_float32(features);
  Tensor out = empty(f.shape(), kFloat32);
  const int64_t n = f.size(0), d = f.size(1);
  const float* x = f.data_ptr<float>();
  const float* m = mean.data_ptr<float>();
  const float* inv = inv_std.data_ptr<float>();
  float* y = out.data_ptr<float>();
#pragma omp parallel for schedule(static) if (n * d > 262144)
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < d; ++j)
      y[i * d + j] = (x[i * d + j] - m[j]) * inv[j];
  return out;
}

// ---------------------------------------------------------------- accuracy

double top1_accuracy(const Tensor& logits, const Tensor& labels) {
  SELFSUP_CHECK(logits.dim() == 2 && labels.dim() == 1 && labels.size(0) == logits.size(0),
                "top1_accuracy: logits ", shape_str(logits.shape()), " and labels ",
                shape_str(labels.shape()), " do not match");
  if (logits.size(0) == 0) return 0.0;
  std::vector<int64_t> predicted = argmax(logits.detach(), 1).to_vector<int64_t>();
  std::vector<int64_t> truth = labels.to_vector<int64_t>();
  int64_t correct = 0;
  for (size_t i = 0; i < truth.size(); ++i)
    correct += predicted[i] == truth[i];
  return static_cast<double>(correct) / static_cast<double>(truth.size());
}

// ---------------------------------------------------------------- the probe

LinearProbeResult linear_probe(const Tensor& train_features, const Tensor& train_labels,
                               const Tensor& test_features, const Tensor& test_labels,
                               int64_t num_classes, const LinearProbeOptions& options) {
  check_options(options, num_classes);
  check_features(train_features, "train");
  check_features(test_features, "test");
  SELFSUP_CHECK(train_features.size(1) == test_features.size(1), "linear_probe: train features ",
                shape_str(train_features.shape()), " and test features ",
                shape_str(test_features.shape()), " differ in their dims");
  const int64_t n = train_features.size(0), d = train_features.size(1);
  check_labels(train_labels, n, num_classes, "train");
  check_labels(test_labels, test_features.size(0), num_classes, "test");

  Tensor train32 = as_float32(train_features), test32 = as_float32(test_features);
  check_finite(train32, "train");
  check_finite(test32, "test");
  Standardizer standardizer = Standardizer::fit(train32);
  Tensor x_train = standardizer.apply(train32);  // [N, D]
  Tensor x_test = standardizer.apply(test32);    // [M, D]
  Tensor y_train = raw::contiguous(train_labels);

  Generator gen(options.seed);
  nn::Linear head(d, num_classes, true, &gen);
  optim::AdamW optimizer(head.parameters(),
                         optim::AdamWOptions{options.lr, 0.9, 0.999, 1e-8, options.weight_decay});
  const int64_t batch = std::min(options.batch_size, n);
  const int64_t steps_per_epoch = (n + batch - 1) / batch;
  optim::CosineSchedule schedule{options.lr, 0.0, 0, options.epochs * steps_per_epoch};

  LinearProbeResult result;
  SingleThreaded single_threaded;
  for (int64_t epoch = 0; epoch < options.epochs; ++epoch) {
    Tensor order = randperm(n, &gen);  // int64 [N]
    double epoch_loss = 0;
    for (int64_t start = 0; start < n; start += batch) {
      Tensor idx = raw::narrow(order, 0, start, std::min(batch, n - start));
      schedule.apply(optimizer, result.steps);
      Tensor loss =
          cross_entropy(head.forward(index_select(x_train, 0, idx)), index_select(y_train, 0, idx));
      optimizer.zero_grad();
      loss.backward();
      optimizer.step();
      epoch_loss += loss.item();
      ++result.steps;
    }
    result.final_loss = epoch_loss / static_cast<double>(steps_per_epoch);
  }
  result.train_top1 = top1_accuracy(predict(head, x_train), y_train);
  result.test_top1 = top1_accuracy(predict(head, x_test), test_labels);
  return result;
}

}  // namespace selfsup::ssl
