// Tests of disco/model/{config,content_disentangler}.hpp: shapes, parameter names and
// PyTorch layouts at 64 / 128 / 256 px, the apply functions (transfer, remove,
// interpolate), that a tiny model can overfit one batch, and that a short CPU training
// run on the procedural faces improves transfer PSNR against the ground truth.
#include <catch2/catch.hpp>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <set>
#include <string>
#include <vector>

#include "disco/data/data.hpp"
#include "disco/disco.hpp"
#include "disco/model/content_disentangler.hpp"

namespace {

using disco::CPU;
using disco::ModelConfig;
using Catch::Contains;
using Tensor = disco::Tensor<CPU>;
using Model = disco::ContentDisentangler<CPU>;
using Shape = std::vector<int64_t>;

// The small model of these tests (the brief's CLI config): 64 px, base 8, code 32, sep 4.
ModelConfig md_tiny(int resolution = 64) {
  ModelConfig c;
  c.resolution = resolution;
  c.base_channels = 8;
  c.code_channels = 32;
  c.sep = 4;
  c.disc_hidden = 32;
  return c;
}

Tensor md_images(int64_t n, int res, uint64_t seed) {
  disco::Generator g(seed);
  return Tensor::rand({n, 3, res, res}, g, disco::DType::F32, -1.0, 1.0);
}

double md_max_abs_diff(const Tensor& a, const Tensor& b) {
  REQUIRE(a.shape() == b.shape());
  const auto x = a.to_vector<double>(), y = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < x.size(); ++i) m = std::max(m, std::fabs(x[i] - y[i]));
  return m;
}

// name -> shape of every parameter, in order.
std::vector<std::pair<std::string, Shape>> md_param_shapes(const Model& m) {
  std::vector<std::pair<std::string, Shape>> out;
  for (auto& [n, p] : m.named_parameters()) out.emplace_back(n, p.shape());
  return out;
}

// The parameter list the official code has for these channel lists: conv (or
// conv-transpose) modules at 0, 3, 6, ... of each Sequential, followed by norm and
// activation; the decoder's last conv-transpose is followed by Tanh only; the
// discriminator is Linear, LeakyReLU, Linear, Sigmoid.
std::vector<std::pair<std::string, Shape>> md_expected_shapes(const std::vector<int>& e1, const std::vector<int>& e2,
                                                              const std::vector<int>& dec_in, int64_t common_dim,
                                                              int disc_hidden) {
  std::vector<std::pair<std::string, Shape>> out;
  auto encoder = [&](const std::string& prefix, const std::vector<int>& chans) {
    int in = 3;
    for (size_t i = 0; i < chans.size(); ++i) {
      const std::string n = prefix + ".full." + std::to_string(3 * i);
      out.emplace_back(n + ".weight", Shape{chans[i], in, 4, 4});  // Conv2d: [out, in, kh, kw]
      out.emplace_back(n + ".bias", Shape{chans[i]});
      in = chans[i];
    }
  };
  encoder("e1", e1);
  encoder("e2", e2);
  for (size_t i = 0; i < dec_in.size(); ++i) {
    const int out_ch = i + 1 < dec_in.size() ? dec_in[i + 1] : 3;
    const std::string n = "decoder.main." + std::to_string(3 * i);
    out.emplace_back(n + ".weight", Shape{dec_in[i], out_ch, 4, 4});  // ConvTranspose2d: [in, out, kh, kw]
    out.emplace_back(n + ".bias", Shape{out_ch});
  }
  out.emplace_back("disc.classify.0.weight", Shape{disc_hidden, common_dim});  // Linear: [out, in]
  out.emplace_back("disc.classify.0.bias", Shape{disc_hidden});
  out.emplace_back("disc.classify.2.weight", Shape{1, disc_hidden});
  out.emplace_back("disc.classify.2.bias", Shape{1});
  return out;
}

