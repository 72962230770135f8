// disco::cuda convolutions: instantiations of the implicit-GEMM kernel
// (kernels/conv2d_igemm.cuh) and the public conv2d_fprop / dgrad / wgrad entry points,
// which dispatch to these kernels (ConvAlgo::Custom), to cuDNN (cudnn_conv.cpp), or to the
// faster of the two per problem (ConvAlgo::Auto).
// 3 directions x 3 math modes x 3 tile shapes = 27 kernels, + 3 directions x {TF32, BF16} of the
// large tile with the paired A layout (a tuning candidate only) = 33, + the thin kernel for GEMMs of
// <= 4 columns and its 32-column form (fprop, dgrad; FP32 FMA in every mode) = 37, + the
// small-output wgrad kernel = 38, + 3 directions x 3 math modes x the 3 tiles with the grouped
// loaders (tuning candidates) = 65, + the channels-last kernels in 2 tiles (kernels/conv2d_nhwc.cuh,
// tuning candidates): BF16 and TF32 fprop / dgrad / wgrad = 77, + their 6 pack kernels,
// + 5 split-K reductions (three views, the two channels-last wgrad column layouts), and
// the launch plans (tile shape, split-K): a heuristic, or per-layer tuning (conv_autotune).
#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <type_traits>
#include <vector>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/problem/conv2d_index.hpp"
#include "internal.hpp"
#include "kernels/conv2d_igemm.cuh"
#include "kernels/conv2d_nhwc.cuh"
#include "kernels/conv2d_wgmma.cuh"

