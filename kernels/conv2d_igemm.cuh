#pragma once
// Implicit-GEMM convolution kernel (fprop, dgrad with phase decomposition, wgrad) for
// tensor cores (TF32 m16n8k8, BF16 m16n8k16, FP32 accumulation) and a plain FP32-FMA path.
//
// One thread block computes a BM x BN tile of C = A * B (GEMM views and index math:
// include/disco/problem/conv2d_index.hpp, unit-tested on the CPU). Per BK-slice of the
// reduction, the block gathers the A and B tiles straight from the NCHW tensors into shared
// memory with 4-byte cp.async (zero-fill for padding / out-of-range elements; fprop's weights
// as 16-byte copies when aligned) in a Tile::STAGES-deep pipeline: the copies of slices
// i+1 .. i+STAGES-1 are in flight while slice i is multiplied, one barrier per slice. Shared
// memory holds float32 in every math mode; TF32 / BF16 rounding happens when the mma fragments
// are built (cvt.rna.tf32.f32 / __floats2bfloat162_rn), so one loader serves all three modes.
//
// Shared memory is DYNAMIC (DISCO_DYNAMIC_SMEM, kernels/common.cuh): the launch passes
// conv_igemm_smem_bytes<View, MATH, Tile>() bytes, which the kernel carves into the STAGES A
// and B buffers and wgrad's column table (ConvSmem). Tiles over 48 KB (the large one,
// 105-111.5 KB) need cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
// bytes) before their first launch on a device; the launcher (src/cuda/conv_custom.cu) does it.
//
// Warps tile the block as WARPS_M x WARPS_N; a warp owns a WM x WN sub-tile made of
// MI x NI fragments of 16 x 8, accumulators in the mma.sync C layout:
//   acc[i][j][e]  ->  row 16 i + g + 8 (e >> 1),  col 8 j + 2 t + (e & 1)
//   (g = lane / 4, t = lane % 4). The FP32 path keeps the same layout and does FMAs, so
//   the epilogue is shared.
// gridDim.z = slots x splits: slots are dgrad phases (1 for fprop / wgrad), splits cut the
// reduction (split-K). With one split the epilogue writes the output (plus bias, plus the
// old value when accumulating); otherwise it writes partials to a workspace that
// conv_splitk_reduce_kernel sums in a fixed order.
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <type_traits>

#include "common.cuh"
#include "disco/problem/conv2d_index.hpp"

namespace disco {
namespace cuda {
namespace kern {

enum class ConvMath : int { FP32 = 0, TF32 = 1, BF16 = 2 };

// PAIRED_A: the "paired" A layout of the tensor-core modes (ConvSmem below): each thread's
// A fragment is read as 8-byte pairs. FP32 keeps the plain layout (its reads are per k).
// GROUPED: the grouped loaders, for problems whose view has groups_ok: fprop / dgrad load A
// four consecutive rows per thread and reduction index (ATileLoaderGrouped below), wgrad
// loads B four consecutive reduction indices per thread and column (load_b_tile).
template <int BM_, int BN_, int BK_, int WARPS_M_, int WARPS_N_, int STAGES_ = 2, bool PAIRED_A_ = false,
          bool GROUPED_ = false>
struct ConvTile {
  static constexpr int BM = BM_, BN = BN_, BK = BK_;
  static constexpr int STAGES = STAGES_;  // shared-memory buffers of the cp.async pipeline
  static constexpr bool kPairedA = PAIRED_A_;
  static constexpr bool kGrouped = GROUPED_;
  static_assert(!(PAIRED_A_ && GROUPED_), "the grouped A loader writes the plain layout");
  static_assert(STAGES >= 2, "at least double buffering");
  static constexpr int WARPS_M = WARPS_M_, WARPS_N = WARPS_N_;
  static constexpr int kThreads = WARPS_M * WARPS_N * 32;
  static constexpr int WM = BM / WARPS_M, WN = BN / WARPS_N;
  static constexpr int MI = WM / 16, NI = WN / 8;
  static_assert(WM % 16 == 0 && WN % 8 == 0, "warp tile must be made of 16x8 fragments");
  static_assert(BK % 16 == 0, "BK must be a multiple of 16 (bf16 mma k)");
  static_assert(kThreads % BM == 0 && BK % (kThreads / BM) == 0, "m-fast A loader");
  static_assert(kThreads % BK == 0 && BM % (kThreads / BK) == 0 && BN % (kThreads / BK) == 0, "k-fast loaders");
};
// The tiles and their dynamic shared memory (ConvSmem below; the range covers the math modes
// and wgrad's column table):
//  * large: 128 x 128, BK = 32, 3 stages -- the usual Ampere / Hopper tensor-core GEMM tile:
//    105-111.5 KB (107520 .. 114176 bytes), over the 48 KB default, so the launcher opts in.
//    Two blocks (2 x (111.5 + 1 reserved) KB) fit the 228 KB of an H100 SM; so do their
//    registers where a thread uses <= 128 (sm_90: all but FP32 dgrad, which gets one block).
//  * small 64 x 64 and narrow 128 x 32: BK = 16, 3 stages, 28.5-34.3 KB (no opt-in needed;
//    their occupancy is bounded by registers, not shared memory).
// BK = 32 halves the barriers and pipeline bookkeeping per reduction element of the large
// tile; the split-K plans count k-tiles of the tile's own BK (conv_custom.cu: k_tiles).
using ConvTileLarge = ConvTile<128, 128, 32, 2, 4, 3>;  // 256 threads, warp tile 64 x 32
// The large tile with the paired A layout: a tuning candidate ("128x128p") for TF32 / BF16
// only, same byte range (the paired A stages are <= the plain ones).
using ConvTileLargePaired = ConvTile<128, 128, 32, 2, 4, 3, true>;
using ConvTileSmall = ConvTile<64, 64, 16, 2, 2, 3>;    // 128 threads, warp tile 32 x 32
using ConvTileNarrow = ConvTile<128, 32, 16, 4, 1, 3>;  // 128 threads, warp tile 32 x 32: GEMMs with N <= 32
                                                        // (3, 25 and 32 output channels)
// The three tiles with the grouped loaders: tuning candidates ("128x128g", "64x64g",
// "128x32g"), same shared memory as the plain tiles.
using ConvTileLargeGrouped = ConvTile<128, 128, 32, 2, 4, 3, false, true>;
using ConvTileSmallGrouped = ConvTile<64, 64, 16, 2, 2, 3, false, true>;
using ConvTileNarrowGrouped = ConvTile<128, 32, 16, 4, 1, 3, false, true>;

struct ConvKernelArgs {
  convidx::ConvGemmParams g;
  const float* a_src;   // fprop: x, dgrad: dy, wgrad: dy
  const float* b_src;   // fprop: w, dgrad: w,  wgrad: x
  float* out;           // y / dx / dw
  const float* bias;    // per GEMM column (fprop: [K]) or null
  float* ws;            // split-K partials [num_slots * splits][max_m][gemm_n]
  int64_t ws_slice;     // max_m * gemm_n
  int splits;
  int accumulate;
  int b_vec4;           // fprop: B (the weights) as 16-byte copies (conv_b_vec4)
};

// Can fprop's B tile -- the weights, contiguous along the reduction -- be loaded as 16-byte
// copies? Needs Kred % 4 == 0 (then a group of 4 never straddles a filter) and 16-byte
// aligned weights. Host side; the launcher stores the answer in ConvKernelArgs::b_vec4.
inline int conv_b_vec4(const convidx::ConvGemmParams& g, const float* w) {
  return g.kind == int(convidx::ConvKind::Fprop) && g.max_kred % 4 == 0 &&
         (reinterpret_cast<uintptr_t>(w) & 15u) == 0;
}

// ---- PTX wrappers -----------------------------------------------------------------------------
// Without __CUDA_ARCH__ >= 800 they fall back to plain C++ (synchronous copies, no rounding)
// and the mma helpers trap; in the CUDA backend's emulation (tests/emu_backend,
// DISCO_EMU_ASYNC_COPIES) a 16-byte copy lands only at the cp.async.wait_group that completes
// its group (the 4-byte ones of the NCHW tiles land at once), and every copy's source must lie
// inside one device allocation (as for compute-sanitizer memcheck). DISCO_KERNEL_EMULATION (CPU emulation, tests/emu/) routes the mma
// helpers instead to disco_emu_mma_tf32 / disco_emu_mma_bf16, which the includer declares at
// global scope with the signature of mma_tf32_16x8x8. Preprocessor only: nvcc builds see no change.
__device__ __forceinline__ void cp_async_f32(float* smem, const float* gmem, bool pred) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = pred ? 4 : 0;  // 0: nothing is read, the 4 bytes are zero-filled
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
#else
#if defined(DISCO_EMU_ASYNC_COPIES)
  if (pred) disco_emu_check_copy_source(gmem, 4);  // inside a device allocation (memcheck)
#endif
  *smem = pred ? *gmem : 0.f;  // (lands at once in every emulation: they are too many to queue)
#endif
}
// 16 bytes (4 floats, 8 BF16), both addresses 16-byte aligned; zero-filled when !pred. The
// host fallback (CPU emulation) fills the destination with 0xff bytes (NaN as float and as
// BF16) where a GPU would fault on a misaligned address, so the emulated tests catch it.
__device__ __forceinline__ void cp_async_16(void* smem, const void* gmem, bool pred) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  const unsigned s = static_cast<unsigned>(__cvta_generic_to_shared(smem));
  const int src_bytes = pred ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(s), "l"(gmem), "r"(src_bytes) : "memory");
#else
  const bool misaligned = ((reinterpret_cast<uintptr_t>(smem) | (pred ? reinterpret_cast<uintptr_t>(gmem) : 0)) & 15u) != 0;
  if (misaligned)
    std::memset(smem, 0xff, 16);
#if defined(DISCO_EMU_ASYNC_COPIES)
  else
    disco_emu_cp_async(smem, gmem, 16, pred);
#else
  else if (pred)
    std::memcpy(smem, gmem, 16);
  else
    std::memset(smem, 0, 16);
#endif
#endif
}
__device__ __forceinline__ void cp_async_commit() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.commit_group;\n" ::: "memory");
#elif defined(DISCO_EMU_ASYNC_COPIES)
  disco_emu_cp_async_commit();
