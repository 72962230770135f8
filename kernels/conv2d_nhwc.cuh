#pragma once
// Channels-last implicit-GEMM convolutions for tensor cores, FP32 accumulation: BF16
// (m16n8k16) and TF32 (m16n8k8) forward (fprop), data gradient (dgrad, phase-decomposed like
// the NCHW kernel) and weight gradient (wgrad, at the end of this file). Tuning
// candidates of the launcher (src/cuda/conv_custom.cu, plans "128x128nhwc" / "64x64nhwc").
//
// Why: the NCHW kernels (conv2d_igemm.cuh) gather one float per 4-byte cp.async and keep
// float32 in shared memory, so their loaders issue an instruction per element and their
// fragment builds convert per element; on an H200 that loader work, not the tensor cores,
// bounds them (docs/benchmarks.md). Here the launcher first packs the operands with the
// reduction's channels innermost, padded with zeros to a 16-byte chunk (8 BF16 / 4 FP32
// channels): fprop x -> xp[N][H][W][Cp] and w -> wp[K][R][S][Cp]; dgrad dy -> dyp[N][P][Q][Kp]
// and w -> wd[R][S][C][Kp]; wgrad dy -> dyp and x -> xp (pack_nhwc_kernel,
// pack_weights_nhwc_kernel, pack_weights_dgrad_nhwc_kernel; BF16 packs are rounded to nearest
// even, FP32 packs to TF32 as the kernels round (cvt.rna); index math: convidx::NhwcFpropT /
// NhwcDgradT / NhwcWgradT, unit-tested on the CPU). fprop / dgrad (conv_nhwc_kernel) then reduce tap-major over
// chunks, and every chunk is 16 contiguous bytes of both operands:
//  * loaders: one 16-byte cp.async (zero-filled where the tap hits padding) per chunk, for A
//    and B alike; a thread owns one chunk column of BM / (threads / 4) rows and walks it with
//    an incremental (r, s, c8) / (th, tw, k8) cursor;
//  * shared memory: 64-byte rows (BK = 32 BF16 / 16 FP32 reduction elements, no padding) with
//    an XOR swizzle of the 16-byte chunks (chunk j of row r at position j ^ ((r / 2) % 4)): the
//    cp.async stores and the ldmatrix reads are free of bank conflicts;
//  * fragments: ldmatrix.x4 -- one instruction per 16-row A block and per two 8-column B
//    blocks, already in the mma.sync register layout (BF16: no conversion; TF32: cvt.rna).
// The output, bias, accumulation, dgrad phases (grid z = slots x splits) and split-K partials
// are those of the NCHW kernel (conv_store_tile, conv_splitk_reduce_kernel<View::Out>). The
// results equal those of the NCHW kernels of the same math mode up to the FP32 summation
// order (both round the operands the same way).
//
// CPU emulation (tests/emu, tests/emu_backend): ldmatrix goes to disco_emu_ldmatrix_x4,
// written from the PTX ISA's description independently of the address math here.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "conv2d_igemm.cuh"
#include "disco/problem/conv2d_index.hpp"

