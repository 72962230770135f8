// Tests of optim/optim.hpp against values worked out by hand from the PyTorch update rules:
//   Adam: g' = g + wd p; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
//         p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
//   SGD:  g' = g + wd p; buf = g' (first step) or mu buf + g'; p -= lr buf
//   clip_grad_norm: norm = sqrt(sum of all squared grads); if max_norm / (norm + 1e-6) < 1,
//         every grad *= max_norm / (norm + 1e-6); returns norm.
#include <catch2/catch.hpp>

#include <cmath>
#include <vector>

#include "disco/disco.hpp"

namespace {

using disco::CPU;
using disco::DType;
using Tensor = disco::Tensor<CPU>;
using Catch::Contains;
using Vec = std::vector<double>;

Vec vals(const Tensor& t) { return t.to_vector<double>(); }

Tensor leaf(const Vec& v, DType dt = DType::F64) {
  const int64_t n = int64_t(v.size());
  Tensor t = dt == DType::F64 ? Tensor::from_vector(v, {n}) : Tensor::from_vector(std::vector<float>(v.begin(), v.end()), {n});
  return t.set_requires_grad();
}
void set_grad(Tensor& p, const Vec& g) {
  const int64_t n = int64_t(g.size());
  p.set_grad(p.dtype() == DType::F64 ? Tensor::from_vector(g, {n})
                                     : Tensor::from_vector(std::vector<float>(g.begin(), g.end()), {n}));
}

void check_close(const Vec& a, const Vec& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]).epsilon(tol).margin(tol));
}

}  // namespace

TEST_CASE("Adam first step is lr * sign(g) (bias correction)", "[optim][adam]") {
  // After one step m_hat = g and v_hat = g^2, so p1 = p0 - lr * g / (|g| + eps).
  Tensor p = leaf({1.0, -2.0, 0.5, 3.0});
  disco::optim::AdamOptions o;
  o.lr = 0.1;
  disco::optim::Adam<CPU> adam({p}, o);
  set_grad(p, {0.3, -4.0, 1e-3, 0.0});
  adam.step();
  CHECK(adam.step_count() == 1);
  const double eps = 1e-8;
  check_close(vals(p), {1.0 - 0.1 * 0.3 / (0.3 + eps), -2.0 + 0.1 * 4.0 / (4.0 + eps), 0.5 - 0.1 * 1e-3 / (1e-3 + eps), 3.0},
              1e-14);
  // the moments: m = (1 - b1) g, v = (1 - b2) g^2
  check_close(vals(adam.exp_avg(0)), {0.1 * 0.3, 0.1 * -4.0, 0.1 * 1e-3, 0.0}, 1e-15);
  check_close(vals(adam.exp_avg_sq(0)), {0.001 * 0.09, 0.001 * 16.0, 0.001 * 1e-6, 0.0}, 1e-15);
}

TEST_CASE("Adam three steps with weight decay and custom betas", "[optim][adam]") {
  const double lr = 0.05, b1 = 0.8, b2 = 0.9, eps = 1e-3, wd = 0.1;
  // by hand, for one scalar parameter p0 = 1 and gradients 2, -1, 0.5:
  // step 1: g' = 2 + 0.1 * 1 = 2.1
  const double g1 = 2.0 + wd * 1.0;
  const double m1 = (1 - b1) * g1, v1 = (1 - b2) * g1 * g1;
  const double p1 = 1.0 - lr / (1 - b1) * m1 / (std::sqrt(v1) / std::sqrt(1 - b2) + eps);
  // step 2
  const double g2 = -1.0 + wd * p1;
  const double m2 = b1 * m1 + (1 - b1) * g2, v2 = b2 * v1 + (1 - b2) * g2 * g2;
  const double p2 = p1 - lr / (1 - b1 * b1) * m2 / (std::sqrt(v2) / std::sqrt(1 - b2 * b2) + eps);
  // step 3
  const double g3 = 0.5 + wd * p2;
  const double m3 = b1 * m2 + (1 - b1) * g3, v3 = b2 * v2 + (1 - b2) * g3 * g3;
  const double p3 = p2 - lr / (1 - b1 * b1 * b1) * m3 / (std::sqrt(v3) / std::sqrt(1 - b2 * b2 * b2) + eps);
  // sanity of the hand computation: step 1 moves by ~lr
  CHECK(p1 == Approx(1.0 - lr * g1 / (g1 + eps)).epsilon(1e-12));

  for (DType dt : {DType::F64, DType::F32}) {
    Tensor p = leaf({1.0}, dt);
    Tensor q = leaf({5.0}, dt);  // never gets a gradient: untouched
    disco::optim::AdamOptions o;
    o.lr = lr;
    o.beta1 = b1;
    o.beta2 = b2;
    o.eps = eps;
    o.weight_decay = wd;
    disco::optim::Adam<CPU> adam({p, q}, o);
    const double tol = dt == DType::F64 ? 1e-14 : 1e-6;
    set_grad(p, {2.0});
    adam.step();
    check_close(vals(p), {p1}, tol);
    set_grad(p, {-1.0});
    adam.step();
    check_close(vals(p), {p2}, tol);
    set_grad(p, {0.5});
    adam.step();
    check_close(vals(p), {p3}, tol);
    check_close(vals(adam.exp_avg(0)), {m3}, tol);
    check_close(vals(adam.exp_avg_sq(0)), {v3}, tol);
    CHECK(vals(q) == Vec{5.0});
    CHECK(!adam.exp_avg(1).defined());
    CHECK(adam.step_count() == 3);
    adam.zero_grad();
    CHECK(!p.grad().defined());
  }
}

