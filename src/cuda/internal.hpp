#pragma once
// Private helpers of disco::cuda's implementation (not installed): error checks that throw
// disco::Error with file, line, expression and the CUDA error string, the current stream,
// device properties and scratch buffers from the caching allocator.
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>

#include "disco/backend/cuda/runtime.hpp"
#include "disco/core/error.hpp"

namespace disco {
namespace cuda {
namespace kern {
struct NhwcConvArgs;
}
namespace detail {

[[noreturn]] void throw_cuda_error(cudaError_t e, const char* expr, const char* file, int line);

inline cudaStream_t stream() { return static_cast<cudaStream_t>(get_stream()); }

// Grid size for grid-stride kernels: enough blocks to cover n (capped at 8 per SM), >= 1.
int grid_for(int64_t n, int block = 256, int per_thread = 1);

// Scratch device memory from the caching allocator, returned at scope exit. Reuse by later
// allocations is ordered on the current stream, so no synchronization is needed.
class Scratch {
 public:
  Scratch() = default;
  explicit Scratch(size_t bytes) : p_(device_malloc(bytes)) {}
  ~Scratch() {
    try {
      device_free(p_);
    } catch (...) {
    }
  }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  template <class T>
  T* as() const { return static_cast<T*>(p_); }

 private:
  void* p_ = nullptr;
};

// The wgmma convolution kernels (kernels/conv2d_wgmma.cuh, src/cuda/conv_wgmma.cu): whether
// they run on the current device (an sm_90a build on compute capability 9.0), and a launch of
// the fprop, dgrad or wgrad kernel (kind: int(convidx::ConvKind)) with bn (128 or 64) columns
// a block on operands packed channels-last (BF16, or with tf32 FP32 packs rounded to TF32;
// wgrad: BF16 only).
bool wgmma_supported();
void launch_conv_wgmma(int kind, int bn, bool tf32, const kern::NhwcConvArgs& args, dim3 grid);

}  // namespace detail
}  // namespace cuda
}  // namespace disco

#define DISCO_CUDA_CHECK(expr)                                                             \
  do {                                                                                     \
    const cudaError_t disco_err_ = (expr);                                                 \
    if (disco_err_ != cudaSuccess)                                                         \
      ::disco::cuda::detail::throw_cuda_error(disco_err_, #expr, __FILE__, __LINE__);      \
  } while (0)

// After a kernel launch: configuration errors surface here (execution errors surface at the
// next synchronizing call, which checks too).
#define DISCO_CUDA_CHECK_LAUNCH() DISCO_CUDA_CHECK(cudaGetLastError())
