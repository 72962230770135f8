// Catch2 main of the CUDA tests: without a CUDA device print a visible skip line and return
// 77 (ctest's SKIP_RETURN_CODE), so CI machines without a GPU report "skipped", not "passed".
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include <cstdio>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/runtime.hpp"
#include "common.hpp"

int main(int argc, char** argv) {
  if (!disco::cuda::device_available()) {
    std::printf("SKIP: no CUDA device\n");
    std::fflush(stdout);
    return 77;
  }
  std::printf("disco_cuda_tests on %s (sm_%d, %d SMs), cuDNN %d\n", disco::cuda::device_name().c_str(),
              disco::cuda::device_compute_capability(), disco::cuda::device_sm_count(), disco::cuda::cudnn_version());
  std::printf("random seed %u (set DISCO_TEST_SEED to replay)\n", unsigned(dtest::seed()));
  std::fflush(stdout);
  const int failed = Catch::Session().run(argc, argv);
  return failed == 77 ? 78 : failed;  // never let failures look like a skip
}
