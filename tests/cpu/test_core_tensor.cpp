// Tests of disco::Tensor (core/tensor.hpp, ops/tensor_ops.hpp, ops/view.hpp) and the
// generator (core/random.hpp): factories, views sharing storage, concat/split, seeded
// randomness, element access, printing and the error paths.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "disco/disco.hpp"

namespace {

using disco::CPU;
using disco::DType;
using disco::Generator;
using disco::Shape;
using Tensor = disco::Tensor<CPU>;
using Catch::Contains;

// 0, 1, 2, ... in the given shape.
Tensor iota(const Shape& shape, DType dt = DType::F32) {
  std::vector<double> v(std::size_t(disco::shape_numel(shape)));
  for (std::size_t i = 0; i < v.size(); ++i) v[i] = double(i);
  return dt == DType::F32 ? Tensor::from_vector(std::vector<float>(v.begin(), v.end()), shape)
                          : Tensor::from_vector(v, shape);
}

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST_CASE("Tensor factories: empty, zeros, ones, full, scalar, from_vector", "[core][tensor]") {
  Tensor z = Tensor::zeros({2, 3});
  CHECK(z.shape() == Shape{2, 3});
  CHECK(z.strides() == Shape{3, 1});
  CHECK(z.dim() == 2);
  CHECK(z.numel() == 6);
  CHECK(z.dtype() == DType::F32);
  CHECK(z.is_contiguous());
  CHECK(z.offset() == 0);
  CHECK(vals(z) == std::vector<double>(6, 0.0));
  CHECK(vals(Tensor::ones({4}, DType::F64)) == std::vector<double>(4, 1.0));
  Tensor f = Tensor::full({2, 1, 2}, -2.5, DType::F64);
  CHECK(f.dtype() == DType::F64);
  CHECK(vals(f) == std::vector<double>(4, -2.5));
  Tensor s = Tensor::scalar(3.25);
  CHECK(s.dim() == 0);
  CHECK(s.numel() == 1);
  CHECK(s.item() == 3.25);
  CHECK(s.at({}) == 3.25);

  Tensor e = Tensor::empty({0, 3});
  CHECK(e.numel() == 0);
  CHECK(e.to_vector<float>().empty());
  CHECK(Tensor::from_vector(std::vector<double>{}, {0, 2}).shape() == Shape{0, 2});

  Tensor v = Tensor::from_vector(std::vector<double>{1, 2, 3, 4, 5, 6}, {3, 2});
  CHECK(v.dtype() == DType::F64);
  CHECK(v.at({0, 0}) == 1);
  CHECK(v.at({0, 1}) == 2);
  CHECK(v.at({2, 1}) == 6);
  CHECK(v.size(0) == 3);
  CHECK(v.size(-1) == 2);
  CHECK(v.data<double>()[3] == 4);

  // fill_ / zero_ in place
  v.fill_(7);
  CHECK(vals(v) == std::vector<double>(6, 7.0));
  v.zero_();
  CHECK(vals(v) == std::vector<double>(6, 0.0));
}

TEST_CASE("Tensor factory errors", "[core][tensor][errors]") {
  CHECK_THROWS_AS(Tensor::empty({2, -1}), disco::Error);
  CHECK_THROWS_WITH(Tensor::empty({2, -1}), Contains("Tensor::empty") && Contains("[2, -1]"));
  CHECK_THROWS_WITH(Tensor::from_vector(std::vector<float>{1, 2, 3}, {2, 2}),
                    Contains("Tensor::from_vector") && Contains("3 values") && Contains("[2, 2]"));
  CHECK_THROWS_WITH(Tensor::zeros({2, 2}).item(), Contains("Tensor::item") && Contains("[2, 2]"));
  CHECK_THROWS_WITH(Tensor().shape(), Contains("undefined"));
  CHECK_THROWS_WITH(Tensor::zeros({2}).size(1), Contains("Tensor::size") && Contains("rank 1"));
}

TEST_CASE("Tensor element access and bounds", "[core][tensor][errors]") {
  Tensor t = iota({2, 3, 4});
  CHECK(t.at({1, 2, 3}) == 23);
  CHECK(t.at({0, 1, 0}) == 4);
  CHECK_THROWS_AS(t.at({2, 0, 0}), disco::Error);
  CHECK_THROWS_WITH(t.at({0, 3, 0}), Contains("Tensor::at") && Contains("index 3") && Contains("dim 1") &&
                                         Contains("[2, 3, 4]"));
  CHECK_THROWS_WITH(t.at({0, 0, -1}), Contains("Tensor::at") && Contains("index -1"));
  CHECK_THROWS_WITH(t.at({0, 0}), Contains("Tensor::at") && Contains("2 indices") && Contains("[2, 3, 4]"));
}

TEST_CASE("Tensor::data<T> checks the element type", "[core][tensor][errors]") {
  Tensor f = Tensor::zeros({2, 3});
  Tensor d = Tensor::zeros({2, 3}, DType::F64);
  CHECK(f.data<float>() != nullptr);
  CHECK(d.data<double>() != nullptr);
  CHECK_THROWS_AS(f.data<double>(), disco::Error);
  CHECK_THROWS_WITH(f.data<double>(), Contains("Tensor::data") && Contains("[2, 3]") && Contains("float32") &&
                                          Contains("float64"));
  CHECK_THROWS_WITH(d.data<float>(), Contains("Tensor::data") && Contains("holds float64") &&
                                         Contains("requested float32"));
  // to_vector converts between types freely
  CHECK(d.to_vector<float>() == std::vector<float>(6, 0.0f));
}

TEST_CASE("reshape / view share storage, infer -1 and check the size", "[core][tensor][views]") {
  Tensor t = iota({2, 3, 4});
  Tensor r = t.reshape({4, -1});
  CHECK(r.shape() == Shape{4, 6});
  CHECK(r.impl()->storage == t.impl()->storage);
  CHECK(vals(r) == vals(t));
  Tensor v = t.view({-1});
  CHECK(v.shape() == Shape{24});
  Tensor v2 = t.view({2, -1, 2});
  CHECK(v2.shape() == Shape{2, 6, 2});
  // writing through the view changes the original
  r.narrow(0, 1, 1).fill_(-1);
  CHECK(t.at({0, 1, 2}) == -1);  // flat index 6
  CHECK(t.at({0, 2, 3}) == -1);  // flat index 11
  CHECK(t.at({0, 1, 1}) == 5);

  Tensor f = t.flatten();  // default start_dim 1
  CHECK(f.shape() == Shape{2, 12});
  CHECK(t.flatten(0).shape() == Shape{24});
  CHECK(Tensor::zeros({0, 3, 2}).flatten().shape() == Shape{0, 6});

  CHECK_THROWS_AS(t.reshape({5, 5}), disco::Error);
  CHECK_THROWS_WITH(t.reshape({5, 5}), Contains("reshape") && Contains("[2, 3, 4]") && Contains("24 elements") &&
                                           Contains("[5, 5]"));
  CHECK_THROWS_WITH(t.reshape({-1, 5}), Contains("reshape") && Contains("[2, 3, 4]") && Contains("[-1, 5]"));
  CHECK_THROWS_WITH(t.view({-1, -1}), Contains("reshape") && Contains("more than one -1"));
  CHECK_THROWS_WITH(t.reshape({-2, 12}), Contains("reshape") && Contains("negative size"));
}

TEST_CASE("narrow / slice are views; reshape of a non-contiguous view copies", "[core][tensor][views]") {
  Tensor t = iota({3, 4}, DType::F64);
  Tensor n = t.narrow(1, 1, 2);  // columns 1, 2
  CHECK(n.shape() == Shape{3, 2});
  CHECK(n.strides() == Shape{4, 1});
  CHECK(n.offset() == 1);
  CHECK(!n.is_contiguous());
  CHECK(n.impl()->storage == t.impl()->storage);
  CHECK(vals(n) == std::vector<double>{1, 2, 5, 6, 9, 10});
  CHECK(n.at({2, 1}) == 10);
  n.fill_(0);  // non-contiguous fill writes only the view
  CHECK(vals(t) == std::vector<double>{0, 0, 0, 3, 4, 0, 0, 7, 8, 0, 0, 11});

  Tensor t2 = iota({3, 4}, DType::F64);
  Tensor s = t2.slice(0, 1, 3);  // rows 1, 2: contiguous
  CHECK(s.shape() == Shape{2, 4});
  CHECK(s.is_contiguous());
  CHECK(s.offset() == 4);
  CHECK(s.impl()->storage == t2.impl()->storage);
  CHECK(s.at({0, 0}) == 4);
  Tensor neg = t2.narrow(-1, 3, 1);
  CHECK(vals(neg) == std::vector<double>{3, 7, 11});
  CHECK(t2.narrow(0, 3, 0).numel() == 0);  // empty range at the end is fine

  // reshape of a non-contiguous view: values in logical order, fresh storage
  Tensor cols = t2.narrow(1, 1, 2);
  Tensor flat = cols.reshape({-1});
  CHECK(vals(flat) == std::vector<double>{1, 2, 5, 6, 9, 10});
  CHECK(flat.impl()->storage != t2.impl()->storage);
  Tensor c = cols.contiguous();
  CHECK(c.is_contiguous());
  CHECK(vals(c) == vals(cols));
  Tensor same = t2.contiguous();
  CHECK(same.same(t2));  // already contiguous: itself
  Tensor cl = t2.clone();
  CHECK(!cl.same(t2));
  CHECK(cl.impl()->storage != t2.impl()->storage);
  CHECK(vals(cl) == vals(t2));

  CHECK_THROWS_AS(t2.narrow(1, 3, 2), disco::Error);
  CHECK_THROWS_WITH(t2.narrow(1, 3, 2), Contains("narrow") && Contains("[3, 5)") && Contains("dim 1") &&
                                            Contains("[3, 4]"));
  CHECK_THROWS_WITH(t2.narrow(0, -1, 1), Contains("narrow") && Contains("[3, 4]"));
  CHECK_THROWS_WITH(t2.narrow(2, 0, 1), Contains("narrow") && Contains("dim 2") && Contains("rank 2"));
  CHECK_THROWS_WITH(t2.slice(0, 2, 1), Contains("narrow") && Contains("[3, 4]"));
}

TEST_CASE("copy_ between strided tensors", "[core][tensor][views]") {
  Tensor a = iota({2, 3}, DType::F64);
  Tensor b = Tensor::zeros({4, 3}, DType::F64);
  b.narrow(0, 1, 2).copy_(a);
  CHECK(vals(b) == std::vector<double>{0, 0, 0, 0, 1, 2, 3, 4, 5, 0, 0, 0});
  Tensor c = Tensor::zeros({2, 5}, DType::F64);
  c.narrow(1, 2, 3).copy_(a);
  CHECK(vals(c) == std::vector<double>{0, 0, 0, 1, 2, 0, 0, 3, 4, 5});
  CHECK_THROWS_WITH(c.copy_(a), Contains("copy_") && Contains("[2, 5]") && Contains("[2, 3]"));
  CHECK_THROWS_WITH(a.copy_(Tensor::zeros({2, 3})), Contains("copy_") && Contains("float64") &&
                                                        Contains("float32"));
}

TEST_CASE("concat along any dim", "[core][tensor][views]") {
  Tensor a = iota({2, 2, 3});
  Tensor b = disco::add_scalar(iota({2, 1, 3}), 100);
  Tensor c = disco::concat<CPU>({a, b}, 1);
  CHECK(c.shape() == Shape{2, 3, 3});
  for (int64_t n = 0; n < 2; ++n)
    for (int64_t k = 0; k < 3; ++k)
      for (int64_t j = 0; j < 3; ++j) {
        const double want = k < 2 ? a.at({n, k, j}) : b.at({n, 0, j});
        CHECK(c.at({n, k, j}) == want);
      }
  Tensor d0 = disco::concat<CPU>({a, a, a}, 0);
  CHECK(d0.shape() == Shape{6, 2, 3});
  CHECK(d0.at({5, 1, 2}) == a.at({1, 1, 2}));
  CHECK(d0.at({2, 0, 1}) == a.at({0, 0, 1}));
  Tensor dl = disco::concat<CPU>({a, iota({2, 2, 1})}, -1);
  CHECK(dl.shape() == Shape{2, 2, 4});
  CHECK(dl.at({1, 0, 3}) == 2);
  CHECK(dl.at({1, 0, 2}) == a.at({1, 0, 2}));
  // a part with zero extent and a non-contiguous part
  Tensor big = iota({2, 2, 5});
  Tensor mixed = disco::concat<CPU>({big.narrow(2, 1, 2), Tensor::zeros({2, 2, 0}), a}, 2);
  CHECK(mixed.shape() == Shape{2, 2, 5});
  CHECK(mixed.at({1, 1, 0}) == big.at({1, 1, 1}));
  CHECK(mixed.at({1, 1, 1}) == big.at({1, 1, 2}));
  CHECK(mixed.at({1, 1, 4}) == a.at({1, 1, 2}));

  CHECK_THROWS_AS(disco::concat<CPU>({a, b}, 0), disco::Error);
  CHECK_THROWS_WITH(disco::concat<CPU>({a, b}, 0), Contains("concat") && Contains("tensor 1") &&
                                                       Contains("[2, 1, 3]") && Contains("[2, 2, 3]"));
  CHECK_THROWS_WITH(disco::concat<CPU>({a, iota({2, 2})}, 0), Contains("concat") && Contains("[2, 2]") &&
                                                                  Contains("rank 3"));
  CHECK_THROWS_WITH(disco::concat<CPU>({a, iota({2, 2, 3}, DType::F64)}, 0),
                    Contains("concat") && Contains("float64") && Contains("float32"));
  CHECK_THROWS_WITH(disco::concat<CPU>({}, 0), Contains("concat"));
  CHECK_THROWS_WITH(disco::concat<CPU>({a, a}, 3), Contains("concat") && Contains("dim 3"));
}

TEST_CASE("split along any dim gives views", "[core][tensor][views]") {
  Tensor t = iota({3, 5, 2});
  auto parts = disco::split(t, {1, 3, 1}, 1);
  REQUIRE(parts.size() == 3);
  CHECK(parts[0].shape() == Shape{3, 1, 2});
  CHECK(parts[1].shape() == Shape{3, 3, 2});
  CHECK(parts[2].shape() == Shape{3, 1, 2});
  for (auto& p : parts) CHECK(p.impl()->storage == t.impl()->storage);
  CHECK(parts[1].at({2, 0, 1}) == t.at({2, 1, 1}));
  CHECK(parts[2].at({1, 0, 0}) == t.at({1, 4, 0}));
  // round trip
  Tensor back = disco::concat(parts, 1);
  CHECK(vals(back) == vals(t));
  auto p0 = disco::split(t, {2, 1}, 0);
  CHECK(p0[1].shape() == Shape{1, 5, 2});
  CHECK(p0[1].at({0, 4, 1}) == 29);
  auto pl = disco::split(t, {1, 1}, -1);
  CHECK(vals(pl[1]) == std::vector<double>{1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29});
  CHECK_THROWS_WITH(disco::split(t, {2, 2}, 1), Contains("split") && Contains("sum to 4") && Contains("[3, 5, 2]"));
  CHECK_THROWS_WITH(disco::split(t, {3}, 5), Contains("split") && Contains("dim 5"));
}

TEST_CASE("seeded randn / rand are deterministic and pinned", "[core][tensor][random]") {
  Generator g1(1234), g2(1234), g3(1235);
  Tensor a = Tensor::randn({4, 5}, g1, DType::F64);
  Tensor b = Tensor::randn({4, 5}, g2, DType::F64);
  Tensor c = Tensor::randn({4, 5}, g3, DType::F64);
  CHECK(vals(a) == vals(b));
  CHECK(vals(a) != vals(c));
  // the generator advances: the next draw differs
  CHECK(vals(Tensor::randn({4, 5}, g1, DType::F64)) != vals(a));
  Generator h1(9), h2(9);
  CHECK(vals(Tensor::rand({7}, h1, DType::F32, -2, 3)) == vals(Tensor::rand({7}, h2, DType::F32, -2, 3)));

  // Pinned values: PCG32 integers and 53-bit uniforms are exact everywhere; normals go
  // through libm's log/cos/sin, so they are compared to within a few ulps.
  Generator p(42);
  CHECK(p.uniform() == 0.44214480608614093);
  CHECK(p.normal() == Approx(-0.0294816678128671).epsilon(1e-13));
  CHECK(p.next_u32() == 1379009937u);
  Generator q(1);
  const double n1[4] = {0.34834495196224768, -0.066968703709091915, 1.061355738780287, 1.1181818951728388};
  for (double want : n1) CHECK(q.normal() == Approx(want).epsilon(1e-13));

  Generator r(1);
  Tensor rn = Tensor::randn({2, 2}, r);  // float32: the same draws, rounded
  auto rv = rn.to_vector<float>();
  for (int i = 0; i < 4; ++i) CHECK(rv[std::size_t(i)] == float(n1[i]));

  Generator u(7);
  Tensor ur = Tensor::rand({1000}, u, DType::F64, -0.5, 0.25);
  double lo = 1, hi = -1, s = 0;
  for (double x : vals(ur)) {
    lo = std::min(lo, x);
    hi = std::max(hi, x);
    s += x;
  }
  CHECK(lo >= -0.5);
  CHECK(hi < 0.25);
  CHECK(lo < -0.49);
  CHECK(hi > 0.24);
  CHECK(s / 1000 == Approx(-0.125).margin(0.02));
  Generator nn(11);
  Tensor big = Tensor::randn({4000}, nn, DType::F64, 2.0, 0.5);
  double m = 0, v = 0;
  for (double x : vals(big)) m += x;
  m /= 4000;
  for (double x : vals(big)) v += (x - m) * (x - m);
  v /= 4000;
  CHECK(m == Approx(2.0).margin(0.03));
  CHECK(std::sqrt(v) == Approx(0.5).margin(0.02));
}

TEST_CASE("Generator state string round trip", "[core][random]") {
  Generator g(5);
  g.normal();  // leaves a spare normal behind
  const std::string st = g.state_string();
  const double n1 = g.normal(), n2 = g.normal();
  const uint32_t u = g.next_u32();
  Generator h;
  h.set_state_string(st);
  CHECK(h.normal() == n1);
  CHECK(h.normal() == n2);
  CHECK(h.next_u32() == u);
  CHECK_THROWS_WITH(h.set_state_string("not a state"), Contains("Generator") && Contains("not a state"));
}

TEST_CASE("Tensor printing", "[core][tensor]") {
  std::ostringstream os;
  os << Tensor::from_vector(std::vector<float>{1, 2.5f, -3, 4}, {2, 2});
  CHECK(os.str() == "Tensor<cpu>(float32, shape [2, 2], values [1, 2.5, -3, 4])");
  std::ostringstream os2;
  os2 << iota({20}, DType::F64);
  CHECK(os2.str() ==
        "Tensor<cpu>(float64, shape [20], values [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, ... (20 in all)])");
  std::ostringstream os3;
  os3 << Tensor();
  CHECK(os3.str() == "Tensor(undefined)");
  std::ostringstream os4;
  os4 << iota({3, 4}, DType::F64).narrow(1, 2, 1);  // non-contiguous: logical order
  CHECK(os4.str() == "Tensor<cpu>(float64, shape [3, 1], values [2, 6, 10])");
  // six significant digits, and the caller's stream precision is left alone
  std::ostringstream os5;
  os5 << std::setprecision(10) << Tensor::scalar(1.0 / 3.0, DType::F64) << " " << 1.0 / 3.0;
  CHECK(os5.str() == "Tensor<cpu>(float64, shape [], values [0.333333]) 0.3333333333");
  CHECK(disco::shape_str({}) == "[]");
  CHECK(disco::shape_str({1, 22, 3}) == "[1, 22, 3]");
}

TEST_CASE("dtype helpers", "[core]") {
  CHECK(disco::dtype_size(DType::F32) == 4);
  CHECK(disco::dtype_size(DType::F64) == 8);
  CHECK(std::string(disco::dtype_name(DType::F32)) == "float32");
  CHECK(std::string(disco::dtype_name(DType::F64)) == "float64");
  CHECK(disco::contiguous_strides({2, 3, 4}) == Shape{12, 4, 1});
  CHECK(disco::normalize_dim("op", -1, 3) == 2);
  CHECK_THROWS_WITH(disco::normalize_dim("myop", -4, 3), Contains("myop") && Contains("dim -4") &&
                                                              Contains("rank 3"));
}
