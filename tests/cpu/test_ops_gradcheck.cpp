// float64 finite-difference gradient checks (disco::gradcheck) of every op, over odd
// shapes, batch 1, 1x1 / 2x2 maps and stride / padding / dilation / output_padding variants.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "disco/disco.hpp"

namespace {

using disco::Conv2dOptions;
using disco::CPU;
using disco::DType;
using disco::Generator;
using disco::LossKind;
using disco::Shape;
using disco::UnaryKind;
using Tensor = disco::Tensor<CPU>;
using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

// A float64 leaf with N(0, scale^2) values that requires a gradient.
Tensor param(const Shape& s, Generator& gen, double scale = 1.0) {
  return Tensor::randn(s, gen, DType::F64, 0.0, scale).set_requires_grad();
}
// Uniform values in [lo, hi), requiring a gradient.
Tensor uparam(const Shape& s, Generator& gen, double lo, double hi) {
  return Tensor::rand(s, gen, DType::F64, lo, hi).set_requires_grad();
}
// Random values pushed at least `margin` away from 0 (kinks of relu / leaky / l1).
Tensor away_from_zero(const Shape& s, Generator& gen, double margin = 0.1) {
  auto v = Tensor::randn(s, gen, DType::F64).to_vector<double>();
  for (auto& x : v) x += x >= 0 ? margin : -margin;
  return Tensor::from_vector(v, s).set_requires_grad();
}

void expect_grads(const std::string& what, const Fn& f, const Inputs& inputs) {
  const auto r = disco::gradcheck<CPU>(f, inputs);
  INFO(what << ": " << r.message << " (max abs err " << r.max_abs_err << ")");
  CHECK(r.ok);
}

std::string conv_name(const char* op, const Shape& x, const Shape& w, const Conv2dOptions& o, bool bias) {
  return disco::str(op, " x ", disco::shape_str(x), " w ", disco::shape_str(w), " stride ", o.stride, " pad ",
                    o.padding, " dil ", o.dilation, " opad ", o.output_padding, bias ? " bias" : " no bias");
}

}  // namespace

TEST_CASE("gradcheck conv2d: stride, padding, dilation, bias, tiny maps", "[ops][gradcheck][conv]") {
  struct C {
    int N, C, H, W, K, R, S, stride, pad, dil;
    bool bias;
  };
  const std::vector<C> cases = {
      {2, 3, 5, 7, 2, 3, 3, 1, 1, 1, true},   // odd sizes, same padding
      {1, 2, 7, 6, 3, 3, 3, 2, 1, 1, false},  // stride 2, batch 1
      {2, 2, 7, 8, 2, 3, 3, 1, 2, 2, true},   // dilation 2
      {1, 3, 1, 1, 2, 1, 1, 1, 0, 1, true},   // 1x1 map, 1x1 kernel
      {2, 2, 2, 2, 3, 3, 3, 1, 1, 1, false},  // 2x2 map
      {1, 2, 5, 6, 2, 4, 4, 2, 1, 1, true},   // the model's k4 s2 p1, odd input
      {2, 2, 2, 2, 2, 4, 4, 2, 1, 1, true},   // 2x2 -> 1x1
      {1, 2, 7, 7, 2, 3, 3, 3, 0, 2, false},  // stride 3, dilation 2
      {2, 1, 4, 5, 2, 2, 2, 3, 0, 1, true},   // stride > kernel
  };
  for (const auto& c : cases) {
    Generator gen(100);
    Conv2dOptions o;
    o.stride = c.stride;
    o.padding = c.pad;
    o.dilation = c.dil;
    Tensor x = param({c.N, c.C, c.H, c.W}, gen), w = param({c.K, c.C, c.R, c.S}, gen, 0.5);
    if (c.bias) {
      Tensor b = param({c.K}, gen);
      expect_grads(conv_name("conv2d", x.shape(), w.shape(), o, true),
                   [o](const Inputs& in) { return disco::conv2d(in[0], in[1], in[2], o); }, {x, w, b});
    } else {
      expect_grads(conv_name("conv2d", x.shape(), w.shape(), o, false),
                   [o](const Inputs& in) { return disco::conv2d(in[0], in[1], Tensor(), o); }, {x, w});
    }
  }
  // only the input, or only the weight, requiring a gradient
  Generator gen(101);
  Conv2dOptions o;
  o.stride = 2;
  o.padding = 1;
  Tensor x = param({1, 2, 4, 5}, gen), w = param({3, 2, 3, 3}, gen);
  Tensor wc = w.detach(), xc = x.detach();
  expect_grads("conv2d input only", [&](const Inputs& in) { return disco::conv2d(in[0], wc, Tensor(), o); }, {x});
  expect_grads("conv2d weight only", [&](const Inputs& in) { return disco::conv2d(xc, in[0], Tensor(), o); }, {w});
}

