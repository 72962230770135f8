// Multi-tensor Adam and clip_grad_norm_ against double loops of PyTorch's formulas.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/ops.hpp"

namespace dc = disco::cuda;
using dtest::download;
using dtest::randu;
using dtest::rel_l2;
using dtest::upload;

namespace {
// sizes: odd, crossing chunk boundaries, and more tensors than one launch table holds
std::vector<int64_t> tensor_sizes() {
  std::vector<int64_t> s = {1, 3, 487, 16384, 16385, 2 * 16384 + 5, 487 * 487 * 16};
  for (int i = 0; i < 30; ++i) s.push_back(25 + i * 7);
  return s;
}
}  // namespace

TEST_CASE("fused multi-tensor Adam matches torch.optim.Adam", "[cuda][optim]") {
  const auto sizes = tensor_sizes();
  for (float wd : {0.f, 0.01f}) {
    for (int use_scale = 0; use_scale < 2; ++use_scale) {
      std::vector<std::vector<double>> P, M, V;
      std::vector<dc::DeviceArray<float>> dp, dg, dm, dv;
      std::vector<std::vector<float>> G;
      for (int64_t n : sizes) {
        const auto p = randu(static_cast<size_t>(n));
        P.push_back(dtest::to_double(p));
        M.emplace_back(size_t(n), 0.0);
        V.emplace_back(size_t(n), 0.0);
        dp.push_back(upload(p));
        dg.emplace_back(static_cast<size_t>(n));
        dm.push_back(upload(std::vector<float>(size_t(n), 0.f)));
        dv.push_back(upload(std::vector<float>(size_t(n), 0.f)));
        G.emplace_back();
      }
      dc::AdamHyper h;
      h.lr = 2e-3f;
      h.beta1 = 0.5f;
      h.beta2 = 0.999f;
      h.eps = 1e-8f;
      h.weight_decay = wd;
      const float scale = 0.37f;
      auto dscale = upload({scale});
      for (int step = 1; step <= 3; ++step) {
        std::vector<dc::AdamTensor> ts;
        for (size_t i = 0; i < sizes.size(); ++i) {
          G[i] = randu(size_t(sizes[i]));
          dc::memcpy_h2d(dg[i].data(), G[i].data(), G[i].size() * 4);
          ts.push_back({dp[i].data(), dg[i].data(), dm[i].data(), dv[i].data(), sizes[i]});
        }
        h.step = step;
        dc::adam_update(ts, h, use_scale ? dscale.data() : nullptr);
        const double bc1 = 1 - std::pow(double(h.beta1), step), bc2 = 1 - std::pow(double(h.beta2), step);
        for (size_t i = 0; i < sizes.size(); ++i)
          for (size_t k = 0; k < size_t(sizes[i]); ++k) {
            double g = G[i][k] * (use_scale ? double(scale) : 1.0) + double(wd) * P[i][k];
            M[i][k] = h.beta1 * M[i][k] + (1 - h.beta1) * g;
            V[i][k] = h.beta2 * V[i][k] + (1 - h.beta2) * g * g;
            P[i][k] -= h.lr / bc1 * M[i][k] / (std::sqrt(V[i][k]) / std::sqrt(bc2) + h.eps);
          }
      }
      for (size_t i = 0; i < sizes.size(); ++i) {
        INFO("tensor " << i << " size " << sizes[i] << " wd " << wd << " scale " << use_scale);
        REQUIRE(rel_l2(download(dp[i]), P[i]) <= 1e-5);
        REQUIRE(rel_l2(download(dm[i]), M[i]) <= 1e-5);
        REQUIRE(rel_l2(download(dv[i]), V[i]) <= 1e-5);
      }
    }
  }
}

TEST_CASE("clip_grad_norm matches torch.nn.utils.clip_grad_norm_", "[cuda][optim]") {
  const auto sizes = tensor_sizes();
  for (float max_norm : {1.0f, 1e6f}) {
    std::vector<std::vector<float>> G;
    std::vector<dc::DeviceArray<float>> dg;
    std::vector<dc::GradTensor> gs;
    double sq = 0;
    for (int64_t n : sizes) {
      G.push_back(randu(static_cast<size_t>(n)));
      for (float v : G.back()) sq += double(v) * v;
      dg.push_back(upload(G.back()));
      gs.push_back({dg.back().data(), n});
    }
    const double norm = std::sqrt(sq);
    const double coef = std::min(1.0, double(max_norm) / (norm + 1e-6));
    const float got = dc::clip_grad_norm(gs, max_norm);
    CHECK(std::abs(got - norm) <= 1e-5 * norm);
    for (size_t i = 0; i < sizes.size(); ++i) {
      std::vector<double> want(G[i].begin(), G[i].end());
      for (auto& v : want) v *= coef;
      REQUIRE(rel_l2(download(dg[i]), want) <= 1e-6);
    }
  }
  // async variant: norm and coefficient on the device, grads untouched when asked
  auto g = upload(randu(1000));
  const auto before = download(g);
  auto norm = dtest::poisoned(1), coef = dtest::poisoned(1);
  dc::clip_grad_norm_async({{g.data(), 1000}}, 0.5f, norm.data(), coef.data(), false);
  double sq = 0;
  for (float v : before) sq += double(v) * v;
  CHECK(std::abs(dtest::download_scalar(norm.data()) - std::sqrt(sq)) <= 1e-5 * std::sqrt(sq));
  CHECK(std::abs(dtest::download_scalar(coef.data()) - 0.5 / (std::sqrt(sq) + 1e-6)) <= 1e-5);
  CHECK(download(g) == before);
}