namespace disco {
namespace cuda {
namespace detail {
// cudnn_conv.cpp
void cudnn_conv_f32(ConvDir dir, const Conv2dProblem& p, const float* a, const float* b, float* out, bool accumulate,
                    MathMode mode);
}  // namespace detail

namespace {

using convidx::ConvKind;
using kern::ConvMath;

ConvMath to_math(MathMode m) {
  switch (m) {
    case MathMode::FP32: return ConvMath::FP32;
    case MathMode::TF32: return ConvMath::TF32;
    case MathMode::BF16: return ConvMath::BF16;
  }
  return ConvMath::FP32;
}

int current_device_id() {
  int d = 0;
  DISCO_CUDA_CHECK(cudaGetDevice(&d));
  return d;
}

// The kernel's shared memory is dynamic (kernels/conv2d_igemm.cuh, ConvSmem). Over 48 KB (the
// large tile) the kernel must opt in first: cudaFuncSetAttribute(MaxDynamicSharedMemorySize),
// once per instantiation and device (the attribute belongs to the device's context), recorded
// in a per-instantiation bit mask. Concurrent first launches may both set it: harmless.
// Raises `kernel`'s dynamic shared-memory limit to `smem` bytes on the current device, once per
// device: bit d of `opted_in` (the caller's, one per kernel instantiation) records device d
// (devices >= 64: every launch).
template <class Kernel>
void opt_in_smem(Kernel kernel, size_t smem, std::atomic<uint64_t>& opted_in) {
  const int dev = current_device_id();
  const uint64_t bit = dev >= 0 && dev < 64 ? uint64_t(1) << dev : 0;
  if (!bit || !(opted_in.load(std::memory_order_acquire) & bit)) {
    DISCO_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    opted_in.fetch_or(bit, std::memory_order_release);
  }
}

template <class View, ConvMath MATH, class Tile>
void launch_tile(const kern::ConvKernelArgs& args, dim3 grid) {
  constexpr size_t smem = kern::conv_igemm_smem_bytes<View, MATH, Tile>();
  if constexpr (smem > kern::kSmemDefaultLimit) {
    static std::atomic<uint64_t> opted_in{0};
    opt_in_smem(kern::conv_igemm_kernel<View, MATH, Tile>, smem, opted_in);
  }
  kern::conv_igemm_kernel<View, MATH, Tile><<<grid, Tile::kThreads, smem, detail::stream()>>>(args);
  DISCO_CUDA_CHECK_LAUNCH();
}

template <class View, class Tile>
void launch_math(ConvMath math, const kern::ConvKernelArgs& args, dim3 grid) {
  switch (math) {
    case ConvMath::FP32: launch_tile<View, ConvMath::FP32, Tile>(args, grid); break;
    case ConvMath::TF32: launch_tile<View, ConvMath::TF32, Tile>(args, grid); break;
    case ConvMath::BF16: launch_tile<View, ConvMath::BF16, Tile>(args, grid); break;
  }
}

// ---- launch plans --------------------------------------------------------------------------------
// A plan = tile shape + split-K factor. plan_heuristic() picks one from the GEMM's shape;
// per-layer tuning (conv_autotune) times the candidates of plan_candidates() once per
// problem and keeps the fastest.
// LargePaired: the large tile with the paired A layout (ConvTileLargePaired, conv2d_igemm.cuh):
// TF32 / BF16 only (FP32 has no paired layout, and no kernel is instantiated for it), offered by
// tuning only -- the heuristic never picks it.
// LargeGrouped / SmallGrouped / NarrowGrouped: the three tiles with the grouped loaders
// (conv2d_igemm.cuh: fprop / dgrad's A in groups of four rows, wgrad's B in groups of four
// reduction indices), for problems whose view has groups (groups_ok), every math mode; tuning
// only.
// NhwcLarge / NhwcSmall / NhwcWide / NhwcQuad: the channels-last kernels (conv2d_nhwc.cuh;
// their operands packed channels-last per launch, which the plan's time includes): BF16 and
// TF32 (FP32 packs), every direction; tuning only.
enum class TileKind : int {
  Large = 0,
  Small = 1,
  Narrow = 2,
  LargePaired = 3,
  Thin = 4,
  SmallOut = 5,
  Thin32 = 6,
  LargeGrouped = 7,
  SmallGrouped = 8,
  NarrowGrouped = 9,
  NhwcLarge = 10,
  NhwcSmall = 11,
  NhwcWide = 12,
  NhwcQuad = 13,
  Wgmma = 14,
  Wgmma64 = 15
};
bool is_nhwc(TileKind t) {
  return t == TileKind::NhwcLarge || t == TileKind::NhwcSmall || t == TileKind::NhwcWide || t == TileKind::NhwcQuad ||
         t == TileKind::Wgmma || t == TileKind::Wgmma64;
}
// Calls f(Tile{}) with the channels-last tile type of t.
template <class F>
void with_nhwc_tile(TileKind t, F&& f) {
  switch (t) {
    case TileKind::NhwcLarge: f(kern::NhwcTileLarge{}); return;
    case TileKind::NhwcSmall: f(kern::NhwcTileSmall{}); return;
    case TileKind::NhwcWide: f(kern::NhwcTileWide{}); return;
    case TileKind::NhwcQuad: f(kern::NhwcTileQuad{}); return;
    default: DISCO_CHECK(false, "conv (custom): not a channels-last tile: ", int(t));
  }
}
// The grouped form of a plain tile (itself for the others).
TileKind grouped(TileKind t) {
  switch (t) {
    case TileKind::Large: return TileKind::LargeGrouped;
    case TileKind::Small: return TileKind::SmallGrouped;
    case TileKind::Narrow: return TileKind::NarrowGrouped;
    default: return t;
  }
}

struct TileDims {
  int bm, bn, bk;
};
TileDims tile_dims(TileKind t) {
  switch (t) {
    case TileKind::Large: return {kern::ConvTileLarge::BM, kern::ConvTileLarge::BN, kern::ConvTileLarge::BK};
    case TileKind::LargeGrouped:
      return {kern::ConvTileLargeGrouped::BM, kern::ConvTileLargeGrouped::BN, kern::ConvTileLargeGrouped::BK};
    case TileKind::SmallGrouped:
      return {kern::ConvTileSmallGrouped::BM, kern::ConvTileSmallGrouped::BN, kern::ConvTileSmallGrouped::BK};
    case TileKind::NarrowGrouped:
      return {kern::ConvTileNarrowGrouped::BM, kern::ConvTileNarrowGrouped::BN, kern::ConvTileNarrowGrouped::BK};
    case TileKind::LargePaired:
      return {kern::ConvTileLargePaired::BM, kern::ConvTileLargePaired::BN, kern::ConvTileLargePaired::BK};
    case TileKind::Small: return {kern::ConvTileSmall::BM, kern::ConvTileSmall::BN, kern::ConvTileSmall::BK};
    case TileKind::Narrow: return {kern::ConvTileNarrow::BM, kern::ConvTileNarrow::BN, kern::ConvTileNarrow::BK};
    case TileKind::Thin: return {kern::kThinThreads, kern::kThinN, 1};
    case TileKind::Thin32: return {kern::kThinThreads, kern::kThinWideN, 1};
    case TileKind::SmallOut: return {kern::kSmallOutMaxDim, kern::kSmallOutMaxDim, kern::kSmallOutBK};
    case TileKind::NhwcLarge: return {kern::NhwcTileLarge::BM, kern::NhwcTileLarge::BN, kern::NhwcTileLarge::BK};
    case TileKind::NhwcSmall: return {kern::NhwcTileSmall::BM, kern::NhwcTileSmall::BN, kern::NhwcTileSmall::BK};
    case TileKind::NhwcWide: return {kern::NhwcTileWide::BM, kern::NhwcTileWide::BN, kern::NhwcTileWide::BK};
    case TileKind::NhwcQuad: return {kern::NhwcTileQuad::BM, kern::NhwcTileQuad::BN, kern::NhwcTileQuad::BK};
    case TileKind::Wgmma: return {kern::WgmmaTile<128>::BM, kern::WgmmaTile<128>::BN, kern::WgmmaTile<128>::BK};
    case TileKind::Wgmma64: return {kern::WgmmaTile<64>::BM, kern::WgmmaTile<64>::BN, kern::WgmmaTile<64>::BK};
  }
  return {64, 64, 16};
}
const char* tile_name(TileKind t) {
  switch (t) {
    case TileKind::Large: return "128x128";
    case TileKind::Small: return "64x64";
    case TileKind::Narrow: return "128x32";
    case TileKind::LargePaired: return "128x128p";
    case TileKind::LargeGrouped: return "128x128g";
    case TileKind::SmallGrouped: return "64x64g";
    case TileKind::NarrowGrouped: return "128x32g";
    case TileKind::Thin: return "thin";
    case TileKind::Thin32: return "thin32";
    case TileKind::SmallOut: return "smallout";
    case TileKind::NhwcLarge: return "128x128nhwc";
    case TileKind::NhwcSmall: return "64x64nhwc";
    case TileKind::NhwcWide: return "256x128nhwc";
    case TileKind::NhwcQuad: return "128x128nhwc4w";
    case TileKind::Wgmma: return "128x128wgmma";
    case TileKind::Wgmma64: return "128x64wgmma";
  }
  return "?";
}

// The kernel family of a tile kind (conv_plans_in_use).
const char* tile_family(TileKind t) {
  switch (t) {
    case TileKind::Large:
    case TileKind::Small:
    case TileKind::Narrow: return "tile";
    case TileKind::LargePaired: return "paired";
    case TileKind::LargeGrouped:
    case TileKind::SmallGrouped:
    case TileKind::NarrowGrouped: return "grouped";
    case TileKind::Thin:
    case TileKind::Thin32: return "thin";
    case TileKind::SmallOut: return "smallout";
    case TileKind::NhwcLarge:
    case TileKind::NhwcSmall:
    case TileKind::NhwcWide:
    case TileKind::NhwcQuad: return "nhwc";
    case TileKind::Wgmma:
    case TileKind::Wgmma64: return "wgmma";
  }
  return "?";
}

struct LaunchPlan {
  TileKind tile = TileKind::Small;
  int splits = 1;
};
bool operator==(const LaunchPlan& a, const LaunchPlan& b) { return a.tile == b.tile && a.splits == b.splits; }
// As conv_plan names it: "128x128", "64x64 split 6".
std::string plan_string(const LaunchPlan& pl) {
  return std::string(tile_name(pl.tile)) + (pl.splits > 1 ? " split " + std::to_string(pl.splits) : "");
}

// The GEMM's columns as the tile kind runs it: the channels-last wgrad has R S Cp (its channels
// padded to a multiple of 8 for BF16, 4 for TF32), the others gemm_n. The planner's estimates
// (output tiles, split caps) use the BF16 count, the larger one.
int gemm_n_of(const convidx::ConvGemmParams& g, TileKind t, ConvMath math = ConvMath::BF16) {
  if (!is_nhwc(t) || g.kind != int(ConvKind::Wgrad)) return g.gemm_n;
  return math == ConvMath::TF32 ? convidx::NhwcWgrad32::gemm_n(g.p) : convidx::NhwcWgrad::gemm_n(g.p);
}

int64_t output_tiles(const convidx::ConvGemmParams& g, TileKind t) {
  if (t == TileKind::SmallOut) return g.num_slots;  // one block holds the whole output
  const TileDims d = tile_dims(t);
  return int64_t((g.max_m + d.bm - 1) / d.bm) * ((gemm_n_of(g, t) + d.bn - 1) / d.bn) * g.num_slots;
}
// (The channels-last kernel reduces over its channels padded to a multiple of 8.)
int64_t k_tiles(const convidx::ConvGemmParams& g, TileKind t) {
  const int64_t kred = !is_nhwc(t) ? g.max_kred
                       : g.kind == int(ConvKind::Fprop) ? convidx::NhwcFprop::max_gemm_k(g)
                       : g.kind == int(ConvKind::Dgrad) ? convidx::NhwcDgrad::max_gemm_k(g)
                                                         : convidx::NhwcWgrad::max_gemm_k(g);
  return (kred + tile_dims(t).bk - 1) / tile_dims(t).bk;
}

// The largest split-K factor allowed: each split keeps >= 2 k-tiles, <= 64 splits (1024 for the
// small-output wgrad kernel, whose splits are its only parallelism), <= 256 MiB of partials,
// grid z within 65535.
int64_t max_splits(const convidx::ConvGemmParams& g, TileKind t) {
  int64_t s = std::min<int64_t>(k_tiles(g, t) / 2, t == TileKind::SmallOut ? 1024 : 64);
  const int64_t slice = int64_t(g.max_m) * gemm_n_of(g, t) * g.num_slots;
  s = std::min<int64_t>(s, (int64_t(256) << 20) / (4 * std::max<int64_t>(slice, 1)));
  s = std::min<int64_t>(s, 65535 / std::max(g.num_slots, 1));
  return std::max<int64_t>(s, 1);
}

// Splits that bring the block count to about twice the SM count (1 when the tiles already do
// or the reduction is short).
int heuristic_splits(const convidx::ConvGemmParams& g, TileKind t, int sms) {
  const int64_t tiles = output_tiles(g, t), ktiles = k_tiles(g, t);
  if (tiles >= 2 * sms || ktiles < 8) return 1;
  int64_t s = (2 * sms + tiles - 1) / tiles;
  s = std::min<int64_t>(s, ktiles / 4);
  return int(std::max<int64_t>(std::min(s, max_splits(g, t)), 1));
}

// The large tiles' dynamic shared memory (up to 111.5 KB, paired A layout included) fits the
// per-block opt-in limit of sm_80 (163 KB) and sm_90 (227 KB), not that of sm_86 / sm_89
// (99 KB): there they are never planned.
bool large_tile_fits_device() {
  static const bool fits = [] {
    using kern::ConvTileLarge;
    constexpr size_t need = std::max({kern::conv_igemm_smem_bytes<convidx::FpropView, ConvMath::BF16, ConvTileLarge>(),
                                      kern::conv_igemm_smem_bytes<convidx::DgradView, ConvMath::BF16, ConvTileLarge>(),
                                      kern::conv_igemm_smem_bytes<convidx::WgradView, ConvMath::BF16, ConvTileLarge>(),
                                      kern::conv_igemm_smem_bytes<convidx::WgradView, ConvMath::FP32, ConvTileLarge>()});
    using kern::ConvTileLargePaired;
    static_assert(kern::conv_igemm_smem_bytes<convidx::WgradView, ConvMath::BF16, ConvTileLargePaired>() <= need &&
                      kern::conv_igemm_smem_bytes<convidx::WgradView, ConvMath::TF32, ConvTileLargePaired>() <= need,
                  "the paired large tile needs no more shared memory than the plain one");
    static_assert(kern::conv_igemm_smem_bytes<convidx::DgradView, ConvMath::BF16, kern::ConvTileLargeGrouped>() <= need &&
                      kern::conv_igemm_smem_bytes<convidx::FpropView, ConvMath::FP32, kern::ConvTileLargeGrouped>() <= need &&
                      kern::conv_igemm_smem_bytes<convidx::WgradView, ConvMath::FP32, kern::ConvTileLargeGrouped>() <= need,
                  "the grouped large tile needs no more shared memory than the plain one");
    static_assert(kern::conv_nhwc_smem_bytes<kern::NhwcTileLarge>() <= need &&
                      kern::conv_nhwc_smem_bytes<kern::NhwcTileWide>() <= need &&
                      kern::conv_nhwc_smem_bytes<kern::NhwcTileQuad>() <= need,
                  "the channels-last large tiles need no more shared memory than the plain one");
    int dev = 0, optin = 0;
    DISCO_CUDA_CHECK(cudaGetDevice(&dev));
    DISCO_CUDA_CHECK(cudaDeviceGetAttribute(&optin, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev));
    return size_t(optin) >= need;
  }();
  return fits;
}

// Can the thin kernel (kernels/conv2d_igemm.cuh) with nt columns run this launch? fprop /
// dgrad GEMMs of at most nt columns whose B (Kred x nt) fits its shared memory.
bool thin_fits(const convidx::ConvGemmParams& g, int nt = kern::kThinN) {
  return g.kind != int(ConvKind::Wgrad) && g.gemm_n <= nt && int64_t(g.max_kred) * nt <= kern::kThinMaxB;
}

// Can the small-output wgrad kernel run this launch? wgrad with M, N <= 64 and M * N <= 2048.
bool smallout_fits(const convidx::ConvGemmParams& g) {
  return g.kind == int(ConvKind::Wgrad) && g.num_slots == 1 && g.max_m <= kern::kSmallOutMaxDim &&
         g.gemm_n <= kern::kSmallOutMaxDim && int64_t(g.max_m) * g.gemm_n <= kern::kSmallOutMaxOut;
}
// Its splits: about four blocks per SM, each split keeping >= 4 k-tiles.
int smallout_splits(const convidx::ConvGemmParams& g, int sms) {
  const int64_t s = std::min<int64_t>(4 * int64_t(sms), k_tiles(g, TileKind::SmallOut) / 4);
  return int(std::max<int64_t>(std::min(s, max_splits(g, TileKind::SmallOut)), 1));
}

// The thin kernel for GEMMs of <= 4 columns (see thin_fits), the small-output kernel for
// wgrads of <= 2048 values (smallout_fits); large tiles when they alone give
// every SM a block; the narrow tile when the GEMM has at most 32 columns (no MMA work on
// columns that do not exist); else the small tile.
LaunchPlan plan_heuristic(const convidx::ConvGemmParams& g) {
  const int sms = device_sm_count();
  LaunchPlan pl;
  if (thin_fits(g)) {
    pl.tile = TileKind::Thin;  // never split
    return pl;
  }
  if (smallout_fits(g)) {
    pl.tile = TileKind::SmallOut;
    pl.splits = smallout_splits(g, sms);
    return pl;
  }
  if (large_tile_fits_device() && output_tiles(g, TileKind::Large) >= sms && g.gemm_n > 32)
    pl.tile = TileKind::Large;
  else if (g.gemm_n <= 32)
    pl.tile = TileKind::Narrow;
  else
    pl.tile = TileKind::Small;
  pl.splits = heuristic_splits(g, pl.tile, sms);
  return pl;
}

// Can the launch use the grouped loaders (its view's groups_ok)?
bool groups_ok(const convidx::ConvGemmParams& g) {
  switch (ConvKind(g.kind)) {
    case ConvKind::Fprop: return convidx::FpropView::groups_ok(g);
    case ConvKind::Dgrad: return convidx::DgradView::groups_ok(g);
    case ConvKind::Wgrad: return convidx::WgradView::groups_ok(g);
  }
  return false;
}

// Can the channels-last kernels run this launch? BF16 or TF32 (every direction), packed
// operands whose pixels fit 32-bit indices and a pack grid that fits (the GEMM's own
// coordinates are checked for every problem; the wgrad's padded columns R S Cp too).
bool nhwc_fits(const convidx::ConvGemmParams& g, ConvMath math) {
  const Conv2dProblem& p = g.p;
  const int64_t lim = int64_t(1) << 31;
  if (math == ConvMath::FP32 || p.N > 65535) return false;
  if (g.kind == int(ConvKind::Fprop)) return int64_t(p.N) * p.H * p.W < lim;
  if (g.kind == int(ConvKind::Dgrad)) return int64_t(p.N) * p.P * p.Q < lim;
  return int64_t(p.N) * p.H * p.W < lim && int64_t(p.N) * p.P * p.Q < lim &&
         int64_t(p.R) * p.S * convidx::nhwc_padded_channels(p.C) < lim;
}

// What tuning tries: every tile at no split, its heuristic split, and half / twice that; where
// the view has groups (groups_ok), the grouped form of each of these tile plans; for
// TF32 / BF16 then the paired large tile at the large tile's splits (appended after every plan
// FP32 has, so candidate i names the same plan in every math mode for i below the FP32 count);
// for BF16 and TF32 last the channels-last kernels: 128x128nhwc and 64x64nhwc at no split,
// their heuristic split and half / twice that (the large one where it fits the device and
// M, N > 32; neither for GEMMs of <= 4 columns, the thin kernel's), then 256x128nhwc (M > 128,
// N > 64) and 128x128nhwc4w (as the large one) at no split and their heuristic split, and for
// fprop / dgrad (BF16, TF32) and wgrad (BF16) with M > 32 where wgmma runs 128x128wgmma (N > 32)
// and 128x64wgmma (N <= 64) likewise. Their k-tiles
// are counted in BF16 slices of 32 channels (a TF32 slice holds 16: only the split heuristic
// sees the difference).
std::vector<LaunchPlan> plan_candidates(const convidx::ConvGemmParams& g, ConvMath math) {
  const int sms = device_sm_count();
  std::vector<LaunchPlan> c = {plan_heuristic(g)};
  auto add = [&](TileKind t, int64_t s) {
    s = std::max<int64_t>(1, std::min(s, max_splits(g, t)));
    const LaunchPlan pl{t, int(s)};
    if (std::find(c.begin(), c.end(), pl) == c.end()) c.push_back(pl);
  };
  if (thin_fits(g)) add(TileKind::Thin, 1);
  if (g.gemm_n > kern::kThinN && thin_fits(g, kern::kThinWideN)) add(TileKind::Thin32, 1);  // tuning only
  if (smallout_fits(g)) {
    const int h = smallout_splits(g, sms);
    add(TileKind::SmallOut, h);
    add(TileKind::SmallOut, h / 2);
    add(TileKind::SmallOut, 2 * int64_t(h));
  }
  for (TileKind t : {TileKind::Large, TileKind::Small, TileKind::Narrow}) {
    if (t == TileKind::Narrow && g.gemm_n > 64) continue;  // too many column tiles to pay
    if (t == TileKind::Large && !large_tile_fits_device()) continue;
    const int h = heuristic_splits(g, t, sms);
    add(t, 1);
    add(t, h);
    if (h > 1) add(t, h / 2), add(t, 2 * int64_t(h));
  }
  if (groups_ok(g)) {
    const size_t n = c.size();
    for (size_t i = 0; i < n; ++i)
      if (grouped(c[i].tile) != c[i].tile) add(grouped(c[i].tile), c[i].splits);
  }
  if (math != ConvMath::FP32) {
    const size_t n = c.size();
    for (size_t i = 0; i < n; ++i)
      if (c[i].tile == TileKind::Large) add(TileKind::LargePaired, c[i].splits);
  }
  if (nhwc_fits(g, math) && g.gemm_n > kern::kThinN) {
    for (TileKind t : {TileKind::NhwcLarge, TileKind::NhwcSmall}) {
      if (t == TileKind::NhwcLarge && (!large_tile_fits_device() || g.gemm_n <= 32 || g.max_m <= 32)) continue;
      const int h = heuristic_splits(g, t, sms);
      add(t, 1);
      add(t, h);
      if (h > 1) add(t, h / 2), add(t, 2 * int64_t(h));
    }
    // the 64 x 64-warp tiles at no split and their heuristic split: 256x128 where the GEMM has
    // more than 128 rows and 64 columns, the 4-warp 128x128 where the 8-warp one is a candidate
    if (large_tile_fits_device() && g.gemm_n > 32 && g.max_m > 32)
      for (TileKind t : {TileKind::NhwcWide, TileKind::NhwcQuad}) {
        if (t == TileKind::NhwcWide && (g.gemm_n <= 64 || g.max_m <= 128)) continue;
        add(t, 1);
        add(t, heuristic_splits(g, t, sms));
      }
    // Hopper's warpgroup MMA (BF16 / TF32 fprop and dgrad, BF16 wgrad -- its operands are
    // MN-major, which TF32 cannot be; an sm_90a build on compute capability 9.0): 128 columns a
    // block for GEMMs of more than 32 columns, 64 for those of at most 64
    if ((g.kind != int(ConvKind::Wgrad) || math == ConvMath::BF16) && g.max_m > 32 && detail::wgmma_supported())
      for (TileKind t : {TileKind::Wgmma, TileKind::Wgmma64}) {
        if (t == TileKind::Wgmma ? g.gemm_n <= 32 : g.gemm_n > 64) continue;
        add(t, 1);
        add(t, heuristic_splits(g, t, sms));
      }
  }
  return c;
}

template <class View, ConvMath MATH>
void launch_tile_kind(TileKind t, const kern::ConvKernelArgs& args, dim3 grid) {
  switch (t) {
    case TileKind::Large: launch_tile<View, MATH, kern::ConvTileLarge>(args, grid); break;
    case TileKind::Small: launch_tile<View, MATH, kern::ConvTileSmall>(args, grid); break;
    case TileKind::Narrow: launch_tile<View, MATH, kern::ConvTileNarrow>(args, grid); break;
    case TileKind::LargePaired:
      if constexpr (MATH == ConvMath::FP32) {
        DISCO_CHECK(false, "conv (custom): the paired 128x128 tile has no FP32 kernel");
      } else {
        launch_tile<View, MATH, kern::ConvTileLargePaired>(args, grid);
      }
      break;
    case TileKind::LargeGrouped:
    case TileKind::SmallGrouped:
    case TileKind::NarrowGrouped:
      DISCO_CHECK(View::groups_ok(args.g), "conv (custom): ", tile_name(t), " needs output rows in groups of 4");
      if (t == TileKind::LargeGrouped)
        launch_tile<View, MATH, kern::ConvTileLargeGrouped>(args, grid);
      else if (t == TileKind::SmallGrouped)
        launch_tile<View, MATH, kern::ConvTileSmallGrouped>(args, grid);
      else
        launch_tile<View, MATH, kern::ConvTileNarrowGrouped>(args, grid);
      break;
    case TileKind::Thin:
    case TileKind::Thin32:
    case TileKind::SmallOut:
    case TileKind::NhwcLarge:
    case TileKind::NhwcSmall:
    case TileKind::NhwcWide:
    case TileKind::NhwcQuad:
    case TileKind::Wgmma:
    case TileKind::Wgmma64: DISCO_CHECK(false, "conv (custom): not a tile kernel: ", tile_name(t)); break;
  }
}

// The channels-last kernel (kernels/conv2d_nhwc.cuh) for NView (convidx::NhwcFprop /
// NhwcDgrad with T = __nv_bfloat16, NhwcFprop32 / NhwcDgrad32 with T = float) on `grid`, on
// operands already packed (its split-K partials into args.ws; the caller reduces).
// The channels-last kernels' arguments: the launch's, with the packed operands a and b.
kern::NhwcConvArgs nhwc_args(const kern::ConvKernelArgs& args, const void* a, const void* b) {
  kern::NhwcConvArgs na{};
  na.g = args.g;
  na.a = a;
  na.b = b;
  na.out = args.out;
  na.bias = args.bias;
  na.ws = args.ws;
  na.ws_slice = args.ws_slice;
  na.splits = args.splits;
  na.accumulate = args.accumulate;
  return na;
}

template <class NView, class T, class Tile>
void launch_nhwc_tile(const kern::ConvKernelArgs& args, const T* a, const T* b, dim3 grid) {
  constexpr size_t smem = kern::conv_nhwc_smem_bytes<Tile>();
  if constexpr (smem > kern::kSmemDefaultLimit) {
    static std::atomic<uint64_t> opted_in{0};
    opt_in_smem(kern::conv_nhwc_kernel<NView, Tile, T>, smem, opted_in);
  }
  kern::conv_nhwc_kernel<NView, Tile, T><<<grid, Tile::kThreads, smem, detail::stream()>>>(nhwc_args(args, a, b));
  DISCO_CUDA_CHECK_LAUNCH();
}

// Packs x or dy (N x ch x hw float) to channels-last T (N x hw x chp) in `dst`.
template <class T>
void pack_activation(const float* src, T* dst, int n, int ch, int chp, int64_t hw, TileKind t) {
  const dim3 pg(unsigned((hw + kern::kPackPix - 1) / kern::kPackPix), unsigned((chp + kern::kPackCh - 1) / kern::kPackCh),
                unsigned(n));
  DISCO_CHECK(pg.y <= 65535 && pg.z <= 65535, "conv (custom): ", tile_name(t), ": too many channels or images (",
              ch, " channels, N=", n, ") for the pack grid");
  kern::pack_nhwc_kernel<T><<<pg, kern::kPackThreads, 0, detail::stream()>>>(src, dst, ch, chp, int(hw));
  DISCO_CUDA_CHECK_LAUNCH();
}

// ---- pack sharing (ConvPackShare) -------------------------------------------------------------------
// Within a ConvPackShare scope, the channels-last launches of this thread keep each activation
// pack in the scope's storage and reuse it when a later launch packs the same source the same
// way (pointer, images, channels, padding, pixels, element type): the data gradient and the
// weight gradient of one layer both pack dy (a transposed conv's: the input gradient). Timing
// (median_of_3_ms, for tuning and ConvAlgo::Auto) suspends the sharing, so every plan is timed
// with its own packs.
struct SharedPack {
  const float* src;
  int n, ch, chp;
  int64_t hw;
  size_t elem;
  std::unique_ptr<detail::Scratch> mem;
};
struct PackShareState {
  std::vector<SharedPack> packs;
  int suspended = 0;
  int64_t reused = 0;
};
thread_local PackShareState* t_share = nullptr;  // the innermost scope of this thread
bool pack_sharing() { return t_share != nullptr && t_share->suspended == 0; }
struct SuspendPackShare {
  PackShareState* s = t_share;
  SuspendPackShare() {
    if (s) ++s->suspended;
  }
  ~SuspendPackShare() {
    if (s) --s->suspended;
  }
};

// The channels-last pack of an activation: into `dst` (scratch of the launch); while sharing,
// into the scope's storage, or the scope's earlier pack of the same source (dst unused).
template <class T>
const T* activation_pack(const float* src, T* dst, int n, int ch, int chp, int64_t hw, TileKind t) {
  if (!pack_sharing()) {
    pack_activation(src, dst, n, ch, chp, hw, t);
    return dst;
  }
  for (const SharedPack& e : t_share->packs)
    if (e.src == src && e.n == n && e.ch == ch && e.chp == chp && e.hw == hw && e.elem == sizeof(T)) {
      ++t_share->reused;
      return e.mem->as<T>();
    }
  auto mem = std::make_unique<detail::Scratch>(sizeof(T) * size_t(n) * size_t(hw) * size_t(chp));
  pack_activation(src, mem->as<T>(), n, ch, chp, hw, t);
  T* const out = mem->as<T>();
  t_share->packs.push_back({src, n, ch, chp, hw, sizeof(T), std::move(mem)});
  return out;
}

// Scratch for a launch's two packs, one block: `a_bytes` at the start, then the second pack
// (256-byte aligned). The block's size is rounded up to a power of two, so the caching
// allocator sees few distinct sizes across the layers: the blocks it keeps for the packs --
// in a captured graph's private pool too, where a freed block only serves later requests of
// its own size -- stay under twice the largest.
// With DISCO_CUDA_EXACT_ALLOC=1 (checking runs) each pack is a block of its own exact size
// instead, so a memory checker sees a read past either pack's end.
struct PackScratch {
  detail::Scratch mem, mem_b;  // mem_b: the second pack's own block (exact allocations only)
  unsigned char* b_start;
  PackScratch(size_t a_bytes, size_t b_bytes)
      : mem(exact_allocations() ? a_bytes : pow2_at_least(round_up(a_bytes) + b_bytes)),
        mem_b(exact_allocations() ? b_bytes : 0),
        b_start(exact_allocations() ? mem_b.as<unsigned char>() : mem.as<unsigned char>() + round_up(a_bytes)) {}
  template <class T>
  T* a() const { return mem.as<T>(); }
  template <class T>
  T* b() const { return reinterpret_cast<T*>(b_start); }
  static size_t round_up(size_t n) { return (n + 255) / 256 * 256; }
  static size_t pow2_at_least(size_t n) {
    size_t p = 256;
    while (p < n) p <<= 1;
    return p;
  }
};

// The channels-last weight gradient (T = __nv_bfloat16: BF16, float: TF32): packs dy (a_src)
// and x (b_src), runs the kernel on `grid` (args.g.gemm_n: the padded R S Cp columns).
template <class T>
void run_nhwc_wgrad(TileKind t, const kern::ConvKernelArgs& args, dim3 grid) {
  using V = convidx::NhwcWgradT<int(16 / sizeof(T))>;
  const Conv2dProblem& p = args.g.p;
  const int Kp = V::padded_channels(p.K), Cp = V::padded_channels(p.C);
  const bool share = pack_sharing();  // both packs in the scope's storage
  const PackScratch packs(share ? 0 : sizeof(T) * size_t(p.N) * size_t(p.P) * size_t(p.Q) * size_t(Kp),
                          share ? 0 : sizeof(T) * size_t(p.N) * size_t(p.H) * size_t(p.W) * size_t(Cp));
  const T* const dyp = activation_pack(args.a_src, packs.a<T>(), p.N, p.K, Kp, int64_t(p.P) * p.Q, t);
  const T* const xp = activation_pack(args.b_src, packs.b<T>(), p.N, p.C, Cp, int64_t(p.H) * p.W, t);
  if (t == TileKind::Wgmma || t == TileKind::Wgmma64) {
    detail::launch_conv_wgmma(int(ConvKind::Wgrad), t == TileKind::Wgmma ? 128 : 64, std::is_same_v<T, float>,
                              nhwc_args(args, dyp, xp), grid);
    return;
  }
  const auto launch = [&](auto tile) {
    using Tile = decltype(tile);
    constexpr size_t smem = kern::conv_nhwc_smem_bytes<Tile>();
    if constexpr (smem > kern::kSmemDefaultLimit) {
      static std::atomic<uint64_t> opted_in{0};
      opt_in_smem(kern::conv_wgrad_nhwc_kernel<Tile, T>, smem, opted_in);
    }
    kern::conv_wgrad_nhwc_kernel<Tile, T><<<grid, Tile::kThreads, smem, detail::stream()>>>(nhwc_args(args, dyp, xp));
    DISCO_CUDA_CHECK_LAUNCH();
  };
  with_nhwc_tile(t, launch);
}

// Packs the launch's operands to channels-last T in scratch -- fprop: x (a_src) and w (b_src);
// dgrad: dy (a_src) and w (b_src) -- and runs the kernel. NView's chunk matches T (8 BF16 or
// 4 FP32 channels).
template <class NView, class T>
void run_nhwc(TileKind t, const kern::ConvKernelArgs& args, dim3 grid) {
  constexpr bool fprop = std::is_same_v<typename NView::Out, convidx::FpropView>;
  static_assert(NView::kChunk * sizeof(T) == 16, "16-byte chunks");
  const Conv2dProblem& p = args.g.p;
  const int ch = fprop ? p.C : p.K;  // the reduction's channels, innermost in the packs
  const int chp = NView::padded_channels(ch);
  const int64_t hw = fprop ? int64_t(p.H) * p.W : int64_t(p.P) * p.Q;
  const int64_t wtotal = int64_t(p.R) * p.S * (fprop ? int64_t(p.K) : int64_t(p.C)) * chp;
  const PackScratch packs(pack_sharing() ? 0 : sizeof(T) * size_t(p.N) * size_t(hw) * size_t(chp),
                          sizeof(T) * size_t(wtotal));
  const T* const ap = activation_pack(args.a_src, packs.a<T>(), p.N, ch, chp, hw, t);
  T* const bp = packs.b<T>();
  if constexpr (fprop) {
    kern::pack_weights_nhwc_kernel<T><<<detail::grid_for(wtotal), kern::kBlock, 0, detail::stream()>>>(
        args.b_src, bp, p.C, chp, p.R * p.S, wtotal);
  } else {
    kern::pack_weights_dgrad_nhwc_kernel<T><<<detail::grid_for(wtotal), kern::kBlock, 0, detail::stream()>>>(
        args.b_src, bp, p.K, chp, p.C, p.R * p.S, wtotal);
  }
  DISCO_CUDA_CHECK_LAUNCH();
  if (t == TileKind::Wgmma || t == TileKind::Wgmma64) {
    detail::launch_conv_wgmma(int(fprop ? ConvKind::Fprop : ConvKind::Dgrad), t == TileKind::Wgmma ? 128 : 64,
                              std::is_same_v<T, float>, nhwc_args(args, ap, bp), grid);
    return;
  }
  with_nhwc_tile(t, [&](auto tile) { launch_nhwc_tile<NView, T, decltype(tile)>(args, ap, bp, grid); });
}

template <class View>
void run_custom_launch(const convidx::ConvGemmParams& g_in, const LaunchPlan& pl, const float* a, const float* b,
                       float* out, const float* bias, bool accumulate, ConvMath math) {
  if (g_in.max_m <= 0 || g_in.gemm_n <= 0 || g_in.num_slots <= 0) return;
  convidx::ConvGemmParams g = g_in;
  g.gemm_n = gemm_n_of(g_in, pl.tile, math);  // the channels-last wgrad's padded columns
  kern::ConvKernelArgs args{};
  args.g = g;
  args.a_src = a;
  args.b_src = b;
  args.out = out;
  args.bias = bias;
  args.accumulate = accumulate ? 1 : 0;
  args.splits = pl.splits;
  args.b_vec4 = kern::conv_b_vec4(g, b);
  args.ws_slice = int64_t(g.max_m) * g.gemm_n;
  detail::Scratch ws(pl.splits > 1 ? sizeof(float) * size_t(args.ws_slice) * g.num_slots * pl.splits : 0);
  args.ws = ws.as<float>();
  if (pl.tile == TileKind::Thin || pl.tile == TileKind::Thin32) {
    if constexpr (View::kAKFast) {
      DISCO_CHECK(false, "conv (custom): no thin kernel for this direction");
    } else {
      const bool wide = pl.tile == TileKind::Thin32;
      const int nt = wide ? kern::kThinWideN : kern::kThinN;
      DISCO_CHECK(thin_fits(g, nt) && pl.splits == 1, "conv (custom): the thin kernel cannot run this problem");
      const dim3 grid(unsigned((g.max_m + kern::kThinThreads - 1) / kern::kThinThreads), 1, unsigned(g.num_slots));
      const size_t smem = kern::conv_thin_smem_bytes(g, nt);
      if (wide) {
        kern::conv_thin_kernel<View, kern::kThinWideN><<<grid, kern::kThinThreads, smem, detail::stream()>>>(args);
      } else {
        kern::conv_thin_kernel<View, kern::kThinN><<<grid, kern::kThinThreads, smem, detail::stream()>>>(args);
      }
      DISCO_CUDA_CHECK_LAUNCH();
    }
    return;
  }
  if (pl.tile == TileKind::SmallOut) {
    if constexpr (!View::kAKFast || !View::kBTable) {
      DISCO_CHECK(false, "conv (custom): the small-output kernel is for weight gradients only");
    } else {
      DISCO_CHECK(smallout_fits(g) && pl.splits >= 1 && pl.splits <= 65535,
                  "conv (custom): the small-output kernel cannot run this problem");
      const dim3 grid(1, 1, unsigned(pl.splits));
      const size_t smem = kern::kSmallOutSmemBytes;
      kern::conv_wgrad_smallout_kernel<View><<<grid, kern::kSmallOutThreads, smem, detail::stream()>>>(args);
      DISCO_CUDA_CHECK_LAUNCH();
    }
  } else {
    const TileDims d = tile_dims(pl.tile);
    const int64_t gx = (g.max_m + d.bm - 1) / d.bm, gy = (g.gemm_n + d.bn - 1) / d.bn;
    DISCO_CHECK(gy <= 65535, "conv (custom): output has too many channels (", g.gemm_n, ") for the grid");
    DISCO_CHECK(gx < (int64_t(1) << 31), "conv (custom): GEMM M too large");
    const dim3 grid(unsigned(gx), unsigned(gy), unsigned(g.num_slots * pl.splits));
    if (is_nhwc(pl.tile)) {
      DISCO_CHECK(nhwc_fits(g, math), "conv (custom): ", tile_name(pl.tile),
                  " runs BF16 and TF32 convolutions only (and at most 65535 images)");
      const bool tf32 = math == ConvMath::TF32;
      if constexpr (std::is_same_v<View, convidx::FpropView>) {
        if (tf32)
          run_nhwc<convidx::NhwcFprop32, float>(pl.tile, args, grid);
        else
          run_nhwc<convidx::NhwcFprop, __nv_bfloat16>(pl.tile, args, grid);
      } else if constexpr (std::is_same_v<View, convidx::DgradView>) {
        if (tf32)
          run_nhwc<convidx::NhwcDgrad32, float>(pl.tile, args, grid);
        else
          run_nhwc<convidx::NhwcDgrad, __nv_bfloat16>(pl.tile, args, grid);
      } else if (tf32) {
        run_nhwc_wgrad<float>(pl.tile, args, grid);
      } else {
        run_nhwc_wgrad<__nv_bfloat16>(pl.tile, args, grid);
      }
    } else {
      switch (math) {
        case ConvMath::FP32: launch_tile_kind<View, ConvMath::FP32>(pl.tile, args, grid); break;
        case ConvMath::TF32: launch_tile_kind<View, ConvMath::TF32>(pl.tile, args, grid); break;
        case ConvMath::BF16: launch_tile_kind<View, ConvMath::BF16>(pl.tile, args, grid); break;
      }
    }
  }
  if (pl.splits > 1) {
    const int64_t total = args.ws_slice * g.num_slots;
    const bool nhwc_wgrad = is_nhwc(pl.tile) && std::is_same_v<View, convidx::WgradView>;  // (r, s, c) columns
    const unsigned blocks = unsigned(detail::grid_for(total));
    if (nhwc_wgrad && math == ConvMath::TF32)
      kern::conv_splitk_reduce_kernel<convidx::NhwcWgrad32><<<blocks, kern::kBlock, 0, detail::stream()>>>(args);
    else if (nhwc_wgrad)
      kern::conv_splitk_reduce_kernel<convidx::NhwcWgrad><<<blocks, kern::kBlock, 0, detail::stream()>>>(args);
    else
      kern::conv_splitk_reduce_kernel<View><<<blocks, kern::kBlock, 0, detail::stream()>>>(args);
    DISCO_CUDA_CHECK_LAUNCH();
  }
}

// ---- per-layer tuning --------------------------------------------------------------------------------
bool autotune_default() {
  const char* e = std::getenv("DISCO_CONV_AUTOTUNE");
  return !(e && (std::strcmp(e, "0") == 0 || std::strcmp(e, "off") == 0 || std::strcmp(e, "false") == 0));
}
std::atomic<bool>& autotune_flag() {
  static std::atomic<bool> on{autotune_default()};
  return on;
}

// ---- the preferred kernel family of untuned launches (set_conv_prefer, DISCO_CONV_PREFER) ------
// The kernel families, as tile_family names them, in TileKind order without repeats.
const std::vector<std::string>& families() {
  static const std::vector<std::string> f = [] {
    std::vector<std::string> out;
    for (int t = 0; t <= int(TileKind::Wgmma64); ++t) {
      const std::string name = tile_family(TileKind(t));
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
    }
    return out;
  }();
  return f;
}
bool known_family(const std::string& f) {
  const auto& all = families();
  return std::find(all.begin(), all.end(), f) != all.end();
}
std::string family_list() {
  std::string out;
  for (const std::string& k : families()) out += (out.empty() ? "" : ", ") + k;
  return out;
}
std::mutex& prefer_mutex() {
  static std::mutex m;
  return m;
}
// The preference; the environment's, read at the first use, until set_conv_prefer.
std::string& prefer_family() {
  static std::string f = [] {
    const char* e = std::getenv("DISCO_CONV_PREFER");
    const std::string v = e ? e : "";
    DISCO_CHECK(v.empty() || known_family(v), "DISCO_CONV_PREFER: unknown conv kernel family '", v, "' (expected ",
                family_list(), ", or empty)");
    return v;
  }();
  return f;
}

// The plan of a launch that is not tuned: the first candidate of the preferred family where
// there is one (candidates in plan_candidates' order), else the heuristic's.
LaunchPlan plan_untuned(const convidx::ConvGemmParams& g, ConvMath math, bool* preferred = nullptr) {
  std::string f;
  {
    std::lock_guard<std::mutex> lock(prefer_mutex());
    f = prefer_family();
  }
  if (preferred) *preferred = false;
  if (!f.empty())
    for (const LaunchPlan& pl : plan_candidates(g, math))
      if (f == tile_family(pl.tile)) {
        if (preferred) *preferred = true;
        return pl;
      }
  return plan_heuristic(g);
}

// Cache key: the direction, the problem, the math mode, the dgrad phase batch and the device.
using PlanKey = std::array<int, 20>;
PlanKey plan_key(ConvKind kind, const Conv2dProblem& p, ConvMath math, int phase_base) {
  return {int(kind), p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.P, p.Q, p.stride_h, p.stride_w, p.pad_h, p.pad_w,
          p.dil_h, p.dil_w, int(math), phase_base, current_device_id(), 0};
}
// A process-wide map from PlanKey to V, guarded by a mutex.
template <class V>
class KeyedCache {
 public:
  // The cached value of `key` into `v`; false when there is none.
  bool get(const PlanKey& key, V& v) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = map_.find(key);
    if (it == map_.end()) return false;
    v = it->second;
    return true;
  }
  void put(const PlanKey& key, const V& v) {
    std::lock_guard<std::mutex> lock(mu_);
    map_[key] = v;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mu_);
    map_.clear();
  }
  std::map<PlanKey, V> snapshot() {
    std::lock_guard<std::mutex> lock(mu_);
    return map_;
  }

