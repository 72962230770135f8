// Convolutions: disco's implicit-GEMM kernels (FP32 / TF32 / BF16) and cuDNN, fprop / dgrad /
// wgrad, against the naive double references of tests/reference/conv_ref.hpp and against each
// other, on the model's layer shapes (reduced batch) and odd shapes: 487 and 25 channels,
// batch 1, 2x2 maps, 3 input channels, 1x1, dilation, stride 3, transposed convolutions.
// Outputs are poisoned with NaN before every run; accumulation is checked on top of random
// old values.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/core/error.hpp"
#include "disco/problem/conv2d_index.hpp"
#include "reference/conv_ref.hpp"

namespace dc = disco::cuda;
using disco::Conv2dProblem;
using dtest::download;
using dtest::poisoned;
using dtest::randu;
using dtest::rel_l2;
using dtest::upload;

namespace {

struct Case {
  std::string name;
  Conv2dProblem p;
};

Conv2dProblem problem(int N, int C, int H, int W, int K, int R, int S, int sh, int sw, int ph, int pw, int dh, int dw) {
  Conv2dProblem p;
  p.N = N; p.C = C; p.H = H; p.W = W; p.K = K; p.R = R; p.S = S;
  p.stride_h = sh; p.stride_w = sw; p.pad_h = ph; p.pad_w = pw; p.dil_h = dh; p.dil_w = dw;
  p.compute_output_size();
  return p;
}

std::vector<Case> cases() {
  using disco::make_conv2d_problem;
  using disco::make_conv_transpose2d_problem;
  return {
      {"E1 conv1 3->32 k4s2p1 @32, batch 2", make_conv2d_problem(2, 3, 32, 32, 32, 4, 4, 2, 1)},
      {"E1 conv6 487->487 k4s2p1 @4, batch 3", make_conv2d_problem(3, 487, 4, 4, 487, 4, 4, 2, 1)},
      {"E2 conv6 128->25 k4s2p1 @4, batch 1", make_conv2d_problem(1, 128, 4, 4, 25, 4, 4, 2, 1)},
      {"dec1 convT 512->512 k4s2p1 2x2 -> 4x4, batch 2", make_conv_transpose2d_problem(2, 512, 2, 2, 512, 4, 4, 2, 1, 0)},
      {"dec6 convT 32->3 k4s2p1 16 -> 32, batch 2", make_conv_transpose2d_problem(2, 32, 16, 16, 3, 4, 4, 2, 1, 0)},
      {"convT with output_padding 5->7 3x5 ", make_conv_transpose2d_problem(1, 5, 3, 5, 7, 3, 3, 2, 1, 1)},
      {"2x2 map 25->487 k3s1p1, batch 1", make_conv2d_problem(1, 25, 2, 2, 487, 3, 3, 1, 1)},
      {"odd 5->6 k3s1p1 7x9, batch 2", problem(2, 5, 7, 9, 6, 3, 3, 1, 1, 1, 1, 1, 1)},
      {"1x1 stride 2 8->12 9x9", problem(2, 8, 9, 9, 12, 1, 1, 2, 2, 0, 0, 1, 1)},
      {"dilation 2 4->5 k3 p2 11x10", problem(1, 4, 11, 10, 5, 3, 3, 1, 1, 2, 2, 2, 2)},
      {"stride 3 k5 p2 3->4 13x12", problem(2, 3, 13, 12, 4, 5, 5, 3, 3, 2, 2, 1, 1)},
      {"non-square stride (2,1) k(3,2) 6->5 9x6", problem(1, 6, 9, 6, 5, 3, 2, 2, 1, 1, 0, 1, 1)},
      // large tiles (fprop: 256 tiles of 128x128) and deep split-K in wgrad (Kred = 32768)
      {"large 8->128 k4s2p1 @64, batch 32", make_conv2d_problem(32, 8, 64, 64, 128, 4, 4, 2, 1)},
      // large tiles in wgrad (M = 384, N = 6144)
      {"wide 384->384 k4s2p1 @4, batch 2", make_conv2d_problem(2, 384, 4, 4, 384, 4, 4, 2, 1)},
  };
}

struct Refs {
  std::vector<float> x, w, b, dy;
  std::vector<double> y, dx, dw;
};

Refs make_refs(const Conv2dProblem& p) {
  Refs r;
  r.x = randu(size_t(p.x_size()));
  r.w = randu(size_t(p.w_size()), -0.5f, 0.5f);
  r.b = randu(size_t(p.K));
  r.dy = randu(size_t(p.y_size()));
  const auto xd = dtest::to_double(r.x), wd = dtest::to_double(r.w), dyd = dtest::to_double(r.dy);
  r.y = disco::ref::conv2d_fprop(p, xd, wd, dtest::to_double(r.b));
  r.dx = disco::ref::conv2d_dgrad(p, dyd, wd);
  r.dw = disco::ref::conv2d_wgrad(p, xd, dyd);
  return r;
}

// Custom first; cuDNN second when built with it (the disco-vs-cuDNN comparison below reads
// outs[d][0] and outs[d][1]); Auto last: whichever of the two it picks must be right too.
std::vector<dc::ConvAlgo> algos() {
  std::vector<dc::ConvAlgo> a = {dc::ConvAlgo::Custom};
  if (dc::cudnn_available()) a.push_back(dc::ConvAlgo::Cudnn);
  a.push_back(dc::ConvAlgo::Auto);
  return a;
}

}  // namespace

