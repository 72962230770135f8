// Forward values of the ops (ops/*.hpp) against the naive loops in tests/reference/, the
// adjoint identity of conv2d / conv_transpose2d, and the ops' error messages.
#include <catch2/catch.hpp>

#include <cmath>
#include <string>
#include <vector>

#include "disco/disco.hpp"
#include "reference/conv_ref.hpp"
#include "reference/ops_ref.hpp"

namespace {

using disco::Conv2dOptions;
using disco::CPU;
using disco::DType;
using disco::Generator;
using disco::LossKind;
using disco::Shape;
using disco::UnaryKind;
using Tensor = disco::Tensor<CPU>;
using Catch::Contains;
using Vec = std::vector<double>;

Vec vals(const Tensor& t) { return t.to_vector<double>(); }

Tensor make(const Vec& v, const Shape& s, DType dt) {
  return dt == DType::F64 ? Tensor::from_vector(v, s) : Tensor::from_vector(std::vector<float>(v.begin(), v.end()), s);
}

// |a - b| <= tol * max(1, |b|) elementwise.
void check_close(const Vec& a, const Vec& b, double tol) {
  REQUIRE(a.size() == b.size());
  int bad = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double lim = tol * std::max(1.0, std::fabs(b[i]));
    if (!(std::fabs(a[i] - b[i]) <= lim)) {
      if (++bad <= 5) FAIL_CHECK("element " << i << ": " << a[i] << " vs reference " << b[i]);
    }
  }
  CHECK(bad == 0);
}

double tol_for(DType dt) { return dt == DType::F64 ? 1e-12 : 2e-5; }

double dot(const Vec& a, const Vec& b) {
  double s = 0;
  for (std::size_t i = 0; i < a.size(); ++i) s += a[i] * b[i];
  return s;
}

}  // namespace

TEST_CASE("activations match the reference", "[ops][forward]") {
  for (DType dt : {DType::F32, DType::F64}) {
    Generator gen(1);
    Tensor x = Tensor::randn({2, 3, 5}, gen, dt, 0.0, 3.0);
    const Vec xv = vals(x);
    const double tol = tol_for(dt);
    check_close(vals(disco::relu(x)), disco::ref::map(xv, disco::ref::relu), tol);
    check_close(vals(disco::leaky_relu(x)), disco::ref::map(xv, [](double v) { return disco::ref::leaky_relu(v, 0.01); }),
                tol);
    check_close(vals(disco::leaky_relu(x, 0.2)), disco::ref::map(xv, [](double v) { return disco::ref::leaky_relu(v, 0.2); }),
                tol);
    check_close(vals(disco::tanh(x)), disco::ref::map(xv, disco::ref::tanh), tol);
    check_close(vals(disco::sigmoid(x)), disco::ref::map(xv, disco::ref::sigmoid), tol);
    // through the generic entry point and the nn layer
    check_close(vals(disco::activation(x, UnaryKind::LeakyRelu, 0.3)),
                disco::ref::map(xv, [](double v) { return disco::ref::leaky_relu(v, 0.3); }), tol);
    check_close(vals(disco::nn::Sigmoid<CPU>()->forward(x)), disco::ref::map(xv, disco::ref::sigmoid), tol);
    check_close(vals(disco::nn::LeakyReLU<CPU>(0.2)->forward(x)),
                disco::ref::map(xv, [](double v) { return disco::ref::leaky_relu(v, 0.2); }), tol);
    // a non-contiguous input
    Tensor xn = x.narrow(2, 1, 3);
    check_close(vals(disco::tanh(xn)), disco::ref::map(vals(xn), disco::ref::tanh), tol);
  }
  // saturation stays finite
  Tensor big = Tensor::from_vector(Vec{-800, -40, 0, 40, 800}, {5});
  check_close(vals(disco::sigmoid(big)), {0, disco::ref::sigmoid(-40), 0.5, disco::ref::sigmoid(40), 1}, 1e-15);
  check_close(vals(disco::tanh(big)), {-1, -1, 0, 1, 1}, 1e-15);
  CHECK(vals(disco::relu(Tensor::from_vector(Vec{0.0}, {1})))[0] == 0.0);
}

