// Fused loss kernels (value + gradient in one pass) against double references with PyTorch's
// formulas: mse, l1, bce on probabilities (log clamp at -100), bce with logits, and the
// autoencoder's fused reconstruction + adversarial loss.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/ops.hpp"

namespace dc = disco::cuda;
using dtest::download;
using dtest::download_scalar;
using dtest::poisoned;
using dtest::randu;
using dtest::rel_l2;
using dtest::upload;

namespace {

double bce_ref(double p, double t) {
  // PyTorch computes the logs in float and clamps them at -100
  const double lp = std::max(double(std::log(float(p))), -100.0);
  const double l1p = std::max(double(std::log(float(1.0 - p))), -100.0);
  return -(t * lp + (1 - t) * l1p);
}
double bce_grad_ref(double p, double t) { return (p - t) / std::max((1 - p) * p, 1e-12); }

void check_scalar(float got, double want, double tol) {
  INFO("got " << got << " want " << want);
  CHECK(std::isfinite(got));
  CHECK(std::abs(double(got) - want) <= tol * (std::abs(want) + 1e-6));
}

}  // namespace

TEST_CASE("mse and l1 loss with gradients", "[cuda][loss]") {
  for (int64_t n : {int64_t(1), int64_t(49152), int64_t(32 * 3 * 128 * 128 + 7)}) {
    const auto hp = randu(static_cast<size_t>(n)), ht = randu(static_cast<size_t>(n));
    auto p = upload(hp), t = upload(ht);
    const float gs = 0.5f;
    for (int l1 = 0; l1 < 2; ++l1) {
      double sum = 0;
      std::vector<double> g(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) {
        const double e = double(hp[size_t(i)]) - ht[size_t(i)];
        sum += l1 ? std::abs(e) : e * e;
        g[size_t(i)] = gs * (l1 ? (e > 0 ? 1.0 : (e < 0 ? -1.0 : 0.0)) : 2 * e) / double(n);
      }
      auto loss = poisoned(1);
      auto grad = poisoned(static_cast<size_t>(n));
      if (l1)
        dc::l1_loss_fwd_bwd(p.data(), t.data(), n, loss.data(), grad.data(), gs);
      else
        dc::mse_loss_fwd_bwd(p.data(), t.data(), n, loss.data(), grad.data(), gs);
      check_scalar(download_scalar(loss.data()), sum / double(n), 1e-5);
      CHECK(rel_l2(download(grad), g) <= 1e-6);
      // loss only
      dtest::poison(loss);
      dc::mse_loss_fwd_bwd(p.data(), t.data(), n, loss.data(), nullptr);
      CHECK(std::isfinite(download_scalar(loss.data())));
    }
  }
}