TEST_CASE("convolutions match the double reference", "[cuda][conv]") {
  if (!dc::cudnn_available()) WARN("built without cuDNN: only disco's kernels are checked");
  for (const Case& c : cases()) {
    const Conv2dProblem& p = c.p;
    const Refs r = make_refs(p);
    auto x = upload(r.x), w = upload(r.w), b = upload(r.b), dy = upload(r.dy);
    for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16}) {
      const double tol = dtest::tolerance(mode);
      std::vector<std::vector<float>> outs[3];
      for (dc::ConvAlgo algo : algos()) {
        INFO(c.name << " | " << dc::to_string(mode) << " | " << dc::to_string(algo));
        auto y = poisoned(r.y.size());
        dc::conv2d_fprop(p, x.data(), w.data(), b.data(), y.data(), algo, mode);
        const auto hy = download(y);
        CHECK(rel_l2(hy, r.y) <= tol);
        auto dx = poisoned(r.dx.size());
        dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, algo, mode);
        const auto hdx = download(dx);
        CHECK(rel_l2(hdx, r.dx) <= tol);
        auto dw = poisoned(r.dw.size());
        dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, algo, mode);
        const auto hdw = download(dw);
        CHECK(rel_l2(hdw, r.dw) <= tol);
        outs[0].push_back(hy);
        outs[1].push_back(hdx);
        outs[2].push_back(hdw);
      }
      // disco against cuDNN at the same precision
      if (dc::cudnn_available()) {
        INFO(c.name << " | " << dc::to_string(mode) << " | disco vs cudnn");
        for (int d = 0; d < 3; ++d) CHECK(rel_l2(outs[d][0], outs[d][1]) <= tol);
      }
    }
  }
}

TEST_CASE("convolution gradients accumulate", "[cuda][conv]") {
  // [4]: the thin dgrad and the small-output wgrad kernels; [8]: small-output wgrad, one split
  for (const Case& c : {cases()[1], cases()[3], cases()[4], cases()[8], cases()[12]}) {
    const Conv2dProblem& p = c.p;
    const Refs r = make_refs(p);
    auto x = upload(r.x), w = upload(r.w), dy = upload(r.dy);
    const auto old_dx = randu(r.dx.size()), old_dw = randu(r.dw.size());
    std::vector<double> want_dx(r.dx), want_dw(r.dw);
    for (size_t i = 0; i < want_dx.size(); ++i) want_dx[i] += old_dx[i];
    for (size_t i = 0; i < want_dw.size(); ++i) want_dw[i] += old_dw[i];
    for (dc::ConvAlgo algo : algos())
      for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16}) {
        INFO(c.name << " | " << dc::to_string(mode) << " | " << dc::to_string(algo));
        auto dx = upload(old_dx), dw = upload(old_dw);
        dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), true, algo, mode);
        dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), true, algo, mode);
        CHECK(rel_l2(download(dx), want_dx) <= dtest::tolerance(mode));
        CHECK(rel_l2(download(dw), want_dw) <= dtest::tolerance(mode));
      }
  }
}

TEST_CASE("ConvAlgo::Auto times both implementations once and keeps the faster", "[cuda][conv][auto]") {
  const Conv2dProblem p = disco::make_conv2d_problem(3, 24, 12, 12, 40, 4, 4, 2, 1);
  auto x = upload(randu(size_t(p.x_size()))), w = upload(randu(size_t(p.w_size()))),
       dy = upload(randu(size_t(p.y_size())));
  auto y = poisoned(size_t(p.y_size())), dx = poisoned(size_t(p.x_size())), dw = poisoned(size_t(p.w_size()));
  dc::clear_conv_plans();
  const bool tune_was = dc::conv_autotune();
  for (bool tune : {false, true}) {
    INFO("tuning " << (tune ? "on" : "off"));
    dc::set_conv_autotune(tune);
    for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::BF16}) {
      dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data(), dc::ConvAlgo::Auto, mode);
      dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, dc::ConvAlgo::Auto, mode);
      dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, dc::ConvAlgo::Auto, mode);
      for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) {
        const std::string choice = dc::conv_auto_choice(dir, p, mode);
        INFO(dc::to_string(dir) << " " << dc::to_string(mode) << ": '" << choice << "'");
        if (tune && dc::cudnn_available())
          CHECK((choice == "disco" || choice == "cudnn"));  // decided, and kept
        else
          CHECK(choice.empty());  // nothing to choose from, or not allowed to time: disco's kernels
      }
    }
  }
  // a choice survives tuning being switched off, and clear_conv_plans forgets it
  dc::set_conv_autotune(false);
  dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data(), dc::ConvAlgo::Auto, dc::MathMode::FP32);
  CHECK((std::string(dc::conv_auto_choice(dc::ConvDir::Fprop, p, dc::MathMode::FP32)).empty() !=
         dc::cudnn_available()));
  dc::clear_conv_plans();
  CHECK(std::string(dc::conv_auto_choice(dc::ConvDir::Fprop, p, dc::MathMode::FP32)).empty());
  dc::set_conv_autotune(tune_was);
}

TEST_CASE("disco's FP32 convolutions are deterministic", "[cuda][conv]") {
  const Conv2dProblem p = disco::make_conv2d_problem(4, 64, 16, 16, 96, 4, 4, 2, 1);  // split-K in wgrad
  auto x = upload(randu(size_t(p.x_size()))), w = upload(randu(size_t(p.w_size()))),
       dy = upload(randu(size_t(p.y_size())));
  for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32}) {
    auto a = poisoned(size_t(p.w_size())), b = poisoned(size_t(p.w_size()));
    dc::conv2d_wgrad(p, x.data(), dy.data(), a.data(), false, dc::ConvAlgo::Custom, mode);
    dc::conv2d_wgrad(p, x.data(), dy.data(), b.data(), false, dc::ConvAlgo::Custom, mode);
    CHECK(download(a) == download(b));
  }
}

TEST_CASE("convolution argument errors throw disco::Error", "[cuda][conv]") {
  Conv2dProblem p = disco::make_conv2d_problem(1, 3, 8, 8, 4, 4, 4, 2, 1);
  p.P = 5;  // inconsistent with H
  auto x = upload(randu(size_t(p.x_size())));
  auto w = upload(randu(size_t(p.w_size())));
  auto y = poisoned(64);
  CHECK_THROWS_AS(dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data()), disco::Error);
  p.compute_output_size();
  p.K = 0;
  CHECK_THROWS_AS(dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data()), disco::Error);
}

