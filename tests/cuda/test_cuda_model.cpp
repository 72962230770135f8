// Tensor<CUDA> and the whole model on the GPU: the CUDA backend (backend/cuda/backend.hpp)
// against the CPU backend on the same random float32 data. Tensor basics, every op's forward
// and backward (relative L2 <= 1e-5 with FP32 convolutions), the optimisers, and
// ContentDisentangler<CUDA>::train_step against ContentDisentangler<CPU>::train_step from
// the same weights; checkpoints move between the devices.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <type_traits>
#include <unistd.h>
#include <vector>

#include "common.hpp"
#include "disco/cuda.hpp"

namespace {

using disco::Conv2dOptions;
using disco::CPU;
using disco::CUDA;
using disco::DType;
using disco::LossKind;
using disco::Shape;
using disco::UnaryKind;
using TC = disco::Tensor<CPU>;
using TG = disco::Tensor<CUDA>;
using dtest::randu;
using dtest::rel_l2;
namespace dc = disco::cuda;

// Every comparison below runs with the exact (FP32, disco kernels) matrix products.
struct Fp32Scope {
  dc::ConvSettings saved = dc::conv_settings();
  Fp32Scope() { dc::conv_settings() = dc::ConvSettings{}; }
  ~Fp32Scope() { dc::conv_settings() = saved; }
};

std::vector<float> vals(const TC& t) { return t.to_vector<float>(); }
std::vector<float> vals(const TG& t) { return t.to_vector<float>(); }

// One op input: shape, value range, and whether it takes part in the backward check.
struct In {
  Shape shape;
  float lo = -1.f, hi = 1.f;
  bool grad = true;
};

// Run f on CPU and CUDA tensors holding the same values; compare the outputs, then
// backward with the same random grad_output and compare every input gradient.
template <class F>
void check_op(const std::string& name, const std::vector<In>& ins, F f, double tol = 1e-5) {
  INFO("op " << name);
  std::vector<TC> c;
  std::vector<TG> g;
  for (const In& in : ins) {
    const auto v = randu(size_t(disco::shape_numel(in.shape)), in.lo, in.hi);
    c.push_back(TC::from_vector(v, in.shape));
    g.push_back(TG::from_vector(v, in.shape));
    if (in.grad) {
      c.back().set_requires_grad();
      g.back().set_requires_grad();
    }
  }
  TC yc = f(c);
  TG yg = f(g);
  REQUIRE(yc.shape() == yg.shape());
  CHECK(rel_l2(vals(yg), vals(yc)) <= tol);
  REQUIRE(yc.requires_grad() == yg.requires_grad());
  if (!yc.requires_grad()) return;
  const auto gy = randu(size_t(yc.numel()));
  yc.backward(TC::from_vector(gy, yc.shape()));
  yg.backward(TG::from_vector(gy, yg.shape()));
  for (size_t i = 0; i < ins.size(); ++i) {
    if (!ins[i].grad) continue;
    INFO("gradient of input " << i);
    REQUIRE(c[i].grad().defined() == g[i].grad().defined());
    if (c[i].grad().defined()) CHECK(rel_l2(vals(g[i].grad()), vals(c[i].grad())) <= tol);
  }
}

template <class V>
using TensorOf = std::decay_t<decltype(std::declval<V&>()[0])>;

}  // namespace

// ---- Tensor<CUDA> basics -----------------------------------------------------------------------

TEST_CASE("Tensor<CUDA> storage, views, copies and concat", "[cuda][tensor]") {
  SECTION("from_vector / to_vector round trip, item, at, fill") {
    const auto v = randu(1000);
    TG t = TG::from_vector(v, {10, 100});
    CHECK(t.to_vector<float>() == v);
    const std::vector<double> d = {1.5, -2.25, 3.0};
    TG td = TG::from_vector(d, {3});  // float64 storage needs no kernel
    CHECK(td.dtype() == DType::F64);
    CHECK(td.to_vector<double>() == d);
    CHECK(t.at({3, 7}) == double(v[307]));
    CHECK(TG::scalar(2.5).item() == 2.5);
    TG z = TG::zeros({5, 7});
    for (float x : z.to_vector<float>()) CHECK(x == 0.f);
    z.fill_(-3.0);
    for (float x : z.to_vector<float>()) CHECK(x == -3.f);
    CHECK(TG::full({0, 4}, 1.0).numel() == 0);
  }
  SECTION("views and contiguous match the CPU") {
    const auto v = randu(2 * 6 * 5 * 4);
    TC c = TC::from_vector(v, {2, 6, 5, 4});
    TG g = TG::from_vector(v, {2, 6, 5, 4});
    TC cn = c.narrow(1, 2, 3).narrow(3, 1, 2);
    TG gn = g.narrow(1, 2, 3).narrow(3, 1, 2);
    CHECK_FALSE(gn.is_contiguous());
    CHECK(gn.to_vector<float>() == cn.to_vector<float>());
    TG gc = gn.contiguous();
    CHECK(gc.is_contiguous());
    CHECK(gc.to_vector<float>() == cn.contiguous().to_vector<float>());
    // a transposed view through as_strided, copied into another strided view
    TC ct = c.reshape({12, 20}).as_strided({20, 12}, {1, 20}, 0);
    TG gt = g.reshape({12, 20}).as_strided({20, 12}, {1, 20}, 0);
    CHECK(gt.contiguous().to_vector<float>() == ct.contiguous().to_vector<float>());
    TC cd = TC::zeros({20, 24});
    TG gd = TG::zeros({20, 24});
    cd.narrow(1, 5, 12).copy_(ct);
    gd.narrow(1, 5, 12).copy_(gt);
    CHECK(gd.to_vector<float>() == cd.to_vector<float>());
    CHECK(g.flatten(1).to_vector<float>() == v);
    CHECK(g.reshape({-1}).to_vector<float>() == v);
    CHECK(g.clone().to_vector<float>() == v);
  }
  SECTION("views of more than 6 dims: mergeable dims are merged, the rest throws") {
    const Shape s7 = {2, 2, 2, 2, 2, 2, 3};
    const auto v = randu(size_t(disco::shape_numel(s7)));
    TC c = TC::from_vector(v, s7);
    TG g = TG::from_vector(v, s7);
    CHECK(g.narrow(6, 1, 2).contiguous().to_vector<float>() == c.narrow(6, 1, 2).contiguous().to_vector<float>());
    const Shape s3 = {3, 3, 3, 3, 3, 3, 3};
    TG h = TG::from_vector(randu(size_t(disco::shape_numel(s3))), s3);
    TG cut = h;
    for (int d = 0; d < 7; ++d) cut = cut.narrow(d, 0, 2);
    REQUIRE_THROWS_AS(cut.contiguous(), disco::Error);
  }
  SECTION("concat and split") {
    const auto a = randu(2 * 3 * 4), b = randu(2 * 5 * 4);
    for (int dim : {0, 1, 2}) {
      INFO("dim " << dim);
      Shape sa = {2, 3, 4}, sb = {2, 3, 4};
      if (dim == 1) sb = {2, 5, 4};
      const auto bb = dim == 1 ? b : std::vector<float>(b.begin(), b.begin() + 24);
      TC cc = disco::concat<CPU>({TC::from_vector(a, sa), TC::from_vector(bb, sb)}, dim);
      TG gc = disco::concat<CUDA>({TG::from_vector(a, sa), TG::from_vector(bb, sb)}, dim);
      CHECK(gc.shape() == cc.shape());
      CHECK(gc.to_vector<float>() == cc.to_vector<float>());
      auto parts = disco::split(gc, {1, gc.shape()[size_t(dim)] - 1}, dim);
      auto cparts = disco::split(cc, {1, cc.shape()[size_t(dim)] - 1}, dim);
      CHECK(parts[1].to_vector<float>() == cparts[1].to_vector<float>());
    }
  }
  SECTION("memory returns to the caching allocator") {
    const size_t before = dc::memory_stats().bytes_in_use;
    {
      TG big = TG::zeros({1024, 1024});
      CHECK(dc::memory_stats().bytes_in_use >= before + 4u * 1024 * 1024);
    }
    CHECK(dc::memory_stats().bytes_in_use == before);
  }
  SECTION("float64 kernels throw a clear error") {
    try {
      TG::ones({3}, DType::F64);
      FAIL("expected disco::Error");
    } catch (const disco::Error& e) {
      CHECK_THAT(e.what(), Catch::Contains("float64 is not supported"));
    }
    TG d = TG::from_vector(std::vector<double>{1, 2, 3}, {3});
    CHECK_THROWS_AS(disco::add(d, d), disco::Error);
  }
}

