// Linear layers of disco::cuda on cuBLAS (row-major tensors mapped onto column-major GEMMs).
#include <cublas_v2.h>

#include "disco/backend/cuda/ops.hpp"
#include "internal.hpp"

#define DISCO_CUBLAS_CHECK(expr)                                                                            \
  do {                                                                                                      \
    const cublasStatus_t disco_bst_ = (expr);                                                               \
    if (disco_bst_ != CUBLAS_STATUS_SUCCESS)                                                                \
      ::disco::fail("cuBLAS error ", cublasGetStatusName(disco_bst_), " (", cublasGetStatusString(disco_bst_), \
                    ") at ", __FILE__, ":", __LINE__, " in `", #expr, "`");                                 \
  } while (0)

namespace disco {
namespace cuda {
namespace {

cublasHandle_t handle() {
  static cublasHandle_t h = [] {
    cublasHandle_t hh = nullptr;
    DISCO_CUBLAS_CHECK(cublasCreate(&hh));
    return hh;
  }();
  return h;
}

constexpr size_t kWorkspaceBytes = size_t(32) << 20;
void* workspace() {
  static void* w = [] {
    void* p = nullptr;
    DISCO_CUDA_CHECK(cudaMalloc(&p, kWorkspaceBytes));  // for the process' lifetime
    return p;
  }();
  return w;
}

cublasComputeType_t compute_type(MathMode m) {
  switch (m) {
    case MathMode::FP32: return CUBLAS_COMPUTE_32F;
    case MathMode::TF32: return CUBLAS_COMPUTE_32F_FAST_TF32;
    case MathMode::BF16: return CUBLAS_COMPUTE_32F_FAST_16BF;
  }
  return CUBLAS_COMPUTE_32F;
}

// Column-major C[m x n] = alpha op(A) op(B) (+ beta C), float storage.
void cublas_gemm(cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n, int64_t k, const float* A,
                 int64_t lda, const float* B, int64_t ldb, float beta, float* C, int64_t ldc, MathMode mode,
                 float alpha = 1.f) {
  const int64_t lim = (int64_t(1) << 31) - 1;
  DISCO_CHECK(m < lim && n < lim && k < lim && lda < lim && ldb < lim && ldc < lim,
              "gemm: dimensions exceed cuBLAS's 32-bit limit");
  cublasHandle_t h = handle();
  // Bind the handle to disco's current stream when that changed. cublasSetStream resets the
  // workspace to cuBLAS's own pool, which may allocate on a new stream; a fixed workspace
  // keeps every GEMM free of allocations (and so capturable in a CUDA graph; a capture runs
  // on the stream its warm-up steps bound). 32 MiB is NVIDIA's recommendation for Hopper.
  static cudaStream_t bound = nullptr;
  static bool any_bound = false;
  const cudaStream_t s = detail::stream();
  if (!any_bound || s != bound) {
    DISCO_CUBLAS_CHECK(cublasSetStream(h, s));
    DISCO_CUBLAS_CHECK(cublasSetWorkspace(h, workspace(), kWorkspaceBytes));
    bound = s;
    any_bound = true;
  }
  DISCO_CUBLAS_CHECK(cublasGemmEx(h, ta, tb, int(m), int(n), int(k), &alpha, A, CUDA_R_32F, int(lda), B, CUDA_R_32F,
                                  int(ldb), &beta, C, CUDA_R_32F, int(ldc), compute_type(mode), CUBLAS_GEMM_DEFAULT));
}

}  // namespace

void linear_fwd(const float* x, const float* w, const float* b, float* y, int64_t M, int64_t N, int64_t K,
                MathMode mode) {
  DISCO_CHECK(M >= 0 && N >= 0 && K >= 0, "linear_fwd: bad sizes M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  // y^T (N x M, col-major) = w (K x N col-major)^T * x^T (K x M col-major)
  cublas_gemm(CUBLAS_OP_T, CUBLAS_OP_N, N, M, K, w, K, x, K, 0.f, y, N, mode);
  if (b) add_channel_bias(y, b, y, M, N, 1);
}

void linear_bwd(const float* dy, const float* x, const float* w, float* dx, float* dw, float* db, int64_t M, int64_t N,
                int64_t K, bool accumulate, MathMode mode) {
  DISCO_CHECK(M >= 0 && N >= 0 && K >= 0, "linear_bwd: bad sizes M=", M, " N=", N, " K=", K);
  const float beta = accumulate ? 1.f : 0.f;
  if (dx && M > 0 && K > 0) cublas_gemm(CUBLAS_OP_N, CUBLAS_OP_N, K, M, N, w, K, dy, N, beta, dx, K, mode);  // dx = dy w
  if (dw && N > 0 && K > 0) cublas_gemm(CUBLAS_OP_N, CUBLAS_OP_T, K, N, M, x, K, dy, N, beta, dw, K, mode);  // dw = dy^T x
  if (db && N > 0) channel_sum(dy, db, M, N, 1, accumulate);
}

void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B,
          float beta, float* C, MathMode mode) {
  DISCO_CHECK(M >= 0 && N >= 0 && K >= 0, "gemm: bad sizes M=", M, " N=", N, " K=", K);
  if (M == 0 || N == 0) return;
  if (K == 0) {  // nothing to multiply: C = beta * C
    if (beta == 0.f) fill(C, M * N, 0.f);
    else if (beta != 1.f) scale(C, beta, C, M * N);
    return;
  }
  // Row-major C [M x N] is column-major C^T [N x M] (ld N): C^T = op(B)^T op(A)^T, where the
  // row-major storage of B (A) read column-major already is B^T (A^T) unless transposed.
  cublas_gemm(trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, N, M, K, B, trans_b ? K : N, A,
              trans_a ? M : K, beta, C, N, mode, alpha);
}

}  // namespace cuda
}  // namespace disco