namespace disco {
namespace cuda {
namespace kern {

// BM x BN output tile, BK = 32 BF16 (64 bytes: four 16-byte chunks per row), WARPS_M x WARPS_N warps of
// WM x WN (MI x NI fragments of 16 x 8; NI even: B fragments come in pairs from one ldmatrix.x4).
template <int BM_, int BN_, int WARPS_M_, int WARPS_N_, int STAGES_>
struct NhwcTile {
  static constexpr int BM = BM_, BN = BN_, BK = 32, STAGES = STAGES_;
  static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static constexpr int kRowsPerPass = kThreads / 4;  // rows loaded per pass: 4 chunks a row
  static_assert(WM % 16 == 0 && WN % 16 == 0, "warp tile of 16 x 16 blocks (A) and 8-column pairs (B)");
  static_assert(BM % kRowsPerPass == 0 && BN % kRowsPerPass == 0, "whole loader passes");
  static_assert(STAGES >= 2, "at least double buffering");
};
// 256 threads, warp tile 64 x 32, 4 stages of 16 KB: 64 KB of dynamic shared memory (opt-in).
using NhwcTileLarge = NhwcTile<128, 128, 2, 4, 4>;
// 128 threads, warp tile 32 x 32, 4 stages of 8 KB: 32 KB.
using NhwcTileSmall = NhwcTile<64, 64, 2, 2, 4>;
// The 64 x 64 warp tile (the shape CUTLASS's sm_80 kernels favour): per 16-deep k step a warp
// issues 8 ldmatrix.x4 for 32 mma, against 6 for 16 with the 64 x 32 warps of NhwcTileLarge,
// so shared-memory reads per MMA drop by a third; the price is ~220 registers a thread
// (ptxas, sm_90: 216-232, no spills), one block of 8 warps or two of 4 per SM.
// 256 threads, 4 x 2 warps, 3 stages of 24 KB: 72 KB -- for GEMMs with many rows (large maps).
using NhwcTileWide = NhwcTile<256, 128, 4, 2, 3>;
// 128 threads, 2 x 2 warps, 4 stages of 16 KB: 64 KB -- the 128 x 128 tile with half the warps.
using NhwcTileQuad = NhwcTile<128, 128, 2, 2, 4>;

// BF16 element of (row, chunk) of a 32-wide shared-memory tile: 64-byte rows, chunk j of row r
// at 16-byte position j ^ ((r >> 1) & 3). Eight consecutive rows at one chunk (an ldmatrix
// 8 x 8 matrix) fill the 8 distinct 16-byte bank groups of two 128-byte lines, and so do the
// 8 chunks of a quarter warp's stores (two rows): no bank conflicts.
__host__ __device__ constexpr int nhwc_swizzle(int row, int chunk) { return row * 32 + 8 * (chunk ^ ((row >> 1) & 3)); }

template <class Tile>
constexpr size_t conv_nhwc_smem_bytes() {
  return size_t(Tile::STAGES) * (Tile::BM + Tile::BN) * Tile::BK * sizeof(__nv_bfloat16);
}

struct NhwcConvArgs {
  convidx::ConvGemmParams g;  // the launch's GEMMs (make_conv_gemm_params)
  const void* a;              // fprop: xp (N x H x W x Cp), dgrad / wgrad: dyp (N x P x Q x Kp)
  const void* b;              // fprop: wp (K x R x S x Cp), dgrad: wd (R x S x C x Kp), wgrad: xp
                              // (BF16, or FP32 for the TF32 fprop / dgrad kernels)
  float* out;                 // y / dx (NCHW)
  const float* bias;          // [gemm_n] or null
  float* ws;                  // split-K partials [slots * splits][max_m][gemm_n]
  int64_t ws_slice;           // max_m * K
  int splits;
  int accumulate;
};

// ---- PTX wrappers ---------------------------------------------------------------------------------
// (cp_async_16 and the mma helpers: conv2d_igemm.cuh.)
// ldmatrix.sync.aligned.m8n8.x4.shared.b16: lane l gives the address of row l % 8 of matrix
// l / 8 (16 bytes, 16-byte aligned); r[i] receives the 32-bit word lane % 4 of row lane / 4 of
// matrix i -- the mma.sync fragment layout. Warp-collective. TRANS (.trans): r[i] receives the
// two 16-bit elements in column lane / 4 of matrix i, rows 2 (lane % 4) and 2 (lane % 4) + 1
// (low half: the first) -- the fragment of the transposed 8 x 8 matrix, for operands stored
// with the mma's k as rows.
template <bool TRANS = false>
__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* row_addr) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(row_addr));
  if constexpr (TRANS)
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
  else
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(s));
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_ldmatrix_x4(r, row_addr, TRANS);
#else
  (void)row_addr;
  r[0] = r[1] = r[2] = r[3] = 0;
  __trap();
#endif
}

// B fragments 2 jj and 2 jj + 1 (two 8-column blocks of one 16-deep k step) from one
// ldmatrix.x4 at the lane's row address.
template <bool TRANS, int NI>
__device__ __forceinline__ void ldmatrix_b_pair(uint32_t (&b)[NI][2], int jj, const void* row_addr) {
  uint32_t r[4];
  ldmatrix_x4<TRANS>(r, row_addr);
  b[2 * jj][0] = r[0];
  b[2 * jj][1] = r[1];
  b[2 * jj + 1][0] = r[2];
  b[2 * jj + 1][1] = r[3];
}