// ---- every op, forward and backward, CUDA vs CPU ------------------------------------------------

TEST_CASE("ops on CUDA match the CPU backend", "[cuda][ops]") {
  Fp32Scope fp32;
  const Shape s = {3, 5, 7};
  SECTION("element-wise") {
    check_op("add", {{s}, {s}}, [](auto& in) { return disco::add(in[0], in[1]); });
    check_op("sub", {{s}, {s}}, [](auto& in) { return disco::sub(in[0], in[1]); });
    check_op("mul", {{s}, {s}}, [](auto& in) { return disco::mul(in[0], in[1]); });
    check_op("scale", {{s}}, [](auto& in) { return disco::scale(in[0], -1.7); });
    check_op("add_scalar", {{s}}, [](auto& in) { return disco::add_scalar(in[0], 0.3); });
    check_op("operators", {{s}, {s}}, [](auto& in) { return (in[0] + in[1]) * in[0] - 2.0 * in[1]; });
    check_op("add_channel", {{{2, 6, 5, 5}}, {{6}}}, [](auto& in) { return disco::add_channel(in[0], in[1]); });
    check_op("mul_channel", {{{2, 6, 5, 5}}, {{6}}}, [](auto& in) { return disco::mul_channel(in[0], in[1]); });
    check_op("mul_channel (3-d)", {{{4, 3, 17}}, {{3}}}, [](auto& in) { return disco::mul_channel(in[0], in[1]); });
  }
  SECTION("activations") {
    const Shape big = {4, 1000};
    check_op("relu", {{big}}, [](auto& in) { return disco::relu(in[0]); });
    check_op("leaky_relu 0.2", {{big}}, [](auto& in) { return disco::leaky_relu(in[0], 0.2); });
    check_op("leaky_relu -0.5", {{big}}, [](auto& in) { return disco::leaky_relu(in[0], -0.5); });
    check_op("tanh", {{big, -3.f, 3.f}}, [](auto& in) { return disco::tanh(in[0]); });
    check_op("sigmoid", {{big, -4.f, 4.f}}, [](auto& in) { return disco::sigmoid(in[0]); });
    check_op("identity", {{big}}, [](auto& in) { return disco::activation(in[0], UnaryKind::None); });
  }
  SECTION("reductions") {
    check_op("sum", {{{1000}, 0.f, 1.f}}, [](auto& in) { return disco::sum(in[0]); });
    check_op("mean", {{{3, 70001}, 0.f, 1.f}}, [](auto& in) { return disco::mean(in[0]); });
    check_op("sum of a view", {{{40, 30}, 0.f, 1.f}}, [](auto& in) { return disco::sum(in[0].narrow(1, 3, 20)); });
  }
  SECTION("matmul and linear (cuBLAS)") {
    check_op("matmul", {{{7, 5}}, {{5, 9}}}, [](auto& in) { return disco::matmul(in[0], in[1]); });
    check_op("matmul large", {{{64, 300}}, {{300, 70}}}, [](auto& in) { return disco::matmul(in[0], in[1]); });
    check_op("linear", {{{6, 10}}, {{4, 10}}, {{4}}}, [](auto& in) { return disco::linear(in[0], in[1], in[2]); });
    check_op("linear without bias", {{{16, 112}}, {{32, 112}}}, [](auto& in) { return disco::linear(in[0], in[1]); });
    check_op("linear, input without gradient", {{{5, 33}, -1.f, 1.f, false}, {{1, 33}}, {{1}}},
             [](auto& in) { return disco::linear(in[0], in[1], in[2]); });
  }
  SECTION("convolutions") {
    check_op("conv2d k4 s2 p1 + bias", {{{2, 3, 16, 16}}, {{8, 3, 4, 4}}, {{8}}},
             [](auto& in) { return disco::conv2d(in[0], in[1], in[2], Conv2dOptions{2, 1, 1, 0}); });
    check_op("conv2d k3 s1 p1", {{{2, 5, 9, 7}}, {{4, 5, 3, 3}}}, [](auto& in) {
      using T = TensorOf<decltype(in)>;
      return disco::conv2d(in[0], in[1], T(), Conv2dOptions{1, 1, 1, 0});
    });
    check_op("conv2d dilation 2", {{{1, 4, 12, 12}}, {{6, 4, 3, 3}}, {{6}}},
             [](auto& in) { return disco::conv2d(in[0], in[1], in[2], Conv2dOptions{1, 2, 2, 0}); });
    check_op("conv_transpose2d k4 s2 p1 + bias", {{{2, 8, 4, 4}}, {{8, 5, 4, 4}}, {{5}}},
             [](auto& in) { return disco::conv_transpose2d(in[0], in[1], in[2], Conv2dOptions{2, 1, 1, 0}); });
    check_op("conv_transpose2d output_padding", {{{2, 6, 5, 5}}, {{6, 3, 3, 3}}, {{3}}},
             [](auto& in) { return disco::conv_transpose2d(in[0], in[1], in[2], Conv2dOptions{2, 1, 1, 1}); });
    check_op("conv_transpose2d 2x2 -> 4x4, 32 channels", {{{2, 32, 2, 2}}, {{32, 32, 4, 4}}, {{32}}},
             [](auto& in) { return disco::conv_transpose2d(in[0], in[1], in[2], Conv2dOptions{2, 1, 1, 0}); });
  }
  SECTION("instance norm") {
    const Shape x = {2, 6, 8, 8};
    for (auto act : {UnaryKind::None, UnaryKind::Relu, UnaryKind::LeakyRelu, UnaryKind::Tanh}) {
      check_op(std::string("instance_norm2d fused ") + disco::unary_name(act), {{x, -2.f, 3.f}}, [act](auto& in) {
        using T = TensorOf<decltype(in)>;
        return disco::instance_norm2d(in[0], T(), T(), 1e-5, act, 0.2);
      });
    }
    check_op("instance_norm2d 2x2 maps", {{{2, 28, 2, 2}}}, [](auto& in) {
      using T = TensorOf<decltype(in)>;
      return disco::instance_norm2d(in[0], T(), T(), 1e-5, UnaryKind::LeakyRelu, 0.2);
    });
    check_op("instance_norm2d affine + leaky", {{x}, {{6}}, {{6}}}, [](auto& in) {
      return disco::instance_norm2d(in[0], in[1], in[2], 1e-5, UnaryKind::LeakyRelu, 0.2);
    });
  }
  SECTION("losses") {
    const Shape p = {4, 3, 9, 9};
    check_op("mse_loss", {{p}, {p}}, [](auto& in) { return disco::mse_loss(in[0], in[1]); });
    check_op("l1_loss", {{p}, {p}}, [](auto& in) { return disco::l1_loss(in[0], in[1]); });
    check_op("bce", {{{37}, 0.05f, 0.95f}, {{37}, 0.f, 1.f, false}}, [](auto& in) { return disco::bce(in[0], in[1]); });
    check_op("bce_with_logits", {{{37}, -3.f, 3.f}, {{37}, 0.f, 1.f, false}},
             [](auto& in) { return disco::bce_with_logits(in[0], in[1]); });
    for (double label : {0.0, 1.0}) {
      for (auto kind : {LossKind::MSE, LossKind::L1}) {
        INFO("label " << label << ", " << disco::loss_name(kind));
        check_op("recon_adv_loss", {{p}, {p, -1.f, 1.f, false}, {{4}, 0.05f, 0.95f}}, [label, kind](auto& in) {
          return disco::recon_adv_loss(in[0], in[1], in[2], label, 0.1, kind);
        });
      }
    }
    // groups of samples at offsets that break 16-byte alignment (75 floats a sample)
    for (auto kind : {LossKind::MSE, LossKind::L1}) {
      INFO("grouped, " << disco::loss_name(kind));
      check_op("recon_adv_loss_grouped", {{{4, 3, 5, 5}}, {{4, 3, 5, 5}, -1.f, 1.f, false}, {{4}, 0.05f, 0.95f}},
               [kind](auto& in) { return disco::recon_adv_loss_grouped(in[0], in[1], in[2], 0.0, 0.1, kind, {3, 1}); });
    }
    // the parts read back from the device
    const auto a = randu(100), b = randu(100), q = randu(5, 0.1f, 0.9f);
    disco::ReconAdvParts pc, pg;
    disco::recon_adv_loss(TC::from_vector(a, {100}), TC::from_vector(b, {100}), TC::from_vector(q, {5}), 0.0, 0.5,
                          LossKind::MSE, &pc);
    disco::recon_adv_loss(TG::from_vector(a, {100}), TG::from_vector(b, {100}), TG::from_vector(q, {5}), 0.0, 0.5,
                          LossKind::MSE, &pg);
    CHECK(pg.recon == Approx(pc.recon).epsilon(1e-5));
    CHECK(pg.adv == Approx(pc.adv).epsilon(1e-5));
  }
  SECTION("views, concat, split, reshape") {
    check_op("concat dim 1", {{{2, 3, 4}}, {{2, 5, 4}}}, [](auto& in) {
      using T = TensorOf<decltype(in)>;
      return disco::concat(std::vector<T>{in[0], in[1]}, 1);
    });
    check_op("split pieces, reordered", {{{2, 7, 3}}}, [](auto& in) {
      using T = TensorOf<decltype(in)>;
      auto parts = disco::split(in[0], {2, 5}, 1);
      return disco::concat(std::vector<T>{parts[1], disco::scale(parts[0], 3.0)}, 1);
    });
    check_op("narrow + contiguous + reshape", {{{4, 6, 5}}}, [](auto& in) {
      return disco::tanh(in[0].narrow(1, 1, 4).contiguous().reshape({4, -1}));
    });
    check_op("flatten of a view, clone", {{{3, 4, 5, 2}}}, [](auto& in) {
      return disco::mul(in[0].narrow(2, 1, 3).flatten(1), in[0].narrow(2, 0, 3).flatten(1).clone());
    });
  }
}