#endif
}
template <int N>
__device__ __forceinline__ void cp_async_wait() {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
#elif defined(DISCO_EMU_ASYNC_COPIES)
  disco_emu_cp_async_wait(N);
#endif
}

// The STAGES-deep cp.async pipeline of the conv kernels, one barrier per slice. The prologue
// starts slices 0 .. STAGES-2 (one commit group each, empty past the end). Iteration i waits
// until at most STAGES-2 groups are pending -- then group i, slice i, has landed -- and passes
// the barrier: now every thread's copies of slice i are visible, and every thread has finished
// the math of slice i-1, so its buffer ((i-1) mod STAGES) can take slice i+STAGES-1 while
// slice i is multiplied. load(buffer, slice) issues the copies of slice `slice` (0 .. nkt-1,
// called in increasing order) into `buffer`; mma(buffer) multiplies one.
// after_wait() runs between a slice's wait and the barrier (the wgmma kernel's proxy fence).
template <int STAGES, class Load, class Mma, class AfterWait>
__device__ __forceinline__ void cp_async_pipeline(int nkt, const Load& load, const Mma& mma,
                                                  const AfterWait& after_wait) {
#pragma unroll
  for (int st = 0; st < STAGES - 1; ++st) {
    if (st < nkt) load(st, st);
    cp_async_commit();
  }
  for (int i = 0; i < nkt; ++i) {
    cp_async_wait<STAGES - 2>();
    after_wait();
    __syncthreads();
    const int next = i + STAGES - 1;
    if (next < nkt) load(next % STAGES, next);
    cp_async_commit();
    mma(i % STAGES);
  }
}
template <int STAGES, class Load, class Mma>
__device__ __forceinline__ void cp_async_pipeline(int nkt, const Load& load, const Mma& mma) {
  cp_async_pipeline<STAGES>(nkt, load, mma, [] {});
}

__device__ __forceinline__ uint32_t to_tf32(float x) {
  uint32_t r;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm("cvt.rna.tf32.f32 %0, %1;\n" : "=r"(r) : "f"(x));
#else
  memcpy(&r, &x, 4);
#endif
  return r;
}
__device__ __forceinline__ uint32_t pack_bf16x2(float lo, float hi) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);  // .x = lo (low 16 bits)
  uint32_t r;
  memcpy(&r, &h, 4);
  return r;
}
__device__ __forceinline__ void mma_tf32_16x8x8(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_mma_tf32(c, a, b);
#else
  __trap();
#endif
}
__device__ __forceinline__ void mma_bf16_16x8x16(float (&c)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
      "{%0,%1,%2,%3};\n"
      : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#elif defined(DISCO_KERNEL_EMULATION)
  disco_emu_mma_bf16(c, a, b);
#else
  __trap();
#endif
}