// ---- packing ------------------------------------------------------------------------------------
// x (N x C x H x W float) -> xp (N x H x W x Cp BF16, round to nearest even, zero channels
// C .. Cp-1); dgrad packs dy (N x K x P x Q) the same way. A block transposes a tile of kPackPix pixels x kPackCh channels of one image
// through shared memory: the loads are coalesced along the pixels (a warp reads 32 consecutive
// pixels of one channel), the stores along the channels (a thread writes one 16-byte chunk,
// consecutive threads consecutive chunks). Grid (ceil(HW / 32), ceil(Cp / 64), N).
// OutT: __nv_bfloat16, or float (the TF32 kernels' packs: rounded to TF32 by tf32_rounded, Cp
// a multiple of 4).
constexpr int kPackPix = 32, kPackCh = 64, kPackThreads = 256;
// v rounded to TF32 (10 mantissa bits; nearest, ties away from zero: cvt.rna) and kept as a
// float with the low 13 bits zero. The TF32 kernels round their operands the same way (their
// cvt.rna leaves such a value unchanged), and the wgmma kernels' tensor cores read exactly it.
__device__ __forceinline__ float tf32_rounded(float v) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  uint32_t r;
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(v));
  return __uint_as_float(r & 0xffffe000u);
#else
  uint32_t b;
  memcpy(&b, &v, 4);
  if ((b & 0x7f800000u) != 0x7f800000u) b = (b + 0x1000u) & 0xffffe000u;  // Inf / NaN unchanged
  memcpy(&v, &b, 4);
  return v;
#endif
}
__device__ __forceinline__ void pack_store(__nv_bfloat16* p, float v) { *p = __float2bfloat16_rn(v); }
__device__ __forceinline__ void pack_store(float* p, float v) { *p = tf32_rounded(v); }
template <class OutT>
__global__ void __launch_bounds__(kPackThreads)
    pack_nhwc_kernel(const float* __restrict__ x, OutT* __restrict__ xp, int C, int Cp, int HW) {
  __shared__ float tile[kPackCh][kPackPix + 1];
  const int n = int(blockIdx.z), pix0 = int(blockIdx.x) * kPackPix, c0 = int(blockIdx.y) * kPackCh;
  const int t = int(threadIdx.x);
  {
    const int pl = t % kPackPix, pix = pix0 + pl;
#pragma unroll
    for (int i = 0; i < kPackCh / (kPackThreads / kPackPix); ++i) {
      const int cl = t / kPackPix + i * (kPackThreads / kPackPix), c = c0 + cl;
      tile[cl][pl] = c < C && pix < HW ? x[(int64_t(n) * C + c) * HW + pix] : 0.f;
    }
  }
  __syncthreads();
  static_assert(kPackThreads == kPackPix * (kPackCh / 8), "one chunk of 8 channels per thread");
  const int pl = t / (kPackCh / 8), ch = t % (kPackCh / 8);
  const int pix = pix0 + pl, c = c0 + 8 * ch;
  if (pix >= HW || c >= Cp) return;
  OutT* const dst = xp + (int64_t(n) * HW + pix) * Cp + c;
  if constexpr (std::is_same_v<OutT, float>) {  // 8 channels: two 16-byte halves (Cp % 4 == 0)
#pragma unroll
    for (int h = 0; h < 2; ++h)
      if (c + 4 * h < Cp)
        *reinterpret_cast<float4*>(dst + 4 * h) =
            make_float4(tf32_rounded(tile[8 * ch + 4 * h][pl]), tf32_rounded(tile[8 * ch + 4 * h + 1][pl]),
                        tf32_rounded(tile[8 * ch + 4 * h + 2][pl]), tf32_rounded(tile[8 * ch + 4 * h + 3][pl]));
  } else {
    uint32_t v[4];
#pragma unroll
    for (int e = 0; e < 4; ++e) v[e] = pack_bf16x2(tile[8 * ch + 2 * e][pl], tile[8 * ch + 2 * e + 1][pl]);
    uint4 u;
    u.x = v[0], u.y = v[1], u.z = v[2], u.w = v[3];
    *reinterpret_cast<uint4*>(dst) = u;
  }
}

// w (K x C x R x S float) -> wp (K x R x S x Cp BF16, zero channels C .. Cp-1): one element per
// thread (the weights are small).
template <class OutT>
__global__ void __launch_bounds__(kBlock)
    pack_weights_nhwc_kernel(const float* __restrict__ w, OutT* __restrict__ wp, int C, int Cp, int RS, int64_t total) {
  DISCO_GRID_STRIDE(i, total) {
    const int c = int(i % Cp);
    const int64_t krs = i / Cp;
    const int rs = int(krs % RS);
    const int64_t k = krs / RS;
    pack_store(wp + i, c < C ? w[(k * C + c) * RS + rs] : 0.f);
  }
}