TEST_CASE("optimisers and clipping on CUDA match the CPU backend", "[cuda][optim]") {
  const Shape s1 = {40, 30}, s2 = {17};
  const auto p1 = randu(1200), p2 = randu(17), g1 = randu(1200), g2 = randu(17);
  auto make = [&](auto tag) {
    using T = typename decltype(tag)::type;
    std::vector<T> ps = {T::from_vector(p1, s1), T::from_vector(p2, s2)};
    for (auto& p : ps) p.set_requires_grad();
    return ps;
  };
  auto set_grads = [&](auto& ps, float f) {
    using T = std::decay_t<decltype(ps[0])>;
    std::vector<float> a = g1, b = g2;
    for (auto& x : a) x *= f;
    for (auto& x : b) x *= f;
    ps[0].set_grad(T::from_vector(a, s1));
    ps[1].set_grad(T::from_vector(b, s2));
  };
  auto compare = [&](const std::vector<TC>& c, const std::vector<TG>& g, double tol) {
    for (size_t i = 0; i < c.size(); ++i) CHECK(rel_l2(vals(g[i]), vals(c[i])) <= tol);
  };
  SECTION("Adam with weight decay") {
    auto c = make(disco::type_tag<TC>{});
    auto g = make(disco::type_tag<TG>{});
    disco::optim::AdamOptions o{1e-2, 0.5, 0.999, 1e-8, 0.01};
    disco::optim::Adam<CPU> oc(c, o);
    disco::optim::Adam<CUDA> og(g, o);
    for (int step = 1; step <= 3; ++step) {
      set_grads(c, float(step));
      set_grads(g, float(step));
      oc.step();
      og.step();
    }
    compare(c, g, 1e-6);
    CHECK(rel_l2(vals(og.exp_avg(0)), vals(oc.exp_avg(0))) <= 1e-6);
    // the launcher takes float32 hyperparameters: 1 - 0.999f differs from 1 - 0.999 by 1.3e-5
    CHECK(rel_l2(vals(og.exp_avg_sq(1)), vals(oc.exp_avg_sq(1))) <= 1e-4);
  }
  SECTION("SGD with and without momentum") {
    for (double momentum : {0.0, 0.9}) {
      INFO("momentum " << momentum);
      auto c = make(disco::type_tag<TC>{});
      auto g = make(disco::type_tag<TG>{});
      disco::optim::SGDOptions o{0.1, momentum, 0.01};
      disco::optim::SGD<CPU> oc(c, o);
      disco::optim::SGD<CUDA> og(g, o);
      for (int step = 1; step <= 3; ++step) {
        set_grads(c, float(step));
        set_grads(g, float(step));
        oc.step();
        og.step();
      }
      compare(c, g, 1e-6);
    }
  }
  SECTION("clip_grad_norm") {
    auto c = make(disco::type_tag<TC>{});
    auto g = make(disco::type_tag<TG>{});
    set_grads(c, 3.f);
    set_grads(g, 3.f);
    const double nc = disco::optim::clip_grad_norm(c, 1.0), ng = disco::optim::clip_grad_norm(g, 1.0);
    CHECK(ng == Approx(nc).epsilon(1e-5));
    for (size_t i = 0; i < c.size(); ++i) CHECK(rel_l2(vals(g[i].grad()), vals(c[i].grad())) <= 1e-5);
  }
}

