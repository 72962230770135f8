// Linear layers (cuBLAS) against double loops, in FP32 / TF32 / BF16 math.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/ops.hpp"

namespace dc = disco::cuda;
using dtest::download;
using dtest::poisoned;
using dtest::randu;
using dtest::rel_l2;
using dtest::upload;

namespace {
// ||got - want|| relative to ||scale||, scale[i] the sum of the magnitudes of the terms of
// want[i] (the size of its rounding error; want itself may cancel towards zero). NaN fails.
double scaled_err(const std::vector<float>& got, const std::vector<double>& want, const std::vector<double>& scale) {
  double num = 0, den = 0;
  for (size_t i = 0; i < want.size(); ++i) {
    num += (double(got[i]) - want[i]) * (double(got[i]) - want[i]);
    den += scale[i] * scale[i];
  }
  return std::isfinite(num) ? std::sqrt(num / den) : INFINITY;
}
}  // namespace

TEST_CASE("linear forward and backward", "[cuda][linear]") {
  struct S { int64_t M, N, K; };
  for (S s : {S{1, 1, 1}, S{37, 487, 25}, S{32, 1, 512}, S{64, 512, 3}, S{5, 7, 2048}}) {
    const auto hx = randu(size_t(s.M * s.K)), hw = randu(size_t(s.N * s.K)), hb = randu(size_t(s.N));
    const auto hdy = randu(size_t(s.M * s.N));
    std::vector<double> y(size_t(s.M * s.N)), dx(size_t(s.M * s.K), 0.0), dw(size_t(s.N * s.K), 0.0),
        db(size_t(s.N), 0.0);
    // |b| + sum |x w| per output: the scale of y's rounding error. y itself may cancel to near
    // zero (with M = N = K = 1 it is one element), which made a test relative to ||y|| flaky.
    std::vector<double> y_scale(y.size()), db_scale(db.size(), 0.0);
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) {
        double acc = hb[size_t(n)], mag = std::abs(double(hb[size_t(n)]));
        for (int64_t k = 0; k < s.K; ++k) {
          acc += double(hx[size_t(m * s.K + k)]) * hw[size_t(n * s.K + k)];
          mag += std::abs(double(hx[size_t(m * s.K + k)]) * hw[size_t(n * s.K + k)]);
        }
        y[size_t(m * s.N + n)] = acc;
        y_scale[size_t(m * s.N + n)] = mag;
        const double g = hdy[size_t(m * s.N + n)];
        db[size_t(n)] += g;
        db_scale[size_t(n)] += std::abs(g);  // db may cancel too (N = 1: one sum of M terms)
        for (int64_t k = 0; k < s.K; ++k) {
          dx[size_t(m * s.K + k)] += g * hw[size_t(n * s.K + k)];
          dw[size_t(n * s.K + k)] += g * hx[size_t(m * s.K + k)];
        }
      }
    auto x = upload(hx), w = upload(hw), b = upload(hb), dy = upload(hdy);
    for (dc::MathMode mode : {dc::MathMode::FP32, dc::MathMode::TF32, dc::MathMode::BF16}) {
      INFO("M=" << s.M << " N=" << s.N << " K=" << s.K << " mode=" << dc::to_string(mode));
      // BF16 rounds each operand to 8 significant bits (unit roundoff 2^-8): one product
      // (M = N = K = 1) may be off by 2 * 2^-8 = 7.8e-3 relative; sums of many average out
      const double tol = mode == dc::MathMode::BF16 && s.M * s.N * s.K == 1 ? 1e-2 : dtest::tolerance(mode);
      auto gy = poisoned(y.size());
      dc::linear_fwd(x.data(), w.data(), b.data(), gy.data(), s.M, s.N, s.K, mode);
      CHECK(scaled_err(download(gy), y, y_scale) <= tol);
      auto gdx = poisoned(dx.size()), gdw = poisoned(dw.size()), gdb = poisoned(db.size());
      dc::linear_bwd(dy.data(), x.data(), w.data(), gdx.data(), gdw.data(), gdb.data(), s.M, s.N, s.K, false, mode);
      CHECK(rel_l2(download(gdx), dx) <= tol);
      CHECK(rel_l2(download(gdw), dw) <= tol);
      CHECK(scaled_err(download(gdb), db, db_scale) <= 1e-5);
      // accumulate
      dc::linear_bwd(dy.data(), x.data(), w.data(), gdx.data(), gdw.data(), gdb.data(), s.M, s.N, s.K, true, mode);
      auto dw2 = dw;
      for (auto& v : dw2) v *= 2;
      CHECK(rel_l2(download(gdw), dw2) <= tol);
      auto db2 = db, db2_scale = db_scale;
      for (auto& v : db2) v *= 2;
      for (auto& v : db2_scale) v *= 2;
      CHECK(scaled_err(download(gdb), db2, db2_scale) <= 1e-5);
    }
    // no bias, null outputs skipped
    auto gy = poisoned(y.size());
    dc::linear_fwd(x.data(), w.data(), nullptr, gy.data(), s.M, s.N, s.K);
    auto yb = y;
    for (int64_t m = 0; m < s.M; ++m)
      for (int64_t n = 0; n < s.N; ++n) yb[size_t(m * s.N + n)] -= hb[size_t(n)];
    CHECK(rel_l2(download(gy), yb) <= 1e-5);
    auto gdw = poisoned(dw.size());
    dc::linear_bwd(dy.data(), x.data(), w.data(), nullptr, gdw.data(), nullptr, s.M, s.N, s.K, false);
    CHECK(rel_l2(download(gdw), dw) <= 1e-5);
  }
}
