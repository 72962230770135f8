// Tests of the autograd engine (autograd/engine.hpp) and of disco::gradcheck itself:
// backward from a scalar, accumulation, NoGradGuard, detach, requires_grad propagation,
// shared subexpressions, explicit grad_output, and the error paths.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <memory>
#include <vector>

#include "disco/disco.hpp"

namespace {

using disco::CPU;
using disco::DType;
using disco::Generator;
using disco::Shape;
using Tensor = disco::Tensor<CPU>;
using Catch::Contains;

Tensor vec(std::vector<double> v) {
  const int64_t n = int64_t(v.size());
  return Tensor::from_vector(v, {n});
}
std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol = 1e-12) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]).margin(tol));
}

}  // namespace

TEST_CASE("backward from a scalar", "[core][autograd]") {
  Tensor x = vec({1, -2, 3}).set_requires_grad();
  Tensor y = disco::sum(disco::mul(x, x));  // d/dx = 2x
  CHECK(y.requires_grad());
  CHECK(!y.is_leaf());
  CHECK(std::string(y.grad_fn()->name) == "sum");
  CHECK(y.item() == 14);
  y.backward();
  check_close(vals(x.grad()), {2, -4, 6});
  CHECK(!y.grad().defined());  // non-leaf gradients are not kept

  // mean of a scaled, shifted tensor
  Tensor w = vec({0.5, 1.5, 2.5, 3.5}).set_requires_grad();
  disco::mean(disco::add_scalar(disco::scale(w, 3.0), 1.0)).backward();
  check_close(vals(w.grad()), {0.75, 0.75, 0.75, 0.75});
}

TEST_CASE("gradients accumulate across backward calls and zero_grad clears them", "[core][autograd]") {
  Tensor x = vec({1, 2, 3}).set_requires_grad();
  auto f = [&] { return disco::sum(disco::scale(x, 2.0)); };
  f().backward();
  check_close(vals(x.grad()), {2, 2, 2});
  f().backward();
  check_close(vals(x.grad()), {4, 4, 4});
  x.zero_grad();
  CHECK(!x.grad().defined());
  f().backward();
  check_close(vals(x.grad()), {2, 2, 2});
}

TEST_CASE("two leaves fed the same gradient keep separate .grad buffers", "[core][autograd]") {
  // add's backward hands the very same gradient tensor to both inputs; each leaf must get
  // its own buffer or the second backward (or clip_grad_norm) would count twice.
  Tensor a = vec({1, 2, 3}).set_requires_grad();
  Tensor b = vec({4, 5, 6}).set_requires_grad();
  disco::sum(disco::add(a, b)).backward();
  CHECK(a.grad().impl() != b.grad().impl());
  CHECK(a.grad().impl()->storage != b.grad().impl()->storage);
  disco::sum(disco::add(a, b)).backward();
  check_close(vals(a.grad()), {2, 2, 2});
  check_close(vals(b.grad()), {2, 2, 2});
  // in-place changes of one gradient leave the other alone
  a.grad().fill_(0);
  check_close(vals(b.grad()), {2, 2, 2});
  // clip_grad_norm scales each gradient exactly once
  const double norm = disco::optim::clip_grad_norm<CPU>({a, b}, 1.0);
  CHECK(norm == Approx(std::sqrt(12.0)));
  check_close(vals(b.grad()), std::vector<double>(3, 2.0 / (std::sqrt(12.0) + 1e-6)));
}

TEST_CASE("backward with an explicit grad_output", "[core][autograd]") {
  Tensor x = vec({1, 2, 3}).set_requires_grad();
  Tensor go = vec({1, 10, 100});
  disco::scale(x, 2.0).backward(go);
  check_close(vals(x.grad()), {2, 20, 200});
  check_close(vals(go), {1, 10, 100});
  // On a leaf: the gradient is a copy of grad_output, which later accumulation leaves alone.
  Tensor l = vec({0, 0, 0}).set_requires_grad();
  l.backward(go);
  l.backward(go);
  check_close(vals(l.grad()), {2, 20, 200});
  check_close(vals(go), {1, 10, 100});
  // A gradient passed straight through (clone) to a leaf is not aliased either.
  Tensor m = vec({0, 0, 0}).set_requires_grad();
  m.clone().backward(go);
  m.clone().backward(go);
  check_close(vals(m.grad()), {2, 20, 200});
  check_close(vals(go), {1, 10, 100});
  // a leaf scalar
  Tensor s = Tensor::scalar(3.0, DType::F64).set_requires_grad();
  s.backward();
  CHECK(s.grad().item() == 1.0);

  CHECK_THROWS_WITH(disco::scale(x, 2.0).backward(vec({1, 2})),
                    Contains("backward") && Contains("[3]") && Contains("[2]"));
  CHECK_THROWS_WITH(disco::scale(x, 2.0).backward(Tensor::ones({3})),
                    Contains("backward") && Contains("float64") && Contains("float32"));
}