 private:
  std::mutex mu_;
  std::map<PlanKey, V> map_;
};
// The launch plans: tuned, or forced by a test.
KeyedCache<LaunchPlan>& plan_cache() {
  static auto* c = new KeyedCache<LaunchPlan>;  // never destroyed: used until exit
  return *c;
}
// Untuned launches that ran set_conv_prefer's family: a record for conv_plans_in_use only (not
// a cache: the next untuned launch decides again).
KeyedCache<LaunchPlan>& preferred_record() {
  static auto* c = new KeyedCache<LaunchPlan>;
  return *c;
}

bool stream_is_capturing() {
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  DISCO_CUDA_CHECK(cudaStreamIsCapturing(detail::stream(), &st));
  return st != cudaStreamCaptureStatusNone;
}

// Milliseconds of f() on the current stream: one warm-up run (which may tune or search and
// synchronize), then the median of 3 runs timed with events. Throws what f throws.
template <class F>
float median_of_3_ms(F&& f) {
  const SuspendPackShare own_packs;  // each plan timed with its own packs
  cudaEvent_t ev[2] = {nullptr, nullptr};
  struct Events {
    cudaEvent_t* e;
    ~Events() {
      for (int i = 0; i < 2; ++i)
        if (e[i]) (void)cudaEventDestroy(e[i]);
    }
  } guard{ev};
  for (auto& e : ev) DISCO_CUDA_CHECK(cudaEventCreate(&e));
  f();  // warm-up
  float t[3];
  for (float& ti : t) {
    DISCO_CUDA_CHECK(cudaEventRecord(ev[0], detail::stream()));
    f();
    DISCO_CUDA_CHECK(cudaEventRecord(ev[1], detail::stream()));
    DISCO_CUDA_CHECK(cudaEventSynchronize(ev[1]));
    DISCO_CUDA_CHECK(cudaEventElapsedTime(&ti, ev[0], ev[1]));
  }
  std::sort(t, t + 3);
  return t[1];
}

// What tuning measured per launch (conv_tuning_times): each candidate, its time and how far its
// output was from the reference plan's.
struct PlanTime {
  LaunchPlan plan;
  float ms;        // NaN: could not run
  float diff;      // max |out - ref| / max |ref|; 0 for the reference, NaN when not compared
  bool agrees;     // within tuning_tolerance (the reference and unchecked plans: true)
};
using PlanTimes = std::vector<PlanTime>;
KeyedCache<PlanTimes>& tuning_times() {
  static auto* c = new KeyedCache<PlanTimes>;  // never destroyed: used until exit
  return *c;
}

// How far a candidate's output may be from the reference plan's, relative to the reference's
// largest magnitude. Plans of one mode round the operands alike (BF16 / TF32 tensor-core
// tiles) or not at all (the thin and small-output kernels' FP32 FMAs, in every mode), and sum
// in different orders: measured differences are ~1e-6 (FP32), ~5e-4 (TF32), ~5e-3 (BF16).
// A kernel that is wrong on this device -- a lost tap, a misplaced tile, a NaN -- is off by
// O(1).
float tuning_tolerance(ConvMath math) {
  switch (math) {
    case ConvMath::FP32: return 1e-4f;
    case ConvMath::TF32: return 5e-3f;
    case ConvMath::BF16: return 3e-2f;
  }
  return 0.f;
}

// For tests (set_conv_tuning_fault): tuning perturbs the output of the candidates after the
// reference whose plan name contains this string, before checking it.
std::string& tuning_fault() {
  static auto* s = new std::string;
  return *s;
}
std::mutex& tuning_fault_mutex() {
  static auto* m = new std::mutex;
  return *m;
}

// max |got - ref| / max |ref| over n floats (synchronizes the stream); NaN when a difference is.
float relative_max_diff(const float* got, const float* ref, size_t n) {
  detail::Scratch dev(2 * sizeof(float));
  max_abs_diff(got, ref, int64_t(n), dev.as<float>());
  float h[2];
  DISCO_CUDA_CHECK(cudaMemcpyAsync(h, dev.as<float>(), sizeof(h), cudaMemcpyDeviceToHost, detail::stream()));
  DISCO_CUDA_CHECK(cudaStreamSynchronize(detail::stream()));
  if (std::isnan(h[0])) return NAN;
  return h[1] > 0.f ? h[0] / h[1] : (h[0] > 0.f ? INFINITY : 0.f);
}

// Times each candidate on the current stream (median_of_3_ms) into a scratch output, so the
// real output -- which may be accumulated into -- is untouched. The first candidate that runs
// (normally the heuristic plan, cand[0], the one every device has run) is the reference: a
// candidate whose output differs from it by more than tuning_tolerance is never chosen,
// however fast -- tuning must not trade a correct kernel for a wrong one. Both outputs start
// zeroed (a dgrad launch writes only its phases' pixels). Every candidate and its figures go
// to `times`.
template <class View>
LaunchPlan tune(const convidx::ConvGemmParams& g, const float* a, const float* b, size_t out_elems, ConvMath math,
                PlanTimes& times) {
  const std::vector<LaunchPlan> cand = plan_candidates(g, math);
  times.clear();
  if (cand.size() == 1) return cand[0];
  const size_t bytes = sizeof(float) * out_elems;
  detail::Scratch ref(bytes), out(bytes);
  std::string fault;
  {
    std::lock_guard<std::mutex> lock(tuning_fault_mutex());
    fault = tuning_fault();
  }
  bool have_ref = false;
  LaunchPlan best = cand[0];
  float best_ms = INFINITY;
  for (const LaunchPlan& pl : cand) {
    float* dst = have_ref ? out.as<float>() : ref.as<float>();
    float ms;
    try {
      DISCO_CUDA_CHECK(cudaMemsetAsync(dst, 0, bytes, detail::stream()));
      ms = median_of_3_ms([&] { run_custom_launch<View>(g, pl, a, b, dst, nullptr, false, math); });
    } catch (const Error&) {
      // a candidate that cannot run here (e.g. no memory for its split-K partials) is
      // skipped; the heuristic plan (cand[0]) is kept unless another one ran faster
      (void)cudaGetLastError();
      times.push_back({pl, NAN, NAN, true});
      continue;
    }
    if (have_ref && !fault.empty() && plan_string(pl).find(fault) != std::string::npos)
      scale(dst, 1.5f, dst, int64_t(out_elems));  // the planted fault of set_conv_tuning_fault
    float diff = 0.f;
    if (have_ref) diff = relative_max_diff(dst, ref.as<float>(), out_elems);
    have_ref = true;
    const bool agrees = diff <= tuning_tolerance(math);  // false for NaN
    times.push_back({pl, ms, diff, agrees});
    if (agrees && ms < best_ms) best_ms = ms, best = pl;
  }
  return best;
}

// The plan of one launch: the cached one; else, when tuning is on and the stream is not
// being captured into a CUDA graph (no timing or synchronization there), a tuned one, cached;
// else the heuristic.
template <class View>
LaunchPlan plan_for(ConvKind kind, const Conv2dProblem& p, const convidx::ConvGemmParams& g, int phase_base,
                    const float* a, const float* b, size_t out_elems, ConvMath math) {
  const PlanKey key = plan_key(kind, p, math, phase_base);
  LaunchPlan pl;
  if (plan_cache().get(key, pl)) return pl;
  if (!autotune_flag().load() || stream_is_capturing()) {
    bool preferred = false;
    pl = plan_untuned(g, math, &preferred);
    if (preferred) preferred_record().put(key, pl);
    return pl;
  }
  PlanTimes times;
  pl = tune<View>(g, a, b, out_elems, math, times);
  plan_cache().put(key, pl);
  tuning_times().put(key, times);
  return pl;
}

size_t output_elems(ConvKind kind, const Conv2dProblem& p) {
  switch (kind) {
    case ConvKind::Fprop: return size_t(p.y_size());
    case ConvKind::Dgrad: return size_t(p.x_size());
    case ConvKind::Wgrad: return size_t(p.w_size());
  }
  return 0;
}

void check_problem(const Conv2dProblem& p, const char* op) {
  DISCO_CHECK(p.N > 0 && p.C > 0 && p.H > 0 && p.W > 0 && p.K > 0 && p.R > 0 && p.S > 0, op,
              ": all sizes must be positive (N=", p.N, " C=", p.C, " H=", p.H, " W=", p.W, " K=", p.K, " R=", p.R,
              " S=", p.S, ")");
  DISCO_CHECK(p.stride_h > 0 && p.stride_w > 0 && p.dil_h > 0 && p.dil_w > 0 && p.pad_h >= 0 && p.pad_w >= 0, op,
              ": bad stride / dilation / padding");
  Conv2dProblem q = p;
  q.compute_output_size();
  DISCO_CHECK(q.P == p.P && q.Q == p.Q && p.P > 0 && p.Q > 0, op, ": output size P x Q = ", p.P, " x ", p.Q,
              " does not match the input ", p.H, " x ", p.W, " (expected ", q.P, " x ", q.Q, ")");
  DISCO_CHECK(convidx::conv_gemm_fits_int32(p), op, ": problem too large for 32-bit GEMM coordinates");
}

// Calls f(phase_base, gemm params) for each launch of the problem: one, or for dgrad one per
// batch of up to kMaxPhasesPerLaunch phases.
template <class F>
void for_each_launch(ConvKind kind, const Conv2dProblem& p, F f) {
  const int bases = kind == ConvKind::Dgrad ? convidx::dgrad_num_phases(p) : 1;
  for (int base = 0; base < bases; base += convidx::kMaxPhasesPerLaunch)
    f(base, convidx::make_conv_gemm_params(p, kind, base));
}

template <class View>
void run_one(ConvKind kind, const Conv2dProblem& p, int phase_base, const convidx::ConvGemmParams& g, const float* a,
             const float* b, float* out, const float* bias, bool accumulate, ConvMath math) {
  if (g.max_m <= 0 || g.gemm_n <= 0 || g.num_slots <= 0) return;
  const LaunchPlan pl = plan_for<View>(kind, p, g, phase_base, a, b, output_elems(kind, p), math);
  run_custom_launch<View>(g, pl, a, b, out, bias, accumulate, math);
}

void run_custom(ConvKind kind, const Conv2dProblem& p, const float* a, const float* b, float* out, const float* bias,
                bool accumulate, MathMode mode) {
  const ConvMath math = to_math(mode);
  for_each_launch(kind, p, [&](int base, const convidx::ConvGemmParams& g) {
    switch (kind) {
      case ConvKind::Fprop: run_one<convidx::FpropView>(kind, p, base, g, a, b, out, bias, accumulate, math); break;
      case ConvKind::Wgrad: run_one<convidx::WgradView>(kind, p, base, g, a, b, out, nullptr, accumulate, math); break;
      case ConvKind::Dgrad: run_one<convidx::DgradView>(kind, p, base, g, a, b, out, nullptr, accumulate, math); break;
    }
  });
}

ConvKind to_kind(ConvDir d) {
  switch (d) {
    case ConvDir::Fprop: return ConvKind::Fprop;
    case ConvDir::Dgrad: return ConvKind::Dgrad;
    case ConvDir::Wgrad: return ConvKind::Wgrad;
  }
  return ConvKind::Fprop;
}

// ---- ConvAlgo::Auto: disco's kernels or cuDNN, whichever ran this problem faster ----------------
// Its choices, keyed like the plans (one per direction, problem, math mode and device).
PlanKey auto_key(ConvDir dir, const Conv2dProblem& p, MathMode mode) {
  return plan_key(to_kind(dir), p, to_math(mode), 0);
}
KeyedCache<ConvAlgo>& auto_cache() {
  static auto* c = new KeyedCache<ConvAlgo>;  // never destroyed: used until exit
  return *c;
}

// The implementation ConvAlgo::Auto runs: the cached choice; else, when tuning is on, cuDNN
// exists and the stream is not being captured, the faster of the two on this problem (each
// timed whole -- all dgrad phase launches, split-K reductions, cuDNN's BF16 conversions and
// fprop's bias -- by median_of_3_ms into a scratch output; the custom side's warm-up tunes its
// plans, cuDNN's runs its algorithm search), cached; else disco's kernels.
// run(algo, out) runs the convolution into `out` without accumulating.
template <class Run>
ConvAlgo auto_algo(ConvDir dir, const Conv2dProblem& p, MathMode mode, size_t out_elems, Run&& run) {
  if (!cudnn_available()) return ConvAlgo::Custom;
  const PlanKey key = auto_key(dir, p, mode);
  ConvAlgo algo;
  if (auto_cache().get(key, algo)) return algo;
  if (!autotune_flag().load() || stream_is_capturing()) return ConvAlgo::Custom;
  detail::Scratch scratch(sizeof(float) * out_elems);
  const float custom_ms = median_of_3_ms([&] { run(ConvAlgo::Custom, scratch.as<float>()); });
  float cudnn_ms = INFINITY;
  try {
    cudnn_ms = median_of_3_ms([&] { run(ConvAlgo::Cudnn, scratch.as<float>()); });
  } catch (const Error&) {  // e.g. no algorithm for this problem, or no memory for its workspace
    (void)cudaGetLastError();
  }
  algo = cudnn_ms < custom_ms ? ConvAlgo::Cudnn : ConvAlgo::Custom;
  auto_cache().put(key, algo);
  return algo;
}

}  // namespace

