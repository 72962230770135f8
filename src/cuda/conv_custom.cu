// disco::cuda convolutions: instantiations of the implicit-GEMM kernel
// (kernels/conv2d_igemm.cuh) and the public conv2d_fprop / dgrad / wgrad entry points,
// which dispatch to these kernels (ConvAlgo::Custom) or to cuDNN (cudnn_conv.cpp).
// 3 directions x 3 math modes x 2 tile shapes = 18 kernels + 3 split-K reductions.
#include <algorithm>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/problem/conv2d_index.hpp"
#include "internal.hpp"
#include "kernels/conv2d_igemm.cuh"

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

template <class View, ConvMath MATH, class Tile>
void launch_tile(const kern::ConvKernelArgs& args, dim3 grid) {
  kern::conv_igemm_kernel<View, MATH, Tile><<<grid, Tile::kThreads, 0, detail::stream()>>>(args);
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

struct LaunchPlan {
  bool large = false;
  int bm = 64, bn = 64, bk = 16;
  int splits = 1;
};

// Tile shape and split-K factor for one launch. Large tiles when they alone give every SM a
// block; split the reduction when the output tiles cannot fill the GPU twice over.
LaunchPlan plan_launch(const convidx::ConvGemmParams& g) {
  const int sms = device_sm_count();
  LaunchPlan pl;
  auto tiles_for = [&](int bm, int bn) {
    return int64_t((g.max_m + bm - 1) / bm) * ((g.gemm_n + bn - 1) / bn) * g.num_slots;
  };
  pl.large = tiles_for(kern::ConvTileLarge::BM, kern::ConvTileLarge::BN) >= sms;
  pl.bm = pl.large ? kern::ConvTileLarge::BM : kern::ConvTileSmall::BM;
  pl.bn = pl.large ? kern::ConvTileLarge::BN : kern::ConvTileSmall::BN;
  pl.bk = pl.large ? kern::ConvTileLarge::BK : kern::ConvTileSmall::BK;
  const int64_t tiles = tiles_for(pl.bm, pl.bn);
  const int64_t ktiles = (g.max_kred + pl.bk - 1) / pl.bk;
  if (tiles < 2 * sms && ktiles >= 8) {
    int64_t s = (2 * sms + tiles - 1) / tiles;
    s = std::min<int64_t>(s, ktiles / 4);
    s = std::min<int64_t>(s, 64);
    // workspace cap: 256 MiB of partials
    const int64_t slice = int64_t(g.max_m) * g.gemm_n * g.num_slots;
    const int64_t cap = (int64_t(256) << 20) / (4 * std::max<int64_t>(slice, 1));
    s = std::min<int64_t>(s, cap);
    s = std::min<int64_t>(s, 65535 / std::max(g.num_slots, 1));
    pl.splits = int(std::max<int64_t>(s, 1));
  }
  return pl;
}

template <class View>
void run_custom_launch(const convidx::ConvGemmParams& g, const float* a, const float* b, float* out,
                       const float* bias, bool accumulate, ConvMath math) {
  if (g.max_m <= 0 || g.gemm_n <= 0 || g.num_slots <= 0) return;
  const LaunchPlan pl = plan_launch(g);
  kern::ConvKernelArgs args{};
  args.g = g;
  args.a_src = a;
  args.b_src = b;
  args.out = out;
  args.bias = bias;
  args.accumulate = accumulate ? 1 : 0;
  args.splits = pl.splits;
  args.ws_slice = int64_t(g.max_m) * g.gemm_n;
  detail::Scratch ws(pl.splits > 1 ? sizeof(float) * size_t(args.ws_slice) * g.num_slots * pl.splits : 0);
  args.ws = ws.as<float>();
  const int64_t gx = (g.max_m + pl.bm - 1) / pl.bm, gy = (g.gemm_n + pl.bn - 1) / pl.bn;
  DISCO_CHECK(gy <= 65535, "conv (custom): output has too many channels (", g.gemm_n, ") for the grid");
  DISCO_CHECK(gx < (int64_t(1) << 31), "conv (custom): GEMM M too large");
  const dim3 grid(unsigned(gx), unsigned(gy), unsigned(g.num_slots * pl.splits));
  if (pl.large)
    launch_math<View, kern::ConvTileLarge>(math, args, grid);
  else
    launch_math<View, kern::ConvTileSmall>(math, args, grid);
  if (pl.splits > 1) {
    const int64_t total = args.ws_slice * g.num_slots;
    kern::conv_splitk_reduce_kernel<View><<<detail::grid_for(total), kern::kBlock, 0, detail::stream()>>>(args);
    DISCO_CUDA_CHECK_LAUNCH();
  }
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

void run_custom(ConvKind kind, const Conv2dProblem& p, const float* a, const float* b, float* out, const float* bias,
                bool accumulate, MathMode mode) {
  const ConvMath math = to_math(mode);
  switch (kind) {
    case ConvKind::Fprop:
      run_custom_launch<convidx::FpropView>(convidx::make_conv_gemm_params(p, kind), a, b, out, bias, accumulate, math);
      break;
    case ConvKind::Wgrad:
      run_custom_launch<convidx::WgradView>(convidx::make_conv_gemm_params(p, kind), a, b, out, nullptr, accumulate,
                                            math);
      break;
    case ConvKind::Dgrad:
      for (int base = 0; base < convidx::dgrad_num_phases(p); base += convidx::kMaxPhasesPerLaunch)
        run_custom_launch<convidx::DgradView>(convidx::make_conv_gemm_params(p, kind, base), a, b, out, nullptr,
                                              accumulate, math);
      break;
  }
}

}  // namespace

void conv2d_fprop(const Conv2dProblem& p, const float* x, const float* w, const float* bias, float* y, ConvAlgo algo,
                  MathMode mode) {
  check_problem(p, "conv2d_fprop");
  if (algo == ConvAlgo::Custom) {
    run_custom(ConvKind::Fprop, p, x, w, y, bias, false, mode);
  } else {
    detail::cudnn_conv_f32(ConvDir::Fprop, p, x, w, y, false, mode);
    if (bias) add_channel_bias(y, bias, y, p.N, p.K, int64_t(p.P) * p.Q);
  }
}

void conv2d_dgrad(const Conv2dProblem& p, const float* dy, const float* w, float* dx, bool accumulate, ConvAlgo algo,
                  MathMode mode) {
  check_problem(p, "conv2d_dgrad");
  if (algo == ConvAlgo::Custom)
    run_custom(ConvKind::Dgrad, p, dy, w, dx, nullptr, accumulate, mode);
  else
    detail::cudnn_conv_f32(ConvDir::Dgrad, p, dy, w, dx, accumulate, mode);
}

void conv2d_wgrad(const Conv2dProblem& p, const float* x, const float* dy, float* dw, bool accumulate, ConvAlgo algo,
                  MathMode mode) {
  check_problem(p, "conv2d_wgrad");
  if (algo == ConvAlgo::Custom)
    run_custom(ConvKind::Wgrad, p, dy, x, dw, nullptr, accumulate, mode);
  else
    detail::cudnn_conv_f32(ConvDir::Wgrad, p, x, dy, dw, accumulate, mode);
}

}  // namespace cuda
}  // namespace disco
