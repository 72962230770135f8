#pragma once
// ContentDisentangler<B>: the method of Press, Galanti, Benaim & Wolf (ICLR 2019).
//
// Domain A has extra content (glasses), domain B lacks it. E1 encodes what both share,
// E2 only A's extra content; one decoder G rebuilds A from [E1(a), E2(a)] and B from
// [E1(b), 0]. A discriminator on E1's codes tells A from B and the encoders learn to
// fool it, so the extra content cannot hide in E1. Then G(E1(b), E2(a)) moves a's
// content onto b and G(E1(a), 0) removes it.
//
// Parameter names and layouts follow the official state dicts with the prefixes
// e1. e2. decoder. disc. (e.g. e1.full.0.weight, decoder.main.3.bias, disc.classify.2.weight).
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "disco/model/config.hpp"
#include "disco/nn/layers.hpp"
#include "disco/optim/optim.hpp"

namespace disco {

// Losses of one training step (host values).
struct StepLosses {
  double recon_a = 0, recon_b = 0;  // reconstruction of A and of B
  double adv = 0;                   // unweighted confusion term BCE(D(E1 a), 0) + BCE(D(E1 b), 0)
  double ae = 0;                    // the autoencoder's total loss
  double disc = 0;                  // the discriminator's loss
  double ae_grad_norm = 0, disc_grad_norm = 0;  // before clipping
};

// The losses of a step still in backend memory: reading them (get()) is the step's only
// host synchronization, so a caller that reads every few steps keeps the GPU busy.
template <class B>
struct PendingLosses {
  // [ae, recon_a, recon_b, adv_a, adv_b, disc, ae_grad_norm, disc_grad_norm]
  Tensor<B> values;
  StepLosses get() const {
    StepLosses l;
    if (!values.defined()) return l;
    const std::vector<double> v = values.template to_vector<double>();
    l.ae = v[0];
    l.recon_a = v[1];
    l.recon_b = v[2];
    l.adv = v[3] + v[4];
    l.disc = v[5];
    l.ae_grad_norm = v[6];
    l.disc_grad_norm = v[7];
    return l;
  }
};

namespace model_detail {
// A module holding one Sequential under a fixed name ("full", "main", "classify").
template <class B>
class Wrapped : public nn::Module<B> {
 public:
  Wrapped(std::string child, std::string type) : type_(std::move(type)) {
    seq = this->register_module(child, std::make_shared<nn::Sequential<B>>());
  }
  Tensor<B> forward(const Tensor<B>& x) override { return seq->forward(x); }
  std::string type_name() const override { return type_; }
  std::shared_ptr<nn::Sequential<B>> seq;

 private:
  std::string type_;
};
}  // namespace model_detail

template <class B>
class ContentDisentangler {
 public:
  using TensorB = Tensor<B>;
  using Module = model_detail::Wrapped<B>;

  explicit ContentDisentangler(const ModelConfig& cfg) : cfg_(cfg) {
    cfg_.validate();
    Generator gen(cfg_.seed);
    const Conv2dOptions down{2, 1, 1, 0};
    auto encoder = [&](const std::vector<int>& chans) {
      auto m = std::make_shared<Module>("full", "Encoder");
      int in = 3;
      for (int out : chans) {
        auto conv = std::make_shared<nn::Conv2d<B>>(in, out, 4, down, true, gen);
        conv->bias.set_requires_grad(cfg_.train_prenorm_biases);  // cancelled by the norm
        m->seq->add(conv);
        m->seq->add(std::make_shared<nn::InstanceNorm2d<B>>(out));
        m->seq->add(nn::LeakyReLU<B>(0.2));
        in = out;
      }
      return m;
    };
    e1_ = encoder(cfg_.e1_channels());
    e2_ = encoder(cfg_.e2_channels());
    decoder_ = std::make_shared<Module>("main", "Decoder");
    const auto dch = cfg_.decoder_channels();
    for (std::size_t i = 0; i + 1 < dch.size(); ++i) {
      auto deconv = std::make_shared<nn::ConvTranspose2d<B>>(dch[i], dch[i + 1], 4, down, true, gen);
      deconv->bias.set_requires_grad(cfg_.train_prenorm_biases);  // cancelled by the norm
      decoder_->seq->add(deconv);
      decoder_->seq->add(std::make_shared<nn::InstanceNorm2d<B>>(dch[i + 1]));
      decoder_->seq->add(nn::ReLU<B>());
    }
    decoder_->seq->add(std::make_shared<nn::ConvTranspose2d<B>>(dch.back(), 3, 4, down, true, gen));
    decoder_->seq->add(nn::Tanh<B>());
    disc_ = std::make_shared<Module>("classify", "Disc");
    disc_->seq->add(std::make_shared<nn::Linear<B>>(cfg_.common_dim(), cfg_.disc_hidden, true, gen));
    disc_->seq->add(nn::LeakyReLU<B>(0.2));
    disc_->seq->add(std::make_shared<nn::Linear<B>>(cfg_.disc_hidden, 1, true, gen));
    disc_->seq->add(nn::Sigmoid<B>());

    ae_params_ = e1_->parameters();
    for (auto& p : e2_->parameters()) ae_params_.push_back(p);
    for (auto& p : decoder_->parameters()) ae_params_.push_back(p);
    ae_opt_ = std::make_unique<optim::Adam<B>>(ae_params_, optim::AdamOptions{cfg_.lr, cfg_.beta1, cfg_.beta2, 1e-8, 0});
    disc_opt_ = std::make_unique<optim::Adam<B>>(disc_->parameters(),
                                                 optim::AdamOptions{cfg_.disc_lr, cfg_.beta1, cfg_.beta2, 1e-8, 0});
  }