void conv2d_fprop(const Conv2dProblem& p, const float* x, const float* w, const float* bias, float* y, ConvAlgo algo,
                  MathMode mode) {
  check_problem(p, "conv2d_fprop");
  const auto run = [&](ConvAlgo a, float* out) {
    if (a == ConvAlgo::Custom) {
      run_custom(ConvKind::Fprop, p, x, w, out, bias, false, mode);
    } else {
      detail::cudnn_conv_f32(ConvDir::Fprop, p, x, w, out, false, mode);
      if (bias) add_channel_bias(out, bias, out, p.N, p.K, int64_t(p.P) * p.Q);
    }
  };
  run(algo == ConvAlgo::Auto ? auto_algo(ConvDir::Fprop, p, mode, size_t(p.y_size()), run) : algo, y);
}

void conv2d_dgrad(const Conv2dProblem& p, const float* dy, const float* w, float* dx, bool accumulate, ConvAlgo algo,
                  MathMode mode) {
  check_problem(p, "conv2d_dgrad");
  const auto run = [&](ConvAlgo a, float* out, bool acc) {
    if (a == ConvAlgo::Custom)
      run_custom(ConvKind::Dgrad, p, dy, w, out, nullptr, acc, mode);
    else
      detail::cudnn_conv_f32(ConvDir::Dgrad, p, dy, w, out, acc, mode);
  };
  if (algo == ConvAlgo::Auto)
    algo = auto_algo(ConvDir::Dgrad, p, mode, size_t(p.x_size()), [&](ConvAlgo a, float* out) { run(a, out, false); });
  run(algo, dx, accumulate);
}