// ---- launch plans and per-layer tuning (ConvAlgo::Custom) --------------------------------------------
namespace {
// Restores the tuning switch and forgets pinned / tuned plans when a test case ends.
// One direction of p with disco's kernels (fprop with `bias`, which may be null; dgrad / wgrad
// not accumulating) into a poisoned output, downloaded.
std::vector<float> run_custom_dir(dc::ConvDir dir, const Conv2dProblem& p, const float* x, const float* w,
                                  const float* bias, const float* dy, dc::MathMode mode) {
  if (dir == dc::ConvDir::Fprop) {
    auto y = poisoned(size_t(p.y_size()));
    dc::conv2d_fprop(p, x, w, bias, y.data(), dc::ConvAlgo::Custom, mode);
    return download(y);
  }
  if (dir == dc::ConvDir::Dgrad) {
    auto dx = poisoned(size_t(p.x_size()));
    dc::conv2d_dgrad(p, dy, w, dx.data(), false, dc::ConvAlgo::Custom, mode);
    return download(dx);
  }
  auto dw = poisoned(size_t(p.w_size()));
  dc::conv2d_wgrad(p, x, dy, dw.data(), false, dc::ConvAlgo::Custom, mode);
  return download(dw);
}
// The double reference of that direction.
const std::vector<double>& ref_of(dc::ConvDir dir, const Refs& r) {
  return dir == dc::ConvDir::Fprop ? r.y : dir == dc::ConvDir::Dgrad ? r.dx : r.dw;
}

struct PlanGuard {
  bool was = dc::conv_autotune();
  ~PlanGuard() {
    dc::set_conv_autotune(was);
    dc::clear_conv_plans();
  }
};
}  // namespace

// emu.cuda.wgmma_off runs this with DISCO_WGMMA=0 (tools/gpu_check.sh sets it when its probe of
// the wgmma kernels fails); the default entries without it.
TEST_CASE("DISCO_WGMMA=0 takes the wgmma kernels out of the tuning candidates", "[cuda][conv][wgmma_env]") {
  PlanGuard guard;
  const char* env = std::getenv("DISCO_WGMMA");
  const bool off = env != nullptr && std::string(env) == "0";
  INFO("DISCO_WGMMA=" << (env ? env : "(unset)") << ", wgmma_available() " << dc::wgmma_available());
  if (off) CHECK(!dc::wgmma_available());
  const Conv2dProblem p = disco::make_conv2d_problem(1, 40, 12, 12, 72, 3, 3, 1, 1);
  bool offered = false;
  for (int i = 0; i < dc::conv_plan_candidates(dc::ConvDir::Fprop, p); ++i) {
    dc::set_conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16, i);
    offered = offered || dc::conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16).find("wgmma") != std::string::npos;
  }
  CHECK(offered == dc::wgmma_available());
}