TEST_CASE("shared subexpressions (diamond graphs) sum their gradients", "[core][autograd]") {
  Tensor x = vec({0.5, -1.0, 2.0}).set_requires_grad();
  // y = 3x; z = y*y + relu(y) + y  ->  dz/dx = 3 * (2y + [y > 0] + 1)
  Tensor y = disco::scale(x, 3.0);
  Tensor z = disco::sum(disco::add(disco::add(disco::mul(y, y), disco::relu(y)), y));
  z.backward();
  const auto xv = vals(x);
  std::vector<double> want;
  for (double v : xv) want.push_back(3 * (2 * 3 * v + (v > 0 ? 1 : 0) + 1));
  check_close(vals(x.grad()), want);

  // the same leaf used twice in one op
  Tensor w = vec({1, 2, 3}).set_requires_grad();
  disco::sum(disco::add(w, w)).backward();
  check_close(vals(w.grad()), {2, 2, 2});
  w.zero_grad();
  disco::sum(disco::mul(w, w)).backward();
  check_close(vals(w.grad()), {2, 4, 6});

  // a view and the original both used
  Tensor v = vec({1, 2, 3, 4}).set_requires_grad();
  Tensor part = v.narrow(0, 1, 2);
  disco::add(disco::sum(v), disco::sum(disco::scale(part, 5.0))).backward();
  check_close(vals(v.grad()), {1, 6, 6, 1});
}

TEST_CASE("a deep chain of ops runs backward", "[core][autograd]") {
  Tensor x = vec({1, 2}).set_requires_grad();
  Tensor h = x;
  for (int i = 0; i < 2000; ++i) h = disco::add_scalar(h, 0.001);
  disco::sum(h).backward();
  check_close(vals(x.grad()), {1, 1});
  check_close(vals(h), {3, 4}, 1e-9);
}

TEST_CASE("NoGradGuard disables recording and restores the mode", "[core][autograd]") {
  Tensor x = vec({1, 2}).set_requires_grad();
  CHECK(disco::grad_enabled());
  {
    disco::NoGradGuard g;
    CHECK(!disco::grad_enabled());
    Tensor y = disco::mul(x, x);
    CHECK(!y.requires_grad());
    CHECK(y.is_leaf());
    {
      disco::NoGradGuard g2;
      CHECK(!disco::grad_enabled());
    }
    CHECK(!disco::grad_enabled());
    CHECK_THROWS_WITH(disco::sum(y).backward(), Contains("backward") && Contains("does not require a gradient"));
  }
  CHECK(disco::grad_enabled());
  CHECK(disco::mul(x, x).requires_grad());
}

TEST_CASE("detach cuts the graph and shares storage", "[core][autograd]") {
  Tensor x = vec({1, 2, 3}).set_requires_grad();
  Tensor y = disco::scale(x, 2.0);
  Tensor d = y.detach();
  CHECK(!d.requires_grad());
  CHECK(d.is_leaf());
  CHECK(d.impl()->storage == y.impl()->storage);
  // gradient flows only through the attached branch
  disco::sum(disco::mul(y, d)).backward();  // d/dx = 2 * d = 4x
  check_close(vals(x.grad()), {4, 8, 12});
  // a detached leaf
  Tensor xd = x.detach();
  CHECK(!xd.requires_grad());
  CHECK(!xd.grad().defined());
}