  const ModelConfig& config() const { return cfg_; }

  // ---- the networks ----------------------------------------------------------------------
  // E1: images [N, 3, R, R] in [-1, 1] -> common codes [N, (code - sep) * s * s].
  TensorB encode_common(const TensorB& x) { return e1_->forward(check_images("encode_common", x)).flatten(1); }
  // E2: images -> separate codes [N, sep * s * s].
  TensorB encode_separate(const TensorB& x) { return e2_->forward(check_images("encode_separate", x)).flatten(1); }
  // G: codes -> images [N, 3, R, R] in [-1, 1].
  TensorB decode(const TensorB& common, const TensorB& separate) {
    DISCO_CHECK(common.dim() == 2 && common.shape()[1] == cfg_.common_dim(), "decode: common code of shape ",
                shape_str(common.shape()), ", expected [N, ", cfg_.common_dim(), "]");
    DISCO_CHECK(separate.dim() == 2 && separate.shape()[1] == cfg_.separate_dim() &&
                    separate.shape()[0] == common.shape()[0],
                "decode: separate code of shape ", shape_str(separate.shape()), ", expected [", common.shape()[0], ", ",
                cfg_.separate_dim(), "]");
    const int s = cfg_.bottleneck();
    TensorB code = concat<B>({common, separate}, 1).reshape({common.shape()[0], cfg_.code_channels, s, s});
    return decoder_->forward(code);
  }
  // D: common codes -> probability of domain A, [N].
  TensorB discriminate(const TensorB& common) { return disc_->forward(common).reshape({common.shape()[0]}); }
  // An all-zero separate code (what B images carry) for n images.
  TensorB zero_separate(int64_t n) const { return TensorB::zeros({n, cfg_.separate_dim()}); }

  // ---- applying a trained model (no autograd) ------------------------------------------------
  // G(E1(base), E2(guide)): guide's extra content on base; both [N, 3, R, R].
  TensorB transfer(const TensorB& base, const TensorB& guide) {
    NoGradGuard ng;
    DISCO_CHECK(base.shape() == guide.shape(), "transfer: base ", shape_str(base.shape()), " and guide ",
                shape_str(guide.shape()), " must have the same shape");
    return decode(encode_common(base), encode_separate(guide));
  }
  // G(E1(a), 0): a without its extra content.
  TensorB remove(const TensorB& a) {
    NoGradGuard ng;
    return decode(encode_common(a), zero_separate(a.shape()[0]));
  }
  // G(E1(a), E2(a)): the autoencoder's reconstruction.
  TensorB reconstruct(const TensorB& a) {
    NoGradGuard ng;
    return decode(encode_common(a), encode_separate(a));
  }
  // Separate code (1 - t) * z0 + t * z1 decoded on base: a path from one guide's content
  // to another's (t = 0 and 1 are the two guides).
  TensorB interpolate(const TensorB& base, const TensorB& z0, const TensorB& z1, double t) {
    NoGradGuard ng;
    check_same("interpolate", z0, z1);
    return decode(encode_common(base), add(scale(z0, 1.0 - t), scale(z1, t)));
  }