TEST_CASE("every launch plan tuning may pick gives the right result", "[cuda][conv][plans]") {
  PlanGuard guard;
  // Shapes with several candidates: the narrow tile (N <= 32), split-K in wgrad and in the
  // 2x2 map's fprop, a 4-phase dgrad, a transposed conv with 3 output channels, the thin
  // kernel (dgrad into 3 channels, fprop to 3 channels, with bias; its 32-column form on the
  // 32-channel fprops and the 9-channel dgrad), the small-output wgrad kernel (one split
  // writing the output, several through the split-K reduction).
  const std::vector<Case> cs = {
      {"3->32 k4s2p1 @16, batch 2", disco::make_conv2d_problem(2, 3, 16, 16, 32, 4, 4, 2, 1)},
      {"96->25 k4s2p1 @4, batch 1", disco::make_conv2d_problem(1, 96, 4, 4, 25, 4, 4, 2, 1)},
      {"convT 48->3 4x4 -> 8x8, batch 2", disco::make_conv_transpose2d_problem(2, 48, 4, 4, 3, 4, 4, 2, 1, 0)},
      {"40->72 k3s1p1 2x2, batch 1", disco::make_conv2d_problem(1, 40, 2, 2, 72, 3, 3, 1, 1)},
      {"9->3 k3s1p1 @7, batch 2 (thin fprop)", disco::make_conv2d_problem(2, 9, 7, 7, 3, 3, 3, 1, 1)},
      {"3->32 k4s2p1 @32, batch 4 (small-output wgrad, 4-16 splits)", disco::make_conv2d_problem(4, 3, 32, 32, 32, 4, 4, 2, 1)},
      {"8->40 k3s1p1 @8, batch 2 (grouped fprop and dgrad, contiguous)", disco::make_conv2d_problem(2, 8, 8, 8, 40, 3, 3, 1, 1)},
      {"40->72 k3s1p1 @12, batch 2 (256x128nhwc fprop, wgmma fprop, dgrad and wgrad; 9 wgrad k-slices: "
       "the wgmma pipelines refill stages)",
       disco::make_conv2d_problem(2, 40, 12, 12, 72, 3, 3, 1, 1)},
      {"40->48 k1s3 @18, batch 1 (wgmma dgrad with phases without taps, 128x64wgmma wgrad)",
       disco::make_conv2d_problem(1, 40, 18, 18, 48, 1, 1, 3, 0)},
  };
  // The grouped loaders ("128x128g", "64x64g", "128x32g") are candidates exactly where the
  // view has groups of four: fprop and wgrad with Q % 4 == 0, dgrad with every phase's width a
  // multiple of 4 (3->32 @16 / @32, convT 48->3, 8->40 @8; not the 4x4 / 2x2 / 7x7 maps).
  const auto groups_expected = [](dc::ConvDir dir, const Conv2dProblem& p) {
    if (dir != dc::ConvDir::Dgrad) return p.Q % 4 == 0;
    for (int ph = 0; ph < disco::convidx::dgrad_num_phases(p); ++ph)
      if (disco::convidx::make_dgrad_phase(p, ph).w.count % 4 != 0) return false;
    return true;
  };
  const auto is_grouped = [](const std::string& plan) {
    return plan.find("128x128g") != std::string::npos || plan.find("64x64g") != std::string::npos ||
           plan.find("128x32g") != std::string::npos;
  };
  // GEMMs of <= 4 columns (dgrad into 3 channels, fprop to 3 channels) get the thin kernel by
  // the heuristic (candidate 0), weight gradients of <= 64 x 64 (<= 2048) values the
  // small-output kernel; the others neither
  for (size_t i = 0; i < cs.size(); ++i)
    for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) {
      const Conv2dProblem& p = cs[i].p;
      const int cols = dir == dc::ConvDir::Fprop ? p.K : p.C;
      const bool thin = dir != dc::ConvDir::Wgrad && cols <= 4;
      const int64_t crs = int64_t(p.C) * p.R * p.S;
      const bool smallout = dir == dc::ConvDir::Wgrad && p.K <= 64 && crs <= 64 && p.K * crs <= 2048;
      dc::set_conv_plan(dir, p, dc::MathMode::TF32, 0);
      const std::string plan = dc::conv_plan(dir, p, dc::MathMode::TF32);
      INFO(cs[i].name << " | " << dc::to_string(dir) << ": " << plan);
      CHECK((plan.find("thin") != std::string::npos) == thin);
      CHECK((plan.find("smallout") != std::string::npos) == smallout);
    }
  for (const Case& c : cs) {
    const Conv2dProblem& p = c.p;
    const Refs r = make_refs(p);
    auto x = upload(r.x), w = upload(r.w), b = upload(r.b), dy = upload(r.dy);
    for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) {
      const int n = dc::conv_plan_candidates(dir, p);
      CHECK(n >= 2);
      // the paired 128x128 tile ("128x128p") is a candidate for TF32 / BF16, never for FP32
      bool paired[3] = {false, false, false}, grouped[3] = {false, false, false}, nhwc[3] = {false, false, false};
      bool nhwc_wide = false, nhwc_quad = false;  // 256x128nhwc / 128x128nhwc4w (BF16)
      bool wgmma[3] = {false, false, false};      // 128x128wgmma or 128x64wgmma
      bool wgmma128 = false, wgmma64 = false;     // (BF16)
      // every output by (mode, plan): a grouped tile only changes how the operands reach shared
      // memory, so its result must equal the plain tile's (same shape, same split) bit for bit
      std::map<std::pair<int, std::string>, std::vector<float>> outs;
      for (int i = 0; i < n; ++i)
        for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16}) {
          dc::set_conv_plan(dir, p, mode, i);
          const std::string plan = dc::conv_plan(dir, p, mode);
          paired[int(mode)] = paired[int(mode)] || plan.find("128x128p") != std::string::npos;
          grouped[int(mode)] = grouped[int(mode)] || is_grouped(plan);
          nhwc[int(mode)] = nhwc[int(mode)] || plan.find("nhwc") != std::string::npos;
          wgmma[int(mode)] = wgmma[int(mode)] || plan.find("wgmma") != std::string::npos;
          if (mode == dc::MathMode::BF16) {
            wgmma128 = wgmma128 || plan.find("128x128wgmma") != std::string::npos;
            wgmma64 = wgmma64 || plan.find("128x64wgmma") != std::string::npos;
            nhwc_wide = nhwc_wide || plan.find("256x128nhwc") != std::string::npos;
            nhwc_quad = nhwc_quad || plan.find("128x128nhwc4w") != std::string::npos;
          }
          INFO(c.name << " | " << dc::to_string(dir) << " | " << dc::to_string(mode) << " | plan " << i << ": "
                      << plan);
          std::vector<float> got = run_custom_dir(dir, p, x.data(), w.data(), b.data(), dy.data(), mode);
          CHECK(rel_l2(got, ref_of(dir, r)) <= dtest::tolerance(mode));
          outs[{int(mode), plan}] = std::move(got);
        }
      int pairs = 0;
      for (const auto& [key, out] : outs) {
        const auto& [mode, plan] = key;
        if (!is_grouped(plan)) continue;
        std::string plain = plan;
        plain.erase(plain.find('g'), 1);  // "128x32g split 2" -> "128x32 split 2"
        const auto it = outs.find({mode, plain});
        if (it == outs.end()) continue;
        INFO(c.name << " | " << dc::to_string(dir) << " | " << dc::to_string(dc::MathMode(mode)) << " | " << plan
                    << " vs " << plain);
        CHECK(out == it->second);
        ++pairs;
      }
      if (groups_expected(dir, p)) CHECK(pairs > 0);
      // the channels-last kernels round the operands like the NCHW tiles of their mode (BF16,
      // TF32) and differ from them only in the FP32 summation order: far closer than the 5e-3
      // to the double reference (a lost or doubled chunk of channels would be ~1e-1)
      for (const auto& [key, out] : outs) {
        const auto& [mode, plan] = key;
        if (plan.find("nhwc") == std::string::npos && plan.find("wgmma") == std::string::npos) continue;
        for (const auto& [key2, out2] : outs) {
          if (key2.first != mode || key2.second.find("nhwc") != std::string::npos ||
              key2.second.find("wgmma") != std::string::npos ||
              key2.second.find("thin") != std::string::npos || key2.second.find("smallout") != std::string::npos)
            continue;  // the thin and small-output kernels are FP32 FMAs on unrounded operands
          INFO(c.name << " | " << plan << " vs " << key2.second);
          CHECK(rel_l2(out, out2) <= 2e-5);
        }
      }
      INFO(c.name << " | " << dc::to_string(dir));
      // the channels-last kernels: candidates for GEMMs of more than 4 columns (fewer: the thin
      // kernel's), BF16 and TF32 in every direction, never FP32
      CHECK(!nhwc[int(dc::MathMode::FP32)]);
      const int gemm_cols = dir == dc::ConvDir::Fprop ? p.K : dir == dc::ConvDir::Dgrad ? p.C : p.C * p.R * p.S;
      CHECK(nhwc[int(dc::MathMode::TF32)] == (gemm_cols > 4));
      CHECK(nhwc[int(dc::MathMode::BF16)] == (gemm_cols > 4));
      // the 64 x 64-warp tiles: 256x128 for GEMMs of more than 128 rows and 64 columns, the
      // 4-warp 128x128 for more than 32 of each
      const bool one_phase = p.stride_h == 1 && p.stride_w == 1;
      const int64_t gemm_rows = dir == dc::ConvDir::Fprop   ? int64_t(p.N) * p.P * p.Q
                                : dir == dc::ConvDir::Wgrad ? int64_t(p.K)
                                : one_phase                 ? int64_t(p.N) * p.H * p.W
                                                            : -1;  // dgrad: the largest phase's
      if (dir != dc::ConvDir::Dgrad) {
        CHECK(nhwc_wide == (gemm_rows > 128 && gemm_cols > 64));
        CHECK(nhwc_quad == (gemm_rows > 32 && gemm_cols > 32));
      }
      // the wgmma kernels (sm_90a build on compute capability 9.0; the emulation models them):
      // BF16 and TF32 fprop / dgrad and BF16 wgrad with more than 32 rows, 128x128 for more
      // than 32 columns, 128x64 for 5 to 64; never FP32, never TF32 wgrad (MN-major operands)
      CHECK(!wgmma[int(dc::MathMode::FP32)]);
      if (dir == dc::ConvDir::Wgrad)
        CHECK(!wgmma[int(dc::MathMode::TF32)]);
      else
        CHECK(wgmma[int(dc::MathMode::TF32)] == wgmma[int(dc::MathMode::BF16)]);
      if (gemm_rows >= 0 && dc::wgmma_available()) {
        CHECK(wgmma128 == (gemm_rows > 32 && gemm_cols > 32));
        CHECK(wgmma64 == (gemm_rows > 32 && gemm_cols > 4 && gemm_cols <= 64));
      }
      CHECK(!paired[int(dc::MathMode::FP32)]);
      CHECK(paired[int(dc::MathMode::TF32)]);
      CHECK(paired[int(dc::MathMode::BF16)]);
      for (bool gm : grouped) CHECK(gm == groups_expected(dir, p));
    }
  }
  CHECK_THROWS_AS(dc::set_conv_plan(dc::ConvDir::Fprop, cs[0].p, dc::MathMode::FP32, -1), disco::Error);
}

