#include "ssl/eval/features.h"

#include <algorithm>

#include "autograd/ops.h"
#include "core/views.h"

namespace selfsup::ssl {

namespace {

int64_t clamp_limit(const data::Dataset& dataset, int64_t limit) {
  return limit > 0 ? std::min(limit, dataset.size()) : dataset.size();
}

}  // namespace

Tensor images_as_float(const data::Dataset& dataset, int64_t first, int64_t count) {
  Tensor bytes = raw::narrow(dataset.images, 0, first, count);
  Tensor out = empty(bytes.shape(), kFloat32);
  const uint8_t* src = bytes.data_ptr<uint8_t>();
  float* dst = out.data_ptr<float>();
  const int64_t n = out.numel();
#pragma omp parallel for schedule(static) if (n > 65536)
  for (int64_t i = 0; i < n; ++i)
    dst[i] = src[i] * (1.0f / 255.0f);
  return out;
}

Tensor extract_features(nn::Module& encoder, const data::Dataset& dataset, int64_t limit,
                        int64_t batch_size) {
  const int64_t n = clamp_limit(dataset, limit);
  const bool was_training = encoder.is_training();
  encoder.eval();
  NoGradGuard no_grad;
  // Images go to the encoder's device and features come back to the host, batch by batch.
  const Device device = encoder.device();
  std::vector<Tensor> parts;
  for (int64_t start = 0; start < n; start += batch_size) {
    int64_t count = std::min(batch_size, n - start);
    Tensor features =
        encoder.forward(raw::to_device(images_as_float(dataset, start, count), device));
    parts.push_back(raw::to_device(raw::contiguous(features), kCPU));
  }
  encoder.train(was_training);
  SELFSUP_CHECK(!parts.empty(), "extract_features: dataset ", dataset.name, " is empty");
  return raw::to_dtype(cat(parts, 0), kFloat32);
}

Tensor first_labels(const data::Dataset& dataset, int64_t limit) {
  return raw::clone(raw::narrow(dataset.labels, 0, 0, clamp_limit(dataset, limit)));
}

}  // namespace selfsup::ssl
