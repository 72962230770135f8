// CPU checks of the index math the CUDA convolution kernels use
// (include/disco/problem/conv2d_index.hpp): fast division, the stride phase decomposition of
// the data gradient, and a naive GEMM run through the exact fprop / dgrad / wgrad views the
// kernels use, compared with direct convolutions in double.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <vector>

#include "disco/problem/conv2d_index.hpp"
#include "reference/conv_ref.hpp"

using namespace disco;
using namespace disco::convidx;

namespace {

std::vector<double> random_vec(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<double> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

double max_abs_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return m;
}

// out[c_off(m, n)] = sum_kr A(m, kr) * B(kr, n) through the view's accessors; hits counts the
// writes to each output element (each must be written exactly once over all slots).
template <class View>
void gemm_via_view(const ConvGemmParams& g, int slot, const std::vector<double>& a_src,
                   const std::vector<double>& b_src, std::vector<double>& out, std::vector<int>& hits) {
  const int M = View::gemm_m(g, slot), N = g.gemm_n, K = View::gemm_k(g, slot);
  for (int m = 0; m < M; ++m)
    for (int n = 0; n < N; ++n) {
      double acc = 0;
      for (int kr = 0; kr < K; ++kr) {
        const int64_t ao = a_offset<View>(g, slot, m, kr);
        const int64_t bo = b_offset<View>(g, slot, kr, n);
        REQUIRE(ao < int64_t(a_src.size()));
        REQUIRE(bo < int64_t(b_src.size()));
        if (ao >= 0 && bo >= 0) acc += a_src[size_t(ao)] * b_src[size_t(bo)];
      }
      const int64_t o = View::c_off(g, slot, m, n);
      REQUIRE(o >= 0);
      REQUIRE(o < int64_t(out.size()));
      out[size_t(o)] = acc;
      hits[size_t(o)] += 1;
    }
  // Out-of-range coordinates must read as zeros.
  CHECK(a_offset<View>(g, slot, M, 0) == -1);
  CHECK(a_offset<View>(g, slot, 0, K) == -1);
  CHECK(b_offset<View>(g, slot, K, 0) == -1);
  CHECK(b_offset<View>(g, slot, 0, N) == -1);
}

Conv2dProblem make_problem(int N, int C, int H, int W, int K, int R, int S, int sh, int sw, int ph,
                           int pw, int dh, int dw) {
  Conv2dProblem p;
  p.N = N; p.C = C; p.H = H; p.W = W; p.K = K; p.R = R; p.S = S;
  p.stride_h = sh; p.stride_w = sw; p.pad_h = ph; p.pad_w = pw; p.dil_h = dh; p.dil_w = dw;
  p.compute_output_size();
  return p;
}

void check_all_views(const Conv2dProblem& p, std::mt19937& rng) {
  INFO("problem N=" << p.N << " C=" << p.C << " H=" << p.H << " W=" << p.W << " K=" << p.K
                    << " R=" << p.R << " S=" << p.S << " stride=" << p.stride_h << "," << p.stride_w
                    << " pad=" << p.pad_h << "," << p.pad_w << " dil=" << p.dil_h << "," << p.dil_w
                    << " P=" << p.P << " Q=" << p.Q);
  REQUIRE(p.P > 0);
  REQUIRE(p.Q > 0);
  const auto x = random_vec(size_t(p.x_size()), rng);
  const auto w = random_vec(size_t(p.w_size()), rng);
  const auto dy = random_vec(size_t(p.y_size()), rng);

  {  // fprop
    const auto g = make_conv_gemm_params(p, ConvKind::Fprop);
    std::vector<double> y(size_t(p.y_size()), NAN);
    std::vector<int> hits(y.size(), 0);
    gemm_via_view<FpropView>(g, 0, x, w, y, hits);
    for (int h : hits) REQUIRE(h == 1);
    CHECK(max_abs_diff(y, ref::conv2d_fprop(p, x, w)) < 1e-12);
  }
  {  // dgrad: all phases, in launch groups of kMaxPhasesPerLaunch
    std::vector<double> dx(size_t(p.x_size()), NAN);
    std::vector<int> hits(dx.size(), 0);
    int64_t work = 0;
    for (int base = 0; base < dgrad_num_phases(p); base += kMaxPhasesPerLaunch) {
      const auto g = make_conv_gemm_params(p, ConvKind::Dgrad, base);
      REQUIRE(g.num_slots >= 1);
      REQUIRE(g.num_slots <= kMaxPhasesPerLaunch);
      for (int s = 0; s < g.num_slots; ++s) {
        gemm_via_view<DgradView>(g, s, dy, w, dx, hits);
        work += int64_t(g.ph[s].M) * g.gemm_n * g.ph[s].Kred;
        CHECK(g.ph[s].M <= g.max_m);
        CHECK(g.ph[s].Kred <= g.max_kred);
      }
    }
    for (int h : hits) REQUIRE(h == 1);
    CHECK(max_abs_diff(dx, ref::conv2d_dgrad(p, dy, w)) < 1e-12);
    // The phase decomposition never does more work than the zero-inserted GEMM.
    CHECK(work <= int64_t(p.N) * p.H * p.W * p.C * int64_t(p.K) * p.R * p.S);
  }
  {  // wgrad
    const auto g = make_conv_gemm_params(p, ConvKind::Wgrad);
    std::vector<double> dw(size_t(p.w_size()), NAN);
    std::vector<int> hits(dw.size(), 0);
    gemm_via_view<WgradView>(g, 0, dy, x, dw, hits);
    for (int h : hits) REQUIRE(h == 1);
    CHECK(max_abs_diff(dw, ref::conv2d_wgrad(p, x, dy)) < 1e-12);
  }
}

}  // namespace