// ---- shared-memory layout ------------------------------------------------------------------------
// Row strides (floats) of As[STAGES][BK][AST] and Bs[STAGES][BN][BST], padded so that the
// fragment reads of warp_mma_slice are free of bank conflicts (32 banks of 4 bytes; a warp's
// lane = 4 g + t, g in 0..7, t in 0..3; word w sits in bank w mod 32):
//  * TF32 A: As[k0 + t][r + g] -> bank (t AST + g) mod 32: the 4 rows t must start 8 banks
//    apart, AST = 8 mod 16: BM + 8 (136, 72). FP32 reads As[kk][r + g]: one row, any stride.
//  * BF16 A: As[k0 + 2t (+1)][r + g] -> bank (2t AST + g) mod 32: 2 AST = 8 mod 16, i.e.
//    AST = 4 mod 8: BM + 4 (132, 68).
//  * TF32 B: Bs[c + g][k0 + t] -> bank (g BST + t) mod 32: the 8 rows g must start 4 banks
//    apart, BST = 4 mod 8. FP32 reads Bs[c + 2t (+1)][kk] (rows 2t, g broadcasts): 2 BST =
//    8 mod 16, the same condition. BST = BK + 4: 20 for BK = 16, 36 for BK = 32.
//  * BF16 B: float2 Bs[c + g][k0 + 2t .. 2t+1]: 8-byte accesses are served per half warp
//    (g in 0..3, then 4..7), whose 16 lanes must cover 32 distinct banks: rows g start 8 banks
//    apart, BST = 8 mod 16 (and even: 8-byte aligned). BST = BK + 8: 24 for BK = 16, 40 for
//    BK = 32.
// The padding depends on BK only through BK mod 16, so BK = 16 and 32 get the same residues;
// the static_asserts check them. The loaders' stores are conflict-free too where a warp writes
// one row (m-fast A, k-fast B with BK = 32; fprop's 16-byte B copies: 8 lanes per row, rows
// 16-byte aligned since BST % 4 == 0). Wgrad's k-fast A loader writes columns (lane = k):
// with AST = 8 mod 32 (TF32 / FP32) that is a 4-way (BK = 16) / 8-way (BK = 32) store
// conflict, with AST = 4 mod 32 (BF16) 2-way / 4-way; the read conditions above rule out a
// stride that would avoid it.
//
// Paired A layout (Tile::kPairedA, TF32 / BF16; FP32 keeps the plain one). The plain TF32 A
// fragment costs 4 LDS.32 per 16 x 8 block, BF16 8; the paired layout stores the two k of
// each fragment register pair side by side, so they are one 8-byte load: TF32 pairs
// (k, k + 4) within each group of 8 k, BF16 pairs (k, k + 1). A stage is As[BK / 2][AST]:
//   TF32: (k, m) -> row (k / 8) 4 + k % 4, word 2 m + (k / 4) % 2
//   BF16: (k, m) -> row k / 2,             word 2 m + k % 2           (a_word(k) + 2 m)
// Both turn fragment row k0 + t (TF32, k0 % 8 == 0) / k0 + 2t (BF16, k0 % 16 == 0) into
// paired row k0 / 2 + t: float2 As[k0 / 2 + t][2 (r + g)] = {a0, a2} (TF32) / a0 (BF16), the
// same at r + 8 -> {a1, a3} / a1, and BF16's a2 / a3 at row k0 / 2 + 4 + t: 2 LDS.64 (TF32) /
// 4 LDS.64 (BF16) per block instead of 4 / 8 LDS.32.
//  * reads: a half warp (g in 0..3 or 4..7, t in 0..3) covers words t AST + 2 g + {0, 1}: 8
//    consecutive words per row t, so the 4 rows must start 8 banks apart: AST = 8 mod 16
//    (and even: 8-byte aligned pairs). AST = 2 BM + 8: 264 for BM = 128 (a_pairs_conflict_free
//    checks it lane by lane). Bytes: STAGES x BK / 2 x AST floats -- the plain BF16 size, 1.5 KB
//    less than the plain TF32 one; the large tile stays at 103.5-111.5 KB.
//  * stores (4-byte cp.async): the m-fast A loader's consecutive lanes (consecutive m, one k)
//    now land 2 words apart: a 2-way conflict (lanes m and m + 16), where the plain layout
//    had none. Wgrad's k-fast A loader (lane = k, BK = 32, one m) hits rows (k / 8) 4 + k % 4
//    (TF32) / k / 2 (BF16) at word offset 0 / 1: with AST = 8 mod 32 the banks are
//    8 (row mod 4) + {0, 1}, 8 distinct: 4-way in both modes (plain layout: 8-way TF32,
//    4-way BF16). AST = 24 mod 32 gives the same.
//
// Byte layout of the dynamic shared memory, every part 16-byte aligned: As, then Bs, then (views
// with kBTable: wgrad) the block's column table Bt[BN] of int4.

// The paired float2 fragment reads of a warp, lane by lane: each half warp's 16 lanes read
// words t ast + 2 g + {0, 1} (rows t = lane % 4, g = lane / 4) and must cover 32 distinct banks.
constexpr bool a_pairs_conflict_free(int ast) {
  for (int half = 0; half < 2; ++half) {
    unsigned banks = 0;
    for (int lane = 16 * half; lane < 16 * half + 16; ++lane) {
      const int w = (lane & 3) * ast + 2 * (lane >> 2);
      const unsigned b = 3u << (w % 32);  // w even: banks w, w + 1
      if (w % 2 != 0 || (banks & b) != 0) return false;
      banks |= b;
    }
  }
  return true;
}

template <ConvMath MATH, class Tile, bool BTABLE = false>
struct ConvSmem {
  // A layout: 0 plain As[BK][AST] (As[k][m]); 4 paired TF32, 1 paired BF16 (As[BK / 2][AST]).
  static constexpr int kAPair = !Tile::kPairedA || MATH == ConvMath::FP32 ? 0 : MATH == ConvMath::TF32 ? 4 : 1;
  static constexpr int AROWS = kAPair ? Tile::BK / 2 : Tile::BK;
  static constexpr int AME = kAPair ? 2 : 1;  // words between consecutive m of one k
  static constexpr int AST =
      kAPair ? 2 * Tile::BM + 8 : Tile::BM + (MATH == ConvMath::BF16 ? 4 : 8);
  static constexpr int BST = Tile::BK + (MATH == ConvMath::BF16 ? 8 : 4);
  // Word of element (k, m = 0) within a stage; (k, m) is at a_word(k) + AME m. A bit
  // permutation of k (plus the row stride), so a_word(k1 + k2) = a_word(k1) + a_word(k2)
  // when k1 and k2 share no bits -- the loaders split k into a per-thread and an unrolled part.
  __host__ __device__ static constexpr int a_word(int k) {
    return kAPair == 4 ? ((k >> 3) * 4 + (k & 3)) * AST + ((k >> 2) & 1)
           : kAPair == 1 ? (k >> 1) * AST + (k & 1)
                         : k * AST;
  }
  static_assert(MATH == ConvMath::BF16 ? ((kAPair || AST % 8 == 4) && BST % 16 == 8)
                                      : ((kAPair || AST % 16 == 8) && BST % 8 == 4),
                "conflict-free fragment reads (see above)");
  static_assert(!kAPair || (AST % 16 == 8 && AST >= 2 * Tile::BM && Tile::BK % 16 == 0 && a_pairs_conflict_free(AST)),
                "paired A: conflict-free float2 fragment reads (see above)");
  static_assert(kAPair != 4 || a_word(8 + 4 + 3) == 7 * AST + 1, "paired TF32 A: k = 15 -> row 7, second word");
  static_assert(kAPair != 1 || a_word(15) == 7 * AST + 1, "paired BF16 A: k = 15 -> row 7, second word");
  static_assert(BST % 4 == 0 && AST % 4 == 0, "16-byte aligned rows (vector B loader, float2 reads)");
  static constexpr size_t kABytes = sizeof(float) * Tile::STAGES * AROWS * AST;
  static constexpr size_t kBBytes = sizeof(float) * Tile::STAGES * Tile::BN * BST;
  static constexpr size_t kBtBytes = BTABLE ? sizeof(int4) * Tile::BN : 0;
  static constexpr size_t kAOffset = 0, kBOffset = kABytes, kBtOffset = kABytes + kBBytes;
  static constexpr size_t kBytes = kBtOffset + kBtBytes;
  static_assert(kBOffset % 16 == 0 && kBtOffset % 16 == 0, "16-byte aligned parts");
  static_assert(kBytes <= 227 * 1024, "over the 227 KB a block may opt in to (sm_80: 163 KB)");
};
// Dynamic shared memory of one conv_igemm_kernel<View, MATH, Tile> block: the launch's size.
template <class View, ConvMath MATH, class Tile>
constexpr size_t conv_igemm_smem_bytes() {
  return ConvSmem<MATH, Tile, View::kBTable>::kBytes;
}

