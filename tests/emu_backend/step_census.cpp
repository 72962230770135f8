// What one training step puts on the GPU, counted in the CPU emulation of disco::cuda:
// kernel launches (by kernel), copies, memsets and cuBLAS GEMMs of an eager step, and the
// node count of the same step captured as a CUDA graph. The counts depend on the model's
// shape and the launchers' choices (split-K, dgrad phases), not on the hardware, so the
// emulation gives the real numbers; they say how much launch overhead an eager step pays.
//   emu_step_census [--resolution 128] [--batch 1] [--math tf32] [--no-graph]
// (the batch size changes no count of the default 128 px model's launches but the time the
// emulation takes: a few minutes at batch 1). The conv launch plans are the heuristic's
// (tuning off): tuned plans depend on the GPU's timings -- on a GPU the number of split-K
// reductions is whatever the tuner picked.
#include <cstdio>
#include <cstring>
#include <map>
#include <string>

#include "disco/cuda.hpp"
#include "emu_runtime.hpp"

int main(int argc, char** argv) {
  disco::ModelConfig cfg;
  int batch = 1;
  std::string math = "tf32";
  bool graph = true;
  for (int i = 1; i < argc; ++i)
    if (!std::strcmp(argv[i], "--no-graph")) graph = false;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--resolution")) cfg.resolution = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--batch")) batch = std::atoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--math")) math = argv[i + 1];
  }
  namespace dc = disco::cuda;
  dc::set_conv_autotune(false);
  dc::conv_settings().mode = math == "bf16" ? dc::MathMode::BF16 : math == "fp32" ? dc::MathMode::FP32 : dc::MathMode::TF32;
  disco::ContentDisentangler<disco::CUDA> model(cfg);
  disco::Generator gen(1);
  const int64_t R = cfg.resolution;
  auto a = disco::Tensor<disco::CUDA>::rand({batch, 3, R, R}, gen, disco::DType::F32, -1, 1);
  auto b = disco::Tensor<disco::CUDA>::rand({batch, 3, R, R}, gen, disco::DType::F32, -1, 1);
  model.train_step(a, b);  // first step: Adam's moments, one-time set-up
  auto& counts = disco_emu::op_counts();
  counts.clear();
  model.train_step_async(a, b);  // what a steady-state step enqueues (losses not read back)
  std::map<std::string, uint64_t> step = counts;
  uint64_t kernels = 0, other = 0;
  for (auto& [name, n] : step) {
    if (name == "memcpy" || name == "memset" || name == "cublasGemmEx") other += n;
    else kernels += n;
  }
  std::printf("model: %s, batch %d, math %s\n", cfg.describe().c_str(), batch, math.c_str());
  std::printf("one eager training step: %llu kernel launches, %llu memcpy, %llu memset, %llu cuBLAS GEMMs\n",
              (unsigned long long)kernels, (unsigned long long)step["memcpy"], (unsigned long long)step["memset"],
              (unsigned long long)step["cublasGemmEx"]);
  std::printf("launches by kernel:\n");
  for (auto& [name, n] : step)
    if (name != "memcpy" && name != "memset" && name != "cublasGemmEx")
      std::printf("  %6llu  %s\n", (unsigned long long)n, name.c_str());
  if (!graph) return 0;
  disco::GraphedTrainStep<> g(model, 1);
  for (int i = 0; i < 3; ++i) g.step(a, b).get();
  std::printf("as a CUDA graph: %s, %zu nodes; one replay = 1 launch\n", g.graph_ready() ? "captured" : "NOT captured",
              g.graph_nodes());
  (void)other;
  return g.graph_ready() ? 0 : 1;
}
