// CPU emulation test of the implicit-GEMM convolution kernel (kernels/conv2d_igemm.cuh).
//
// Compiles the real kernel header with the host compiler (see cuda_emu.hpp for what is and
// is not emulated), launches conv_igemm_kernel / conv_splitk_reduce_kernel directly for
// fprop, dgrad (all phases, in launches of up to kMaxPhasesPerLaunch) and wgrad (plain and
// accumulating onto the previous result), and compares with the naive double-precision
// loops of tests/reference/conv_ref.hpp:
//   relative L2 error <= 1e-5 (FP32), <= 5e-3 (TF32, BF16); outputs start as NaN.
// One line per case (problem x math mode x tile x splits); exit status 1 on any mismatch.
//
//   conv_igemm_emu           reduced list (every problem once, all math modes, all tiles,
//                            split-K on some; about 25 s on 2 cores): the ctest emu.conv_igemm
//   conv_igemm_emu --full    every problem x math mode x {small, large, narrow tile} x
//                            {1 split, 2-3 splits}, + the paired large tile x {TF32, BF16} x
//                            {1, 2 splits}: 242 cases, about 3 minutes on 2 cores
//
// It checks the kernel's index math, loaders, fragment layouts, the multi-stage pipeline's
// buffer / barrier structure, the dynamic shared-memory layout (NaN-poisoned per block, guard
// pages) and the launch's size and opt-in, epilogue, split-K and phase handling -- not the asynchronous behaviour of
// cp.async, real tensor cores or the GPU memory model (cuda_emu.hpp).
#include "emu/cuda_emu.hpp"  // must come first: keyword shims + DISCO_KERNEL_EMULATION

#include "kernels/conv2d_igemm.cuh"
#include "kernels/conv2d_nhwc.cuh"
#include "reference/conv_ref.hpp"

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

using namespace disco;
using namespace disco::convidx;
using disco::cuda::kern::ConvKernelArgs;
using disco::cuda::kern::ConvMath;
using disco::cuda::kern::ConvTileLarge;
using disco::cuda::kern::ConvTileLargePaired;
using disco::cuda::kern::ConvTileNarrow;
using disco::cuda::kern::ConvTileSmall;

namespace {

int g_failures = 0;
bool g_launch_failed = false;  // a launch of the current case failed (its line says FAIL)

// One kernel launch (plus the split-K reduction when splits > 1), as src/cuda/conv_custom.cu
// would do it: grid (ceil(max_m / BM), ceil(gemm_n / BN), num_slots * splits), dynamic shared
// memory conv_igemm_smem_bytes (over 48 KB after the cudaFuncSetAttribute opt-in). A failed
// launch (emulated like a real one: too much dynamic shared memory) counts as a failure.
template <class View, ConvMath MATH, class Tile>
void run_conv(const ConvGemmParams& g, const float* a, const float* b, float* out, const float* bias, bool accumulate,
              int splits) {
  const auto kernel = disco::cuda::kern::conv_igemm_kernel<View, MATH, Tile>;
  constexpr size_t smem = disco::cuda::kern::conv_igemm_smem_bytes<View, MATH, Tile>();
  if (smem > disco::cuda::kern::kSmemDefaultLimit) {
    const cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    if (e != cudaSuccess) {
      std::printf("cudaFuncSetAttribute(MaxDynamicSharedMemorySize, %zu) failed: %s\n", smem, cudaGetErrorName(e));
      g_launch_failed = true;
    }
  }
  ConvKernelArgs args{};
  args.g = g;
  args.a_src = a;
  args.b_src = b;
  args.out = out;
  args.bias = bias;
  args.accumulate = accumulate ? 1 : 0;
  args.splits = splits;
  args.b_vec4 = disco::cuda::kern::conv_b_vec4(g, b);
  args.ws_slice = int64_t(g.max_m) * g.gemm_n;
  std::vector<float> ws(splits > 1 ? size_t(args.ws_slice) * size_t(g.num_slots) * size_t(splits) : 0, NAN);
  args.ws = splits > 1 ? ws.data() : nullptr;
  const dim3 grid(unsigned((g.max_m + Tile::BM - 1) / Tile::BM), unsigned((g.gemm_n + Tile::BN - 1) / Tile::BN),
                  unsigned(g.num_slots * splits));
  const cudaError_t e = disco_emu::launch(grid, Tile::kThreads, smem, reinterpret_cast<const void*>(kernel),
                                          [&] { kernel(args); });
  if (e != cudaSuccess) {
    std::printf("launch of the %dx%d tile with %zu bytes of dynamic shared memory failed: %s\n", Tile::BM, Tile::BN,
                smem, cudaGetErrorName(e));
    g_launch_failed = true;
  }
  if (splits > 1)  // grid-stride kernel: one block of 32 threads covers everything
    disco_emu::launch(dim3(1), 32, [&] { disco::cuda::kern::conv_splitk_reduce_kernel<View>(args); });
}

double rel_l2(const std::vector<float>& got, const std::vector<double>& want) {
  double num = 0, den = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;  // NaN poison not overwritten
    const double d = double(got[i]) - want[i];
    num += d * d;
    den += want[i] * want[i];
  }
  return std::sqrt(num / (den > 0 ? den : 1));
}