TEST_CASE("FastDivmod matches integer division", "[cuda_index]") {
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int> any(0, 0x7fffffff);
  std::vector<int> divisors;
  for (int d = 1; d <= 1100; ++d) divisors.push_back(d);
  for (int e = 11; e <= 30; ++e) {
    divisors.push_back(1 << e);
    divisors.push_back((1 << e) - 1);
    divisors.push_back((1 << e) + 1);
  }
  divisors.push_back(0x7fffffff);
  for (int i = 0; i < 200; ++i) divisors.push_back(any(rng) | 1);
  for (int d : divisors) {
    const FastDivmod f(d);
    auto check = [&](int n) {
      int q, r;
      f.divmod(n, q, r);
      if (q != n / d || r != n % d) FAIL("FastDivmod(" << d << ") of " << n << " gave " << q << ", " << r);
    };
    for (int n = 0; n < 3000; ++n) check(n);
    for (int i = 0; i < 300; ++i) check(any(rng));
    check(0x7fffffff);
    check(0x7ffffffe);
    for (int64_t k : {int64_t(1), int64_t(7), int64_t(1000), int64_t(0x7fffffff) / d}) {
      const int64_t n = k * d;
      for (int64_t e = -1; e <= 1; ++e)
        if (n + e >= 0 && n + e <= 0x7fffffff) check(int(n + e));
    }
  }
}

TEST_CASE("dgrad phase taps are exactly the contributing kernel taps", "[cuda_index]") {
  for (int stride = 1; stride <= 5; ++stride)
    for (int dil = 1; dil <= 3; ++dil)
      for (int R = 1; R <= 6; ++R)
        for (int pad = 0; pad <= 3; ++pad)
          for (int X = 1; X <= 11; ++X) {
            const int P = (X + 2 * pad - dil * (R - 1) - 1) / stride + 1;
            if (X + 2 * pad - dil * (R - 1) - 1 < 0) continue;
            int covered = 0;
            for (int phase = 0; phase < stride; ++phase) {
              const DgradDimPhase d = make_dgrad_dim_phase(phase, X, R, stride, pad, dil);
              for (int i = 0; i < d.count; ++i) {
                const int h = d.first + i * stride;
                REQUIRE(h < X);
                ++covered;
                // taps from the phase description
                std::vector<int> taps, ps;
                for (int t = 0; t < d.ntaps; ++t) {
                  const int r = d.tap0 + t * d.tap_step;
                  REQUIRE(r < R);
                  taps.push_back(r);
                  ps.push_back(i + d.in0 - t * d.in_step);
                }
                // brute force: r contributes to h iff (h + pad - r*dil) is a multiple of stride
                std::vector<int> want_taps, want_ps;
                for (int r = 0; r < R; ++r) {
                  const int num = h + pad - r * dil;
                  if (positive_mod(num, stride) == 0) {
                    want_taps.push_back(r);
                    want_ps.push_back(num / stride);
                  }
                }
                INFO("stride=" << stride << " dil=" << dil << " R=" << R << " pad=" << pad << " X=" << X
                               << " h=" << h);
                REQUIRE(taps == want_taps);
                REQUIRE(ps == want_ps);
              }
            }
            REQUIRE(covered == X);
            (void)P;
          }
}

