#pragma once
// Channels-last convolutions (fprop, dgrad; wgrad in BF16, at the end of this file) on Hopper's
// warpgroup MMA, FP32 accumulation: wgmma.mma_async m64nNk16 with BF16 inputs, m64nNk8 with
// TF32 inputs (N = 128 or 64), both operands read by the tensor cores straight from shared
// memory through matrix descriptors.
// Tuning candidates "128x128wgmma" and "128x64wgmma" of the launcher (src/cuda/conv_wgmma.cu,
// compiled for sm_90a only; the plans exist where the device is compute capability 9.0 and
// that image loads).
//
// Why: mma.sync on an H100 / H200 reaches about half of the tensor cores' wgmma rate, and every
// mma.sync needs its fragments loaded into registers first (ldmatrix). A wgmma reads its A and
// B blocks from shared memory itself, so the warps only issue the copies and one instruction
// per 32 bytes of reduction.
//
// The tiles are exactly those of conv_nhwc_kernel (conv2d_nhwc.cuh): the same packed operands,
// the same loader (NhwcChunkLoader: 16-byte cp.async chunks) and the same shared-memory rows of
// 64 bytes (32 BF16 or 16 TF32 values) with chunk j of row r at j ^ ((r / 2) % 4). That swizzle
// is the hardware's 64-byte swizzle mode (byte-address bits 4-5 XOR bits 7-8) for K-major
// operands, whose canonical layout is rows of 64 bytes in atoms of 8 rows (512 bytes), 8-row
// groups at the "stride byte offset" (here 512: the rows are contiguous), the "leading byte
// offset" unused. A k step (16 BF16 / 8 TF32) is 32 bytes into the row: the descriptor's start
// address moves by 32.
//
// Block: 256 threads = 2 warpgroups; tile 128 x BN (warpgroup w: rows 64 w .. 64 w + 63, all
// BN columns), BK = 64 bytes, 6 stages (96 / 72 KB: registers allow 2 / 3 blocks an SM, and
// their shared memory still fits then). Per slice and warpgroup: two wgmma and one commit; the
// copies run four slices ahead and one slice's MMAs stay in flight (a stage is refilled only
// after the MMAs that read it are done: see the loop). Accumulator layout (PTX
// ISA, wgmma D fragments): warp q of the warpgroup holds rows 16 q + lane / 4 (+ 8), in
// 8-column blocks j the columns 8 j + 2 (lane % 4) (+ 1): the mma.sync m16n8 C layout, so the
// NCHW kernels' epilogue (conv_store_tile, with 1 x BN / 8 fragments) writes it.
//
// cp.async writes shared memory through the generic proxy and wgmma reads it through the async
// proxy: every thread fences (fence.proxy.async.shared::cta) after its copies of a slice have
// landed and before the barrier that precedes the wgmma.
//
// CPU emulation (tests/emu_backend): disco_emu_wgmma computes a thread's accumulator elements
// from the descriptors -- decoding start address, offsets and swizzle mode from the PTX ISA's
// descriptor format and canonical layouts, independently of the kernel's address math -- and
// disco_emu_smem_addr stands for __cvta_generic_to_shared. It models the asynchrony too: the
// accumulators are written only by the wait_group that completes the wgmma
// (disco_emu_wgmma_commit / _wait), and shared memory a pending wgmma reads must not change
// before then; a wgmma operand a cp.async wrote must have been fenced by its writer
// (disco_emu_fence_proxy_async) before the wgmma is issued.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <limits>
#include <type_traits>

#include "common.cuh"
#include "conv2d_igemm.cuh"
#include "conv2d_nhwc.cuh"