std::mt19937 rng(7);
std::vector<float> random_vec(int64_t n) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = u(rng);
  return v;
}
std::vector<double> to_double(const std::vector<float>& v) { return std::vector<double>(v.begin(), v.end()); }

const char* math_name(ConvMath m) { return m == ConvMath::FP32 ? "FP32" : m == ConvMath::TF32 ? "TF32" : "BF16"; }

// fprop (+ bias), dgrad (every phase), wgrad, wgrad accumulating onto its own result.
template <ConvMath MATH, class Tile>
void check(const char* name, const Conv2dProblem& p, int splits) {
  const auto t0 = std::chrono::steady_clock::now();
  g_launch_failed = false;
  const auto x = random_vec(p.x_size()), w = random_vec(p.w_size());
  const auto dy = random_vec(p.y_size()), bias = random_vec(p.K);
  const auto y_ref = ref::conv2d_fprop(p, to_double(x), to_double(w), to_double(bias));
  const auto dx_ref = ref::conv2d_dgrad(p, to_double(dy), to_double(w));
  const auto dw_ref = ref::conv2d_wgrad(p, to_double(x), to_double(dy));
  std::vector<double> dw2_ref(dw_ref);
  for (auto& v : dw2_ref) v *= 2;

  std::vector<float> y(size_t(p.y_size()), NAN), dx(size_t(p.x_size()), NAN), dw(size_t(p.w_size()), NAN);
  run_conv<FpropView, MATH, Tile>(make_conv_gemm_params(p, ConvKind::Fprop), x.data(), w.data(), y.data(), bias.data(),
                                  false, splits);
  for (int base = 0; base < dgrad_num_phases(p); base += kMaxPhasesPerLaunch)
    run_conv<DgradView, MATH, Tile>(make_conv_gemm_params(p, ConvKind::Dgrad, base), dy.data(), w.data(), dx.data(),
                                    nullptr, false, splits);
  run_conv<WgradView, MATH, Tile>(make_conv_gemm_params(p, ConvKind::Wgrad), dy.data(), x.data(), dw.data(), nullptr,
                                  false, splits);
  std::vector<float> dw2 = dw;
  run_conv<WgradView, MATH, Tile>(make_conv_gemm_params(p, ConvKind::Wgrad), dy.data(), x.data(), dw2.data(), nullptr,
                                  true, splits);

  const double tol = MATH == ConvMath::FP32 ? 1e-5 : 5e-3;
  const double err[4] = {rel_l2(y, y_ref), rel_l2(dx, dx_ref), rel_l2(dw, dw_ref), rel_l2(dw2, dw2_ref)};
  bool ok = !g_launch_failed;
  for (double e : err) ok = ok && e <= tol;  // also false for NaN / inf
  if (!ok) ++g_failures;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  char tile[32];
  std::snprintf(tile, sizeof tile, "%dx%d%s", Tile::BM, Tile::BN, Tile::kPairedA ? "p" : "");
  std::printf("%-4s %-22s %s tile=%-8s splits=%d  fprop %.2e dgrad %.2e wgrad %.2e wgrad+= %.2e  (tol %.0e, %.1fs)\n",
              ok ? "ok" : "FAIL", name, math_name(MATH), tile, splits, err[0], err[1], err[2], err[3], tol, secs);
  std::fflush(stdout);
}

// ---- channels-last BF16 fprop (kernels/conv2d_nhwc.cuh) ---------------------------------------------
float bf16_round(float v) { return __bfloat162float(__float2bfloat16_rn(v)); }
uint16_t bf16_bits(__nv_bfloat16 h) {
  uint16_t b;
  std::memcpy(&b, &h, 2);
  return b;
}
// cvt.rna.tf32.f32 (what the emulated TF32 mma applies to its inputs): 10 mantissa bits, ties away.
float tf32_round(float v) {
  uint32_t b;
  std::memcpy(&b, &v, 4);
  b = (b + 0x1000u) & 0xffffe000u;
  std::memcpy(&v, &b, 4);
  return v;
}
// A packed element against the float it was packed from: BF16 rounded to nearest even, FP32 as is.
bool packed_as(__nv_bfloat16 got, float want) { return bf16_bits(got) == bf16_bits(__float2bfloat16_rn(want)); }
bool packed_as(float got, float want) {  // TF32 packs: rounded to TF32 (cvt.rna), low 13 bits zero
  const float r = tf32_round(want);
  return std::memcmp(&got, &r, 4) == 0;
}
template <class T>
T pack_poison() {
  if constexpr (std::is_same_v<T, float>) return NAN;
  else return __ushort_as_bfloat16(0xffff);  // a BF16 NaN
}

