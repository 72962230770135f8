// `disco step`: exactly one full training step (autoencoder + discriminator) from
// fresh Adam state, with every loss, raw gradient and updated parameter written out,
// so the step can be compared with the official PyTorch code (docs/formats.md,
// tools/parity_check.py). --device cuda runs it on the GPU (--math fp32 by default: the
// exact path; tf32 / bf16 for the tensor-core paths).
#include <iostream>

#include "common.hpp"

namespace disco::cli {

namespace {
struct StepOptions {
  std::string weights, batch, out;
  std::string device = "cpu", conv_algo, math;
  ModelConfig cfg;
};

template <class B>
void step_on(const StepOptions& o) {
  ContentDisentangler<B> m(o.cfg);
  DISCO_CHECK(fs::exists(o.weights), "--weights: file not found: '", o.weights, "'");
  DISCO_CHECK(fs::exists(o.batch), "--batch: file not found: '", o.batch, "'");
  load_weights(m, o.weights);
  SafetensorsFile bf = read_safetensors(o.batch);
  auto get_batch = [&](const char* name) {
    DISCO_CHECK(bf.has(name), o.batch, ": no tensor '", name, "' (expected float32 tensors 'a' and 'b', [N, 3, H, W])");
    const RawTensor& r = bf.at(name);
    DISCO_CHECK(r.dtype == "F32", o.batch, ": tensor '", name, "' is ", r.dtype, ", expected F32");
    return from_raw<B>(r, o.batch + ": " + name);
  };
  Tensor<B> a = get_batch("a"), b = get_batch("b");
  std::map<std::string, Tensor<B>> out;
  const auto named = m.named_parameters();
  auto grab = [&](const char* prefix, bool disc) {
    for (auto& [name, p] : named) {
      if ((name.rfind("disc.", 0) == 0) != disc) continue;
      Tensor<B> g = p.grad();
      out[str(prefix, name)] = g.defined() ? g.clone() : Tensor<B>::zeros(p.shape());
    }
  };
  m.on_ae_grads = [&] { grab("grad.ae.", false); };
  m.on_disc_grads = [&] { grab("grad.disc.", true); };
  StepLosses l = m.train_step(a, b);
  out["loss.recon_a"] = Tensor<B>::scalar(l.recon_a);
  out["loss.recon_b"] = Tensor<B>::scalar(l.recon_b);
  out["loss.adv"] = Tensor<B>::scalar(l.adv);
  out["loss.ae"] = Tensor<B>::scalar(l.ae);
  out["loss.disc"] = Tensor<B>::scalar(l.disc);
  for (auto& [name, p] : named) out["param." + name] = p;
  save_tensors(o.out, out,
               {{"format", "disco-step-result"}, {"config", o.cfg.to_json().dump()}, {"device", o.device}});
  std::cout << "step done (" << o.device << "): ae " << l.ae << " (recon A " << l.recon_a << ", B " << l.recon_b
            << ", adv " << l.adv << "), disc " << l.disc << "; wrote " << o.out << "\n";
}

void run_step(StepOptions o) {
  o.cfg.train_prenorm_biases = true;  // the official step updates them too (parity)
  o.cfg.validate();
  on_device(o.device, o.conv_algo, o.math, "fp32", "", [&](auto backend) { step_on<decltype(backend)>(o); });
}
}  // namespace

void add_step(CLI::App& app) {
  auto o = std::make_shared<StepOptions>();
  auto* cmd = app.add_subcommand("step", "run exactly one training step and write losses, gradients and parameters");
  cmd->add_option("--weights", o->weights, "safetensors with e1./e2./decoder./disc. parameters")->required();
  cmd->add_option("--batch", o->batch, "safetensors with float32 'a' and 'b' [N, 3, H, W] in [-1, 1]")->required();
  cmd->add_option("--out", o->out, "result safetensors")->required();
  cmd->add_option("--sep", o->cfg.sep)->capture_default_str();
  cmd->add_option("--resolution", o->cfg.resolution)->capture_default_str();
  cmd->add_option("--code-channels", o->cfg.code_channels)->capture_default_str();
  cmd->add_option("--base-channels", o->cfg.base_channels)->capture_default_str();
  cmd->add_option("--disc-hidden", o->cfg.disc_hidden)->capture_default_str();
  cmd->add_option("--disc-weight", o->cfg.disc_weight)->capture_default_str();
  cmd->add_option("--lr", o->cfg.lr)->capture_default_str();
  cmd->add_option("--disc-lr", o->cfg.disc_lr)->capture_default_str();
  cmd->add_option("--device", o->device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--conv-algo", o->conv_algo, "--device cuda: convolutions by disco's kernels, cudnn, or auto (per layer the faster of the two, timed once) (default disco)");
  cmd->add_option("--math", o->math, "--device cuda: fp32, tf32 or bf16 for convolutions and GEMMs (default fp32)");
  cmd->callback([o] { run_step(*o); });
}

}  // namespace disco::cli
