// `disco demo`: the main job on the embedded data. Trains a small model on the
// procedural faces on the CPU (minutes on 2 cores), then evaluates it: grids, CSV log,
// PSNRs against ground truth and the leakage probe, all under --out.
#include <chrono>
#include <iostream>

#include "eval.hpp"
#include "train.hpp"

namespace disco::cli {

void add_demo(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto compare = std::make_shared<bool>(false);
  // Demo settings: 64 px, a narrow network, enough steps to move glasses around.
  o->out = "out/demo";
  o->data.synthetic = true;
  o->data.synthetic_count = 20000;
  o->model.resolution = 64;
  o->model.base_channels = 16;
  o->model.code_channels = 128;
  o->model.sep = 16;
  o->model.disc_hidden = 128;
  o->model.lr = 5e-4;
  o->model.disc_lr = 5e-4;
  o->model.disc_weight = 0.01;
  o->batch = 16;
  o->iters = 3500;
  o->num_display = 8;
  o->display_iter = 500;
  o->save_iter = 500;
  o->progress_iter = 50;
  auto* cmd = app.add_subcommand("demo", "train and evaluate a small model on the embedded procedural faces");
  add_train_options(cmd, *o);
  cmd->add_flag("--compare-disc-weight", *compare,
                "also train with --disc-weight 0 and report both leakage probes");
  cmd->callback([o, compare] {
    const auto t0 = std::chrono::steady_clock::now();
    const std::string ckpt = run_training(*o);
    EvalOptions e;
    e.model = (fs::path(o->out) / "weights.safetensors").string();
    e.out = o->out;
    e.data = o->data;
    auto j = run_eval(e);
    nlohmann::json summary = {{"disc_weight", o->model.disc_weight}, {"psnr", j["psnr"]},
                              {"leakage_probe_accuracy", j["leakage_probe"]["test_accuracy"]}};
    if (*compare) {
      TrainOptions z = *o;
      z.model.disc_weight = 0;
      z.out = o->out + "/disc_weight_0";
      run_training(z);
      EvalOptions ez = e;
      ez.model = (fs::path(z.out) / "weights.safetensors").string();
      ez.out = z.out;
      auto jz = run_eval(ez);
      summary["disc_weight_0"] = {{"psnr", jz["psnr"]},
                                  {"leakage_probe_accuracy", jz["leakage_probe"]["test_accuracy"]}};
    }
    const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    summary["seconds"] = secs;
    std::cout << "\ndisco demo finished in " << int(secs) << " s\n" << summary.dump(2) << "\n\nresults in " << o->out
              << "/:\n  transfer_grid.png   guides on top, bases on the left, transfers inside\n"
              << "  removal_grid.png    inputs on top, glasses removed below\n"
              << "  eval.json           PSNRs against ground truth and the leakage probe\n"
              << "  log.csv             every step's losses\n"
              << "  weights.safetensors / checkpoint.safetensors\n";
  });
}

}  // namespace disco::cli