namespace disco {
namespace cuda {
namespace kern {

// BN: 128, or 64 for GEMMs of at most 64 columns. BK: 32 BF16-sized elements (64 bytes).
template <int BN_>
struct WgmmaTile {
  static constexpr int BM = 128, BN = BN_, BK = 32, STAGES = 6;
  static constexpr int kWarpGroups = 2, kThreads = 128 * kWarpGroups;
  static constexpr int kRowsPerPass = kThreads / 4;
  static constexpr int NJ = BN / 8;  // 8-column accumulator blocks a thread holds
  static_assert(BM == 64 * kWarpGroups, "one m64 block per warpgroup");
  static_assert(BN == 64 || BN == 128, "the wgmma shapes written out below");
};
template <int BN>
constexpr size_t conv_wgmma_smem_bytes() {
  using T = WgmmaTile<BN>;
  return size_t(T::STAGES) * (T::BM + T::BN) * T::BK * sizeof(__nv_bfloat16);
}

#if defined(__CUDA_ARCH__) && defined(__CUDA_ARCH_FEAT_SM90_ALL)
#define DISCO_WGMMA_DEVICE 1
#endif

// The shared-memory (CTA window) address of p.
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
#elif defined(DISCO_KERNEL_EMULATION)
  return disco_emu_smem_addr(p);
#else
  (void)p;
  return 0;
#endif
}

__device__ __forceinline__ float wgmma_nan() {
#if defined(__CUDA_ARCH__)
  return __int_as_float(0x7fc00000);
#else
  return std::numeric_limits<float>::quiet_NaN();
#endif
}

// Matrix descriptor of a K-major BF16 operand in the 64-byte swizzle mode: start address
// (bits 0-13, >> 4), leading byte offset (16-29; unused for swizzled K-major, 1 by
// convention), stride byte offset 512 (32-45: the next 8 rows), base offset 0 (49-51: the atoms
// are 512-byte aligned), swizzle mode 2 = 64 bytes (62-63).
__host__ __device__ constexpr uint64_t wgmma_desc_k_sw64(uint32_t saddr) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t(1) << 16) | (uint64_t(512 >> 4) << 32) | (uint64_t(2) << 62);
}

// Matrix descriptor of an MN-major BF16 operand in the 128-byte swizzle mode (the weight
// gradient's tiles, NhwcWgradLoader): start address, leading byte offset `lbo` (the next 64
// values of M / N: the next 128-byte column block), stride byte offset 1024 (the next 8 k
// rows), base offset 0 (the atoms are 1024-byte aligned), swizzle mode 1 = 128 bytes.
__host__ __device__ constexpr uint64_t wgmma_desc_mn_sw128(uint32_t saddr, uint32_t lbo) {
  return uint64_t((saddr & 0x3FFFF) >> 4) | (uint64_t((lbo & 0x3FFFF) >> 4) << 16) | (uint64_t(1024 >> 4) << 32) |
         (uint64_t(1) << 62);
}

__device__ __forceinline__ void wgmma_fence() {
#if defined(DISCO_WGMMA_DEVICE)
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
#endif
}
__device__ __forceinline__ void wgmma_commit() {
#if defined(DISCO_WGMMA_DEVICE)
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_wgmma_commit();
#endif
}
// Waits until at most N of this warpgroup's committed wgmma groups are still running.
template <int N>
__device__ __forceinline__ void wgmma_wait() {
#if defined(DISCO_WGMMA_DEVICE)
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_wgmma_wait(N);
#endif
}
// Pins the accumulator registers in place for the compiler: a wgmma writes them
// asynchronously, so the epilogue's reads must not move above the wait that completes the
// last one. (Only there: an ordinary definition of them while a wgmma is pending makes
// ptxas serialize the wgmmas.)
template <int NJ>
__device__ __forceinline__ void wgmma_fence_operands(float (&d)[1][NJ][4]) {
#if defined(DISCO_WGMMA_DEVICE)
#pragma unroll
  for (int j = 0; j < NJ; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) asm volatile("" : "+f"(d[0][j][e])::"memory");
#else
  (void)d;
#endif
}
// Orders this thread's generic-proxy writes of shared memory (cp.async) before later
// async-proxy reads (wgmma) -- with the barrier that follows, for the whole block.
__device__ __forceinline__ void fence_proxy_async_shared() {
#if defined(DISCO_WGMMA_DEVICE)
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_fence_proxy_async();
#endif
}

// d (64 x N FP32 per warpgroup, N = 8 NJ = 128 or 64; this thread's NJ x 4 values) = A x B +
// (accumulate ? d : 0), A 64 x K (desc_a), B K x N (desc_b): wgmma.mma_async m64nNk16 with BF16
// inputs, m64nNk8 with TF32 inputs (TF32 = true). Both operands K-major (B stored as N rows of
// K), or with MN = true both MN-major (imm-trans-a / -b 1: A stored as K rows of M, B as K rows
// of N; BF16 only -- TF32 has no transposed layouts).
#define DISCO_WGMMA_D4(j) "+f"(d[0][j][0]), "+f"(d[0][j][1]), "+f"(d[0][j][2]), "+f"(d[0][j][3])
#define DISCO_WGMMA_D32 \
  DISCO_WGMMA_D4(0), DISCO_WGMMA_D4(1), DISCO_WGMMA_D4(2), DISCO_WGMMA_D4(3), DISCO_WGMMA_D4(4), DISCO_WGMMA_D4(5), \
      DISCO_WGMMA_D4(6), DISCO_WGMMA_D4(7)