TEST_CASE("implicit-GEMM views reproduce direct convolutions", "[cuda_index]") {
  std::mt19937 rng(42);
  // the model's hot case: k4 s2 p1, and a 2x2 map
  check_all_views(make_problem(2, 3, 8, 8, 5, 4, 4, 2, 2, 1, 1, 1, 1), rng);
  check_all_views(make_problem(1, 4, 2, 2, 3, 4, 4, 2, 2, 1, 1, 1, 1), rng);
  check_all_views(make_problem(2, 3, 7, 9, 4, 4, 4, 2, 2, 1, 1, 1, 1), rng);  // odd sizes
  // stride 1, 3x3 and 1x1
  check_all_views(make_problem(2, 3, 5, 6, 4, 3, 3, 1, 1, 1, 1, 1, 1), rng);
  check_all_views(make_problem(1, 5, 3, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1), rng);
  // 1x1 stride 2: phases without any tap must still produce (zero) outputs
  check_all_views(make_problem(2, 2, 5, 4, 3, 1, 1, 2, 2, 0, 0, 1, 1), rng);
  // dilation, stride 3, non-square everything
  check_all_views(make_problem(1, 2, 9, 8, 3, 3, 3, 1, 1, 2, 2, 2, 2), rng);
  check_all_views(make_problem(2, 2, 11, 10, 3, 5, 4, 3, 3, 2, 1, 1, 1), rng);
  check_all_views(make_problem(1, 3, 9, 6, 2, 3, 2, 2, 1, 1, 0, 1, 1), rng);
  check_all_views(make_problem(1, 2, 9, 9, 2, 3, 3, 2, 2, 2, 2, 2, 2), rng);  // gcd(stride, dil) = 2
  check_all_views(make_problem(1, 2, 12, 11, 2, 3, 3, 5, 5, 1, 1, 1, 1), rng);  // 25 phases: 2 launches
  // a transposed convolution of the decoder (2x2 -> 4x4)
  check_all_views(make_conv_transpose2d_problem(2, 4, 2, 2, 3, 4, 4, 2, 1, 0), rng);
  check_all_views(make_conv_transpose2d_problem(1, 3, 3, 2, 2, 4, 4, 2, 1, 1), rng);  // output_padding
}

TEST_CASE("conv GEMM params of the model's layers", "[cuda_index]") {
  // E1's last conv: 487 -> 487 on 4x4, batch 32
  const auto p = make_conv2d_problem(32, 487, 4, 4, 487, 4, 4, 2, 1);
  REQUIRE(p.P == 2);
  const auto f = make_conv_gemm_params(p, ConvKind::Fprop);
  CHECK(f.max_m == 32 * 2 * 2);
  CHECK(f.gemm_n == 487);
  CHECK(f.max_kred == 487 * 16);
  const auto d = make_conv_gemm_params(p, ConvKind::Dgrad);
  REQUIRE(d.num_slots == 4);
  for (int s = 0; s < 4; ++s) {
    CHECK(d.ph[s].M == 32 * 2 * 2);
    CHECK(d.ph[s].Kred == 487 * 4);  // a quarter of the taps per phase
  }
  const auto w = make_conv_gemm_params(p, ConvKind::Wgrad);
  CHECK(w.max_m == 487);
  CHECK(w.gemm_n == 487 * 16);
  CHECK(w.max_kred == 32 * 4);
  CHECK(conv_gemm_fits_int32(p));
}