// ---- the whole model ------------------------------------------------------------------------------

namespace {

disco::ModelConfig small_config() {
  disco::ModelConfig cfg;
  cfg.resolution = 64;
  cfg.base_channels = 8;
  cfg.code_channels = 32;
  cfg.sep = 4;
  cfg.disc_hidden = 32;
  cfg.seed = 7;
  return cfg;
}

// Copy every parameter of `from` into `to` through the host.
template <class BF, class BT>
void copy_parameters(const disco::ContentDisentangler<BF>& from, disco::ContentDisentangler<BT>& to) {
  auto src = from.named_parameters();
  auto dst = to.named_parameters();
  REQUIRE(src.size() == dst.size());
  for (size_t i = 0; i < src.size(); ++i) {
    REQUIRE(src[i].first == dst[i].first);
    dst[i].second.copy_(disco::Tensor<BT>::from_vector(src[i].second.template to_vector<float>(),
                                                         src[i].second.shape()));
  }
}

void check_rel(double got, double want, double tol, const char* what) {
  INFO(what << ": cuda " << got << ", cpu " << want);
  CHECK(std::fabs(got - want) <= tol * std::max(std::fabs(want), 1e-6));
}

void check_losses(const disco::StepLosses& g, const disco::StepLosses& c) {
  check_rel(g.recon_a, c.recon_a, 1e-4, "recon_a");
  check_rel(g.recon_b, c.recon_b, 1e-4, "recon_b");
  check_rel(g.adv, c.adv, 1e-4, "adv");
  check_rel(g.ae, c.ae, 1e-4, "ae");
  check_rel(g.disc, c.disc, 1e-4, "disc");
  check_rel(g.ae_grad_norm, c.ae_grad_norm, 1e-4, "ae_grad_norm");
  check_rel(g.disc_grad_norm, c.disc_grad_norm, 1e-4, "disc_grad_norm");
}

// After a step from the same state and batch: every gradient of the autoencoder step (left
// unclipped in .grad()) within 1e-4 relative L2 of the CPU's, the discriminator step's within
// 1e-3 (plus a 2e-6 RMS floor). The discriminator step runs on E1's codes *after* the
// autoencoder's Adam update, which carries the per-element noise described next (elements
// with a rounding-level gradient move by up to lr either way): the codes, and so the
// discriminator's gradients, differ by ~1e-4 relative in some batches (seen: 1.2e-4 on
// disc.classify.2.weight, 3e-4 on its bias, with every autoencoder gradient within 3e-5).
// The parameters follow through Adam, whose early steps are ~lr * g / |g| per element: an
// element whose gradient is at rounding-noise level (|g| ~ 1e-8, e.g. weights reading a
// near-constant input) may move by anything up to lr either way in each backend. So each
// parameter must be within 1e-3 relative L2 and every element within 2.5 lr per step of
// the CPU's (the conv biases an InstanceNorm cancels are frozen: equal).
void check_parameters(const disco::ContentDisentangler<CUDA>& g, const disco::ContentDisentangler<CPU>& c, int steps) {
  auto pg = g.named_parameters();
  auto pc = c.named_parameters();
  REQUIRE(pg.size() == pc.size());
  for (size_t i = 0; i < pg.size(); ++i) {
    INFO("parameter " << pc[i].first);
    REQUIRE(pg[i].second.grad().defined() == pc[i].second.grad().defined());
    if (pc[i].second.grad().defined()) {
      // plus an absolute floor of 2e-6 RMS: a gradient that is a small difference of O(1)
      // terms (the discriminator's output bias: sum of p - label over the batch) keeps
      // only their absolute rounding
      const auto gg = vals(pg[i].second.grad()), gc = vals(pc[i].second.grad());
      double err = 0, ref = 0;
      for (size_t k = 0; k < gc.size(); ++k) {
        err += (double(gg[k]) - gc[k]) * (double(gg[k]) - gc[k]);
        ref += double(gc[k]) * gc[k];
      }
      INFO("gradient: |cuda - cpu| " << std::sqrt(err) << ", |cpu| " << std::sqrt(ref));
      const double rel = pc[i].first.rfind("disc.", 0) == 0 ? 1e-3 : 1e-4;
      CHECK(std::sqrt(err) <= rel * std::sqrt(ref) + 2e-6 * std::sqrt(double(gc.size())));
    }
    const auto vg = vals(pg[i].second), vc = vals(pc[i].second);
    CHECK(rel_l2(vg, vc) <= 1e-3);
    const double bound = 2.5 * c.config().lr * steps;
    double worst = 0;
    for (size_t k = 0; k < vg.size(); ++k) worst = std::max(worst, std::fabs(double(vg[k]) - double(vc[k])));
    CHECK(worst <= bound);
  }
}

// ---- batches away from activation kinks ----
// CUDA and CPU differ by float rounding (~1e-6 on the normalised activations). An input of
// a ReLU / LeakyReLU within that distance of 0 can land on opposite sides of the kink in
// the two backends; the one element's derivative (1 vs 0, or 1 vs 0.2) then shifts every
// gradient below it by ~0.1-1% (seen in the CPU emulation of the backend, and real FMA
// contraction on a GPU makes it likelier). That is arithmetic, not a bug, so the model
// comparisons use batches whose every activation input, in both forward passes of the
// step, lies at least kKinkMargin from 0 (checked on the CPU model, layer by layer; about
// one random batch in ten qualifies at this margin, ~10x the backends' typical difference
// near 0).
constexpr double kKinkMargin = 1e-5;

template <class B>
disco::nn::Sequential<B>& seq_of(disco::nn::Module<B>& m) {
  return *dynamic_cast<disco::model_detail::Wrapped<B>&>(m).seq;
}

// Runs the Sequential unfused; returns min |x| over the inputs of its ReLU / LeakyReLU layers.
double act_margin(disco::nn::Sequential<CPU>& s, TC h, TC* out = nullptr) {
  double m = INFINITY;
  for (size_t i = 0; i < s.size(); ++i) {
    auto* act = dynamic_cast<disco::nn::Activation<CPU>*>(s[i].get());
    if (act && (act->kind == UnaryKind::Relu || act->kind == UnaryKind::LeakyRelu))
      for (float v : h.to_vector<float>()) m = std::min(m, double(std::fabs(v)));
    h = s[i]->forward(h);
  }
  if (out) *out = h;
  return m;
}

// The autoencoder step's forward passes (E1 a, E2 a, E1 b, both decodings, D on both codes).
double ae_margin(disco::ContentDisentangler<CPU>& m, const TC& a, const TC& b) {
  disco::NoGradGuard ng;
  TC ca, sa, cb;
  double r = act_margin(seq_of(m.e1()), a, &ca);
  r = std::min(r, act_margin(seq_of(m.e2()), a, &sa));
  r = std::min(r, act_margin(seq_of(m.e1()), b, &cb));
  r = std::min(r, act_margin(seq_of(m.decoder()), disco::concat<CPU>({ca, sa}, 1)));
  r = std::min(r, act_margin(seq_of(m.decoder()), disco::concat<CPU>({cb, TC::zeros(sa.shape())}, 1)));
  r = std::min(r, act_margin(seq_of(m.disc()), ca.flatten(1)));
  return std::min(r, act_margin(seq_of(m.disc()), cb.flatten(1)));
}

std::string temp_path(const std::string& stem);

// A batch (a, b) for the next train_step of `m` (left unchanged) with every activation input
// of the step's forward passes at least kKinkMargin from 0: the autoencoder step's on `m`,
// the discriminator step's (E1 after the autoencoder update, D before its update) on a trial
// copy that takes the step.
std::pair<std::vector<float>, std::vector<float>> kink_free_batch(disco::ContentDisentangler<CPU>& m, int64_t n) {
  const int64_t R = m.config().resolution;
  const Shape shp = {n, 3, R, R};
  const std::string path = temp_path("disco_kink_trial");
  disco::save_checkpoint(m, path);
  for (int cand = 0; cand < 1000; ++cand) {
    auto a = randu(size_t(n * 3 * R * R)), b = randu(size_t(n * 3 * R * R));
    const TC ta = TC::from_vector(a, shp), tb = TC::from_vector(b, shp);
    if (ae_margin(m, ta, tb) < kKinkMargin) continue;
    disco::ContentDisentangler<CPU> trial(m.config());
    disco::load_checkpoint(trial, path);
    std::vector<std::vector<float>> disc_before;
    for (auto& p : trial.disc_parameters()) disc_before.push_back(p.to_vector<float>());
    trial.train_step(ta, tb);
    auto dp = trial.disc_parameters();
    for (size_t i = 0; i < dp.size(); ++i) dp[i].detach().copy_(TC::from_vector(disc_before[i], dp[i].shape()));
    disco::NoGradGuard ng;
    TC ca, cb;
    double r = act_margin(seq_of(trial.e1()), ta, &ca);
    r = std::min(r, act_margin(seq_of(trial.e1()), tb, &cb));
    r = std::min(r, act_margin(seq_of(trial.disc()), ca.flatten(1)));
    r = std::min(r, act_margin(seq_of(trial.disc()), cb.flatten(1)));
    if (r < kKinkMargin) continue;
    std::filesystem::remove(path);
    INFO("kink-free batch after " << cand << " rejected candidates");
    return {a, b};
  }
  std::filesystem::remove(path);
  FAIL("no batch among 1000 keeps every activation input " << kKinkMargin << " away from 0");
  return {};
}

std::string temp_path(const std::string& stem) {
  return (std::filesystem::temp_directory_path() /
          (stem + "_" + std::to_string(::getpid()) + ".safetensors"))
      .string();
}

}  // namespace

