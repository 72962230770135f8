#pragma once
// Instance normalization (PyTorch InstanceNorm2d, affine=False) fused with an activation.
// One block per (sample, channel) row of HW elements. Forward: two passes over the row for
// the mean and the biased variance (sum of squared deviations, no cancellation), then the
// normalized, activated output (float4 loads / stores when the rows allow, see norm_vec4).
// Backward: the standard formula
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

// The rows are read and written as float4 groups when HW % 4 == 0 and every array is 16-byte
// aligned (checked in the kernel: the same answer for every thread), one by one otherwise.
__device__ __forceinline__ bool norm_vec4(int64_t HW, const void* a, const void* b, const void* c = nullptr) {
  return (HW & 3) == 0 &&
         ((reinterpret_cast<uintptr_t>(a) | reinterpret_cast<uintptr_t>(b) | reinterpret_cast<uintptr_t>(c)) & 15u) == 0;
}

template <NormAct ACT>
__global__ void instance_norm_fwd_kernel(const float* __restrict__ x, float* __restrict__ y, float* __restrict__ mean_out,
                                         float* __restrict__ rstd_out, int64_t HW, float eps, float slope) {
  const int64_t row = blockIdx.x;
  const float* xr = x + row * HW;
  float* yr = y + row * HW;
  const int64_t nv = norm_vec4(HW, x, y) ? HW / 4 : 0;  // float4 groups; elements [4 nv, HW) one by one
  float s[1] = {0.f};
  for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
    const float4 v = ld4(xr, j);
    s[0] += v.x;
    s[0] += v.y;
    s[0] += v.z;
    s[0] += v.w;
  }
  for (int64_t i = 4 * nv + threadIdx.x; i < HW; i += blockDim.x) s[0] += xr[i];
  block_sum<1>(s);
  const float mean = s[0] / float(HW);
  float q[1] = {0.f};
  auto sq = [mean](float v) { return (v - mean) * (v - mean); };
  for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
    const float4 v = ld4(xr, j);
    q[0] += sq(v.x);
    q[0] += sq(v.y);
    q[0] += sq(v.z);
    q[0] += sq(v.w);
  }
  for (int64_t i = 4 * nv + threadIdx.x; i < HW; i += blockDim.x) q[0] += sq(xr[i]);
  block_sum<1>(q);
  const float var = q[0] / float(HW);
  const float rstd = 1.f / sqrtf(var + eps);
  auto out = [mean, rstd, slope](float v) { return norm_act<ACT>((v - mean) * rstd, slope); };
  for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
    const float4 v = ld4(xr, j);
    st4(yr, j, make_float4(out(v.x), out(v.y), out(v.z), out(v.w)));
  }
  for (int64_t i = 4 * nv + threadIdx.x; i < HW; i += blockDim.x) yr[i] = out(xr[i]);
  if (threadIdx.x == 0) {
    if (mean_out) mean_out[row] = mean;
    if (rstd_out) rstd_out[row] = rstd;
  }
}

// xy is x (FROM_OUTPUT false) or y (true: xhat recovered from y; ACT None or Leaky, slope > 0).
// dy and dx may be the same buffer (the autograd op reuses an exclusively owned gradient,
// detail::grad_buffer_like): every element of dy is read by the thread that later writes dx
// there, and the write pass starts after the block's reduction, so no __restrict__ on them.
template <NormAct ACT, bool FROM_OUTPUT>
__global__ void instance_norm_bwd_kernel(const float* dy, const float* __restrict__ xy,
                                         const float* __restrict__ mean, const float* __restrict__ rstd,
                                         float* dx, int64_t HW, float slope, bool accumulate) {
  const int64_t row = blockIdx.x;
  const float* dyr = dy + row * HW;
  const float* xr = xy + row * HW;
  float* dxr = dx + row * HW;
  const float mu = mean[row], rs = rstd[row];
  const int64_t nv = norm_vec4(HW, dy, xy, dx) ? HW / 4 : 0;  // as in the forward
  auto xhat_v = [&](float v) -> float {
    if (FROM_OUTPUT) return (ACT == NormAct::Leaky && !(v > 0.f)) ? v / slope : v;
    return (v - mu) * rs;
  };
  float s[2] = {0.f, 0.f};
  auto add = [&](float g0, float v) {
    const float xh = xhat_v(v);
    const float g = g0 * norm_act_grad<ACT>(xh, slope);
    s[0] += g;
    s[1] += g * xh;
  };
  for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
    const float4 g = ld4(dyr, j), v = ld4(xr, j);
    add(g.x, v.x);
    add(g.y, v.y);
    add(g.z, v.z);
    add(g.w, v.w);
  }
  for (int64_t i = 4 * nv + threadIdx.x; i < HW; i += blockDim.x) add(dyr[i], xr[i]);
  block_sum<2>(s);
  const float inv = 1.f / float(HW);
  const float mg = s[0] * inv, mgx = s[1] * inv;
  auto grad = [&](float g0, float v) {
    const float xh = xhat_v(v);
    const float g = g0 * norm_act_grad<ACT>(xh, slope);
    return rs * (g - mg - xh * mgx);
  };
  for (int64_t j = threadIdx.x; j < nv; j += blockDim.x) {
    const float4 g = ld4(dyr, j), v = ld4(xr, j);
    const float4 d = make_float4(grad(g.x, v.x), grad(g.y, v.y), grad(g.z, v.z), grad(g.w, v.w));
    st4(dxr, j, accumulate ? add4(ld4(dxr, j), d) : d);
  }
  for (int64_t i = 4 * nv + threadIdx.x; i < HW; i += blockDim.x) {
    const float d = grad(dyr[i], xr[i]);
    dxr[i] = accumulate ? dxr[i] + d : d;
  }
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
