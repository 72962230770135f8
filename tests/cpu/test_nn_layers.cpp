// Tests of the nn modules (nn/module.hpp, nn/layers.hpp): PyTorch parameter layouts and
// default init bounds, named_parameters / state_dict / load_state_dict, Sequential with its
// norm + activation fusion, and float64 gradient checks through every module.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "disco/disco.hpp"
#include "reference/ops_ref.hpp"

namespace {

using disco::Conv2dOptions;
using disco::CPU;
using disco::DType;
using disco::Generator;
using disco::Shape;
using disco::UnaryKind;
using Tensor = disco::Tensor<CPU>;
using Inputs = std::vector<Tensor>;
using Catch::Contains;
namespace nn = disco::nn;

std::vector<double> vals(const Tensor& t) { return t.to_vector<double>(); }

double max_abs(const Tensor& t) {
  double m = 0;
  for (double v : vals(t)) m = std::max(m, std::fabs(v));
  return m;
}

Conv2dOptions opts(int stride, int pad, int opad = 0, int dil = 1) {
  Conv2dOptions o;
  o.stride = stride;
  o.padding = pad;
  o.output_padding = opad;
  o.dilation = dil;
  return o;
}

void check_close(const std::vector<double>& a, const std::vector<double>& b, double tol) {
  REQUIRE(a.size() == b.size());
  for (std::size_t i = 0; i < a.size(); ++i) CHECK(a[i] == Approx(b[i]).margin(tol));
}

std::vector<std::string> names(const nn::Module<CPU>& m, const std::string& prefix = "") {
  std::vector<std::string> out;
  for (auto& np : m.named_parameters(prefix)) out.push_back(np.first);
  return out;
}

// Gradient check of a module's forward with respect to its input and every parameter.
void expect_module_grads(const std::string& what, nn::Module<CPU>& m, const Tensor& x) {
  Inputs in{x};
  for (auto& p : m.parameters()) in.push_back(p);
  const auto r = disco::gradcheck<CPU>([&m](const Inputs& t) { return m.forward(t[0]); }, in);
  INFO(what << ": " << r.message << " (max abs err " << r.max_abs_err << ")");
  CHECK(r.ok);
}

}  // namespace

TEST_CASE("Conv2d: layout [out, in, kh, kw] and bounds 1/sqrt(in*kh*kw)", "[nn][init]") {
  Generator gen(1);
  nn::Conv2d<CPU> conv(3, 5, 4, opts(2, 1), true, gen);
  CHECK(conv.weight.shape() == Shape{5, 3, 4, 4});
  CHECK(conv.bias.shape() == Shape{5});
  CHECK(conv.weight.dtype() == DType::F32);
  CHECK(conv.weight.requires_grad());
  CHECK(conv.bias.requires_grad());
  CHECK(conv.weight.is_leaf());
  const double bound = 1.0 / std::sqrt(3.0 * 4 * 4);
  CHECK(max_abs(conv.weight) <= bound);
  CHECK(max_abs(conv.weight) > 0.95 * bound);  // 240 draws fill the range
  CHECK(max_abs(conv.bias) <= bound);
  CHECK(max_abs(conv.bias) > 0.3 * bound);
  double mean = 0;
  for (double v : vals(conv.weight)) mean += v;
  CHECK(std::fabs(mean / 240) < 0.1 * bound);
  CHECK(conv.type_name() == "Conv2d");
  CHECK(names(conv) == std::vector<std::string>{"weight", "bias"});

  nn::Conv2d<CPU> nob(2, 3, 3, opts(1, 1), false, gen, DType::F64);
  CHECK(!nob.bias.defined());
  CHECK(nob.weight.dtype() == DType::F64);
  CHECK(names(nob) == std::vector<std::string>{"weight"});
  CHECK(max_abs(nob.weight) <= 1.0 / std::sqrt(18.0));

  // same seed, same parameters; the forward pass is conv2d with the module's options
  Generator g1(77), g2(77);
  nn::Conv2d<CPU> a(2, 4, 3, opts(2, 1), true, g1, DType::F64), b(2, 4, 3, opts(2, 1), true, g2, DType::F64);
  CHECK(vals(a.weight) == vals(b.weight));
  CHECK(vals(a.bias) == vals(b.bias));
  Tensor x = Tensor::randn({2, 2, 5, 6}, gen, DType::F64);
  Tensor y = a(x);
  CHECK(y.shape() == Shape{2, 4, 3, 3});
  CHECK(vals(y) == vals(disco::conv2d(x, a.weight, a.bias, opts(2, 1))));

  CHECK_THROWS_WITH(nn::Conv2d<CPU>(0, 3, 3, opts(1, 1), true, gen), Contains("Conv2d") && Contains("positive"));
}

