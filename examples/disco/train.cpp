// `disco train`: the official training loop with progress, CSV log, grids, checkpoints,
// exact resume and a checkpoint on Ctrl-C.
#include "train.hpp"

#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <deque>
#include <iostream>
#include <memory>
#include <type_traits>

#include "disco/io/atomic_file.hpp"

namespace disco::cli {

namespace {
std::atomic<bool> g_stop{false};
extern "C" void on_sigint(int) { g_stop = true; }

std::string fmt_duration(double s) {
  if (!(s >= 0) || s > 1e8) return "?";
  const long t = long(s + 0.5);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ldh%02ldm", t / 3600, (t / 60) % 60);
  else if (t >= 60) std::snprintf(buf, sizeof buf, "%ldm%02lds", t / 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%lds", t);
  return buf;
}

// Drop the log rows of steps >= `step` (written after the checkpoint a run resumes from),
// so every step appears once; also ends a row cut off by a crash.
void trim_log(const std::string& path, int64_t step) {
  std::string text;
  {
    std::FILE* f = std::fopen(path.c_str(), "rb");
    DISCO_CHECK(f, "cannot read the training log '", path, "'");
    char buf[65536];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) text.append(buf, n);
    std::fclose(f);
  }
  std::string kept;
  bool changed = !text.empty() && text.back() != '\n';
  size_t pos = 0;
  while (pos < text.size()) {
    size_t end = text.find('\n', pos);
    if (end == std::string::npos) end = text.size();
    const std::string line = text.substr(pos, end - pos);
    pos = end + 1;
    char* num_end = nullptr;
    const long long s = std::strtoll(line.c_str(), &num_end, 10);
    if (num_end != line.c_str() && *num_end == ',' && s >= step) {
      changed = true;
      continue;
    }
    kept += line + "\n";
  }
  if (changed) atomic_write_text(path, kept);
}

std::string resolve_resume(const std::string& r) {
  if (fs::is_directory(r)) return (fs::path(r) / "checkpoint.safetensors").string();
  return r;
}

template <class B>
std::string train_on(const TrainOptions& o) {
  ensure_dir(o.out);
  const std::string ckpt_path = (fs::path(o.out) / "checkpoint.safetensors").string();
  const std::string weights_path = (fs::path(o.out) / "weights.safetensors").string();
  ContentDisentangler<B> model(o.model);
  uint64_t data_seed = o.data_seed;
  if (!o.resume.empty()) {
    const std::string path = resolve_resume(o.resume);
    DISCO_CHECK(fs::exists(path), "--resume: no checkpoint at '", path, "'");
    auto meta = load_checkpoint(model, path);
    if (meta.count("data_seed")) data_seed = std::stoull(meta["data_seed"]);
    if (!o.quiet) std::cerr << "resumed from " << path << " at step " << model.step() << "\n";
  }
  auto train_set = open_dataset(o.data, data::Split::Train, o.model.resolution);
  std::shared_ptr<const data::Dataset> test_set;
  try {
    test_set = open_dataset(o.data, data::Split::Test, o.model.resolution);
  } catch (const Error&) {
    test_set = train_set;  // no test split: show training images
  }
  const data::Pipeline train_pipe = make_pipeline(o.data, o.model.resolution, true);
  const data::Pipeline show_pipe = make_pipeline(o.data, o.model.resolution, false);
  data::LoaderConfig lc;
  lc.batch_size = o.batch;
  lc.seed = data_seed;
  lc.threads = o.loader_threads;
  lc.start_batch = uint64_t(model.step());
  data::BatchLoader loader(train_set, train_pipe, lc);
#ifdef DISCO_WITH_CUDA
  std::unique_ptr<GraphedTrainStep<CUDA>> graphed;
  if constexpr (std::is_same_v<B, CUDA>) {
    if (!o.no_cuda_graph) graphed = std::make_unique<GraphedTrainStep<CUDA>>(model);
  }
  bool warned_fallback = false;
#endif
  auto train_step = [&](const Tensor<B>& a, const Tensor<B>& b) {
#ifdef DISCO_WITH_CUDA
    if constexpr (std::is_same_v<B, CUDA>) {
      if (graphed) {
        StepLosses l = graphed->step(a, b).get();
        if (!graphed->fallback_reason().empty() && !warned_fallback) {
          std::cerr << "warning: CUDA graph capture failed, training continues without graphs (--no-cuda-graph avoids the attempt): "
                    << graphed->fallback_reason() << "\n";
          warned_fallback = true;
        }
        return l;
      }
    }
#endif
    return model.train_step(a, b);
  };
  const size_t nd = size_t(std::max(1, o.num_display));
  Tensor<B> guides = to_tensor<B>(data::first_images(*test_set, data::Domain::A, nd, show_pipe));
  Tensor<B> bases = to_tensor<B>(data::first_images(*test_set, data::Domain::B, nd, show_pipe));
  if (!o.quiet)
    std::cerr << "disco train: " << o.model.describe() << ", batch " << o.batch << ", " << train_set->describe()
              << " (A " << train_set->size(data::Domain::A) << ", B " << train_set->size(data::Domain::B)
              << " images), device " << B::name
              << (std::is_same_v<B, CPU> ? "" : (o.no_cuda_graph ? " (eager steps)" : " (steps as CUDA graphs)"))
              << cuda_settings_note<B>()
              << ", out " << o.out << "\n";

  const std::map<std::string, std::string> meta = {{"data_seed", std::to_string(data_seed)},
                                                   {"crop", std::to_string(o.data.crop)},
                                                   {"dataset", train_set->describe()}};
  auto save = [&] {
    save_checkpoint(model, ckpt_path, meta);
    // the inference file also records the crop used in training (transfer/remove read it)
    save_weights(model, weights_path, {{"crop", std::to_string(o.data.crop)}});
  };
  auto show = [&](int64_t step) {
    char name[64];
    std::snprintf(name, sizeof name, "grid_%07lld.png", (long long)step);
    data::save_png((fs::path(o.out) / name).string(), transfer_grid(model, bases, guides));
    std::snprintf(name, sizeof name, "removal_%07lld.png", (long long)step);
    data::save_png((fs::path(o.out) / name).string(), removal_grid(model, guides));
  };

  const std::string csv_path = (fs::path(o.out) / "log.csv").string();
  const bool fresh_log = model.step() == 0 || !fs::exists(csv_path);
  if (!fresh_log) trim_log(csv_path, model.step());
  std::FILE* csv = std::fopen(csv_path.c_str(), fresh_log ? "w" : "a");
  DISCO_CHECK(csv, "cannot write the training log '", csv_path, "'");
  if (fresh_log) std::fprintf(csv, "step,recon_a,recon_b,adv,ae,disc,ae_grad_norm,disc_grad_norm,seconds\n");

  g_stop = false;
  auto old_handler = std::signal(SIGINT, on_sigint);
  const bool tty = isatty(fileno(stderr));
  std::deque<double> recent;  // seconds of the last steps
  const auto t_start = std::chrono::steady_clock::now();
  try {
    while (model.step() < o.iters && !g_stop) {
      const auto t0 = std::chrono::steady_clock::now();
      data::BatchPair bp = loader.next();
      const int64_t step = model.step();
      StepLosses l = train_step(to_tensor<B>(bp.a), to_tensor<B>(bp.b));
      const double dt = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t_start).count();
      std::fprintf(csv, "%lld,%.7g,%.7g,%.7g,%.7g,%.7g,%.7g,%.7g,%.3f\n", (long long)step, l.recon_a, l.recon_b, l.adv,
                   l.ae, l.disc, l.ae_grad_norm, l.disc_grad_norm, elapsed);
      std::fflush(csv);
      recent.push_back(dt);
      if (recent.size() > 20) recent.pop_front();
      double mean_dt = 0;
      for (double d : recent) mean_dt += d;
      mean_dt /= double(recent.size());
      const bool last = model.step() >= o.iters;
      if (!o.quiet && (tty || step % o.progress_iter == 0 || last)) {
        char line[256];
        std::snprintf(line, sizeof line,
                      "step %lld/%lld  recon A %.4f B %.4f  adv %.4f  disc %.4f  %.1f pairs/s  ETA %s",
                      (long long)model.step(), (long long)o.iters, l.recon_a, l.recon_b, l.adv, l.disc,
                      o.batch / mean_dt, fmt_duration(mean_dt * double(o.iters - model.step())).c_str());
        if (tty) std::fprintf(stderr, "\r%-110s", line);
        else std::fprintf(stderr, "%s\n", line);
      }
      if (step % o.display_iter == 0 || last) show(model.step());
      if ((step % o.save_iter == 0 && step > 0) || last) save();
    }
  } catch (...) {
    std::signal(SIGINT, old_handler);
    std::fclose(csv);
    throw;
  }
  std::signal(SIGINT, old_handler);
  std::fclose(csv);
  if (tty && !o.quiet) std::fprintf(stderr, "\n");
  if (g_stop) {
    save();
    std::cerr << "interrupted: checkpoint saved at step " << model.step() << " to " << ckpt_path
              << " (continue with --resume " << o.out << ")\n";
    throw Error("interrupted by Ctrl-C (checkpoint saved)");
  }
  if (!o.quiet) std::cerr << "done: " << model.step() << " steps; checkpoint " << ckpt_path << ", weights " << weights_path << "\n";
  return ckpt_path;
}
}  // namespace