TEST_CASE("tuning's output check accepts every correct plan, in every mode", "[cuda][conv][plans]") {
  // Every candidate of these shapes computes correctly (the test above), so tuning must keep
  // all of them in the running: each agrees with the reference plan, with margin -- the
  // tolerances (1e-4 / 5e-3 / 3e-2 of the reference's largest magnitude) are at least 3x the
  // largest difference seen here. The shapes cover the thin kernel (the reference of a
  // 3-channel dgrad, against tensor-core plans), the small-output kernel, split-K, grouped,
  // paired and channels-last plans.
  PlanGuard guard;
  dc::set_conv_autotune(true);
  const std::vector<Case> cs = {
      {"3->32 k4s2p1 @16, batch 2", disco::make_conv2d_problem(2, 3, 16, 16, 32, 4, 4, 2, 1)},
      {"convT 48->3 4x4 -> 8x8, batch 2", disco::make_conv_transpose2d_problem(2, 48, 4, 4, 3, 4, 4, 2, 1, 0)},
      {"8->40 k3s1p1 @8, batch 2", disco::make_conv2d_problem(2, 8, 8, 8, 40, 3, 3, 1, 1)},
  };
  const float tol[3] = {1e-4f, 5e-3f, 3e-2f};  // FP32, TF32, BF16
  float worst[3] = {0.f, 0.f, 0.f};
  for (const Case& c : cs) {
    const Conv2dProblem& p = c.p;
    const Refs r = make_refs(p);
    auto x = upload(r.x), w = upload(r.w), dy = upload(r.dy);
    for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16})
      for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) {
        dc::clear_conv_plans();
        INFO(c.name << " | " << dc::to_string(dir) << " | " << dc::to_string(mode));
        run_custom_dir(dir, p, x.data(), w.data(), nullptr, dy.data(), mode);  // tunes
        const auto times = dc::conv_tuning_times(dir, p, mode);
        CHECK(times.size() >= 2);
        for (const auto& t : times) {
          INFO(t.plan << ": diff " << t.diff);
          CHECK(std::isfinite(t.ms));
          CHECK(t.agrees);
          CHECK(t.diff <= tol[int(mode)] / 3);
          worst[int(mode)] = std::max(worst[int(mode)], t.diff);
        }
      }
  }
  WARN("largest difference from the reference plan: FP32 " << worst[0] << ", TF32 " << worst[1] << ", BF16 "
                                                            << worst[2]);
}

