#pragma once
// Multi-tensor optimizer kernels: one launch covers many parameter tensors. The host cuts
// every tensor into chunks of kChunk elements and passes, by value, a table of up to
// kMaxTensors tensors and kMaxBlocks (tensor, chunk) pairs; block b processes its chunk.
// Larger lists take several launches.
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>

#include "common.cuh"

namespace disco {
namespace cuda {
namespace kern {

constexpr int kMTMaxTensors = 24;
constexpr int kMTMaxBlocks = 320;
constexpr int64_t kMTChunk = 16384;

struct MultiTensorTable {
  int64_t n[kMTMaxTensors];
  unsigned char tensor_of_block[kMTMaxBlocks];
  int chunk_of_block[kMTMaxBlocks];
};

struct AdamTable {
  MultiTensorTable t;
  float* p[kMTMaxTensors];
  const float* g[kMTMaxTensors];
  float* m[kMTMaxTensors];
  float* v[kMTMaxTensors];
};

// Bias corrections of Adam step t, computed in double as torch.optim.Adam does on the host.
struct AdamBias {
  float step_size;  // lr / (1 - b1^t)
  float bc2_sqrt;   // sqrt(1 - b2^t)
};
__host__ __device__ inline AdamBias adam_bias(double lr, double b1, double b2, long long t) {
  AdamBias r;
  r.step_size = float(lr / (1.0 - pow(b1, double(t))));
  r.bc2_sqrt = float(sqrt(1.0 - pow(b2, double(t))));
  return r;
}

// PyTorch Adam (amsgrad off): g = grad*s + wd*p; m = lerp(m, g, 1-b1); v = b2 v + (1-b2) g^2;
// p -= step_size * m / (sqrt(v) / bc2_sqrt + eps), step_size = lr / (1 - b1^t).
// With step_dev non-null, t is read from device memory and the corrections are computed
// here (from lr, b1d, b2d), so a captured CUDA graph replays with the right step; otherwise
// the host's step_size and bc2_sqrt are used.
__global__ void __launch_bounds__(kBlock) adam_kernel(const __grid_constant__ AdamTable a, float beta1, float beta2, float eps, float wd,
                                                      float step_size, float bc2_sqrt, const float* grad_scale,
                                                      const long long* step_dev, double lr, double b1d, double b2d) {
  if (step_dev) {
    __shared__ AdamBias bias;
    if (threadIdx.x == 0) bias = adam_bias(lr, b1d, b2d, *step_dev);
    __syncthreads();
    step_size = bias.step_size;
    bc2_sqrt = bias.bc2_sqrt;
  }
  const int ti = a.t.tensor_of_block[blockIdx.x];
  const int64_t begin = int64_t(a.t.chunk_of_block[blockIdx.x]) * kMTChunk;
  int64_t end = begin + kMTChunk;
  if (end > a.t.n[ti]) end = a.t.n[ti];
  float* p = a.p[ti];
  const float* g = a.g[ti];
  float* m = a.m[ti];
  float* v = a.v[ti];
  const float s = grad_scale ? *grad_scale : 1.f;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float pv = p[i];
    float gv = g[i] * s;
    if (wd != 0.f) gv = fmaf(wd, pv, gv);
    const float mv = m[i] + (1.f - beta1) * (gv - m[i]);  // torch: exp_avg.lerp_(grad, 1 - beta1)
    const float vv = beta2 * v[i] + (1.f - beta2) * gv * gv;
    m[i] = mv;
    v[i] = vv;
    const float denom = sqrtf(vv) / bc2_sqrt + eps;
    p[i] = pv - step_size * (mv / denom);
  }
}

struct GradTable {
  MultiTensorTable t;
  float* g[kMTMaxTensors];
};

// partials[block_offset + b] = sum of squares of block b's chunk (double).
__global__ void __launch_bounds__(kBlock) sumsq_chunks_kernel(const __grid_constant__ GradTable a, double* partials, int block_offset) {
  const int ti = a.t.tensor_of_block[blockIdx.x];
  const int64_t begin = int64_t(a.t.chunk_of_block[blockIdx.x]) * kMTChunk;
  int64_t end = begin + kMTChunk;
  if (end > a.t.n[ti]) end = a.t.n[ti];
  const float* g = a.g[ti];
  float acc[1] = {0.f};
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) {
    const float v = g[i];
    acc[0] += v * v;
  }
  block_sum<1>(acc);
  if (threadIdx.x == 0) partials[block_offset + blockIdx.x] = double(acc[0]);
}

// One block: norm = sqrt(sum partials); coef = min(1, max_norm / (norm + 1e-6)).
__global__ void __launch_bounds__(kBlock) grad_norm_finalize_kernel(const double* partials, int count, float max_norm,
                                                                    float* norm_out, float* coef_out) {
  double acc[1] = {0.0};
  for (int i = threadIdx.x; i < count; i += blockDim.x) acc[0] += partials[i];
  block_sum<1>(acc);
  if (threadIdx.x == 0) {
    const float norm = float(sqrt(acc[0]));
    float coef = max_norm / (norm + 1e-6f);
    if (coef > 1.f) coef = 1.f;
    if (norm_out) norm_out[0] = norm;
    if (coef_out) coef_out[0] = coef;
  }
}

__global__ void __launch_bounds__(kBlock) scale_chunks_kernel(const __grid_constant__ GradTable a, const float* coef) {
  const int ti = a.t.tensor_of_block[blockIdx.x];
  const int64_t begin = int64_t(a.t.chunk_of_block[blockIdx.x]) * kMTChunk;
  int64_t end = begin + kMTChunk;
  if (end > a.t.n[ti]) end = a.t.n[ti];
  float* g = a.g[ti];
  const float c = *coef;
  for (int64_t i = begin + threadIdx.x; i < end; i += blockDim.x) g[i] *= c;
}

// counter[0] += 1 (one thread): the optimizer's step count on the device.
__global__ void increment_counter_kernel(long long* counter) { counter[0] += 1; }

}  // namespace kern
}  // namespace cuda
}  // namespace disco