TEST_CASE("requires_grad propagation", "[core][autograd]") {
  Tensor a = vec({1, 2});
  Tensor b = vec({3, 4});
  CHECK(!a.requires_grad());
  CHECK(a.is_leaf());
  Tensor c = disco::add(a, b);
  CHECK(!c.requires_grad());
  CHECK(c.grad_fn() == nullptr);
  b.set_requires_grad();
  Tensor d = disco::add(a, b);
  CHECK(d.requires_grad());
  CHECK(d.grad_fn() != nullptr);
  CHECK(d.grad_fn()->inputs.size() == 2);
  CHECK(disco::relu(d).requires_grad());
  // views of a tensor that requires grad require grad too
  CHECK(d.reshape({2, 1}).requires_grad());
  CHECK(d.narrow(0, 0, 1).requires_grad());
  CHECK(disco::concat<CPU>({a, b}, 0).requires_grad());
  CHECK(!disco::concat<CPU>({a, a}, 0).requires_grad());
  // only inputs that require grad get a gradient
  disco::sum(disco::mul(a, b)).backward();
  CHECK(!a.grad().defined());
  check_close(vals(b.grad()), {1, 2});
  // set_requires_grad(false) on a leaf is fine, on a non-leaf an error
  b.set_requires_grad(false);
  CHECK(!b.requires_grad());
  CHECK_THROWS_WITH(d.set_requires_grad(false), Contains("set_requires_grad") && Contains("detach"));
}

TEST_CASE("backward errors", "[core][autograd][errors]") {
  Tensor x = Tensor::from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}).set_requires_grad();
  Tensor y = disco::scale(x, 2.0);
  CHECK_THROWS_AS(y.backward(), disco::Error);
  CHECK_THROWS_WITH(y.backward(), Contains("backward") && Contains("[2, 2]") && Contains("scalar"));
  Tensor c = vec({1, 2});
  CHECK_THROWS_WITH(disco::sum(c).backward(), Contains("backward") && Contains("does not require a gradient"));
}

TEST_CASE("gradcheck passes correct gradients and catches a wrong one", "[core][autograd][gradcheck]") {
  Generator gen(3);
  Tensor x = Tensor::randn({2, 3}, gen, DType::F64).set_requires_grad();
  Tensor y = Tensor::randn({2, 3}, gen, DType::F64).set_requires_grad();
  auto good = disco::gradcheck<CPU>([](const std::vector<Tensor>& in) { return disco::mul(in[0], disco::tanh(in[1])); },
                                    {x, y});
  CHECK(good.ok);
  CHECK(good.max_abs_err < 1e-8);
  // the inputs are restored afterwards
  Generator gen2(3);
  CHECK(vals(x) == vals(Tensor::randn({2, 3}, gen2, DType::F64)));

  // An op whose backward is off by a factor: y = 2x with gradient 3 * g.
  auto wrong = [](const std::vector<Tensor>& in) {
    Tensor out = disco::detail::affine_raw(in[0], 2.0, 0.0);
    return disco::record<CPU>(out, "wrong", {in[0]}, [](const Tensor& g, std::vector<Tensor>& gi) {
      gi[0] = disco::detail::affine_raw(g, 3.0, 0.0);
    });
  };
  auto bad = disco::gradcheck<CPU>(wrong, {x});
  CHECK(!bad.ok);
  CHECK_THAT(bad.message, Contains("input 0"));
  CHECK(bad.max_abs_err > 0.1);

  CHECK_THROWS_WITH(disco::gradcheck<CPU>(wrong, {Tensor::ones({2}).set_requires_grad()}),
                    Contains("gradcheck") && Contains("float32"));
}

TEST_CASE("set_grad checks the gradient; strided gradients still accumulate", "[core][autograd][errors]") {
  Tensor x = vec({1, 2, 3}).set_requires_grad();
  CHECK_THROWS_WITH(x.set_grad(vec({1, 2})), Contains("set_grad") && Contains("[2]") && Contains("[3]"));
  CHECK_THROWS_WITH(x.set_grad(Tensor::zeros({3})), Contains("set_grad") && Contains("float32") &&
                                                        Contains("float64"));
  // a strided view as the gradient: backward adds into it in place
  Tensor store = Tensor::from_vector(std::vector<double>{10, -1, 20, -1, 30, -1}, {3, 2});
  Tensor view = store.narrow(1, 0, 1).reshape({3});  // reshape of a strided view copies...
  Tensor strided = store.narrow(1, 0, 1).detach();   // ...so take the [3, 1] view through as_strided
  Tensor g3 = strided.as_strided({3}, {2}, 0);
  CHECK(!g3.is_contiguous());
  x.set_grad(g3);
  disco::sum(disco::scale(x, 2.0)).backward();
  check_close(vals(x.grad()), {12, 22, 32});
  check_close(vals(store), {12, -1, 22, -1, 32, -1});
  CHECK(vals(view) == std::vector<double>{10, 20, 30});
  x.set_grad(Tensor());
  CHECK(!x.grad().defined());
}