// The pack kernels against the packed layouts of convidx::NhwcFpropT / NhwcDgradT<CH>: every
// element is its source, bit for bit (BF16: rounded to nearest even), every padded channel
// zero, nothing else written (the buffers start as NaN). fprop packs x and w (xp, wp); dgrad dy
// and w (dyp, wd). T: __nv_bfloat16 (8 channels a chunk) or float (4).
template <class T>
bool check_pack(const Conv2dProblem& p, bool dgrad, std::vector<T>& ap, std::vector<T>& bp, const std::vector<float>& a,
                const std::vector<float>& w) {
  constexpr int CH = int(16 / sizeof(T));
  using Fprop = NhwcFpropT<CH>;
  using Dgrad = NhwcDgradT<CH>;
  using disco::cuda::kern::kPackCh;
  using disco::cuda::kern::kPackPix;
  using disco::cuda::kern::kPackThreads;
  const int ch = dgrad ? p.K : p.C, chp = nhwc_padded_channels(ch, CH);
  const int HW = dgrad ? p.P * p.Q : p.H * p.W, RS = p.R * p.S;
  ap.assign(size_t(p.N) * HW * chp, pack_poison<T>());
  bp.assign(size_t(dgrad ? p.C : p.K) * RS * chp, pack_poison<T>());
  disco_emu::launch(dim3(unsigned((HW + kPackPix - 1) / kPackPix), unsigned((chp + kPackCh - 1) / kPackCh), unsigned(p.N)),
                    kPackThreads, [&] { disco::cuda::kern::pack_nhwc_kernel<T>(a.data(), ap.data(), ch, chp, HW); });
  const int64_t wtotal = int64_t(bp.size());
  disco_emu::launch(dim3(3), 64, [&] {  // a grid smaller than the work: the grid-stride loop
    if (dgrad)
      disco::cuda::kern::pack_weights_dgrad_nhwc_kernel<T>(w.data(), bp.data(), p.K, chp, p.C, RS, wtotal);
    else
      disco::cuda::kern::pack_weights_nhwc_kernel<T>(w.data(), bp.data(), p.C, chp, RS, wtotal);
  });
  const auto same = [](T got, float want) { return packed_as(got, want); };
  const int H = dgrad ? p.P : p.H, W = dgrad ? p.Q : p.W;
  bool ok = true;
  for (int n = 0; n < p.N; ++n)
    for (int c = 0; c < chp; ++c)
      for (int h = 0; h < H; ++h)
        for (int x = 0; x < W; ++x) {
          const float want = c < ch ? a[size_t(((int64_t(n) * ch + c) * H + h) * W + x)] : 0.f;
          const int64_t o = dgrad ? Dgrad::dyp_off(p, n, c, h, x) : Fprop::xp_off(p, n, c, h, x);
          ok = ok && same(ap[size_t(o)], want);
        }
  for (int k = 0; k < (dgrad ? nhwc_padded_channels(p.K, CH) : p.K); ++k)
    for (int c = 0; c < (dgrad ? p.C : nhwc_padded_channels(p.C, CH)); ++c)
      for (int r = 0; r < p.R; ++r)
        for (int s = 0; s < p.S; ++s) {
          const bool real = k < p.K && c < p.C;
          const float want = real ? w[size_t(((int64_t(k) * p.C + c) * p.R + r) * p.S + s)] : 0.f;
          const int64_t o = dgrad ? Dgrad::wd_off(p, k, c, r, s) : Fprop::wp_off(p, k, c, r, s);
          ok = ok && same(bp[size_t(o)], want);
        }
  return ok;
}

