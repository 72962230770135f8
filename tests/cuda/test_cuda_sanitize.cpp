// A small run of every disco kernel, for compute-sanitizer (memcheck / racecheck / synccheck)
// in tools/gpu_check.sh: `disco_cuda_tests "[sanitize]"`. Shapes are small but reach every
// code path: all conv directions x math modes, the three tile shapes (heuristic plans: 128x32 for
// the <= 32-column GEMMs, 64x64 with split-K for 384->384 fprop, 128x128 for its wgrad), split-K, dgrad phases
// without taps, and the element-wise, reduction, norm, loss and optimizer kernels; then each
// channels-last and wgmma tile pinned (they are tuning candidates only: the heuristic plans the
// sanitizer runs with never pick them), in every direction, BF16 and TF32.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"

namespace dc = disco::cuda;
using dtest::download;
using dtest::poisoned;
using dtest::randu;
using dtest::upload;

namespace {
bool all_finite(const std::vector<float>& v) {
  for (float x : v)
    if (!std::isfinite(x)) return false;
  return true;
}
}  // namespace

TEST_CASE("every kernel once, small shapes", "[sanitize]") {
  std::vector<disco::Conv2dProblem> ps = {
      disco::make_conv2d_problem(2, 3, 8, 8, 5, 4, 4, 2, 1),
      disco::make_conv2d_problem(2, 384, 4, 4, 384, 4, 4, 2, 1),   // large tiles in wgrad, split-K
      disco::make_conv2d_problem(2, 4, 5, 5, 3, 1, 1, 2, 0),       // dgrad phases without taps
      disco::make_conv_transpose2d_problem(1, 8, 2, 2, 6, 4, 4, 2, 1, 0),
  };
  for (const auto& p : ps)
    for (dc::MathMode m : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16}) {
      auto x = upload(randu(size_t(p.x_size()))), w = upload(randu(size_t(p.w_size())));
      auto dy = upload(randu(size_t(p.y_size()))), b = upload(randu(size_t(p.K)));
      auto y = poisoned(size_t(p.y_size())), dx = poisoned(size_t(p.x_size())), dw = poisoned(size_t(p.w_size()));
      dc::conv2d_fprop(p, x.data(), w.data(), b.data(), y.data(), dc::ConvAlgo::Custom, m);
      dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, dc::ConvAlgo::Custom, m);
      dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), true, dc::ConvAlgo::Custom, m);
      CHECK(all_finite(download(y)));
      CHECK(all_finite(download(dx)));
    }
  const int64_t n = 3000, NC = 6, HW = 500;
  auto a = upload(randu(size_t(n))), bb = upload(randu(size_t(n), 0.01f, 0.99f));
  auto out = poisoned(size_t(n)), s = poisoned(4);
  dc::add(a.data(), bb.data(), out.data(), n);
  dc::axpy(0.5f, a.data(), out.data(), n);
  dc::leaky_relu_fwd(a.data(), out.data(), n, 0.2f);
  dc::leaky_relu_bwd(a.data(), out.data(), out.data(), n, 0.2f, true);
  dc::sigmoid_fwd(a.data(), out.data(), n);
  dc::tanh_bwd(a.data(), out.data(), out.data(), n);
  dc::sumsq(a.data(), n, s.data());
  dc::channel_sum(a.data(), s.data(), 1, 3, 1000, false);
  dc::add_channel_bias(a.data(), s.data(), out.data(), 1, 3, 1000);
  const int64_t sh[] = {3, 1000}, st[] = {1000, 1}, dt[] = {1, 3};
  dc::copy_strided(a.data(), st, out.data(), dt, sh, 2);
  auto mean = poisoned(size_t(NC)), rstd = poisoned(size_t(NC));
  dc::instance_norm_fwd(a.data(), out.data(), mean.data(), rstd.data(), NC, HW, 1e-5f, dc::Activation::LeakyReLU, 0.2f);
  dc::instance_norm_bwd(a.data(), a.data(), false, mean.data(), rstd.data(), out.data(), NC, HW,
                        dc::Activation::LeakyReLU, 0.2f);
  dc::mse_loss_fwd_bwd(a.data(), bb.data(), n, s.data(), out.data());
  dc::bce_loss_fwd_bwd(bb.data(), nullptr, 1.f, n, s.data(), out.data());
  dc::bce_with_logits_fwd_bwd(a.data(), bb.data(), 0.f, n, s.data(), out.data());
  auto g2 = poisoned(16);
  dc::recon_adv_loss_fwd_bwd(dc::ReconLoss::L1, a.data(), bb.data(), n - 16, bb.data(), 16, 1.f, 0.1f, s.data(),
                             out.data(), g2.data());
  auto p1 = upload(randu(100)), g1 = upload(randu(100)), m1 = upload(std::vector<float>(100, 0.f)),
       v1 = upload(std::vector<float>(100, 0.f));
  auto norm = poisoned(1), coef = poisoned(1);
  dc::clip_grad_norm_async({{g1.data(), 100}}, 1.f, norm.data(), coef.data());
  dc::AdamHyper h;
  dc::adam_update({{p1.data(), g1.data(), m1.data(), v1.data(), 100}}, h, coef.data());
  auto xx = upload(randu(6 * 10)), ww = upload(randu(5 * 10)), yy = poisoned(30);
  dc::linear_fwd(xx.data(), ww.data(), nullptr, yy.data(), 6, 5, 10);
  CHECK(all_finite(download(p1)));
  CHECK(all_finite(download(yy)));
}