TEST_CASE("conv_plans_in_use lists the planned launches with their kernel family", "[cuda][conv][plans]") {
  PlanGuard guard;
  dc::clear_conv_plans();
  CHECK(dc::conv_plans_in_use().empty());
  const Conv2dProblem p = disco::make_conv2d_problem(2, 24, 8, 8, 40, 4, 4, 2, 1);
  const Conv2dProblem thin = disco::make_conv_transpose2d_problem(2, 48, 4, 4, 3, 4, 4, 2, 1, 0);
  int nhwc = -1;
  for (int i = 0; i < dc::conv_plan_candidates(dc::ConvDir::Fprop, p) && nhwc < 0; ++i) {
    dc::set_conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16, i);
    if (dc::conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16).find("nhwc") != std::string::npos) nhwc = i;
  }
  REQUIRE(nhwc >= 0);
  dc::set_conv_plan(dc::ConvDir::Dgrad, thin, dc::MathMode::TF32, 0);  // the heuristic: thin (3 columns)
  const auto uses = dc::conv_plans_in_use();
  REQUIRE(uses.size() == 2);
  int seen = 0;
  for (const auto& u : uses) {
    INFO(dc::to_string(u.dir) << " " << dc::to_string(u.mode) << ": " << u.plan << " (" << u.family << ")");
    if (u.dir == dc::ConvDir::Fprop) {
      CHECK(u.mode == dc::MathMode::BF16);
      CHECK(u.family == "nhwc");
      CHECK(u.plan == dc::conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16));
      seen |= 1;
    } else {
      CHECK(u.dir == dc::ConvDir::Dgrad);
      CHECK(u.mode == dc::MathMode::TF32);
      CHECK(u.family == "thin");
      CHECK(u.plan == "thin");
      seen |= 2;
    }
  }
  CHECK(seen == 3);
}

TEST_CASE("set_conv_prefer: untuned launches run the preferred kernel family", "[cuda][conv][plans]") {
  PlanGuard guard;
  struct PreferGuard {
    std::string was = dc::conv_prefer();
    ~PreferGuard() { dc::set_conv_prefer(was); }
  } prefer_guard;
  dc::set_conv_autotune(false);
  dc::clear_conv_plans();
  dc::set_conv_prefer("");
  // (batch 4: more than 32 GEMM rows in every direction, so wgmma is offered)
  const Conv2dProblem p = disco::make_conv2d_problem(4, 24, 8, 8, 40, 4, 4, 2, 1);
  const Refs r = make_refs(p);
  auto x = upload(r.x), w = upload(r.w), dy = upload(r.dy);
  std::vector<std::string> families = {"nhwc"};
  if (dc::wgmma_available()) families.push_back("wgmma");
  for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad})
    for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16}) {
      INFO(dc::to_string(dir) << " | " << dc::to_string(mode));
      dc::set_conv_prefer("");
      const std::string heuristic = dc::conv_plan(dir, p, mode);
      const std::vector<float> want = run_custom_dir(dir, p, x.data(), w.data(), nullptr, dy.data(), mode);
      CHECK(dc::conv_plans_in_use().empty());  // untuned heuristic plans are not listed
      for (const std::string& f : families) {
        INFO("prefer " << f);
        dc::set_conv_prefer(f);
        CHECK(dc::conv_prefer() == f);
        const std::string plan = dc::conv_plan(dir, p, mode);
        // channels-last kernels: TF32 / BF16 only; wgmma: no TF32 weight gradient
        const bool offered = mode != dc::MathMode::FP32 && !(f == "wgmma" && dir == dc::ConvDir::Wgrad &&
                                                              mode == dc::MathMode::TF32);
        INFO("plan " << plan << ", heuristic " << heuristic);
        if (!offered) {
          CHECK(plan == heuristic);
          continue;
        }
        CHECK(plan.find(f) != std::string::npos);
        const std::vector<float> got = run_custom_dir(dir, p, x.data(), w.data(), nullptr, dy.data(), mode);
        CHECK(rel_l2(got, want) <= (mode == dc::MathMode::TF32 ? 2e-3 : 1e-2));
        // the launch is listed with its family (an untuned launch of the preferred family)
        bool listed = false;
        for (const auto& u : dc::conv_plans_in_use())
          listed = listed || (u.dir == dir && u.mode == mode && u.family == f && u.plan == plan);
        CHECK(listed);
        dc::clear_conv_plans();
      }
    }
  // a tuned or set plan wins over the preference
  dc::set_conv_prefer("nhwc");
  dc::set_conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16, 0);
  dc::set_conv_prefer("");
  const std::string pinned = dc::conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16);
  dc::set_conv_prefer("nhwc");
  CHECK(dc::conv_plan(dc::ConvDir::Fprop, p, dc::MathMode::BF16) == pinned);
  // unknown families
  try {
    dc::set_conv_prefer("nchw");
    FAIL("expected disco::Error");
  } catch (const disco::Error& e) {
    const std::string m = e.what();
    CHECK(m.find("'nchw'") != std::string::npos);
    CHECK(m.find("wgmma") != std::string::npos);
  }
  CHECK(dc::conv_prefer() == "nhwc");  // unchanged by the refused one
}