TEST_CASE("Adam minimises a quadratic through autograd", "[optim][adam]") {
  // f(p) = sum((p - c)^2); Adam with lr 0.05 reaches c.
  Tensor p = leaf({0.0, 0.0, 0.0});
  Tensor c = Tensor::from_vector(Vec{1.0, -2.0, 0.5}, {3});
  disco::optim::AdamOptions o;
  o.lr = 0.05;
  disco::optim::Adam<CPU> adam({p}, o);
  for (int i = 0; i < 600; ++i) {
    adam.zero_grad();
    disco::sum(disco::mul(disco::sub(p, c), disco::sub(p, c))).backward();
    adam.step();
  }
  check_close(vals(p), {1.0, -2.0, 0.5}, 1e-3);
}

TEST_CASE("SGD with momentum and weight decay", "[optim][sgd]") {
  const double lr = 0.1, mu = 0.9, wd = 0.01;
  // by hand for p0 = (1, -1), grads (1, 2), (0.5, -1), (0, 0):
  const double a0 = 1.0, b0 = -1.0;
  // step 1: buf = g'
  const double ga1 = 1 + wd * a0, gb1 = 2 + wd * b0;
  const double bufa1 = ga1, bufb1 = gb1;
  const double a1 = a0 - lr * bufa1, b1 = b0 - lr * bufb1;
  // step 2
  const double ga2 = 0.5 + wd * a1, gb2 = -1 + wd * b1;
  const double bufa2 = mu * bufa1 + ga2, bufb2 = mu * bufb1 + gb2;
  const double a2 = a1 - lr * bufa2, b2 = b1 - lr * bufb2;
  // step 3: zero gradient, momentum keeps moving
  const double ga3 = 0 + wd * a2, gb3 = 0 + wd * b2;
  const double a3 = a2 - lr * (mu * bufa2 + ga3), b3 = b2 - lr * (mu * bufb2 + gb3);
  for (DType dt : {DType::F64, DType::F32}) {
    const double tol = dt == DType::F64 ? 1e-15 : 1e-6;
    Tensor p = leaf({a0, b0}, dt);
    disco::optim::SGDOptions o;
    o.lr = lr;
    o.momentum = mu;
    o.weight_decay = wd;
    disco::optim::SGD<CPU> sgd({p}, o);
    set_grad(p, {1, 2});
    sgd.step();
    check_close(vals(p), {a1, b1}, tol);
    set_grad(p, {0.5, -1});
    sgd.step();
    check_close(vals(p), {a2, b2}, tol);
    set_grad(p, {0, 0});
    sgd.step();
    check_close(vals(p), {a3, b3}, tol);
  }
  // plain SGD: p -= lr g
  Tensor p = leaf({1.0, 2.0});
  disco::optim::SGDOptions o;
  o.lr = 0.5;
  disco::optim::SGD<CPU> sgd({p}, o);
  set_grad(p, {0.2, -0.4});
  sgd.step();
  sgd.step();
  check_close(vals(p), {1.0 - 2 * 0.1, 2.0 + 2 * 0.2}, 1e-15);
  sgd.zero_grad();
  CHECK(!p.grad().defined());
  sgd.step();  // no gradient: nothing happens
  check_close(vals(p), {0.8, 2.4}, 1e-15);
}