// ---- tile loaders -------------------------------------------------------------------------------
// A tile -> one stage of As (Smem's layout: element (k, m) at word Smem::a_word(k) + Smem::AME m
// of the stage). m-fast: each thread owns one row m (context decoded once) and walks its
// reduction indices kr0, kr0 + KSTEP, ... slice after slice with an incremental cursor
// (View::a_cursor / a_advance / a_elem_at: no division per element). load() must be called
// for consecutive slices, starting with the one of kbase0.
template <class View, class Tile, class Smem, bool KFAST = View::kAKFast>
struct ATileLoader {
  static constexpr int KSTEP = Tile::kThreads / Tile::BM;
  static_assert((KSTEP & (KSTEP - 1)) == 0, "k_local0 < KSTEP shares no bits with it * KSTEP (a_word split)");
  typename View::ARow row;
  typename View::ACursor cur;
  int a_off;  // word of (k_local0, m_local) in a stage
  __device__ __forceinline__ ATileLoader(const convidx::ConvGemmParams& g, int slot, int m0, int tid, int kbase0) {
    const int m_local = tid % Tile::BM;
    const int k_local0 = tid / Tile::BM;
    a_off = Smem::a_word(k_local0) + Smem::AME * m_local;
    row = View::a_row(g, slot, m0 + m_local);
    cur = View::a_cursor(g, slot, kbase0 + k_local0);
  }
  __device__ __forceinline__ void load(const convidx::ConvGemmParams& g, int slot, const float* src, float* As, int,
                                       int) {
#pragma unroll
    for (int it = 0; it < Tile::BK / KSTEP; ++it) {
      const int64_t off = View::a_elem_at(g, slot, row, cur);
      cp_async_f32(As + a_off + Smem::a_word(it * KSTEP), src + (off >= 0 ? off : 0), off >= 0);
      View::a_advance(g, slot, cur, KSTEP);
    }
  }
};
// k-fast: each thread owns one reduction column per slice (context decoded per slice) and walks m.
template <class View, class Tile, class Smem>
struct ATileLoader<View, Tile, Smem, true> {
  static constexpr int MSTEP = Tile::kThreads / Tile::BK;
  int k_local, m_local0, a_off;  // a_off: word of (k_local, m_local0) in a stage
  __device__ __forceinline__ ATileLoader(const convidx::ConvGemmParams&, int, int, int tid, int) {
    k_local = tid % Tile::BK;
    m_local0 = tid / Tile::BK;
    a_off = Smem::a_word(k_local) + Smem::AME * m_local0;
  }
  __device__ __forceinline__ void load(const convidx::ConvGemmParams& g, int slot, const float* src, float* As,
                                       int kbase, int m0) const {
    const typename View::ACol col = View::a_col(g, slot, kbase + k_local);
#pragma unroll
    for (int it = 0; it < Tile::BM / MSTEP; ++it) {
      const int ml = m_local0 + it * MSTEP;
      const int64_t off = View::a_elem(g, slot, col, m0 + ml);
      cp_async_f32(As + a_off + Smem::AME * it * MSTEP, src + (off >= 0 ? off : 0), off >= 0);
    }
  }
};
// One group of four (convidx: a_group_at / b_group_at) into four consecutive words of shared
// memory (16-byte aligned): one 16-byte cp.async where the sources are contiguous (step 1), all
// in [0, lim) and 16-byte aligned; otherwise four 4-byte ones, zero-filled where out of range.
__device__ __forceinline__ void cp_async_group4(float* dst, const float* src, const convidx::GroupElem& e, int step,
                                                int lim) {
  const bool all = e.valid && e.w >= 0 && e.w + 3 * step < lim;
  if (step == 1 && all && (reinterpret_cast<uintptr_t>(src + e.off) & 15u) == 0) {
    cp_async_16(dst, src + e.off, true);
    return;
  }
#pragma unroll
  for (int j = 0; j < 4; ++j) {
    const int w = e.w + j * step;
    const bool v = e.valid && w >= 0 && w < lim;
    cp_async_f32(dst + j, src + (v ? e.off + int64_t(j) * step : 0), v);
  }
}

// Grouped m-fast (Tile::kGrouped; views with groups_ok, launcher-checked): each thread owns
// four consecutive rows m .. m+3 of one image row (m % 4 == 0) and walks its reduction
// indices like the m-fast loader, KSTEP = kThreads / (BM / 4) apart. Per index, the cursor
// step, the row / reduction / h tests and the address are computed once for the four rows
// (View::a_group_at; rows m + j are a_group_step elements apart and only their column test
// differs): the m-fast loader's per-element index work, a quarter as often. Where the four
// sources are contiguous (step 1: dgrad, stride-1 fprop), all in range and 16-byte aligned --
// half of a k4 s2 dgrad's taps -- they are one 16-byte cp.async; otherwise four 4-byte ones.
// The destination is the plain layout's four consecutive words (k, m .. m+3), 16-byte
// aligned. A warp's lanes are consecutive groups of one k (of two k in the 64x64 tile): the
// 16-byte copies store 512 (2 x 256) contiguous bytes, conflict-free; the 4-byte ones are
// 4-way bank conflicts.
template <class View, class Tile, class Smem>
struct ATileLoaderGrouped {
  static constexpr int MG = 4;  // rows per group (cp_async_group4)
  static constexpr int GROUPS = Tile::BM / MG;
  static constexpr int KSTEP = Tile::kThreads / GROUPS;
  static_assert(!View::kAKFast, "row groups: a view walked along m (fprop / dgrad)");
  static_assert(Smem::kAPair == 0 && Smem::AME == 1, "row groups: the plain A layout");
  static_assert(Tile::kThreads % GROUPS == 0 && Tile::BK % KSTEP == 0 && (KSTEP & (KSTEP - 1)) == 0,
                "grouped A loader: whole groups per thread count, KSTEP a power of two dividing BK");
  typename View::ARow row;
  typename View::ACursor cur;
  int a_off;  // word of (k_local0, first row of the group) in a stage: a multiple of 4
  __device__ __forceinline__ ATileLoaderGrouped(const convidx::ConvGemmParams& g, int slot, int m0, int tid,
                                                int kbase0) {
    const int m_local = (tid % GROUPS) * MG;
    const int k_local0 = tid / GROUPS;
    a_off = Smem::a_word(k_local0) + m_local;
    row = View::a_row(g, slot, m0 + m_local);
    cur = View::a_cursor(g, slot, kbase0 + k_local0);
  }
  __device__ __forceinline__ void load(const convidx::ConvGemmParams& g, int slot, const float* src, float* As, int,
                                       int) {
    const int step = View::a_group_step(g), lim = View::a_group_limit(g);
#pragma unroll
    for (int it = 0; it < Tile::BK / KSTEP; ++it) {
      cp_async_group4(As + a_off + Smem::a_word(it * KSTEP), src, View::a_group_at(g, slot, row, cur), step, lim);
      View::a_advance(g, slot, cur, KSTEP);
    }
  }
};