// w (K x C x R x S float) -> wd (R x S x C x Kp BF16, zero k from K to Kp-1): dgrad's B, whose
// reduction runs over k. One element per thread; consecutive threads read w K-strided (the
// weights are small and L2-resident).
template <class OutT>
__global__ void __launch_bounds__(kBlock)
    pack_weights_dgrad_nhwc_kernel(const float* __restrict__ w, OutT* __restrict__ wd, int K, int Kp, int C, int RS,
                                   int64_t total) {
  DISCO_GRID_STRIDE(i, total) {
    const int k = int(i % Kp);
    const int64_t rsc = i / Kp;
    const int c = int(rsc % C);
    const int64_t rs = rsc / C;
    pack_store(wd + i, k < K ? w[(int64_t(k) * C + c) * RS + rs] : 0.f);
  }
}

// ---- the loader ------------------------------------------------------------------------------------
// One slice (BK = 32 BF16 / 16 FP32 reduction elements: four 16-byte chunks a row) of A (BM rows)
// and B (BN rows) into the swizzled shared-memory tiles (nhwc_swizzle): this thread owns chunk
// column j = tid % 4 of rows tid / 4 + RPP i (RPP = threads / 4) in A and in B, one 16-byte
// cp.async each (zero-filled where the chunk is padding), and walks the slices in order with
// one (r, s, c8) / (th, tw, k8) cursor shared by A and B. Used by conv_nhwc_kernel and by the
// wgmma kernel (conv2d_wgmma.cuh), whose tiles are this layout.
constexpr int kNhwcSliceChunks = 4;  // 16-byte chunks a 64-byte row of a slice
template <class View, int BM, int BN, int RPP>
struct NhwcChunkLoader {
  static constexpr int KC = kNhwcSliceChunks;
  int lj, lr;
  typename View::Row arow[BM / RPP];
  typename View::Cursor cur;
  __device__ __forceinline__ NhwcChunkLoader(const convidx::ConvGemmParams& g, int slot, int m0, int tid,
                                             int kt_begin)
      : lj(tid & 3), lr(tid >> 2) {
#pragma unroll
    for (int i = 0; i < BM / RPP; ++i) arow[i] = View::row(g, slot, m0 + lr + RPP * i);
    cur = View::cursor(g, slot, kt_begin * KC + lj);
  }
  // The next slice into as / bs (BM x 32 and BN x 32 BF16-sized elements, swizzled).
  template <class T>
  __device__ __forceinline__ void load(const convidx::ConvGemmParams& g, int slot, int n0, const T* a_src,
                                       const T* b_src, __nv_bfloat16* as, __nv_bfloat16* bs) {
#pragma unroll
    for (int i = 0; i < BM / RPP; ++i) {
      const int64_t off = View::a_chunk(g, slot, arow[i], cur);
      cp_async_16(as + nhwc_swizzle(lr + RPP * i, lj), a_src + (off >= 0 ? off : 0), off >= 0);
    }
#pragma unroll
    for (int i = 0; i < BN / RPP; ++i) {
      const int64_t off = View::b_chunk(g, slot, n0 + lr + RPP * i, cur);
      cp_async_16(bs + nhwc_swizzle(lr + RPP * i, lj), b_src + (off >= 0 ? off : 0), off >= 0);
    }
    View::advance(g, slot, cur, KC);
  }
};

// This block's part of a launch (grid: M tiles x N tiles x slots * splits): its dgrad phase
// (slot), the slot's GEMM size, the tile's first row and column, and its split's range of
// slices (kNhwcSliceChunks chunks each).
template <class View, int BM, int BN>
struct NhwcBlock {
  int slot, M, N, m0, n0, kt_begin, nkt;
  __device__ __forceinline__ explicit NhwcBlock(const NhwcConvArgs& args)
      : slot(int(blockIdx.z) / args.splits),
        M(View::gemm_m(args.g, slot)),
        N(args.g.gemm_n),
        m0(int(blockIdx.x) * BM),
        n0(int(blockIdx.y) * BN) {
    int kt_end;
    constexpr int KC = kNhwcSliceChunks;
    convidx::splitk_range((View::chunks(args.g, slot) + KC - 1) / KC, args.splits,
                          int(blockIdx.z) - slot * args.splits, kt_begin, kt_end);
    nkt = kt_end - kt_begin;
  }
  __device__ __forceinline__ bool outside() const { return m0 >= M || n0 >= N; }
};