#define DISCO_WGMMA_D64 \
  DISCO_WGMMA_D32, DISCO_WGMMA_D4(8), DISCO_WGMMA_D4(9), DISCO_WGMMA_D4(10), DISCO_WGMMA_D4(11), DISCO_WGMMA_D4(12), \
      DISCO_WGMMA_D4(13), DISCO_WGMMA_D4(14), DISCO_WGMMA_D4(15)
#define DISCO_WGMMA_R32 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}"
#define DISCO_WGMMA_R64 "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63}"
// The instruction with its scale-d predicate set from operand P (after the accumulators and the
// two descriptors).
#define DISCO_WGMMA_ASM(SHAPE_TYPES, REGS, P, DESCS, TAIL, OUTS)                                         \
  asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " P ", 0;\nwgmma.mma_async.sync.aligned." SHAPE_TYPES " " REGS \
               ", " DESCS ", p, " TAIL ";\n}\n"                                                         \
               : OUTS                                                                                   \
               : "l"(desc_a), "l"(desc_b), "r"(accumulate))
template <bool TF32, int NJ, bool MN = false>
__device__ __forceinline__ void wgmma(float (&d)[1][NJ][4], uint64_t desc_a, uint64_t desc_b, int accumulate) {
  static_assert(NJ == 16 || NJ == 8, "m64n128 or m64n64");
  static_assert(!(TF32 && MN), "TF32 operands are K-major only");
#if defined(DISCO_WGMMA_DEVICE)
  if constexpr (MN && NJ == 16)
    DISCO_WGMMA_ASM("m64n128k16.f32.bf16.bf16", DISCO_WGMMA_R64, "%66", "%64, %65", "1, 1, 1, 1", DISCO_WGMMA_D64);
  else if constexpr (MN)
    DISCO_WGMMA_ASM("m64n64k16.f32.bf16.bf16", DISCO_WGMMA_R32, "%34", "%32, %33", "1, 1, 1, 1", DISCO_WGMMA_D32);
  else if constexpr (!TF32 && NJ == 16)
    DISCO_WGMMA_ASM("m64n128k16.f32.bf16.bf16", DISCO_WGMMA_R64, "%66", "%64, %65", "1, 1, 0, 0", DISCO_WGMMA_D64);
  else if constexpr (!TF32)
    DISCO_WGMMA_ASM("m64n64k16.f32.bf16.bf16", DISCO_WGMMA_R32, "%34", "%32, %33", "1, 1, 0, 0", DISCO_WGMMA_D32);
  else if constexpr (NJ == 16)
    DISCO_WGMMA_ASM("m64n128k8.f32.tf32.tf32", DISCO_WGMMA_R64, "%66", "%64, %65", "1, 1", DISCO_WGMMA_D64);
  else
    DISCO_WGMMA_ASM("m64n64k8.f32.tf32.tf32", DISCO_WGMMA_R32, "%34", "%32, %33", "1, 1", DISCO_WGMMA_D32);
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_wgmma(&d[0][0][0], 8 * NJ, TF32 ? 1 : 0, desc_a, desc_b, accumulate, MN ? 1 : 0);
#else
  (void)d;
  (void)desc_a;
  (void)desc_b;
  (void)accumulate;
  __trap();
#endif
}
#undef DISCO_WGMMA_ASM
#undef DISCO_WGMMA_R64
#undef DISCO_WGMMA_R32
#undef DISCO_WGMMA_D64
#undef DISCO_WGMMA_D32
#undef DISCO_WGMMA_D4

// Every accumulator of this thread set to v (a block that cannot run its wgmmas: NaN, or zeros
// where it has no reduction).
template <int NJ>
__device__ __forceinline__ void wgmma_fill(float (&d)[1][NJ][4], float v) {
#pragma unroll
  for (int j = 0; j < NJ; ++j)
#pragma unroll
    for (int e = 0; e < 4; ++e) d[0][j][e] = v;
}

