// Element-wise ops, activations, bias add / sum, reductions, strided copies, bf16 conversion,
// against loops in double on fresh random data, outputs poisoned with NaN first.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "common.hpp"
#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/core/error.hpp"

namespace dc = disco::cuda;
using dtest::download;
using dtest::poisoned;
using dtest::randu;
using dtest::rel_l2;
using dtest::upload;

namespace {
const int64_t kSizes[] = {1, 25, 487, 4099, 1 << 20};
}

TEST_CASE("binary element-wise ops", "[cuda][elementwise]") {
  for (int64_t n : kSizes) {
    const auto ha = randu(static_cast<size_t>(n)), hb = randu(static_cast<size_t>(n));
    auto a = upload(ha), b = upload(hb);
    auto y = poisoned(static_cast<size_t>(n));
    std::vector<double> want(static_cast<size_t>(n));
    dc::add(a.data(), b.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(ha[size_t(i)]) + hb[size_t(i)];
    CHECK(rel_l2(download(y), want) <= 1e-6);
    dtest::poison(y);
    dc::sub(a.data(), b.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(ha[size_t(i)]) - hb[size_t(i)];
    CHECK(rel_l2(download(y), want) <= 1e-6);
    dtest::poison(y);
    dc::mul(a.data(), b.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(ha[size_t(i)]) * hb[size_t(i)];
    CHECK(rel_l2(download(y), want) <= 1e-6);
    dtest::poison(y);
    dc::scale(a.data(), -2.5f, y.data(), n);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = -2.5 * ha[size_t(i)];
    CHECK(rel_l2(download(y), want) <= 1e-6);
    // axpy accumulates into y = b
    dc::memcpy_d2d(y.data(), b.data(), size_t(n) * 4);
    dc::axpy(0.75f, a.data(), y.data(), n);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = hb[size_t(i)] + 0.75 * ha[size_t(i)];
    CHECK(rel_l2(download(y), want) <= 1e-6);
    dtest::poison(y);
    dc::fill(y.data(), n, 3.25f);
    for (float v : download(y)) REQUIRE(v == 3.25f);
    // in place
    dc::add(a.data(), b.data(), a.data(), n);
    for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(ha[size_t(i)]) + hb[size_t(i)];
    CHECK(rel_l2(download(a), want) <= 1e-6);
  }
}

TEST_CASE("element-wise ops on views at odd offsets (the scalar path)", "[cuda][elementwise]") {
  // pointers one float past 16-byte alignment cannot take the float4 path
  const int64_t n = 4099;
  const auto ha = randu(size_t(n) + 1), hb = randu(size_t(n) + 1);
  auto a = upload(ha), b = upload(hb);
  auto y = poisoned(size_t(n) + 1);
  for (int sa : {0, 1})
    for (int sy : {0, 1}) {
      INFO("a offset " << sa << ", y offset " << sy);
      dtest::poison(y);
      dc::add(a.data() + sa, b.data(), y.data() + sy, n);
      std::vector<double> want(static_cast<size_t>(n));
      for (int64_t i = 0; i < n; ++i) want[size_t(i)] = double(ha[size_t(i + sa)]) + hb[size_t(i)];
      CHECK(rel_l2(download(y.data() + sy, size_t(n)), want) <= 1e-6);
      dc::memcpy_d2d(y.data() + sy, b.data(), size_t(n) * 4);
      dc::relu_bwd(a.data() + sa, b.data(), y.data() + sy, n, true);  // y = b + a * (b > 0)
      for (int64_t i = 0; i < n; ++i)
        want[size_t(i)] = double(hb[size_t(i)]) + (hb[size_t(i)] > 0.f ? double(ha[size_t(i + sa)]) : 0.0);
      CHECK(rel_l2(download(y.data() + sy, size_t(n)), want) <= 1e-6);
    }
}

TEST_CASE("channel bias add and bias gradient", "[cuda][elementwise]") {
  struct S { int64_t N, C, HW; };
  for (S s : {S{1, 3, 1}, S{2, 487, 4}, S{3, 25, 4096}, S{32, 32, 64}}) {
    const auto hx = randu(size_t(s.N * s.C * s.HW)), hb = randu(size_t(s.C));
    auto x = upload(hx), b = upload(hb);
    auto y = poisoned(hx.size());
    dc::add_channel_bias(x.data(), b.data(), y.data(), s.N, s.C, s.HW);
    std::vector<double> want(hx.size()), dbw(size_t(s.C), 0.0);
    for (int64_t n = 0; n < s.N; ++n)
      for (int64_t c = 0; c < s.C; ++c)
        for (int64_t i = 0; i < s.HW; ++i) {
          const size_t k = size_t((n * s.C + c) * s.HW + i);
          want[k] = double(hx[k]) + hb[size_t(c)];
          dbw[size_t(c)] += hx[k];
        }
    CHECK(rel_l2(download(y), want) <= 1e-6);
    auto db = poisoned(size_t(s.C));
    dc::channel_sum(x.data(), db.data(), s.N, s.C, s.HW, false);
    CHECK(rel_l2(download(db), dbw) <= 1e-5);
    // accumulate: db += sum again
    dc::channel_sum(x.data(), db.data(), s.N, s.C, s.HW, true);
    for (auto& v : dbw) v *= 2;
    CHECK(rel_l2(download(db), dbw) <= 1e-5);
  }
}

TEST_CASE("activations forward and backward", "[cuda][elementwise]") {
  const int64_t n = 100003;
  auto hx = randu(size_t(n), -4.f, 4.f);
  hx[0] = 0.f;  // the kink
  const auto hdy = randu(static_cast<size_t>(n));
  auto x = upload(hx), dy = upload(hdy);
  auto y = poisoned(static_cast<size_t>(n)), dx = poisoned(static_cast<size_t>(n));
  std::vector<double> wy(static_cast<size_t>(n)), wdx(static_cast<size_t>(n));
  const float slope = 0.2f;

  dc::relu_fwd(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) wy[size_t(i)] = hx[size_t(i)] > 0 ? hx[size_t(i)] : 0.0;
  CHECK(rel_l2(download(y), wy) <= 1e-7);
  for (int from_y = 0; from_y < 2; ++from_y) {
    dtest::poison(dx);
    dc::relu_bwd(dy.data(), from_y ? y.data() : x.data(), dx.data(), n);
    for (int64_t i = 0; i < n; ++i) wdx[size_t(i)] = hx[size_t(i)] > 0 ? hdy[size_t(i)] : 0.0;
    CHECK(rel_l2(download(dx), wdx) <= 1e-7);
  }

  dtest::poison(y);
  dc::leaky_relu_fwd(x.data(), y.data(), n, slope);
  for (int64_t i = 0; i < n; ++i) wy[size_t(i)] = hx[size_t(i)] > 0 ? hx[size_t(i)] : double(slope) * hx[size_t(i)];
  CHECK(rel_l2(download(y), wy) <= 1e-6);
  for (int from_y = 0; from_y < 2; ++from_y) {
    dtest::poison(dx);
    dc::leaky_relu_bwd(dy.data(), from_y ? y.data() : x.data(), dx.data(), n, slope);
    for (int64_t i = 0; i < n; ++i)
      wdx[size_t(i)] = hx[size_t(i)] > 0 ? hdy[size_t(i)] : double(slope) * hdy[size_t(i)];
    CHECK(rel_l2(download(dx), wdx) <= 1e-6);
  }
  // accumulate
  dc::leaky_relu_bwd(dy.data(), x.data(), dx.data(), n, slope, true);
  for (auto& v : wdx) v *= 2;
  CHECK(rel_l2(download(dx), wdx) <= 1e-6);

  dtest::poison(y);
  dc::tanh_fwd(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) wy[size_t(i)] = std::tanh(double(hx[size_t(i)]));
  CHECK(rel_l2(download(y), wy) <= 1e-6);
  dtest::poison(dx);
  dc::tanh_bwd(dy.data(), y.data(), dx.data(), n);
  for (int64_t i = 0; i < n; ++i) wdx[size_t(i)] = hdy[size_t(i)] * (1 - wy[size_t(i)] * wy[size_t(i)]);
  CHECK(rel_l2(download(dx), wdx) <= 1e-5);

  dtest::poison(y);
  dc::sigmoid_fwd(x.data(), y.data(), n);
  for (int64_t i = 0; i < n; ++i) wy[size_t(i)] = 1.0 / (1.0 + std::exp(-double(hx[size_t(i)])));
  CHECK(rel_l2(download(y), wy) <= 1e-6);
  dtest::poison(dx);
  dc::sigmoid_bwd(dy.data(), y.data(), dx.data(), n);
  for (int64_t i = 0; i < n; ++i) wdx[size_t(i)] = hdy[size_t(i)] * wy[size_t(i)] * (1 - wy[size_t(i)]);
  CHECK(rel_l2(download(dx), wdx) <= 1e-5);
}

TEST_CASE("sum, mean, sumsq", "[cuda][reduce]") {
  for (int64_t n : kSizes) {
    const auto h = randu(size_t(n), -1.f, 2.f);
    auto x = upload(h);
    auto out = poisoned(1);
    double s = 0, q = 0;
    for (float v : h) { s += v; q += double(v) * v; }
    dc::sum(x.data(), n, out.data());
    CHECK(std::abs(dtest::download_scalar(out.data()) - s) <= 1e-5 * (std::abs(s) + std::sqrt(double(n))));
    dtest::poison(out);
    dc::mean(x.data(), n, out.data());
    CHECK(std::abs(dtest::download_scalar(out.data()) - s / double(n)) <= 1e-5 * (std::abs(s / double(n)) + 1e-3));
    dtest::poison(out);
    dc::sumsq(x.data(), n, out.data());
    CHECK(std::abs(dtest::download_scalar(out.data()) - q) <= 1e-5 * q);
    // deterministic: same bits twice
    auto out2 = poisoned(1);
    dc::sumsq(x.data(), n, out2.data());
    CHECK(dtest::download_scalar(out.data()) == dtest::download_scalar(out2.data()));
  }
}

TEST_CASE("max_abs_diff: largest difference and largest reference magnitude, NaN wins", "[cuda][reduce]") {
  for (int64_t n : kSizes) {
    const auto ha = randu(size_t(n), -1.f, 2.f), hb = randu(size_t(n), -3.f, 1.f);
    auto a = upload(ha), b = upload(hb);
    auto out = poisoned(2);
    float d = 0.f, m = 0.f;
    for (size_t i = 0; i < ha.size(); ++i) {
      d = std::max(d, std::abs(ha[i] - hb[i]));
      m = std::max(m, std::abs(hb[i]));
    }
    dc::max_abs_diff(a.data(), b.data(), n, out.data());
    auto got = download(out);
    INFO("n = " << n);
    CHECK(got[0] == d);  // exact: a max of exactly computed values
    CHECK(got[1] == m);
    // one NaN anywhere (last element: the tail of the last thread) makes the difference NaN;
    // the reference's maximum ignores it
    std::vector<float> hn = ha;
    hn.back() = NAN;
    auto an = upload(hn);
    dc::max_abs_diff(an.data(), b.data(), n, out.data());
    got = download(out);
    CHECK(std::isnan(got[0]));
    CHECK(got[1] == m);
  }
  auto out = poisoned(2);  // nothing to compare: 0 and 0
  dc::max_abs_diff(nullptr, nullptr, 0, out.data());
  CHECK(download(out) == std::vector<float>{0.f, 0.f});
}

TEST_CASE("strided copies: transpose, slice, concat, 6-d permute", "[cuda][copy]") {
  {  // 2-D transpose [37 x 53] -> [53 x 37]
    const int64_t R = 37, C = 53;
    const auto h = randu(size_t(R * C));
    auto src = upload(h);
    auto dst = poisoned(h.size());
    const int64_t shape[] = {R, C}, ss[] = {C, 1}, ds[] = {1, R};
    dc::copy_strided(src.data(), ss, dst.data(), ds, shape, 2);
    const auto got = download(dst);
    for (int64_t r = 0; r < R; ++r)
      for (int64_t c = 0; c < C; ++c) REQUIRE(got[size_t(c * R + r)] == h[size_t(r * C + c)]);
  }
  {  // concat along channels: [2,487,2,2] ++ [2,25,2,2] -> [2,512,2,2]
    const int64_t N = 2, C1 = 487, C2 = 25, HW = 4, C = C1 + C2;
    const auto a = randu(size_t(N * C1 * HW)), b = randu(size_t(N * C2 * HW));
    auto da = upload(a), db = upload(b);
    auto out = poisoned(size_t(N * C * HW));
    const int64_t sa[] = {N, C1, HW}, sb[] = {N, C2, HW};
    const int64_t src_a[] = {C1 * HW, HW, 1}, src_b[] = {C2 * HW, HW, 1}, dst_s[] = {C * HW, HW, 1};
    dc::copy_strided(da.data(), src_a, out.data(), dst_s, sa, 3);
    dc::copy_strided(db.data(), src_b, out.data() + C1 * HW, dst_s, sb, 3);
    const auto got = download(out);
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c)
        for (int64_t i = 0; i < HW; ++i) {
          const float want = c < C1 ? a[size_t((n * C1 + c) * HW + i)] : b[size_t((n * C2 + c - C1) * HW + i)];
          REQUIRE(got[size_t((n * C + c) * HW + i)] == want);
        }
  }
  {  // 6-D reversal of the axes
    const int64_t sh[] = {2, 3, 1, 4, 5, 2};
    int64_t n = 1;
    for (auto v : sh) n *= v;
    const auto h = randu(static_cast<size_t>(n));
    auto src = upload(h);
    auto dst = poisoned(static_cast<size_t>(n));
    int64_t ss[6], ds[6];
    ss[5] = 1;
    for (int d = 4; d >= 0; --d) ss[d] = ss[d + 1] * sh[d + 1];
    // destination has the reversed shape, contiguous
    int64_t rs[6];
    for (int d = 0; d < 6; ++d) rs[d] = sh[5 - d];
    int64_t rstride[6];
    rstride[5] = 1;
    for (int d = 4; d >= 0; --d) rstride[d] = rstride[d + 1] * rs[d + 1];
    for (int d = 0; d < 6; ++d) ds[d] = rstride[5 - d];
    dc::copy_strided(src.data(), ss, dst.data(), ds, sh, 6);
    const auto got = download(dst);
    int64_t idx[6];
    for (int64_t lin = 0; lin < n; ++lin) {
      int64_t rem = lin;
      for (int d = 5; d >= 0; --d) { idx[d] = rem % sh[d]; rem /= sh[d]; }
      int64_t so = 0, dof = 0;
      for (int d = 0; d < 6; ++d) { so += idx[d] * ss[d]; dof += idx[d] * ds[d]; }
      REQUIRE(got[size_t(dof)] == h[size_t(so)]);
    }
  }
}

TEST_CASE("bf16 conversion rounds to nearest even", "[cuda][elementwise]") {
  const std::vector<float> h = {1.0f, 1.00390625f /* tie: 1 + 2^-8 -> 1 */, 1.01171875f /* 1 + 3*2^-8 -> up */,
                                -3.14159f, 65504.f, 1e-30f};
  auto x = upload(h);
  dc::DeviceArray<uint16_t> b(h.size());
  dc::f32_to_bf16(x.data(), b.data(), int64_t(h.size()));
  auto y = poisoned(h.size());
  dc::bf16_to_f32(b.data(), y.data(), int64_t(h.size()));
  const auto got = download(y);
  CHECK(got[0] == 1.0f);
  CHECK(got[1] == 1.0f);
  CHECK(got[2] == 1.015625f);
  for (size_t i = 3; i < h.size(); ++i) CHECK(std::abs(got[i] - h[i]) <= std::abs(h[i]) * (1.0 / 256));
}

// cuDNN as the oracle of the element-wise kernels and reductions that have a cuDNN
// counterpart (LeakyReLU, the fused losses and Adam have none). Both sides are also held to
// the double reference, so a wrong oracle fails too; odd sizes.
TEST_CASE("element-wise ops, activations and reductions match cuDNN", "[cuda][elementwise][reduce][cudnn]") {
  using dc::ReferenceActivation;
  using dc::ReferenceReduce;
  if (!dc::cudnn_available()) {
    float* none = nullptr;
    CHECK_THROWS_AS(dc::cudnn_add(none, none, none, 4), disco::Error);
    CHECK_THROWS_AS(dc::cudnn_reduce(ReferenceReduce::Sum, none, 4, none), disco::Error);
    WARN("built without cuDNN: the element-wise ops are not compared with cuDNN");
    return;
  }
  for (int64_t n : {int64_t(1), int64_t(25), int64_t(4099), int64_t(1) << 20}) {
    // offset 1 (a view one float past 16-byte alignment) is disco's scalar path, checked above
    // against double; cuDNN may require aligned tensors, so the comparison uses offset 0 only
    for (int offset = 0; offset < 1; ++offset) {
      INFO("n=" << n << " offset=" << offset);
      const size_t un = size_t(n), uo = size_t(offset);
      auto ha = randu(un + uo, -4.f, 4.f), hb = randu(un + uo, -4.f, 4.f);
      ha[uo] = 0.f;  // the ReLU kink
      const auto hdy = randu(un + uo);
      auto a_buf = upload(ha), b_buf = upload(hb), dy_buf = upload(hdy);
      const float *a = a_buf.data() + offset, *b = b_buf.data() + offset, *dy = dy_buf.data() + offset;
      auto y = poisoned(un), cy = poisoned(un), dx = poisoned(un), cdx = poisoned(un);
      std::vector<double> want(un), want_dx(un);
      // tol: disco against the double reference; cuDNN may use approximate transcendentals
      // (tanh, sigmoid), so it is held to ref_tol
      const auto compare = [&](const char* what, double tol, double ref_tol) {
        INFO(what);
        const auto got = download(y), ref = download(cy);
        CHECK(rel_l2(got, want) <= tol);
        CHECK(rel_l2(ref, want) <= ref_tol);
        CHECK(rel_l2(got, ref) <= tol + ref_tol);
      };

      dc::add(a, b, y.data(), n);
      dc::cudnn_add(a, b, cy.data(), n);
      for (size_t i = 0; i < un; ++i) want[i] = double(ha[i + uo]) + hb[i + uo];
      compare("add", 1e-6, 1e-6);
      dc::mul(a, b, y.data(), n);
      dc::cudnn_mul(a, b, cy.data(), n);
      for (size_t i = 0; i < un; ++i) want[i] = double(ha[i + uo]) * hb[i + uo];
      compare("mul", 1e-6, 1e-6);

      for (ReferenceActivation act : {ReferenceActivation::ReLU, ReferenceActivation::Tanh,
                                      ReferenceActivation::Sigmoid}) {
        INFO("activation " << int(act));
        dtest::poison(y);
        dtest::poison(cy);
        for (size_t i = 0; i < un; ++i) {
          const double v = ha[i + uo];
          want[i] = act == ReferenceActivation::ReLU ? (v > 0 ? v : 0.0)
                    : act == ReferenceActivation::Tanh ? std::tanh(v)
                                                       : 1.0 / (1.0 + std::exp(-v));
          const double d = act == ReferenceActivation::ReLU ? (v > 0 ? 1.0 : 0.0)
                           : act == ReferenceActivation::Tanh ? 1 - want[i] * want[i]
                                                              : want[i] * (1 - want[i]);
          want_dx[i] = hdy[i + uo] * d;
        }
        if (act == ReferenceActivation::ReLU) dc::relu_fwd(a, y.data(), n);
        if (act == ReferenceActivation::Tanh) dc::tanh_fwd(a, y.data(), n);
        if (act == ReferenceActivation::Sigmoid) dc::sigmoid_fwd(a, y.data(), n);
        dc::cudnn_activation_fwd(act, a, cy.data(), n);
        compare("forward", 1e-6, 1e-5);
        dtest::poison(dx);
        dtest::poison(cdx);
        if (act == ReferenceActivation::ReLU) dc::relu_bwd(dy, a, dx.data(), n);
        if (act == ReferenceActivation::Tanh) dc::tanh_bwd(dy, y.data(), dx.data(), n);
        if (act == ReferenceActivation::Sigmoid) dc::sigmoid_bwd(dy, y.data(), dx.data(), n);
        dc::cudnn_activation_bwd(act, dy, a, cy.data(), cdx.data(), n);
        const auto got = download(dx), ref = download(cdx);
        CHECK(rel_l2(got, want_dx) <= 1e-5);
        CHECK(rel_l2(ref, want_dx) <= 1e-5);
        CHECK(rel_l2(got, ref) <= 1e-5);
      }

      // reductions: within 1e-5 of the double value, scaled by sum |x| (the rounding of any order)
      double s = 0, q = 0, sabs = 0;
      for (size_t i = 0; i < un; ++i) {
        s += ha[i + uo];
        q += double(ha[i + uo]) * ha[i + uo];
        sabs += std::abs(double(ha[i + uo]));
      }
      auto out = poisoned(1), cout = poisoned(1);
      if (n == 1) {  // cuDNN refuses to reduce nothing (disco's n = 1 reductions are checked above)
        CHECK_THROWS_AS(dc::cudnn_reduce(ReferenceReduce::Sum, a, n, cout.data()), disco::Error);
        continue;
      }
      dc::sum(a, n, out.data());
      dc::cudnn_reduce(ReferenceReduce::Sum, a, n, cout.data());
      const double got_s = dtest::download_scalar(out.data()), ref_s = dtest::download_scalar(cout.data());
      CHECK(std::abs(got_s - s) <= 1e-5 * (sabs + 1));
      CHECK(std::abs(ref_s - s) <= 1e-5 * (sabs + 1));
      dc::mean(a, n, out.data());
      dc::cudnn_reduce(ReferenceReduce::Mean, a, n, cout.data());
      CHECK(std::abs(dtest::download_scalar(out.data()) - dtest::download_scalar(cout.data())) <=
            2e-5 * (sabs / double(n) + 1e-6));
      dc::sumsq(a, n, out.data());
      dc::cudnn_reduce(ReferenceReduce::L2Norm, a, n, cout.data());
      const double got_q = dtest::download_scalar(out.data()), ref_norm = dtest::download_scalar(cout.data());
      CHECK(std::abs(got_q - q) <= 1e-5 * q);
      CHECK(std::abs(ref_norm - std::sqrt(q)) <= 1e-5 * std::sqrt(q));
      CHECK(std::abs(std::sqrt(got_q) - ref_norm) <= 2e-5 * ref_norm);
    }
  }
}