// ---- the kernel -------------------------------------------------------------------------------------
// View: convidx::NhwcFprop / NhwcDgrad with T = __nv_bfloat16 (BF16 math, m16n8k16), or
// NhwcFprop32 / NhwcDgrad32 with T = float (TF32 math: the same 64-byte rows hold 16 FP32
// reduction elements, ldmatrix delivers the m16n8k8 .tf32 fragments -- word t of row g is
// element (g, t) of a 4-column piece -- rounded with cvt.rna like the NCHW TF32 kernels).
template <class View, class Tile, class T = __nv_bfloat16>
__global__ void __launch_bounds__(Tile::kThreads) conv_nhwc_kernel(const __grid_constant__ NhwcConvArgs args) {
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK, STAGES = Tile::STAGES;
  constexpr int MI = Tile::MI, NI = Tile::NI, RPP = Tile::kRowsPerPass;
  constexpr int KC = kNhwcSliceChunks;
  constexpr bool kTF32 = std::is_same_v<T, float>;
  static_assert(View::kChunk * sizeof(T) == 16, "a chunk is 16 bytes");
  static_assert(BK * sizeof(__nv_bfloat16) == KC * 16, "the swizzle is written for four chunks a row");
  // Dynamic shared memory of conv_nhwc_smem_bytes<Tile>(): As[STAGES][BM][32], Bs[STAGES][BN][32]
  // (BF16, swizzled rows).
  DISCO_DYNAMIC_SMEM(smem);
  __nv_bfloat16* const As = reinterpret_cast<__nv_bfloat16*>(smem);
  __nv_bfloat16* const Bs = As + STAGES * BM * BK;

  const convidx::ConvGemmParams& g = args.g;
  const T* const a_src = static_cast<const T*>(args.a);
  const T* const b_src = static_cast<const T*>(args.b);
  const NhwcBlock<View, BM, BN> blk(args);
  if (blk.outside()) return;  // whole block: this slot's GEMM is smaller than the grid
  const int slot = blk.slot, M = blk.M, N = blk.N, m0 = blk.m0, n0 = blk.n0, kt_begin = blk.kt_begin, nkt = blk.nkt;

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp / Tile::WARPS_N) * Tile::WM;
  const int wn0 = (warp % Tile::WARPS_N) * Tile::WN;

  NhwcChunkLoader<View, BM, BN, RPP> loader(g, slot, m0, tid, kt_begin);
  const auto load = [&](int stage, int) {  // slices come in order: the cursor walks them
    loader.load(g, slot, n0, a_src, b_src, As + stage * BM * BK, Bs + stage * BN * BK);
  };

  float acc[MI][NI][4] = {};

  // ldmatrix row addresses (per lane): A block i at k-half kh: row wm0 + 16 i + (lane % 8) +
  // 8 ((lane / 8) % 2), chunk 2 kh + lane / 16 -> a[i][0..3] = rows 0-7 / 8-15 x k 0-7 / 8-15.
  // B pair jj: row wn0 + 16 jj + (lane % 8) + 8 (lane / 16), chunk 2 kh + (lane / 8) % 2 ->
  // b[2 jj][0..1], b[2 jj + 1][0..1].
  const int a_row = wm0 + (lane & 7) + 8 * ((lane >> 3) & 1), a_chunk = lane >> 4;
  const int b_row = wn0 + (lane & 7) + 8 * (lane >> 4), b_chunk = (lane >> 3) & 1;

  // the NCHW kernels' cp.async pipeline (cp_async_pipeline, conv2d_igemm.cuh)
  cp_async_pipeline<STAGES>(nkt, load, [&](int stage) {
    const __nv_bfloat16* const as = As + stage * BM * BK;
    const __nv_bfloat16* const bs = Bs + stage * BN * BK;
#pragma unroll
    for (int kh = 0; kh < BK / 16; ++kh) {
      uint32_t a[MI][4], b[NI][2];
#pragma unroll
      for (int i2 = 0; i2 < MI; ++i2) ldmatrix_x4(a[i2], as + nhwc_swizzle(a_row + 16 * i2, 2 * kh + a_chunk));
#pragma unroll
      for (int jj = 0; jj < NI / 2; ++jj)
        ldmatrix_b_pair<false>(b, jj, bs + nhwc_swizzle(b_row + 16 * jj, 2 * kh + b_chunk));
      if constexpr (kTF32) {  // kh: k 8 kh .. 8 kh + 7, one m16n8k8 step
        const auto cvt = [](uint32_t& r) {
          float f;
          memcpy(&f, &r, 4);
          r = to_tf32(f);
        };
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2)
#pragma unroll
          for (int e = 0; e < 4; ++e) cvt(a[i2][e]);
#pragma unroll
        for (int j = 0; j < NI; ++j) cvt(b[j][0]), cvt(b[j][1]);
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2)
#pragma unroll
          for (int j = 0; j < NI; ++j) mma_tf32_16x8x8(acc[i2][j], a[i2], b[j]);
      } else {  // kh: k 16 kh .. 16 kh + 15, one m16n8k16 step
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2)
#pragma unroll
          for (int j = 0; j < NI; ++j) mma_bf16_16x8x16(acc[i2][j], a[i2], b[j]);
      }
    }
  });

  conv_store_tile<typename View::Out, MI, NI>(args, slot, acc, m0 + wm0, n0 + wn0, lane, M, N);
}