TEST_CASE("split-K ranges partition the k tiles", "[cuda_index]") {
  for (int ktiles = 0; ktiles <= 40; ++ktiles)
    for (int splits = 1; splits <= 12; ++splits) {
      int next = 0;
      for (int s = 0; s < splits; ++s) {
        int b, e;
        splitk_range(ktiles, splits, s, b, e);
        REQUIRE(b <= e);
        if (e > b) {
          REQUIRE(b == next);
          next = e;
        }
      }
      REQUIRE(next == ktiles);
    }
}

namespace {
// The loaders' incremental forms must give the same offsets as the direct accessors: the A
// cursor of fprop / dgrad walked from kr0 in steps of `step` (as the kernel's m-fast loader
// does, slice after slice, past the end of the reduction) and wgrad's per-block column table.
template <class View>
void check_a_cursor(const ConvGemmParams& g, int slot, int step) {
  const int M = View::gemm_m(g, slot), K = View::gemm_k(g, slot);
  for (int m : {0, M / 2, M - 1, M}) {  // M: an invalid row
    const auto row = View::a_row(g, slot, m);
    for (int kr0 = 0; kr0 < std::min(step, 3); ++kr0) {
      auto cur = View::a_cursor(g, slot, kr0);
      for (int kr = kr0; kr < K + 2 * step + 17; kr += step) {
        INFO("m " << m << " kr " << kr << " step " << step << " slot " << slot);
        REQUIRE(cur.kr == kr);
        REQUIRE(View::a_elem_at(g, slot, row, cur) == View::a_elem(g, slot, row, kr));
        View::a_advance(g, slot, cur, step);
      }
    }
  }
}

// The row groups of the grouped A loader: for every group (m % 4 == 0) and reduction index,
// row m + j's element is a_group_at's offset plus j steps where its column is in range, and a
// zero (-1) exactly where the direct accessor says so.
template <class View>
void check_a_groups(const ConvGemmParams& g, int slot) {
  REQUIRE(View::groups_ok(g));
  const int M = View::gemm_m(g, slot), K = View::gemm_k(g, slot);
  const int step = View::a_group_step(g), lim = View::a_group_limit(g);
  for (int m = 0; m <= M; m += 4) {  // M: an invalid group
    const auto row = View::a_row(g, slot, m);
    auto cur = View::a_cursor(g, slot, 0);
    for (int kr = 0; kr < K + 5; ++kr) {
      const GroupElem e = View::a_group_at(g, slot, row, cur);
      for (int j = 0; j < 4; ++j) {
        INFO("m " << m << " j " << j << " kr " << kr << " slot " << slot);
        const int w = e.w + j * step;
        const int64_t got = e.valid && w >= 0 && w < lim ? e.off + int64_t(j) * step : -1;
        REQUIRE(got == View::a_elem(g, slot, View::a_row(g, slot, m + j), kr));
      }
      View::a_advance(g, slot, cur, 1);
    }
  }
}

void check_incremental_forms(const Conv2dProblem& p) {
  const ConvGemmParams f = make_conv_gemm_params(p, ConvKind::Fprop);
  for (int step : {1, 2, 3, 8}) check_a_cursor<FpropView>(f, 0, step);
  REQUIRE(FpropView::groups_ok(f) == (p.Q % 4 == 0));
  if (FpropView::groups_ok(f)) check_a_groups<FpropView>(f, 0);
  for (int base = 0; base < dgrad_num_phases(p); base += kMaxPhasesPerLaunch) {
    const ConvGemmParams d = make_conv_gemm_params(p, ConvKind::Dgrad, base);
    for (int slot = 0; slot < d.num_slots; ++slot)
      for (int step : {1, 2, 5}) check_a_cursor<DgradView>(d, slot, step);
    bool groups = true;
    for (int slot = 0; slot < d.num_slots; ++slot) groups = groups && d.ph[slot].w.count % 4 == 0;
    REQUIRE(DgradView::groups_ok(d) == groups);
    if (groups)
      for (int slot = 0; slot < d.num_slots; ++slot) check_a_groups<DgradView>(d, slot);
  }
  const ConvGemmParams w = make_conv_gemm_params(p, ConvKind::Wgrad);
  REQUIRE(WgradView::groups_ok(w) == (p.Q % 4 == 0));
  if (WgradView::groups_ok(w)) {  // B's groups of four reduction indices, every column
    const int step = WgradView::b_group_step(w), lim = WgradView::b_group_limit(w);
    for (int kr = 0; kr <= w.max_kred; kr += 4) {  // max_kred: an invalid group
      const auto col = WgradView::b_col(w, 0, kr);
      for (int n = 0; n <= w.gemm_n; ++n) {
        const GroupElem e = WgradView::b_group_at(w, col, WgradView::b_entry(w, n));
        for (int j = 0; j < 4; ++j) {
          INFO("wgrad group kr " << kr << " j " << j << " n " << n);
          const int x = e.w + j * step;
          const int64_t got = e.valid && x >= 0 && x < lim ? e.off + int64_t(j) * step : -1;
          REQUIRE(got == WgradView::b_elem(w, 0, WgradView::b_col(w, 0, kr + j), n));
        }
      }
    }
  }
  for (int kr : {0, 1, w.max_kred / 2, w.max_kred - 1, w.max_kred}) {
    const auto col = WgradView::b_col(w, 0, kr);
    for (int n = 0; n <= w.gemm_n + 3; ++n) {
      INFO("wgrad kr " << kr << " n " << n);
      REQUIRE(WgradView::b_elem_at(w, col, WgradView::b_entry(w, n)) == WgradView::b_elem(w, 0, col, n));
    }
  }
}
}  // namespace

