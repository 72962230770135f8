// Tests of the CPU convolution backend (disco/backend/cpu/conv2d.hpp) against the naive
// loop references in tests/reference/conv_ref.hpp.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "disco/backend/cpu/conv2d.hpp"
#include "disco/core/error.hpp"
#include "reference/conv_ref.hpp"

namespace {

using disco::Conv2dProblem;

Conv2dProblem mk(int N, int C, int H, int W, int K, int R, int S, int stride, int pad, int dil = 1) {
  return disco::make_conv2d_problem(N, C, H, W, K, R, S, stride, pad, dil);
}

Conv2dProblem mk2(int N, int C, int H, int W, int K, int R, int S, int sh, int sw, int ph, int pw, int dh,
                  int dw) {
  Conv2dProblem p;
  p.N = N; p.C = C; p.H = H; p.W = W; p.K = K; p.R = R; p.S = S;
  p.stride_h = sh; p.stride_w = sw; p.pad_h = ph; p.pad_w = pw; p.dil_h = dh; p.dil_w = dw;
  p.compute_output_size();
  return p;
}

struct Shape {
  std::string name;
  Conv2dProblem p;
  // also run under every forced schedule (the threading code is geometry-agnostic, so a
  // representative subset covers it; this keeps the number of thread syncs small)
  bool all_schedules = false;
};

std::vector<Shape> test_shapes() {
  return {
      {"odd 3x3 s1 p1", mk(2, 3, 9, 7, 4, 3, 3, 1, 1)},
      {"k4 s2 p1 (model)", mk(3, 5, 8, 8, 6, 4, 4, 2, 1), true},
      {"k4 s2 p1 odd input", mk(2, 4, 9, 11, 5, 4, 4, 2, 1)},
      {"asymmetric stride/pad/dil", mk2(3, 4, 11, 13, 5, 3, 5, 2, 3, 1, 2, 2, 1)},
      {"dilation 2 pad 2", mk(2, 3, 10, 10, 4, 3, 3, 1, 2, 2)},
      {"dilation 3 stride 2", mk(2, 2, 13, 12, 3, 3, 3, 2, 1, 3)},
      {"stride 3 no pad", mk(2, 4, 10, 9, 3, 3, 3, 3, 0)},
      {"stride > kernel", mk(2, 3, 9, 9, 2, 2, 2, 3, 0)},
      {"pad > kernel", mk(1, 2, 3, 3, 2, 2, 2, 1, 3)},
      {"batch 1 1x1 map 1x1 kernel", mk(1, 8, 1, 1, 7, 1, 1, 1, 0)},
      {"1x1 map 3x3 kernel pad 1", mk(2, 6, 1, 1, 5, 3, 3, 1, 1)},
      {"2x2 map 3x3 pad 1", mk(4, 16, 2, 2, 9, 3, 3, 1, 1), true},
      {"4x4 -> 2x2 k4 s2 p1, 25 ch", mk(3, 25, 4, 4, 25, 4, 4, 2, 1)},
      {"2x2 -> 1x1 k4 s2 p1", mk(3, 12, 2, 2, 10, 4, 4, 2, 1)},
      {"1x1 kernel direct", mk(3, 7, 5, 6, 4, 1, 1, 1, 0)},
      {"1x1 kernel direct, 9 channels, 9x9", mk(2, 9, 9, 9, 5, 1, 1, 1, 0), true},
      {"1x1 kernel stride 2", mk(2, 5, 7, 7, 3, 1, 1, 2, 0)},
      {"1x1 kernel pad 1", mk(2, 3, 4, 5, 2, 1, 1, 1, 1)},
      {"487 in channels", mk(2, 487, 4, 4, 3, 4, 4, 2, 1)},
      {"487 out channels", mk(2, 3, 6, 6, 487, 3, 3, 1, 1), true},
      {"3 -> 25 channels", mk(2, 3, 7, 7, 25, 4, 4, 2, 1)},
      {"16 channels 12x12 3x3", mk(2, 16, 12, 12, 8, 3, 3, 1, 1), true},
      {"transposed k4 s2 p1", disco::make_conv_transpose2d_problem(2, 6, 3, 3, 4, 4, 4, 2, 1, 0)},
      {"transposed output_padding 1", disco::make_conv_transpose2d_problem(2, 5, 3, 4, 3, 3, 3, 2, 1, 1), true},
      {"bigger maps (per-thread schedule)", mk(4, 6, 32, 32, 8, 4, 4, 2, 1), true},
      {"batch 5 odd", mk(5, 3, 6, 5, 4, 3, 2, 1, 1), true},
      // big enough for the automatic schedule to use all threads
      {"model-like, batch 8, per-thread in auto", mk(8, 16, 16, 16, 32, 4, 4, 2, 1)},
      {"model-like 4x4 -> 2x2, batch 8, shared in auto", mk(8, 64, 4, 4, 64, 4, 4, 2, 1)},
  };
}

struct Mode {
  const char* name;
  int force;
  int64_t budget;
  int64_t target;
  int64_t table_max_pq = 64;
  bool all_shapes = false;  // run on every shape (else only on Shape::all_schedules ones)
};

const std::vector<Mode>& modes() {
  static const std::vector<Mode> m = {
      {"auto", 0, int64_t(48) << 20, 512, 64, true},
      {"auto, no index tables", 0, int64_t(48) << 20, 512, 0, true},
      {"auto, index tables for all maps", 0, int64_t(48) << 20, 512, int64_t(1) << 40, true},
      {"per-thread", 1, int64_t(48) << 20, 512},
      {"shared", 2, int64_t(48) << 20, 512},
      {"shared, one sample per chunk", 2, 1, 512},
      {"per-thread, one sample per chunk", 1, 1, 512},
      {"shared, whole batch per chunk", 2, int64_t(1) << 30, int64_t(1) << 30},
      {"shared, 2 samples per chunk", 2, int64_t(48) << 20, 1},
      {"per-thread, index tables for all maps", 1, int64_t(48) << 20, 512, int64_t(1) << 40},
      {"shared, no index tables, 2 samples per chunk", 2, int64_t(48) << 20, 1, 0},
  };
  return m;
}

// Restores the process-wide settings when a test leaves (also on failure).
struct SettingsGuard {
  disco::cpu::Conv2dSettings saved = disco::cpu::conv2d_settings();
  ~SettingsGuard() { disco::cpu::conv2d_settings() = saved; }
};

void apply(const Mode& m, const Conv2dProblem& p) {
  auto& s = disco::cpu::conv2d_settings();
  s.force_schedule = m.force;
  s.col_budget_bytes = m.budget;
  // "2 samples per chunk": target 2*PQ columns.
  s.target_cols = m.target == 1 ? 2 * int64_t(p.P) * p.Q : m.target;
  s.table_max_pq = m.table_max_pq;
  s.dgrad_table_max_pq = m.table_max_pq == 64 ? 16 : m.table_max_pq;
}

std::vector<double> rnd(size_t n, uint32_t seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<double> d(-1.0, 1.0);
  std::vector<double> v(n);
  for (auto& e : v) e = d(g);
  return v;
}

template <class T>
std::vector<T> cast(const std::vector<double>& v) {
  return std::vector<T>(v.begin(), v.end());
}

template <class T>
double rel_l2(const std::vector<T>& a, const std::vector<double>& ref) {
  REQUIRE(a.size() == ref.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = double(a[i]) - ref[i];
    num += d * d;
    den += ref[i] * ref[i];
  }
  if (!std::isfinite(num)) return std::numeric_limits<double>::infinity();
  return std::sqrt(num) / std::max(std::sqrt(den), 1e-300);
}

double dot(const std::vector<double>& a, const std::vector<double>& b) {
  double s = 0;
  for (size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

double norm(const std::vector<double>& a) { return std::sqrt(dot(a, a)); }

template <class T>
std::vector<T> nan_filled(int64_t n) {
  return std::vector<T>(size_t(n), std::numeric_limits<T>::quiet_NaN());
}

// Random operands of one problem (double) and their reference results.
struct Case {
  Conv2dProblem p;
  std::vector<double> x, w, b, dy, y_ref, y_nobias_ref, dx_ref, dw_ref, db_ref;
  explicit Case(const Conv2dProblem& prob, uint32_t seed = 1) : p(prob) {
    x = rnd(size_t(p.x_size()), seed);
    w = rnd(size_t(p.w_size()), seed + 1);
    b = rnd(size_t(p.K), seed + 2);
    dy = rnd(size_t(p.y_size()), seed + 3);
    y_ref = disco::ref::conv2d_fprop(p, x, w, b);
    y_nobias_ref = disco::ref::conv2d_fprop(p, x, w);
    dx_ref = disco::ref::conv2d_dgrad(p, dy, w);
    dw_ref = disco::ref::conv2d_wgrad(p, x, dy);
    db_ref = disco::ref::bias_grad(p, dy);
  }
};

// forced_schedules: also run the forced-schedule modes (double only: the threading code is
// the same template for float, and every schedule costs thread syncs, which are slow on a
// loaded machine).
template <class T>
void check_against_reference(double tol, bool forced_schedules) {
  SettingsGuard guard;
  for (const auto& sh : test_shapes()) {
    const Case cs(sh.p);
    const auto& p = cs.p;
    const auto x = cast<T>(cs.x), w = cast<T>(cs.w), b = cast<T>(cs.b), dy = cast<T>(cs.dy);
    for (const auto& m : modes()) {
      if (!m.all_shapes && (!sh.all_schedules || !forced_schedules)) continue;
      apply(m, p);
      INFO("shape: " << sh.name << " " << disco::cpu::detail::conv_str(p) << ", schedule: " << m.name);
      auto y = nan_filled<T>(p.y_size());
      disco::cpu::conv2d_fprop(p, x.data(), w.data(), b.data(), y.data());
      CHECK(rel_l2(y, cs.y_ref) <= tol);
      y = nan_filled<T>(p.y_size());
      disco::cpu::conv2d_fprop<T>(p, x.data(), w.data(), nullptr, y.data());
      CHECK(rel_l2(y, cs.y_nobias_ref) <= tol);
      auto dx = nan_filled<T>(p.x_size());
      disco::cpu::conv2d_dgrad(p, dy.data(), w.data(), dx.data());
      CHECK(rel_l2(dx, cs.dx_ref) <= tol);
      auto dw = nan_filled<T>(p.w_size());
      disco::cpu::conv2d_wgrad(p, x.data(), dy.data(), dw.data());
      CHECK(rel_l2(dw, cs.dw_ref) <= tol);
      auto db = nan_filled<T>(p.K);
      disco::cpu::bias_grad_nchw<T>(p.N, p.K, int64_t(p.P) * p.Q, dy.data(), db.data());
      CHECK(rel_l2(db, cs.db_ref) <= tol);
    }
  }
}

}  // namespace

TEST_CASE("conv2d fprop/dgrad/wgrad match the naive reference (double)", "[conv]") {
  check_against_reference<double>(1e-12, true);
}

TEST_CASE("conv2d fprop/dgrad/wgrad match the naive reference (float)", "[conv]") {
  check_against_reference<float>(1e-5, false);
}

TEST_CASE("conv2d adjoint identities hold in double", "[conv]") {
  SettingsGuard guard;
  for (const auto& sh : test_shapes()) {
    const auto& p = sh.p;
    INFO("shape: " << sh.name << " " << disco::cpu::detail::conv_str(p));
    const auto x = rnd(size_t(p.x_size()), 11), w = rnd(size_t(p.w_size()), 12), y = rnd(size_t(p.y_size()), 13);
    std::vector<double> cx(size_t(p.y_size())), dx(size_t(p.x_size())), dw(size_t(p.w_size()));
    disco::cpu::conv2d_fprop<double>(p, x.data(), w.data(), nullptr, cx.data());
    disco::cpu::conv2d_dgrad(p, y.data(), w.data(), dx.data());
    disco::cpu::conv2d_wgrad(p, x.data(), y.data(), dw.data());
    const double lhs = dot(cx, y);
    const double scale = norm(cx) * norm(y);
    CHECK(std::abs(lhs - dot(x, dx)) <= 1e-12 * scale);
    CHECK(std::abs(lhs - dot(w, dw)) <= 1e-12 * scale);
    // the identity is not vacuous: a random pairing does not satisfy it
    CHECK(scale > 0);
  }
}

TEST_CASE("conv2d dgrad/wgrad/bias_grad accumulate flag adds to the output", "[conv]") {
  SettingsGuard guard;
  const std::vector<Conv2dProblem> probs = {mk(3, 5, 8, 8, 6, 4, 4, 2, 1), mk(3, 7, 5, 6, 4, 1, 1, 1, 0),
                                            mk(4, 6, 32, 32, 8, 4, 4, 2, 1), mk(4, 16, 2, 2, 9, 3, 3, 1, 1),
                                            mk(2, 16, 12, 12, 8, 3, 3, 1, 1)};
  for (const auto& p : probs) {
    const Case cs(p, 21);
    for (const auto& m : modes()) {
      const std::string name = m.name;
      if (name != "auto" && name != "per-thread" && name != "shared" && name != "per-thread, one sample per chunk" &&
          name != "shared, 2 samples per chunk" && name != "shared, no index tables, 2 samples per chunk")
        continue;
      apply(m, p);
      INFO(disco::cpu::detail::conv_str(p) << ", schedule: " << m.name);
      const auto dx0 = rnd(size_t(p.x_size()), 31), dw0 = rnd(size_t(p.w_size()), 32), db0 = rnd(size_t(p.K), 33);
      auto add = [](std::vector<double> a, const std::vector<double>& b) {
        for (size_t i = 0; i < a.size(); ++i) a[i] += b[i];
        return a;
      };
      auto dx = dx0;
      disco::cpu::conv2d_dgrad(p, cs.dy.data(), cs.w.data(), dx.data(), true);
      CHECK(rel_l2(dx, add(dx0, cs.dx_ref)) <= 1e-12);
      auto dw = dw0;
      disco::cpu::conv2d_wgrad(p, cs.x.data(), cs.dy.data(), dw.data(), true);
      CHECK(rel_l2(dw, add(dw0, cs.dw_ref)) <= 1e-12);
      auto db = db0;
      disco::cpu::bias_grad_nchw(p.N, p.K, int64_t(p.P) * p.Q, cs.dy.data(), db.data(), true);
      CHECK(rel_l2(db, add(db0, cs.db_ref)) <= 1e-12);
      // accumulate=false overwrites whatever was there
      dx = dx0;
      disco::cpu::conv2d_dgrad(p, cs.dy.data(), cs.w.data(), dx.data(), false);
      CHECK(rel_l2(dx, cs.dx_ref) <= 1e-12);
      dw = dw0;
      disco::cpu::conv2d_wgrad(p, cs.x.data(), cs.dy.data(), dw.data(), false);
      CHECK(rel_l2(dw, cs.dw_ref) <= 1e-12);
    }
  }
}

TEST_CASE("conv2d float and double agree", "[conv]") {
  const std::vector<Conv2dProblem> probs = {mk(2, 64, 16, 16, 32, 4, 4, 2, 1), mk(8, 487, 4, 4, 25, 4, 4, 2, 1),
                                            disco::make_conv_transpose2d_problem(4, 128, 2, 2, 96, 4, 4, 2, 1, 0)};
  for (const auto& p : probs) {
    INFO(disco::cpu::detail::conv_str(p));
    const auto x = rnd(size_t(p.x_size()), 41), w = rnd(size_t(p.w_size()), 42), dy = rnd(size_t(p.y_size()), 43);
    const auto b = rnd(size_t(p.K), 44);
    std::vector<double> y(size_t(p.y_size())), dx(size_t(p.x_size())), dw(size_t(p.w_size()));
    disco::cpu::conv2d_fprop(p, x.data(), w.data(), b.data(), y.data());
    disco::cpu::conv2d_dgrad(p, dy.data(), w.data(), dx.data());
    disco::cpu::conv2d_wgrad(p, x.data(), dy.data(), dw.data());
    const auto xf = cast<float>(x), wf = cast<float>(w), dyf = cast<float>(dy), bf = cast<float>(b);
    std::vector<float> yf(y.size()), dxf(dx.size()), dwf(dw.size());
    disco::cpu::conv2d_fprop(p, xf.data(), wf.data(), bf.data(), yf.data());
    disco::cpu::conv2d_dgrad(p, dyf.data(), wf.data(), dxf.data());
    disco::cpu::conv2d_wgrad(p, xf.data(), dyf.data(), dwf.data());
    CHECK(rel_l2(yf, y) <= 1e-5);
    CHECK(rel_l2(dxf, dx) <= 1e-5);
    CHECK(rel_l2(dwf, dw) <= 1e-5);
  }
}

TEST_CASE("conv2d empty batch and invalid problems", "[conv]") {
  SECTION("N = 0: fprop/dgrad do nothing, wgrad zeroes unless accumulating") {
    const auto p = mk(0, 3, 5, 5, 2, 3, 3, 1, 1);
    std::vector<double> w(size_t(p.w_size()), 1.0), dw(size_t(p.w_size()), 7.0);
    disco::cpu::conv2d_fprop<double>(p, nullptr, w.data(), nullptr, nullptr);
    disco::cpu::conv2d_dgrad<double>(p, nullptr, w.data(), nullptr);
    disco::cpu::conv2d_wgrad<double>(p, nullptr, nullptr, dw.data(), true);
    CHECK(dw[0] == 7.0);
    disco::cpu::conv2d_wgrad<double>(p, nullptr, nullptr, dw.data(), false);
    CHECK(dw[0] == 0.0);
  }
  SECTION("inconsistent or invalid problems throw disco::Error") {
    std::vector<float> buf(4096, 0.f);
    auto bad_pq = mk(1, 2, 8, 8, 2, 3, 3, 1, 1);
    bad_pq.P = 7;
    CHECK_THROWS_AS(disco::cpu::conv2d_fprop<float>(bad_pq, buf.data(), buf.data(), nullptr, buf.data()),
                    disco::Error);
    auto bad_stride = mk(1, 2, 8, 8, 2, 3, 3, 1, 1);
    bad_stride.stride_w = 0;
    CHECK_THROWS_AS(disco::cpu::conv2d_dgrad<float>(bad_stride, buf.data(), buf.data(), buf.data()),
                    disco::Error);
    Conv2dProblem too_big = mk(1, 2, 2, 2, 2, 5, 5, 1, 0);  // kernel larger than the input
    CHECK_THROWS_AS(disco::cpu::conv2d_wgrad<float>(too_big, buf.data(), buf.data(), buf.data()),
                    disco::Error);
    const auto ok = mk(1, 2, 8, 8, 2, 3, 3, 1, 1);
    CHECK_THROWS_AS(disco::cpu::conv2d_fprop<float>(ok, nullptr, buf.data(), nullptr, buf.data()), disco::Error);
    CHECK_THROWS_WITH(disco::cpu::conv2d_fprop<float>(bad_pq, buf.data(), buf.data(), nullptr, buf.data()),
                      Catch::Contains("conv2d_fprop") && Catch::Contains("P x Q must be 8 x 8"));
  }
}

TEST_CASE("cpu::gemm row-major helper matches a naive product (all transposes)", "[conv]") {
  const int64_t M = 7, N = 5, K = 9, pad = 3;  // leading dimensions larger than the rows
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb)
      for (int acc = 0; acc < 2; ++acc) {
        INFO("trans_a " << ta << " trans_b " << tb << " accumulate " << acc);
        const int64_t lda = (ta ? M : K) + pad, ldb = (tb ? K : N) + pad, ldc = N + pad;
        const auto A = rnd(size_t((ta ? K : M) * lda), 51), B = rnd(size_t((tb ? N : K) * ldb), 52);
        const auto C0 = rnd(size_t(M * ldc), 53);
        std::vector<double> ref = C0, C = C0;
        for (int64_t i = 0; i < M; ++i)
          for (int64_t j = 0; j < N; ++j) {
            double s = 0;
            for (int64_t k = 0; k < K; ++k)
              s += (ta ? A[size_t(k * lda + i)] : A[size_t(i * lda + k)]) *
                   (tb ? B[size_t(j * ldb + k)] : B[size_t(k * ldb + j)]);
            ref[size_t(i * ldc + j)] = acc ? C0[size_t(i * ldc + j)] + s : s;
          }
        disco::cpu::gemm<double>(ta, tb, M, N, K, A.data(), lda, B.data(), ldb, C.data(), ldc, acc);
        CHECK(rel_l2(C, ref) <= 1e-14);  // includes the padding columns, which must be untouched
      }
}