TEST_CASE("the channels-last and wgmma tiles once each, pinned", "[sanitize]") {
  // fprop 144 x 72, dgrad 144 x 40, wgrad 72 x 360 (padded): every tile below is a candidate
  // in at least one direction (the wgmma ones where the device runs them)
  const disco::Conv2dProblem p = disco::make_conv2d_problem(1, 40, 12, 12, 72, 3, 3, 1, 1);
  auto x = upload(randu(size_t(p.x_size()))), w = upload(randu(size_t(p.w_size())));
  auto dy = upload(randu(size_t(p.y_size())));
  std::vector<std::string> tiles = {"128x128nhwc", "64x64nhwc", "256x128nhwc", "128x128nhwc4w"};
  if (dc::wgmma_available()) tiles.insert(tiles.end(), {"128x128wgmma", "128x64wgmma"});
  struct Unpin {
    ~Unpin() { dc::clear_conv_plans(); }
  } unpin;
  std::vector<int> ran(tiles.size(), 0);
  for (dc::MathMode m : {dc::MathMode::TF32, dc::MathMode::BF16})
    for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad})
      for (size_t t = 0; t < tiles.size(); ++t) {
        const std::string& tile = tiles[t];
        // pin the first candidate of this tile (any split), if it is one for this direction / mode
        bool found = false;
        for (int i = 0; i < dc::conv_plan_candidates(dir, p) && !found; ++i) {
          dc::set_conv_plan(dir, p, m, i);
          const std::string plan = dc::conv_plan(dir, p, m);
          found = plan == tile || plan.rfind(tile + " ", 0) == 0;
        }
        if (!found) continue;
        INFO(dc::to_string(dir) << " " << dc::to_string(m) << " " << dc::conv_plan(dir, p, m));
        auto y = poisoned(size_t(p.y_size())), dx = poisoned(size_t(p.x_size())), dw = poisoned(size_t(p.w_size()));
        if (dir == dc::ConvDir::Fprop) {
          dc::conv2d_fprop(p, x.data(), w.data(), nullptr, y.data(), dc::ConvAlgo::Custom, m);
          CHECK(all_finite(download(y)));
        } else if (dir == dc::ConvDir::Dgrad) {
          dc::conv2d_dgrad(p, dy.data(), w.data(), dx.data(), false, dc::ConvAlgo::Custom, m);
          CHECK(all_finite(download(dx)));
        } else {
          dc::conv2d_wgrad(p, x.data(), dy.data(), dw.data(), false, dc::ConvAlgo::Custom, m);
          CHECK(all_finite(download(dw)));
        }
        ++ran[t];
      }
  // each tile ran somewhere; the two general channels-last tiles in every direction and mode
  for (size_t t = 0; t < tiles.size(); ++t) {
    INFO(tiles[t]);
    CHECK(ran[t] >= (t < 2 ? 6 : 1));
  }
}