TEST_CASE("ConvTranspose2d: layout [in, out, kh, kw], fan_in = weight.size(1)*kh*kw", "[nn][init]") {
  Generator gen(2);
  // in != out so the wrong fan_in (in*kh*kw = 32, bound 0.177) is easy to tell from the
  // right one (out*kh*kw = 256, bound 0.0625)
  nn::ConvTranspose2d<CPU> ct(2, 16, 4, opts(2, 1), true, gen);
  CHECK(ct.weight.shape() == Shape{2, 16, 4, 4});
  CHECK(ct.bias.shape() == Shape{16});
  const double bound = 1.0 / 16.0;
  CHECK(max_abs(ct.weight) <= bound);
  CHECK(max_abs(ct.weight) > 0.95 * bound);
  CHECK(max_abs(ct.bias) <= bound);
  CHECK(max_abs(ct.bias) > 0.5 * bound);
  CHECK(ct.type_name() == "ConvTranspose2d");
  Tensor x = Tensor::randn({1, 2, 3, 3}, gen);
  Tensor y = ct(x);
  CHECK(y.shape() == Shape{1, 16, 6, 6});
  CHECK(vals(y) == vals(disco::conv_transpose2d(x, ct.weight, ct.bias, opts(2, 1))));
  nn::ConvTranspose2d<CPU> op(3, 2, 3, opts(2, 1, 1), false, gen);
  CHECK(!op.bias.defined());
  CHECK(op(Tensor::zeros({1, 3, 4, 4})).shape() == Shape{1, 2, 8, 8});
  CHECK(max_abs(op.weight) <= 1.0 / std::sqrt(2.0 * 9));
  CHECK(max_abs(op.weight) > 1.0 / std::sqrt(3.0 * 9));  // would fail with fan_in = in*kh*kw
  CHECK_THROWS_WITH(nn::ConvTranspose2d<CPU>(2, 0, 3, opts(1, 1), true, gen),
                    Contains("ConvTranspose2d") && Contains("positive"));
}

TEST_CASE("Linear: layout [out, in], bounds 1/sqrt(in), flattens its input", "[nn][init]") {
  Generator gen(3);
  nn::Linear<CPU> lin(7, 3, true, gen, DType::F64);
  CHECK(lin.weight.shape() == Shape{3, 7});
  CHECK(lin.bias.shape() == Shape{3});
  const double bound = 1.0 / std::sqrt(7.0);
  CHECK(max_abs(lin.weight) <= bound);
  CHECK(max_abs(lin.weight) > 0.8 * bound);
  CHECK(max_abs(lin.bias) <= bound);
  CHECK(lin.type_name() == "Linear");
  Tensor x = Tensor::randn({2, 7}, gen, DType::F64);
  check_close(vals(lin(x)), disco::ref::linear(vals(x), vals(lin.weight), vals(lin.bias), 2, 7, 3), 1e-12);
  Tensor x4 = Tensor::randn({2, 7, 1, 1}, gen, DType::F64);
  check_close(vals(lin(x4)), disco::ref::linear(vals(x4), vals(lin.weight), vals(lin.bias), 2, 7, 3), 1e-12);
  nn::Linear<CPU> nob(4, 2, false, gen);
  CHECK(!nob.bias.defined());
  CHECK(names(nob) == std::vector<std::string>{"weight"});
  CHECK_THROWS_WITH(nn::Linear<CPU>(4, -1, true, gen), Contains("Linear") && Contains("positive"));
  CHECK_THROWS_WITH(lin(Tensor::zeros({2, 6}, DType::F64)), Contains("linear") && Contains("[2, 6]") &&
                                                                Contains("[3, 7]"));
}