// One launch of a channels-last kernel (`kernel`, Tile) on args (grid: g's M x N x slots x
// splits, the shared-memory opt-in as the launcher does it), then with splits > 1 the split-K
// reduction with the view Red (same workspace layout as the NCHW kernels). A failed launch
// sets g_launch_failed.
template <class Red, class Tile, class Kernel>
void launch_nhwc(Kernel kernel, const disco::cuda::kern::NhwcConvArgs& args) {
  const ConvGemmParams& g = args.g;
  constexpr size_t smem = disco::cuda::kern::conv_nhwc_smem_bytes<Tile>();
  if (smem > disco::cuda::kern::kSmemDefaultLimit &&
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)) != cudaSuccess)
    g_launch_failed = true;
  const dim3 grid(unsigned((g.max_m + Tile::BM - 1) / Tile::BM), unsigned((g.gemm_n + Tile::BN - 1) / Tile::BN),
                  unsigned(g.num_slots * args.splits));
  if (disco_emu::launch(grid, Tile::kThreads, smem, reinterpret_cast<const void*>(kernel), [&] { kernel(args); }) !=
      cudaSuccess)
    g_launch_failed = true;
  if (args.splits > 1) {
    ConvKernelArgs r{};
    r.g = g;
    r.out = args.out;
    r.bias = args.bias;
    r.ws = args.ws;
    r.ws_slice = args.ws_slice;
    r.splits = args.splits;
    r.accumulate = args.accumulate;
    disco_emu::launch(dim3(1), 32, [&] { disco::cuda::kern::conv_splitk_reduce_kernel<Red>(r); });
  }
}

// The verdict of a channels-last case: run(false) into `out` against the double reference
// `want` (5e-3) and the double result of the rounded operands `want_rounded` (1e-5), then
// run(true) (accumulating) against twice the latter; prints one line, counts a failure.
template <class Run>
void finish_nhwc(const char* name, const char* math, const char* dir, int bm, int bn, int splits, bool pack_ok,
                 std::chrono::steady_clock::time_point t0, const std::vector<float>& out,
                 const std::vector<double>& want, const std::vector<double>& want_rounded, Run run) {
  run(false);
  const double err = rel_l2(out, want), err_rounded = rel_l2(out, want_rounded);
  run(true);
  std::vector<double> want2(want_rounded);
  for (auto& v : want2) v *= 2;
  const double err_acc = rel_l2(out, want2);
  const bool ok = pack_ok && !g_launch_failed && err <= 5e-3 && err_rounded <= 1e-5 && err_acc <= 1e-5;
  if (!ok) ++g_failures;
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%-4s %-22s %s tile=%dx%dnhwc splits=%d  pack %s %s %.2e, vs rounded operands %.2e, += %.2e  (tol "
              "5e-3 / 1e-5, %.1fs)\n",
              ok ? "ok" : "FAIL", name, math, bm, bn, splits, pack_ok ? "exact" : "WRONG", dir, err, err_rounded, err_acc,
              secs);
  std::fflush(stdout);
}

// Pack, the kernel (every dgrad phase launch, plus the split-K reduction), against the double
// reference (5e-3) and against the double convolution of the rounded operands (BF16, or TF32
// as the mma rounds them; 1e-5: only the FP32 summation order differs), fprop with bias; then
// once more accumulating onto that output. T = float: the TF32 kernel on FP32 packs.
template <class NView, class Tile, class T = __nv_bfloat16>
int check_nhwc(const char* name, const Conv2dProblem& p, int splits) {
  using disco::cuda::kern::NhwcConvArgs;
  using Out = typename NView::Out;
  constexpr bool dgrad = std::is_same_v<Out, DgradView>;
  constexpr bool tf32 = std::is_same_v<T, float>;
  const auto t0 = std::chrono::steady_clock::now();
  g_launch_failed = false;
  const auto x = random_vec(p.x_size()), w = random_vec(p.w_size()), dy = random_vec(p.y_size());
  const auto bias = random_vec(p.K);
  const std::vector<float>& a = dgrad ? dy : x;
  std::vector<float> ar(a), wr(w);
  for (auto& v : ar) v = tf32 ? tf32_round(v) : bf16_round(v);
  for (auto& v : wr) v = tf32 ? tf32_round(v) : bf16_round(v);
  const auto want = dgrad ? ref::conv2d_dgrad(p, to_double(dy), to_double(w))
                          : ref::conv2d_fprop(p, to_double(x), to_double(w), to_double(bias));
  const auto want_rounded = dgrad ? ref::conv2d_dgrad(p, to_double(ar), to_double(wr))
                                  : ref::conv2d_fprop(p, to_double(ar), to_double(wr), to_double(bias));
  std::vector<T> ap, bp;
  const bool pack_ok = check_pack<T>(p, dgrad, ap, bp, a, w);

  std::vector<float> out(want.size(), NAN);
  const auto run = [&](bool accumulate) {
    const int launches = dgrad ? dgrad_num_phases(p) : 1;
    for (int base = 0; base < launches; base += kMaxPhasesPerLaunch) {
      const auto g = make_conv_gemm_params(p, dgrad ? ConvKind::Dgrad : ConvKind::Fprop, base);
      std::vector<float> ws(splits > 1 ? size_t(g.max_m) * g.gemm_n * g.num_slots * splits : 0, NAN);
      NhwcConvArgs args{};
      args.g = g;
      args.a = ap.data();
      args.b = bp.data();
      args.out = out.data();
      args.bias = dgrad ? nullptr : bias.data();
      args.ws = splits > 1 ? ws.data() : nullptr;
      args.ws_slice = int64_t(g.max_m) * g.gemm_n;
      args.splits = splits;
      args.accumulate = accumulate ? 1 : 0;
      launch_nhwc<Out, Tile>(disco::cuda::kern::conv_nhwc_kernel<NView, Tile, T>, args);
    }
  };
  finish_nhwc(name, tf32 ? "TF32" : "BF16", dgrad ? "dgrad" : "fprop", Tile::BM, Tile::BN, splits, pack_ok, t0, out, want,
              want_rounded, run);
  return 1;
}