// encode / decode / transfer / remove / reconstruct shapes for a batch of n.
void md_check_apply_shapes(Model& m, int64_t n) {
  const ModelConfig& c = m.config();
  const int64_t s = c.bottleneck(), R = c.resolution;
  Tensor a = md_images(n, c.resolution, 11), b = md_images(n, c.resolution, 12);
  Tensor ec = m.encode_common(a), es = m.encode_separate(a);
  CHECK(ec.shape() == Shape{n, int64_t(c.code_channels - c.sep) * s * s});
  CHECK(es.shape() == Shape{n, int64_t(c.sep) * s * s});
  Tensor d = m.decode(ec, es);
  CHECK(d.shape() == Shape{n, 3, R, R});
  CHECK(m.transfer(b, a).shape() == Shape{n, 3, R, R});
  CHECK(m.remove(a).shape() == Shape{n, 3, R, R});
  CHECK(m.reconstruct(a).shape() == Shape{n, 3, R, R});
  CHECK(m.discriminate(ec).shape() == Shape{n});
  CHECK(m.zero_separate(n).shape() == Shape{n, int64_t(c.sep) * s * s});
  // the decoder ends in tanh, the discriminator in a sigmoid
  double dmax = 0, pmin = 1, pmax = 0;
  for (double v : d.to_vector<double>()) dmax = std::max(dmax, std::fabs(v));
  for (double v : m.discriminate(ec).to_vector<double>()) pmin = std::min(pmin, v), pmax = std::max(pmax, v);
  CHECK(dmax <= 1.0);
  CHECK(pmin >= 0.0);
  CHECK(pmax <= 1.0);
}

double md_psnr_pm1(const std::vector<float>& out, const std::vector<float>& ref) {
  // both in [-1, 1]; PSNR over [0, 1] values as `disco eval` reports it
  REQUIRE(out.size() == ref.size());
  double se = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const double d = (double(out[i]) - double(ref[i])) / 2.0;
    se += d * d;
  }
  return 10.0 * std::log10(1.0 / std::max(se / double(out.size()), 1e-12));
}

}  // namespace

TEST_CASE("model config: layer counts, bottleneck and channel lists", "[model]") {
  ModelConfig c;  // the official defaults
  CHECK(c.resolution == 128);
  CHECK(c.num_layers() == 6);
  CHECK(c.bottleneck() == 2);
  CHECK(c.e1_channels() == std::vector<int>{32, 64, 128, 256, 487, 487});
  CHECK(c.e2_channels() == std::vector<int>{32, 64, 128, 128, 128, 25});
  CHECK(c.decoder_channels() == std::vector<int>{512, 512, 256, 128, 64, 32});
  CHECK(c.common_dim() == 487 * 4);
  CHECK(c.separate_dim() == 25 * 4);

  ModelConfig c64 = c;
  c64.resolution = 64;
  CHECK(c64.num_layers() == 5);  // five stride-2 layers so the bottleneck stays 2x2
  CHECK(c64.bottleneck() == 2);
  CHECK(c64.e1_channels() == std::vector<int>{32, 64, 128, 256, 487});
  CHECK(c64.e2_channels() == std::vector<int>{32, 64, 128, 128, 25});
  CHECK(c64.decoder_channels() == std::vector<int>{512, 256, 128, 64, 32});

  ModelConfig c256 = c;
  c256.resolution = 256;
  CHECK(c256.num_layers() == 6);
  CHECK(c256.bottleneck() == 4);
  CHECK(c256.common_dim() == 487 * 16);

  // JSON round trip keeps every field
  ModelConfig t = md_tiny();
  t.recon_loss = disco::LossKind::L1;
  t.disc_weight = 0.25;
  t.lr = 1e-3;
  t.seed = 42;
  ModelConfig u = ModelConfig::from_json(t.to_json());
  CHECK(u.to_json() == t.to_json());
  CHECK(u.same_architecture(t));
  u.sep = 5;
  CHECK_FALSE(u.same_architecture(t));
}

TEST_CASE("model config: invalid values are rejected naming the field", "[model]") {
  ModelConfig c = md_tiny();
  c.resolution = 100;
  CHECK_THROWS_WITH(c.validate(), Contains("resolution 100") && Contains("64, 128 or 256"));
  CHECK_THROWS_AS(Model(c), disco::Error);
  c = md_tiny();
  c.sep = 32;
  CHECK_THROWS_WITH(c.validate(), Contains("sep 32"));
  c.sep = 0;
  CHECK_THROWS_WITH(c.validate(), Contains("sep 0"));
  c = md_tiny();
  c.base_channels = 0;
  CHECK_THROWS_WITH(c.validate(), Contains("base_channels 0"));
  c = md_tiny();
  c.lr = 0;
  CHECK_THROWS_WITH(c.validate(), Contains("lr 0"));
  CHECK_THROWS_WITH(ModelConfig::from_json(nlohmann::json{{"sep", 4}}), Contains("malformed model config"));
  CHECK_THROWS_WITH(ModelConfig::from_json(nlohmann::json{{"resolution", "big"}, {"sep", 4}}),
                    Contains("malformed model config"));
}

