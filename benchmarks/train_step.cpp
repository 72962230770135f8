// Median time of one full training step (autoencoder + discriminator, official rule).
//   train_step --device cpu --resolution 128 --batch 8 --steps 5 [--warmup 1] [--sep 25]
// Prints each step's milliseconds and a line `median_ms: X`; with --device cuda also
// `peak_mem_bytes: N` (peak device memory held by disco's caching allocator).
#include <algorithm>
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
template <class B>
int run(const disco::ModelConfig& cfg, int batch, int steps, int warmup) {
  disco::ContentDisentangler<B> model(cfg);
  disco::Generator gen(1);
  auto a = disco::Tensor<B>::rand({batch, 3, cfg.resolution, cfg.resolution}, gen, disco::DType::F32, -1, 1);
  auto b = disco::Tensor<B>::rand({batch, 3, cfg.resolution, cfg.resolution}, gen, disco::DType::F32, -1, 1);
  std::vector<double> ms;
  for (int i = 0; i < warmup + steps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    auto l = model.train_step(a, b);  // reads the losses back, so the step has finished
    const double dt = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    if (i >= warmup) {
      ms.push_back(dt);
      std::cout << "step " << i - warmup << ": " << dt << " ms (ae loss " << l.ae << ")\n";
    }
  }
  std::sort(ms.begin(), ms.end());
  const double median = ms.empty() ? 0 : ms[ms.size() / 2];
  std::cout << "device: " << B::name << ", " << cfg.describe() << ", batch " << batch << "\n";
  std::cout << "median_ms: " << median << "\n";
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  disco::prefer_passive_openmp(argv);
  disco::ModelConfig cfg;
  std::string device = "cpu";
  int batch = 8, steps = 5, warmup = 1;
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
    else if (a == "--batch") batch = std::stoi(val());
    else if (a == "--steps") steps = std::stoi(val());
    else if (a == "--warmup") warmup = std::stoi(val());
    else if (a == "--sep") cfg.sep = std::stoi(val());
    else if (a == "--base-channels") cfg.base_channels = std::stoi(val());
    else if (a == "--code-channels") cfg.code_channels = std::stoi(val());
    else {
      std::cerr << "train_step: unknown option " << a
                << " (expected --device --resolution --batch --steps --warmup --sep --base-channels --code-channels)\n";
      return 2;
    }
  }
  try {
    if (device == "cpu") return run<disco::CPU>(cfg, batch, steps, warmup);
#if defined(DISCO_WITH_CUDA)
    if (device == "cuda") {
      if (!disco::cuda::device_available()) {
        std::cout << "SKIP: no CUDA device\n";
        return 0;
      }
      const int rc = run<disco::CUDA>(cfg, batch, steps, warmup);
      // high-water mark of disco's caching allocator over the whole run (model, Adam state,
      // inputs, activations; bin sizes), comparable with torch.cuda.max_memory_allocated()
      std::cout << "peak_mem_bytes: " << disco::cuda::memory_stats().peak_bytes << "\n";
      return rc;
    }
#endif
    std::cerr << "train_step: --device " << device << " is not available in this build\n";
    return 2;
  } catch (const disco::Error& e) {
    std::cerr << "train_step: error: " << e.what() << "\n";
    return 1;
  }
}