// B tile -> Bs[n][k], always k-fast. Views with kBTable (wgrad) read the per-column part of
// the address from Bt, the block's column table (View::b_entry, built once per block).
template <class View, class Tile, int BST>
__device__ __forceinline__ void load_b_tile(const convidx::ConvGemmParams& g, int slot, const float* src,
                                            float (*Bs)[BST], int kbase, int n0, int tid, const int4* Bt,
                                            int b_vec4) {
  if constexpr (View::kBVec4) {
    if (b_vec4) {  // four consecutive k of one column per copy (fprop: B[k][n] = w[n][k])
      constexpr int KV = Tile::BK / 4, NSTEP4 = Tile::kThreads / KV;
      static_assert(Tile::BK % 4 == 0 && Tile::kThreads % KV == 0 && Tile::BN % NSTEP4 == 0, "vector B loader");
      static_assert((BST * 4) % 16 == 0, "shared B rows must keep 16-byte alignment");
      const int k4 = (tid % KV) * 4, n_local0 = tid / KV;
      const int kr = kbase + k4;  // kr .. kr+3 all valid or all past the end (Kred % 4 == 0)
#pragma unroll
      for (int it = 0; it < Tile::BN / NSTEP4; ++it) {
        const int nl = n_local0 + it * NSTEP4, n = n0 + nl;
        const bool valid = kr < g.max_kred && n < g.gemm_n;
        cp_async_16(&Bs[nl][k4], src + (valid ? int64_t(n) * g.max_kred + kr : 0), valid);
      }
      return;
    }
  }
  if constexpr (Tile::kGrouped && View::kBTable) {
    // wgrad's grouped B loader (views with groups_ok, launcher-checked): four consecutive
    // reduction indices -- four q of one output row -- per thread and column, sharing the
    // column's table entry, the h test and the address (cp_async_group4). Bs[n][k4 .. k4+3]
    // is 16-byte aligned (BST % 4 == 0).
    constexpr int KG = Tile::BK / 4, NSTEP4 = Tile::kThreads / KG;
    static_assert(Tile::BK % 4 == 0 && Tile::kThreads % KG == 0 && Tile::BN % NSTEP4 == 0, "grouped B loader");
    static_assert(BST % 4 == 0, "shared B rows must keep 16-byte alignment");
    const int k4 = (tid % KG) * 4, n_local0 = tid / KG;
    const typename View::BCol col = View::b_col(g, slot, kbase + k4);
    const int step = View::b_group_step(g), lim = View::b_group_limit(g);
#pragma unroll
    for (int it = 0; it < Tile::BN / NSTEP4; ++it) {
      const int nl = n_local0 + it * NSTEP4;
      const int4 e = Bt[nl];
      cp_async_group4(&Bs[nl][k4], src, View::b_group_at(g, col, typename View::BEntry{e.x, e.y, e.z, e.w}), step,
                      lim);
    }
    return;
  }
  constexpr int NSTEP = Tile::kThreads / Tile::BK;
  const int k_local = tid % Tile::BK, n_local0 = tid / Tile::BK;
  const typename View::BCol col = View::b_col(g, slot, kbase + k_local);
#pragma unroll
  for (int it = 0; it < Tile::BN / NSTEP; ++it) {
    const int nl = n_local0 + it * NSTEP;
    int64_t off;
    if constexpr (View::kBTable) {
      const int4 e = Bt[nl];
      off = View::b_elem_at(g, col, typename View::BEntry{e.x, e.y, e.z, e.w});
    } else {
      off = View::b_elem(g, slot, col, n0 + nl);
    }
    cp_async_f32(&Bs[nl][k_local], src + (off >= 0 ? off : 0), off >= 0);
  }
}

