// The cuBLAS calls of src/cuda/blas.cpp, emulated on the host (tests/emu_backend, README.md):
// handles, stream / workspace binding and cublasGemmEx on float column-major data with
// CUBLAS_COMPUTE_32F (exact products, double sums), _FAST_TF32 (inputs rounded to TF32, to
// nearest, ties away) and _FAST_16BF (inputs rounded to BF16, to nearest even). The GEMM is a
// stream operation: it runs at once or is recorded into a capturing stream's graph.
#include <cublas_v2.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <vector>

#include "emu_runtime.hpp"

struct cublasContext {
  cudaStream_t stream = nullptr;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
};

namespace {

float round_tf32(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0x1000u) & 0xffffe000u;
  std::memcpy(&x, &b, 4);
  return x;
}
float round_bf16(float x) {
  uint32_t b;
  std::memcpy(&b, &x, 4);
  if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0x7fffu + ((b >> 16) & 1u)) & 0xffff0000u;
  std::memcpy(&x, &b, 4);
  return x;
}

bool device_matrix(const void* p, int rows, int cols, int ld) {
  if (rows == 0 || cols == 0) return true;
  return disco_emu::is_device_range(p, (size_t(ld) * size_t(cols - 1) + size_t(rows)) * sizeof(float));
}

cublasStatus_t bad(const char* what) {
  std::fprintf(stderr, "disco CUDA emulation: cublasGemmEx: %s\n", what);
  return CUBLAS_STATUS_INVALID_VALUE;
}

}  // namespace

cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  *handle = new cublasContext;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  delete handle;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t streamId) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  handle->stream = streamId;
  handle->workspace = nullptr;  // as the real one: back to cuBLAS's own workspace pool
  handle->workspace_bytes = 0;
  return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t workspaceSizeInBytes) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (workspaceSizeInBytes > 0 && (!workspace || reinterpret_cast<uintptr_t>(workspace) % 256 != 0 ||
                                   !disco_emu::is_device_range(workspace, workspaceSizeInBytes)))
    return CUBLAS_STATUS_INVALID_VALUE;
  handle->workspace = workspace;
  handle->workspace_bytes = workspaceSizeInBytes;
  return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    default: return "CUBLAS_STATUS_UNKNOWN";
  }
}
const char* cublasGetStatusString(cublasStatus_t s) {
  switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    default: return cublasGetStatusName(s);
  }
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType Atype, int lda, const void* B,
                            cudaDataType Btype, int ldb, const void* beta, void* C, cudaDataType Ctype, int ldc,
                            cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (Atype != CUDA_R_32F || Btype != CUDA_R_32F || Ctype != CUDA_R_32F)
    return CUBLAS_STATUS_NOT_SUPPORTED;  // (the only types disco uses; real cuBLAS supports more)
  if (computeType != CUBLAS_COMPUTE_32F && computeType != CUBLAS_COMPUTE_32F_FAST_TF32 &&
      computeType != CUBLAS_COMPUTE_32F_FAST_16BF)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (transa != CUBLAS_OP_N && transa != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (transb != CUBLAS_OP_N && transb != CUBLAS_OP_T) return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m < 0 || n < 0 || k < 0) return bad("negative size");
  const bool ta = transa == CUBLAS_OP_T, tb = transb == CUBLAS_OP_T;
  const int a_rows = ta ? k : m, a_cols = ta ? m : k;  // as stored (column-major)
  const int b_rows = tb ? n : k, b_cols = tb ? k : n;
  if (lda < (a_rows > 1 ? a_rows : 1) || ldb < (b_rows > 1 ? b_rows : 1) || ldc < (m > 1 ? m : 1))
    return bad("leading dimension too small");
  if (!alpha || !beta) return bad("null alpha / beta");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  // pointer mode host (the default): alpha and beta are read now
  const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
  if (k > 0 && al != 0.f && (!device_matrix(A, a_rows, a_cols, lda) || !device_matrix(B, b_rows, b_cols, ldb)))
    return bad("A or B is not inside one device allocation");
  if (!device_matrix(C, m, n, ldc)) return bad("C is not inside one device allocation");
  const auto* a = static_cast<const float*>(A);
  const auto* b = static_cast<const float*>(B);
  auto* c = static_cast<float*>(C);
  const cublasComputeType_t ct = computeType;
  const cudaError_t e = disco_emu::enqueue(handle->stream, "cublasGemmEx", [=] {
    auto rd = [ct](float v) {
      return ct == CUBLAS_COMPUTE_32F_FAST_TF32 ? round_tf32(v) : ct == CUBLAS_COMPUTE_32F_FAST_16BF ? round_bf16(v) : v;
    };
    std::vector<double> col(static_cast<size_t>(k));
    for (int j = 0; j < n; ++j) {
      for (int p = 0; p < k; ++p) col[size_t(p)] = rd(tb ? b[size_t(j) + size_t(p) * ldb] : b[size_t(p) + size_t(j) * ldb]);
      for (int i = 0; i < m; ++i) {
        double s = 0;
        if (al != 0.f)
          for (int p = 0; p < k; ++p)
            s += double(rd(ta ? a[size_t(p) + size_t(i) * lda] : a[size_t(i) + size_t(p) * lda])) * col[size_t(p)];
        float& out = c[size_t(i) + size_t(j) * ldc];
        out = be == 0.f ? float(double(al) * s) : float(double(al) * s + double(be) * double(out));
      }
    }
  });
  return e == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
}