TEST_CASE("binary cross-entropy on probabilities and on logits", "[cuda][loss]") {
  const int64_t n = 4099;
  auto hp = randu(size_t(n), 0.f, 1.f);
  auto ht = randu(size_t(n), 0.f, 1.f);
  hp[0] = 0.f;  // log clamp at -100
  hp[1] = 1.f;
  ht[0] = 1.f;
  ht[1] = 0.f;
  hp[2] = 0.f;
  ht[2] = 0.f;  // 0 * log(0) must not be NaN (PyTorch: the clamp makes it 0 * -100)
  auto p = upload(hp), t = upload(ht);
  {
    double sum = 0;
    std::vector<double> g(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      sum += bce_ref(hp[size_t(i)], ht[size_t(i)]);
      g[size_t(i)] = bce_grad_ref(hp[size_t(i)], ht[size_t(i)]) / double(n);
    }
    auto loss = poisoned(1);
    auto grad = poisoned(static_cast<size_t>(n));
    dc::bce_loss_fwd_bwd(p.data(), t.data(), 0.f, n, loss.data(), grad.data());
    check_scalar(download_scalar(loss.data()), sum / double(n), 1e-5);
    CHECK(rel_l2(download(grad), g) <= 1e-5);
  }
  {  // constant target (GAN labels)
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) sum += bce_ref(hp[size_t(i)], 1.0);
    auto loss = poisoned(1);
    dc::bce_loss_fwd_bwd(p.data(), nullptr, 1.f, n, loss.data(), nullptr);
    check_scalar(download_scalar(loss.data()), sum / double(n), 1e-5);
  }
  {  // logits
    const auto hx = randu(size_t(n), -20.f, 20.f);
    auto x = upload(hx);
    double sum = 0;
    std::vector<double> g(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      const double v = hx[size_t(i)], tv = ht[size_t(i)];
      sum += std::max(v, 0.0) - v * tv + std::log1p(std::exp(-std::abs(v)));
      g[size_t(i)] = (1 / (1 + std::exp(-v)) - tv) / double(n);
    }
    auto loss = poisoned(1);
    auto grad = poisoned(static_cast<size_t>(n));
    dc::bce_with_logits_fwd_bwd(x.data(), t.data(), 0.f, n, loss.data(), grad.data());
    check_scalar(download_scalar(loss.data()), sum / double(n), 1e-5);
    CHECK(rel_l2(download(grad), g) <= 1e-5);
  }
}

TEST_CASE("fused reconstruction + adversarial loss", "[cuda][loss]") {
  const int64_t n = 2 * 3 * 64 * 64 + 3, m = 32;
  // shift 0: 16-byte aligned, the float4 path; shift 1: pred and its gradient one float into
  // their buffers (a view at an odd offset), the scalar path.
  const int shift = GENERATE(0, 1);
  INFO("pred / grad_pred offset by " << shift << " floats");
  auto hp = randu(static_cast<size_t>(n + shift));
  const auto ht = randu(static_cast<size_t>(n));
  auto hd = randu(size_t(m), 0.01f, 0.99f);
  hd[0] = 0.f;  // clamp
  auto p = upload(hp), t = upload(ht), d = upload(hd);
  hp.erase(hp.begin(), hp.begin() + shift);
  const float label = 1.f, weight = 0.03f, gs = 2.f;
  for (dc::ReconLoss kind : {dc::ReconLoss::MSE, dc::ReconLoss::L1}) {
    double rs = 0, as = 0;
    std::vector<double> gp(static_cast<size_t>(n)), gd(static_cast<size_t>(m));
    for (int64_t i = 0; i < n; ++i) {
      const double e = double(hp[size_t(i)]) - ht[size_t(i)];
      const bool l1 = kind == dc::ReconLoss::L1;
      rs += l1 ? std::abs(e) : e * e;
      gp[size_t(i)] = gs * (l1 ? (e > 0 ? 1.0 : (e < 0 ? -1.0 : 0.0)) : 2 * e) / double(n);
    }
    for (int64_t j = 0; j < m; ++j) {
      as += bce_ref(hd[size_t(j)], label);
      gd[size_t(j)] = gs * weight * bce_grad_ref(hd[size_t(j)], label) / double(m);
    }
    const double recon = rs / double(n), adv = as / double(m);
    auto loss = poisoned(3);
    auto g1 = poisoned(static_cast<size_t>(n + shift)), g2 = poisoned(static_cast<size_t>(m));
    dc::recon_adv_loss_fwd_bwd(kind, p.data() + shift, t.data(), n, d.data(), m, label, weight, loss.data(),
                               g1.data() + shift, g2.data(), gs);
    const auto l = download(loss);
    check_scalar(l[0], recon + weight * adv, 1e-5);
    check_scalar(l[1], recon, 1e-5);
    check_scalar(l[2], adv, 1e-5);
    CHECK(rel_l2(download(g1.data() + shift, size_t(n)), gp) <= 1e-6);
    CHECK(rel_l2(download(g2), gd) <= 1e-5);
  }
}