TEST_CASE("ConvPackShare: a backward's data and weight gradients share the channels-last pack of dy",
          "[cuda][conv][plans]") {
  PlanGuard guard;
  dc::set_conv_autotune(false);
  const Conv2dProblem p = disco::make_conv2d_problem(2, 24, 8, 8, 40, 4, 4, 2, 1);
  const Refs r = make_refs(p);
  auto x = upload(r.x), w = upload(r.w), dy = upload(r.dy);
  // pins the first channels-last plan of a direction and mode
  const auto pin_nhwc = [&](dc::ConvDir dir, dc::MathMode mode) {
    for (int i = 0; i < dc::conv_plan_candidates(dir, p); ++i) {
      dc::set_conv_plan(dir, p, mode, i);
      if (dc::conv_plan(dir, p, mode).find("nhwc") != std::string::npos) return true;
    }
    return false;
  };
  for (dc::MathMode mode : {dc::MathMode::TF32, dc::MathMode::BF16}) {
    INFO(dc::to_string(mode));
    for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) REQUIRE(pin_nhwc(dir, mode));
    // a conv's backward (dgrad + wgrad read dy) and a transposed conv's (fprop + wgrad read the
    // same tensor as their input: here x), each once without and once within a scope
    const auto run = [&](std::vector<float>& dx, std::vector<float>& dw, std::vector<float>& y) {
      auto ddx = poisoned(r.dx.size()), ddw = poisoned(r.dw.size()), dy2 = poisoned(r.y.size());
      auto dw2 = poisoned(r.dw.size());
      dc::conv2d_dgrad(p, dy.data(), w.data(), ddx.data(), false, dc::ConvAlgo::Custom, mode);
      dc::conv2d_wgrad(p, x.data(), dy.data(), ddw.data(), false, dc::ConvAlgo::Custom, mode);
      dc::conv2d_fprop(p, x.data(), w.data(), nullptr, dy2.data(), dc::ConvAlgo::Custom, mode);
      dc::conv2d_wgrad(p, x.data(), dy.data(), dw2.data(), false, dc::ConvAlgo::Custom, mode);
      dx = download(ddx);
      dw = download(dw2);
      y = download(dy2);
      CHECK(download(ddw) == dw);
    };
    std::vector<float> dx0, dw0, y0, dx1, dw1, y1;
    run(dx0, dw0, y0);
    int64_t reused = 0;
    {
      dc::ConvPackShare share;
      run(dx1, dw1, y1);
      reused = share.reused();
    }
    // dy: packed by dgrad, reused by both wgrads; x: packed by the first wgrad, reused by fprop
    // and the second wgrad
    CHECK(reused == 4);
    CHECK(dx1 == dx0);  // bit for bit: the same packs, the same kernels
    CHECK(dw1 == dw0);
    CHECK(y1 == y0);
    CHECK(rel_l2(dx1, r.dx) <= 5e-3);
  }
  {  // different padding / element types are never shared: BF16 dgrad, TF32 wgrad of one dy
    dc::ConvPackShare share;
    auto dx = poisoned(r.dx.size()), dw = poisoned(r.dw.size());
    dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, dc::ConvAlgo::Custom, dc::MathMode::BF16);
    dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, dc::ConvAlgo::Custom, dc::MathMode::TF32);
    CHECK(share.reused() == 0);
    {  // nested: the inner scope serves, starting empty
      dc::ConvPackShare inner;
      dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, dc::ConvAlgo::Custom, dc::MathMode::TF32);
      CHECK(inner.reused() == 0);
    }
    dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, dc::ConvAlgo::Custom, dc::MathMode::TF32);
    CHECK(share.reused() == 2);
    CHECK(rel_l2(download(dw), r.dw) <= 5e-3);
  }
  {  // tuning times every plan with its own packs: nothing is reused while it runs
    dc::clear_conv_plans();
    dc::set_conv_autotune(true);
    dc::ConvPackShare share;
    auto dx = poisoned(r.dx.size());
    dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, dc::ConvAlgo::Custom, dc::MathMode::BF16);
    const auto times = dc::conv_tuning_times(dc::ConvDir::Dgrad, p, dc::MathMode::BF16);
    CHECK(std::count_if(times.begin(), times.end(), [](const auto& t) { return t.plan.find("nhwc") != std::string::npos; }) >= 1);
    CHECK(share.reused() == 0);
    CHECK(rel_l2(download(dx), r.dx) <= 5e-3);
  }
}