// ---- warp-level multiply of one BK slice ----------------------------------------------------------
// APAIR: Smem::kAPair (0: As[k][m]; 4 / 1: the paired TF32 / BF16 layout, As[BK / 2][AST]).
template <ConvMath MATH, class Tile, int AST, int BST, int APAIR = 0>
__device__ __forceinline__ void warp_mma_slice(const float (*As)[AST], const float (*Bs)[BST],
                                               float (&acc)[Tile::MI][Tile::NI][4], int wm0, int wn0, int lane) {
  constexpr int MI = Tile::MI, NI = Tile::NI, BK = Tile::BK;
  const int g = lane >> 2, t = lane & 3;
  static_assert(APAIR == 0 || (APAIR == 4 && MATH == ConvMath::TF32) || (APAIR == 1 && MATH == ConvMath::BF16),
                "paired A layout of another math mode");
  if constexpr (MATH == ConvMath::FP32) {
#pragma unroll 4
    for (int kk = 0; kk < BK; ++kk) {
      float a[MI][2], b[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        a[i][0] = As[kk][wm0 + 16 * i + g];
        a[i][1] = As[kk][wm0 + 16 * i + g + 8];
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        b[j][0] = Bs[wn0 + 8 * j + 2 * t][kk];
        b[j][1] = Bs[wn0 + 8 * j + 2 * t + 1][kk];
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
          for (int e = 0; e < 4; ++e) acc[i][j][e] = fmaf(a[i][e >> 1], b[j][e & 1], acc[i][j][e]);
    }
  } else if constexpr (MATH == ConvMath::TF32) {
#pragma unroll
    for (int k0 = 0; k0 < BK; k0 += 8) {
      uint32_t a[MI][4], b[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = wm0 + 16 * i + g;
        if constexpr (APAIR == 4) {  // {k0 + t, k0 + t + 4} at paired row k0 / 2 + t
          const float2 lo = *reinterpret_cast<const float2*>(&As[k0 / 2 + t][2 * r]);
          const float2 hi = *reinterpret_cast<const float2*>(&As[k0 / 2 + t][2 * (r + 8)]);
          a[i][0] = to_tf32(lo.x);
          a[i][1] = to_tf32(hi.x);
          a[i][2] = to_tf32(lo.y);
          a[i][3] = to_tf32(hi.y);
        } else {
          a[i][0] = to_tf32(As[k0 + t][r]);
          a[i][1] = to_tf32(As[k0 + t][r + 8]);
          a[i][2] = to_tf32(As[k0 + t + 4][r]);
          a[i][3] = to_tf32(As[k0 + t + 4][r + 8]);
        }
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int c = wn0 + 8 * j + g;
        b[j][0] = to_tf32(Bs[c][k0 + t]);
        b[j][1] = to_tf32(Bs[c][k0 + t + 4]);
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma_tf32_16x8x8(acc[i][j], a[i], b[j]);
    }
  } else {  // BF16
#pragma unroll
    for (int k0 = 0; k0 < BK; k0 += 16) {
      uint32_t a[MI][4], b[NI][2];
#pragma unroll
      for (int i = 0; i < MI; ++i) {
        const int r = wm0 + 16 * i + g;
        if constexpr (APAIR == 1) {  // {k, k + 1} at paired row k / 2: k0 / 2 + t, k0 / 2 + 4 + t
          const float2* lo = reinterpret_cast<const float2*>(&As[k0 / 2 + t][0]);
          const float2* hi = reinterpret_cast<const float2*>(&As[k0 / 2 + 4 + t][0]);
          const float2 v0 = lo[r], v1 = lo[r + 8], v2 = hi[r], v3 = hi[r + 8];
          a[i][0] = pack_bf16x2(v0.x, v0.y);
          a[i][1] = pack_bf16x2(v1.x, v1.y);
          a[i][2] = pack_bf16x2(v2.x, v2.y);
          a[i][3] = pack_bf16x2(v3.x, v3.y);
        } else {
          a[i][0] = pack_bf16x2(As[k0 + 2 * t][r], As[k0 + 2 * t + 1][r]);
          a[i][1] = pack_bf16x2(As[k0 + 2 * t][r + 8], As[k0 + 2 * t + 1][r + 8]);
          a[i][2] = pack_bf16x2(As[k0 + 2 * t + 8][r], As[k0 + 2 * t + 9][r]);
          a[i][3] = pack_bf16x2(As[k0 + 2 * t + 8][r + 8], As[k0 + 2 * t + 9][r + 8]);
        }
      }
#pragma unroll
      for (int j = 0; j < NI; ++j) {
        const int c = wn0 + 8 * j + g;
        const float2 lo = *reinterpret_cast<const float2*>(&Bs[c][k0 + 2 * t]);
        const float2 hi = *reinterpret_cast<const float2*>(&Bs[c][k0 + 2 * t + 8]);
        b[j][0] = pack_bf16x2(lo.x, lo.y);
        b[j][1] = pack_bf16x2(hi.x, hi.y);
      }
#pragma unroll
      for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j) mma_bf16_16x8x16(acc[i][j], a[i], b[j]);
    }
  }
}

// ---- epilogue ---------------------------------------------------------------------------------------
// A warp's accumulators (the mma.sync C layout: acc[i][j][e] at row r0 + 16 i + g + 8 (e >> 1),
// column c0 + 8 j + 2 t + (e & 1)) to the output -- plus bias[col], plus the old value when
// accumulating -- with one split, or as they are to the split's partial slice of the
// workspace (ws[row][col]). Rows >= M and columns >= N are skipped. Args: ConvKernelArgs or
// the channels-last kernel's NhwcConvArgs (out, bias, accumulate, splits, ws, ws_slice).
template <class View, int MI, int NI, class Args>
__device__ __forceinline__ void conv_store_tile(const Args& args, int slot, const float (&acc)[MI][NI][4], int r0,
                                                int c0, int lane, int M, int N) {
  const int gq = lane >> 2, tq = lane & 3;
  const bool direct = args.splits == 1;
  float* ws = direct ? nullptr : args.ws + int64_t(blockIdx.z) * args.ws_slice;
#pragma unroll
  for (int i = 0; i < MI; ++i)
#pragma unroll
    for (int j = 0; j < NI; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int row = r0 + 16 * i + gq + 8 * (e >> 1);
        const int col = c0 + 8 * j + 2 * tq + (e & 1);
        if (row >= M || col >= N) continue;
        float v = acc[i][j][e];
        if (direct) {
          const int64_t o = View::c_off(args.g, slot, row, col);
          if constexpr (View::kSkipCols) {
            if (o < 0) continue;  // a column that is not written (NhwcWgrad: a padded channel)
          }
          if (args.bias) v += args.bias[col];
          if (args.accumulate) v += args.out[o];
          args.out[o] = v;
        } else {
          ws[int64_t(row) * N + col] = v;
        }
      }
}

// ---- the kernel -------------------------------------------------------------------------------------
template <class View, ConvMath MATH, class Tile>
__global__ void __launch_bounds__(Tile::kThreads) conv_igemm_kernel(const __grid_constant__ ConvKernelArgs args) {
  constexpr int BM = Tile::BM, BN = Tile::BN, BK = Tile::BK;
  constexpr int MI = Tile::MI, NI = Tile::NI;
  using Smem = ConvSmem<MATH, Tile, View::kBTable>;
  constexpr int AST = Smem::AST, BST = Smem::BST, AROWS = Smem::AROWS;
  constexpr int STAGES = Tile::STAGES;
  // Dynamic shared memory of conv_igemm_smem_bytes<View, MATH, Tile>() bytes:
  // As[STAGES][AROWS][AST] (AROWS = BK, or BK / 2 paired), Bs[STAGES][BN][BST] and (wgrad) the
  // column table Bt[BN].
  DISCO_DYNAMIC_SMEM(smem);
  float(*const As)[AROWS][AST] = reinterpret_cast<float(*)[AROWS][AST]>(smem + Smem::kAOffset);
  float(*const Bs)[BN][BST] = reinterpret_cast<float(*)[BN][BST]>(smem + Smem::kBOffset);
  int4* const Bt = reinterpret_cast<int4*>(smem + Smem::kBtOffset);  // BN entries, views with kBTable only

  const convidx::ConvGemmParams& g = args.g;
  const int slot = int(blockIdx.z) / args.splits;
  const int split = int(blockIdx.z) - slot * args.splits;
  const int M = View::gemm_m(g, slot);
  const int N = g.gemm_n;
  const int Kred = View::gemm_k(g, slot);
  const int m0 = int(blockIdx.x) * BM, n0 = int(blockIdx.y) * BN;
  if (m0 >= M || n0 >= N) return;  // whole block: this slot's GEMM is smaller than the grid

  int kt_begin, kt_end;
  convidx::splitk_range((Kred + BK - 1) / BK, args.splits, split, kt_begin, kt_end);
  const int nkt = kt_end - kt_begin;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int wm0 = (warp / Tile::WARPS_N) * Tile::WM;
  const int wn0 = (warp % Tile::WARPS_N) * Tile::WN;

  using ALoader = std::conditional_t<Tile::kGrouped && !View::kAKFast, ATileLoaderGrouped<View, Tile, Smem>,
                                     ATileLoader<View, Tile, Smem>>;
  ALoader aload(g, slot, m0, tid, kt_begin * BK);
  // the wgrad column table
  if constexpr (View::kBTable) {
    for (int t = tid; t < BN; t += Tile::kThreads) {
      const typename View::BEntry e = View::b_entry(g, n0 + t);
      Bt[t] = make_int4(e.c, e.rd, e.sd, e.valid);
    }
    __syncthreads();
  }

  float acc[MI][NI][4] = {};

  cp_async_pipeline<STAGES>(
      nkt,
      [&](int buf, int slice) {
        const int kb = (kt_begin + slice) * BK;
        aload.load(g, slot, args.a_src, &As[buf][0][0], kb, m0);
        load_b_tile<View, Tile, BST>(g, slot, args.b_src, Bs[buf], kb, n0, tid, Bt, args.b_vec4);
      },
      [&](int buf) { warp_mma_slice<MATH, Tile, AST, BST, Smem::kAPair>(As[buf], Bs[buf], acc, wm0, wn0, lane); });

  conv_store_tile<View, MI, NI>(args, slot, acc, m0 + wm0, n0 + wn0, lane, M, N);
}

// Sum the split-K partials in split order and write the output (bias, accumulate).
template <class View>
__global__ void __launch_bounds__(kBlock) conv_splitk_reduce_kernel(const __grid_constant__ ConvKernelArgs args) {
  const int N = args.g.gemm_n;
  const int64_t total = int64_t(args.g.num_slots) * args.ws_slice;
  DISCO_GRID_STRIDE(idx, total) {
    const int slot = int(idx / args.ws_slice);
    const int64_t rem = idx - int64_t(slot) * args.ws_slice;
    const int row = int(rem / N), col = int(rem - int64_t(row) * N);
    if (row >= View::gemm_m(args.g, slot)) continue;
    const float* w = args.ws + int64_t(slot) * args.splits * args.ws_slice + rem;
    float v = 0.f;
    for (int s = 0; s < args.splits; ++s) v += w[int64_t(s) * args.ws_slice];
    const int64_t o = View::c_off(args.g, slot, row, col);
    if constexpr (View::kSkipCols) {
      if (o < 0) continue;
    }
    if (args.bias) v += args.bias[col];
    if (args.accumulate) v += args.out[o];
    args.out[o] = v;
  }
}

// ---- thin GEMMs: at most NT (4 or 32) columns ------------------------------------------------------
// A convolution whose GEMM has <= 4 columns -- dgrad into the 3 image channels, i.e. the
// decoder's last ConvTranspose2d forward -- would waste 28 of the narrow tile's 32 columns on
// tensor-core work for columns that do not exist (measured on an H200: 0.33 ms for 0.4 GFLOP,
// 4x cuDNN). The thin kernel gives each thread one GEMM row and all of its columns: the
// slot's whole B (Kred x NT floats, zero past N; at most kThinMaxB floats) is staged in
// shared memory once per block, A is read from global memory with the views' incremental
// cursor (consecutive threads take consecutive rows: coalesced for fprop and dgrad), and the
// products are FP32 FMAs in every math mode (exact). NT = 4 is the heuristic's plan for
// GEMMs of <= 4 columns; NT = 32 ("thin32", 32 accumulators per thread) is a tuning candidate
// for 5-32 columns with a short reduction (the 32-channel dgrads, where the loader-bound tiles
// ran at 2.4x cuDNN's time on an H200). Views whose A walks along k (wgrad) are not thin
// candidates. No split-K: grid z = slots.
constexpr int kThinN = 4;
constexpr int kThinWideN = 32;
constexpr int kThinThreads = 256;
constexpr int kThinMaxB = 12288;  // floats of B in shared memory: 48 KB, no opt-in needed
constexpr int kThinUnroll = 8;    // reduction steps whose A loads are issued together
static_assert(sizeof(float) * kThinMaxB <= kSmemDefaultLimit, "the thin kernel needs no opt-in");
// Dynamic shared memory of one conv_thin_kernel<View, NT> block.
inline size_t conv_thin_smem_bytes(const convidx::ConvGemmParams& g, int nt) {
  return sizeof(float) * size_t(g.max_kred) * size_t(nt);
}

template <class View, int NT>
__global__ void __launch_bounds__(kThinThreads) conv_thin_kernel(const __grid_constant__ ConvKernelArgs args) {
  static_assert(!View::kAKFast, "thin kernel: A must be walkable along m (fprop / dgrad views)");
  static_assert(NT % 4 == 0, "B rows are read as float4");
  constexpr int NQ = NT / 4;
  DISCO_DYNAMIC_SMEM(smem);
  float* const Bs = reinterpret_cast<float*>(smem);  // Bs[kr * NT + n]
  const convidx::ConvGemmParams& g = args.g;
  const int slot = int(blockIdx.z);
  const int M = View::gemm_m(g, slot), N = g.gemm_n, Kred = View::gemm_k(g, slot);
  const int m0 = int(blockIdx.x) * kThinThreads;
  if (m0 >= M) return;  // whole block: this slot's GEMM is shorter than the grid
  for (int i = int(threadIdx.x); i < Kred * NT; i += kThinThreads) {
    const int kr = i / NT, n = i - kr * NT;
    const int64_t off = View::b_elem(g, slot, View::b_col(g, slot, kr), n);
    Bs[i] = off >= 0 ? args.b_src[off] : 0.f;
  }
  __syncthreads();
  const int m = m0 + int(threadIdx.x);
  if (m >= M) return;
  const typename View::ARow row = View::a_row(g, slot, m);
  typename View::ACursor cur = View::a_cursor(g, slot, 0);
  float acc[NT];
#pragma unroll
  for (int n = 0; n < NT; ++n) acc[n] = 0.f;
  // kThinUnroll independent loads in flight per thread (the first version issued one load per
  // iteration behind the cursor update and was latency-bound: 0.18 ms for 0.4 GFLOP on an
  // H200); the products stay in kr order, so the result is bitwise that of the plain loop.
  const float4* const B4 = reinterpret_cast<const float4*>(Bs);
  const auto fma_row = [&](float a, int kr) {
#pragma unroll
    for (int q = 0; q < NQ; ++q) {
      const float4 b = B4[kr * NQ + q];
      acc[4 * q + 0] = fmaf(a, b.x, acc[4 * q + 0]);
      acc[4 * q + 1] = fmaf(a, b.y, acc[4 * q + 1]);
      acc[4 * q + 2] = fmaf(a, b.z, acc[4 * q + 2]);
      acc[4 * q + 3] = fmaf(a, b.w, acc[4 * q + 3]);
    }
  };
  int kr = 0;
  for (; kr + kThinUnroll <= Kred; kr += kThinUnroll) {
    int64_t off[kThinUnroll];
#pragma unroll
    for (int u = 0; u < kThinUnroll; ++u) {
      off[u] = View::a_elem_at(g, slot, row, cur);
      View::a_advance(g, slot, cur, 1);
    }
    float a[kThinUnroll];
#pragma unroll
    for (int u = 0; u < kThinUnroll; ++u) a[u] = off[u] >= 0 ? args.a_src[off[u]] : 0.f;
#pragma unroll
    for (int u = 0; u < kThinUnroll; ++u) fma_row(a[u], kr + u);
  }
  for (; kr < Kred; ++kr) {
    const int64_t off = View::a_elem_at(g, slot, row, cur);
    fma_row(off >= 0 ? args.a_src[off] : 0.f, kr);
    View::a_advance(g, slot, cur, 1);
  }
#pragma unroll
  for (int n = 0; n < NT; ++n) {
    if (n >= N) break;
    const int64_t o = View::c_off(g, slot, m, n);
    float v = acc[n];
    if (args.bias) v += args.bias[n];
    if (args.accumulate) v += args.out[o];
    args.out[o] = v;
  }
}

// ---- weight gradients with a small output -----------------------------------------------------
// The first encoder layers and the last decoder layer (3 image channels, 32 filters, 4x4) have
// a weight gradient of 32 x 48 values reduced over N*P*Q = 131072 at 128 px batch 32. The GEMM
// tiles waste most of their rows and columns there and need 64 split-K partials (0.16 ms on an
// H200, 2.6x cuDNN). This kernel gives one block a whole M x N output (<= 64 x 64, at most
// 2048 values: <= 8 per thread) and a range of the reduction: per 32-deep slice the block stages
// dy (As[k][m]) and the gathered x (Bs[k][n], column addresses from the per-block table Bt)
// in shared memory -- a thread keeps one reduction index per slice, so the row / column
// decoding happens once per slice -- and each thread adds its outputs' products in FP32 FMAs
// (every math mode). Grid z = splits of the reduction; with several, each block writes its
// partial M x N to the workspace and conv_splitk_reduce_kernel sums them in split order.
constexpr int kSmallOutThreads = 256;
constexpr int kSmallOutBK = 32;
constexpr int kSmallOutMaxDim = 64;    // M and N
constexpr int kSmallOutMaxOut = 2048;  // M * N
constexpr int kSmallOutPerThread = kSmallOutMaxOut / kSmallOutThreads;
constexpr int kSmallOutStride = kSmallOutMaxDim + 1;
// Dynamic shared memory of one conv_wgrad_smallout_kernel block: Bt, As, Bs.
constexpr size_t kSmallOutSmemBytes =
    sizeof(int4) * kSmallOutMaxDim + 2 * sizeof(float) * kSmallOutBK * kSmallOutStride;
static_assert(kSmallOutSmemBytes <= kSmemDefaultLimit, "no opt-in for the small-output wgrad kernel");
static_assert(kSmallOutThreads % kSmallOutBK == 0, "one reduction index per thread and slice");

template <class View>
__global__ void __launch_bounds__(kSmallOutThreads)
    conv_wgrad_smallout_kernel(const __grid_constant__ ConvKernelArgs args) {
  static_assert(View::kAKFast && View::kBTable, "small-output kernel: the wgrad view");
  DISCO_DYNAMIC_SMEM(smem);
  int4* const Bt = reinterpret_cast<int4*>(smem);
  float(*const As)[kSmallOutStride] = reinterpret_cast<float(*)[kSmallOutStride]>(smem + sizeof(int4) * kSmallOutMaxDim);
  float(*const Bs)[kSmallOutStride] = As + kSmallOutBK;
  const convidx::ConvGemmParams& g = args.g;
  const int M = View::gemm_m(g, 0), N = g.gemm_n, Kred = View::gemm_k(g, 0), MN = M * N;
  const int split = int(blockIdx.z);
  int kt_begin, kt_end;
  convidx::splitk_range((Kred + kSmallOutBK - 1) / kSmallOutBK, args.splits, split, kt_begin, kt_end);
  const int tid = int(threadIdx.x);
  for (int t = tid; t < N; t += kSmallOutThreads) {
    const typename View::BEntry e = View::b_entry(g, t);
    Bt[t] = make_int4(e.c, e.rd, e.sd, e.valid);
  }
  constexpr int RSTEP = kSmallOutThreads / kSmallOutBK;
  const int kk = tid % kSmallOutBK, r0 = tid / kSmallOutBK;
  // this thread's outputs o = tid + 256 j: row o / N, column o % N (decoded once)
  int om[kSmallOutPerThread], on[kSmallOutPerThread];
  float acc[kSmallOutPerThread];
#pragma unroll
  for (int j = 0; j < kSmallOutPerThread; ++j) {
    const int o = tid + kSmallOutThreads * j;
    om[j] = o < MN ? o / N : 0;
    on[j] = o < MN ? o - om[j] * N : 0;
    acc[j] = 0.f;
  }
  __syncthreads();
  for (int kt = kt_begin; kt < kt_end; ++kt) {
    const int kr = kt * kSmallOutBK + kk;  // past Kred: the views return -1, the slice row is 0
    const typename View::ACol acol = View::a_col(g, 0, kr);
    const typename View::BCol bcol = View::b_col(g, 0, kr);
    for (int m = r0; m < M; m += RSTEP) {
      const int64_t off = View::a_elem(g, 0, acol, m);
      As[kk][m] = off >= 0 ? args.a_src[off] : 0.f;
    }
    for (int n = r0; n < N; n += RSTEP) {
      const int4 e = Bt[n];
      const int64_t off = View::b_elem_at(g, bcol, typename View::BEntry{e.x, e.y, e.z, e.w});
      Bs[kk][n] = off >= 0 ? args.b_src[off] : 0.f;
    }
    __syncthreads();
#pragma unroll
    for (int j = 0; j < kSmallOutPerThread; ++j) {
      if (tid + kSmallOutThreads * j >= MN) break;
#pragma unroll 8
      for (int k2 = 0; k2 < kSmallOutBK; ++k2) acc[j] = fmaf(As[k2][om[j]], Bs[k2][on[j]], acc[j]);
    }
    __syncthreads();
  }
  // every block writes all of its outputs (an empty reduction range writes zeros)
  const bool direct = args.splits == 1;
#pragma unroll
  for (int j = 0; j < kSmallOutPerThread; ++j) {
    if (tid + kSmallOutThreads * j >= MN) break;
    const float v = acc[j];
    if (direct) {
      const int64_t o = View::c_off(g, 0, om[j], on[j]);
      args.out[o] = args.accumulate ? args.out[o] + v : v;
    } else {
      args.ws[int64_t(split) * args.ws_slice + int64_t(om[j]) * N + on[j]] = v;
    }
  }
}

}  // namespace kern
}  // namespace cuda
}  // namespace disco