TEST_CASE("the loaders' incremental cursors and column tables match the direct index math", "[cuda_index]") {
  check_incremental_forms(make_problem(2, 3, 8, 8, 5, 4, 4, 2, 2, 1, 1, 1, 1));     // k4 s2 p1
  check_incremental_forms(make_problem(1, 5, 3, 3, 2, 1, 1, 1, 1, 0, 0, 1, 1));     // 1x1: S = 1 < step
  check_incremental_forms(make_problem(2, 2, 5, 4, 3, 1, 1, 2, 2, 0, 0, 1, 1));     // phases without taps
  check_incremental_forms(make_problem(1, 2, 9, 8, 3, 3, 3, 1, 1, 2, 2, 2, 2));     // dilation 2
  check_incremental_forms(make_problem(2, 2, 11, 10, 3, 5, 4, 3, 3, 2, 1, 1, 1));   // stride 3, 5x4
  check_incremental_forms(make_problem(1, 2, 12, 11, 2, 3, 3, 5, 5, 1, 1, 1, 1));   // 25 phases
  check_incremental_forms(make_problem(1, 3, 9, 6, 2, 3, 2, 2, 1, 1, 0, 1, 1));     // non-square
  check_incremental_forms(make_conv_transpose2d_problem(1, 3, 3, 2, 2, 4, 4, 2, 1, 1));
  // row groups: stride 1 (fprop's groups are contiguous), 16 wide; k4 s2 p1 at 16 (dgrad
  // phases 8 wide); k3 s2 p1 at 15 (fprop groups of 8 wide rows, dgrad phases 8 and 7 wide: none)
  check_incremental_forms(make_problem(2, 2, 5, 16, 3, 3, 3, 1, 1, 1, 1, 1, 1));
  check_incremental_forms(make_problem(1, 2, 6, 16, 3, 4, 4, 2, 2, 1, 1, 1, 1));
  check_incremental_forms(make_problem(1, 2, 4, 15, 2, 3, 3, 2, 2, 1, 1, 1, 1));
}