TEST_CASE("gradcheck conv_transpose2d: stride, padding, output_padding, bias", "[ops][gradcheck][conv]") {
  struct T {
    int N, Cin, H, W, Cout, R, S, stride, pad, opad, dil;
    bool bias;
  };
  const std::vector<T> cases = {
      {2, 3, 3, 4, 2, 3, 3, 1, 1, 0, 1, true},   // stride 1
      {1, 2, 3, 3, 3, 4, 4, 2, 1, 0, 1, false},  // the model's k4 s2 p1
      {2, 2, 3, 2, 2, 3, 3, 2, 1, 1, 1, true},   // output_padding 1
      {1, 3, 1, 1, 2, 4, 4, 2, 1, 0, 1, true},   // 1x1 -> 2x2
      {1, 2, 2, 2, 2, 3, 3, 3, 0, 2, 1, false},  // stride 3, output_padding 2
      {1, 2, 3, 3, 2, 3, 3, 2, 1, 1, 2, true},   // dilation 2
      {2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 1, true},   // 1x1 kernel, 2x2 map
  };
  for (const auto& c : cases) {
    Generator gen(200);
    Conv2dOptions o;
    o.stride = c.stride;
    o.padding = c.pad;
    o.output_padding = c.opad;
    o.dilation = c.dil;
    Tensor x = param({c.N, c.Cin, c.H, c.W}, gen), w = param({c.Cin, c.Cout, c.R, c.S}, gen, 0.5);
    if (c.bias) {
      Tensor b = param({c.Cout}, gen);
      expect_grads(conv_name("conv_transpose2d", x.shape(), w.shape(), o, true),
                   [o](const Inputs& in) { return disco::conv_transpose2d(in[0], in[1], in[2], o); }, {x, w, b});
    } else {
      expect_grads(conv_name("conv_transpose2d", x.shape(), w.shape(), o, false),
                   [o](const Inputs& in) { return disco::conv_transpose2d(in[0], in[1], Tensor(), o); }, {x, w});
    }
  }
}

TEST_CASE("gradcheck linear and matmul", "[ops][gradcheck]") {
  Generator gen(300);
  for (auto mio : {std::vector<int64_t>{1, 5, 3}, {4, 7, 2}, {3, 1, 1}, {2, 3, 6}}) {
    Tensor x = param({mio[0], mio[1]}, gen), w = param({mio[2], mio[1]}, gen), b = param({mio[2]}, gen);
    const std::string name = disco::str("linear x ", disco::shape_str(x.shape()), " w ", disco::shape_str(w.shape()));
    expect_grads(name + " bias", [](const Inputs& in) { return disco::linear(in[0], in[1], in[2]); }, {x, w, b});
    expect_grads(name, [](const Inputs& in) { return disco::linear(in[0], in[1]); }, {x, w});
  }
  for (auto mkn : {std::vector<int64_t>{3, 4, 5}, {1, 1, 3}, {2, 1, 2}, {5, 3, 1}}) {
    Tensor a = param({mkn[0], mkn[1]}, gen), b = param({mkn[1], mkn[2]}, gen);
    expect_grads(disco::str("matmul ", disco::shape_str(a.shape()), " @ ", disco::shape_str(b.shape())),
                 [](const Inputs& in) { return disco::matmul(in[0], in[1]); }, {a, b});
  }
  // a non-contiguous input
  Tensor big = param({3, 6}, gen), w = param({2, 3}, gen);
  expect_grads("linear on a narrowed input", [](const Inputs& in) { return disco::linear(in[0].narrow(1, 2, 3), in[1]); },
               {big, w});
}