TEST_CASE("InstanceNorm2d: optional affine parameters, shape checks", "[nn]") {
  nn::InstanceNorm2d<CPU> plain(3);
  CHECK(plain.parameters().empty());
  CHECK(plain.type_name() == "InstanceNorm2d");
  nn::InstanceNorm2d<CPU> aff(3, 1e-5, true, DType::F64);
  CHECK(names(aff) == std::vector<std::string>{"weight", "bias"});
  CHECK(vals(aff.weight) == std::vector<double>(3, 1.0));
  CHECK(vals(aff.bias) == std::vector<double>(3, 0.0));
  Generator gen(4);
  Tensor x = Tensor::randn({2, 3, 3, 4}, gen, DType::F64);
  check_close(vals(aff(x)), disco::ref::instance_norm(vals(x), 2, 3, 12, {}, {}, 1e-5), 1e-12);
  nn::InstanceNorm2d<CPU> eps(3, 0.5);
  check_close(vals(eps(x)), disco::ref::instance_norm(vals(x), 2, 3, 12, {}, {}, 0.5), 1e-12);
  CHECK_THROWS_WITH(plain(Tensor::zeros({2, 4, 3, 3})),
                    Contains("InstanceNorm2d(3)") && Contains("[2, 4, 3, 3]"));
  CHECK_THROWS_WITH(plain(Tensor::zeros({2, 3, 9})), Contains("InstanceNorm2d(3)") && Contains("[2, 3, 9]"));
}

TEST_CASE("Sequential: PyTorch names, order, nesting", "[nn]") {
  Generator gen(5);
  nn::Sequential<CPU> seq;
  seq.add(std::make_shared<nn::Conv2d<CPU>>(3, 4, 3, opts(1, 1), true, gen));
  seq.add(std::make_shared<nn::InstanceNorm2d<CPU>>(4));
  seq.add(nn::LeakyReLU<CPU>(0.2));
  seq.add(std::make_shared<nn::Conv2d<CPU>>(4, 2, 4, opts(2, 1), false, gen));
  seq.add(std::make_shared<nn::InstanceNorm2d<CPU>>(2, 1e-5, true));
  seq.add(nn::ReLU<CPU>());
  auto lin = seq.add(std::make_shared<nn::Linear<CPU>>(2 * 2 * 2, 3, true, gen));
  CHECK(seq.size() == 7);
  CHECK(seq.type_name() == "Sequential");
  CHECK(names(seq) == std::vector<std::string>{"0.weight", "0.bias", "3.weight", "4.weight", "4.bias", "6.weight",
                                               "6.bias"});
  CHECK(names(seq, "enc.") == std::vector<std::string>{"enc.0.weight", "enc.0.bias", "enc.3.weight", "enc.4.weight",
                                                       "enc.4.bias", "enc.6.weight", "enc.6.bias"});
  auto params = seq.parameters();
  REQUIRE(params.size() == 7);
  CHECK(params[5].same(lin->weight));
  CHECK(seq[6].get() == lin.get());
  CHECK(seq.children().size() == 7);
  CHECK(seq.children()[2].first == "2");
  CHECK(seq.children()[2].second->type_name() == "leaky_relu");
  CHECK(seq(Tensor::randn({2, 3, 4, 4}, gen)).shape() == Shape{2, 3});

  // nesting: "<child>.<child>.<param>"
  struct Net : nn::Module<CPU> {
    std::shared_ptr<nn::Sequential<CPU>> enc, dec;
    explicit Net(Generator& g) {
      enc = register_module("enc", std::make_shared<nn::Sequential<CPU>>());
      enc->add(std::make_shared<nn::Linear<CPU>>(2, 3, true, g));
      enc->add(nn::Tanh<CPU>());
      dec = register_module("dec", std::make_shared<nn::Sequential<CPU>>());
      dec->add(nn::Sigmoid<CPU>());
      dec->add(std::make_shared<nn::Linear<CPU>>(3, 2, false, g));
    }
    Tensor forward(const Tensor& x) override { return dec->forward(enc->forward(x)); }
    std::string type_name() const override { return "Net"; }
  };
  Net net(gen);
  CHECK(names(net) == std::vector<std::string>{"enc.0.weight", "enc.0.bias", "dec.1.weight"});
  auto sd = net.state_dict();
  CHECK(sd.size() == 3);
  CHECK(sd.at("dec.1.weight").same(net.dec->operator[](1)->parameters()[0]));
}