namespace {
// The channels-last views (NhwcFpropT, NhwcDgradT; NhwcWgradT below; CH = 8 or 4): the operands packed by their layout
// functions (zeros in the padded channels), then a GEMM over the 16-byte chunks the kernel's
// loader visits -- each thread's cursor from its first chunk kc0 < 4 in steps of 4 (one
// BK = 32 slice), past the end of the reduction, A and B of a chunk from the same cursor --
// written through the NCHW view's c_off and compared with a direct convolution.
template <class V>
void nhwc_gemm(const ConvGemmParams& g, int slot, const std::vector<double>& ap, const std::vector<double>& bp,
               std::vector<double>& out, std::vector<int>& hits) {
  constexpr int CH = V::kChunk;
  const int M = V::gemm_m(g, slot), chunks = V::chunks(g, slot);
  REQUIRE(chunks * CH <= V::max_gemm_k(g));
  for (int m = 0; m <= M; ++m) {  // M: an invalid row
    const auto row = V::row(g, slot, m);
    std::vector<double> acc(size_t(g.gemm_n), 0.0);
    for (int kc0 = 0; kc0 < 4; ++kc0) {
      auto cur = V::cursor(g, slot, kc0);
      for (int kc = kc0; kc < chunks + 9; kc += 4) {
        INFO("slot " << slot << " m " << m << " chunk " << kc);
        const auto direct = V::cursor(g, slot, kc);
        if (chunks > 0) REQUIRE(std::memcmp(&cur, &direct, sizeof cur) == 0);
        const int64_t ao = V::a_chunk(g, slot, row, cur);
        if (m == M || kc >= chunks) REQUIRE(ao == -1);
        REQUIRE(ao + CH <= int64_t(ap.size()));
        REQUIRE(ao % CH == (ao < 0 ? -1 : 0));  // 16-byte aligned chunks
        for (int n = 0; n <= g.gemm_n; ++n) {
          const int64_t bo = V::b_chunk(g, slot, n, cur);
          if (n == g.gemm_n || kc >= chunks) REQUIRE(bo == -1);
          REQUIRE(bo + CH <= int64_t(bp.size()));
          REQUIRE(bo % CH == (bo < 0 ? -1 : 0));
          if (ao < 0 || bo < 0) continue;
          for (int e = 0; e < CH; ++e) acc[size_t(n)] += ap[size_t(ao + e)] * bp[size_t(bo + e)];
        }
        V::advance(g, slot, cur, 4);
      }
    }
    if (m == M) break;
    for (int n = 0; n < g.gemm_n; ++n) {
      const int64_t o = V::Out::c_off(g, slot, m, n);
      out[size_t(o)] = acc[size_t(n)];
      hits[size_t(o)] += 1;
    }
  }
}

// CH = 8: the BF16 views (all three directions); CH = 4: the FP32 ones (fprop, dgrad).
template <int CH>
void check_nhwc(const Conv2dProblem& p, std::mt19937& rng) {
  using Fprop = NhwcFpropT<CH>;
  using Dgrad = NhwcDgradT<CH>;
  INFO("problem N=" << p.N << " C=" << p.C << " H=" << p.H << " W=" << p.W << " K=" << p.K << " R=" << p.R
                    << " S=" << p.S << " stride=" << p.stride_h << "," << p.stride_w << " pad=" << p.pad_h
                    << " dil=" << p.dil_h);
  for (int c : {p.C, p.K}) {
    const int cp = nhwc_padded_channels(c, CH);
    REQUIRE(cp % CH == 0);
    REQUIRE(cp >= c);
    REQUIRE(cp < c + CH);
  }
  const int Cp = Fprop::padded_channels(p.C), Kp = Dgrad::padded_channels(p.K);
  REQUIRE(Fprop::gemm_k(p) == p.R * p.S * Cp);
  const auto x = random_vec(size_t(p.x_size()), rng);
  const auto w = random_vec(size_t(p.w_size()), rng);
  const auto dy = random_vec(size_t(p.y_size()), rng);
  // packed copies; each source element lands in its own slot, the rest stays zero
  std::vector<double> xp(size_t(p.N) * p.H * p.W * Cp, 0.0), wp(size_t(p.K) * p.R * p.S * Cp, 0.0);
  std::vector<double> dyp(size_t(p.N) * p.P * p.Q * Kp, 0.0), wd(size_t(p.R) * p.S * p.C * Kp, 0.0);
  std::vector<int> xhit(xp.size(), 0), whit(wp.size(), 0), dyhit(dyp.size(), 0), wdhit(wd.size(), 0);
  const auto put = [](std::vector<double>& dst, std::vector<int>& hit, int64_t o, double v) {
    REQUIRE(o >= 0);
    REQUIRE(o < int64_t(dst.size()));
    dst[size_t(o)] = v;
    REQUIRE(++hit[size_t(o)] == 1);
  };
  for (int n = 0; n < p.N; ++n)
    for (int c = 0; c < p.C; ++c)
      for (int h = 0; h < p.H; ++h)
        for (int ww = 0; ww < p.W; ++ww)
          put(xp, xhit, Fprop::xp_off(p, n, c, h, ww), x[size_t(((int64_t(n) * p.C + c) * p.H + h) * p.W + ww)]);
  for (int k = 0; k < p.K; ++k)
    for (int c = 0; c < p.C; ++c)
      for (int r = 0; r < p.R; ++r)
        for (int s = 0; s < p.S; ++s) {
          const double v = w[size_t(((int64_t(k) * p.C + c) * p.R + r) * p.S + s)];
          put(wp, whit, Fprop::wp_off(p, k, c, r, s), v);
          put(wd, wdhit, Dgrad::wd_off(p, k, c, r, s), v);
        }
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int pp = 0; pp < p.P; ++pp)
        for (int qq = 0; qq < p.Q; ++qq)
          put(dyp, dyhit, Dgrad::dyp_off(p, n, k, pp, qq), dy[size_t(((int64_t(n) * p.K + k) * p.P + pp) * p.Q + qq)]);
  {  // fprop
    const auto g = make_conv_gemm_params(p, ConvKind::Fprop);
    REQUIRE(Fprop::chunks(g, 0) * CH == Fprop::gemm_k(p));
    std::vector<double> y(size_t(p.y_size()), NAN);
    std::vector<int> hits(y.size(), 0);
    nhwc_gemm<Fprop>(g, 0, xp, wp, y, hits);
    for (int h : hits) REQUIRE(h == 1);
    CHECK(max_abs_diff(y, ref::conv2d_fprop(p, x, w)) < 1e-12);
  }
  {  // dgrad: every phase, in launches of up to kMaxPhasesPerLaunch
    std::vector<double> dx(size_t(p.x_size()), NAN);
    std::vector<int> hits(dx.size(), 0);
    for (int base = 0; base < dgrad_num_phases(p); base += kMaxPhasesPerLaunch) {
      const auto g = make_conv_gemm_params(p, ConvKind::Dgrad, base);
      for (int slot = 0; slot < g.num_slots; ++slot) {
        REQUIRE(Dgrad::chunks(g, slot) * CH == g.ph[slot].Kred / p.K * Kp);
        nhwc_gemm<Dgrad>(g, slot, dyp, wd, dx, hits);
      }
    }
    for (int h : hits) REQUIRE(h == 1);
    CHECK(max_abs_diff(dx, ref::conv2d_dgrad(p, dy, w)) < 1e-12);
  }
  {  // wgrad: A and B chunks hold CH GEMM rows / columns of one reduction index
    using Wgrad = NhwcWgradT<CH>;
    auto g = make_conv_gemm_params(p, ConvKind::Wgrad);
    g.gemm_n = Wgrad::gemm_n(p);
    REQUIRE(g.gemm_n == p.R * p.S * Cp);
    REQUIRE(Wgrad::gemm_m(g, 0) == p.K);
    std::vector<double> dw(size_t(p.w_size()), NAN);
    std::vector<int> hits(dw.size(), 0);
    const int kred = Wgrad::max_gemm_k(g);
    REQUIRE(kred == p.N * p.P * p.Q);
    for (int n8 = 0; n8 <= g.gemm_n; n8 += CH) {  // gemm_n: an invalid column chunk
      const auto col = Wgrad::col(g, n8);
      REQUIRE(col.valid == (n8 < g.gemm_n));
      for (int m8 = 0; m8 <= Kp; m8 += CH) {  // Kp: an invalid row chunk
        double acc[CH][CH] = {};
        for (int kr = 0; kr <= kred; ++kr) {  // kred: an invalid reduction index
          INFO("wgrad rows " << m8 << " columns " << n8 << " kr " << kr);
          const int64_t ao = Wgrad::a_chunk(g, kr, m8);
          const auto px = Wgrad::pix(g, kr);
          const int64_t bo = Wgrad::b_chunk(g, px, col);
          if (kr == kred || m8 == Kp) REQUIRE(ao == -1);
          if (kr == kred || n8 == g.gemm_n) REQUIRE(bo == -1);
          REQUIRE(ao + CH <= int64_t(dyp.size()));
          REQUIRE(bo + CH <= int64_t(xp.size()));
          REQUIRE(ao % CH == (ao < 0 ? -1 : 0));
          REQUIRE(bo % CH == (bo < 0 ? -1 : 0));
          if (ao < 0 || bo < 0) continue;
          for (int i = 0; i < CH; ++i)
            for (int j = 0; j < CH; ++j) acc[i][j] += dyp[size_t(ao + i)] * xp[size_t(bo + j)];
        }
        if (m8 == Kp || n8 == g.gemm_n) continue;
        for (int i = 0; i < CH; ++i)
          for (int j = 0; j < CH; ++j) {
            const int m = m8 + i, n = n8 + j;
            const int64_t o = Wgrad::c_off(g, 0, m, n);
            if (n % Cp >= p.C) REQUIRE(o == -1);  // a padded channel
            if (m >= p.K || o < 0) continue;
            REQUIRE(o < int64_t(dw.size()));
            dw[size_t(o)] = acc[i][j];
            hits[size_t(o)] += 1;
          }
      }
    }
    for (int h : hits) REQUIRE(h == 1);
    CHECK(max_abs_diff(dw, ref::conv2d_wgrad(p, x, dy)) < 1e-12);
  }
}
}  // namespace