TEST_CASE("clip_grad_norm: global L2 norm, scale when larger", "[optim][clip]") {
  Tensor a = leaf({0, 0}), b = leaf({0}), c = leaf({7});  // c has no gradient
  set_grad(a, {3, 4});
  set_grad(b, {12});
  // norm = sqrt(9 + 16 + 144) = 13
  CHECK(disco::optim::grad_norm<CPU>({a, b, c}) == Approx(13.0).epsilon(1e-15));
  double n = disco::optim::clip_grad_norm<CPU>({a, b, c}, 100.0);
  CHECK(n == Approx(13.0).epsilon(1e-15));
  check_close(vals(a.grad()), {3, 4}, 0);  // unchanged: below the limit
  check_close(vals(b.grad()), {12}, 0);
  CHECK(!c.grad().defined());
  n = disco::optim::clip_grad_norm<CPU>({a, b, c}, 6.5);
  CHECK(n == Approx(13.0).epsilon(1e-15));
  const double k = 6.5 / (13.0 + 1e-6);
  check_close(vals(a.grad()), {3 * k, 4 * k}, 1e-15);
  check_close(vals(b.grad()), {12 * k}, 1e-15);
  // the clipped norm is just under max_norm; clipping again changes almost nothing
  const double n2 = disco::optim::clip_grad_norm<CPU>({a, b}, 6.5);
  CHECK(n2 == Approx(13.0 * k).epsilon(1e-14));
  CHECK(n2 < 6.5);
  // float32 gradients, also mixed with float64 ones
  Tensor f = leaf({0, 0}, DType::F32);
  set_grad(f, {0.6, 0.8});
  CHECK(disco::optim::clip_grad_norm<CPU>({f}, 0.5) == Approx(1.0).epsilon(1e-7));
  check_close(vals(f.grad()), {0.3, 0.4}, 1e-6);
  Tensor d = leaf({0});
  set_grad(d, {1.2});  // with f's (0.3, 0.4): norm 1.3
  CHECK(disco::optim::clip_grad_norm<CPU>({f, d}, 0.65) == Approx(1.3).epsilon(1e-6));
  check_close(vals(f.grad()), {0.15, 0.2}, 1e-6);
  check_close(vals(d.grad()), {0.6}, 1e-6);
  // no gradients at all: norm 0
  CHECK(disco::optim::clip_grad_norm<CPU>({c}, 1.0) == 0.0);
  CHECK_THROWS_WITH(disco::optim::clip_grad_norm<CPU>({a}, 0.0), Contains("clip_grad_norm") && Contains("max_norm"));
}

TEST_CASE("optimiser option checks", "[optim][errors]") {
  Tensor p = leaf({1});
  disco::optim::AdamOptions bad;
  bad.beta1 = 1.0;
  CHECK_THROWS_WITH(disco::optim::Adam<CPU>({p}, bad), Contains("Adam") && Contains("betas"));
  bad = {};
  bad.lr = -1;
  CHECK_THROWS_WITH(disco::optim::Adam<CPU>({p}, bad), Contains("Adam") && Contains("lr=-1"));
  disco::optim::SGDOptions sbad;
  sbad.momentum = -0.5;
  CHECK_THROWS_WITH(disco::optim::SGD<CPU>({p}, sbad), Contains("SGD") && Contains("momentum"));
}

TEST_CASE("optimisers and clipping with strided gradients", "[optim]") {
  // gradients stored in every other element of a buffer
  auto strided = [](const Vec& g) {
    Vec buf;
    for (double v : g) {
      buf.push_back(v);
      buf.push_back(-99);
    }
    Tensor b = Tensor::from_vector(buf, {int64_t(buf.size())});
    return b.as_strided({int64_t(g.size())}, {2}, 0);
  };
  Tensor p = leaf({1.0, -2.0});
  Tensor q = leaf({1.0, -2.0});
  disco::optim::AdamOptions o;
  o.lr = 0.1;
  disco::optim::Adam<CPU> a1({p}, o), a2({q}, o);
  p.set_grad(strided({0.5, 2.0}));
  set_grad(q, {0.5, 2.0});
  a1.step();
  a2.step();
  CHECK(vals(p) == vals(q));
  disco::optim::SGDOptions so;
  so.lr = 0.1;
  so.momentum = 0.5;
  disco::optim::SGD<CPU> s1({p}, so), s2({q}, so);
  s1.step();
  s2.step();
  CHECK(vals(p) == vals(q));
  Tensor g = strided({3.0, 4.0});
  p.set_grad(g);
  CHECK(disco::optim::clip_grad_norm<CPU>({p}, 1.0) == Approx(5.0));
  check_close(vals(p.grad()), {3.0 / (5 + 1e-6), 4.0 / (5 + 1e-6)}, 1e-12);
  CHECK(g.same(p.grad()));
  // a strided parameter cannot be updated in place
  Tensor base = leaf({1, 2, 3, 4});
  Tensor view = base.detach().as_strided({2}, {2}, 0).set_requires_grad();
  set_grad(view, {1, 1});
  disco::optim::Adam<CPU> bad({view}, o);
  CHECK_THROWS_WITH(bad.step(), Contains("Adam") && Contains("parameter 0") && Contains("[2]"));
}

