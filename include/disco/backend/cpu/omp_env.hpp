#pragma once
// OpenMP's default wait policy lets idle worker threads spin between parallel regions.
// On a machine shared with other work (data-loading threads, other processes) the
// spinning threads steal the cores the real work needs: a training step on 2 busy cores
// measured 7x slower than with OMP_WAIT_POLICY=passive. The policy is read when the
// OpenMP runtime loads, before main(), so a program that wants the passive policy by
// default re-executes itself once with the variable set:
//
//   int main(int argc, char** argv) { disco::prefer_passive_openmp(argv); ... }
//
// Nothing happens when OMP_WAIT_POLICY is already set (the user's choice wins) or when
// the re-exec fails (the program just goes on). For programs only; library code never
// calls this.
#include <cstdlib>
#include <unistd.h>

namespace disco {

inline void prefer_passive_openmp(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr) return;
  if (setenv("OMP_WAIT_POLICY", "passive", 1) != 0) return;
  execv("/proc/self/exe", argv);  // returns only on failure: carry on with the default policy
}

}  // namespace disco
