#pragma once
// Shared device helpers of disco's kernels: grid-stride loops, warp / block sums and the
// deterministic "last block finishes" reduction used by reductions and fused losses.
// Kernels are templated or static __global__ functions on raw pointers; this header is only
// ever compiled by nvcc (src/cuda/*.cu).
#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <initializer_list>

namespace disco {
namespace cuda {
namespace kern {

constexpr int kBlock = 256;  // default threads per block of the element-wise / reduction kernels

#define DISCO_GRID_STRIDE(i, n)                                                      \
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < int64_t(n); \
       i += int64_t(gridDim.x) * blockDim.x)

// The block's dynamic shared memory (the launch's third <<<>>> argument), as a 16-byte aligned
// `unsigned char name[]` that the kernel carves into its buffers. More than 48 KB needs the
// kernel's cudaFuncAttributeMaxDynamicSharedMemorySize raised first (cudaFuncSetAttribute).
// The CPU emulations (tests/emu, tests/emu_backend) define it before including the kernels:
// a per-launch buffer, NaN-poisoned before every block, with guard pages around it.
#ifndef DISCO_DYNAMIC_SMEM
#define DISCO_DYNAMIC_SMEM(name) extern __shared__ __align__(16) unsigned char name[]
#endif
// Without an opt-in, a block may use at most this much shared memory (static + dynamic).
constexpr size_t kSmemDefaultLimit = 48 * 1024;

template <class T>
__device__ __forceinline__ T warp_sum(T v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
  return v;
}

// Sum of NV values over the block (blockDim.x a multiple of 32, <= 1024); every thread gets
// the totals. May be called repeatedly in one kernel (it synchronizes before reusing its
// shared buffer). Must be reached by all threads of the block.
template <int NV, class T>
__device__ __forceinline__ void block_sum(T (&v)[NV]) {
  __shared__ T sh[NV][32];
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
#pragma unroll
  for (int k = 0; k < NV; ++k) v[k] = warp_sum(v[k]);
  __syncthreads();
  if (lane == 0) {
#pragma unroll
    for (int k = 0; k < NV; ++k) sh[k][warp] = v[k];
  }
  __syncthreads();
#pragma unroll
  for (int k = 0; k < NV; ++k) v[k] = warp_sum(lane < nwarps ? sh[k][lane] : T(0));
}

// ---- float4 access ----------------------------------------------------------------------------
// Can n floats at each of `ptrs` (null entries are ignored) be read / written as float4
// groups? Host side: the launchers pass vec4_groups(...) as the kernels' `nvec`, n / 4 when
// every pointer is 16-byte aligned, 0 otherwise (a view at an odd offset takes the scalar path).
inline bool all_aligned16(std::initializer_list<const void*> ptrs) {
  for (const void* p : ptrs)
    if (p && (reinterpret_cast<uintptr_t>(p) & 15u) != 0) return false;
  return true;
}
inline int64_t vec4_groups(int64_t n, std::initializer_list<const void*> ptrs) {
  return all_aligned16(ptrs) ? n / 4 : 0;
}
// Group j (elements [4 j, 4 j + 4)) of a 16-byte aligned array.
__device__ __forceinline__ float4 ld4(const float* p, int64_t j) { return reinterpret_cast<const float4*>(p)[j]; }
__device__ __forceinline__ void st4(float* p, int64_t j, float4 v) { reinterpret_cast<float4*>(p)[j] = v; }
__device__ __forceinline__ float4 add4(float4 a, float4 b) {
  return make_float4(a.x + b.x, a.y + b.y, a.z + b.z, a.w + b.w);
}

// One-launch deterministic reduction. Each thread feeds its grid-stride share of the
// elements to the functor: float4 groups j < nvec (elements [4 j, 4 j + 4)) to
// `elem.vec4(j, acc)` when Elem::kVec4 (16-byte loads and stores: more bytes in flight per
// thread), then the remaining elements [4 nvec, n) one by one to `elem(i, acc)`; elem may
// also write per-element outputs such as gradients. Blocks store their partial sums, and the
// last block to finish adds the partials in a fixed order (double) and calls `fin(totals)`
// from thread 0. The result depends only on n, nvec and the grid size, never on timing.
// partials: gridDim.x * NV doubles; counter: one unsigned that is zero at launch (the
// launcher memsets it).
template <int NV, class Elem, class Fin>
__global__ void __launch_bounds__(kBlock) reduce_finalize_kernel(int64_t n, int64_t nvec, Elem elem, Fin fin,
                                                                  double* partials, unsigned* counter) {
  float acc[NV];
#pragma unroll
  for (int k = 0; k < NV; ++k) acc[k] = 0.f;
  const int64_t first = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, stride = int64_t(gridDim.x) * blockDim.x;
  if constexpr (Elem::kVec4) {
    for (int64_t j = first; j < nvec; j += stride) elem.vec4(j, acc);
  }
  for (int64_t i = 4 * nvec + first; i < n; i += stride) elem(i, acc);
  block_sum<NV>(acc);
  __shared__ bool is_last;
  if (threadIdx.x == 0) {
#pragma unroll
    for (int k = 0; k < NV; ++k) partials[int64_t(blockIdx.x) * NV + k] = double(acc[k]);
    __threadfence();
    const unsigned prev = atomicAdd(counter, 1u);
    is_last = (prev == gridDim.x - 1);
  }
  __syncthreads();
  if (!is_last) return;
  __threadfence();
  double tot[NV];
#pragma unroll
  for (int k = 0; k < NV; ++k) tot[k] = 0.0;
  for (int b = threadIdx.x; b < int(gridDim.x); b += blockDim.x) {
#pragma unroll
    for (int k = 0; k < NV; ++k) tot[k] += __ldcg(partials + int64_t(b) * NV + k);
  }
  block_sum<NV>(tot);
  if (threadIdx.x == 0) fin(tot);
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