TEST_CASE("elementwise arithmetic and per-channel broadcast", "[ops][forward]") {
  for (DType dt : {DType::F32, DType::F64}) {
    Generator gen(2);
    const double tol = tol_for(dt);
    Tensor a = Tensor::randn({3, 4, 2}, gen, dt), b = Tensor::randn({3, 4, 2}, gen, dt);
    const Vec av = vals(a), bv = vals(b);
    Vec sum(av.size()), diff(av.size()), prod(av.size()), aff(av.size()), sc(av.size());
    for (std::size_t i = 0; i < av.size(); ++i) {
      sum[i] = av[i] + bv[i];
      diff[i] = av[i] - bv[i];
      prod[i] = av[i] * bv[i];
      aff[i] = av[i] + 0.75;
      sc[i] = -1.5 * av[i];
    }
    check_close(vals(disco::add(a, b)), sum, tol);
    check_close(vals(a + b), sum, tol);
    check_close(vals(disco::sub(a, b)), diff, tol);
    check_close(vals(a - b), diff, tol);
    check_close(vals(disco::mul(a, b)), prod, tol);
    check_close(vals(a * b), prod, tol);
    check_close(vals(disco::scale(a, -1.5)), sc, tol);
    check_close(vals(a * -1.5), sc, tol);
    check_close(vals(-1.5 * a), sc, tol);
    check_close(vals(disco::add_scalar(a, 0.75)), aff, tol);
    // strided operands
    Tensor an = a.narrow(1, 1, 2), bn = b.narrow(1, 0, 2);
    const Vec anv = vals(an), bnv = vals(bn);
    Vec s2(anv.size());
    for (std::size_t i = 0; i < anv.size(); ++i) s2[i] = anv[i] * bnv[i];
    check_close(vals(disco::mul(an, bn)), s2, tol);

    // per-channel, ranks 2, 3 and 4
    for (Shape sh : {Shape{3, 5}, Shape{2, 5, 3}, Shape{2, 5, 3, 2}, Shape{1, 5, 1, 1}}) {
      Tensor x = Tensor::randn(sh, gen, dt), v = Tensor::randn({5}, gen, dt);
      const int64_t N = sh[0], C = sh[1], HW = x.numel() / (N * C);
      check_close(vals(disco::add_channel(x, v)), disco::ref::add_channel(vals(x), vals(v), N, C, HW), tol);
      check_close(vals(disco::mul_channel(x, v)), disco::ref::mul_channel(vals(x), vals(v), N, C, HW), tol);
    }
  }
}

TEST_CASE("sum and mean", "[ops][forward]") {
  Generator gen(3);
  Tensor x = Tensor::randn({3, 7, 5}, gen, DType::F64);
  CHECK(disco::sum(x).item() == Approx(disco::ref::sum(vals(x))).epsilon(1e-13));
  CHECK(disco::mean(x).item() == Approx(disco::ref::mean(vals(x))).epsilon(1e-13));
  CHECK(disco::sum(x).dim() == 0);
  CHECK(disco::sum(x.narrow(1, 2, 3)).item() == Approx(disco::ref::sum(vals(x.narrow(1, 2, 3)))).epsilon(1e-13));
  // float32 sums accumulate in double: 200000 * 0.1f is exact to float precision
  Tensor many = Tensor::full({200000}, 0.1);
  CHECK(disco::sum(many).item() == Approx(200000 * double(0.1f)).epsilon(1e-7));
  CHECK(disco::mean(many).item() == Approx(double(0.1f)).epsilon(1e-7));
  CHECK(disco::sum(Tensor::zeros({0})).item() == 0.0);
  CHECK_THROWS_WITH(disco::mean(Tensor::zeros({0, 2})), Contains("mean") && Contains("[0, 2]"));
}

TEST_CASE("matmul and linear match the reference", "[ops][forward]") {
  for (DType dt : {DType::F32, DType::F64}) {
    Generator gen(4);
    const double tol = tol_for(dt) * 10;
    for (auto mkn : {std::vector<int64_t>{3, 4, 5}, {1, 1, 3}, {7, 2, 1}, {5, 9, 6}}) {
      const int64_t M = mkn[0], K = mkn[1], N = mkn[2];
      Tensor a = Tensor::randn({M, K}, gen, dt), b = Tensor::randn({K, N}, gen, dt);
      check_close(vals(disco::matmul(a, b)), disco::ref::matmul(vals(a), vals(b), M, K, N), tol);
    }
    for (auto mio : {std::vector<int64_t>{1, 5, 3}, {4, 7, 2}, {3, 1, 1}, {6, 16, 9}}) {
      const int64_t M = mio[0], in = mio[1], out = mio[2];
      Tensor x = Tensor::randn({M, in}, gen, dt), w = Tensor::randn({out, in}, gen, dt), b = Tensor::randn({out}, gen, dt);
      check_close(vals(disco::linear(x, w, b)), disco::ref::linear(vals(x), vals(w), vals(b), M, in, out), tol);
      check_close(vals(disco::linear(x, w)), disco::ref::linear(vals(x), vals(w), {}, M, in, out), tol);
    }
    // a transposed (non-contiguous) operand
    Tensor big = Tensor::randn({4, 6}, gen, dt);
    Tensor part = big.narrow(1, 1, 3);
    Tensor w = Tensor::randn({2, 3}, gen, dt);
    check_close(vals(disco::linear(part, w)), disco::ref::linear(vals(part), vals(w), {}, 4, 3, 2), tol);
  }
}