TEST_CASE("gradcheck instance_norm2d, plain, affine and fused with relu / leaky", "[ops][gradcheck][norm]") {
  struct C {
    Shape shape;
    bool weight, bias;
    UnaryKind act;
    double slope;
  };
  const std::vector<C> cases = {
      {{2, 3, 3, 5}, false, false, UnaryKind::None, 0},
      {{1, 2, 2, 2}, false, false, UnaryKind::None, 0},  // 2x2 map, batch 1
      {{1, 2, 1, 3}, false, false, UnaryKind::None, 0},
      {{2, 2, 3, 3}, true, true, UnaryKind::None, 0},
      {{1, 3, 2, 3}, true, false, UnaryKind::None, 0},
      {{2, 2, 3, 2}, false, true, UnaryKind::None, 0},
      {{2, 3, 3, 3}, false, false, UnaryKind::Relu, 0},  // fused kernel
      {{1, 2, 4, 3}, false, false, UnaryKind::LeakyRelu, 0.2},
      {{2, 2, 2, 2}, false, false, UnaryKind::LeakyRelu, 0.01},
      {{2, 2, 3, 3}, true, true, UnaryKind::LeakyRelu, 0.2},  // affine, then the activation
      {{1, 2, 3, 3}, true, true, UnaryKind::Relu, 0},
      {{2, 2, 2, 3}, false, false, UnaryKind::Tanh, 0},  // not fusable: separate op
      {{2, 3, 5}, false, false, UnaryKind::Sigmoid, 0},  // rank 3
  };
  for (const auto& c : cases) {
    Generator gen(400);
    Tensor x = param(c.shape, gen, 1.5);
    const int64_t C = c.shape[1];
    Inputs in{x};
    if (c.weight) in.push_back(param({C}, gen));
    if (c.bias) in.push_back(param({C}, gen));
    const bool w = c.weight, b = c.bias;
    const UnaryKind act = c.act;
    const double slope = c.slope;
    expect_grads(disco::str("instance_norm2d ", disco::shape_str(c.shape), w ? " weight" : "", b ? " bias" : "", " ",
                            disco::unary_name(act)),
                 [=](const Inputs& t) {
                   Tensor wt = w ? t[1] : Tensor(), bt = b ? t[w ? 2 : 1] : Tensor();
                   return disco::instance_norm2d(t[0], wt, bt, 1e-5, act, slope);
                 },
                 in);
  }
}

TEST_CASE("gradcheck activations", "[ops][gradcheck]") {
  Generator gen(500);
  Tensor x = away_from_zero({2, 3, 5}, gen);
  expect_grads("relu", [](const Inputs& in) { return disco::relu(in[0]); }, {x});
  expect_grads("leaky_relu 0.01", [](const Inputs& in) { return disco::leaky_relu(in[0]); }, {x});
  expect_grads("leaky_relu 0.2", [](const Inputs& in) { return disco::leaky_relu(in[0], 0.2); }, {x});
  expect_grads("leaky_relu 1.7", [](const Inputs& in) { return disco::leaky_relu(in[0], 1.7); }, {x});
  expect_grads("tanh", [](const Inputs& in) { return disco::tanh(in[0]); }, {x});
  expect_grads("sigmoid", [](const Inputs& in) { return disco::sigmoid(in[0]); }, {x});
  expect_grads("tanh of a strided view", [](const Inputs& in) { return disco::tanh(in[0].narrow(2, 1, 3)); }, {x});
  expect_grads("sigmoid(tanh)", [](const Inputs& in) { return disco::sigmoid(disco::scale(disco::tanh(in[0]), 3.0)); },
               {x});
}

