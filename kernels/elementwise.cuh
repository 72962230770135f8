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

// Functors with kVec4 also have vec4(j) (elements [4 j, 4 j + 4) with 16-byte loads and
// stores) and ptrs() (every array they touch); map_vec4_groups gives the float4 groups the
// kernel hands to vec4 -- n / 4 when every pointer is 16-byte aligned, else 0 -- and the
// remaining elements [4 nvec, n) go one by one to operator(). More bytes in flight per thread
// for the large activation / gradient passes; in place (y == x) stays element-wise.
template <class F>
__global__ void __launch_bounds__(kBlock) map_kernel(int64_t n, int64_t nvec, F f) {
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  if constexpr (F::kVec4) {
    for (int64_t j = first; j < nvec; j += stride) f.vec4(j);
  }
  for (int64_t i = 4 * nvec + first; i < n; i += stride) f(i);
}
struct MapPtrs {
  const void* p[3];  // unused entries null
};
template <class F>
inline int64_t map_vec4_groups(int64_t n, const F& f) {
  if constexpr (F::kVec4) {
    const MapPtrs m = f.ptrs();
    return vec4_groups(n, {m.p[0], m.p[1], m.p[2]});
  } else {
    return 0;
  }
}

// Applies a float -> float function to each lane.
template <class G>
__device__ __forceinline__ float4 lanes(float4 a, G g) { return make_float4(g(a.x), g(a.y), g(a.z), g(a.w)); }
template <class G>
__device__ __forceinline__ float4 lanes(float4 a, float4 b, G g) {
  return make_float4(g(a.x, b.x), g(a.y, b.y), g(a.z, b.z), g(a.w, b.w));
}

struct FillOp {
  static constexpr bool kVec4 = true;
  float* y; float v;
  __device__ void operator()(int64_t i) const { y[i] = v; }
  __device__ void vec4(int64_t j) const { st4(y, j, make_float4(v, v, v, v)); }
  MapPtrs ptrs() const { return {{y}}; }
};
struct AddOp {
  static constexpr bool kVec4 = true;
  const float* a; const float* b; float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] + b[i]; }
  __device__ void vec4(int64_t j) const {
    st4(y, j, lanes(ld4(a, j), ld4(b, j), [](float u, float v) { return u + v; }));
  }
  MapPtrs ptrs() const { return {{a, b, y}}; }
};
struct SubOp {
  static constexpr bool kVec4 = true;
  const float* a; const float* b; float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] - b[i]; }
  __device__ void vec4(int64_t j) const {
    st4(y, j, lanes(ld4(a, j), ld4(b, j), [](float u, float v) { return u - v; }));
  }
  MapPtrs ptrs() const { return {{a, b, y}}; }
};
struct MulOp {
  static constexpr bool kVec4 = true;
  const float* a; const float* b; float* y;
  __device__ void operator()(int64_t i) const { y[i] = a[i] * b[i]; }
  __device__ void vec4(int64_t j) const {
    st4(y, j, lanes(ld4(a, j), ld4(b, j), [](float u, float v) { return u * v; }));
  }
  MapPtrs ptrs() const { return {{a, b, y}}; }
};
struct ScaleOp {
  static constexpr bool kVec4 = true;
  const float* x; float s; float* y;
  __device__ void operator()(int64_t i) const { y[i] = s * x[i]; }
  __device__ void vec4(int64_t j) const {
    const float sc = s;
    st4(y, j, lanes(ld4(x, j), [sc](float u) { return sc * u; }));
  }
  MapPtrs ptrs() const { return {{x, y}}; }
};
struct AxpyOp {
  static constexpr bool kVec4 = true;
  float alpha; const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = fmaf(alpha, x[i], y[i]); }
  __device__ void vec4(int64_t j) const {
    const float al = alpha;
    st4(y, j, lanes(ld4(x, j), ld4(y, j), [al](float u, float v) { return fmaf(al, u, v); }));
  }
  MapPtrs ptrs() const { return {{x, y}}; }
};
// y[n, c, hw] = x[...] + b[c]; row = i / HW, c = row % C.
struct ChannelBiasOp {
  static constexpr bool kVec4 = false;
  const float* x; const float* b; float* y; int64_t C, HW;
  __device__ void operator()(int64_t i) const { y[i] = x[i] + b[(i / HW) % C]; }
};
struct ChannelSubOp {
  static constexpr bool kVec4 = false;
  const float* x; const float* b; float* y; int64_t C, HW;
  __device__ void operator()(int64_t i) const { y[i] = x[i] - b[(i / HW) % C]; }
};
struct ChannelMulOp {
  static constexpr bool kVec4 = false;
  const float* x; const float* b; float* y; int64_t C, HW;
  __device__ void operator()(int64_t i) const { y[i] = x[i] * b[(i / HW) % C]; }
};
// y = alpha * x + beta
struct AffineOp {
  static constexpr bool kVec4 = true;
  const float* x; float alpha, beta; float* y;
  __device__ void operator()(int64_t i) const { y[i] = fmaf(alpha, x[i], beta); }
  __device__ void vec4(int64_t j) const {
    const float al = alpha, be = beta;
    st4(y, j, lanes(ld4(x, j), [al, be](float u) { return fmaf(al, u, be); }));
  }
  MapPtrs ptrs() const { return {{x, y}}; }
};
// y[i] = v[0] * s, v a device scalar (gradient of a full reduction).
struct BroadcastScalarOp {
  static constexpr bool kVec4 = false;
  const float* v; float s; float* y;
  __device__ void operator()(int64_t i) const { y[i] = v[0] * s; }
};
// y[i] = x[i] * v[0], v a device scalar (a stored gradient times grad_out).
struct ScaleByScalarOp {
  static constexpr bool kVec4 = false;
  const float* x; const float* v; float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] * v[0]; }
};
// SGD with momentum (torch.optim.SGD, dampening 0, no nesterov).
struct SgdOp {
  static constexpr bool kVec4 = false;
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
  static constexpr bool kVec4 = true;
  const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = x[i] > 0.f ? x[i] : 0.f; }
  __device__ void vec4(int64_t j) const { st4(y, j, lanes(ld4(x, j), [](float v) { return v > 0.f ? v : 0.f; })); }
  MapPtrs ptrs() const { return {{x, y}}; }
};
struct LeakyFwd {
  static constexpr bool kVec4 = true;
  const float* x; float* y; float slope;
  __device__ void operator()(int64_t i) const { const float v = x[i]; y[i] = v > 0.f ? v : v * slope; }
  __device__ void vec4(int64_t j) const {
    const float sl = slope;
    st4(y, j, lanes(ld4(x, j), [sl](float v) { return v > 0.f ? v : v * sl; }));
  }
  MapPtrs ptrs() const { return {{x, y}}; }
};
struct TanhFwd {
  static constexpr bool kVec4 = false;
  const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = tanhf(x[i]); }
};
struct SigmoidFwd {
  static constexpr bool kVec4 = false;
  const float* x; float* y;
  __device__ void operator()(int64_t i) const { y[i] = 1.f / (1.f + expf(-x[i])); }
};

