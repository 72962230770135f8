// CPU convolution benchmark: fprop / dgrad / wgrad at the model's layer shapes.
//
//   disco_bench_ops_cpu [--batch N] [--reps N] [--quick] [--double] [--threads N]
//                       [--schedule auto|per-thread|shared]
//
// For every layer it prints the Conv2dProblem, then for fprop, dgrad and wgrad the median
// time of --reps runs (after warm-up) in ms and GFLOP/s (2*N*P*Q*K*C*R*S per op). For the
// decoder's transposed convolutions the forward pass is dgrad (bwd-data is fprop). A plain
// Eigen GEMM (1024^3) line gives the machine's reference rate. --quick is a tiny smoke run.
// Runs with OMP_WAIT_POLICY=passive unless the variable is already set (see omp_env.hpp).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include <Eigen/Core>

#include "disco/backend/cpu/conv2d.hpp"
#include "disco/backend/cpu/omp_env.hpp"
#include "disco/problem/conv2d_problem.hpp"

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

struct Options {
  int batch = 8;
  int reps = 10;
  bool quick = false;
  bool dbl = false;
  int threads = 0;
  int schedule = 0;
};

struct Layer {
  std::string name;
  disco::Conv2dProblem p;
  bool transposed;
};

template <class F>
double median_ms(int reps, int warmup, F&& f) {
  for (int i = 0; i < warmup; ++i) f();
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    f();
    t.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

template <class T>
std::vector<T> random_vec(int64_t n, unsigned seed) {
  std::mt19937 g(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<T> v(static_cast<size_t>(n));
  for (auto& e : v) e = T(d(g));
  return v;
}

template <class T>
void gemm_line(int n, int reps) {
  using M = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  M a = M::Random(n, n), b = M::Random(n, n), c(n, n);
  const double ms = median_ms(reps, 1, [&] { c.noalias() = a * b; });
  std::printf("%-44s %9.3f ms %8.1f GFLOP/s  (Eigen GEMM %dx%dx%d, %d threads)\n",
              "reference: plain GEMM", ms, 2.0 * n * n * n / ms * 1e-6, n, n, n, Eigen::nbThreads());
}

std::vector<Layer> model_layers(int N, bool quick) {
  using disco::make_conv2d_problem;
  using disco::make_conv_transpose2d_problem;
  std::vector<Layer> L;
  // encoder: conv k4 s2 p1, Cin -> Cout at input size H
  auto enc = [&](int cin, int cout, int h) {
    L.push_back({"enc " + std::to_string(cin) + "->" + std::to_string(cout) + " @" + std::to_string(h),
                 make_conv2d_problem(N, cin, h, h, cout, 4, 4, 2, 1), false});
  };
  // decoder: conv-transpose k4 s2 p1, Cin -> Cout at input size h (output 2h)
  auto dec = [&](int cin, int cout, int h) {
    L.push_back({"dec^T " + std::to_string(cin) + "->" + std::to_string(cout) + " @" + std::to_string(h),
                 make_conv_transpose2d_problem(N, cin, h, h, cout, 4, 4, 2, 1, 0), true});
  };
  if (quick) {
    enc(3, 8, 32);
    enc(32, 48, 4);
    dec(64, 32, 2);
    dec(16, 3, 16);
    return L;
  }
  enc(3, 32, 128);
  enc(32, 64, 64);
  enc(64, 128, 32);
  enc(128, 256, 16);
  enc(256, 487, 8);
  enc(487, 487, 4);
  enc(128, 128, 16);  // E2
  enc(128, 25, 4);    // E2
  dec(512, 512, 2);
  dec(512, 256, 4);
  dec(256, 128, 8);
  dec(128, 64, 16);
  dec(64, 32, 32);
  dec(32, 3, 64);
  return L;
}

template <class T>
int run(const Options& o) {
  std::printf("disco CPU conv benchmark: %s, batch %d, %d reps (median), %d threads, schedule %s\n",
              sizeof(T) == 4 ? "float" : "double", o.batch, o.reps, disco::cpu::max_threads(),
              o.schedule == 0 ? "auto" : o.schedule == 1 ? "per-thread" : "shared");
  gemm_line<T>(o.quick ? 256 : 1024, o.quick ? 3 : std::max(3, o.reps / 2));
  std::printf("%-22s %-40s | %18s | %18s | %18s\n", "layer", "problem (NCHW -> NKPQ)", "fprop ms  GF/s",
              "dgrad ms  GF/s", "wgrad ms  GF/s");
  double tot[3] = {0, 0, 0};
  for (const auto& l : model_layers(o.batch, o.quick)) {
    const auto& p = l.p;
    const auto x = random_vec<T>(p.x_size(), 1), w = random_vec<T>(p.w_size(), 2);
    const auto dy = random_vec<T>(p.y_size(), 3), b = random_vec<T>(p.K, 4);
    std::vector<T> y(size_t(p.y_size())), dx(size_t(p.x_size())), dw(size_t(p.w_size()));
    const int warm = o.quick ? 1 : 2;
    const double ms[3] = {
        median_ms(o.reps, warm, [&] { disco::cpu::conv2d_fprop(p, x.data(), w.data(), b.data(), y.data()); }),
        median_ms(o.reps, warm, [&] { disco::cpu::conv2d_dgrad(p, dy.data(), w.data(), dx.data()); }),
        median_ms(o.reps, warm, [&] { disco::cpu::conv2d_wgrad(p, x.data(), dy.data(), dw.data()); })};
    char shape[96];
    std::snprintf(shape, sizeof shape, "%dx%dx%dx%d -> %dx%dx%dx%d k%dx%d s%d p%d", p.N, p.C, p.H, p.W, p.N, p.K,
                  p.P, p.Q, p.R, p.S, p.stride_h, p.pad_h);
    std::printf("%-22s %-40s |", l.name.c_str(), shape);
    for (int i = 0; i < 3; ++i) {
      std::printf(" %8.3f %7.1f  |", ms[i], p.flops() / ms[i] * 1e-6);
      tot[i] += ms[i];
    }
    std::printf("%s\n", l.transposed ? "  (fwd = dgrad)" : "");
  }
  std::printf("%-63s | %8.3f %9s | %8.3f %9s | %8.3f %9s |\n", "total ms", tot[0], "", tot[1], "", tot[2], "");
  return 0;
}

int usage(const char* argv0) {
  std::fprintf(stderr,
               "usage: %s [--batch N] [--reps N] [--quick] [--double] [--threads N] "
               "[--schedule auto|per-thread|shared]\n",
               argv0);
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  disco::prefer_passive_openmp(argv);  // OMP_WAIT_POLICY=passive unless set by the user
  Options o;
  bool reps_set = false, batch_set = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next_int = [&](int& out) {
      if (i + 1 >= argc) return false;
      out = std::atoi(argv[++i]);
      return out > 0;
    };
    if (a == "--batch") {
      if (!next_int(o.batch)) return usage(argv[0]);
      batch_set = true;
    } else if (a == "--reps") {
      if (!next_int(o.reps)) return usage(argv[0]);
      reps_set = true;
    } else if (a == "--threads") {
      if (!next_int(o.threads)) return usage(argv[0]);
    } else if (a == "--quick") {
      o.quick = true;
    } else if (a == "--double") {
      o.dbl = true;
    } else if (a == "--schedule") {
      if (i + 1 >= argc) return usage(argv[0]);
      const std::string s = argv[++i];
      if (s == "auto") o.schedule = 0;
      else if (s == "per-thread") o.schedule = 1;
      else if (s == "shared") o.schedule = 2;
      else return usage(argv[0]);
    } else {
      return usage(argv[0]);
    }
  }
  if (o.quick) {
    if (!reps_set) o.reps = 1;
    if (!batch_set) o.batch = 2;
  }
#ifdef _OPENMP
  if (o.threads > 0) omp_set_num_threads(o.threads);
#endif
  disco::cpu::conv2d_settings().force_schedule = o.schedule;
  try {
    return o.dbl ? run<double>(o) : run<float>(o);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
}
