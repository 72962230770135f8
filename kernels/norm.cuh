#pragma once
// Instance normalization (PyTorch InstanceNorm2d, affine=False) fused with an activation.
// One block per (sample, channel) row of HW elements. Forward: two passes over the row for
// the mean and the biased variance (sum of squared deviations, no cancellation), then the
// normalized, activated output. Backward: the standard formula
//   dx = rstd * (g - mean(g) - xhat * mean(g * xhat)),  g = dy * act'(xhat).
#include <cuda_runtime.h>

#include <cstdint>

#include "common.cuh"

namespace disco {
namespace cuda {
namespace kern {

enum class NormAct : int { None = 0, Relu = 1, Leaky = 2 };

template <NormAct ACT>
__device__ __forceinline__ float norm_act(float v, float slope) {
  if (ACT == NormAct::Relu) return v > 0.f ? v : 0.f;
  if (ACT == NormAct::Leaky) return v > 0.f ? v : v * slope;
  return v;
}
template <NormAct ACT>
__device__ __forceinline__ float norm_act_grad(float xhat, float slope) {
  if (ACT == NormAct::Relu) return xhat > 0.f ? 1.f : 0.f;
  if (ACT == NormAct::Leaky) return xhat > 0.f ? 1.f : slope;
  return 1.f;
}

template <NormAct ACT>
__global__ void instance_norm_fwd_kernel(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ mean_out,
                                         float* __restrict__ rstd_out, int64_t HW, float eps, float slope) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * HW;
  float* yr = y + row * HW;
  float s[1] = {0.f};
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) s[0] += xr[i];
  block_sum<1>(s);
  const float mean = s[0] / float(HW);
  float q[1] = {0.f};
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    const float d = xr[i] - mean;
    q[0] += d * d;
  }
  block_sum<1>(q);
  const float var = q[0] / float(HW);
  const float rstd = 1.f / sqrtf(var + eps);
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) yr[i] = norm_act<ACT>((xr[i] - mean) * rstd, slope);
  if (threadIdx.x == 0) {
    if (mean_out) mean_out[row] = mean;
    if (rstd_out) rstd_out[row] = rstd;
  }
}

// xy is x (FROM_OUTPUT false) or y (true: xhat recovered from y; ACT None or Leaky, slope > 0).
template <NormAct ACT, bool FROM_OUTPUT>
__global__ void instance_norm_bwd_kernel(const float* __restrict__ dy, const float* __restrict__ xy,
                                         const float* __restrict__ mean, const float* __restrict__ rstd,
                                         float* __restrict__ dx, int64_t HW, float slope, bool accumulate) {
  const int64_t row = blockIdx.x;
  const float* dyr = dy + row * HW;
  const float* xr = xy + row * HW;
  float* dxr = dx + row * HW;
  const float mu = mean[row], rs = rstd[row];
  auto xhat_of = [&](int64_t i) -> float {
    const float v = xr[i];
    if (FROM_OUTPUT) return (ACT == NormAct::Leaky && !(v > 0.f)) ? v / slope : v;
    return (v - mu) * rs;
  };
  float s[2] = {0.f, 0.f};
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    const float xh = xhat_of(i);
    const float g = dyr[i] * norm_act_grad<ACT>(xh, slope);
    s[0] += g;
    s[1] += g * xh;
  }
  block_sum<2>(s);
  const float inv = 1.f / float(HW);
  const float mg = s[0] * inv, mgx = s[1] * inv;
  for (int64_t i = threadIdx.x; i < HW; i += blockDim.x) {
    const float xh = xhat_of(i);
    const float g = dyr[i] * norm_act_grad<ACT>(xh, slope);
    const float d = rs * (g - mg - xh * mgx);
    dxr[i] = accumulate ? dxr[i] + d : d;
  }
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