enum class ActBwdKind { Relu, Leaky, Tanh, Sigmoid };
template <ActBwdKind KIND>
struct ActBwd {
  static constexpr bool kVec4 = true;
  const float* dy; const float* ref; float* dx; float slope; bool accumulate;
  __device__ float d(float g, float r) const {
    if (KIND == ActBwdKind::Relu) return r > 0.f ? g : 0.f;
    if (KIND == ActBwdKind::Leaky) return r > 0.f ? g : g * slope;
    if (KIND == ActBwdKind::Tanh) return g * (1.f - r * r);
    return g * r * (1.f - r);
  }
  __device__ void operator()(int64_t i) const {
    const float v = d(dy[i], ref[i]);
    dx[i] = accumulate ? dx[i] + v : v;
  }
  __device__ void vec4(int64_t j) const {
    const float4 g = ld4(dy, j), r = ld4(ref, j);
    const float4 v = make_float4(d(g.x, r.x), d(g.y, r.y), d(g.z, r.z), d(g.w, r.w));
    st4(dx, j, accumulate ? add4(ld4(dx, j), v) : v);
  }
  MapPtrs ptrs() const { return {{dy, ref, dx}}; }
};

struct ToBf16Op {
  static constexpr bool kVec4 = false;
  const float* x; __nv_bfloat16* y;
  __device__ void operator()(int64_t i) const { y[i] = __float2bfloat16_rn(x[i]); }
};
struct FromBf16Op {
  static constexpr bool kVec4 = false;
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

// Largest |a - b| and largest |b| (b: the reference): each block writes its two maxima to
// partials[2 blockIdx.x + {0, 1}], and max_abs_diff_finish_kernel (one block) folds them into
// out[0], out[1]. A NaN difference (a NaN or an infinity in a or b) makes out[0] NaN. The
// tuner checks a candidate launch plan's output against the reference plan's with it.
__device__ __forceinline__ float max_or_nan(float acc, float v) { return (acc != acc || v != v) ? NAN : fmaxf(acc, v); }
__device__ __forceinline__ void block_max2(float& d, float& m) {
  __shared__ float sd[kBlock], sm[kBlock];
  const int t = threadIdx.x;
  sd[t] = d;
  sm[t] = m;
  __syncthreads();
  for (int s = kBlock / 2; s > 0; s >>= 1) {
    if (t < s) {
      sd[t] = max_or_nan(sd[t], sd[t + s]);
      sm[t] = max_or_nan(sm[t], sm[t + s]);
    }
    __syncthreads();
  }
  d = sd[0];
  m = sm[0];
}
__global__ void __launch_bounds__(kBlock) max_abs_diff_kernel(const float* __restrict__ a, const float* __restrict__ b,
                                                              int64_t n, float* __restrict__ partials) {
  float d = 0.f, m = 0.f;
  DISCO_GRID_STRIDE(i, n) {
    d = max_or_nan(d, fabsf(a[i] - b[i]));
    m = max_or_nan(m, fabsf(b[i]));
  }
  block_max2(d, m);
  if (threadIdx.x == 0) {
    partials[2 * int64_t(blockIdx.x)] = d;
    partials[2 * int64_t(blockIdx.x) + 1] = m;
  }
}
__global__ void __launch_bounds__(kBlock) max_abs_diff_finish_kernel(const float* __restrict__ partials, int blocks,
                                                                     float* __restrict__ out) {
  float d = 0.f, m = 0.f;
  for (int i = threadIdx.x; i < blocks; i += kBlock) {
    d = max_or_nan(d, partials[2 * i]);
    m = max_or_nan(m, partials[2 * i + 1]);
  }
  block_max2(d, m);
  if (threadIdx.x == 0) {
    out[0] = d;
    out[1] = m;
  }
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