TEST_CASE("instance_norm2d matches the reference", "[ops][forward]") {
  struct Case {
    Shape shape;
    bool weight, bias;
    UnaryKind act;
    disco::ref::Act ract;
    double slope;
  };
  using RA = disco::ref::Act;
  const std::vector<Case> cases = {
      {{2, 3, 4, 5}, false, false, UnaryKind::None, RA::None, 0},
      {{1, 2, 3, 3}, true, true, UnaryKind::None, RA::None, 0},
      {{2, 3, 1, 2}, false, false, UnaryKind::Relu, RA::Relu, 0},
      {{1, 4, 2, 2}, false, false, UnaryKind::LeakyRelu, RA::Leaky, 0.2},
      {{2, 2, 3, 5}, true, true, UnaryKind::LeakyRelu, RA::Leaky, 0.2},
      {{2, 2, 3, 1}, true, false, UnaryKind::Relu, RA::Relu, 0},
      {{1, 3, 2, 3}, false, true, UnaryKind::Tanh, RA::Tanh, 0},
      {{3, 2, 7}, false, false, UnaryKind::Sigmoid, RA::Sigmoid, 0},  // rank 3 works too
  };
  for (DType dt : {DType::F32, DType::F64}) {
    for (const auto& c : cases) {
      Generator gen(5);
      Tensor x = Tensor::randn(c.shape, gen, dt, 0.5, 2.0);
      const int64_t C = c.shape[1];
      Tensor w = c.weight ? Tensor::randn({C}, gen, dt) : Tensor();
      Tensor b = c.bias ? Tensor::randn({C}, gen, dt) : Tensor();
      const int64_t N = c.shape[0], HW = x.numel() / (N * C);
      const Vec want = disco::ref::instance_norm(vals(x), N, C, HW, w.defined() ? vals(w) : Vec{},
                                                 b.defined() ? vals(b) : Vec{}, 1e-5, c.ract, c.slope);
      INFO("shape " << disco::shape_str(c.shape) << " act " << disco::unary_name(c.act));
      check_close(vals(disco::instance_norm2d(x, w, b, 1e-5, c.act, c.slope)), want, dt == DType::F64 ? 1e-11 : 1e-4);
    }
  }
  // eps matters for a constant channel: (x - mean) = 0 -> 0, and for tiny variance
  Tensor cst = Tensor::full({1, 1, 2, 2}, 3.0, DType::F64);
  check_close(vals(disco::instance_norm2d(cst)), {0, 0, 0, 0}, 0);
  Tensor tiny = Tensor::from_vector(Vec{0, 0.002}, {1, 1, 1, 2});  // var 1e-6, eps 1e-5
  const double want = 0.001 / std::sqrt(1e-6 + 1e-5);
  check_close(vals(disco::instance_norm2d(tiny)), {-want, want}, 1e-12);
  check_close(vals(disco::instance_norm2d(tiny, Tensor(), Tensor(), 0.0)), {-1, 1}, 1e-9);
}

TEST_CASE("losses match the reference (PyTorch semantics)", "[ops][forward][loss]") {
  for (DType dt : {DType::F32, DType::F64}) {
    Generator gen(6);
    const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
    Tensor p = Tensor::randn({2, 3, 4}, gen, dt), t = Tensor::randn({2, 3, 4}, gen, dt);
    CHECK(disco::mse_loss(p, t).item() == Approx(disco::ref::mse(vals(p), vals(t))).epsilon(tol));
    CHECK(disco::l1_loss(p, t).item() == Approx(disco::ref::l1(vals(p), vals(t))).epsilon(tol));
    CHECK(disco::loss(LossKind::MSE, p, t).item() == Approx(disco::ref::mse(vals(p), vals(t))).epsilon(tol));
    CHECK(disco::bce_with_logits(p, Tensor::rand({2, 3, 4}, gen, dt)).dim() == 0);
    Tensor prob = Tensor::rand({3, 5}, gen, dt, 0.02, 0.98), lab = Tensor::rand({3, 5}, gen, dt);
    CHECK(disco::bce(prob, lab).item() == Approx(disco::ref::bce(vals(prob), vals(lab))).epsilon(tol));
    Tensor logits = Tensor::randn({3, 5}, gen, dt, 0.0, 3.0);
    CHECK(disco::bce_with_logits(logits, lab).item() ==
          Approx(disco::ref::bce_with_logits(vals(logits), vals(lab))).epsilon(tol * 10));
  }
  // BCE clamps each log at -100 (PyTorch): p = 0 with t = 1 and p = 1 with t = 0 cost 100.
  Tensor p = Tensor::from_vector(Vec{0.0, 1.0, 0.0, 1.0, 1e-50}, {5});
  Tensor t = Tensor::from_vector(Vec{1.0, 0.0, 0.0, 1.0, 1.0}, {5});
  CHECK(disco::bce(p, t).item() == Approx((100 + 100 + 0 + 0 + 100) / 5.0).epsilon(1e-14));
  CHECK(disco::ref::bce(vals(p), vals(t)) == Approx(60.0));
  // its gradient: (p - t) / max(p (1 - p), 1e-12) / n
  Tensor p1 = Tensor::from_vector(Vec{0.0, 0.25}, {2}).set_requires_grad();
  disco::bce(p1, Tensor::from_vector(Vec{1.0, 1.0}, {2})).backward();
  const Vec g = vals(p1.grad());
  CHECK(g[0] == Approx(-1e12 / 2).epsilon(1e-12));
  CHECK(g[1] == Approx((0.25 - 1) / (0.25 * 0.75) / 2).epsilon(1e-12));
  // with logits is stable for large |x|: loss = max(x, 0) - x t + log(1 + exp(-|x|))
  Tensor x = Tensor::from_vector(Vec{800, -800, 50, -50, 0}, {5});
  Tensor xt = Tensor::from_vector(Vec{0, 1, 1, 0, 0.5}, {5});
  const double want = (800 + 800 + std::log1p(std::exp(-50.0)) + std::log1p(std::exp(-50.0)) + std::log(2.0)) / 5;
  CHECK(disco::bce_with_logits(x, xt).item() == Approx(want).epsilon(1e-14));
  // L1 at a tie: zero loss, zero gradient (sign(0) = 0)
  Tensor a = Tensor::from_vector(Vec{1.0, 2.0}, {2}).set_requires_grad();
  Tensor l = disco::l1_loss(a, Tensor::from_vector(Vec{1.0, 0.0}, {2}));
  CHECK(l.item() == Approx(1.0));
  l.backward();
  CHECK(vals(a.grad()) == Vec{0.0, 0.5});
}

