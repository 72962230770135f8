// Instance norm fused with activations: forward and backward against double references
// (the backward reference is itself checked by finite differences on a small case).
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/core/error.hpp"

namespace dc = disco::cuda;
using dc::Activation;
using dtest::download;
using dtest::poisoned;
using dtest::randu;
using dtest::rel_l2;
using dtest::upload;

namespace {

double act_f(double v, Activation a, double slope) {
  if (a == Activation::ReLU) return v > 0 ? v : 0;
  if (a == Activation::LeakyReLU) return v > 0 ? v : slope * v;
  return v;
}
double act_g(double v, Activation a, double slope) {
  if (a == Activation::ReLU) return v > 0 ? 1 : 0;
  if (a == Activation::LeakyReLU) return v > 0 ? 1 : slope;
  return 1;
}

struct RefOut {
  std::vector<double> y, mean, rstd;
};
RefOut ref_fwd(const std::vector<double>& x, int64_t NC, int64_t HW, double eps, Activation a, double slope) {
  RefOut r;
  r.y.resize(x.size());
  for (int64_t row = 0; row < NC; ++row) {
    const double* xr = x.data() + row * HW;
    double m = 0;
    for (int64_t i = 0; i < HW; ++i) m += xr[i];
    m /= double(HW);
    double v = 0;
    for (int64_t i = 0; i < HW; ++i) v += (xr[i] - m) * (xr[i] - m);
    v /= double(HW);
    const double rs = 1.0 / std::sqrt(v + eps);
    for (int64_t i = 0; i < HW; ++i) r.y[size_t(row * HW + i)] = act_f((xr[i] - m) * rs, a, slope);
    r.mean.push_back(m);
    r.rstd.push_back(rs);
  }
  return r;
}
std::vector<double> ref_bwd(const std::vector<double>& dy, const std::vector<double>& x, int64_t NC, int64_t HW,
                            double eps, Activation a, double slope) {
  const RefOut f = ref_fwd(x, NC, HW, eps, a, slope);
  std::vector<double> dx(x.size());
  for (int64_t row = 0; row < NC; ++row) {
    double s1 = 0, s2 = 0;
    std::vector<double> xh(static_cast<size_t>(HW)), g(static_cast<size_t>(HW));
    for (int64_t i = 0; i < HW; ++i) {
      const size_t k = size_t(row * HW + i);
      xh[size_t(i)] = (x[k] - f.mean[size_t(row)]) * f.rstd[size_t(row)];
      g[size_t(i)] = dy[k] * act_g(xh[size_t(i)], a, slope);
      s1 += g[size_t(i)];
      s2 += g[size_t(i)] * xh[size_t(i)];
    }
    for (int64_t i = 0; i < HW; ++i)
      dx[size_t(row * HW + i)] =
          f.rstd[size_t(row)] * (g[size_t(i)] - s1 / double(HW) - xh[size_t(i)] * s2 / double(HW));
  }
  return dx;
}

}  // namespace

TEST_CASE("instance norm backward reference matches finite differences", "[cuda][norm]") {
  const int64_t NC = 3, HW = 7;
  const auto x = dtest::to_double(randu(size_t(NC * HW), -2.f, 2.f));
  const auto dy = dtest::to_double(randu(size_t(NC * HW)));
  for (Activation a : {Activation::None, Activation::ReLU, Activation::LeakyReLU}) {
    const auto dx = ref_bwd(dy, x, NC, HW, 1e-5, a, 0.2);
    for (size_t k = 0; k < x.size(); ++k) {
      auto xp = x, xm = x;
      const double h = 1e-6;
      xp[k] += h;
      xm[k] -= h;
      const auto yp = ref_fwd(xp, NC, HW, 1e-5, a, 0.2).y, ym = ref_fwd(xm, NC, HW, 1e-5, a, 0.2).y;
      double num = 0;
      for (size_t i = 0; i < yp.size(); ++i) num += dy[i] * (yp[i] - ym[i]) / (2 * h);
      REQUIRE(std::abs(num - dx[k]) <= 1e-5 * (1 + std::abs(num)));
    }
  }
}