// ---- weight gradient ----------------------------------------------------------------------------------
// The GEMM of convidx::NhwcWgradT: rows the filters k (dyp), columns (r, s, c) (xp), reduction
// over dy's pixels. Both packed operands are contiguous along their GEMM dimension, so the
// tiles are stored k-major: per operand, blocks of 8 chunks (16 bytes each: 8 BF16 or 4 FP32
// values) of its columns, each block BK reduction rows of 128 bytes, with chunk j of row k at
// j ^ key(k) (nhwc_kmajor_swizzle; key k % 8 for BF16, 2 k % 8 for FP32). For BF16 that is
// exactly the wgmma "MN-major, 128-byte swizzle" canonical layout (atoms of 8 rows x 128 bytes,
// 1024 bytes, address bits 4-6 XOR bits 7-9), so conv_wgrad_wgmma_kernel (conv2d_wgmma.cuh)
// reads the same tiles. Loader (NhwcWgradLoader): a thread owns one chunk column of A (CH rows
// m) and one of B (CH columns, tap and channel chunk decoded once) and BK / (threads / chunks a
// row) reduction rows; per slice it decodes each of its B rows' pixel (n, p, q). A quarter
// warp's 8 cp.async stores are the 8 chunks of one block row: distinct bank groups under
// either swizzle.
//  * BF16 (T = __nv_bfloat16, BK = 32 rows, m16n8k16): fragments from ldmatrix.x4.trans; its
//    8 consecutive k rows at one chunk sit at chunk ^ (k % 8): 8 distinct bank groups.
//  * TF32 (T = float, BK = 16 rows, the same 64 bytes per row of A and B, m16n8k8): ldmatrix
//    cannot transpose 32-bit elements, so the fragments are scalar loads -- a[i] = A(k0 + t,
//    g), A(k0 + t, g + 8), A(k0 + t + 4, g), A(k0 + t + 4, g + 8), b[j] = B(k0 + t, g),
//    B(k0 + t + 4, g) (g = lane / 4, t = lane % 4) -- rounded with cvt.rna. A warp reads 8
//    consecutive columns (two chunks) of 4 consecutive rows at once; the swizzle key 2 (k % 4)
//    puts the rows' chunk pairs at 4 distinct pairs of bank groups: no conflicts.
// Grid (ceil(K / BM), ceil(R S Cp / BN), splits); the NCHW kernel's epilogue and split-K
// reduction with the NhwcWgradT view (columns of padded channels skipped).
template <class T>
__host__ __device__ constexpr int nhwc_kmajor_swizzle(int row, int chunk, int rows) {
  constexpr int kCh = int(16 / sizeof(T));
  const int key = sizeof(T) == 2 ? (row & 7) : ((2 * row) & 7);
  return (((chunk >> 3) * rows + row) * 8 + ((chunk ^ key) & 7)) * kCh;
}

