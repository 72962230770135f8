// `disco transfer` and `disco remove`: apply a trained model to image files.
#include "common.hpp"

#include <iostream>

namespace disco::cli {

namespace {
struct ApplyOptions {
  std::string model, output;
  std::vector<std::string> base, guide, input;
  int crop = -1;  // -1: the crop stored with the model (else 178)
  std::string resize_mode = "bilinear";
  std::string device = "cpu", math;
};

data::Pipeline apply_pipeline(const ApplyOptions& o, int resolution) {
  data::Pipeline p;
  p.crop = o.crop >= 0 ? o.crop : stored_crop(o.model, 178);
  p.resolution = resolution;
  p.flip_prob = 0;
  p.mode = data::parse_resize_mode(o.resize_mode);
  return p;
}

void check_output(const std::string& out) {
  const fs::path parent = fs::path(out).parent_path();
  DISCO_CHECK(parent.empty() || fs::is_directory(parent), "-o: output folder '", parent.string(), "' does not exist");
}

template <class B>
void transfer_on(const ApplyOptions& o) {
  auto m = load_model<B>(o.model);
  const data::Pipeline p = apply_pipeline(o, m->config().resolution);
  Tensor<B> bases = to_tensor<B>(load_files(o.base, p));
  Tensor<B> guides = to_tensor<B>(load_files(o.guide, p));
  if (o.base.size() == 1 && o.guide.size() == 1) {
    data::save_png(o.output, to_images(m->transfer(bases, guides))[0]);
  } else {
    data::save_png(o.output, transfer_grid(*m, bases, guides));
  }
  std::cout << "wrote " << o.output << " (" << o.base.size() << " base x " << o.guide.size() << " guide)\n";
}

template <class B>
void remove_on(const ApplyOptions& o) {
  auto m = load_model<B>(o.model);
  const data::Pipeline p = apply_pipeline(o, m->config().resolution);
  Tensor<B> a = to_tensor<B>(load_files(o.input, p));
  if (o.input.size() == 1) data::save_png(o.output, to_images(m->remove(a))[0]);
  else data::save_png(o.output, removal_grid(*m, a));
  std::cout << "wrote " << o.output << " (" << o.input.size() << " image(s))\n";
}

void run_transfer(const ApplyOptions& o) {
  check_output(o.output);
  on_device(o.device, "", o.math, "tf32", "", [&](auto backend) { transfer_on<decltype(backend)>(o); });
}

void run_remove(const ApplyOptions& o) {
  check_output(o.output);
  on_device(o.device, "", o.math, "tf32", "", [&](auto backend) { remove_on<decltype(backend)>(o); });
}

void add_common(CLI::App* cmd, ApplyOptions& o) {
  cmd->add_option("--model", o.model, "weights file or checkpoint")->required();
  cmd->add_option("-o,--output", o.output, "output PNG")->required();
  cmd->add_option("--crop", o.crop, "center crop before resizing (default: as in training; 0 = largest square)");
  cmd->add_option("--resize-mode", o.resize_mode, "bilinear or area")->capture_default_str();
  add_inference_device_options(cmd, o.device, o.math);
}
}  // namespace

void add_apply(CLI::App& app) {
  auto t = std::make_shared<ApplyOptions>();
  auto* tc = app.add_subcommand("transfer", "put the guides' extra content on the bases: G(E1(base), E2(guide))");
  add_common(tc, *t);
  tc->add_option("--base", t->base, "images receiving the content (domain B style)")->required()->check(CLI::ExistingFile);
  tc->add_option("--guide", t->guide, "images giving the content (domain A)")->required()->check(CLI::ExistingFile);
  tc->callback([t] { run_transfer(*t); });

  auto r = std::make_shared<ApplyOptions>();
  auto* rc = app.add_subcommand("remove", "remove the extra content: G(E1(a), 0)");
  add_common(rc, *r);
  rc->add_option("--input,input", r->input, "images to clean")->required()->check(CLI::ExistingFile);
  rc->callback([r] { run_remove(*r); });
}

}  // namespace disco::cli
