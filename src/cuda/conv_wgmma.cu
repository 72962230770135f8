// Host side of the wgmma convolution kernels (kernels/conv2d_wgmma.cuh): whether they can run
// here, and their launch. This translation unit is compiled for sm_90a only (cmake/DiscoCuda.cmake:
// target disco_cuda_wgmma, which defines DISCO_WGMMA_SM90A), because wgmma is an
// architecture-specific feature of compute capability 9.0; without that compiler support it is
// compiled like the rest of the backend and the kernels are never offered.
#include <atomic>
#include <cstdint>

#include "internal.hpp"
#include "kernels/conv2d_wgmma.cuh"

namespace disco {
namespace cuda {
namespace detail {

bool wgmma_supported() {
#if defined(DISCO_KERNEL_EMULATION)
  return true;  // the CPU emulation runs the kernels through its wgmma model
#elif defined(DISCO_WGMMA_SM90A)
  static std::atomic<int> state[64] = {};  // per device: 0 unknown, 1 yes, 2 no
  int dev = 0;
  DISCO_CUDA_CHECK(cudaGetDevice(&dev));
  if (dev < 0 || dev >= 64) return false;
  int s = state[dev].load(std::memory_order_acquire);
  if (s == 0) {
    int major = 0, minor = 0;
    DISCO_CUDA_CHECK(cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, dev));
    DISCO_CUDA_CHECK(cudaDeviceGetAttribute(&minor, cudaDevAttrComputeCapabilityMinor, dev));
    bool ok = major == 9 && minor == 0;
    if (ok) {  // the sm_90a image must load on this device
      cudaFuncAttributes attr{};
      ok = cudaFuncGetAttributes(&attr, kern::conv_wgmma_kernel<convidx::NhwcFprop>) == cudaSuccess;
      (void)cudaGetLastError();
    }
    s = ok ? 1 : 2;
    state[dev].store(s, std::memory_order_release);
  }
  return s == 1;
#else
  return false;
#endif
}

namespace {
template <class Kernel>
void opt_in_wgmma_smem(Kernel kernel, std::atomic<uint64_t>& opted_in) {
  int dev = 0;
  DISCO_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = dev >= 0 && dev < 64 ? uint64_t(1) << dev : 0;
  if (!bit || !(opted_in.load(std::memory_order_acquire) & bit)) {
    DISCO_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kern::conv_wgmma_smem_bytes())));
    opted_in.fetch_or(bit, std::memory_order_release);
  }
}
}  // namespace

void launch_conv_wgmma(bool fprop, const kern::NhwcConvArgs& args, dim3 grid) {
  DISCO_CHECK(wgmma_supported(), "conv (custom): the wgmma kernels need an sm_90a build on a compute capability 9.0 GPU");
  constexpr size_t smem = kern::conv_wgmma_smem_bytes();
  static std::atomic<uint64_t> opted_fprop{0}, opted_dgrad{0};
  if (fprop) {
    opt_in_wgmma_smem(kern::conv_wgmma_kernel<convidx::NhwcFprop>, opted_fprop);
    kern::conv_wgmma_kernel<convidx::NhwcFprop><<<grid, kern::WgmmaTile::kThreads, smem, stream()>>>(args);
  } else {
    opt_in_wgmma_smem(kern::conv_wgmma_kernel<convidx::NhwcDgrad>, opted_dgrad);
    kern::conv_wgmma_kernel<convidx::NhwcDgrad><<<grid, kern::WgmmaTile::kThreads, smem, stream()>>>(args);
  }
  DISCO_CUDA_CHECK_LAUNCH();
}

}  // namespace detail
}  // namespace cuda
}  // namespace disco
