// Host side of the wgmma convolution kernels (kernels/conv2d_wgmma.cuh): whether they can run
// here, and their launch. This translation unit is compiled for sm_90a only (cmake/DiscoCuda.cmake:
// target disco_cuda_wgmma, which defines DISCO_WGMMA_SM90A), because wgmma is an
// architecture-specific feature of compute capability 9.0; without that compiler support it is
// compiled like the rest of the backend and the kernels are never offered.
#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <string>

#include "internal.hpp"
#include "kernels/conv2d_wgmma.cuh"

namespace disco {
namespace cuda {
namespace detail {

// DISCO_WGMMA=0 in the environment switches them off (tools/gpu_check.sh does when its probe
// of them fails).
bool wgmma_switched_off() {
  const char* e = std::getenv("DISCO_WGMMA");
  return e != nullptr && std::string(e) == "0";
}

bool wgmma_supported() {
  static const bool off = wgmma_switched_off();
  if (off) return false;
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
      ok = cudaFuncGetAttributes(&attr, kern::conv_wgmma_kernel<convidx::NhwcFprop, 128>) == cudaSuccess;
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
void opt_in_wgmma_smem(Kernel kernel, size_t smem, std::atomic<uint64_t>& opted_in) {
  int dev = 0;
  DISCO_CUDA_CHECK(cudaGetDevice(&dev));
  const uint64_t bit = dev >= 0 && dev < 64 ? uint64_t(1) << dev : 0;
  if (!bit || !(opted_in.load(std::memory_order_acquire) & bit)) {
    DISCO_CUDA_CHECK(
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    opted_in.fetch_or(bit, std::memory_order_release);
  }
}
}  // namespace

template <class View, int BN, class T>
void launch_wgmma_tile(const kern::NhwcConvArgs& args, dim3 grid) {
  constexpr size_t smem = kern::conv_wgmma_smem_bytes<BN>();
  static std::atomic<uint64_t> opted_in{0};
  opt_in_wgmma_smem(kern::conv_wgmma_kernel<View, BN, T>, smem, opted_in);
  kern::conv_wgmma_kernel<View, BN, T><<<grid, kern::WgmmaTile<BN>::kThreads, smem, stream()>>>(args);
  DISCO_CUDA_CHECK_LAUNCH();
}

template <int BN>
void launch_wgmma_wgrad(const kern::NhwcConvArgs& args, dim3 grid) {
  constexpr size_t smem = kern::conv_wgmma_smem_bytes<BN>();
  static std::atomic<uint64_t> opted_in{0};
  opt_in_wgmma_smem(kern::conv_wgrad_wgmma_kernel<BN>, smem, opted_in);
  kern::conv_wgrad_wgmma_kernel<BN><<<grid, kern::WgmmaTile<BN>::kThreads, smem, stream()>>>(args);
  DISCO_CUDA_CHECK_LAUNCH();
}

template <class Fprop, class Dgrad, class T>
void launch_wgmma_view(bool fprop, int bn, const kern::NhwcConvArgs& args, dim3 grid) {
  if (fprop && bn == 128)
    launch_wgmma_tile<Fprop, 128, T>(args, grid);
  else if (fprop)
    launch_wgmma_tile<Fprop, 64, T>(args, grid);
  else if (bn == 128)
    launch_wgmma_tile<Dgrad, 128, T>(args, grid);
  else
    launch_wgmma_tile<Dgrad, 64, T>(args, grid);
}

void launch_conv_wgmma(int kind, int bn, bool tf32, const kern::NhwcConvArgs& args, dim3 grid) {
  DISCO_CHECK(wgmma_supported(), "conv (custom): the wgmma kernels need an sm_90a build on a compute capability 9.0 GPU");
  DISCO_CHECK(bn == 64 || bn == 128, "conv (custom): no wgmma tile with ", bn, " columns");
  const bool fprop = kind == int(convidx::ConvKind::Fprop);
  if (kind == int(convidx::ConvKind::Wgrad)) {
    DISCO_CHECK(!tf32, "conv (custom): the wgmma weight gradient is BF16 only (TF32 operands cannot be MN-major)");
    if (bn == 128)
      launch_wgmma_wgrad<128>(args, grid);
    else
      launch_wgmma_wgrad<64>(args, grid);
  } else if (tf32) {
    launch_wgmma_view<convidx::NhwcFprop32, convidx::NhwcDgrad32, float>(fprop, bn, args, grid);
  } else {
    launch_wgmma_view<convidx::NhwcFprop, convidx::NhwcDgrad, __nv_bfloat16>(fprop, bn, args, grid);
  }
}

}  // namespace detail
}  // namespace cuda
}  // namespace disco