  // ---- training -------------------------------------------------------------------------------
  // One step of the official rule: the autoencoder step on (a, b), then the discriminator
  // step with the updated encoders (skipped when disc_weight is 0, as the official code does).
  // Gradient clipping (clip > 0) scales the gradients inside the fused Adam update, as
  // torch.nn.utils.clip_grad_norm_ followed by torch.optim.Adam would; the parameters'
  // .grad() keep the unclipped values.
  StepLosses train_step(const TensorB& a, const TensorB& b) { return train_step_async(a, b).get(); }

  // The same step without reading anything back: losses and gradient norms stay in backend
  // memory until get(). Nothing in it synchronizes with the host (no .item(), no host-side
  // norm), which is what lets a CUDA graph capture it (model/graphed_step.hpp).
  PendingLosses<B> train_step_async(const TensorB& a, const TensorB& b) {
    check_images("train_step (batch a)", a);
    check_images("train_step (batch b)", b);
    return train_step_joined_async(concat<B>({a, b}, 0), a.shape()[0]);
  }

  // The same step on one tensor holding both batches: ab's first na images are domain A's,
  // the rest domain B's (what train_step_async(a, b) builds with one copy; GraphedTrainStep
  // keeps its static input this way and needs none).
  //
  // Both domains go through E1 and the decoder as one batch of na + nb images, and the
  // discriminator sees both domains' codes in one call. Every layer of E1, G and D works on
  // each image alone (convolutions, InstanceNorm, per-sample linear layers), so this is the
  // official step -- E1(a), E1(b), G(a's code), G(b's code) run separately -- up to the
  // order of float sums: the weight gradients sum over one batch of na + nb images instead
  // of adding two sums. It halves the launches of E1, G and D and doubles their GEMMs'
  // rows, which is what the small late layers need to fill a GPU.
  PendingLosses<B> train_step_joined_async(const TensorB& ab, int64_t na) {
    check_images("train_step (batches a and b)", ab);
    const int64_t n = ab.shape()[0], nb = n - na;
    DISCO_CHECK(na >= 1 && nb >= 1, "train_step: the joined batch of ", n, " images must hold at least one image of",
                " each domain, got na = ", na);
    DISCO_CHECK(!ab.requires_grad(), "train_step: the images must not require a gradient");
    const TensorB a = ab.narrow(0, 0, na);  // a view: contiguous, at the start of ab
    // Autoencoder step.
    ae_opt_->zero_grad();
    const bool adversarial = cfg_.disc_weight > 0;
    TensorB total, recon_a, recon_b, adv_a, adv_b;  // one-element losses, kept for PendingLosses
    DiscFrozen frozen(disc_->parameters(), adversarial);  // only the path into E1 is needed
    {  // the forward's tensors live in this scope only: backward_release frees the rest
      TensorB common = encode_common(ab);  // [na + nb, common]: E1(a) then E1(b)
      TensorB separate = concat<B>({encode_separate(a), zero_separate(nb)}, 0);  // E2(a), then B's zeros
      TensorB decoded = decode(common, separate);                               // G(a's code), G(b's code)
      if (adversarial) {
        TensorB parts;  // [2, 3]: {total, recon, adv} of each domain
        total = recon_adv_loss_grouped(decoded, ab, discriminate(common), 0.0, cfg_.disc_weight, cfg_.recon_loss,
                                       {na, nb}, &parts);
        const TensorB flat = parts.reshape({6});
        recon_a = flat.narrow(0, 1, 1);
        adv_a = flat.narrow(0, 2, 1);
        recon_b = flat.narrow(0, 4, 1);
        adv_b = flat.narrow(0, 5, 1);
      } else {
        TensorB la = loss(cfg_.recon_loss, decoded.narrow(0, 0, na), a);
        TensorB lb = loss(cfg_.recon_loss, decoded.narrow(0, na, nb), ab.narrow(0, na, nb));
        total = add(la, lb);
        recon_a = la.detach().reshape({1});
        recon_b = lb.detach().reshape({1});
      }
    }
    // Frees the autoencoder's activations as the sweep passes them (the discriminator step
    // below would otherwise run with all of them still held).
    total.backward_release();
    total = total.detach();
    frozen.release();
    if (on_ae_grads) on_ae_grads();
    const TensorB ae_norm = clip_and_step(*ae_opt_, ae_params_);
    // Discriminator step: E1 codes of the updated encoders, no gradient into E1.
    TensorB ld, disc_norm;
    if (adversarial) {
      disc_opt_->zero_grad();
      TensorB codes;
      {
        NoGradGuard ng;
        codes = encode_common(ab);
      }
      const TensorB p = discriminate(codes);
      ld = add(bce(p.narrow(0, 0, na), TensorB::ones({na})), bce(p.narrow(0, na, nb), TensorB::zeros({nb})));
      ld.backward_release();
      ld = ld.detach();
      if (on_disc_grads) on_disc_grads();
      disc_norm = clip_and_step(*disc_opt_, disc_->parameters());
    }
    ++step_;
    NoGradGuard ng;
    const TensorB zero = TensorB::zeros({1});
    PendingLosses<B> out;
    out.values = concat<B>({total.detach().reshape({1}), recon_a, recon_b, adversarial ? adv_a : zero,
                            adversarial ? adv_b : zero, adversarial ? ld.detach().reshape({1}) : zero,
                            ae_norm.reshape({1}), adversarial ? disc_norm.reshape({1}) : zero},
                           0);
    return out;
  }