TEST_CASE("gradcheck elementwise arithmetic and per-channel broadcast", "[ops][gradcheck]") {
  Generator gen(600);
  Tensor a = param({3, 2, 3}, gen), b = param({3, 2, 3}, gen);
  expect_grads("add", [](const Inputs& in) { return disco::add(in[0], in[1]); }, {a, b});
  expect_grads("sub", [](const Inputs& in) { return disco::sub(in[0], in[1]); }, {a, b});
  expect_grads("mul", [](const Inputs& in) { return disco::mul(in[0], in[1]); }, {a, b});
  expect_grads("scale", [](const Inputs& in) { return disco::scale(in[0], -2.5); }, {a});
  expect_grads("add_scalar", [](const Inputs& in) { return disco::add_scalar(in[0], 0.7); }, {a});
  expect_grads("operators", [](const Inputs& in) { return (in[0] * in[1] - in[0]) * 2.0 + in[1]; }, {a, b});
  expect_grads("mul of the same tensor", [](const Inputs& in) { return disco::mul(in[0], in[0]); }, {a});
  expect_grads("mul of strided views",
               [](const Inputs& in) { return disco::mul(in[0].narrow(0, 1, 2), in[1].narrow(0, 0, 2)); }, {a, b});
  for (Shape s : {Shape{4, 3}, Shape{2, 3, 4}, Shape{2, 3, 2, 3}, Shape{1, 3, 1, 1}}) {
    Tensor x = param(s, gen), v = param({3}, gen);
    expect_grads("add_channel " + disco::shape_str(s), [](const Inputs& in) { return disco::add_channel(in[0], in[1]); },
                 {x, v});
    expect_grads("mul_channel " + disco::shape_str(s), [](const Inputs& in) { return disco::mul_channel(in[0], in[1]); },
                 {x, v});
  }
}

TEST_CASE("gradcheck sum and mean", "[ops][gradcheck]") {
  Generator gen(700);
  Tensor x = param({3, 4, 2}, gen);
  expect_grads("sum", [](const Inputs& in) { return disco::sum(in[0]); }, {x});
  expect_grads("mean", [](const Inputs& in) { return disco::mean(in[0]); }, {x});
  expect_grads("mean of a view", [](const Inputs& in) { return disco::mean(in[0].narrow(1, 1, 2)); }, {x});
  expect_grads("sum * tanh", [](const Inputs& in) { return disco::mul(disco::sum(in[0]).reshape({1}), disco::tanh(in[0].reshape({-1}).narrow(0, 0, 1))); },
               {x});
}

TEST_CASE("gradcheck losses", "[ops][gradcheck][loss]") {
  Generator gen(800);
  Tensor p = param({2, 3, 4}, gen), t = param({2, 3, 4}, gen);
  expect_grads("mse_loss (pred and target)", [](const Inputs& in) { return disco::mse_loss(in[0], in[1]); }, {p, t});
  // l1: keep pred - target away from the kink at 0
  Tensor lp = param({3, 5}, gen);
  auto off = away_from_zero({3, 5}, gen, 0.2).to_vector<double>();
  auto lpv = lp.to_vector<double>();
  for (std::size_t i = 0; i < off.size(); ++i) off[i] += lpv[i];
  Tensor lt = Tensor::from_vector(off, {3, 5}).set_requires_grad();
  expect_grads("l1_loss (pred and target)", [](const Inputs& in) { return disco::l1_loss(in[0], in[1]); }, {lp, lt});
  // bce on probabilities (target constant, soft and hard labels)
  Tensor prob = uparam({4, 3}, gen, 0.05, 0.95);
  Tensor soft = Tensor::rand({4, 3}, gen, DType::F64);
  Tensor hard = Tensor::from_vector(std::vector<double>{0, 1, 1, 0, 1, 0, 0, 0, 1, 1, 1, 0}, {4, 3});
  expect_grads("bce soft labels", [](const Inputs& in) { return disco::bce(in[0], in[1]); }, {prob, soft});
  expect_grads("bce hard labels", [](const Inputs& in) { return disco::bce(in[0], in[1]); }, {prob, hard});
  expect_grads("bce(sigmoid)", [](const Inputs& in) { return disco::bce(disco::sigmoid(in[0]), in[1]); },
               {param({4, 3}, gen), soft});
  Tensor logits = param({4, 3}, gen, 3.0);
  expect_grads("bce_with_logits soft", [](const Inputs& in) { return disco::bce_with_logits(in[0], in[1]); },
               {logits, soft});
  expect_grads("bce_with_logits hard", [](const Inputs& in) { return disco::bce_with_logits(in[0], in[1]); },
               {logits, hard});
  expect_grads("loss of batch 1 single element", [](const Inputs& in) { return disco::mse_loss(in[0], in[1]); },
               {param({1}, gen), param({1}, gen)});
}

