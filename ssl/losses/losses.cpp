#include "ssl/losses/losses.h"

#include <limits>
#include <optional>

#include "kernels/cpu/sinkhorn.h"
#include "kernels/cuda/sinkhorn.h"

namespace selfsup::ssl {

namespace {

void check_pair(const char* op, const Tensor& a, const Tensor& b) {
  SELFSUP_CHECK(a.dim() == 2 && a.shape() == b.shape(), op,
                ": the two views must be [N, D] of one ", "shape, got ", shape_str(a.shape()),
                " and ", shape_str(b.shape()));
}

// Row-wise cosine similarity of two [N, D] batches: [N].
Tensor cosine_rows(const Tensor& a, const Tensor& b) {
  return sum(mul(normalize(a, 1), normalize(b, 1)), {1});
}

// Options for a constant that joins `like` in an op: its device, and dtype (like's by default).
TensorOptions like(const Tensor& t, std::optional<DType> dtype = std::nullopt) {
  return TensorOptions(dtype.value_or(t.dtype())).device(t.device());
}

// A [D, D] matrix with 1 off the diagonal and 0 on it, as a constant beside `z`.
Tensor off_diagonal_mask(int64_t d, const Tensor& z) {
  return sub(ones({d, d}, like(z)), eye(d, like(z)));
}

}  // namespace

Tensor nt_xent_loss(const Tensor& z1, const Tensor& z2, double temperature) {
  check_pair("nt_xent_loss", z1, z2);
  SELFSUP_CHECK(temperature > 0, "nt_xent_loss: temperature must be positive, got ", temperature);
  int64_t n = z1.size(0);
  Tensor z = normalize(cat({z1, z2}, 0), 1);                           // [2N, D]
  Tensor sim = mul(matmul(z, transpose(z, 0, 1)), 1.0 / temperature);  // [2N, 2N]
  // A row's similarity with itself is never a candidate: -1e9 makes its softmax weight 0.
  Tensor self_mask = mul(eye(2 * n, like(z1)), -1e9);
  std::vector<int64_t> positives(2 * n);
  for (int64_t i = 0; i < 2 * n; ++i)
    positives[i] = (i + n) % (2 * n);
  return cross_entropy(add(sim, self_mask), from_vector(positives, {2 * n}, like(z1, kInt64)));
}

Tensor info_nce_loss(const Tensor& q, const Tensor& k, const Tensor& queue, double temperature) {
  check_pair("info_nce_loss", q, k);
  SELFSUP_CHECK(queue.dim() == 2 && queue.size(1) == q.size(1), "info_nce_loss: queue ",
                shape_str(queue.shape()), " does not match queries ", shape_str(q.shape()));
  Tensor qn = normalize(q, 1);
  Tensor kn = normalize(k.detach(), 1), negatives = normalize(queue.detach(), 1);
  Tensor positive = sum(mul(qn, kn), {1}, true);             // [N, 1]
  Tensor negative = matmul(qn, transpose(negatives, 0, 1));  // [N, K]
  Tensor logits = mul(cat({positive, negative}, 1), 1.0 / temperature);
  return cross_entropy(logits, zeros({q.size(0)}, like(q, kInt64)));
}

Tensor byol_loss(const Tensor& p, const Tensor& z) {
  check_pair("byol_loss", p, z);
  return mean(sub(full({p.size(0)}, 2.0, like(p)), mul(cosine_rows(p, z.detach()), 2.0)));
}

Tensor simsiam_loss(const Tensor& p, const Tensor& z) {
  check_pair("simsiam_loss", p, z);
  return neg(mean(cosine_rows(p, z.detach())));
}

Tensor barlow_twins_loss(const Tensor& z1, const Tensor& z2, double lambda) {
  check_pair("barlow_twins_loss", z1, z2);
  return cross_correlation_loss(z1, z2, lambda);
}

namespace {

Tensor variance_hinge(const Tensor& z) {
  return mean(relu(sub(ones({z.size(1)}, like(z)), sqrt(add(var(z, {0}), 1e-4)))));
}

Tensor covariance_penalty(const Tensor& z) {
  int64_t n = z.size(0), d = z.size(1);
  Tensor centred = sub(z, mean(z, {0}, true));
  Tensor cov = mul(matmul(transpose(centred, 0, 1), centred), 1.0 / (n - 1));
  return mul(sum(square(mul(cov, off_diagonal_mask(d, z)))), 1.0 / d);
}

}  // namespace

VicregTerms vicreg_loss(const Tensor& z1, const Tensor& z2, double sim_weight, double var_weight,
                        double cov_weight) {
  check_pair("vicreg_loss", z1, z2);
  SELFSUP_CHECK(z1.size(0) > 1, "vicreg_loss: needs a batch of at least 2, got ", z1.size(0));
  VicregTerms t;
  t.invariance = mse_loss(z1, z2);
  t.variance = add(variance_hinge(z1), variance_hinge(z2));
  t.covariance = add(covariance_penalty(z1), covariance_penalty(z2));
  t.loss = add(add(mul(t.invariance, sim_weight), mul(t.variance, var_weight)),
               mul(t.covariance, cov_weight));
  return t;
}

Tensor triplet_loss(const Tensor& anchor, const Tensor& positive, const Tensor& negative,
                    double margin) {
  check_pair("triplet_loss", anchor, positive);
  check_pair("triplet_loss", anchor, negative);
  auto distance = [](const Tensor& a, const Tensor& b) {
    return sqrt(add(sum(square(sub(a, b)), {1}), 1e-12));
  };
  return mean(relu(add(sub(distance(anchor, positive), distance(anchor, negative)), margin)));
}

Tensor swav_codes(const Tensor& scores, double epsilon, int64_t iterations) {
  NoGradGuard no_grad;
  const Tensor s = scores.detach();
  Tensor q = empty(s.shape(), TensorOptions(s.dtype()).device(s.device()));
  if (s.device().is_cuda())
    cuda::sinkhorn(s, epsilon, iterations, q);
  else
    cpu::sinkhorn(s, epsilon, iterations, q);
  return q;
}

Tensor swav_loss(const std::vector<Tensor>& scores, const std::vector<Tensor>& codes,
                 double temperature) {
  SELFSUP_CHECK(scores.size() >= 2, "swav_loss: needs at least 2 views, got ", scores.size());
  SELFSUP_CHECK(!codes.empty() && codes.size() <= scores.size(), "swav_loss: ", codes.size(),
                " codes for ", scores.size(), " views (need 1 to ", scores.size(), ")");
  SELFSUP_CHECK(temperature > 0, "swav_loss: temperature must be > 0, got ", temperature);
  for (size_t s = 0; s < codes.size(); ++s)
    SELFSUP_CHECK(codes[s].shape() == scores[s].shape(), "swav_loss: codes ", s, " ",
                  shape_str(codes[s].shape()), " and scores ", shape_str(scores[s].shape()),
                  " differ");
  const double views = static_cast<double>(scores.size());
  Tensor total;
  for (size_t s = 0; s < codes.size(); ++s)
    for (size_t t = 0; t < scores.size(); ++t) {
      if (t == s) continue;
      Tensor term = cross_entropy_soft(mul(scores[t], 1.0 / temperature), codes[s]);
      total = total.defined() ? add(total, term) : term;
    }
  return mul(total, 1.0 / (static_cast<double>(codes.size()) * (views - 1)));
}

}  // namespace selfsup::ssl