// The wgmma kernels' pipeline over nkt slices: the copies run D = STAGES - 2 slices ahead, and
// one slice's MMAs stay in flight while the next slice's are issued. At iteration i the loads
// refill the stage of slice i - 2, whose MMAs every warpgroup has finished (wait for <= 1
// pending group at the end of iteration i - 1, then the barrier); slice i - 1's stage is left
// alone. load(stage, slice) issues a slice's cp.async copies (slices in increasing order);
// issue(stage, i) issues slice i's wgmmas (one commit group). Returns when all have completed.
template <int STAGES, class Load, class Issue>
__device__ __forceinline__ void wgmma_pipeline(int nkt, const Load& load, const Issue& issue) {
  constexpr int D = STAGES - 2;
  static_assert(D >= 1, "at least 3 stages");
#pragma unroll
  for (int st = 0; st < D; ++st) {
    if (st < nkt) load(st, st);
    cp_async_commit();
  }
  for (int i = 0; i < nkt; ++i) {
    cp_async_wait<D - 1>();      // slice i has landed (this thread's copies)
    fence_proxy_async_shared();  // ... and is visible to the async proxy
    __syncthreads();
    if (i + D < nkt) load((i + D) % STAGES, i + D);
    cp_async_commit();
    wgmma_fence();
    issue(i % STAGES, i);
    wgmma_commit();
    wgmma_wait<1>();
  }
  wgmma_wait<0>();
}

// View: convidx::NhwcFprop / NhwcDgrad with T = __nv_bfloat16 (8 channels a chunk), or
// NhwcFprop32 / NhwcDgrad32 with T = float (TF32: 4 channels a chunk; the packs are rounded to
// TF32, which the tensor cores read as they are). Grid and arguments as conv_nhwc_kernel's
// (the launcher packs the operands the same way).
template <class View, int BN_ = 128, class T = __nv_bfloat16>
__global__ void __launch_bounds__(WgmmaTile<BN_>::kThreads)
    conv_wgmma_kernel(const __grid_constant__ NhwcConvArgs args) {
  using Tile = WgmmaTile<BN_>;
  constexpr int NJ = Tile::NJ;
  constexpr bool kTF32 = std::is_same_v<T, float>;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, STAGES = Tile::STAGES, RPP = Tile::kRowsPerPass;
  static_assert(View::kChunk * sizeof(T) == 16, "16-byte chunks: 8 BF16 or 4 FP32 (TF32) channels");
  DISCO_DYNAMIC_SMEM(smem);
  __nv_bfloat16* const As = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* const Bs = As + STAGES * BM * BK;

  const convidx::ConvGemmParams& g = args.g;
  const T* const a_src = static_cast<const T*>(args.a);
  const T* const b_src = static_cast<const T*>(args.b);
  const NhwcBlock<View, BM, BN> blk(args);
  if (blk.outside()) return;
  const int slot = blk.slot, M = blk.M, N = blk.N, m0 = blk.m0, n0 = blk.n0, kt_begin = blk.kt_begin, nkt = blk.nkt;

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  // The swizzle atoms (8 rows x 64 bytes) must sit on 512-byte boundaries of the window. If
  // they did not, the kernel writes NaN rather than trapping (a trap would end the CUDA
  // context): tuning's output check then rejects the plan.
  const uint32_t a_base = smem_addr(As), b_base = smem_addr(Bs);
  // (Not zero-initialised: the first wgmma ignores d. An ordinary definition of the
  // accumulators ahead of the pipelined wgmmas makes ptxas serialize them.)
  float acc[1][NJ][4];
  if (((a_base | b_base) & 511u) != 0 || nkt <= 0) {  // misaligned: NaN; no reduction (a phase
    wgmma_fill(acc, nkt <= 0 ? 0.f : wgmma_nan());     // without taps): zeros
    conv_store_tile<typename View::Out, 1, NJ>(args, slot, acc, m0 + 64 * wg + 16 * (warp & 3), n0, lane, M, N);
    return;
  }

  NhwcChunkLoader<View, BM, BN, RPP> loader(g, slot, m0, tid, kt_begin);
  // (the loader steps through the slices itself, in the order they are asked for)
  const auto load = [&](int stage, int) {
    loader.load(g, slot, n0, a_src, b_src, As + stage * BM * BK, Bs + stage * BN * BK);
  };
  wgmma_pipeline<STAGES>(nkt, load, [&](int stage, int i) {
    // this warpgroup's 64 rows of A; all BN rows (columns of the GEMM) of B; bytes
    const uint32_t a_st = a_base + uint32_t((stage * BM + 64 * wg) * BK * 2);
    const uint32_t b_st = b_base + uint32_t(stage * BN * BK * 2);
#pragma unroll
    for (int kh = 0; kh < 2; ++kh) {  // two 32-byte K steps of the 64-byte rows
      const uint64_t da = wgmma_desc_k_sw64(a_st + 32u * kh), db = wgmma_desc_k_sw64(b_st + 32u * kh);
      wgmma<kTF32>(acc, da, db, (i | kh) != 0);
    }
  });
  wgmma_fence_operands(acc);

  conv_store_tile<typename View::Out, 1, NJ>(args, slot, acc, m0 + 64 * wg + 16 * (warp & 3), n0, lane, M, N);
}