// The weight gradient's loader: stage `stage`'s slice of A (dyp: BK rows x BM filters) and B
// (xp: BK rows x BN columns) in the layout above, for a block of kThreads threads.
template <class T, int BM, int BN, int BK, int kThreads>
struct NhwcWgradLoader {
  using V = convidx::NhwcWgradT<int(16 / sizeof(T))>;
  static constexpr int CH = V::kChunk;
  static constexpr int AW = BM / CH, BW = BN / CH;                       // chunks per k row
  static constexpr int A_RPP = kThreads / AW, B_RPP = kThreads / BW;  // k rows per pass
  static_assert(AW % 8 == 0 && BW % 8 == 0, "whole swizzle blocks of 8 chunks");
  static_assert(kThreads % AW == 0 && kThreads % BW == 0 && BK % A_RPP == 0 && BK % B_RPP == 0,
                "whole loader passes");
  int aj, ar, bj, br, am, kt_begin;
  typename V::Col col;
  __device__ NhwcWgradLoader(const convidx::ConvGemmParams& g, int m0, int n0, int tid, int kt_begin_)
      : aj(tid % AW), ar(tid / AW), bj(tid % BW), br(tid / BW), am(m0 + CH * (tid % AW)), kt_begin(kt_begin_),
        col(V::col(g, n0 + CH * (tid % BW))) {}
  __device__ __forceinline__ void load(const convidx::ConvGemmParams& g, const T* a_src, const T* b_src, T* as, T* bs,
                                       int slice) const {
    const int kbase = (kt_begin + slice) * BK;
#pragma unroll
    for (int i = 0; i < BK / A_RPP; ++i) {
      const int k = ar + A_RPP * i;
      const int64_t off = V::a_chunk(g, kbase + k, am);
      cp_async_16(as + nhwc_kmajor_swizzle<T>(k, aj, BK), a_src + (off >= 0 ? off : 0), off >= 0);
    }
#pragma unroll
    for (int i = 0; i < BK / B_RPP; ++i) {
      const int k = br + B_RPP * i;
      const int64_t off = V::b_chunk(g, V::pix(g, kbase + k), col);
      cp_async_16(bs + nhwc_kmajor_swizzle<T>(k, bj, BK), b_src + (off >= 0 ? off : 0), off >= 0);
    }
  }
};

// A weight-gradient block's GEMM size, tile origin and split range (grid: row tiles, column
// tiles, splits; one slot), like NhwcBlock for fprop / dgrad. V: convidx::NhwcWgradT; BK:
// reduction rows a slice.
template <class V, int BM, int BN, int BK>
struct NhwcWgradBlock {
  int M, N, m0, n0, kt_begin, nkt;
  __device__ __forceinline__ explicit NhwcWgradBlock(const NhwcConvArgs& args)
      : M(V::gemm_m(args.g, 0)), N(args.g.gemm_n), m0(int(blockIdx.x) * BM), n0(int(blockIdx.y) * BN) {
    int kt_end;
    convidx::splitk_range((V::max_gemm_k(args.g) + BK - 1) / BK, args.splits, int(blockIdx.z), kt_begin, kt_end);
    nkt = kt_end - kt_begin;
  }
  __device__ __forceinline__ bool outside() const { return m0 >= M || n0 >= N; }
};