TEST_CASE("state_dict / load_state_dict", "[nn][state]") {
  auto build = [](uint64_t seed) {
    Generator g(seed);
    auto s = std::make_shared<nn::Sequential<CPU>>();
    s->add(std::make_shared<nn::Conv2d<CPU>>(2, 3, 3, opts(1, 1), true, g));
    s->add(nn::ReLU<CPU>());
    s->add(std::make_shared<nn::Linear<CPU>>(3, 2, true, g));
    return s;
  };
  auto a = build(1), b = build(2);
  auto sd = a->state_dict();
  REQUIRE(sd.size() == 4);
  CHECK(sd.count("0.weight") == 1);
  CHECK(sd.count("2.bias") == 1);
  CHECK(sd.at("0.weight").impl()->storage == a->parameters()[0].impl()->storage);  // shares storage
  CHECK(vals(b->parameters()[0]) != vals(a->parameters()[0]));
  b->load_state_dict(sd);
  for (std::size_t i = 0; i < 4; ++i) CHECK(vals(b->parameters()[i]) == vals(a->parameters()[i]));
  // a copy, not an alias
  CHECK(b->parameters()[0].impl()->storage != a->parameters()[0].impl()->storage);
  // with a prefix
  auto sdp = a->state_dict("model.");
  CHECK(sdp.count("model.0.bias") == 1);
  build(3)->load_state_dict(sdp, "model.");

  // every problem is listed in one error, and nothing is modified
  auto c = build(3);
  const auto before = vals(c->parameters()[2]);
  auto bad = a->state_dict();
  bad.erase("0.bias");                                          // missing
  bad["0.weight"] = Tensor::zeros({3, 2, 5, 5});                // wrong shape
  bad["2.weight"] = Tensor::zeros({2, 3}, DType::F64);          // wrong dtype
  bad["3.weight"] = Tensor::zeros({1});                         // unexpected
  CHECK_THROWS_AS(c->load_state_dict(bad), disco::Error);
  CHECK_THROWS_WITH(c->load_state_dict(bad),
                    Contains("load_state_dict") && Contains("4 mismatch") && Contains("missing 0.bias") &&
                        Contains("0.weight has shape [3, 2, 5, 5], expected [3, 2, 3, 3]") &&
                        Contains("2.weight is float64, expected float32") && Contains("unexpected 3.weight"));
  CHECK(vals(c->parameters()[2]) == before);
  // non-strict: unexpected names are ignored, missing ones are still errors
  auto extra = a->state_dict();
  extra["9.weight"] = Tensor::zeros({1});
  CHECK_NOTHROW(c->load_state_dict(extra, "", false));
  CHECK_THROWS_WITH(c->load_state_dict(extra), Contains("1 mismatch") && Contains("unexpected 9.weight"));
  auto missing = a->state_dict();
  missing.erase("2.bias");
  CHECK_THROWS_WITH(c->load_state_dict(missing, "", false), Contains("missing 2.bias"));
}