// The weight gradient (BF16 only): the GEMM of convidx::NhwcWgrad -- rows the filters (dyp),
// columns (r, s, c) of x (xp), reduction over dy's pixels -- on the tiles of
// conv_wgrad_nhwc_kernel (NhwcWgradLoader: per operand, 128-byte column blocks of BK = 32
// reduction rows, chunk j of row k at j ^ (k % 8)), which are the MN-major canonical layout of
// the 128-byte swizzle mode: atoms of 8 k rows x 64 values (1024 bytes), the next 8 k rows at
// the stride byte offset (1024), the next 64 values of M / N at the leading byte offset (one
// column block: 32 x 128 = 4096 bytes). Warpgroup w multiplies A's column block w (filters
// 64 w .. 64 w + 63) by all of B; a k step (16 rows) moves the start address by 2048 bytes.
// Pipeline and epilogue as conv_wgmma_kernel; grid and arguments as conv_wgrad_nhwc_kernel's
// (split-K over grid z, partials reduced by the launcher).
template <int BN_ = 128>
__global__ void __launch_bounds__(WgmmaTile<BN_>::kThreads)
    conv_wgrad_wgmma_kernel(const __grid_constant__ NhwcConvArgs args) {
  using Tile = WgmmaTile<BN_>;
  using T = __nv_bfloat16;
  using V = convidx::NhwcWgrad;
  constexpr int NJ = Tile::NJ;
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, STAGES = Tile::STAGES;
  constexpr uint32_t kBlockBytes = BK * 128;  // one 128-byte column block of a stage
  static_assert(V::kChunk == 8, "BF16 chunks");
  DISCO_DYNAMIC_SMEM(smem);
  T* const As = reinterpret_cast<T*>(smem);
  T* const Bs = As + STAGES * BM * BK;

  const convidx::ConvGemmParams& g = args.g;
  const T* const a_src = static_cast<const T*>(args.a);
  const T* const b_src = static_cast<const T*>(args.b);
  const NhwcWgradBlock<V, BM, BN, BK> blk(args);
  if (blk.outside()) return;
  const int M = blk.M, N = blk.N, m0 = blk.m0, n0 = blk.n0, nkt = blk.nkt;

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
  const int row0 = m0 + 64 * wg + 16 * (warp & 3);  // this warp's first accumulator row
  // The 128-byte swizzle atoms must sit on 1024-byte boundaries of the window: otherwise NaN
  // (see conv_wgmma_kernel); a split without slices: zeros.
  const uint32_t a_base = smem_addr(As), b_base = smem_addr(Bs);
  float acc[1][NJ][4];
  if (((a_base | b_base) & 1023u) != 0 || nkt <= 0) {
    wgmma_fill(acc, nkt <= 0 ? 0.f : wgmma_nan());
    conv_store_tile<V, 1, NJ>(args, 0, acc, row0, n0, lane, M, N);
    return;
  }

  const NhwcWgradLoader<T, BM, BN, BK, Tile::kThreads> loader(g, m0, n0, tid, blk.kt_begin);
  const auto load = [&](int stage, int slice) {
    loader.load(g, a_src, b_src, As + stage * BM * BK, Bs + stage * BN * BK, slice);
  };
  wgmma_pipeline<STAGES>(nkt, load, [&](int stage, int i) {
    const uint32_t a_st = a_base + uint32_t(stage * BM * BK * 2) + uint32_t(wg) * kBlockBytes;
    const uint32_t b_st = b_base + uint32_t(stage * BN * BK * 2);
#pragma unroll
    for (int kh = 0; kh < BK / 16; ++kh) {  // 16 k rows = two 8-row atoms a step
      const uint64_t da = wgmma_desc_mn_sw128(a_st + 2048u * kh, kBlockBytes);
      const uint64_t db = wgmma_desc_mn_sw128(b_st + 2048u * kh, kBlockBytes);
      wgmma<false, NJ, true>(acc, da, db, (i | kh) != 0);
    }
  });
  wgmma_fence_operands(acc);

  conv_store_tile<V, 1, NJ>(args, 0, acc, row0, n0, lane, M, N);
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