  // Hooks called right after each step's backward, before clipping (the `disco step`
  // tool reads the raw gradients there).
  std::function<void()> on_ae_grads, on_disc_grads;

  // ---- parameters and state -----------------------------------------------------------------
  // Every parameter, prefixed e1. e2. decoder. disc., in the official order.
  std::vector<std::pair<std::string, TensorB>> named_parameters() const {
    std::vector<std::pair<std::string, TensorB>> out;
    for (auto& np : e1_->named_parameters("e1.")) out.push_back(np);
    for (auto& np : e2_->named_parameters("e2.")) out.push_back(np);
    for (auto& np : decoder_->named_parameters("decoder.")) out.push_back(np);
    for (auto& np : disc_->named_parameters("disc.")) out.push_back(np);
    return out;
  }
  const std::vector<TensorB>& ae_parameters() const { return ae_params_; }
  std::vector<TensorB> disc_parameters() const { return disc_->parameters(); }
  optim::Adam<B>& ae_optimizer() { return *ae_opt_; }
  optim::Adam<B>& disc_optimizer() { return *disc_opt_; }
  int64_t step() const { return step_; }
  void set_step(int64_t s) { step_ = s; }
  // Catch the host-side step counts (model and both optimizers) up by n steps that ran
  // without host code (a replayed CUDA graph).
  void advance_host_step_counts(int64_t n) {
    step_ += n;
    ae_opt_->advance_host_step_count(n);
    if (cfg_.disc_weight > 0) disc_opt_->advance_host_step_count(n);
  }
  nn::Module<B>& e1() { return *e1_; }
  nn::Module<B>& e2() { return *e2_; }
  nn::Module<B>& decoder() { return *decoder_; }
  nn::Module<B>& disc() { return *disc_; }

 private:
  const TensorB& check_images(const char* op, const TensorB& x) const {
    DISCO_CHECK(x.dim() == 4 && x.shape()[1] == 3 && x.shape()[2] == cfg_.resolution &&
                    x.shape()[3] == cfg_.resolution && x.shape()[0] >= 1,
                op, ": images of shape ", shape_str(x.shape()), ", expected [N, 3, ", cfg_.resolution, ", ",
                cfg_.resolution, "] for a ", cfg_.resolution, " px model");
    DISCO_CHECK(x.dtype() == DType::F32, op, ": images are ", dtype_name(x.dtype()), ", expected float32");
    return x;
  }
  static void set_requires_grad(const std::vector<TensorB>& ps, bool r) {
    for (auto p : ps) p.set_requires_grad(r);
  }
  // The gradient norm of `params` (a backend scalar), then opt's update with the clip
  // coefficient folded in (clip > 0).
  TensorB clip_and_step(optim::Adam<B>& opt, const std::vector<TensorB>& params) {
    auto r = optim::clip_coefficient(params, cfg_.clip);
    if (r.coef.defined()) opt.step(r.coef);
    else opt.step();
    return r.norm;
  }
  // The discriminator's parameters without gradients for the autoencoder step, restored
  // when released or when an exception leaves the step.
  struct DiscFrozen {
    DiscFrozen(std::vector<TensorB> ps, bool on) : ps_(std::move(ps)), on_(on) {
      if (on_) set_requires_grad(ps_, false);
    }
    void release() {
      if (on_) set_requires_grad(ps_, true);
      on_ = false;
    }
    ~DiscFrozen() {
      try {
        release();
      } catch (...) {
      }
    }
    std::vector<TensorB> ps_;
    bool on_;
  };


  ModelConfig cfg_;
  std::shared_ptr<Module> e1_, e2_, decoder_, disc_;
  std::vector<TensorB> ae_params_;
  std::unique_ptr<optim::Adam<B>> ae_opt_, disc_opt_;
  int64_t step_ = 0;
};

}  // namespace disco