TEST_CASE("ContentDisentangler<CUDA> trains like ContentDisentangler<CPU>", "[cuda][model]") {
  Fp32Scope fp32;
  const disco::ModelConfig cfg = small_config();
  disco::ContentDisentangler<CPU> mc(cfg);
  disco::ModelConfig other = cfg;
  other.seed = 99;  // different init: the weights must come from the copy
  disco::ContentDisentangler<CUDA> mg(other);
  copy_parameters(mc, mg);

  const int64_t n = 2, R = cfg.resolution;
  const Shape shp = {n, 3, R, R};

  for (int step = 0; step < 2; ++step) {
    INFO("step " << step);
    if (step > 0) {
      // every step from the same state: after one step the two models differ by more than
      // rounding (Adam's first steps move elements with tiny gradients by ~lr * sign(g),
      // and those signs are rounding noise), so CUDA restarts from the CPU's checkpoint
      const std::string path = temp_path("disco_cuda_sync");
      disco::save_checkpoint(mc, path);
      disco::load_checkpoint(mg, path);
      std::filesystem::remove(path);
    }
    const auto [a, b] = kink_free_batch(mc, n);
    disco::StepLosses lc = mc.train_step(TC::from_vector(a, shp), TC::from_vector(b, shp));
    disco::StepLosses lg = mg.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
    check_losses(lg, lc);
    check_parameters(mg, mc, 1);  // one step from the same state
  }
  CHECK(mg.step() == 2);
  CHECK(mg.ae_optimizer().step_count() == mc.ae_optimizer().step_count());

  const auto base = randu(size_t(n * 3 * R * R)), guide = randu(size_t(n * 3 * R * R));
  SECTION("transfer, remove and reconstruct") {
    TG tg = mg.transfer(TG::from_vector(base, shp), TG::from_vector(guide, shp));
    TC tc = mc.transfer(TC::from_vector(base, shp), TC::from_vector(guide, shp));
    CHECK(tg.shape() == shp);
    CHECK(rel_l2(vals(tg), vals(tc)) <= 1e-4);
    CHECK(rel_l2(vals(mg.remove(TG::from_vector(guide, shp))), vals(mc.remove(TC::from_vector(guide, shp)))) <= 1e-4);
    CHECK(rel_l2(vals(mg.reconstruct(TG::from_vector(base, shp))), vals(mc.reconstruct(TC::from_vector(base, shp)))) <=
          1e-4);
  }
  SECTION("weights saved on CUDA load on the CPU (and back)") {
    const std::string path = temp_path("disco_cuda_weights");
    disco::save_weights(mg, path);
    disco::ContentDisentangler<CPU> loaded(other);
    disco::load_weights(loaded, path);
    auto pg = mg.named_parameters();
    auto pl = loaded.named_parameters();
    for (size_t i = 0; i < pg.size(); ++i) {
      INFO(pg[i].first);
      CHECK(vals(pl[i].second) == vals(pg[i].second));  // bit for bit
    }
    // the same weights through a host copy give bit-identical CPU outputs
    disco::ContentDisentangler<CPU> copied(other);
    copy_parameters(mg, copied);
    TC ol = loaded.transfer(TC::from_vector(base, shp), TC::from_vector(guide, shp));
    TC oc = copied.transfer(TC::from_vector(base, shp), TC::from_vector(guide, shp));
    CHECK(vals(ol) == vals(oc));
    TG og = mg.transfer(TG::from_vector(base, shp), TG::from_vector(guide, shp));
    CHECK(rel_l2(vals(og), vals(ol)) <= 1e-5);
    // and back: CPU file into a fresh CUDA model
    const std::string path2 = temp_path("disco_cpu_weights");
    disco::save_weights(loaded, path2);
    disco::ContentDisentangler<CUDA> back(cfg);
    disco::load_weights(back, path2);
    CHECK(vals(back.remove(TG::from_vector(guide, shp))) == vals(mg.remove(TG::from_vector(guide, shp))));
    std::filesystem::remove(path);
    std::filesystem::remove(path2);
  }
  SECTION("a checkpoint saved on CUDA resumes on the CPU") {
    const std::string path = temp_path("disco_cuda_ckpt");
    disco::save_checkpoint(mg, path);
    disco::ContentDisentangler<CPU> resumed(cfg);
    disco::load_checkpoint(resumed, path);
    std::filesystem::remove(path);
    CHECK(resumed.step() == mg.step());
    CHECK(resumed.ae_optimizer().step_count() == mg.ae_optimizer().step_count());
    const auto& pg = mg.ae_parameters();
    for (size_t i = 0; i < pg.size(); ++i) {
      // no state for the frozen conv biases an InstanceNorm cancels
      REQUIRE(resumed.ae_optimizer().exp_avg(i).defined() == mg.ae_optimizer().exp_avg(i).defined());
      if (!mg.ae_optimizer().exp_avg(i).defined()) continue;
      CHECK(vals(resumed.ae_optimizer().exp_avg(i)) == vals(mg.ae_optimizer().exp_avg(i)));
      CHECK(vals(resumed.ae_optimizer().exp_avg_sq(i)) == vals(mg.ae_optimizer().exp_avg_sq(i)));
    }
    const auto [a, b] = kink_free_batch(resumed, n);
    disco::StepLosses lc = resumed.train_step(TC::from_vector(a, shp), TC::from_vector(b, shp));
    disco::StepLosses lg = mg.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
    check_losses(lg, lc);
  }
  SECTION("TF32 / BF16 / cuDNN settings stay close and finite") {
    std::vector<dc::ConvSettings> modes = {{dc::ConvAlgo::Custom, dc::MathMode::TF32},
                                           {dc::ConvAlgo::Custom, dc::MathMode::BF16}};
    if (dc::cudnn_available()) {
      modes.push_back({dc::ConvAlgo::Cudnn, dc::MathMode::FP32});
      modes.push_back({dc::ConvAlgo::Cudnn, dc::MathMode::TF32});
    }
    modes.push_back({dc::ConvAlgo::Auto, dc::MathMode::TF32});  // per layer, either of the two
    TC want = mc.transfer(TC::from_vector(base, shp), TC::from_vector(guide, shp));
    for (const auto& m : modes) {
      INFO(dc::to_string(m.algo) << " " << dc::to_string(m.mode));
      dc::conv_settings() = m;
      TG got = mg.transfer(TG::from_vector(base, shp), TG::from_vector(guide, shp));
      const double tol = m.mode == dc::MathMode::FP32 ? 1e-4 : (m.mode == dc::MathMode::TF32 ? 1e-2 : 5e-2);
      CHECK(rel_l2(vals(got), vals(want)) <= tol);
    }
    dc::conv_settings() = dc::ConvSettings{};
  }
}