TEST_CASE("gradcheck the fused recon_adv_loss", "[ops][gradcheck][loss]") {
  Generator gen(900);
  Tensor pred = param({2, 2, 3, 3}, gen);
  Tensor target = Tensor::randn({2, 2, 3, 3}, gen, DType::F64);
  Tensor prob = uparam({2, 1}, gen, 0.1, 0.9);
  for (double label : {0.0, 1.0, 0.7}) {
    for (double weight : {0.5, 2.0}) {
      expect_grads(disco::str("recon_adv_loss mse label ", label, " weight ", weight),
                   [=](const Inputs& in) { return disco::recon_adv_loss(in[0], in[1], in[2], label, weight); },
                   {pred, target, prob});
    }
  }
  // l1 reconstruction: keep pred - target away from 0
  auto pv = pred.to_vector<double>();
  auto off = away_from_zero({2, 2, 3, 3}, gen, 0.2).to_vector<double>();
  for (std::size_t i = 0; i < pv.size(); ++i) off[i] += pv[i];
  Tensor t1 = Tensor::from_vector(off, {2, 2, 3, 3});
  expect_grads("recon_adv_loss l1",
               [](const Inputs& in) { return disco::recon_adv_loss(in[0], in[1], in[2], 1.0, 0.3, LossKind::L1); },
               {pred, t1, prob});
  // the probabilities coming out of a sigmoid, as in the model
  Tensor logit = param({3, 1}, gen);
  expect_grads("recon_adv_loss(sigmoid)", [](const Inputs& in) {
    return disco::recon_adv_loss(in[0], in[1], disco::sigmoid(in[2]), 1.0, 0.5);
  }, {pred, target, logit});
}

TEST_CASE("gradcheck the grouped recon_adv_loss", "[ops][gradcheck][loss]") {
  Generator gen(901);
  Tensor pred = param({3, 2, 3, 3}, gen);
  Tensor target = Tensor::randn({3, 2, 3, 3}, gen, DType::F64);
  Tensor prob = uparam({3}, gen, 0.1, 0.9);
  for (const std::vector<int64_t>& groups : {std::vector<int64_t>{1, 2}, std::vector<int64_t>{3}}) {
    expect_grads(disco::str("recon_adv_loss_grouped ", groups.size(), " groups"), [groups](const Inputs& in) {
      return disco::recon_adv_loss_grouped(in[0], in[1], disco::sigmoid(in[2]), 0.0, 0.7, LossKind::MSE, groups);
    }, {pred, target, prob});
  }
}

TEST_CASE("gradcheck views and layout ops", "[ops][gradcheck][views]") {
  Generator gen(1000);
  Tensor x = param({2, 3, 4}, gen);
  expect_grads("reshape -1", [](const Inputs& in) { return disco::tanh(in[0].reshape({-1, 2})); }, {x});
  expect_grads("view", [](const Inputs& in) { return in[0].view({4, 6}); }, {x});
  expect_grads("narrow dim 1", [](const Inputs& in) { return in[0].narrow(1, 1, 2); }, {x});
  expect_grads("narrow dim -1", [](const Inputs& in) { return in[0].narrow(-1, 3, 1); }, {x});
  expect_grads("slice dim 0", [](const Inputs& in) { return in[0].slice(0, 1, 2); }, {x});
  expect_grads("flatten", [](const Inputs& in) { return in[0].flatten(); }, {x});
  expect_grads("flatten(0)", [](const Inputs& in) { return in[0].flatten(0); }, {x});
  expect_grads("contiguous of a strided view", [](const Inputs& in) { return in[0].narrow(2, 1, 2).contiguous(); }, {x});
  expect_grads("reshape of a strided view", [](const Inputs& in) { return in[0].narrow(2, 1, 2).reshape({-1}); }, {x});
  expect_grads("clone", [](const Inputs& in) { return disco::mul(in[0].clone(), in[0]); }, {x});
  Tensor y = param({2, 1, 4}, gen), z = param({2, 2, 4}, gen);
  expect_grads("concat dim 1", [](const Inputs& in) { return disco::concat<CPU>({in[0], in[1], in[2]}, 1); }, {x, y, z});
  expect_grads("concat dim 0", [](const Inputs& in) { return disco::concat<CPU>({in[0], in[0], disco::scale(in[0], 2)}, 0); },
               {x});
  expect_grads("concat dim -1", [](const Inputs& in) { return disco::concat<CPU>({in[0].narrow(2, 0, 1), in[0]}, -1); },
               {x});
  expect_grads("split", [](const Inputs& in) {
    auto parts = disco::split(in[0], {1, 2, 1}, 2);
    return disco::concat<CPU>({disco::scale(parts[2], 3.0), parts[0], disco::tanh(parts[1])}, 2);
  }, {x});
  expect_grads("split dim 0 (one part unused)", [](const Inputs& in) {
    auto parts = disco::split(in[0], {1, 1}, 0);
    return disco::sigmoid(parts[1]);
  }, {x});
}