TEST_CASE("element-wise backwards reuse a gradient only the engine holds, and nothing else",
          "[core][autograd]") {
  // A probe op hands its input a gradient of our choosing: either a buffer only the engine
  // will hold (the norm / activation backward may then write its result into it) or one the
  // test keeps a handle on (which must come out untouched).
  Generator gen(5);
  const Tensor x0 = Tensor::randn({2, 3, 4, 5}, gen, DType::F64);
  const Tensor gin = Tensor::randn({2, 3, 4, 5}, gen, DType::F64);
  using Fn = std::function<Tensor(const Tensor&)>;
  const std::vector<std::pair<const char*, Fn>> ops = {
      {"instance_norm2d + leaky_relu",
       [](const Tensor& x) { return disco::instance_norm2d(x, Tensor(), Tensor(), 1e-5, disco::UnaryKind::LeakyRelu, 0.2); }},
      {"instance_norm2d", [](const Tensor& x) { return disco::instance_norm2d(x); }},
      {"tanh", [](const Tensor& x) { return disco::tanh(x); }},
      {"leaky_relu", [](const Tensor& x) { return disco::leaky_relu(x, 0.2); }},
  };
  for (const auto& [name, f] : ops) {
    INFO(name);
    for (bool keep : {false, true}) {
      INFO((keep ? "gradient held by the test" : "gradient held by the engine only"));
      Tensor x = x0.clone().set_requires_grad(true);
      Tensor h = f(x);
      const double* handed = nullptr;
      Tensor held = gin.clone();
      Tensor probe = disco::record<CPU>(h.detach().clone(), "probe", {h},
                                        [&](const Tensor&, std::vector<Tensor>& gi) {
                                          Tensor c = keep ? held : gin.clone();
                                          handed = c.data<double>();
                                          gi[0] = c;
                                        });
      probe.backward(Tensor::ones(probe.shape(), DType::F64));
      // the reference: the same op's gradient with a fresh gradient buffer
      Tensor xr = x0.clone().set_requires_grad(true);
      f(xr).backward(gin.clone());
      check_close(vals(x.grad()), vals(xr.grad()), 1e-12);
      CHECK(vals(held) == vals(gin));  // never overwritten
      // the result was written into the handed buffer exactly when only the engine held it
      // (the leaf then adopts that buffer as its .grad)
      CHECK((x.grad().data<double>() == handed) == !keep);
    }
  }
}

TEST_CASE("backward_release frees the graph as it goes and gives backward's gradients", "[core][autograd]") {
  Generator gen(6);
  const Tensor x0 = Tensor::randn({2, 3, 4, 4}, gen, DType::F64);
  const Tensor w = Tensor::randn({2, 3, 4, 4}, gen, DType::F64);
  for (bool release : {false, true}) {
    INFO((release ? "backward_release" : "backward"));
    Tensor x = x0.clone().set_requires_grad(true);
    std::weak_ptr<void> saved;  // the storage of an intermediate the norm saves for its backward
    Tensor loss;
    {
      Tensor u = disco::scale(x, 2.0);
      saved = u.impl()->storage;
      Tensor h = disco::instance_norm2d(u, Tensor(), Tensor(), 1e-5, disco::UnaryKind::LeakyRelu, 0.2);
      loss = disco::sum(disco::mul(h, w));
    }
    CHECK(!saved.expired());  // held by the graph
    if (release) loss.backward_release();
    else loss.backward();
    CHECK(saved.expired() == release);
    // the gradient equals a plain backward's
    Tensor xr = x0.clone().set_requires_grad(true);
    disco::sum(disco::mul(disco::instance_norm2d(disco::scale(xr, 2.0), Tensor(), Tensor(), 1e-5,
                                                 disco::UnaryKind::LeakyRelu, 0.2),
                          w))
        .backward();
    check_close(vals(x.grad()), vals(xr.grad()), 1e-12);
    if (release) {
      CHECK_THROWS_WITH(loss.backward(), Contains("already released") && Contains("backward_release"));
    } else {
      loss.backward();  // a kept graph runs again and accumulates
      std::vector<double> twice = vals(xr.grad());
      for (double& v : twice) v *= 2;
      check_close(vals(x.grad()), twice, 1e-12);
    }
  }
  CHECK_THROWS_WITH(Tensor::zeros({2}).set_requires_grad(true).backward_release(),
                    Contains("backward_release") && Contains("[2]"));
}