TEST_CASE("model at 128 px: the official parameter names, layouts and shapes", "[model]") {
  const ModelConfig c;  // official: sep 25, code 512, base 32, disc 512
  Model m(c);
  const auto got = md_param_shapes(m);
  const auto want = md_expected_shapes({32, 64, 128, 256, 487, 487}, {32, 64, 128, 128, 128, 25},
                                       {512, 512, 256, 128, 64, 32}, 487 * 2 * 2, 512);
  REQUIRE(got.size() == want.size());
  REQUIRE(got.size() == 40);
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(i);
    CHECK(got[i].first == want[i].first);
    CHECK(disco::shape_str(got[i].second) == disco::shape_str(want[i].second));
  }
  // spot checks of the names the docs use
  std::set<std::string> names;
  for (auto& [n, s] : got) names.insert(n);
  for (const char* n : {"e1.full.0.weight", "e1.full.15.bias", "e2.full.15.weight", "decoder.main.0.weight",
                        "decoder.main.3.bias", "decoder.main.15.weight", "disc.classify.0.weight",
                        "disc.classify.2.weight"})
    CHECK(names.count(n) == 1);
  // E1 / E2 / decoder / disc parameters are split as the official optimisers split them
  CHECK(m.ae_parameters().size() == 36);
  CHECK(m.disc_parameters().size() == 4);
  md_check_apply_shapes(m, 1);
}