void add_train_options(CLI::App* cmd, TrainOptions& o) {
  add_data_options(cmd, o.data);
  cmd->add_option("--out", o.out, "output folder (checkpoints, grids, log.csv)")->capture_default_str();
  cmd->add_option("--resume,--load", o.resume, "continue from a checkpoint file or a previous --out folder");
  cmd->add_option("--device", o.device, "cpu or cuda")->capture_default_str();
  cmd->add_option("--lr", o.model.lr, "autoencoder learning rate")->capture_default_str();
  cmd->add_option("--disc_lr,--disc-lr", o.model.disc_lr, "discriminator learning rate")->capture_default_str();
  cmd->add_option("--bs,--batch", o.batch, "batch size per domain")->capture_default_str();
  cmd->add_option("--iters", o.iters, "total training steps")->capture_default_str();
  cmd->add_option("--resize,--resolution", o.model.resolution, "image size: 64, 128 or 256")->capture_default_str();
  cmd->add_option("--sep", o.model.sep, "channels of the separate code")->capture_default_str();
  cmd->add_option("--disc_weight,--disc-weight", o.model.disc_weight, "weight of the adversarial term")
      ->capture_default_str();
  cmd->add_option("--num_display,--num-display", o.num_display, "images per side of the result grids")
      ->capture_default_str();
  cmd->add_option("--progress_iter,--progress-iter", o.progress_iter, "progress line every N steps (no terminal)")
      ->capture_default_str();
  cmd->add_option("--display_iter,--display-iter", o.display_iter, "result grids every N steps")->capture_default_str();
  cmd->add_option("--save_iter,--save-iter", o.save_iter, "checkpoint every N steps")->capture_default_str();
  cmd->add_option("--seed", o.model.seed, "parameter initialisation seed")->capture_default_str();
  cmd->add_option("--data-seed", o.data_seed, "data order and flip seed")->capture_default_str();
  cmd->add_option("--code-channels", o.model.code_channels, "channels of the whole code")->capture_default_str();
  cmd->add_option("--base-channels", o.model.base_channels, "width of the first encoder layer")->capture_default_str();
  cmd->add_option("--disc-hidden", o.model.disc_hidden, "hidden units of the discriminator")->capture_default_str();
  cmd->add_option("--recon-loss", o.recon, "mse or l1")->capture_default_str();
  cmd->add_option("--clip", o.model.clip, "gradient-norm clip of both steps (0: off)")->capture_default_str();
  cmd->add_option("--loader-threads", o.loader_threads, "background image-loading threads")->capture_default_str();
  cmd->add_flag("--train-prenorm-biases", o.model.train_prenorm_biases,
                "also update the conv biases an InstanceNorm cancels (the official code does; no effect on outputs)");
  cmd->add_option("--conv-algo", o.conv_algo,
                  "--device cuda: convolutions by disco's kernels, cudnn, or auto (per layer the faster of the two, "
                  "timed on its first call; disco's kernels without cuDNN) (default auto)");
  cmd->add_option("--math", o.math,
                  "--device cuda: fp32, tf32 or bf16 (tensor cores) for convolutions and GEMMs (default tf32)");
  cmd->add_flag("--cuda-graph", o.cuda_graph,
                "--device cuda: run each training step as one CUDA graph (the default; falls back to eager "
                "steps with a warning if the capture fails)");
  cmd->add_flag("--no-cuda-graph", o.no_cuda_graph, "--device cuda: launch each training step's kernels one by one");
}