TEST_CASE("instance norm forward and backward", "[cuda][norm]") {
  struct S { int64_t NC, HW; };
  const float slope = 0.2f, eps = 1e-5f;
  for (S s : {S{1, 1}, S{32 * 487, 4}, S{2 * 25, 4}, S{3, 128 * 128}, S{35, 33}, S{64, 64 * 64}, S{7, 300}}) {
    for (Activation a : {Activation::None, Activation::ReLU, Activation::LeakyReLU}) {
      INFO("NC=" << s.NC << " HW=" << s.HW << " act=" << int(a));
      auto hx = randu(size_t(s.NC * s.HW), -3.f, 3.f);
      for (size_t i = 0; i < hx.size(); i += 3) hx[i] += 5.f;  // non-zero mean
      const auto hdy = randu(hx.size());
      const auto xd = dtest::to_double(hx);
      const RefOut r = ref_fwd(xd, s.NC, s.HW, eps, a, slope);
      auto x = upload(hx), dy = upload(hdy);
      auto y = poisoned(hx.size()), mean = poisoned(size_t(s.NC)), rstd = poisoned(size_t(s.NC));
      dc::instance_norm_fwd(x.data(), y.data(), mean.data(), rstd.data(), s.NC, s.HW, eps, a, slope);
      CHECK(rel_l2(download(y), r.y) <= 1e-5);
      CHECK(rel_l2(download(mean), r.mean) <= 1e-5);
      CHECK(rel_l2(download(rstd), r.rstd) <= 1e-5);
      if (s.HW == 1) continue;  // variance 0: gradient is ~0 / rstd huge, nothing to compare usefully
      const auto want = ref_bwd(dtest::to_double(hdy), xd, s.NC, s.HW, eps, a, slope);
      // The backward subtracts dy's mean and its projection on x-hat: over 4 values that cancels
      // most of dy in some planes, and float sums lose the rest's digits (seen: 1.17e-5 over the
      // 15584 planes of 4 with seed 1653248912); larger planes stay within 1e-5.
      const double tol = s.HW <= 4 ? 5e-5 : 1e-5;
      auto dx = poisoned(hx.size());
      dc::instance_norm_bwd(dy.data(), x.data(), false, mean.data(), rstd.data(), dx.data(), s.NC, s.HW, a, slope);
      CHECK(rel_l2(download(dx), want) <= tol);
      if (a != Activation::ReLU) {  // from the forward output
        dtest::poison(dx);
        dc::instance_norm_bwd(dy.data(), y.data(), true, mean.data(), rstd.data(), dx.data(), s.NC, s.HW, a, slope);
        CHECK(rel_l2(download(dx), want) <= tol);
      } else {
        CHECK_THROWS_AS(dc::instance_norm_bwd(dy.data(), y.data(), true, mean.data(), rstd.data(), dx.data(), s.NC,
                                              s.HW, a, slope),
                        disco::Error);
      }
      // accumulate
      dc::instance_norm_bwd(dy.data(), x.data(), false, mean.data(), rstd.data(), dx.data(), s.NC, s.HW, a, slope,
                            true);
      auto want2 = want;
      for (auto& v : want2) v *= 2;
      CHECK(rel_l2(download(dx), want2) <= tol);
    }
  }
}

// cuDNN as the oracle: PyTorch's InstanceNorm2d on a GPU is cuDNN's spatial batch norm over
// [1, N*C, H, W]. disco's fused kernels must agree with it to 1e-5 (plus whatever cuDNN's own
// error against the double reference is), forward (y, mean, rstd) and backward.
TEST_CASE("instance norm matches cuDNN's batch norm over [1, N*C, H, W]", "[cuda][norm][cudnn]") {
  const float eps = 1e-5f;
  if (!disco::cuda::cudnn_available()) {
    float* none = nullptr;
    CHECK_THROWS_AS(dc::cudnn_instance_norm_fwd(none, none, none, none, 1, 4), disco::Error);
    WARN("built without cuDNN: the cuDNN instance-norm oracle is not checked");
    return;
  }
  struct S { int64_t NC, HW; };
  for (S s : {S{32 * 487, 4}, S{25, 4}, S{3, 128 * 128}, S{35, 33}, S{2 * 64, 64 * 64}, S{4 * 512, 2 * 2}}) {
    for (Activation a : {Activation::None, Activation::ReLU}) {
      INFO("NC=" << s.NC << " HW=" << s.HW << " act=" << int(a));
      auto hx = randu(size_t(s.NC * s.HW), -3.f, 3.f);
      for (size_t i = 0; i < hx.size(); i += 3) hx[i] += 5.f;  // non-zero mean
      const auto hdy = randu(hx.size());
      const auto xd = dtest::to_double(hx);
      const RefOut r = ref_fwd(xd, s.NC, s.HW, eps, a, 0.f);
      const auto want_dx = ref_bwd(dtest::to_double(hdy), xd, s.NC, s.HW, eps, a, 0.f);
      auto x = upload(hx), dy = upload(hdy);
      auto y = poisoned(hx.size()), mean = poisoned(size_t(s.NC)), rstd = poisoned(size_t(s.NC));
      auto cy = poisoned(hx.size()), cmean = poisoned(size_t(s.NC)), crstd = poisoned(size_t(s.NC));
      dc::instance_norm_fwd(x.data(), y.data(), mean.data(), rstd.data(), s.NC, s.HW, eps, a);
      dc::cudnn_instance_norm_fwd(x.data(), cy.data(), cmean.data(), crstd.data(), s.NC, s.HW, eps, a);
      const auto hy = download(y), hcy = download(cy);
      const auto hm = download(mean), hcm = download(cmean), hr = download(rstd), hcr = download(crstd);
      // cuDNN itself against the double reference: it is the oracle only if it is right
      const double ey = rel_l2(hcy, r.y), em = rel_l2(hcm, r.mean), er = rel_l2(hcr, r.rstd);
      INFO("cuDNN vs double: y " << ey << " mean " << em << " rstd " << er);
      CHECK(ey <= 1e-4);
      CHECK(rel_l2(hy, hcy) <= 1e-5 + ey);
      CHECK(rel_l2(hm, hcm) <= 1e-5 + em);
      CHECK(rel_l2(hr, hcr) <= 1e-5 + er);
      auto dx = poisoned(hx.size()), cdx = poisoned(hx.size());
      dc::instance_norm_bwd(dy.data(), x.data(), false, mean.data(), rstd.data(), dx.data(), s.NC, s.HW, a);
      dc::cudnn_instance_norm_bwd(dy.data(), x.data(), cy.data(), cmean.data(), crstd.data(), cdx.data(), s.NC, s.HW,
                                  eps, a);
      const auto hdx = download(dx), hcdx = download(cdx);
      const double edx = rel_l2(hcdx, want_dx);
      INFO("cuDNN dx vs double: " << edx);
      CHECK(edx <= 1e-4);
      CHECK(rel_l2(hdx, hcdx) <= 1e-5 + edx);
    }
  }
  float* none = nullptr;
  CHECK_THROWS_AS(dc::cudnn_instance_norm_fwd(none, none, none, none, 4, 4, eps, Activation::LeakyReLU),
                  disco::Error);
}