TEST_CASE("Module::zero_grad clears every parameter's gradient", "[nn]") {
  Generator gen(6);
  nn::Linear<CPU> lin(3, 2, true, gen);
  disco::sum(lin(Tensor::randn({4, 3}, gen))).backward();
  CHECK(lin.weight.grad().defined());
  CHECK(lin.bias.grad().defined());
  // d sum / d bias = batch size
  CHECK(vals(lin.bias.grad()) == std::vector<double>{4, 4});
  lin.zero_grad();
  CHECK(!lin.weight.grad().defined());
  CHECK(!lin.bias.grad().defined());
}

TEST_CASE("Sequential fuses InstanceNorm2d + ReLU / LeakyReLU with the same values", "[nn][fusion]") {
  for (bool affine : {false, true}) {
    for (UnaryKind k : {UnaryKind::Relu, UnaryKind::LeakyRelu}) {
      Generator gen(7);
      nn::Sequential<CPU> seq;
      auto conv = seq.add(std::make_shared<nn::Conv2d<CPU>>(2, 3, 3, opts(1, 1), true, gen, DType::F64));
      auto norm = seq.add(std::make_shared<nn::InstanceNorm2d<CPU>>(3, 1e-5, affine, DType::F64));
      if (affine) {  // non-trivial affine parameters
        norm->weight.copy_(Tensor::randn({3}, gen, DType::F64));
        norm->bias.copy_(Tensor::randn({3}, gen, DType::F64));
      }
      seq.add(k == UnaryKind::Relu ? nn::ReLU<CPU>() : nn::LeakyReLU<CPU>(0.2));
      Tensor x = Tensor::randn({2, 2, 4, 5}, gen, DType::F64).set_requires_grad();
      Tensor y = seq(x);
      // without affine parameters the pair runs as one op
      CHECK(std::string(y.grad_fn()->name) == (affine ? disco::unary_name(k) : "instance_norm2d"));
      // the same computation, op by op
      Tensor h = disco::conv2d(x, conv->weight, conv->bias, opts(1, 1));
      h = disco::instance_norm2d(h, Tensor(), Tensor());
      if (affine) h = disco::add_channel(disco::mul_channel(h, norm->weight), norm->bias);
      Tensor y2 = disco::activation(h, k, k == UnaryKind::Relu ? 0.0 : 0.2);
      CHECK(std::string(y2.grad_fn()->name) == disco::unary_name(k));
      check_close(vals(y), vals(y2), 1e-13);
      // against the naive reference too
      const auto hv = vals(disco::conv2d(x.detach(), conv->weight.detach(), conv->bias.detach(), opts(1, 1)));
      const auto want = disco::ref::instance_norm(hv, 2, 3, 20, affine ? vals(norm->weight) : std::vector<double>{},
                                                  affine ? vals(norm->bias) : std::vector<double>{}, 1e-5,
                                                  k == UnaryKind::Relu ? disco::ref::Act::Relu : disco::ref::Act::Leaky, 0.2);
      check_close(vals(y), want, 1e-11);
      // and the same gradients
      Generator rg(8);
      Tensor r = Tensor::randn(y.shape(), rg, DType::F64);
      disco::sum(disco::mul(y, r)).backward();
      const auto gx = vals(x.grad());
      const auto gw = vals(conv->weight.grad());
      x.zero_grad();
      seq.zero_grad();
      disco::sum(disco::mul(y2, r)).backward();
      check_close(gx, vals(x.grad()), 1e-12);
      check_close(gw, vals(conv->weight.grad()), 1e-12);
    }
  }
  // a norm followed by tanh is not fused; a trailing norm works
  Generator gen(9);
  nn::Sequential<CPU> s2;
  s2.add(std::make_shared<nn::InstanceNorm2d<CPU>>(2));
  s2.add(nn::Tanh<CPU>());
  s2.add(std::make_shared<nn::InstanceNorm2d<CPU>>(2));
  Tensor x = Tensor::randn({1, 2, 3, 3}, gen, DType::F64);
  Tensor want = disco::instance_norm2d(disco::tanh(disco::instance_norm2d(x)));
  check_close(vals(s2(x)), vals(want), 1e-13);
}