TEST_CASE("recon_adv_loss matches its parts", "[ops][forward][loss]") {
  for (DType dt : {DType::F32, DType::F64}) {
    for (LossKind rk : {LossKind::MSE, LossKind::L1}) {
      Generator gen(7);
      const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
      Tensor pred = Tensor::randn({2, 3, 4, 4}, gen, dt), target = Tensor::randn({2, 3, 4, 4}, gen, dt);
      Tensor prob = Tensor::rand({2, 1}, gen, dt, 0.05, 0.95);
      for (double label : {0.0, 1.0, 0.9}) {
        disco::ReconAdvParts parts;
        Tensor l = disco::recon_adv_loss(pred, target, prob, label, 0.3, rk, &parts);
        const double rec = rk == LossKind::MSE ? disco::ref::mse(vals(pred), vals(target))
                                               : disco::ref::l1(vals(pred), vals(target));
        const double adv = disco::ref::bce(vals(prob), Vec(2, label));
        CHECK(l.dim() == 0);
        CHECK(parts.recon == Approx(rec).epsilon(tol));
        CHECK(parts.adv == Approx(adv).epsilon(tol));
        CHECK(l.item() == Approx(rec + 0.3 * adv).epsilon(tol));
        // equals the composition of the separate ops
        Tensor comp = disco::add(disco::loss(rk, pred, target), disco::scale(disco::bce(prob, Tensor::full({2, 1}, label, dt)), 0.3));
        CHECK(l.item() == Approx(comp.item()).epsilon(tol));
      }
    }
  }
}

TEST_CASE("recon_adv_loss_grouped is the sum of the groups' recon_adv_loss", "[ops][forward][loss]") {
  const std::vector<int64_t> groups = {2, 1, 3};
  for (DType dt : {DType::F32, DType::F64}) {
    for (LossKind rk : {LossKind::MSE, LossKind::L1}) {
      for (const Shape& pshape : {Shape{6, 3, 5, 5}, Shape{6, 7}}) {
        INFO(disco::dtype_name(dt) << " " << disco::loss_name(rk) << " pred " << disco::shape_str(pshape));
        Generator gen(70);
        const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
        const Tensor p0 = Tensor::randn(pshape, gen, dt), target = Tensor::randn(pshape, gen, dt);
        const Tensor q0 = Tensor::rand({6, 1}, gen, dt, 0.05, 0.95);
        // grouped, on leaves
        Tensor pred = p0.clone().set_requires_grad(true), prob = q0.clone().set_requires_grad(true);
        Tensor parts;
        Tensor l = disco::recon_adv_loss_grouped(pred, target, prob, 0.0, 0.3, rk, groups, &parts);
        REQUIRE(l.dim() == 0);
        REQUIRE(parts.shape() == Shape{3, 3});
        disco::scale(l, 2.5).backward();
        // the same groups one by one, on their own leaves
        Tensor pred2 = p0.clone().set_requires_grad(true), prob2 = q0.clone().set_requires_grad(true);
        Tensor sum;
        int64_t at = 0;
        for (std::size_t g = 0; g < groups.size(); ++g) {
          Tensor pg;
          Tensor lg = disco::recon_adv_loss(pred2.narrow(0, at, groups[g]), target.narrow(0, at, groups[g]),
                                            prob2.narrow(0, at, groups[g]), 0.0, 0.3, rk, nullptr, &pg);
          check_close(vals(parts.narrow(0, int64_t(g), 1).reshape({3})), vals(pg), tol);
          sum = sum.defined() ? disco::add(sum, lg) : lg;
          at += groups[g];
        }
        CHECK(l.item() == Approx(sum.item()).epsilon(tol));
        disco::scale(sum, 2.5).backward();
        check_close(vals(pred.grad()), vals(pred2.grad()), tol);
        check_close(vals(prob.grad()), vals(prob2.grad()), tol);
        // one group is recon_adv_loss itself
        Tensor one = disco::recon_adv_loss_grouped(p0, target, q0, 1.0, 0.3, rk, {6});
        CHECK(one.item() == Approx(disco::recon_adv_loss(p0, target, q0, 1.0, 0.3, rk).item()).epsilon(tol));
      }
    }
  }
  const Tensor a = Tensor::zeros({4, 3}), q = Tensor::full({4}, 0.5);
  CHECK_THROWS_WITH(disco::recon_adv_loss_grouped(a, a, q, 0.0, 1.0, LossKind::MSE, {1, 2}),
                    Contains("recon_adv_loss_grouped") && Contains("sum to 3") && Contains("[4, 3]"));
  CHECK_THROWS_WITH(disco::recon_adv_loss_grouped(a, a, q, 0.0, 1.0, LossKind::MSE, {4, 0}),
                    Contains("recon_adv_loss_grouped") && Contains("positive"));
  CHECK_THROWS_WITH(disco::recon_adv_loss_grouped(a, a, Tensor::full({3}, 0.5), 0.0, 1.0, LossKind::MSE, {4}),
                    Contains("recon_adv_loss_grouped") && Contains("[3]") && Contains("dim 0"));
  CHECK_THROWS_WITH(disco::recon_adv_loss_grouped(a, a, q, 0.0, 1.0, LossKind::MSE, {}),
                    Contains("recon_adv_loss_grouped") && Contains("no groups"));
}