void conv2d_wgrad(const Conv2dProblem& p, const float* x, const float* dy, float* dw, bool accumulate, ConvAlgo algo,
                  MathMode mode) {
  check_problem(p, "conv2d_wgrad");
  const auto run = [&](ConvAlgo a, float* out, bool acc) {
    if (a == ConvAlgo::Custom)
      run_custom(ConvKind::Wgrad, p, dy, x, out, nullptr, acc, mode);
    else
      detail::cudnn_conv_f32(ConvDir::Wgrad, p, x, dy, out, acc, mode);
  };
  if (algo == ConvAlgo::Auto)
    algo = auto_algo(ConvDir::Wgrad, p, mode, size_t(p.w_size()), [&](ConvAlgo a, float* out) { run(a, out, false); });
  run(algo, dw, accumulate);
}

const char* conv_auto_choice(ConvDir dir, const Conv2dProblem& p, MathMode mode) {
  ConvAlgo algo;
  return auto_cache().get(auto_key(dir, p, mode), algo) ? to_string(algo) : "";
}

// ---- per-layer tuning -----------------------------------------------------------------------------
ConvPackShare::ConvPackShare() : state_(new PackShareState), outer_(t_share) {
  t_share = static_cast<PackShareState*>(state_);
}
ConvPackShare::~ConvPackShare() {
  auto* s = static_cast<PackShareState*>(state_);
  if (t_share == s) t_share = static_cast<PackShareState*>(outer_);
  delete s;  // its packs go back to the caching allocator (stream-ordered: the launches that read them come first)
}
int64_t ConvPackShare::reused() const { return static_cast<const PackShareState*>(state_)->reused; }