// One step of `eager` and of the graphed copy `g` (of `graphed`, in the same state) on a fresh
// random batch of n pairs: the same losses and parameters (1e-6). Returns {eager, graphed}.
std::pair<disco::StepLosses, disco::StepLosses> step_both(disco::ContentDisentangler<CUDA>& eager,
                                                          disco::ContentDisentangler<CUDA>& graphed,
                                                          disco::GraphedTrainStep<>& g, int64_t n) {
  const int64_t R = eager.config().resolution;
  const Shape shp = {n, 3, R, R};
  const auto a = randu(size_t(n * 3 * R * R)), b = randu(size_t(n * 3 * R * R));
  const disco::StepLosses le = eager.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
  const disco::StepLosses lg = g.step(TG::from_vector(a, shp), TG::from_vector(b, shp)).get();
  check_rel(lg.ae, le.ae, 1e-6, "ae");
  check_rel(lg.disc, le.disc, 1e-6, "disc");
  check_rel(lg.ae_grad_norm, le.ae_grad_norm, 1e-6, "ae_grad_norm");
  auto pe = eager.named_parameters(), pg = graphed.named_parameters();
  for (size_t i = 0; i < pe.size(); ++i) {
    INFO(pe[i].first);
    CHECK(rel_l2(vals(pg[i].second), vals(pe[i].second)) <= 1e-6);
  }
  return {le, lg};
}

