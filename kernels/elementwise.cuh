#pragma once
// Element-wise kernels: one generic grid-stride kernel applied to small functors, plus the
// channel-bias add / bias-gradient sum and the strided copy used for views, concat and split.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "common.cuh"

namespace disco {
namespace cuda {
namespace kern {

template <class F>
__global__ void __launch_bounds__(kBlock) map_kernel(int64_t n, F f) {
  DISCO_GRID_STRIDE(i, n) { f(i); }
}

struct FillOp {
  float* y; float v;
  __device__ void operator()(int64_t i) const { y[i] = v; }
};
struct AddOp {
  const float* a; const float* b; float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] + b[i]; }
};
struct SubOp {
  const float* a; const float* b; float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] - b[i]; }
};
struct MulOp {
  const float* a; const float* b; float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] * b[i]; }
};
struct ScaleOp {
  const float* x; float s; float* y;
  __device__ void operator()(int64_t i) const { y[i] = s * x[i]; }
};
struct AxpyOp {
  float alpha; const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = fmaf(alpha, x[i], y[i]); }
};
// y[n, c, hw] = x[...] + b[c]; row = i / HW, c = row % C.
struct ChannelBiasOp {
  const float* x; const float* b; float* y; int64_t C, HW;
  __device__ void operator()(int64_t i) const { y[i] = x[i] + b[(i / HW) % C]; }
};
struct ChannelSubOp {
  const float* x; const float* b; float* y; int64_t C, HW;
  __device__ void operator()(int64_t i) const { y[i] = x[i] - b[(i / HW) % C]; }
};
struct ChannelMulOp {
  const float* x; const float* b; float* y; int64_t C, HW;
  __device__ void operator()(int64_t i) const { y[i] = x[i] * b[(i / HW) % C]; }
};
// y = alpha * x + beta
struct AffineOp {
  const float* x; float alpha, beta; float* y;
  __device__ void operator()(int64_t i) const { y[i] = fmaf(alpha, x[i], beta); }
};
// y[i] = v[0] * s, v a device scalar (gradient of a full reduction).
struct BroadcastScalarOp {
  const float* v; float s; float* y;
  __device__ void operator()(int64_t i) const { y[i] = v[0] * s; }
};
// y[i] = x[i] * v[0], v a device scalar (a stored gradient times grad_out).
struct ScaleByScalarOp {
  const float* x; const float* v; float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] * v[0]; }
};
// SGD with momentum (torch.optim.SGD, dampening 0, no nesterov).
struct SgdOp {
  float* p; const float* g; float* buf; float lr, momentum, wd, gscale; bool first;
  __device__ void operator()(int64_t i) const {
    float gi = g[i] * gscale;
    if (wd != 0.f) gi = fmaf(wd, p[i], gi);
    if (momentum != 0.f) {
      gi = first ? gi : fmaf(momentum, buf[i], gi);
      buf[i] = gi;
    }
    p[i] -= lr * gi;
  }
};

// ---- activations (forward: y = f(x); backward: dx (=|+=) dy * f') ----------------------------
struct ReluFwd {
  const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] > 0.f ? x[i] : 0.f; }
};
struct LeakyFwd {
  const float* x; float* y; float slope;
  __device__ void operator()(int64_t i) const { const float v = x[i]; y[i] = v > 0.f ? v : v * slope; }
};
struct TanhFwd {
  const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = tanhf(x[i]); }
};
struct SigmoidFwd {
  const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = 1.f / (1.f + expf(-x[i])); }
};

enum class ActBwdKind { Relu, Leaky, Tanh, Sigmoid };
template <ActBwdKind KIND>
struct ActBwd {
  const float* dy; const float* ref; float* dx; float slope; bool accumulate;
  __device__ void operator()(int64_t i) const {
    const float g = dy[i], r = ref[i];
    float d;
    if (KIND == ActBwdKind::Relu) d = r > 0.f ? g : 0.f;
    else if (KIND == ActBwdKind::Leaky) d = r > 0.f ? g : g * slope;
    else if (KIND == ActBwdKind::Tanh) d = g * (1.f - r * r);
    else d = g * r * (1.f - r);
    dx[i] = accumulate ? dx[i] + d : d;
  }
};

struct ToBf16Op {
  const float* x; __nv_bfloat16* y;
  __device__ void operator()(int64_t i) const { y[i] = __float2bfloat16_rn(x[i]); }
};
struct FromBf16Op {
  const __nv_bfloat16* x; float* y; bool accumulate;
  __device__ void operator()(int64_t i) const {
    const float v = __bfloat162float(x[i]);
    y[i] = accumulate ? y[i] + v : v;
  }
};

// db[c] (=|+=) sum_{n, hw} dy[n, c, hw] (times b[n, c, hw] when b is not null): one block per
// channel, fixed summation order.
__global__ void __launch_bounds__(kBlock) channel_sum_kernel(const float* __restrict__ dy, const float* __restrict__ b,
                                                             float* __restrict__ db, int64_t N, int64_t C, int64_t HW,
                                                             bool accumulate) {
  const int64_t c = blockIdx.x;
  float acc[1] = {0.f};
  const int64_t total = N * HW;
  for (int64_t t = threadIdx.x; t < total; t += blockDim.x) {
    const int64_t n = t / HW, hw = t - n * HW;
    const int64_t k = (n * C + c) * HW + hw;
    acc[0] += b ? dy[k] * b[k] : dy[k];
  }
  block_sum<1>(acc);
  if (threadIdx.x == 0) db[c] = accumulate ? db[c] + acc[0] : acc[0];
}

// Strided copy of up to 6 dimensions.
struct StridedCopyArgs {
  int64_t shape[6];
  int64_t src_stride[6];
  int64_t dst_stride[6];
  int ndim;
};
__global__ void __launch_bounds__(kBlock) copy_strided_kernel(const float* __restrict__ src, float* __restrict__ dst,
                                                              int64_t total,
                                                              const __grid_constant__ StridedCopyArgs a) {
  DISCO_GRID_STRIDE(i, total) {
    int64_t rem = i, so = 0, dof = 0;
    for (int d = a.ndim - 1; d >= 0; --d) {
      const int64_t idx = rem % a.shape[d];
      rem /= a.shape[d];
      so += idx * a.src_stride[d];
      dof += idx * a.dst_stride[d];
    }
    dst[dof] = src[so];
  }
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