TEST_CASE("conv2d and conv_transpose2d forward match the reference", "[ops][forward][conv]") {
  struct C {
    int N, C, H, W, K, R, S, stride, pad, dil;
    bool bias;
  };
  const std::vector<C> convs = {
      {2, 3, 5, 7, 4, 3, 3, 1, 1, 1, true},  {1, 2, 7, 6, 3, 3, 3, 2, 1, 1, false},
      {2, 2, 9, 8, 2, 3, 3, 1, 2, 2, true},  {1, 3, 1, 1, 2, 1, 1, 1, 0, 1, true},
      {2, 2, 2, 2, 3, 3, 3, 1, 1, 1, false}, {1, 2, 6, 5, 2, 4, 4, 2, 1, 1, true},
      {1, 2, 2, 2, 3, 4, 4, 2, 1, 1, true},  {3, 1, 4, 4, 1, 2, 2, 3, 0, 1, false},
  };
  for (DType dt : {DType::F32, DType::F64}) {
    for (const auto& c : convs) {
      Generator gen(8);
      Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, gen, dt), w = Tensor::randn({c.K, c.C, c.R, c.S}, gen, dt);
      Tensor b = c.bias ? Tensor::randn({c.K}, gen, dt) : Tensor();
      Conv2dOptions o;
      o.stride = c.stride;
      o.padding = c.pad;
      o.dilation = c.dil;
      Tensor y = disco::conv2d(x, w, b, o);
      auto p = disco::make_conv2d_problem(c.N, c.C, c.H, c.W, c.K, c.R, c.S, c.stride, c.pad, c.dil);
      CHECK(y.shape() == Shape{c.N, c.K, p.P, p.Q});
      check_close(vals(y), disco::ref::conv2d_fprop(p, vals(x), vals(w), b.defined() ? vals(b) : Vec{}),
                  dt == DType::F64 ? 1e-12 : 1e-5);
    }
  }
  struct T {
    int N, Cin, H, W, Cout, R, S, stride, pad, opad, dil;
    bool bias;
  };
  const std::vector<T> transposed = {
      {2, 3, 3, 4, 2, 3, 3, 1, 1, 0, 1, true}, {1, 2, 3, 3, 3, 4, 4, 2, 1, 0, 1, false},
      {2, 2, 3, 2, 2, 3, 3, 2, 1, 1, 1, true}, {1, 3, 1, 1, 2, 4, 4, 2, 1, 0, 1, true},
      {1, 2, 2, 2, 2, 3, 3, 3, 0, 2, 1, false}, {1, 2, 3, 3, 2, 3, 3, 2, 1, 1, 2, true},
      {2, 4, 2, 2, 3, 4, 4, 2, 1, 0, 1, true},
  };
  for (DType dt : {DType::F32, DType::F64}) {
    for (const auto& c : transposed) {
      Generator gen(9);
      Tensor x = Tensor::randn({c.N, c.Cin, c.H, c.W}, gen, dt), w = Tensor::randn({c.Cin, c.Cout, c.R, c.S}, gen, dt);
      Tensor b = c.bias ? Tensor::randn({c.Cout}, gen, dt) : Tensor();
      Conv2dOptions o;
      o.stride = c.stride;
      o.padding = c.pad;
      o.output_padding = c.opad;
      o.dilation = c.dil;
      Tensor y = disco::conv_transpose2d(x, w, b, o);
      int64_t Ho = 0, Wo = 0;
      const Vec want = disco::ref::conv_transpose2d(vals(x), vals(w), b.defined() ? vals(b) : Vec{}, c.N, c.Cin, c.H, c.W,
                                                    c.Cout, c.R, c.S, c.stride, c.pad, c.opad, c.dil, &Ho, &Wo);
      CHECK(y.shape() == Shape{c.N, c.Cout, Ho, Wo});
      check_close(vals(y), want, dt == DType::F64 ? 1e-12 : 1e-5);
    }
  }
}