// Every convolution of a TF32 / BF16 training step, untuned, on the channels-last kernels (and
// on Hopper's wgmma ones where they exist) via set_conv_prefer -- with the joined batch, the
// backward's shared dy packs and the accumulating data gradients of the model -- against the
// same step on the heuristic plans (NCHW kernels) from the same state. The small test model is
// badly conditioned in reduced precision (InstanceNorm over the 2 x 2 maps of its bottleneck):
// the heuristic TF32 / BF16 step's gradients differ from the exact FP32 step's by 2-9% / 14-25%
// relative L2 (seen over seeds), and two plans of the same kernels -- accumulation order alone
// -- by up to 7% in BF16; the family's step differs from the heuristic's by 1-9% / 0.3-12%.
// So each gradient must lie within twice the heuristic step's distance from the FP32 CPU
// step's, plus 5% / 10%: this catches the gross errors of a wrong layout, a stale shared pack
// or a lost accumulation (O(1)), not subtle ones -- the [plans] tests check each kernel
// against the double reference for those. The losses (forward) agree far more closely.
TEST_CASE("a TF32 / BF16 step on the channels-last and wgmma kernels matches the heuristic plans' step",
          "[cuda][model][plans]") {
  const bool tuning = dc::conv_autotune();
  const std::string prefer = dc::conv_prefer();
  const dc::ConvSettings settings = dc::conv_settings();
  dc::set_conv_autotune(false);
  const disco::ModelConfig cfg = small_config();
  disco::ContentDisentangler<CPU> mc(cfg);
  const int64_t n = 2, R = cfg.resolution;
  const Shape shp = {n, 3, R, R};
  const auto [a, b] = kink_free_batch(mc, n);
  disco::ContentDisentangler<CPU> exact(cfg);  // the FP32 step on the CPU
  copy_parameters(mc, exact);
  const disco::StepLosses le = exact.train_step(TC::from_vector(a, shp), TC::from_vector(b, shp));
  const auto pe = exact.named_parameters();
  std::vector<std::string> families = {"nhwc"};
  if (dc::wgmma_available()) families.push_back("wgmma");
  const auto step = [&](const std::string& family, disco::StepLosses& losses) {
    dc::set_conv_prefer(family);
    dc::clear_conv_plans();
    auto m = std::make_unique<disco::ContentDisentangler<CUDA>>(cfg);
    copy_parameters(mc, *m);
    losses = m->train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
    return m;
  };
  const auto dist = [](const std::vector<float>& x, const std::vector<float>& y) {
    double d = 0;
    for (size_t k = 0; k < x.size(); ++k) d += (double(x[k]) - y[k]) * (double(x[k]) - y[k]);
    return std::sqrt(d);
  };
  for (dc::MathMode mode : {dc::MathMode::TF32, dc::MathMode::BF16}) {
    const bool bf16 = mode == dc::MathMode::BF16;
    dc::conv_settings() = dc::ConvSettings{dc::ConvAlgo::Custom, mode};
    disco::StepLosses lr;
    const auto ref = step("", lr);
    const auto pr = ref->named_parameters();
    for (const std::string& family : families) {
      INFO(dc::to_string(mode) << ", every layer on " << family << " where offered");
      disco::StepLosses l;
      const auto m = step(family, l);
      int dirs[3] = {0, 0, 0};  // untuned launches of the family, by direction
      for (const auto& u : dc::conv_plans_in_use())
        if (u.family == family && u.mode == mode) ++dirs[int(u.dir)];
      INFO("launches: fprop " << dirs[0] << ", dgrad " << dirs[1] << ", wgrad " << dirs[2]);
      const bool wide = family == "nhwc";  // wgmma: GEMMs of more than 32 rows only
      CHECK(dirs[int(dc::ConvDir::Fprop)] >= (wide ? 8 : 5));
      CHECK(dirs[int(dc::ConvDir::Dgrad)] >= (wide ? 8 : 4));
      CHECK(dirs[int(dc::ConvDir::Wgrad)] >= (wide ? 8 : bf16 ? 1 : 0));  // (no TF32 wgmma wgrad)
      // the losses (forward): as close as the math mode allows, or as the heuristic step is to
      // the FP32 one; the gradient norm carries the gradients' conditioning (below)
      const auto loss = [&](double got, double want, double fp32, double tol, const char* what) {
        INFO(what << ": " << family << " " << got << ", heuristic " << want << ", FP32 " << fp32);
        CHECK(std::fabs(got - want) <= std::fabs(want - fp32) + tol * std::fabs(fp32));
      };
      const double tol = bf16 ? 1e-2 : 2e-3;
      loss(l.recon_a, lr.recon_a, le.recon_a, tol, "recon_a");
      loss(l.recon_b, lr.recon_b, le.recon_b, tol, "recon_b");
      loss(l.adv, lr.adv, le.adv, tol, "adv");
      loss(l.disc, lr.disc, le.disc, tol, "disc");
      loss(l.ae_grad_norm, lr.ae_grad_norm, le.ae_grad_norm, 5 * tol, "ae_grad_norm");
      const auto pg = m->named_parameters();
      double worst = 0;
      std::string worst_name;
      for (size_t i = 0; i < pg.size(); ++i) {
        // (the discriminator's gradients come after the autoencoder's Adam update, whose early
        // steps move rounding-noise elements by up to lr either way: see check_parameters; and
        // its layers are linear, not convolutions)
        if (!pr[i].second.grad().defined() || pr[i].first.rfind("disc.", 0) == 0) continue;
        const auto gg = vals(pg[i].second.grad()), gr = vals(pr[i].second.grad()), ge = vals(pe[i].second.grad());
        const double norm = dist(ge, std::vector<float>(ge.size(), 0.f));
        const double family_vs_ref = dist(gg, gr) / norm, ref_vs_exact = dist(gr, ge) / norm;
        INFO("gradient of " << pr[i].first << ": " << family << " vs heuristic " << family_vs_ref
                            << ", heuristic vs FP32 " << ref_vs_exact);
        CHECK(family_vs_ref <= 2 * ref_vs_exact + (bf16 ? 0.1 : 0.05));
        if (family_vs_ref > worst) worst = family_vs_ref, worst_name = pr[i].first;
      }
      WARN(dc::to_string(mode) << " on " << family << ": worst gradient difference from the heuristic plans' "
                               << worst << " (" << worst_name << ")");
    }
  }
  // The same family in a captured CUDA graph (its plans decided during the capture) equals it
  // eagerly, step for step (BF16 on the channels-last kernels: pack sharing, graph pool).
  {
    INFO("bf16 on nhwc: graphed vs eager");
    dc::conv_settings() = dc::ConvSettings{dc::ConvAlgo::Custom, dc::MathMode::BF16};
    dc::set_conv_prefer("nhwc");
    disco::ContentDisentangler<CUDA> eager(cfg), graphed(cfg);
    copy_parameters(mc, eager);
    copy_parameters(mc, graphed);
    disco::GraphedTrainStep<> g(graphed, 1);
    for (int s = 0; s < 3; ++s) {
      INFO("step " << s);
      step_both(eager, graphed, g, n);
    }
    CHECK(g.replays() == 2);
    int nhwc = 0;
    for (const auto& u : dc::conv_plans_in_use()) nhwc += u.family == "nhwc";
    CHECK(nhwc >= 24);
  }
  dc::conv_settings() = settings;
  dc::set_conv_prefer(prefer);
  dc::set_conv_autotune(tuning);
  dc::clear_conv_plans();
}