TEST_CASE("gradcheck every module w.r.t. input and parameters", "[nn][gradcheck]") {
  Generator gen(10);
  {
    nn::Conv2d<CPU> m(2, 3, 3, opts(1, 1), true, gen, DType::F64);
    expect_module_grads("Conv2d k3 s1 p1", m, Tensor::randn({2, 2, 3, 4}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::Conv2d<CPU> m(2, 2, 4, opts(2, 1), false, gen, DType::F64);
    expect_module_grads("Conv2d k4 s2 p1 no bias, batch 1", m,
                        Tensor::randn({1, 2, 5, 4}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::Conv2d<CPU> m(2, 2, 3, opts(1, 2, 0, 2), true, gen, DType::F64);
    expect_module_grads("Conv2d dilation 2", m, Tensor::randn({1, 2, 4, 5}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::ConvTranspose2d<CPU> m(3, 2, 4, opts(2, 1), true, gen, DType::F64);
    expect_module_grads("ConvTranspose2d k4 s2 p1", m, Tensor::randn({2, 3, 2, 3}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::ConvTranspose2d<CPU> m(2, 2, 3, opts(2, 1, 1), false, gen, DType::F64);
    expect_module_grads("ConvTranspose2d output_padding 1, 1x1 map", m,
                        Tensor::randn({1, 2, 1, 1}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::Linear<CPU> m(5, 3, true, gen, DType::F64);
    expect_module_grads("Linear", m, Tensor::randn({2, 5}, gen, DType::F64).set_requires_grad());
    expect_module_grads("Linear on a 4-d input", m, Tensor::randn({1, 5, 1, 1}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::InstanceNorm2d<CPU> m(3, 1e-5, true, DType::F64);
    m.weight.copy_(Tensor::randn({3}, gen, DType::F64));
    m.bias.copy_(Tensor::randn({3}, gen, DType::F64));
    expect_module_grads("InstanceNorm2d affine", m, Tensor::randn({2, 3, 2, 3}, gen, DType::F64).set_requires_grad());
    nn::InstanceNorm2d<CPU> p(2);
    expect_module_grads("InstanceNorm2d", p, Tensor::randn({1, 2, 2, 2}, gen, DType::F64).set_requires_grad());
  }
  {
    // encoder-like stack with both fused pairs, a decoder-like transposed conv, tanh output
    nn::Sequential<CPU> s;
    s.add(std::make_shared<nn::Conv2d<CPU>>(2, 3, 4, opts(2, 1), true, gen, DType::F64));
    s.add(std::make_shared<nn::InstanceNorm2d<CPU>>(3, 1e-5, false, DType::F64));
    s.add(nn::LeakyReLU<CPU>(0.2));
    s.add(std::make_shared<nn::ConvTranspose2d<CPU>>(3, 2, 4, opts(2, 1), true, gen, DType::F64));
    s.add(std::make_shared<nn::InstanceNorm2d<CPU>>(2, 1e-5, true, DType::F64));
    s.add(nn::ReLU<CPU>());
    s.add(std::make_shared<nn::Conv2d<CPU>>(2, 1, 3, opts(1, 1), true, gen, DType::F64));
    s.add(nn::Tanh<CPU>());
    expect_module_grads("Sequential with fusion", s, Tensor::randn({2, 2, 4, 4}, gen, DType::F64).set_requires_grad());
  }
  {
    nn::Sequential<CPU> s;
    s.add(std::make_shared<nn::Linear<CPU>>(4, 3, true, gen, DType::F64));
    s.add(nn::Sigmoid<CPU>());
    s.add(std::make_shared<nn::Linear<CPU>>(3, 1, true, gen, DType::F64));
    expect_module_grads("Sequential MLP", s, Tensor::randn({3, 4}, gen, DType::F64).set_requires_grad());
  }
}