// The channels-last weight gradient (conv_wgrad_nhwc_kernel, convidx::NhwcWgradT): dy and x
// packed by the pack kernel (checked bit for bit by check_pack), then the kernel (plus the
// split-K reduction with the NhwcWgradT view) against the double reference (5e-3) and the
// double wgrad of the rounded operands (BF16, or TF32 for T = float; 1e-5); then accumulating
// onto that result.
template <class Tile, class T = __nv_bfloat16>
int check_nhwc_wgrad(const char* name, const Conv2dProblem& p, int splits) {
  using disco::cuda::kern::NhwcConvArgs;
  using V = disco::convidx::NhwcWgradT<int(16 / sizeof(T))>;
  constexpr bool tf32 = std::is_same_v<T, float>;
  const auto t0 = std::chrono::steady_clock::now();
  g_launch_failed = false;
  const auto x = random_vec(p.x_size()), w = random_vec(p.w_size()), dy = random_vec(p.y_size());
  std::vector<float> xr(x), dyr(dy);
  for (auto& v : xr) v = tf32 ? tf32_round(v) : bf16_round(v);
  for (auto& v : dyr) v = tf32 ? tf32_round(v) : bf16_round(v);
  const auto want = ref::conv2d_wgrad(p, to_double(x), to_double(dy));
  const auto want_rounded = ref::conv2d_wgrad(p, to_double(xr), to_double(dyr));
  std::vector<T> dyp, xp, unused;
  const bool pack_ok = check_pack<T>(p, true, dyp, unused, dy, w) && check_pack<T>(p, false, xp, unused, x, w);

  auto g = make_conv_gemm_params(p, ConvKind::Wgrad);
  g.gemm_n = V::gemm_n(p);  // as the launcher: the padded (r, s, c) columns
  std::vector<float> out(want.size(), NAN);
  const auto run = [&](bool accumulate) {
    std::vector<float> ws(splits > 1 ? size_t(g.max_m) * g.gemm_n * splits : 0, NAN);
    NhwcConvArgs args{};
    args.g = g;
    args.a = dyp.data();
    args.b = xp.data();
    args.out = out.data();
    args.ws = splits > 1 ? ws.data() : nullptr;
    args.ws_slice = int64_t(g.max_m) * g.gemm_n;
    args.splits = splits;
    args.accumulate = accumulate ? 1 : 0;
    launch_nhwc<V, Tile>(disco::cuda::kern::conv_wgrad_nhwc_kernel<Tile, T>, args);
  };
  finish_nhwc(name, tf32 ? "TF32" : "BF16", "wgrad", Tile::BM, Tile::BN, splits, pack_ok, t0, out, want, want_rounded,
              run);
  return 1;
}

enum Maths : unsigned { kFP32 = 1, kTF32 = 2, kBF16 = 4, kAllMaths = 7 };

// Returns the number of cases run. Tiles with the paired A layout run TF32 / BF16 only (FP32 has
// no paired layout and the launcher instantiates none).
template <class Tile>
int run_maths(const char* name, const Conv2dProblem& p, int splits, unsigned maths) {
  if (Tile::kPairedA) maths &= kTF32 | kBF16;
  if (maths & kFP32) check<ConvMath::FP32, Tile>(name, p, splits);
  if (maths & kTF32) check<ConvMath::TF32, Tile>(name, p, splits);
  if (maths & kBF16) check<ConvMath::BF16, Tile>(name, p, splits);
  return int(maths & kFP32 ? 1 : 0) + int(maths & kTF32 ? 1 : 0) + int(maths & kBF16 ? 1 : 0);
}

Conv2dProblem problem(int N, int C, int H, int W, int K, int R, int S, int sh, int sw, int ph, int pw, int dh, int dw) {
  Conv2dProblem p;
  p.N = N; p.C = C; p.H = H; p.W = W; p.K = K; p.R = R; p.S = S;
  p.stride_h = sh; p.stride_w = sw;
  p.pad_h = ph; p.pad_w = pw;
  p.dil_h = dh; p.dil_w = dw;
  p.compute_output_size();
  return p;
}

