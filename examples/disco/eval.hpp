#pragma once
#include <nlohmann/json.hpp>

#include "common.hpp"

namespace disco::cli {

struct EvalOptions {
  std::string model, out = "eval";
  DataOptions data;
  int count = 1000;      // test images per domain (half train the leakage probe, half test it)
  int num_display = 8;   // grid size
  std::string device = "cpu", math;  // --device cpu|cuda, --math (cuda: fp32|tf32|bf16, default tf32)
};

// Grids, and on the synthetic data PSNRs against ground truth and the leakage probe.
// Writes OUT/eval.json and returns its content.
nlohmann::json run_eval(const EvalOptions& o);

}  // namespace disco::cli
