#pragma once
// The training loop behind `disco train` and `disco demo`.
#include <csignal>
#include <string>

#include "common.hpp"

namespace disco::cli {

struct TrainOptions {
  DataOptions data;
  std::string out = "out";
  std::string resume;  // checkpoint file or a previous --out folder
  std::string device = "cpu";
  ModelConfig model;
  int batch = 32;
  int64_t iters = 1250000;
  int num_display = 12;
  int64_t progress_iter = 100, display_iter = 500, save_iter = 1000;
  uint64_t data_seed = 0;
  int loader_threads = 2;
  std::string recon = "mse";
  bool quiet = false;
  // --device cuda only: convolution implementation, arithmetic of convolutions and GEMMs,
  // and whether the step runs as one CUDA graph (GraphedTrainStep).
  // (empty: the defaults, disco and tf32)
  std::string conv_algo, math;
  bool cuda_graph = false, no_cuda_graph = false;  // --device cuda: graphs are the default
};

// Registers every option of the official train.py (same names and defaults) plus disco's.
void add_train_options(CLI::App* cmd, TrainOptions& o);

// Trains until o.iters steps are done (or Ctrl-C); returns the checkpoint path.
std::string run_training(TrainOptions o);

}  // namespace disco::cli
