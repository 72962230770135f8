// Median time of one full training step (autoencoder + discriminator, official rule).
//   train_step --device cpu --resolution 128 --batch 8 --steps 5 [--warmup 1] [--sep 25]
//   train_step --device cuda --math bf16 --graph [--conv-algo disco|cudnn|auto] ...
// Prints each step's milliseconds and a line `median_ms: X` (every step reads its losses
// back, so each timed step has finished); then `pipelined_ms: X`, the mean of the same
// number of steps run back to back with only the last one read back (what a training loop
// that logs rarely gets). With --device cuda also `peak_mem_bytes: N` (peak device memory
// held by disco's caching allocator over the run) and `steady_peak_mem_bytes: N` (over the
// timed steps only, without the warm-up's conv tuning and graph capture) and `conv_plans: ...`
// (the convolution launch plans in use, by kernel family). --math (fp32, tf32, bf16; default fp32) and
// --conv-algo pick cuda::conv_settings(); --graph runs the steps through GraphedTrainStep
// (the warm-up steps include its eager steps and the capture). --conv-prefer FAMILY (nhwc,
// wgmma, ...: cuda::set_conv_prefer) runs every convolution on that kernel family where it is
// offered, with per-layer tuning off.
// --profile-step (CUDA): the first timed step runs between cuda::profiler_start() and
// profiler_stop(), so `ncu --profile-from-start off` profiles exactly one step's kernels
// (tools/gpu_check.sh's ncu_step; tools/ncu_summary.py --breakdown sums them by category).
#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <type_traits>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <string>
#include <vector>

#include <disco/backend/cpu/omp_env.hpp>
#include <disco/disco.hpp>
#if defined(DISCO_WITH_CUDA)
#include <disco/cuda.hpp>
#endif