std::string run_training(TrainOptions o) {
  DISCO_CHECK(o.recon == "mse" || o.recon == "l1", "--recon-loss: '", o.recon, "' is not mse or l1");
  o.model.recon_loss = o.recon == "l1" ? LossKind::L1 : LossKind::MSE;
  const int res = o.model.resolution;
  DISCO_CHECK(res == 64 || res == 128 || res == 256, "--resize: resolution ", res,
              " is not supported (expected 64, 128 or 256)");
  o.model.validate();
  DISCO_CHECK(o.batch >= 1, "--bs: batch size ", o.batch, " must be at least 1");
  DISCO_CHECK(o.iters >= 0, "--iters must be >= 0");
  DISCO_CHECK(o.progress_iter >= 1 && o.display_iter >= 1 && o.save_iter >= 1,
              "--progress_iter, --display_iter and --save_iter must be >= 1");
  DISCO_CHECK(!(o.cuda_graph && o.no_cuda_graph), "--cuda-graph and --no-cuda-graph contradict each other");
  // training on the GPU defaults to the fastest convolutions: per layer disco's kernels or
  // cuDNN (ConvAlgo::Auto; measured on an H200, 7.7 ms against 10.35 ms a TF32 graphed step)
  const std::string conv_algo = o.device == "cuda" && o.conv_algo.empty() ? "auto" : o.conv_algo;
  return on_device(o.device, conv_algo, o.math, "tf32",
                   o.cuda_graph ? "--cuda-graph" : (o.no_cuda_graph ? "--no-cuda-graph" : ""),
                   [&](auto backend) { return train_on<decltype(backend)>(o); });
}

void add_train(CLI::App& app) {
  auto o = std::make_shared<TrainOptions>();
  auto* cmd = app.add_subcommand("train", "train a model (official train.py options and defaults)");
  add_train_options(cmd, *o);
  cmd->callback([o] { run_training(*o); });
}

}  // namespace disco::cli
