// The `disco` tool: train, transfer, remove, eval, split-celeba, step, demo.
// Every failure ends in one line on stderr and a non-zero exit status.
#include <unistd.h>

#include <cstdio>
#include <iostream>

#include "common.hpp"
#include "disco/backend/cpu/omp_env.hpp"

int main(int argc, char** argv) {
  disco::prefer_passive_openmp(argv);
  CLI::App app{"disco: unsupervised image content transfer by emerging disentanglement (Press et al., ICLR 2019)"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "help for every command");
  disco::cli::add_train(app);
  disco::cli::add_apply(app);
  disco::cli::add_eval(app);
  disco::cli::add_step(app);
  disco::cli::add_split_celeba(app);
  disco::cli::add_demo(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e);
    std::cerr << "disco: error: " << e.what() << " (see disco --help)\n";
    return 2;
  } catch (const std::exception& e) {
    // On a terminal the training progress line ends in '\r', not '\n': finish it first.
    // Elsewhere (logs, pipes) the error is exactly one line.
    std::cerr << (isatty(fileno(stderr)) ? "\n" : "") << "disco: error: " << e.what() << "\n";
    return 1;
  }
  return 0;
}