template <class Tile, class T = __nv_bfloat16>
__global__ void __launch_bounds__(Tile::kThreads) conv_wgrad_nhwc_kernel(const __grid_constant__ NhwcConvArgs args) {
  constexpr bool kTF32 = std::is_same_v<T, float>;
  using V = convidx::NhwcWgradT<int(16 / sizeof(T))>;
  constexpr int BM = Tile::BM, BN = Tile::BN, STAGES = Tile::STAGES;
  constexpr int BK = Tile::BK * int(sizeof(__nv_bfloat16)) / int(sizeof(T));  // reduction rows per slice
  constexpr int MI = Tile::MI, NI = Tile::NI;
  static_assert(BK % 16 == 0, "whole mma k steps per slice");
  // conv_nhwc_smem_bytes<Tile>(): As[STAGES][BK][BM], Bs[STAGES][BK][BN] of T (the same bytes
  // for both element types)
  DISCO_DYNAMIC_SMEM(smem);
  T* const As = reinterpret_cast<T*>(smem);
  T* const Bs = As + STAGES * BM * BK;

  const convidx::ConvGemmParams& g = args.g;
  const T* const a_src = static_cast<const T*>(args.a);
  const T* const b_src = static_cast<const T*>(args.b);
  const NhwcWgradBlock<V, BM, BN, BK> blk(args);
  if (blk.outside()) return;
  const int M = blk.M, N = blk.N, m0 = blk.m0, n0 = blk.n0, nkt = blk.nkt;

  const int tid = int(threadIdx.x), lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp / Tile::WARPS_N) * Tile::WM;
  const int wn0 = (warp % Tile::WARPS_N) * Tile::WN;

  const NhwcWgradLoader<T, BM, BN, BK, Tile::kThreads> loader(g, m0, n0, tid, blk.kt_begin);
  const auto load = [&](int stage, int slice) {
    loader.load(g, a_src, b_src, As + stage * BM * BK, Bs + stage * BN * BK, slice);
  };

  float acc[MI][NI][4] = {};

  // Per lane: BF16 -- ldmatrix.trans rows: A block i at k-half kh: k row 16 kh + 8 (lane / 16)
  // + lane % 8, chunk (wm0 + 16 i) / 8 + (lane / 8) % 2 -> a[i][0..3] = m 0-7 / 8-15 x k 0-7 /
  // 8-15; B pair jj: k row 16 kh + 8 ((lane / 8) % 2) + lane % 8, chunk (wn0 + 16 jj) / 8 +
  // lane / 16 -> b[2 jj][0..1], b[2 jj + 1][0..1]. TF32 -- the fragment row / column g and k t.
  const int frag_k = kTF32 ? (lane & 3) : 8 * (lane >> 4) + (lane & 7);
  const int frag_a = kTF32 ? wm0 + (lane >> 2) : wm0 / 8 + ((lane >> 3) & 1);
  const int frag_bk = kTF32 ? (lane & 3) : 8 * ((lane >> 3) & 1) + (lane & 7);
  const int frag_b = kTF32 ? wn0 + (lane >> 2) : wn0 / 8 + (lane >> 4);

  cp_async_pipeline<STAGES>(nkt, load, [&](int stage) {
    const T* const as = As + stage * BM * BK;
    const T* const bs = Bs + stage * BN * BK;
    if constexpr (kTF32) {
      // element (k, column x) of a k-major FP32 tile, rounded to TF32
      const auto at = [&](const float* tile, int k, int x) {
        return to_tf32(tile[nhwc_kmajor_swizzle<float>(k, x >> 2, BK) + (x & 3)]);
      };
#pragma unroll
      for (int k0 = 0; k0 < BK; k0 += 8) {  // one m16n8k8 step
        uint32_t a[MI][4], b[NI][2];
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2) {
          const int r = frag_a + 16 * i2;
          a[i2][0] = at(as, k0 + frag_k, r);
          a[i2][1] = at(as, k0 + frag_k, r + 8);
          a[i2][2] = at(as, k0 + frag_k + 4, r);
          a[i2][3] = at(as, k0 + frag_k + 4, r + 8);
        }
#pragma unroll
        for (int j = 0; j < NI; ++j) {
          const int c = frag_b + 8 * j;
          b[j][0] = at(bs, k0 + frag_bk, c);
          b[j][1] = at(bs, k0 + frag_bk + 4, c);
        }
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2)
#pragma unroll
          for (int j = 0; j < NI; ++j) mma_tf32_16x8x8(acc[i2][j], a[i2], b[j]);
      }
    } else {
#pragma unroll
      for (int kh = 0; kh < BK / 16; ++kh) {
        uint32_t a[MI][4], b[NI][2];
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2)
          ldmatrix_x4<true>(a[i2], as + nhwc_kmajor_swizzle<T>(16 * kh + frag_k, frag_a + 2 * i2, BK));
#pragma unroll
        for (int jj = 0; jj < NI / 2; ++jj)
          ldmatrix_b_pair<true>(b, jj, bs + nhwc_kmajor_swizzle<T>(16 * kh + frag_bk, frag_b + 2 * jj, BK));
#pragma unroll
        for (int i2 = 0; i2 < MI; ++i2)
#pragma unroll
          for (int j = 0; j < NI; ++j) mma_bf16_16x8x16(acc[i2][j], a[i2], b[j]);
      }
    }
  });

  conv_store_tile<V, MI, NI>(args, 0, acc, m0 + wm0, n0 + wn0, lane, M, N);
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
