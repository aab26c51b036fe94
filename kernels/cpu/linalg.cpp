// Matrix products on the CPU: matmul and batched matmul.
//
//   out[M, N] = a[M, K] @ b[K, N]          out[i][j] = sum_k a[i][k] * b[k][j]
//
// FLOPs: 2*M*N*K. Minimum bytes moved: (M*K + K*N + M*N) * sizeof(T). For all but the thinnest
// shapes the FLOPs dominate (arithmetic intensity grows like min(M, N, K)), so the work is
// handed to Eigen's blocked, vectorised, OpenMP-parallel GEMM.
//
// Layouts: Eigen can read a matrix in place when one of its two strides is 1 — row-major
// (strides (ld, 1)) or column-major (strides (1, ld)), the latter being exactly a transposed
// view such as a.t(). Anything else (a stepped slice, an expanded dim) is copied to a
// contiguous buffer first. `out` may have any layout; if it is not contiguous (or overlaps an
// input) the product goes to a scratch buffer that is then copied in.
#include "kernels/cpu/linalg.h"

#include <omp.h>

#include <algorithm>
#include <type_traits>

#include "core/views.h"
#include "kernels/cpu/eigen.h"

namespace selfsup::cpu {

namespace {

// ------------------------------------------------------------------------------------------
// Checks shared by the four entry points
// ------------------------------------------------------------------------------------------

void check_operands(const char* op, const Tensor& a, const Tensor& b, const Tensor& out,
                    int64_t ndim) {
  SELFSUP_CHECK(a.defined() && b.defined() && out.defined(), op, ": undefined tensor");
  SELFSUP_CHECK(a.dim() == ndim && b.dim() == ndim, op, ": expects ", ndim,
                "-d tensors, got shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()));
  SELFSUP_CHECK(a.device().is_cpu() && b.device().is_cpu() && out.device().is_cpu(), op,
                ": CPU kernel called with a tensor on another device");
  SELFSUP_CHECK(is_floating(a.dtype()), op, ": expects float32 or float64, got ",
                dtype_name(a.dtype()));
  SELFSUP_CHECK(a.dtype() == b.dtype() && a.dtype() == out.dtype(), op, ": dtypes ",
                dtype_name(a.dtype()), ", ", dtype_name(b.dtype()), " and out ",
                dtype_name(out.dtype()), " differ");
  const int64_t k_a = a.size(ndim - 1), k_b = b.size(ndim - 2);
  SELFSUP_CHECK(k_a == k_b, op, ": shapes ", shape_str(a.shape()), " and ", shape_str(b.shape()),
                " do not match (", k_a, " != ", k_b, ")");
  if (ndim == 3)
    SELFSUP_CHECK(a.size(0) == b.size(0), op, ": shapes ", shape_str(a.shape()), " and ",
                  shape_str(b.shape()), " do not match (batch ", a.size(0), " != ", b.size(0), ")");
  Shape expected = a.shape();
  expected.back() = b.shape().back();
  SELFSUP_CHECK(out.shape() == expected, op, ": out has shape ", shape_str(out.shape()),
                ", expected ", shape_str(expected), " for ", shape_str(a.shape()), " @ ",
                shape_str(b.shape()));
}

// ------------------------------------------------------------------------------------------
// The references: a plain triple loop in (i, k, j) order, so the innermost loop walks a row of
// b and a row of out with the same stride. Reads any strides; writes out through its strides.
// ------------------------------------------------------------------------------------------

template <typename T>
void reference_gemm(const T* a, int64_t a_rs, int64_t a_cs,  // [M, K]
                    const T* b, int64_t b_rs, int64_t b_cs,  // [K, N]
                    T* out, int64_t o_rs, int64_t o_cs,      // [M, N]
                    int64_t m, int64_t n, int64_t k) {
  for (int64_t i = 0; i < m; ++i) {
    T* out_row = out + i * o_rs;
    for (int64_t j = 0; j < n; ++j)
      out_row[j * o_cs] = T(0);
    for (int64_t p = 0; p < k; ++p) {
      const T a_ip = a[i * a_rs + p * a_cs];
      const T* b_row = b + p * b_rs;
      for (int64_t j = 0; j < n; ++j)
        out_row[j * o_cs] += a_ip * b_row[j * b_cs];
    }
  }
}

template <typename T>
void reference_bmm_typed(const Tensor& a, const Tensor& b, Tensor& out) {
  const auto &as = a.strides(), &bs = b.strides(), &os = out.strides();
  const int64_t batch = a.size(0), m = a.size(1), k = a.size(2), n = b.size(2);
  for (int64_t i = 0; i < batch; ++i)
    reference_gemm(a.data_ptr<T>() + i * as[0], as[1], as[2],  //
                   b.data_ptr<T>() + i * bs[0], bs[1], bs[2],  //
                   out.data_ptr<T>() + i * os[0], os[1], os[2], m, n, k);
}

// ------------------------------------------------------------------------------------------
// Eigen path
// ------------------------------------------------------------------------------------------

// How a [rows, cols] matrix sits in memory, in the two layouts Eigen's GEMM reads directly.
struct MatrixLayout {
  bool row_major = true;
  int64_t ld = 0;  // the stride between rows (row-major) or columns (column-major)
};

// The layout of a matrix with the given sizes and strides, if Eigen can map it. A dim of size 1
// has a meaningless stride, so it never disqualifies a layout.
bool mappable_layout(int64_t rows, int64_t cols, int64_t row_stride, int64_t col_stride,
                     MatrixLayout& layout) {
  if (cols <= 1 || col_stride == 1) {
    const int64_t ld = rows <= 1 ? std::max<int64_t>(cols, 1) : row_stride;
    if (ld >= cols) {
      layout = {true, ld};
      return true;
    }
  }
  if (rows <= 1 || row_stride == 1) {
    const int64_t ld = cols <= 1 ? std::max<int64_t>(rows, 1) : col_stride;
    if (ld >= rows) {
      layout = {false, ld};
      return true;
    }
  }
  return false;
}

// A batch of matrices [B, rows, cols] (B = 1 for matmul) that Eigen can read: the tensor itself
// when its last two strides map, otherwise a contiguous copy.
struct MappedBatch {
  Tensor storage;  // keeps a copy alive when one was needed
  MatrixLayout layout;
  int64_t batch_stride = 0;
};

MappedBatch map_batch(const Tensor& t) {
  const int64_t nd = t.dim();
  const int64_t rows = t.size(nd - 2), cols = t.size(nd - 1);
  MappedBatch mb;
  mb.storage = t;
  if (!mappable_layout(rows, cols, t.stride(nd - 2), t.stride(nd - 1), mb.layout)) {
    mb.storage = raw::clone(t);
    mb.layout = {true, std::max<int64_t>(cols, 1)};
  }
  mb.batch_stride = nd == 3 ? mb.storage.stride(0) : 0;
  return mb;
}

template <typename T, int Order>
using ConstMatMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Order>,
                               Eigen::Unaligned, Eigen::OuterStride<>>;
template <typename T>
using OutMatMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>;

// One product out[M, N] (contiguous) = a[M, K] @ b[K, N] in the given layouts. The four layout
// pairs are four instantiations of the same Eigen expression.
template <typename T, int OrderA, int OrderB>
void eigen_gemm(const T* a, int64_t lda, const T* b, int64_t ldb, T* out, int64_t m, int64_t n,
                int64_t k) {
  ConstMatMap<T, OrderA> A(a, m, k, Eigen::OuterStride<>(lda));
  ConstMatMap<T, OrderB> B(b, k, n, Eigen::OuterStride<>(ldb));
  OutMatMap<T> C(out, m, n);
  C.noalias() = A * B;
}

template <typename T>
void eigen_gemm_any(const T* a, const MatrixLayout& la, const T* b, const MatrixLayout& lb, T* out,
                    int64_t m, int64_t n, int64_t k) {
  constexpr int R = Eigen::RowMajor, C = Eigen::ColMajor;
  if (la.row_major && lb.row_major) eigen_gemm<T, R, R>(a, la.ld, b, lb.ld, out, m, n, k);
  if (la.row_major && !lb.row_major) eigen_gemm<T, R, C>(a, la.ld, b, lb.ld, out, m, n, k);
  if (!la.row_major && lb.row_major) eigen_gemm<T, C, R>(a, la.ld, b, lb.ld, out, m, n, k);
  if (!la.row_major && !lb.row_major) eigen_gemm<T, C, C>(a, la.ld, b, lb.ld, out, m, n, k);
}

// Below this many multiply-adds per matrix a batch is split across threads (Eigen would not
// parallelise such a product well); above it, and with fewer matrices than threads, each
// product runs on all threads in turn.
constexpr int64_t kSmallGemmMacs = 128 * 128 * 128;
// Below this many multiply-adds a product (or a whole batch) runs on one thread: it takes
// ~100 us, so threads would save little, and on a busy machine a descheduled team member stalls the
// whole product at Eigen's barrier for a scheduler time slice (milliseconds).
constexpr int64_t kSerialGemmMacs = 1 << 20;

// Sets the calling thread's OpenMP team size for the guard's lifetime. The nthreads ICV is
// per thread, so other threads (and their matmuls) are unaffected.
class OmpThreadLimit {
 public:
  explicit OmpThreadLimit(int threads) : saved_(omp_get_max_threads()) {
    omp_set_num_threads(threads);
  }
  ~OmpThreadLimit() { omp_set_num_threads(saved_); }
  OmpThreadLimit(const OmpThreadLimit&) = delete;
  OmpThreadLimit& operator=(const OmpThreadLimit&) = delete;

 private:
  int saved_;
};

// out [B, M, N] contiguous; a [B, M, K] and b [B, K, N] any strides (B = 1 and no batch dim for
// matmul).
template <typename T>
void eigen_batched(const Tensor& a, const Tensor& b, T* out, int64_t batch, int64_t m, int64_t n,
                   int64_t k) {
  if (m == 0 || n == 0) return;
  if (k == 0) {  // an empty sum: zeros
    std::fill(out, out + batch * m * n, T(0));
    return;
  }
  const MappedBatch ma = map_batch(a), mb = map_batch(b);
  const T* a0 = ma.storage.template data_ptr<T>();
  const T* b0 = mb.storage.template data_ptr<T>();
  auto product = [&](int64_t i) {
    eigen_gemm_any(a0 + i * ma.batch_stride, ma.layout, b0 + i * mb.batch_stride, mb.layout,
                   out + i * m * n, m, n, k);
  };
  const int64_t macs = m * n * k;
  const bool split_batch = batch > 1 && batch * macs >= kSerialGemmMacs &&
                           (macs <= kSmallGemmMacs || batch >= omp_get_max_threads());
  if (split_batch) {
    // Inside this parallel region Eigen sees omp_get_num_threads() > 1 and stays
    // single-threaded, so the threads are not oversubscribed.
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < batch; ++i)
      product(i);
  } else if (macs < kSerialGemmMacs) {
    OmpThreadLimit one_thread(1);
    for (int64_t i = 0; i < batch; ++i)
      product(i);
  } else {
    for (int64_t i = 0; i < batch; ++i)
      product(i);  // each product uses every thread
  }
}

// Runs the product into `out` directly when it is contiguous and does not overlap an input,
// otherwise into a scratch tensor that is copied into `out` afterwards.
template <typename T>
void eigen_into(const Tensor& a, const Tensor& b, Tensor& out, int64_t batch) {
  const int64_t nd = a.dim();
  const int64_t m = a.size(nd - 2), k = a.size(nd - 1), n = b.size(nd - 1);
  const bool direct =
      out.is_contiguous() && !out.shares_storage_with(a) && !out.shares_storage_with(b);
  Tensor dst = direct ? out : empty(out.shape(), out.dtype());
  eigen_batched<T>(a, b, dst.data_ptr<T>(), batch, m, n, k);
  if (!direct) raw::copy_(out, dst);
}

}  // namespace

// ============================================================================================
// Entry points
// ============================================================================================

void matmul(const Tensor& a, const Tensor& b, Tensor& out) {
  check_operands("matmul", a, b, out, 2);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) eigen_into<T>(a, b, out, 1);
  });
}

void bmm(const Tensor& a, const Tensor& b, Tensor& out) {
  check_operands("bmm", a, b, out, 3);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) eigen_into<T>(a, b, out, a.size(0));
  });
}

void matmul_reference(const Tensor& a, const Tensor& b, Tensor& out) {
  check_operands("matmul_reference", a, b, out, 2);
  // View the matrices as a batch of one and reuse the batched loop.
  Tensor a3 = raw::unsqueeze(a, 0), b3 = raw::unsqueeze(b, 0), out3 = raw::unsqueeze(out, 0);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) reference_bmm_typed<T>(a3, b3, out3);
  });
}

void bmm_reference(const Tensor& a, const Tensor& b, Tensor& out) {
  check_operands("bmm_reference", a, b, out, 3);
  dispatch_dtype(a.dtype(), [&](auto tag) {
    using T = decltype(tag);
    if constexpr (std::is_floating_point_v<T>) reference_bmm_typed<T>(a, b, out);
  });
}

}  // namespace selfsup::cpu
