#pragma once
// ModelConfig: everything that fixes the shape and training rule of a
// ContentDisentangler. Defaults are the official code's (oripress/ContentDisentanglement):
// 128 px, sep 25, 512-channel code, Adam 2e-4 betas (0.5, 0.999), disc weight 0.001, clip 5.
#include <nlohmann/json.hpp>
#include <algorithm>
#include <string>
#include <vector>

#include "disco/core/error.hpp"
#include "disco/ops/kinds.hpp"

namespace disco {

struct ModelConfig {
  int resolution = 128;     // 64, 128 or 256
  int sep = 25;             // channels of the separate (E2) code
  int code_channels = 512;  // channels of the whole code [E1 | E2] at the bottleneck
  int base_channels = 32;   // width of the first encoder layer; deeper layers are multiples
  int disc_hidden = 512;    // hidden units of the discriminator
  LossKind recon_loss = LossKind::MSE;  // MSE or L1
  double disc_weight = 0.001;
  double lr = 2e-4, disc_lr = 2e-4, beta1 = 0.5, beta2 = 0.999;
  double clip = 5.0;  // gradient-norm clip of both steps; 0 disables
  uint64_t seed = 0;  // parameter initialisation
  // Conv biases followed by an InstanceNorm (every encoder conv, every decoder conv but the
  // last) have no effect on any output: the norm subtracts each channel's mean. Their true
  // gradient is zero, so by default they get none (frozen at their initial values; one
  // bias-gradient reduction per layer saved). The official code computes their rounding-
  // noise gradients and Adam moves them by up to lr per step, to no effect on the outputs;
  // set this to reproduce that exactly (the `disco step` parity tool does).
  bool train_prenorm_biases = false;

  // Stride-2 layers: six (as the official 128 px model) unless the bottleneck would
  // shrink below 2x2, so 64 px uses five; the bottleneck is s x s, s = resolution / 2^layers.
  int num_layers() const {
    int log2 = 0;
    while ((1 << (log2 + 1)) <= resolution) ++log2;
    return std::min(6, log2 - 1);
  }
  int bottleneck() const { return resolution >> num_layers(); }
  int common_channels() const { return code_channels - sep; }
  int64_t common_dim() const { return int64_t(common_channels()) * bottleneck() * bottleneck(); }
  int64_t separate_dim() const { return int64_t(sep) * bottleneck() * bottleneck(); }

  // Output channels of each encoder / decoder layer (the official lists at the defaults:
  // E1 32 64 128 256 487 487, E2 32 64 128 128 128 25, decoder 512 512 256 128 64 32 -> 3).
  std::vector<int> e1_channels() const {
    const int b = base_channels, c = common_channels();
    std::vector<int> v = {b, 2 * b, 4 * b, 8 * b, c, c};
    if (num_layers() == 5) v.erase(v.begin() + 4);
    return v;
  }
  std::vector<int> e2_channels() const {
    const int b = base_channels;
    std::vector<int> v = {b, 2 * b, 4 * b, 4 * b, 4 * b, sep};
    if (num_layers() == 5) v.erase(v.begin() + 4);
    return v;
  }
  // Input channels of each decoder transposed conv; the last one maps to 3.
  std::vector<int> decoder_channels() const {
    const int b = base_channels, c = code_channels;
    std::vector<int> v = {c, c, 8 * b, 4 * b, 2 * b, b};
    if (num_layers() == 5) v.erase(v.begin() + 1);
    return v;
  }

  // Throws disco::Error naming the first invalid field.
  void validate() const {
    DISCO_CHECK(resolution == 64 || resolution == 128 || resolution == 256, "config: resolution ", resolution,
                " is not supported (expected 64, 128 or 256)");
    DISCO_CHECK(sep >= 1 && sep < code_channels, "config: sep ", sep, " must be in [1, code_channels ", code_channels, ")");
    DISCO_CHECK(base_channels >= 1 && disc_hidden >= 1, "config: base_channels ", base_channels, " and disc_hidden ",
                disc_hidden, " must be positive");
    DISCO_CHECK(recon_loss == LossKind::MSE || recon_loss == LossKind::L1, "config: recon_loss must be mse or l1");
    DISCO_CHECK(disc_weight >= 0 && lr > 0 && disc_lr > 0 && clip >= 0, "config: disc_weight ", disc_weight, ", lr ", lr,
                ", disc_lr ", disc_lr, ", clip ", clip, " (expected disc_weight >= 0, lr > 0, clip >= 0)");
  }

  // The fields that fix parameter shapes must agree for weights to load.
  bool same_architecture(const ModelConfig& o) const {
    return resolution == o.resolution && sep == o.sep && code_channels == o.code_channels &&
           base_channels == o.base_channels && disc_hidden == o.disc_hidden;
  }

  nlohmann::json to_json() const {
    return {{"resolution", resolution}, {"sep", sep}, {"code_channels", code_channels},
            {"base_channels", base_channels}, {"disc_hidden", disc_hidden},
            {"recon_loss", recon_loss == LossKind::L1 ? "l1" : "mse"}, {"disc_weight", disc_weight},
            {"lr", lr}, {"disc_lr", disc_lr}, {"beta1", beta1}, {"beta2", beta2}, {"clip", clip},
            {"seed", seed}, {"train_prenorm_biases", train_prenorm_biases}};
  }
  static ModelConfig from_json(const nlohmann::json& j) {
    ModelConfig c;
    try {
      c.resolution = j.at("resolution").get<int>();
      c.sep = j.at("sep").get<int>();
      c.code_channels = j.value("code_channels", 512);
      c.base_channels = j.value("base_channels", 32);
      c.disc_hidden = j.value("disc_hidden", 512);
      c.recon_loss = j.value("recon_loss", std::string("mse")) == "l1" ? LossKind::L1 : LossKind::MSE;
      c.disc_weight = j.value("disc_weight", 0.001);
      c.lr = j.value("lr", 2e-4);
      c.disc_lr = j.value("disc_lr", 2e-4);
      c.beta1 = j.value("beta1", 0.5);
      c.beta2 = j.value("beta2", 0.999);
      c.clip = j.value("clip", 5.0);
      c.seed = j.value("seed", uint64_t(0));
      c.train_prenorm_biases = j.value("train_prenorm_biases", false);
    } catch (const nlohmann::json::exception& e) {
      fail("config: malformed model config JSON: ", e.what());
    }
    c.validate();
    return c;
  }
  std::string describe() const {
    return str(resolution, " px, sep ", sep, ", code ", code_channels, ", base ", base_channels, ", ", num_layers(),
               " stride-2 layers, bottleneck ", bottleneck(), "x", bottleneck());
  }
};

}  // namespace disco