namespace {
#if defined(DISCO_WITH_CUDA)
// "N plans (fprop a, dgrad b, wgrad c); tile t, paired p, grouped g, thin h, smallout s,
// nhwc n, wgmma w, cudnn c": the step's convolution launch plans by family, one per distinct
// launch (problem, math mode, dgrad phase batch; cuda::conv_plans_in_use).
std::string conv_plan_census(const std::vector<disco::cuda::ConvPlanUse>& uses) {
  static const char* const kFamilies[] = {"tile", "paired", "grouped", "thin", "smallout", "nhwc", "wgmma", "cudnn"};
  constexpr int kN = int(sizeof(kFamilies) / sizeof(kFamilies[0]));
  int dirs[3] = {0, 0, 0}, fam[kN] = {};
  for (const auto& u : uses) {
    ++dirs[int(u.dir == disco::cuda::ConvDir::Fprop ? 0 : u.dir == disco::cuda::ConvDir::Dgrad ? 1 : 2)];
    for (int f = 0; f < kN; ++f)
      if (u.family == kFamilies[f]) ++fam[f];
  }
  std::string out = std::to_string(uses.size()) + " plans (fprop " + std::to_string(dirs[0]) + ", dgrad " +
                    std::to_string(dirs[1]) + ", wgrad " + std::to_string(dirs[2]) + ");";
  for (int f = 0; f < kN; ++f) out += std::string(f ? "," : "") + " " + kFamilies[f] + " " + std::to_string(fam[f]);
  return out;
}
#endif
struct Options {
  int batch = 8, steps = 5, warmup = 1;
  bool graph = false;
  bool profile_step = false;
};

template <class B>
int run(const disco::ModelConfig& cfg, const Options& o) {
  disco::ContentDisentangler<B> model(cfg);
  disco::Generator gen(1);
  auto a = disco::Tensor<B>::rand({o.batch, 3, cfg.resolution, cfg.resolution}, gen, disco::DType::F32, -1, 1);
  auto b = disco::Tensor<B>::rand({o.batch, 3, cfg.resolution, cfg.resolution}, gen, disco::DType::F32, -1, 1);
  std::function<disco::PendingLosses<B>()> step = [&] { return model.train_step_async(a, b); };
#if defined(DISCO_WITH_CUDA)
  std::unique_ptr<disco::GraphedTrainStep<disco::CUDA>> graphed;
  if constexpr (std::is_same_v<B, disco::CUDA>) {
    if (o.graph) {
      graphed = std::make_unique<disco::GraphedTrainStep<disco::CUDA>>(model);
      step = [&] { return graphed->step(a, b); };
    }
  }
#endif
  std::vector<double> ms;
#if defined(DISCO_WITH_CUDA)
  size_t warmup_peak = 0;  // device peak over the warm-up (CUDA)
#endif
  for (int i = 0; i < o.warmup + o.steps; ++i) {
    [[maybe_unused]] const bool profiled = o.profile_step && i == o.warmup;
#if defined(DISCO_WITH_CUDA)
    if constexpr (std::is_same_v<B, disco::CUDA>) {
      if (profiled) disco::cuda::profiler_start();
    }
#endif
    const auto t0 = std::chrono::steady_clock::now();
    const disco::StepLosses l = step().get();  // reads the losses back: the step has finished
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
#if defined(DISCO_WITH_CUDA)
    if constexpr (std::is_same_v<B, disco::CUDA>) {
      if (profiled) {
        disco::cuda::profiler_stop();
        std::cout << "profiled_step: " << i - o.warmup << " (between cudaProfilerStart and cudaProfilerStop)\n";
      }
    }
#endif
#if defined(DISCO_WITH_CUDA)
    // the steady-state peak (steady_peak_mem_bytes) leaves out the warm-up: conv tuning's
    // scratch, the graph capture, cuDNN's algorithm search
    if constexpr (std::is_same_v<B, disco::CUDA>) {
      if (i + 1 == o.warmup) {
        warmup_peak = disco::cuda::memory_stats().peak_bytes;
        disco::cuda::reset_peak_memory();
      }
    }
#endif
    if (i >= o.warmup) {
      ms.push_back(dt);
      std::cout << "step " << i - o.warmup << ": " << dt << " ms (ae loss " << l.ae << ")\n";
    }
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms.empty() ? 0 : ms[ms.size() / 2];
  // back to back: only the last step's losses are read
  const auto t0 = std::chrono::steady_clock::now();
  disco::PendingLosses<B> last;
  for (int i = 0; i < o.steps; ++i) last = step();
  const disco::StepLosses l = last.get();
  const double pipelined =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() / std::max(1, o.steps);
  std::cout << "device: " << B::name << ", " << cfg.describe() << ", batch " << o.batch << "\n";
#if defined(DISCO_WITH_CUDA)
  if constexpr (std::is_same_v<B, disco::CUDA>) {
    const auto& s = disco::cuda::conv_settings();
    std::cout << "cuda: conv " << disco::cuda::to_string(s.algo) << ", math " << disco::cuda::to_string(s.mode);
    if (graphed)
      std::cout << ", graph " << (graphed->graph_ready() ? "on (" + std::to_string(graphed->graph_nodes()) + " nodes)"
                                                         : "FAILED: " + graphed->fallback_reason());
    std::cout << "\n";
    if (graphed && !graphed->graph_ready()) return 1;
  }
#endif
#if defined(DISCO_WITH_CUDA)
  if constexpr (std::is_same_v<B, disco::CUDA>) {
    // high-water marks of disco's caching allocator (model, Adam state, inputs, activations;
    // bin sizes), comparable with torch.cuda.max_memory_allocated(): over the whole run, and
    // over the timed steps alone
    const size_t steady = disco::cuda::memory_stats().peak_bytes;
    std::cout << "peak_mem_bytes: " << std::max(warmup_peak, steady) << "\n";
    if (o.warmup > 0) std::cout << "steady_peak_mem_bytes: " << steady << "\n";
    // which kernels the step's convolutions run: the tuned plans by family
    std::cout << "conv_plans: " << conv_plan_census(disco::cuda::conv_plans_in_use()) << "\n";
  }
#endif
  std::cout << "median_ms: " << median << "\n";
  std::cout << "pipelined_ms: " << pipelined << " (ae loss " << l.ae << ")\n";
  return std::isfinite(l.ae) ? 0 : 1;
}
}  // namespace

int main(int argc, char** argv) {
  disco::prefer_passive_openmp(argv);
  disco::ModelConfig cfg;
  std::string device = "cpu", math, conv_algo, conv_prefer;
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto val = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::cerr << "train_step: " << a << " needs a value\n";
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--device") device = val();
    else if (a == "--resolution") cfg.resolution = std::stoi(val());
    else if (a == "--batch") o.batch = std::stoi(val());
    else if (a == "--steps") o.steps = std::stoi(val());
    else if (a == "--warmup") o.warmup = std::stoi(val());
    else if (a == "--math") math = val();
    else if (a == "--conv-algo") conv_algo = val();
    else if (a == "--conv-prefer") conv_prefer = val();
    else if (a == "--graph") o.graph = true;
    else if (a == "--profile-step") o.profile_step = true;
    else if (a == "--sep") cfg.sep = std::stoi(val());
    else if (a == "--base-channels") cfg.base_channels = std::stoi(val());
    else if (a == "--code-channels") cfg.code_channels = std::stoi(val());
    else {
      std::cerr << "train_step: unknown option " << a
                << " (expected --device --resolution --batch --steps --warmup --sep --base-channels --code-channels "
                   "--math --conv-algo --conv-prefer --graph --profile-step)\n";
      return 2;
    }
  }
  try {
    if (device == "cpu") {
      if (!math.empty() || !conv_algo.empty() || !conv_prefer.empty() || o.graph || o.profile_step) {
        std::cerr << "train_step: --math, --conv-algo, --conv-prefer, --graph and --profile-step apply to --device "
                     "cuda only\n";
        return 2;
      }
      return run<disco::CPU>(cfg, o);
    }
#if defined(DISCO_WITH_CUDA)
    if (device == "cuda") {
      if (!disco::cuda::device_available()) {
        std::cout << "SKIP: no CUDA device\n";
        return 0;
      }
      auto& cs = disco::cuda::conv_settings();
      if (math == "tf32") cs.mode = disco::cuda::MathMode::TF32;
      else if (math == "bf16") cs.mode = disco::cuda::MathMode::BF16;
      else if (math.empty() || math == "fp32") cs.mode = disco::cuda::MathMode::FP32;
      else {
        std::cerr << "train_step: --math " << math << " is not fp32, tf32 or bf16\n";
        return 2;
      }
      if (conv_algo == "cudnn") cs.algo = disco::cuda::ConvAlgo::Cudnn;
      else if (conv_algo == "auto") cs.algo = disco::cuda::ConvAlgo::Auto;
      else if (!conv_algo.empty() && conv_algo != "disco") {
        std::cerr << "train_step: --conv-algo " << conv_algo << " is not disco, cudnn or auto\n";
        return 2;
      }
      if (!conv_prefer.empty()) {  // every layer on one kernel family where it is offered, untuned
        if (cs.algo != disco::cuda::ConvAlgo::Custom) {
          std::cerr << "train_step: --conv-prefer needs disco's convolutions (--conv-algo disco)\n";
          return 2;
        }
        disco::cuda::set_conv_prefer(conv_prefer);  // (disco::Error for an unknown family)
        disco::cuda::set_conv_autotune(false);
      }
      disco::cuda::reset_peak_memory();
      return run<disco::CUDA>(cfg, o);
    }
#endif
    std::cerr << "train_step: --device " << device << " is not available in this build\n";
    return 2;
  } catch (const disco::Error& e) {
    std::cerr << "train_step: error: " << e.what() << "\n";
    return 1;
  }
}