TEST_CASE("adjoint identity <conv2d(x), y> = <x, conv_transpose2d(y)>", "[ops][forward][conv]") {
  struct C {
    int N, C, H, W, K, R, S, stride, pad, dil;
  };
  const std::vector<C> cases = {
      {2, 3, 5, 7, 4, 3, 3, 1, 1, 1}, {1, 2, 7, 5, 3, 3, 3, 2, 1, 1}, {2, 2, 9, 8, 2, 3, 3, 1, 2, 2},
      {1, 3, 1, 1, 2, 1, 1, 1, 0, 1}, {2, 2, 2, 2, 3, 3, 3, 1, 1, 1}, {1, 2, 7, 5, 2, 4, 4, 2, 1, 1},
      {2, 3, 8, 8, 4, 4, 4, 2, 1, 1}, {1, 2, 10, 10, 3, 3, 3, 3, 1, 2}, {2, 2, 7, 7, 2, 2, 2, 3, 0, 1},
  };
  for (const auto& c : cases) {
    Generator gen(10);
    Tensor x = Tensor::randn({c.N, c.C, c.H, c.W}, gen, DType::F64);
    Tensor w = Tensor::randn({c.K, c.C, c.R, c.S}, gen, DType::F64);  // the same weight for both
    Conv2dOptions o;
    o.stride = c.stride;
    o.padding = c.pad;
    o.dilation = c.dil;
    Tensor cx = disco::conv2d(x, w, Tensor(), o);
    Tensor y = Tensor::randn(cx.shape(), gen, DType::F64);
    // output_padding recovers the exact input size: the remainder of the forward size formula
    o.output_padding = (c.H + 2 * c.pad - c.dil * (c.R - 1) - 1) % c.stride;
    REQUIRE((c.W + 2 * c.pad - c.dil * (c.S - 1) - 1) % c.stride == o.output_padding);
    Tensor ty = disco::conv_transpose2d(y, w, Tensor(), o);
    REQUIRE(ty.shape() == x.shape());
    const double lhs = dot(vals(cx), vals(y)), rhs = dot(vals(x), vals(ty));
    INFO("N=" << c.N << " C=" << c.C << " H=" << c.H << " W=" << c.W << " K=" << c.K << " stride=" << c.stride);
    CHECK(lhs == Approx(rhs).epsilon(1e-12));
    // and in float32
    Tensor xf = make(vals(x), x.shape(), DType::F32), wf = make(vals(w), w.shape(), DType::F32);
    Tensor yf = make(vals(y), y.shape(), DType::F32);
    const double lf = dot(vals(disco::conv2d(xf, wf, Tensor(), o)), vals(yf));
    const double rf = dot(vals(xf), vals(disco::conv_transpose2d(yf, wf, Tensor(), o)));
    CHECK(lf == Approx(rf).epsilon(1e-4).margin(1e-4));
  }
}