TEST_CASE("gradcheck random configurations (non-square kernels, random sizes)", "[ops][gradcheck][conv]") {
  Generator cfg(4242);  // the configurations themselves are drawn from a fixed seed
  auto pick = [&cfg](int lo, int hi) { return lo + int(cfg.below(uint64_t(hi - lo + 1))); };
  int conv_done = 0, tconv_done = 0;
  while (conv_done < 8) {
    const int N = pick(1, 2), C = pick(1, 3), H = pick(1, 7), W = pick(1, 7), K = pick(1, 3), R = pick(1, 4),
              S = pick(1, 4);
    Conv2dOptions o;
    o.stride = pick(1, 3);
    o.padding = pick(0, 2);
    o.dilation = pick(1, 2);
    if (H + 2 * o.padding < o.dilation * (R - 1) + 1 || W + 2 * o.padding < o.dilation * (S - 1) + 1) continue;
    ++conv_done;
    Generator gen(cfg.next_u64());
    Tensor x = param({N, C, H, W}, gen), w = param({K, C, R, S}, gen, 0.5), b = param({K}, gen);
    expect_grads(conv_name("random conv2d", x.shape(), w.shape(), o, true),
                 [o](const Inputs& in) { return disco::conv2d(in[0], in[1], in[2], o); }, {x, w, b});
  }
  while (tconv_done < 8) {
    const int N = pick(1, 2), Cin = pick(1, 3), H = pick(1, 4), W = pick(1, 4), Cout = pick(1, 3), R = pick(1, 4),
              S = pick(1, 4);
    Conv2dOptions o;
    o.stride = pick(1, 3);
    o.padding = pick(0, 2);
    o.dilation = pick(1, 2);
    o.output_padding = pick(0, o.stride - 1);
    const int Ho = (H - 1) * o.stride - 2 * o.padding + o.dilation * (R - 1) + o.output_padding + 1;
    const int Wo = (W - 1) * o.stride - 2 * o.padding + o.dilation * (S - 1) + o.output_padding + 1;
    if (Ho < 1 || Wo < 1) continue;
    ++tconv_done;
    Generator gen(cfg.next_u64());
    Tensor x = param({N, Cin, H, W}, gen), w = param({Cin, Cout, R, S}, gen, 0.5), b = param({Cout}, gen);
    expect_grads(conv_name("random conv_transpose2d", x.shape(), w.shape(), o, true),
                 [o](const Inputs& in) { return disco::conv_transpose2d(in[0], in[1], in[2], o); }, {x, w, b});
  }
  for (int i = 0; i < 4; ++i) {
    const int N = pick(1, 3), C = pick(1, 3), H = pick(1, 4), W = pick(2, 4);
    Generator gen(cfg.next_u64());
    Tensor x = param({N, C, H, W}, gen, 2.0), w = param({C}, gen), b = param({C}, gen);
    expect_grads(disco::str("random instance_norm2d ", disco::shape_str(x.shape())),
                 [](const Inputs& in) { return disco::instance_norm2d(in[0], in[1], in[2], 1e-5, UnaryKind::LeakyRelu, 0.2); },
                 {x, w, b});
    const int M = pick(1, 4), in = pick(1, 6), out = pick(1, 5);
    Tensor lx = param({M, in}, gen), lw = param({out, in}, gen), lb = param({out}, gen);
    expect_grads(disco::str("random linear ", disco::shape_str(lx.shape()), " -> ", out),
                 [](const Inputs& t) { return disco::linear(t[0], t[1], t[2]); }, {lx, lw, lb});
  }
}