void set_conv_autotune(bool on) { autotune_flag().store(on); }
void set_conv_tuning_fault(const std::string& plan_substring) {
  std::lock_guard<std::mutex> lock(tuning_fault_mutex());
  tuning_fault() = plan_substring;
}
bool conv_autotune() { return autotune_flag().load(); }
void set_conv_prefer(const std::string& family) {
  DISCO_CHECK(family.empty() || known_family(family), "set_conv_prefer: unknown conv kernel family '", family,
              "' (expected ", family_list(), ", or empty)");
  std::lock_guard<std::mutex> lock(prefer_mutex());
  prefer_family() = family;
}
std::string conv_prefer() {
  std::lock_guard<std::mutex> lock(prefer_mutex());
  return prefer_family();
}
void clear_conv_plans() {
  plan_cache().clear();
  preferred_record().clear();
  auto_cache().clear();
  tuning_times().clear();
}

std::vector<ConvPlanTiming> conv_tuning_times(ConvDir dir, const Conv2dProblem& p, MathMode mode) {
  check_problem(p, "conv_tuning_times");
  const ConvKind kind = to_kind(dir);
  std::vector<ConvPlanTiming> out;
  int launch = 0;
  for_each_launch(kind, p, [&](int base, const convidx::ConvGemmParams&) {
    const PlanKey key = plan_key(kind, p, to_math(mode), base);
    PlanTimes times;
    LaunchPlan chosen;
    if (tuning_times().get(key, times) && plan_cache().get(key, chosen))
      for (const PlanTime& t : times)
        out.push_back({launch, plan_string(t.plan), t.ms, t.plan == chosen, t.diff, t.agrees});
    ++launch;
  });
  return out;
}