TEST_CASE("model at 64 px: five stride-2 layers", "[model]") {
  Model m(md_tiny(64));
  const auto got = md_param_shapes(m);
  const auto want = md_expected_shapes({8, 16, 32, 64, 28}, {8, 16, 32, 32, 4}, {32, 64, 32, 16, 8}, 28 * 2 * 2, 32);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(got[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(disco::shape_str(got[i].second) == disco::shape_str(want[i].second));
  }
  CHECK(got.back().first == "disc.classify.2.bias");
  std::set<std::string> names;
  for (auto& [n, s] : got) names.insert(n);
  CHECK(names.count("e1.full.12.weight") == 1);
  CHECK(names.count("e1.full.15.weight") == 0);
  CHECK(names.count("decoder.main.12.weight") == 1);
  md_check_apply_shapes(m, 3);

  // the official 64 px lists at the default widths
  ModelConfig c64;
  c64.resolution = 64;
  Model big(c64);
  const auto got64 = md_param_shapes(big);
  const auto want64 = md_expected_shapes({32, 64, 128, 256, 487}, {32, 64, 128, 128, 25}, {512, 256, 128, 64, 32},
                                         487 * 4, 512);
  REQUIRE(got64.size() == want64.size());
  for (size_t i = 0; i < got64.size(); ++i) {
    CHECK(got64[i].first == want64[i].first);
    CHECK(got64[i].second == want64[i].second);
  }
}

TEST_CASE("model at 256 px: six stride-2 layers and a 4x4 bottleneck (small widths)", "[model]") {
  Model m(md_tiny(256));
  CHECK(m.config().bottleneck() == 4);
  const auto got = md_param_shapes(m);
  const auto want =
      md_expected_shapes({8, 16, 32, 64, 28, 28}, {8, 16, 32, 32, 32, 4}, {32, 32, 64, 32, 16, 8}, 28 * 4 * 4, 32);
  REQUIRE(got.size() == want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    INFO(got[i].first);
    CHECK(got[i].first == want[i].first);
    CHECK(disco::shape_str(got[i].second) == disco::shape_str(want[i].second));
  }
  md_check_apply_shapes(m, 1);
}

TEST_CASE("model: initialisation follows the seed", "[model]") {
  ModelConfig c = md_tiny();
  Model a(c), b(c);
  c.seed = 1;
  Model d(c);
  const auto pa = a.named_parameters(), pb = b.named_parameters(), pd = d.named_parameters();
  bool all_same = true, any_diff = false;
  for (size_t i = 0; i < pa.size(); ++i) {
    all_same = all_same && md_max_abs_diff(pa[i].second, pb[i].second) == 0.0;
    any_diff = any_diff || md_max_abs_diff(pa[i].second, pd[i].second) > 0.0;
  }
  CHECK(all_same);
  CHECK(any_diff);
  // PyTorch's default init: |w| <= 1/sqrt(fan_in); fan_in of e1.full.0 is 3*4*4
  const double bound = 1.0 / std::sqrt(48.0);
  double wmax = 0;
  for (double v : pa[0].second.to_vector<double>()) wmax = std::max(wmax, std::fabs(v));
  CHECK(wmax <= bound + 1e-7);
  CHECK(wmax > 0.5 * bound);
}

TEST_CASE("model: the discriminator uses PyTorch's Linear layout [out, in]", "[model]") {
  Model m(md_tiny());
  const ModelConfig& c = m.config();
  const int64_t in = c.common_dim(), hid = c.disc_hidden;
  disco::Generator g(3);
  std::vector<float> w1(static_cast<size_t>(hid * in)), b1(static_cast<size_t>(hid)), w2(static_cast<size_t>(hid)),
      x(static_cast<size_t>(2 * in));
  for (auto& v : w1) v = float(g.uniform(-0.2, 0.2));
  for (auto& v : b1) v = float(g.uniform(-0.2, 0.2));
  for (auto& v : w2) v = float(g.uniform(-0.5, 0.5));
  for (auto& v : x) v = float(g.uniform(-1, 1));
  const float b2 = 0.1f;
  for (auto& [n, p] : m.named_parameters()) {
    if (n == "disc.classify.0.weight") p.copy_(Tensor::from_vector(w1, {hid, in}));
    if (n == "disc.classify.0.bias") p.copy_(Tensor::from_vector(b1, {hid}));
    if (n == "disc.classify.2.weight") p.copy_(Tensor::from_vector(w2, {1, hid}));
    if (n == "disc.classify.2.bias") p.copy_(Tensor::from_vector(std::vector<float>{b2}, {1}));
  }
  disco::NoGradGuard ng;
  const auto d = m.discriminate(Tensor::from_vector(x, {2, in})).to_vector<double>();
  for (int r = 0; r < 2; ++r) {
    double z = b2;
    for (int64_t h = 0; h < hid; ++h) {
      double a = b1[size_t(h)];
      for (int64_t i = 0; i < in; ++i) a += double(w1[size_t(h * in + i)]) * x[size_t(r * in + i)];
      z += w2[size_t(h)] * (a > 0 ? a : 0.2 * a);  // LeakyReLU(0.2)
    }
    CHECK(d[size_t(r)] == Approx(1.0 / (1.0 + std::exp(-z))).epsilon(1e-5));
  }
}

TEST_CASE("model: transfer, remove, reconstruct and interpolate agree with encode/decode", "[model]") {
  Model m(md_tiny());
  Tensor base = md_images(2, 64, 21), g0 = md_images(2, 64, 22), g1 = md_images(2, 64, 23);
  disco::NoGradGuard ng;
  Tensor cb = m.encode_common(base), z0 = m.encode_separate(g0), z1 = m.encode_separate(g1);
  const Tensor t0 = m.transfer(base, g0), t1 = m.transfer(base, g1);
  CHECK(md_max_abs_diff(t0, m.decode(cb, z0)) == 0.0);
  CHECK(md_max_abs_diff(m.remove(base), m.decode(cb, m.zero_separate(2))) == 0.0);
  CHECK(md_max_abs_diff(m.reconstruct(base), m.decode(cb, m.encode_separate(base))) == 0.0);
  // t = 0 and t = 1 are the two guides' transfers
  CHECK(md_max_abs_diff(m.interpolate(base, z0, z1, 0.0), t0) <= 1e-6);
  CHECK(md_max_abs_diff(m.interpolate(base, z0, z1, 1.0), t1) <= 1e-6);
  // halfway is neither
  const Tensor mid = m.interpolate(base, z0, z1, 0.5);
  CHECK(md_max_abs_diff(mid, t0) > 0.0);
  CHECK(md_max_abs_diff(mid, t1) > 0.0);
  // the two guides do give different transfers (the separate code is used)
  CHECK(md_max_abs_diff(t0, t1) > 1e-4);
  // per-sample independence: the transfer of one pair does not depend on the rest of the batch
  const Tensor one = m.transfer(base.narrow(0, 1, 1).contiguous(), g0.narrow(0, 1, 1).contiguous());
  CHECK(md_max_abs_diff(one, t0.narrow(0, 1, 1).contiguous()) <= 1e-5);
}

TEST_CASE("model: wrong input shapes are rejected with the expected shape", "[model]") {
  Model m(md_tiny());
  CHECK_THROWS_WITH(m.encode_common(md_images(1, 128, 1)), Contains("[N, 3, 64, 64]") && Contains("encode_common"));
  CHECK_THROWS_WITH(m.transfer(md_images(1, 64, 1), md_images(2, 64, 2)), Contains("same shape"));
  CHECK_THROWS_WITH(m.decode(Tensor::zeros({1, 10}), m.zero_separate(1)), Contains("expected [N, 112]"));
  CHECK_THROWS_WITH(m.decode(Tensor::zeros({2, 112}), m.zero_separate(1)), Contains("expected [2, 16]"));
  CHECK_THROWS_WITH(m.train_step(md_images(1, 64, 1), Tensor::zeros({1, 1, 64, 64})), Contains("batch b"));
  CHECK(m.step() == 0);
}

TEST_CASE("model: one training step follows the official rule", "[model][train]") {
  ModelConfig c = md_tiny();
  c.disc_weight = 0.25;
  Model m(c);
  const Tensor a = md_images(2, 64, 31), b = md_images(2, 64, 32);
  auto grad_max = [](const Tensor& p) {
    const Tensor g = p.grad();
    if (!g.defined()) return 0.0;
    double x = 0;
    for (double v : g.to_vector<double>()) x = std::max(x, std::fabs(v));
    return x;
  };
  auto snapshot = [](const std::vector<Tensor>& ps) {
    std::vector<std::vector<float>> out;
    for (auto& p : ps) out.push_back(p.to_vector<float>());
    return out;
  };
  int ae_calls = 0, disc_calls = 0;
  double disc_grad_in_ae_step = 0, e1_grad = 0, e2_grad = 0, dec_grad = 0, disc_grad = 0;
  std::vector<std::vector<float>> ae_after_ae_step;
  m.on_ae_grads = [&] {
    ++ae_calls;
    for (auto& p : m.disc_parameters()) disc_grad_in_ae_step = std::max(disc_grad_in_ae_step, grad_max(p));
    for (auto& [n, p] : m.named_parameters()) {
      if (n.rfind("e1.", 0) == 0) e1_grad = std::max(e1_grad, grad_max(p));
      if (n.rfind("e2.", 0) == 0) e2_grad = std::max(e2_grad, grad_max(p));
      if (n.rfind("decoder.", 0) == 0) dec_grad = std::max(dec_grad, grad_max(p));
    }
  };
  m.on_disc_grads = [&] {
    ++disc_calls;
    for (auto& p : m.disc_parameters()) disc_grad = std::max(disc_grad, grad_max(p));
    ae_after_ae_step = snapshot(m.ae_parameters());  // the disc step must not move these
  };
  const auto disc_before = snapshot(m.disc_parameters());
  const auto ae_before = snapshot(m.ae_parameters());
  const disco::StepLosses l = m.train_step(a, b);
  CHECK(ae_calls == 1);
  CHECK(disc_calls == 1);
  CHECK(disc_grad_in_ae_step == 0.0);  // the autoencoder step leaves the discriminator alone
  CHECK(e1_grad > 0);
  CHECK(e2_grad > 0);
  CHECK(dec_grad > 0);
  CHECK(disc_grad > 0);
  CHECK(snapshot(m.ae_parameters()) == ae_after_ae_step);
  CHECK(snapshot(m.ae_parameters()) != ae_before);
  CHECK(snapshot(m.disc_parameters()) != disc_before);
  // loss.ae = recon_a + recon_b + disc_weight * adv; adv and disc are sums of two BCEs
  CHECK(l.ae == Approx(l.recon_a + l.recon_b + c.disc_weight * l.adv).epsilon(1e-5));
  CHECK(l.adv > 0);
  CHECK(l.disc > 0);
  CHECK(l.ae_grad_norm > 0);
  CHECK(l.disc_grad_norm > 0);
  // an untrained discriminator is near 0.5 on everything: each BCE is near log 2
  CHECK(l.adv == Approx(2 * std::log(2.0)).margin(0.5));
  CHECK(l.disc == Approx(2 * std::log(2.0)).margin(0.5));
  // at disc_weight 0 there is no discriminator step
  c.disc_weight = 0;
  Model z(c);
  const auto zd = snapshot(z.disc_parameters());
  const disco::StepLosses lz = z.train_step(a, b);
  CHECK(snapshot(z.disc_parameters()) == zd);
  CHECK(lz.ae == Approx(lz.recon_a + lz.recon_b).epsilon(1e-6));
  CHECK(z.disc_optimizer().step_count() == 0);
}

TEST_CASE("model: conv biases cancelled by InstanceNorm get no gradient; everything else is unchanged",
          "[model][train]") {
  // Every encoder conv and every decoder conv but the last feeds an InstanceNorm, which
  // removes the bias again: by default those biases are frozen (no gradient, no update).
  // Against the official semantics (train_prenorm_biases) one step gives bit-identical
  // losses and other parameters (clip off: the norm would include the biases' noise).
  ModelConfig c = md_tiny();
  c.disc_weight = 0.25;
  c.clip = 0;
  ModelConfig co = c;
  co.train_prenorm_biases = true;
  Model m(c), official(co);
  const Tensor a = md_images(2, 64, 41), b = md_images(2, 64, 42);
  const auto before = m.named_parameters();
  std::vector<std::vector<float>> init;
  for (auto& [n, p] : before) init.push_back(p.to_vector<float>());
  std::set<std::string> no_grad;
  m.on_ae_grads = [&] {
    for (auto& [n, p] : m.named_parameters())
      if (n.rfind("disc.", 0) != 0 && !p.grad().defined()) no_grad.insert(n);
  };
  const disco::StepLosses l = m.train_step(a, b), lo = official.train_step(a, b);
  CHECK(l.ae == lo.ae);
  CHECK(l.disc == Approx(lo.disc).epsilon(1e-6));
  std::set<std::string> expected;
  const int layers = c.num_layers();
  for (int i = 0; i < layers; ++i) {
    expected.insert("e1.full." + std::to_string(3 * i) + ".bias");
    expected.insert("e2.full." + std::to_string(3 * i) + ".bias");
    if (i + 1 < layers) expected.insert("decoder.main." + std::to_string(3 * i) + ".bias");
  }
  CHECK(no_grad == expected);
  const auto after = m.named_parameters(), after_o = official.named_parameters();
  for (std::size_t i = 0; i < after.size(); ++i) {
    INFO(after[i].first);
    if (expected.count(after[i].first)) {
      CHECK(after[i].second.to_vector<float>() == init[i]);        // frozen
      CHECK(after_o[i].second.to_vector<float>() != init[i]);      // the official step moves them (noise)
    } else if (after[i].first.rfind("disc.", 0) == 0) {
      // the discriminator step sees E1 codes of encoders whose cancelled biases differ:
      // equal up to the norm's float rounding
      const auto x = after[i].second.to_vector<float>(), y = after_o[i].second.to_vector<float>();
      for (std::size_t k = 0; k < x.size(); ++k) CHECK(x[k] == Approx(y[k]).margin(1e-6));
    } else {
      CHECK(after[i].second.to_vector<float>() == after_o[i].second.to_vector<float>());
    }
  }
  CHECK(ModelConfig::from_json(co.to_json()).train_prenorm_biases);
  CHECK(!ModelConfig::from_json(c.to_json()).train_prenorm_biases);
}

TEST_CASE("model: train_step_async defers the losses and equals train_step", "[model][train]") {
  ModelConfig c = md_tiny();
  c.disc_weight = 0.25;
  c.clip = 0.05;  // small enough to clip
  Model m1(c), m2(c);
  const Tensor a = md_images(2, 64, 51), b = md_images(2, 64, 52);
  for (int s = 0; s < 2; ++s) {
    const disco::StepLosses l1 = m1.train_step(a, b);
    const disco::PendingLosses<CPU> p2 = m2.train_step_async(a, b);
    const disco::StepLosses l2 = p2.get();
    CHECK(l1.ae == l2.ae);
    CHECK(l1.recon_a == l2.recon_a);
    CHECK(l1.adv == l2.adv);
    CHECK(l1.disc == l2.disc);
    CHECK(l1.ae_grad_norm > c.clip);  // the clip is active
    CHECK(l1.ae_grad_norm == l2.ae_grad_norm);
    CHECK(l1.ae == Approx(l1.recon_a + l1.recon_b + c.disc_weight * l1.adv).epsilon(1e-5));
  }
  const auto p1 = m1.named_parameters(), p2 = m2.named_parameters();
  for (std::size_t i = 0; i < p1.size(); ++i) CHECK(p1[i].second.to_vector<float>() == p2[i].second.to_vector<float>());
  CHECK(m2.step() == 2);
  CHECK(m2.ae_optimizer().step_count() == 2);
  // host step counts caught up after steps that ran without host code
  m2.advance_host_step_counts(3);
  CHECK(m2.step() == 5);
  CHECK(m2.ae_optimizer().step_count() == 5);
  CHECK(m2.disc_optimizer().step_count() == 5);
}

TEST_CASE("model: one batch for both domains is the official per-domain step", "[model][train]") {
  // train_step runs E1, G and D on a and b as one batch; the official code runs each domain
  // through them separately. Written out here per domain with the model's own parts, the
  // losses and both steps' gradients must agree up to float summation order.
  ModelConfig c = md_tiny();
  c.disc_weight = 0.25;
  c.clip = 0;
  const int64_t na = 3, nb = 2;  // unequal batches
  const Tensor a = md_images(na, 64, 61), b = md_images(nb, 64, 62);
  Model m(c), ref(c), ref_disc(c);
  auto grads = [](const std::vector<Tensor>& ps) {
    std::vector<std::vector<double>> out;
    for (const auto& p : ps) out.push_back(p.grad().defined() ? p.grad().to_vector<double>() : std::vector<double>{});
    return out;
  };
  std::vector<std::vector<double>> ae_grads, disc_grads;
  m.on_ae_grads = [&] { ae_grads = grads(m.ae_parameters()); };
  m.on_disc_grads = [&] { disc_grads = grads(m.disc_parameters()); };
  const disco::StepLosses l = m.train_step(a, b);

  // The autoencoder step, per domain.
  Tensor ac = ref.encode_common(a), bc = ref.encode_common(b);
  Tensor pa, pb;
  Tensor la = disco::recon_adv_loss(ref.decode(ac, ref.encode_separate(a)), a, ref.discriminate(ac), 0.0, c.disc_weight,
                                    c.recon_loss, nullptr, &pa);
  Tensor lb = disco::recon_adv_loss(ref.decode(bc, ref.zero_separate(nb)), b, ref.discriminate(bc), 0.0, c.disc_weight,
                                    c.recon_loss, nullptr, &pb);
  Tensor total = disco::add(la, lb);
  total.backward();
  const auto va = pa.to_vector<double>(), vb = pb.to_vector<double>();
  CHECK(l.ae == Approx(total.item()).epsilon(1e-6));
  CHECK(l.recon_a == Approx(va[1]).epsilon(1e-6));
  CHECK(l.recon_b == Approx(vb[1]).epsilon(1e-6));
  CHECK(l.adv == Approx(va[2] + vb[2]).epsilon(1e-6));
  const auto ae_ref = grads(ref.ae_parameters());
  REQUIRE(ae_grads.size() == ae_ref.size());
  int compared = 0;
  for (std::size_t i = 0; i < ae_ref.size(); ++i) {
    INFO("autoencoder parameter " << i);
    REQUIRE(ae_grads[i].size() == ae_ref[i].size());
    double scale = 0, diff = 0;
    for (std::size_t k = 0; k < ae_ref[i].size(); ++k) {
      scale = std::max(scale, std::fabs(ae_ref[i][k]));
      diff = std::max(diff, std::fabs(ae_grads[i][k] - ae_ref[i][k]));
    }
    CHECK(diff <= 1e-4 * scale + 1e-9);
    compared += ae_ref[i].empty() ? 0 : 1;
  }
  CHECK(compared > 10);

  // The discriminator step: the updated encoders (m's final autoencoder parameters), the
  // discriminator as initialised (the same seed), each domain separately.
  {
    disco::NoGradGuard ng;
    const auto& dst = ref_disc.ae_parameters();
    for (std::size_t i = 0; i < dst.size(); ++i) dst[i].detach().copy_(m.ae_parameters()[i]);
  }
  Tensor ca, cb;
  {
    disco::NoGradGuard ng;
    ca = ref_disc.encode_common(a);
    cb = ref_disc.encode_common(b);
  }
  Tensor ld = disco::add(disco::bce(ref_disc.discriminate(ca), Tensor::ones({na})),
                         disco::bce(ref_disc.discriminate(cb), Tensor::zeros({nb})));
  ld.backward();
  CHECK(l.disc == Approx(ld.item()).epsilon(1e-5));
  const auto disc_ref = grads(ref_disc.disc_parameters());
  REQUIRE(disc_grads.size() == disc_ref.size());
  for (std::size_t i = 0; i < disc_ref.size(); ++i) {
    INFO("discriminator parameter " << i);
    REQUIRE(disc_grads[i].size() == disc_ref[i].size());
    REQUIRE(!disc_ref[i].empty());
    for (std::size_t k = 0; k < disc_ref[i].size(); ++k) CHECK(disc_grads[i][k] == Approx(disc_ref[i][k]).margin(1e-6));
  }

  // The joined entry point: the same step, and clear errors.
  Model j(c), s(c);
  const disco::StepLosses lj = j.train_step_joined_async(disco::concat<CPU>({a, b}, 0), na).get();
  const disco::StepLosses ls = s.train_step(a, b);
  CHECK(lj.ae == ls.ae);
  CHECK(lj.disc == ls.disc);
  const Tensor ab = disco::concat<CPU>({a, b}, 0);
  CHECK_THROWS_WITH(j.train_step_joined_async(ab, 0), Contains("train_step") && Contains("each domain"));
  CHECK_THROWS_WITH(j.train_step_joined_async(ab, na + nb), Contains("train_step") && Contains("each domain"));
}

TEST_CASE("model: a tiny model overfits one fixed batch (reconstruction loss falls 10x)", "[model][train]") {
  ModelConfig c = md_tiny();
  c.disc_weight = 0;  // pure autoencoder
  c.lr = 5e-3;
  Model m(c);
  disco::data::SyntheticConfig sc;
  sc.resolution = 64;
  sc.count_a = sc.count_b = 2;
  disco::data::SyntheticDataset ds(sc);
  disco::data::Pipeline p;
  p.crop = 0;
  p.resolution = 64;
  p.flip_prob = 0;
  const Tensor a = Tensor::from_vector(disco::data::first_images(ds, disco::data::Domain::A, 2, p).data, {2, 3, 64, 64});
  const Tensor b = Tensor::from_vector(disco::data::first_images(ds, disco::data::Domain::B, 2, p).data, {2, 3, 64, 64});
  const auto t0 = std::chrono::steady_clock::now();
  const disco::StepLosses first = m.train_step(a, b);
  const double start = first.recon_a + first.recon_b;
  CHECK(first.adv == 0.0);
  CHECK(first.disc == 0.0);  // no discriminator step at disc_weight 0
  double last = start;
  int steps = 1;
  for (; steps < 150 && last > start / 10; ++steps) {
    const disco::StepLosses l = m.train_step(a, b);
    REQUIRE(std::isfinite(l.ae));
    last = l.recon_a + l.recon_b;
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  INFO("recon " << start << " -> " << last << " in " << steps << " steps, " << secs << " s");
  CHECK(last <= start / 10);
  CHECK(m.step() == steps);
  CHECK(m.ae_optimizer().step_count() == steps);
  CHECK(m.disc_optimizer().step_count() == 0);
  // the reconstruction itself (no autograd path) matches what the loss saw
  const double mse = [&] {
    const auto r = m.reconstruct(a).to_vector<double>(), x = a.to_vector<double>();
    double s = 0;
    for (size_t i = 0; i < r.size(); ++i) s += (r[i] - x[i]) * (r[i] - x[i]);
    return s / double(r.size());
  }();
  CHECK(mse < start / 10);
}

TEST_CASE("model: a short training run on the procedural faces beats the untrained model on transfer PSNR",
          "[model][train]") {
  namespace data = disco::data;
  ModelConfig c = md_tiny();
  c.disc_weight = 0.01;
  c.lr = 2e-3;
  Model m(c);
  data::Pipeline p;
  p.crop = 0;
  p.resolution = 64;
  p.flip_prob = 0;
  const int pool = 64, bs = 4, steps = 100, n = 16;
  data::SyntheticConfig sc;
  sc.resolution = 64;
  sc.seed = 5;
  sc.count_a = sc.count_b = pool;
  data::SyntheticDataset train(sc);
  sc.split = data::Split::Test;
  sc.count_a = sc.count_b = n;
  data::SyntheticDataset test(sc);

  std::vector<size_t> all(pool), ib(n), ig(n);
  for (int i = 0; i < pool; ++i) all[size_t(i)] = size_t(i);
  for (int i = 0; i < n; ++i) {
    ib[size_t(i)] = size_t(i);
    ig[size_t(i)] = size_t((i + 1) % n);
  }
  const Tensor A = Tensor::from_vector(data::make_batch(train, data::Domain::A, all, p).data, {pool, 3, 64, 64});
  const Tensor B = Tensor::from_vector(data::make_batch(train, data::Domain::B, all, p).data, {pool, 3, 64, 64});
  const Tensor base = Tensor::from_vector(data::make_batch(test, data::Domain::B, ib, p).data, {n, 3, 64, 64});
  const Tensor guide = Tensor::from_vector(data::make_batch(test, data::Domain::A, ig, p).data, {n, 3, 64, 64});
  std::vector<float> gt;
  for (int i = 0; i < n; ++i) {
    const auto v = p.apply(test.gt_transfer(size_t(i), size_t((i + 1) % n)), false);
    gt.insert(gt.end(), v.begin(), v.end());
  }
  const double untrained = md_psnr_pm1(m.transfer(base, guide).to_vector<float>(), gt);
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    const int off = (i * bs) % pool;
    const disco::StepLosses l = m.train_step(A.narrow(0, off, bs).contiguous(), B.narrow(0, (off + bs) % pool, bs).contiguous());
    REQUIRE(std::isfinite(l.ae));
    REQUIRE(std::isfinite(l.disc));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const double trained = md_psnr_pm1(m.transfer(base, guide).to_vector<float>(), gt);
  INFO("transfer PSNR vs ground truth: untrained " << untrained << " dB, after " << steps << " steps " << trained
                                                   << " dB (" << secs << " s)");
  CHECK(trained > untrained + 2.0);
  CHECK(m.disc_optimizer().step_count() == steps);
}