namespace {
void check_nhwc_both(const Conv2dProblem& p, std::mt19937& rng) {
  check_nhwc<8>(p, rng);
  check_nhwc<4>(p, rng);
}
}  // namespace

TEST_CASE("channels-last views (BF16 and FP32 packs): packed layouts and chunk cursors reproduce direct convolutions",
          "[cuda_index]") {
  std::mt19937 rng(7);
  check_nhwc_both(make_problem(2, 3, 8, 8, 5, 4, 4, 2, 2, 1, 1, 1, 1), rng);     // 3 channels -> 8 (one chunk a tap)
  check_nhwc_both(make_problem(1, 16, 6, 7, 12, 4, 4, 2, 2, 1, 1, 1, 1), rng);   // two chunks a tap (fprop)
  check_nhwc_both(make_problem(1, 25, 5, 5, 20, 3, 3, 1, 1, 1, 1, 1, 1), rng);   // 25 -> 32, 20 -> 24
  check_nhwc_both(make_problem(2, 40, 4, 4, 9, 1, 1, 1, 1, 0, 0, 1, 1), rng);    // 1x1: five chunks, S = 1
  check_nhwc_both(make_problem(2, 2, 5, 4, 3, 1, 1, 2, 2, 0, 0, 1, 1), rng);     // dgrad phases without taps
  check_nhwc_both(make_problem(1, 9, 9, 8, 10, 3, 3, 1, 1, 2, 2, 2, 2), rng);    // dilation 2
  check_nhwc_both(make_problem(1, 12, 11, 10, 3, 5, 4, 3, 3, 2, 1, 1, 1), rng);  // stride 3, 5x4
  check_nhwc_both(make_problem(1, 2, 12, 11, 17, 3, 3, 5, 5, 1, 1, 1, 1), rng);  // 25 phases: 2 launches
  check_nhwc_both(make_conv_transpose2d_problem(2, 20, 2, 2, 6, 4, 4, 2, 1, 0), rng);  // a decoder layer
}