std::vector<ConvPlanUse> conv_plans_in_use() {
  std::vector<ConvPlanUse> out;
  const int dev = current_device_id();
  const auto autos = auto_cache().snapshot();
  auto plans = plan_cache().snapshot();
  for (const auto& [key, pl] : preferred_record().snapshot()) plans.emplace(key, pl);  // (tuned / set ones win)
  for (const auto& [key, pl] : plans) {
    if (key[18] != dev) continue;
    ConvPlanUse u;
    u.dir = key[0] == int(ConvKind::Fprop) ? ConvDir::Fprop : key[0] == int(ConvKind::Dgrad) ? ConvDir::Dgrad : ConvDir::Wgrad;
    u.mode = key[16] == int(ConvMath::FP32) ? MathMode::FP32 : key[16] == int(ConvMath::TF32) ? MathMode::TF32 : MathMode::BF16;
    PlanKey problem_key = key;
    problem_key[17] = 0;  // Auto decides per problem (its key: the first launch's)
    const auto a = autos.find(problem_key);
    if (a != autos.end() && a->second == ConvAlgo::Cudnn) {
      if (key[17] != 0) continue;  // one entry per problem handed to cuDNN
      u.plan = u.family = "cudnn";
    } else {
      u.plan = plan_string(pl);
      u.family = tile_family(pl.tile);
    }
    out.push_back(u);
  }
  return out;
}