TEST_CASE("op error messages name the op and the shapes", "[ops][errors]") {
  Tensor a = Tensor::zeros({2, 3}), b = Tensor::zeros({3, 2}), d = Tensor::zeros({2, 3}, DType::F64);
  // elementwise
  CHECK_THROWS_AS(disco::add(a, b), disco::Error);
  CHECK_THROWS_WITH(disco::add(a, b), Contains("add") && Contains("[2, 3]") && Contains("[3, 2]"));
  CHECK_THROWS_WITH(disco::sub(a, b), Contains("sub") && Contains("[2, 3]") && Contains("[3, 2]"));
  CHECK_THROWS_WITH(disco::mul(a, b), Contains("mul") && Contains("[2, 3]") && Contains("[3, 2]"));
  CHECK_THROWS_WITH(a + d, Contains("add") && Contains("float32") && Contains("float64"));
  CHECK_THROWS_WITH(disco::mul(d, a), Contains("mul") && Contains("float64") && Contains("float32"));
  CHECK_THROWS_WITH(disco::add_channel(a, Tensor::zeros({2})), Contains("add_channel") && Contains("[2]") &&
                                                                   Contains("[2, 3]") && Contains("[3]"));
  CHECK_THROWS_WITH(disco::mul_channel(Tensor::zeros({4}), Tensor::zeros({4})),
                    Contains("mul_channel") && Contains("[4]") && Contains("at least 2 dims"));
  CHECK_THROWS_WITH(disco::mul_channel(a, Tensor::zeros({3}, DType::F64)),
                    Contains("mul_channel") && Contains("float64"));
  // matmul / linear
  CHECK_THROWS_WITH(disco::matmul(a, a), Contains("matmul") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(disco::matmul(Tensor::zeros({2, 3, 1}), a), Contains("matmul") && Contains("[2, 3, 1]"));
  CHECK_THROWS_WITH(disco::matmul(a, Tensor::zeros({3, 2}, DType::F64)), Contains("matmul") && Contains("float64"));
  CHECK_THROWS_WITH(disco::linear(a, Tensor::zeros({4, 5})),
                    Contains("linear") && Contains("[2, 3]") && Contains("[4, 5]"));
  CHECK_THROWS_WITH(disco::linear(Tensor::zeros({2, 3, 1}), Tensor::zeros({4, 3})),
                    Contains("linear") && Contains("[2, 3, 1]"));
  CHECK_THROWS_WITH(disco::linear(a, Tensor::zeros({4, 3}), Tensor::zeros({5})),
                    Contains("linear") && Contains("bias") && Contains("[5]") && Contains("[4, 3]"));
  CHECK_THROWS_WITH(disco::linear(a, Tensor::zeros({4, 3}, DType::F64)),
                    Contains("linear") && Contains("float32") && Contains("float64"));
  // conv
  Tensor x = Tensor::zeros({1, 3, 5, 5}), w = Tensor::zeros({4, 2, 3, 3});
  CHECK_THROWS_AS(disco::conv2d(x, w, Tensor(), {}), disco::Error);
  CHECK_THROWS_WITH(disco::conv2d(x, w, Tensor(), {}),
                    Contains("conv2d") && Contains("[1, 3, 5, 5]") && Contains("[4, 2, 3, 3]"));
  CHECK_THROWS_WITH(disco::conv2d(Tensor::zeros({3, 5, 5}), w, Tensor(), {}),
                    Contains("conv2d") && Contains("[3, 5, 5]") && Contains("4-d"));
  CHECK_THROWS_WITH(disco::conv2d(x, Tensor::zeros({4, 3, 3}), Tensor(), {}),
                    Contains("conv2d") && Contains("[4, 3, 3]") && Contains("4-d"));
  CHECK_THROWS_WITH(disco::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor::zeros({3}), {}),
                    Contains("conv2d") && Contains("bias") && Contains("[3]"));
  CHECK_THROWS_WITH(disco::conv2d(x, Tensor::zeros({4, 3, 3, 3}, DType::F64), Tensor(), {}),
                    Contains("conv2d") && Contains("float32") && Contains("float64"));
  CHECK_THROWS_WITH(disco::conv2d(x, Tensor::zeros({4, 3, 7, 7}), Tensor(), {}),
                    Contains("conv2d") && Contains("[1, 3, 5, 5]") && Contains("too small"));
  Conv2dOptions s3;
  s3.stride = 3;  // 2x2 input, 4x4 kernel, stride 3: the kernel does not fit (PyTorch errors too)
  CHECK_THROWS_WITH(disco::conv2d(Tensor::zeros({1, 1, 2, 2}), Tensor::zeros({1, 1, 4, 4}), Tensor(), s3),
                    Contains("conv2d") && Contains("[1, 1, 2, 2]") && Contains("too small"));
  Conv2dOptions bad;
  bad.stride = 0;
  CHECK_THROWS_WITH(disco::conv2d(x, Tensor::zeros({4, 3, 3, 3}), Tensor(), bad), Contains("conv2d") && Contains("stride 0"));
  Tensor tw = Tensor::zeros({2, 4, 3, 3});
  CHECK_THROWS_WITH(disco::conv_transpose2d(x, tw, Tensor(), {}),
                    Contains("conv_transpose2d") && Contains("[1, 3, 5, 5]") && Contains("[2, 4, 3, 3]"));
  Conv2dOptions op;
  op.stride = 2;
  op.output_padding = 2;
  CHECK_THROWS_WITH(disco::conv_transpose2d(x, Tensor::zeros({3, 4, 3, 3}), Tensor(), op),
                    Contains("conv_transpose2d") && Contains("output_padding 2"));
  CHECK_THROWS_WITH(disco::conv_transpose2d(x, Tensor::zeros({3, 4, 3, 3}), Tensor::zeros({3}), {}),
                    Contains("conv_transpose2d") && Contains("bias") && Contains("[3]"));
  // instance norm
  CHECK_THROWS_WITH(disco::instance_norm2d(a), Contains("instance_norm2d") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(disco::instance_norm2d(Tensor::zeros({2, 3, 1, 1})),
                    Contains("instance_norm2d") && Contains("[2, 3, 1, 1]") && Contains("more than 1 spatial"));
  CHECK_THROWS_WITH(disco::instance_norm2d(Tensor::zeros({2, 3, 2, 2}), Tensor::ones({4})),
                    Contains("instance_norm2d") && Contains("weight") && Contains("[4]") && Contains("[2, 3, 2, 2]"));
  CHECK_THROWS_WITH(disco::instance_norm2d(Tensor::zeros({2, 3, 2, 2}), Tensor(), Tensor::ones({3}, DType::F64)),
                    Contains("instance_norm2d") && Contains("bias") && Contains("float64"));
  // losses
  CHECK_THROWS_WITH(disco::mse_loss(a, b), Contains("mse_loss") && Contains("[2, 3]") && Contains("[3, 2]"));
  CHECK_THROWS_WITH(disco::l1_loss(a, d), Contains("l1_loss") && Contains("float32") && Contains("float64"));
  CHECK_THROWS_WITH(disco::bce(a, b), Contains("bce") && Contains("[2, 3]") && Contains("[3, 2]"));
  CHECK_THROWS_WITH(disco::bce_with_logits(a, b), Contains("bce_with_logits") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(disco::mse_loss(Tensor::zeros({0}), Tensor::zeros({0})), Contains("mse_loss") && Contains("empty"));
  Tensor tg = Tensor::full({2, 3}, 0.5).set_requires_grad();
  CHECK_THROWS_WITH(disco::bce(Tensor::full({2, 3}, 0.5), tg), Contains("bce") && Contains("target"));
  CHECK_THROWS_WITH(disco::recon_adv_loss(a, b, Tensor::full({2}, 0.5), 1.0, 1.0),
                    Contains("recon_adv_loss") && Contains("[2, 3]") && Contains("[3, 2]"));
  CHECK_THROWS_WITH(disco::recon_adv_loss(a, a, Tensor::full({2}, 0.5, DType::F64), 1.0, 1.0),
                    Contains("recon_adv_loss") && Contains("float64"));
  CHECK_THROWS_WITH(disco::recon_adv_loss(a, a, Tensor::full({2}, 0.5), 1.0, 1.0, LossKind::BCE),
                    Contains("recon_adv_loss") && Contains("MSE or L1"));
  CHECK_THROWS_WITH(disco::recon_adv_loss(a, tg, Tensor::full({2}, 0.5), 1.0, 1.0),
                    Contains("recon_adv_loss") && Contains("target"));
}

TEST_CASE("multi-threaded kernel paths agree with the reference and with per-sample runs", "[ops][forward][parallel]") {
  // 2 x 8 x 48 x 48 = 36864 elements: above the kernels' parallel grain; one sample is below it.
  Generator gen(11);
  const Shape s{2, 8, 48, 48};
  const int64_t N = 2, C = 8, HW = 48 * 48;
  Tensor x = Tensor::randn(s, gen, DType::F64).set_requires_grad();
  Tensor v = Tensor::randn({C}, gen, DType::F64).set_requires_grad();
  Tensor r = Tensor::randn(s, gen, DType::F64);
  const Vec xv = vals(x), vv = vals(v), rv = vals(r);
  check_close(vals(disco::leaky_relu(x, 0.2)), disco::ref::map(xv, [](double a) { return disco::ref::leaky_relu(a, 0.2); }),
              1e-15);
  check_close(vals(disco::sigmoid(x)), disco::ref::map(xv, disco::ref::sigmoid), 1e-15);
  check_close(vals(disco::add_channel(x, v)), disco::ref::add_channel(xv, vv, N, C, HW), 1e-15);
  check_close(vals(disco::mul_channel(x, v)), disco::ref::mul_channel(xv, vv, N, C, HW), 1e-15);
  Vec prod(xv.size());
  for (std::size_t i = 0; i < xv.size(); ++i) prod[i] = xv[i] * rv[i];
  check_close(vals(disco::mul(x, r)), prod, 1e-15);
  CHECK(disco::sum(x).item() == Approx(disco::ref::sum(xv)).epsilon(1e-12));
  CHECK(disco::mse_loss(x, r).item() == Approx(disco::ref::mse(xv, rv)).epsilon(1e-12));
  CHECK(disco::l1_loss(x, r).item() == Approx(disco::ref::l1(xv, rv)).epsilon(1e-12));
  check_close(vals(disco::instance_norm2d(x, Tensor(), Tensor(), 1e-5, UnaryKind::LeakyRelu, 0.2)),
              disco::ref::instance_norm(xv, N, C, HW, {}, {}, 1e-5, disco::ref::Act::Leaky, 0.2), 1e-12);
  // a strided copy: every other column block
  Tensor cols = x.detach().narrow(3, 5, 40).contiguous();
  CHECK(cols.shape() == Shape{2, 8, 48, 40});
  CHECK(cols.at({1, 7, 47, 39}) == x.at({1, 7, 47, 44}));
  CHECK(cols.at({1, 3, 20, 0}) == x.at({1, 3, 20, 5}));

  // gradients of the big graph equal the sums of per-sample (single-threaded) ones
  auto graph = [](const Tensor& xx, const Tensor& vv2, const Tensor& rr) {
    Tensor y = disco::instance_norm2d(disco::mul_channel(xx, vv2), Tensor(), Tensor(), 1e-5, UnaryKind::LeakyRelu, 0.2);
    return disco::add(disco::sum(disco::mul(y, rr)), disco::mse_loss(disco::tanh(xx), rr));
  };
  graph(x, v, r).backward();
  Vec vgrad(std::size_t(C), 0.0);
  for (int64_t n = 0; n < N; ++n) {
    Tensor xn = x.detach().narrow(0, n, 1).clone().set_requires_grad();
    Tensor vn = v.detach().clone().set_requires_grad();
    Tensor rn = r.narrow(0, n, 1);
    // the mse term is a mean over both samples: scale the per-sample one by 1/N
    Tensor yn = disco::instance_norm2d(disco::mul_channel(xn, vn), Tensor(), Tensor(), 1e-5, UnaryKind::LeakyRelu, 0.2);
    disco::add(disco::sum(disco::mul(yn, rn)), disco::scale(disco::mse_loss(disco::tanh(xn), rn), 1.0 / N)).backward();
    check_close(vals(x.grad().narrow(0, n, 1)), vals(xn.grad()), 1e-12);
    const Vec g = vals(vn.grad());
    for (int64_t c = 0; c < C; ++c) vgrad[std::size_t(c)] += g[std::size_t(c)];
  }
  check_close(vals(v.grad()), vgrad, 1e-10);
}
