// Built by the test suite against an installed disco *with* its CUDA backend: a plain C++
// program (this project enables no CUDA language, so no nvcc) that links disco::cuda and runs
// one training step of a small ContentDisentangler<CUDA> when a GPU is present.
#include <disco/cuda.hpp>
#include <disco/disco.hpp>

#include <iostream>

int main() {
  if (!disco::cuda::device_available()) {
    std::cout << "consumer_cuda ok: linked disco::cuda without nvcc (no GPU here: nothing run)\n";
    return 0;
  }
  disco::ModelConfig cfg;
  cfg.resolution = 64;
  cfg.base_channels = 8;
  cfg.code_channels = 32;
  cfg.sep = 4;
  cfg.disc_hidden = 32;
  disco::ContentDisentangler<disco::CUDA> model(cfg);
  disco::Generator gen(1);
  auto a = disco::Tensor<disco::CPU>::randn({2, 3, 64, 64}, gen);
  auto b = disco::Tensor<disco::CPU>::randn({2, 3, 64, 64}, gen);
  const auto l = model.train_step(disco::Tensor<disco::CUDA>::from_vector(a.to_vector<float>(), a.shape()),
                                  disco::Tensor<disco::CUDA>::from_vector(b.to_vector<float>(), b.shape()));
  std::cout << "consumer_cuda ok: one CUDA training step, ae loss " << l.ae << "\n";
  return l.ae == l.ae ? 0 : 1;  // not NaN
}