TEST_CASE("GraphedTrainStep: the training step as one CUDA graph equals eager steps", "[cuda][model][graph]") {
  Fp32Scope fp32;
  disco::ModelConfig cfg = small_config();
  cfg.disc_weight = 0.25;
  cfg.clip = 0.05;  // the clip coefficient is active (read on the device)
  disco::ContentDisentangler<CUDA> eager(cfg), graphed(cfg);  // same seed: same weights
  const int64_t n = 2, R = cfg.resolution;
  const Shape shp = {n, 3, R, R};
  size_t reserved_after_capture = 0;
  {
    disco::GraphedTrainStep<> g(graphed, 1);
    for (int step = 0; step < 6; ++step) {
      INFO("step " << step);
      const disco::StepLosses lg = step_both(eager, graphed, g, n).second;
      CHECK(g.fallback_reason() == "");
      CHECK(lg.ae_grad_norm > cfg.clip);
      if (step == 3) reserved_after_capture = dc::memory_stats().bytes_reserved;
    }
    CHECK(g.graph_ready());
    CHECK(g.graph_nodes() > 50);
    CHECK(g.eager_steps() == 1);
    CHECK(g.replays() == 5);
    CHECK(dc::memory_stats().bytes_reserved == reserved_after_capture);  // replays allocate nothing
    CHECK(graphed.step() == 6);
    CHECK(graphed.ae_optimizer().step_count() == 6);
    CHECK(graphed.disc_optimizer().step_count() == 6);

    // another batch size runs eagerly; the graph stays for the original shape
    const auto a3 = randu(size_t(3 * 3 * R * R)), b3 = randu(size_t(3 * 3 * R * R));
    const Shape shp3 = {3, 3, R, R};
    eager.train_step(TG::from_vector(a3, shp3), TG::from_vector(b3, shp3));
    g.step(TG::from_vector(a3, shp3), TG::from_vector(b3, shp3)).get();
    CHECK(g.eager_steps() == 2);
    // a checkpoint to go back to (eager and graphed are in the same state here)
    const std::string ck0 = temp_path("disco_graph_back");
    disco::save_checkpoint(eager, ck0);
    // invalidate: one eager step, then a new capture
    g.invalidate();
    for (int step = 0; step < 3; ++step) {
      const auto a = randu(size_t(n * 3 * R * R)), b = randu(size_t(n * 3 * R * R));
      const disco::StepLosses le = eager.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
      const disco::StepLosses lg = g.step(TG::from_vector(a, shp), TG::from_vector(b, shp)).get();
      check_rel(lg.ae, le.ae, 1e-6, "ae after invalidate");
    }
    CHECK(g.graph_ready());
    CHECK(g.eager_steps() == 3);
    // loading a checkpoint replaces Adam's moment tensors: the graph notices before its next
    // replay, re-captures (one eager step first), and both models go on from the loaded state
    disco::load_checkpoint(eager, ck0);
    disco::load_checkpoint(graphed, ck0);
    std::filesystem::remove(ck0);
    for (int step = 0; step < 3; ++step) {
      const auto a = randu(size_t(n * 3 * R * R)), b = randu(size_t(n * 3 * R * R));
      const disco::StepLosses le = eager.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
      const disco::StepLosses lg = g.step(TG::from_vector(a, shp), TG::from_vector(b, shp)).get();
      check_rel(lg.ae, le.ae, 1e-6, "ae after loading a checkpoint");
      auto pe = eager.named_parameters(), pg = graphed.named_parameters();
      for (size_t i = 0; i < pe.size(); ++i) CHECK(rel_l2(vals(pg[i].second), vals(pe[i].second)) <= 1e-6);
    }
    CHECK(g.eager_steps() == 4);
    CHECK(g.graph_ready());
  }
  // a checkpoint of the graphed model carries the right step counts and state
  const std::string path = temp_path("disco_graph_ckpt");
  disco::save_checkpoint(graphed, path);
  disco::ContentDisentangler<CUDA> resumed(cfg);
  disco::load_checkpoint(resumed, path);
  std::filesystem::remove(path);
  CHECK(resumed.step() == eager.step());
  CHECK(resumed.ae_optimizer().step_count() == eager.ae_optimizer().step_count());
  const auto a = randu(size_t(n * 3 * R * R)), b = randu(size_t(n * 3 * R * R));
  const disco::StepLosses le = eager.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
  const disco::StepLosses lr = resumed.train_step(TG::from_vector(a, shp), TG::from_vector(b, shp));
  check_rel(lr.ae, le.ae, 1e-6, "ae after resume");
  auto pe = eager.named_parameters(), pr = resumed.named_parameters();
  for (size_t i = 0; i < pe.size(); ++i) CHECK(rel_l2(vals(pr[i].second), vals(pe[i].second)) <= 1e-6);
}

TEST_CASE("GraphedTrainStep: unequal domain batches in one joined input; bad inputs get the model's error",
          "[cuda][model][graph]") {
  Fp32Scope fp32;
  disco::ModelConfig cfg = small_config();
  cfg.disc_weight = 0.25;
  disco::ContentDisentangler<CUDA> eager(cfg), graphed(cfg);
  const int64_t R = cfg.resolution;
  {
    disco::GraphedTrainStep<> g(graphed, 1);
    // a first call that cannot be joined runs eagerly and fails with the model's message
    CHECK_THROWS_WITH(g.step(TG::zeros({2, 3, R, R}), TG::zeros({1, 3, R, R + 1})), Catch::Contains("train_step"));
    CHECK(!g.graph_ready());
    const Shape sa = {2, 3, R, R}, sb = {1, 3, R, R};
    for (int step = 0; step < 4; ++step) {
      INFO("step " << step);
      const auto a = randu(size_t(2 * 3 * R * R)), b = randu(size_t(3 * R * R));
      const disco::StepLosses le = eager.train_step(TG::from_vector(a, sa), TG::from_vector(b, sb));
      const disco::StepLosses lg = g.step(TG::from_vector(a, sa), TG::from_vector(b, sb)).get();
      check_rel(lg.recon_a, le.recon_a, 1e-6, "recon_a");
      check_rel(lg.recon_b, le.recon_b, 1e-6, "recon_b");
      check_rel(lg.disc, le.disc, 1e-6, "disc");
    }
    CHECK(g.graph_ready());
    CHECK(g.replays() == 3);
  }
}

TEST_CASE("GraphedTrainStep: hooks force eager steps; TF32 and BF16 graphs train", "[cuda][model][graph]") {
  disco::ModelConfig cfg = small_config();
  disco::ContentDisentangler<CUDA> m(cfg);
  const int64_t n = 2, R = cfg.resolution;
  const Shape shp = {n, 3, R, R};
  {
    disco::GraphedTrainStep<> g(m, 1);
    int calls = 0;
    m.on_ae_grads = [&] { ++calls; };
    for (int i = 0; i < 3; ++i) g.step(TG::from_vector(randu(size_t(n * 3 * R * R)), shp),
                                      TG::from_vector(randu(size_t(n * 3 * R * R)), shp));
    CHECK(calls == 3);
    CHECK(!g.graph_ready());
    m.on_ae_grads = nullptr;
  }
  for (auto mode : {dc::MathMode::TF32, dc::MathMode::BF16}) {
    INFO(dc::to_string(mode));
    dc::ConvSettings saved = dc::conv_settings();
    dc::conv_settings() = dc::ConvSettings{dc::ConvAlgo::Custom, mode};
    disco::GraphedTrainStep<> g(m, 2);
    const auto a = randu(size_t(n * 3 * R * R)), b = randu(size_t(n * 3 * R * R));
    double first = 0, last = 0;
    for (int i = 0; i < 30; ++i) {
      const disco::StepLosses l = g.step(TG::from_vector(a, shp), TG::from_vector(b, shp)).get();
      REQUIRE(std::isfinite(l.ae));
      if (i == 0) first = l.recon_a + l.recon_b;
      last = l.recon_a + l.recon_b;
    }
    CHECK(g.graph_ready());
    CHECK(last < first);  // one fixed batch: the reconstruction improves
    dc::conv_settings() = saved;
  }
}
