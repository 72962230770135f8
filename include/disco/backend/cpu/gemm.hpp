#pragma once
// Row-major GEMM on raw pointers, on top of Eigen's blocked GEMM.
//
//   C[M x N] = op(A) * op(B)        (accumulate == false)
//   C[M x N] += op(A) * op(B)       (accumulate == true)
//
// op(A) is A ([M x K], leading dimension lda) or, with trans_a, A^T where A is stored
// [K x M]; likewise B. All matrices are row-major with explicit leading dimensions.
// Eigen parallelises a large product over omp_get_max_threads() (Eigen::setNbThreads)
// unless it is called from inside an OpenMP parallel region, where it runs serially.
#include <cstdint>

#include <Eigen/Core>

namespace disco::cpu {

template <class T>
using RowMatMap = Eigen::Map<Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>, 0,
                             Eigen::OuterStride<>>;
template <class T>
using ConstRowMatMap = Eigen::Map<const Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>,
                                  0, Eigen::OuterStride<>>;

template <class T>
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, const T* A, int64_t lda,
          const T* B, int64_t ldb, T* C, int64_t ldc, bool accumulate) {
  if (M <= 0 || N <= 0) return;
  RowMatMap<T> c(C, M, N, Eigen::OuterStride<>(ldc));
  if (K <= 0) {
    if (!accumulate) c.setZero();
    return;
  }
  ConstRowMatMap<T> a(A, trans_a ? K : M, trans_a ? M : K, Eigen::OuterStride<>(lda));
  ConstRowMatMap<T> b(B, trans_b ? N : K, trans_b ? K : N, Eigen::OuterStride<>(ldb));
  if (!trans_a && !trans_b) {
    if (accumulate) c.noalias() += a * b; else c.noalias() = a * b;
  } else if (trans_a && !trans_b) {
    if (accumulate) c.noalias() += a.transpose() * b; else c.noalias() = a.transpose() * b;
  } else if (!trans_a && trans_b) {
    if (accumulate) c.noalias() += a * b.transpose(); else c.noalias() = a * b.transpose();
  } else {
    if (accumulate) c.noalias() += a.transpose() * b.transpose();
    else c.noalias() = a.transpose() * b.transpose();
  }
}

}  // namespace disco::cpu