std::string conv_plan(ConvDir dir, const Conv2dProblem& p, MathMode mode) {
  check_problem(p, "conv_plan");
  const ConvKind kind = to_kind(dir);
  std::string out;
  for_each_launch(kind, p, [&](int base, const convidx::ConvGemmParams& g) {
    LaunchPlan pl;
    if (!plan_cache().get(plan_key(kind, p, to_math(mode), base), pl)) pl = plan_untuned(g, to_math(mode));
    out += (out.empty() ? "" : " + ") + plan_string(pl);
  });
  return out;
}

bool wgmma_available() { return detail::wgmma_supported(); }

int conv_plan_candidates(ConvDir dir, const Conv2dProblem& p) {
  check_problem(p, "conv_plan_candidates");
  int n = 0;
  for_each_launch(to_kind(dir), p, [&](int, const convidx::ConvGemmParams& g) {
    // the longest list: a tensor-core mode's (FP32 has no paired tile nor channels-last ones;
    // set_conv_plan clamps)
    n = std::max({n, int(plan_candidates(g, ConvMath::TF32).size()), int(plan_candidates(g, ConvMath::BF16).size())});
  });
  return n;
}

void set_conv_plan(ConvDir dir, const Conv2dProblem& p, MathMode mode, int candidate) {
  check_problem(p, "set_conv_plan");
  DISCO_CHECK(candidate >= 0, "set_conv_plan: candidate must be >= 0, got ", candidate);
  const ConvKind kind = to_kind(dir);
  for_each_launch(kind, p, [&](int base, const convidx::ConvGemmParams& g) {
    const std::vector<LaunchPlan> c = plan_candidates(g, to_math(mode));
    const PlanKey key = plan_key(kind, p, to_math(mode), base);
    plan_cache().put(key, c[std::min<size_t>(size_t(candidate), c.size() - 1)]);
    tuning_times().put(key, {});  // set, not tuned
  });
}

}  // namespace cuda
}  // namespace disco