TEST_CASE("per-layer tuning: tunes once, leaves accumulated outputs alone, never inside a graph capture",
          "[cuda][conv][plans]") {
  PlanGuard guard;
  dc::clear_conv_plans();
  dc::set_conv_autotune(true);
  const Conv2dProblem p = disco::make_conv2d_problem(2, 24, 8, 8, 40, 4, 4, 2, 1);
  const Refs r = make_refs(p);
  auto x = upload(r.x), w = upload(r.w), dy = upload(r.dy);
  // tuning runs the candidates into scratch: the accumulated gradient is added to once
  const auto old_dw = randu(r.dw.size());
  std::vector<double> want(r.dw);
  for (size_t i = 0; i < want.size(); ++i) want[i] += old_dw[i];
  auto dw = upload(old_dw);
  dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), true, dc::ConvAlgo::Custom, dc::MathMode::FP32);
  CHECK(rel_l2(download(dw), want) <= 1e-5);
  const std::string tuned = dc::conv_plan(dc::ConvDir::Wgrad, p, dc::MathMode::FP32);
  INFO("tuned wgrad plan: " << tuned);
  CHECK(!tuned.empty());
  // cached: the same plan and bitwise the same result from now on
  auto a = poisoned(r.dw.size()), b2 = poisoned(r.dw.size());
  dc::conv2d_wgrad(p, x.data(), dy.data(), a.data(), false, dc::ConvAlgo::Custom, dc::MathMode::FP32);
  dc::conv2d_wgrad(p, x.data(), dy.data(), b2.data(), false, dc::ConvAlgo::Custom, dc::MathMode::FP32);
  CHECK(download(a) == download(b2));
  CHECK(dc::conv_plan(dc::ConvDir::Wgrad, p, dc::MathMode::FP32) == tuned);
  // what tuning measured: every FP32 candidate once, in candidate order, the kept one marked
  // (the test shape has groups, Q = 4: the grouped tiles are among them)
  {
    const auto times = dc::conv_tuning_times(dc::ConvDir::Wgrad, p, dc::MathMode::FP32);
    int chosen = 0;
    bool grouped = false;
    for (const auto& t : times) {
      INFO(t.plan << " " << t.ms << " ms" << (t.chosen ? " (chosen)" : ""));
      CHECK(t.launch == 0);
      CHECK((std::isfinite(t.ms) && t.ms >= 0.f));
      // every candidate's output agrees with the reference plan's (the first)
      CHECK(t.agrees);
      CHECK(t.diff <= 1e-4f);
      if (&t == &times.front()) CHECK(t.diff == 0.f);
      chosen += t.chosen ? 1 : 0;
      if (t.chosen) CHECK(t.plan == tuned);
      grouped = grouped || t.plan.find("g") != std::string::npos;
    }
    CHECK(times.size() >= 2);
    CHECK(chosen == 1);
    CHECK(grouped);
    CHECK(dc::conv_tuning_times(dc::ConvDir::Wgrad, p, dc::MathMode::TF32).empty());  // not tuned
    dc::set_conv_plan(dc::ConvDir::Wgrad, p, dc::MathMode::FP32, 0);                  // set: no longer tuned
    CHECK(dc::conv_tuning_times(dc::ConvDir::Wgrad, p, dc::MathMode::FP32).empty());
  }
  // a candidate whose output is wrong is never chosen, however fast: plant a fault (its output
  // scaled by 1.5) in one plan, then in every plan but the reference (a problem of its own);
  // tune again: the faulty plans are marked and never kept, the result stays right
  for (const bool all : {false, true}) {
    const Conv2dProblem q = all ? disco::make_conv2d_problem(2, 16, 8, 8, 24, 3, 3, 1, 1) : p;
    const Refs rq = all ? make_refs(q) : r;
    auto xq = upload(rq.x), dyq = upload(rq.dy), dwq = poisoned(rq.dw.size());
    const auto tune_now = [&] {
      dc::clear_conv_plans();
      dc::conv2d_wgrad(q, xq.data(), dyq.data(), dwq.data(), false, dc::ConvAlgo::Custom, dc::MathMode::TF32);
      CHECK(rel_l2(download(dwq), rq.dw) <= 5e-3);
      return dc::conv_tuning_times(dc::ConvDir::Wgrad, q, dc::MathMode::TF32);
    };
    const auto clean = tune_now();
    REQUIRE(clean.size() >= 2);
    const std::string kept = dc::conv_plan(dc::ConvDir::Wgrad, q, dc::MathMode::TF32);
    // the first round faults the plan kept, or (when that is the reference) the next one; the
    // second every plan (all names have an "x") but the reference, which is never faulted
    const std::string fault = all ? "x" : kept != clean.front().plan ? kept : clean[1].plan;
    INFO("reference " << clean.front().plan << ", kept " << kept << ", fault in '" << fault << "'");
    struct Unfault {
      ~Unfault() { dc::set_conv_tuning_fault(""); }
    } unfault;
    dc::set_conv_tuning_fault(fault);
    const auto times = tune_now();
    REQUIRE(times.size() == clean.size());
    int rejected = 0;
    for (size_t i = 0; i < times.size(); ++i) {
      const auto& t = times[i];
      INFO(t.plan << " diff " << t.diff << (t.chosen ? " (chosen)" : ""));
      if (i == 0 || t.plan.find(fault) == std::string::npos) {  // the reference is never faulted
        CHECK(t.agrees);
        CHECK(t.diff <= (i == 0 ? 0.f : 5e-3f));
      } else {
        CHECK(!t.agrees);
        CHECK(t.diff > 0.1f);
        CHECK(!t.chosen);
        ++rejected;
      }
    }
    CHECK(rejected >= 1);
    if (all)
      CHECK(times.front().chosen);
    else
      CHECK(dc::conv_plan(dc::ConvDir::Wgrad, q, dc::MathMode::TF32).find(fault) == std::string::npos);
  }
  dc::clear_conv_plans();

  // an untuned problem inside a capture: no timing, no synchronization (that would break the
  // capture and throw); the heuristic plan is captured and replays correctly
  void* old = dc::get_stream();
  void* s = dc::create_stream();
  dc::set_stream(s);
  {
    auto y = poisoned(r.y.size());
    dc::Graph g;
    g.begin_capture();
    dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data(), dc::ConvAlgo::Custom, dc::MathMode::FP32);
    g.end_capture();
    g.replay();
    dc::synchronize();
    std::vector<double> want_y = disco::ref::conv2d_fprop(p, dtest::to_double(r.x), dtest::to_double(r.w), {});
    CHECK(rel_l2(download(y), want_y) <= 1e-5);
  }
  // the channels-last BF16 plans inside a capture: their pack buffers (scratch allocated and
  // returned while capturing) and the split-K workspace replay correctly, twice, in every
  // direction
  {
    const auto pin_nhwc = [&](dc::ConvDir dir) {  // a split-K channels-last plan where there is one
      for (const char* want : {"nhwc split", "nhwc"})
        for (int i = 0; i < dc::conv_plan_candidates(dir, p); ++i) {
          dc::set_conv_plan(dir, p, dc::MathMode::BF16, i);
          if (dc::conv_plan(dir, p, dc::MathMode::BF16).find(want) != std::string::npos) return true;
        }
      return false;
    };
    for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) REQUIRE(pin_nhwc(dir));
    auto y = poisoned(r.y.size()), dx = poisoned(r.dx.size()), dw = poisoned(r.dw.size());
    dc::Graph g;
    g.begin_capture();
    dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data(), dc::ConvAlgo::Custom, dc::MathMode::BF16);
    dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, dc::ConvAlgo::Custom, dc::MathMode::BF16);
    dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, dc::ConvAlgo::Custom, dc::MathMode::BF16);
    g.end_capture();
    for (int rep = 0; rep < 2; ++rep) {
      g.replay();
      dc::synchronize();
      INFO("replay " << rep);
      CHECK(rel_l2(download(y), disco::ref::conv2d_fprop(p, dtest::to_double(r.x), dtest::to_double(r.w), {})) <= 5e-3);
      CHECK(rel_l2(download(dx), r.dx) <= 5e-3);
      CHECK(rel_l2(download(dw), r.dw) <= 5e-3);
    }
  }
  dc::set_stream(old);
  dc::destroy_stream(s);
}
