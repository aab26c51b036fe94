#include "ssl/eval/knn.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "core/views.h"
#include "kernels/cpu/eigen.h"

namespace selfsup::ssl {

namespace {

using RowMatrix = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Features as a float32 row-major Eigen matrix with unit-length rows.
RowMatrix normalised_rows(const Tensor& features, const char* what) {
  SELFSUP_CHECK(features.dim() == 2, "knn: ", what, " features must be [N, D], got ",
                shape_str(features.shape()));
  Tensor f = raw::to_dtype(raw::to_device(features.detach(), kCPU), kFloat32);
  RowMatrix m = Eigen::Map<const RowMatrix>(f.data_ptr<float>(), f.size(0), f.size(1));
  m.rowwise().normalize();
  return m;
}

std::vector<int64_t> labels_of(const Tensor& labels, int64_t n, int64_t num_classes,
                               const char* what) {
  SELFSUP_CHECK(labels.dim() == 1 && labels.size(0) == n, "knn: ", what, " labels ",
                shape_str(labels.shape()), " do not match ", n, " feature rows");
  std::vector<int64_t> v = labels.to_vector<int64_t>();
  for (int64_t y : v)
    SELFSUP_CHECK(y >= 0 && y < num_classes, "knn: ", what, " label ", y, " is outside [0, ",
                  num_classes, ")");
  return v;
}

}  // namespace

double knn_accuracy(const Tensor& train_features, const Tensor& train_labels,
                    const Tensor& test_features, const Tensor& test_labels, int64_t num_classes,
                    const KnnOptions& opts) {
  RowMatrix train = normalised_rows(train_features, "train");
  RowMatrix test = normalised_rows(test_features, "test");
  SELFSUP_CHECK(train.cols() == test.cols(), "knn: train features have ", train.cols(),
                " dims, test features ", test.cols());
  auto ytrain = labels_of(train_labels, train.rows(), num_classes, "train");
  auto ytest = labels_of(test_labels, test.rows(), num_classes, "test");
  const int64_t k = std::min<int64_t>(opts.k, train.rows());
  int64_t correct = 0;
  for (int64_t start = 0; start < test.rows(); start += opts.chunk) {
    int64_t rows = std::min<int64_t>(opts.chunk, test.rows() - start);
    RowMatrix sim = test.middleRows(start, rows) * train.transpose();  // [rows, N]
#pragma omp parallel for reduction(+ : correct) schedule(dynamic, 8)
    for (int64_t r = 0; r < rows; ++r) {
      std::vector<int64_t> order(train.rows());
      std::iota(order.begin(), order.end(), int64_t{0});
      const float* s = sim.row(r).data();
      std::partial_sort(order.begin(), order.begin() + k, order.end(),
                        [s](int64_t a, int64_t b) { return s[a] > s[b]; });
      std::vector<double> votes(num_classes, 0.0);
      for (int64_t j = 0; j < k; ++j)
        votes[ytrain[order[j]]] += std::exp(s[order[j]] / opts.temperature);
      int64_t predicted = std::max_element(votes.begin(), votes.end()) - votes.begin();
      correct += predicted == ytest[start + r];
    }
  }
  return test.rows() ? static_cast<double>(correct) / test.rows() : 0.0;
}

CollapseStats collapse_stats(const Tensor& embeddings) {
  RowMatrix z = normalised_rows(embeddings, "embedding");
  SELFSUP_CHECK(z.rows() >= 2, "collapse_stats: needs at least 2 embeddings, got ", z.rows());
  Eigen::MatrixXd zd = z.cast<double>();
  Eigen::RowVectorXd mu = zd.colwise().mean();
  Eigen::MatrixXd centred = zd.rowwise() - mu;
  Eigen::MatrixXd cov = centred.transpose() * centred / static_cast<double>(z.rows() - 1);
  CollapseStats s;
  s.mean_std = cov.diagonal().cwiseMax(0.0).cwiseSqrt().mean();
  s.reference_std = 1.0 / std::sqrt(static_cast<double>(z.cols()));
  Eigen::VectorXd eig = Eigen::SelfAdjointEigenSolver<Eigen::MatrixXd>(cov).eigenvalues();
  eig = eig.cwiseMax(0.0);
  double total = eig.sum();
  double entropy = 0;
  for (int64_t i = 0; i < eig.size(); ++i) {
    double p = total > 0 ? eig[i] / total : 0;
    if (p > 0) entropy -= p * std::log(p);
  }
  s.effective_rank = total > 0 ? std::exp(entropy) : 0.0;
  // Collapsed: the spread is a tenth of the sphere's, or all variance lies in about one
  // direction.
  s.collapsed = s.mean_std < 0.1 * s.reference_std || s.effective_rank < 1.5;
  return s;
}

}  // namespace selfsup::ssl