// Tile / split combinations of a case.
enum Runs : unsigned {
  kSmall1 = 1, kSmallSplit = 2, kLarge1 = 4, kLargeSplit = 8, kNarrow1 = 16, kNarrowSplit = 32,
  kPaired1 = 64, kPairedSplit = 128,  // the large tile with the paired A layout (TF32 / BF16)
  kAll = 255
};

struct Case {
  const char* name;
  Conv2dProblem p;
  unsigned reduced;                // tiles / splits of the default (ctest) run; --full: kAll
  unsigned reduced_maths = kAllMaths;  // math modes of the default run; --full: all
};

}  // namespace

int main(int argc, char** argv) {
  bool full = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--full") == 0) {
      full = true;
    } else {
      std::fprintf(stderr,
                   "usage: %s [--full]\n"
                   "  default: reduced case list (ctest); --full: every problem x tile x split\n",
                   argv[0]);
      return std::strcmp(argv[i], "--help") == 0 || std::strcmp(argv[i], "-h") == 0 ? 0 : 2;
    }
  }
  // Each problem stands for one shape class. The reduced list runs every class at least once
  // (all three math modes each time), all tiles and split-K among them; the cheap problems
  // get a second tile / split combination.
  const Case cases[] = {
      {"3->32 k4s2p1 @16 b2", make_conv2d_problem(2, 3, 16, 16, 32, 4, 4, 2, 1), kSmall1 | kNarrow1},       // model's first layer
      {"70->25 k4s2p1 @4 b1", make_conv2d_problem(1, 70, 4, 4, 25, 4, 4, 2, 1), kSmallSplit | kNarrowSplit},    // deep Kred, tiny map
      {"convT 40->9 2x2->4x4", make_conv_transpose2d_problem(2, 40, 2, 2, 9, 4, 4, 2, 1, 0), kLarge1 | kPaired1},
      {"convT op 5->7", make_conv_transpose2d_problem(1, 5, 3, 5, 7, 3, 3, 2, 1, 1),
       kSmall1 | kLarge1 | kPaired1},  // output padding
      {"odd 5->6 k3 7x9", problem(2, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1), kSmall1 | kNarrow1},
      {"1x1 s2", problem(2, 8, 9, 9, 12, 1, 1, 2, 2, 0, 0, 1, 1),
       kSmall1 | kLargeSplit | kPairedSplit},  // dgrad phases without taps (Kred = 0), also split
      {"dil2", problem(1, 4, 11, 10, 5, 3, 3, 1, 1, 2, 2, 2, 2), kSmall1},
      {"s3 k5", problem(2, 3, 13, 12, 4, 5, 5, 3, 3, 2, 2, 1, 1), kSmall1},
      {"s(2,1) k(3,2)", problem(1, 6, 9, 6, 5, 3, 2, 2, 1, 1, 0, 1, 1), kSmall1},
      {"s5 25 phases", problem(1, 3, 12, 11, 4, 3, 3, 5, 5, 1, 1, 1, 1),
       kSmall1 | kSmallSplit},  // 2 dgrad launches, also split
      // several blocks in m and n, long dgrad reduction (K R S = 1260). The costliest case
      // (TF32 about 14 s, BF16 6 s): by default FP32 and TF32 only -- BF16 on the large tile
      // is covered by the two convT problems and 1x1 s2.
      {"130->140 k3 @5 b2", problem(2, 130, 5, 5, 140, 3, 3, 1, 1, 1, 1, 1, 1), kLargeSplit, kFP32 | kTF32},
  };
  int ncases = 0;
  const auto t0 = std::chrono::steady_clock::now();
  for (const Case& c : cases) {
    const unsigned runs = full ? unsigned(kAll) : c.reduced;
    const unsigned maths = full ? unsigned(kAllMaths) : c.reduced_maths;
    if (runs & kSmall1) ncases += run_maths<ConvTileSmall>(c.name, c.p, 1, maths);
    if (runs & kSmallSplit) ncases += run_maths<ConvTileSmall>(c.name, c.p, 3, maths);
    if (runs & kLarge1) ncases += run_maths<ConvTileLarge>(c.name, c.p, 1, maths);
    if (runs & kLargeSplit) ncases += run_maths<ConvTileLarge>(c.name, c.p, 2, maths);
    if (runs & kNarrow1) ncases += run_maths<ConvTileNarrow>(c.name, c.p, 1, maths);
    if (runs & kNarrowSplit) ncases += run_maths<ConvTileNarrow>(c.name, c.p, 3, maths);
    if (runs & kPaired1) ncases += run_maths<ConvTileLargePaired>(c.name, c.p, 1, maths);
    if (runs & kPairedSplit) ncases += run_maths<ConvTileLargePaired>(c.name, c.p, 2, maths);
  }
  // the channels-last BF16 kernels, fprop, dgrad and wgrad: 3 channels (one chunk a tap), 70 (9 chunks:
  // slices across taps, a partial last chunk), odd maps, dilation, stride 3 (9 phases), 25
  // phases (2 launches), phases without taps, several blocks in m and n
  using disco::cuda::kern::NhwcTileLarge;
  using disco::cuda::kern::NhwcTileSmall;
  const Conv2dProblem first = make_conv2d_problem(2, 3, 16, 16, 32, 4, 4, 2, 1);
  const Conv2dProblem deep = make_conv2d_problem(1, 70, 4, 4, 25, 4, 4, 2, 1);
  const Conv2dProblem odd = problem(2, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1);
  const Conv2dProblem dil = problem(1, 4, 11, 10, 5, 3, 3, 1, 1, 2, 2, 2, 2);
  const Conv2dProblem s3 = problem(2, 3, 13, 12, 4, 5, 5, 3, 3, 2, 2, 1, 1);
  const Conv2dProblem s5 = problem(1, 3, 12, 11, 4, 3, 3, 5, 5, 1, 1, 1, 1);
  const Conv2dProblem s2k1 = problem(2, 8, 9, 9, 12, 1, 1, 2, 2, 0, 0, 1, 1);
  const Conv2dProblem big = problem(2, 130, 5, 5, 140, 3, 3, 1, 1, 1, 1, 1, 1);
  const Conv2dProblem convt = make_conv_transpose2d_problem(2, 40, 2, 2, 9, 4, 4, 2, 1, 0);
  ncases += check_nhwc<NhwcFprop, NhwcTileSmall>("3->32 k4s2p1 @16 b2", first, 1);
  ncases += check_nhwc<NhwcDgrad, NhwcTileSmall>("3->32 k4s2p1 @16 b2", first, 2);
  ncases += check_nhwc<NhwcFprop, NhwcTileSmall>("70->25 k4s2p1 @4 b1", deep, 3);
  ncases += check_nhwc<NhwcDgrad, NhwcTileLarge>("70->25 k4s2p1 @4 b1", deep, 1);
  ncases += check_nhwc<NhwcFprop, NhwcTileLarge>("odd 5->6 k3 7x9", odd, 1);
  ncases += check_nhwc<NhwcDgrad, NhwcTileSmall>("odd 5->6 k3 7x9", odd, 1);
  ncases += check_nhwc<NhwcFprop, NhwcTileSmall>("dil2", dil, 1);
  ncases += check_nhwc<NhwcDgrad, NhwcTileSmall>("dil2", dil, 2);
  ncases += check_nhwc<NhwcFprop, NhwcTileSmall>("s3 k5", s3, 2);
  ncases += check_nhwc<NhwcDgrad, NhwcTileSmall>("s3 k5", s3, 1);
  ncases += check_nhwc<NhwcDgrad, NhwcTileSmall>("s5 25 phases", s5, 2);
  ncases += check_nhwc<NhwcDgrad, NhwcTileSmall>("1x1 s2", s2k1, 1);
  ncases += check_nhwc<NhwcDgrad, NhwcTileLarge>("convT 40->9 2x2->4x4", convt, 2);
  ncases += check_nhwc<NhwcFprop, NhwcTileLarge>("130->140 k3 @5 b2", big, 2);
  // TF32 on FP32 packs (4 channels a chunk): 3 -> 4, 70 -> 72, 5 -> 8, 130 -> 132 channels
  ncases += check_nhwc<NhwcFprop32, NhwcTileSmall, float>("3->32 k4s2p1 @16 b2", first, 2);
  ncases += check_nhwc<NhwcDgrad32, NhwcTileSmall, float>("3->32 k4s2p1 @16 b2", first, 1);
  ncases += check_nhwc<NhwcFprop32, NhwcTileLarge, float>("70->25 k4s2p1 @4 b1", deep, 1);
  ncases += check_nhwc<NhwcDgrad32, NhwcTileSmall, float>("70->25 k4s2p1 @4 b1", deep, 3);
  ncases += check_nhwc<NhwcFprop32, NhwcTileSmall, float>("odd 5->6 k3 7x9", odd, 1);
  ncases += check_nhwc<NhwcDgrad32, NhwcTileLarge, float>("s3 k5", s3, 2);
  ncases += check_nhwc<NhwcDgrad32, NhwcTileSmall, float>("s5 25 phases", s5, 1);
  ncases += check_nhwc_wgrad<NhwcTileSmall>("3->32 k4s2p1 @16 b2", first, 4);
  ncases += check_nhwc_wgrad<NhwcTileLarge>("70->25 k4s2p1 @4 b1", deep, 1);
  ncases += check_nhwc_wgrad<NhwcTileSmall>("odd 5->6 k3 7x9", odd, 3);
  ncases += check_nhwc_wgrad<NhwcTileSmall>("dil2", dil, 1);
  ncases += check_nhwc_wgrad<NhwcTileSmall>("s3 k5", s3, 2);
  ncases += check_nhwc_wgrad<NhwcTileLarge>("convT 40->9 2x2->4x4", convt, 2);
  // TF32 wgrad (FP32 packs; scalar fragment loads): 3 -> 4, 70 -> 72, 5 -> 8, 9 channels -> 12
  ncases += check_nhwc_wgrad<NhwcTileSmall, float>("3->32 k4s2p1 @16 b2", first, 4);
  ncases += check_nhwc_wgrad<NhwcTileLarge, float>("70->25 k4s2p1 @4 b1", deep, 1);
  ncases += check_nhwc_wgrad<NhwcTileSmall, float>("odd 5->6 k3 7x9", odd, 3);
  ncases += check_nhwc_wgrad<NhwcTileLarge, float>("convT 40->9 2x2->4x4", convt, 2);
  ncases += check_nhwc_wgrad<NhwcTileSmall, float>("dil2", dil, 1);
  // the 64 x 64-warp tiles: 256x128 (8 warps) with two row blocks (the second partial) and two
  // column blocks in fprop / dgrad, 140 of its 256 rows in wgrad; the 4-warp 128x128
  using disco::cuda::kern::NhwcTileQuad;
  using disco::cuda::kern::NhwcTileWide;
  const Conv2dProblem wide_f = problem(3, 20, 12, 12, 136, 3, 3, 1, 1, 1, 1, 1, 1);  // fprop M 432, N 136
  const Conv2dProblem wide_d = problem(3, 136, 20, 20, 24, 4, 4, 2, 2, 1, 1, 1, 1);  // dgrad M 300 a phase, N 136
  ncases += check_nhwc<NhwcFprop, NhwcTileWide>("20->136 k3 @12 b3", wide_f, 1);
  ncases += check_nhwc<NhwcFprop32, NhwcTileWide, float>("20->136 k3 @12 b3", wide_f, 2);
  ncases += check_nhwc<NhwcDgrad, NhwcTileWide>("136->24 k4s2p1 @20 b3", wide_d, 2);
  ncases += check_nhwc<NhwcDgrad32, NhwcTileWide, float>("convT 40->9 2x2->4x4", convt, 1);
  ncases += check_nhwc_wgrad<NhwcTileWide>("130->140 k3 @5 b2", big, 2);
  ncases += check_nhwc_wgrad<NhwcTileWide, float>("130->140 k3 @5 b2", big, 1);
  if (full) {
    ncases += check_nhwc_wgrad<NhwcTileWide>("136->24 k4s2p1 @20 b3", wide_d, 2);
    ncases += check_nhwc<NhwcDgrad32, NhwcTileWide, float>("136->24 k4s2p1 @20 b3", wide_d, 1);
  }
  ncases += check_nhwc<NhwcFprop, NhwcTileQuad>("130->140 k3 @5 b2", big, 2);
  ncases += check_nhwc<NhwcFprop32, NhwcTileQuad, float>("odd 5->6 k3 7x9", odd, 1);
  ncases += check_nhwc<NhwcDgrad, NhwcTileQuad>("convT 40->9 2x2->4x4", convt, 1);
  ncases += check_nhwc<NhwcDgrad32, NhwcTileQuad, float>("s3 k5", s3, 1);
  ncases += check_nhwc_wgrad<NhwcTileQuad>("70->25 k4s2p1 @4 b1", deep, 1);
  ncases += check_nhwc_wgrad<NhwcTileQuad, float>("convT 40->9 2x2->4x4", convt, 2);
  if (full) {
    ncases += check_nhwc_wgrad<NhwcTileLarge, float>("130->140 k3 @5 b2", big, 1);
    ncases += check_nhwc_wgrad<NhwcTileLarge>("130->140 k3 @5 b2", big, 2);
    ncases += check_nhwc<NhwcFprop, NhwcTileLarge>("3->32 k4s2p1 @16 b2", first, 2);
    ncases += check_nhwc<NhwcFprop, NhwcTileSmall>("130->140 k3 @5 b2", big, 1);
    ncases += check_nhwc<NhwcDgrad, NhwcTileLarge>("130->140 k3 @5 b2", big, 2);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("%s: %d of %d cases failed (%s list, %.0fs)\n", g_failures ? "FAILED" : "PASSED", g_failures, ncases,
              full ? "full" : "reduced", secs);
  return g_failures ? 1 : 0;
}