TEST_CASE("clip_coefficient + Adam::step(scale) equal clip_grad_norm + Adam::step", "[optim][clip][adam]") {
  // The fused path (norm and coefficient as backend scalars, the coefficient applied inside
  // Adam's update) against the two-pass one, over three steps, float32 and float64.
  for (DType dt : {DType::F64, DType::F32}) {
    Tensor a1 = leaf({1.0, -2.0, 0.5}, dt), b1 = leaf({3.0}, dt), c1 = leaf({4.0}, dt);
    Tensor a2 = leaf({1.0, -2.0, 0.5}, dt), b2 = leaf({3.0}, dt), c2 = leaf({4.0}, dt);
    disco::optim::AdamOptions o;
    o.lr = 0.05;
    o.beta1 = 0.5;
    disco::optim::Adam<CPU> fused({a1, b1, c1}, o), twopass({a2, b2, c2}, o);
    const std::vector<Vec> ga = {{3, 4, 0}, {0.1, -0.2, 0.3}, {30, -40, 12}}, gb = {{12}, {0.05}, {-7}};
    for (int s = 0; s < 3; ++s) {
      set_grad(a1, ga[s]);
      set_grad(b1, gb[s]);
      set_grad(a2, ga[s]);
      set_grad(b2, gb[s]);  // c has no gradient: skipped by both
      const auto r = disco::optim::clip_coefficient<CPU>({a1, b1, c1}, 6.5);
      fused.step(r.coef);
      const double n = disco::optim::clip_grad_norm<CPU>({a2, b2, c2}, 6.5);
      twopass.step();
      CHECK(r.norm.item() == Approx(n).epsilon(dt == DType::F32 ? 1e-6 : 1e-15));
      CHECK(r.coef.item() == Approx(std::min(1.0, 6.5 / (n + 1e-6))).epsilon(dt == DType::F32 ? 1e-6 : 1e-15));
      check_close(vals(a1), vals(a2), dt == DType::F32 ? 1e-6 : 1e-14);
      check_close(vals(b1), vals(b2), dt == DType::F32 ? 1e-6 : 1e-14);
      check_close(vals(c1), {4.0}, 0);
      // the fused path leaves the gradients unscaled
      check_close(vals(a1.grad()), ga[s], dt == DType::F32 ? 1e-6 : 0);
    }
    CHECK(fused.step_count() == 3);
    // no clip (max_norm 0): a norm and no coefficient
    const auto r0 = disco::optim::clip_coefficient<CPU>({a1, b1}, 0.0);
    CHECK(!r0.coef.defined());
    CHECK(r0.norm.item() == Approx(std::sqrt(30.0 * 30 + 40 * 40 + 12 * 12 + 49)).epsilon(1e-6));
  }
  // the step count restored from a checkpoint drives the bias correction
  Tensor p = leaf({1.0}), q = leaf({1.0});
  disco::optim::AdamOptions o;
  o.lr = 0.1;
  disco::optim::Adam<CPU> x({p}, o), y({q}, o);
  for (int s = 0; s < 4; ++s) {
    set_grad(p, {0.5 + s});
    x.step();
  }
  // y: same moments and step count set by hand, then one more step on both
  y.exp_avg(0) = x.exp_avg(0).clone();
  y.exp_avg_sq(0) = x.exp_avg_sq(0).clone();
  y.set_step_count(4);
  q.detach().copy_(p.detach());
  set_grad(p, {2.0});
  set_grad(q, {2.0});
  x.step();
  y.step();
  CHECK(vals(p) == vals(q));
  CHECK(y.step_count() == 5);
  // one optimizer, one dtype
  Tensor f = leaf({1.0}, DType::F32);
  CHECK_THROWS_WITH(disco::optim::Adam<CPU>({p, f}, o), Contains("Adam") && Contains("one dtype"));
  CHECK_THROWS_WITH(x.step(Tensor::ones({2})), Contains("Adam::step") && Contains("[2]"));
}
