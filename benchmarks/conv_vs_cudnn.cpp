// conv_vs_cudnn: every Conv2d / ConvTranspose2d layer of the official model (encoders E1, E2
// and the decoder, k4 s2 p1) in fprop, dgrad and wgrad, disco's implicit-GEMM kernels against
// cuDNN's fastest algorithm (cudnnFind*AlgorithmEx) at the same precision (TF32; BF16 inputs
// with FP32 accumulation). For each case: correctness check between the two first, then CUDA
// event timing after warm-up, median of --iters runs, L2 flushed before every run.
//
//   conv_vs_cudnn [--size 128|256] [--batch 32] [--iters 20] [--warmup 3] [--math tf32,bf16]
//                 [--only SUBSTR[,SUBSTR...]] [--csv PATH] [--tuning-csv PATH] [--no-tune]
//                 [--plan SUBSTR] [--self-test] [--list]
//
// --plan: per case, disco runs the first candidate launch plan whose name contains SUBSTR
// (e.g. "nhwc": the channels-last BF16 kernels), where one exists; the other cases keep the
// heuristic / tuned plan. For profiling one kernel family (gpu_check's ncu_nhwc step).
//
// --tuning-csv: every candidate launch plan per-layer tuning timed on each case's first call
// (conv_tuning_times), one row each; the summary also compares two plan families with the
// other plans, per case the family's best time over the best other time: the grouped-loader
// tiles ("...g") and the channels-last kernels ("...nhwc": BF16 and TF32, every direction;
// their time includes packing the operands). It also prints tuning's output
// check: how many candidate plans disagreed with their layer's reference plan (each counts as
// a failure: a kernel that computes wrongly on this device) and the worst agreeing difference;
// the CSV has each plan's diff and verdict.
//
// Without a CUDA device it prints a skip line and exits 77. --self-test checks the layer table
// and the FLOP arithmetic on the CPU (a ctest). Directions are those of the Conv2dProblem: for
// a transposed convolution the forward pass is dgrad ("role" column).
// BF16 timing of cuDNN covers the cuDNN call on bf16 tensors only; disco reads and writes
// float32 and converts in its kernel (the channels-last plans: in their pack kernels, timed
// with them).
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/backend/cuda/runtime.hpp"
#include "disco/core/error.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace dc = disco::cuda;
using disco::Conv2dProblem;

namespace {

struct Layer {
  std::string net, name;
  bool transposed;
  int cin, cout, in_size;  // input spatial size of the layer
  Conv2dProblem problem(int batch) const {
    return transposed ? disco::make_conv_transpose2d_problem(batch, cin, in_size, in_size, cout, 4, 4, 2, 1, 0)
                      : disco::make_conv2d_problem(batch, cin, in_size, in_size, cout, 4, 4, 2, 1);
  }
};

// The official model's convolutions at image size s (128: 2x2 bottleneck; 256: the same list
// at double the spatial size).
std::vector<Layer> model_layers(int s) {
  std::vector<Layer> L;
  const int e1[][2] = {{3, 32}, {32, 64}, {64, 128}, {128, 256}, {256, 487}, {487, 487}};
  const int e2[][2] = {{3, 32}, {32, 64}, {64, 128}, {128, 128}, {128, 128}, {128, 25}};
  const int de[][2] = {{512, 512}, {512, 256}, {256, 128}, {128, 64}, {64, 32}, {32, 3}};
  for (int i = 0; i < 6; ++i) L.push_back({"E1", "E1.conv" + std::to_string(i + 1), false, e1[i][0], e1[i][1], s >> i});
  for (int i = 0; i < 6; ++i) L.push_back({"E2", "E2.conv" + std::to_string(i + 1), false, e2[i][0], e2[i][1], s >> i});
  for (int i = 0; i < 6; ++i)
    L.push_back({"D", "D.convT" + std::to_string(i + 1), true, de[i][0], de[i][1], (s / 64) << i});
  return L;
}

const char* role(const Layer& l, dc::ConvDir d) {
  if (d == dc::ConvDir::Wgrad) return "bwd-weight";
  const bool fwd = (d == dc::ConvDir::Fprop) != l.transposed;
  return fwd ? "forward" : "bwd-data";
}

struct Row {
  std::string layer, dir, role, math, cudnn_algo, disco_plan;
  double gflop, t_disco, t_cudnn, err;
  bool ok;
  std::vector<dc::ConvPlanTiming> tuning;  // what per-layer tuning timed (empty: not tuned)
};

// A plan of the grouped-loader tiles: "128x128g", "64x64g", "128x32g" (+ " split N").
bool grouped_plan(const std::string& plan) {
  const std::string tile = plan.substr(0, plan.find(' '));
  return !tile.empty() && tile.back() == 'g';
}
// A plan of the channels-last kernels: "128x128nhwc", "64x64nhwc", "256x128nhwc",
// "128x128nhwc4w" (+ " split N").
bool nhwc_plan(const std::string& plan) { return plan.substr(0, plan.find(' ')).find("nhwc") != std::string::npos; }
// The wgmma kernels (Hopper's warpgroup MMA on the channels-last packs): "128x128wgmma",
// "128x64wgmma".
bool wgmma_plan(const std::string& plan) {
  const std::string tile = plan.substr(0, plan.find(' '));
  return tile == "128x128wgmma" || tile == "128x64wgmma";
}
// One of the channels-last tiles with 64 x 64 warp tiles: "256x128nhwc", "128x128nhwc4w".
bool warp64_plan(const std::string& plan) {
  const std::string tile = plan.substr(0, plan.find(' '));
  return tile == "256x128nhwc" || tile == "128x128nhwc4w";
}
// The rows with their tuning timings narrowed to the channels-last plans (to compare the
// channels-last tiles among themselves).
std::vector<Row> nhwc_only(std::vector<Row> rows) {
  for (Row& r : rows) {
    std::vector<dc::ConvPlanTiming> keep;
    for (const auto& t : r.tuning)
      if (nhwc_plan(t.plan)) keep.push_back(t);
    r.tuning = std::move(keep);
  }
  return rows;
}

// From tuning's timings: the best time of a plan of the family (in_family) and the best time
// of any other plan, summed over the case's launches; NaN where a launch has no finite time of
// that kind.
template <class Pred>
void family_vs_other(const std::vector<dc::ConvPlanTiming>& t, Pred in_family, double& family, double& other) {
  family = other = 0;
  int launches = 0;
  for (const auto& e : t) launches = std::max(launches, e.launch + 1);
  if (launches == 0) family = other = NAN;
  for (int l = 0; l < launches; ++l) {
    double bf = INFINITY, bo = INFINITY;
    for (const auto& e : t) {
      if (e.launch != l || !std::isfinite(e.ms)) continue;
      double& b = in_family(e.plan) ? bf : bo;
      b = std::min(b, double(e.ms));
    }
    family += std::isfinite(bf) ? bf : NAN;
    other += std::isfinite(bo) ? bo : NAN;
  }
}

// Over the tuned rows of one math mode: the geomean of (best family plan / best other plan)
// per direction (geo[0..2]: fprop, dgrad, wgrad) and over all (geo[3]) with their counts,
// the best and worst ratio, and in how many rows tuning kept a plan of the family.
struct FamilySummary {
  double geo[4];
  int cnt[4];
  double best, worst;
  int kept, tuned;
};
template <class Pred>
FamilySummary family_summary(const std::vector<Row>& rows, const std::string& math, Pred in_family) {
  FamilySummary f{{0, 0, 0, 0}, {0, 0, 0, 0}, INFINITY, 0, 0, 0};
  for (const Row& r : rows) {
    if (r.math != math || r.tuning.empty()) continue;
    ++f.tuned;
    f.kept += in_family(r.disco_plan) ? 1 : 0;
    double fam, other;
    family_vs_other(r.tuning, in_family, fam, other);
    if (!(std::isfinite(fam) && std::isfinite(other) && fam > 0 && other > 0)) continue;
    const int d = r.dir == "fprop" ? 0 : (r.dir == "dgrad" ? 1 : 2);
    for (int k : {d, 3}) f.geo[k] += std::log(fam / other), ++f.cnt[k];
    f.best = std::min(f.best, fam / other), f.worst = std::max(f.worst, fam / other);
  }
  for (int k = 0; k < 4; ++k) f.geo[k] = f.cnt[k] ? std::exp(f.geo[k] / f.cnt[k]) : NAN;
  return f;
}

int self_test() {
  int fails = 0;
  auto expect = [&](bool ok, const std::string& what) {
    if (!ok) {
      std::printf("self-test FAILED: %s\n", what.c_str());
      ++fails;
    }
  };
  for (int s : {128, 256}) {
    const auto L = model_layers(s);
    expect(L.size() == 18, "18 layers");
    // encoders halve the map 6 times: 128 -> 2 (256 -> 4); channels chain
    for (int i = 0; i < 12; ++i) {
      const auto p = L[size_t(i)].problem(32);
      expect(p.P == L[size_t(i)].in_size / 2 && p.Q == p.P, L[size_t(i)].name + " halves the map");
      if (i % 6 != 5) expect(L[size_t(i + 1)].cin == L[size_t(i)].cout, L[size_t(i)].name + " channel chain");
      if (i % 6 != 5) expect(L[size_t(i + 1)].in_size == p.P, L[size_t(i)].name + " size chain");
    }
    expect(L[5].problem(32).P == s / 64 && L[11].problem(32).P == s / 64, "bottleneck is s/64");
    expect(L[5].cout + L[11].cout == L[12].cin, "487 + 25 = 512 decoder input channels");
    for (int i = 12; i < 18; ++i) {
      const auto p = L[size_t(i)].problem(32);
      expect(p.H == 2 * L[size_t(i)].in_size && p.P == L[size_t(i)].in_size, L[size_t(i)].name + " doubles the map");
      expect(p.K == L[size_t(i)].cin && p.C == L[size_t(i)].cout, L[size_t(i)].name + " transposed channels");
      if (i < 17) expect(L[size_t(i + 1)].cin == L[size_t(i)].cout, L[size_t(i)].name + " channel chain");
    }
    expect(L[17].problem(32).H == s && L[17].cout == 3, "decoder ends at s x s x 3");
  }
  // FLOPs: E1.conv1 at 128 px, batch 32: 2 * (32*64*64) * 32 * (3*4*4)
  const auto L = model_layers(128);
  expect(L[0].problem(32).flops() == 2.0 * 32 * 64 * 64 * 32 * 48, "E1.conv1 FLOPs");
  // D.convT1: 2x2 -> 4x4, 512 -> 512: 2 * (32*2*2) * 512 * (512*16) (dgrad of the problem)
  expect(L[12].problem(32).flops() == 2.0 * 32 * 2 * 2 * 512 * 512 * 16, "D.convT1 FLOPs");
  double fwd = 0;
  for (const auto& l : L) fwd += l.problem(1).flops();
  std::printf("conv FLOPs per image, forward, 128 px: %.1f MFLOP (x3 with backward: %.2f GFLOP)\n", fwd / 1e6,
              3 * fwd / 1e9);
  expect(fwd > 0.8e9 && fwd < 0.9e9, "forward conv FLOPs per image about 0.85 GFLOP");
  // the tuning comparison: best grouped vs best other plan, per launch, summed
  {
    double g = 0, o = 0;
    family_vs_other({{0, "128x128", 2.f, false}, {0, "128x128g split 2", 1.5f, true}, {0, "64x64g", 3.f, false},
                     {0, "thin", NAN, false}, {1, "64x64", 1.f, true}, {1, "128x32g", 4.f, false}},
                    grouped_plan, g, o);
    expect(g == 1.5 + 4.0 && o == 2.0 + 1.0, "family_vs_other sums the per-launch minima");
    family_vs_other({{0, "128x128", 2.f, true}, {0, "thin", 1.f, false}}, grouped_plan, g, o);
    expect(std::isnan(g) && o == 1.0, "no grouped candidate: NaN");
    family_vs_other({}, grouped_plan, g, o);
    expect(std::isnan(g) && std::isnan(o), "not tuned: NaN");
    expect(grouped_plan("128x32g split 4") && grouped_plan("64x64g") && !grouped_plan("128x128p split 2") &&
               !grouped_plan("smallout split 64") && !grouped_plan("thin"),
           "grouped plan names");
    expect(nhwc_plan("128x128nhwc") && nhwc_plan("64x64nhwc split 3") && !nhwc_plan("128x128") &&
               !grouped_plan("128x128nhwc") && !nhwc_plan("64x64g"),
           "channels-last plan names");
    family_vs_other({{0, "128x128", 2.f, false}, {0, "64x64nhwc split 2", 1.f, true}, {0, "128x128g", 1.5f, false}},
                    nhwc_plan, g, o);
    expect(g == 1.0 && o == 1.5, "family_vs_other: the channels-last family against every other plan");
    expect(warp64_plan("256x128nhwc split 2") && warp64_plan("128x128nhwc4w") && !warp64_plan("128x128nhwc") &&
               !warp64_plan("64x64nhwc split 4") && nhwc_plan("128x128nhwc4w split 3") && !grouped_plan("128x128nhwc4w"),
           "64x64-warp channels-last plan names");
    expect(wgmma_plan("128x128wgmma split 3") && wgmma_plan("128x64wgmma") && !wgmma_plan("128x128nhwc") &&
               !warp64_plan("128x128wgmma") && !grouped_plan("128x128wgmma"),
           "wgmma plan names");
    {
      std::vector<Row> nr(1);
      nr[0].math = "bf16";
      nr[0].dir = "wgrad";
      nr[0].disco_plan = "256x128nhwc";
      nr[0].tuning = {{0, "128x128", 0.5f, false}, {0, "128x128nhwc", 2.f, false}, {0, "256x128nhwc", 1.f, true}};
      const FamilySummary f = family_summary(nhwc_only(nr), "bf16", warp64_plan);
      expect(f.cnt[3] == 1 && std::fabs(f.geo[3] - 0.5) < 1e-9 && std::fabs(f.geo[2] - 0.5) < 1e-9 && f.kept == 1,
             "64x64-warp tiles against the other channels-last plans only (the NCHW 128x128 left out)");
    }
    // the summary over rows: per direction, over all, best / worst, kept, untuned rows skipped
    std::vector<Row> rows(4);
    const std::string dirs[4] = {"fprop", "dgrad", "fprop", "wgrad"};
    for (int i = 0; i < 4; ++i) rows[size_t(i)].math = "bf16", rows[size_t(i)].dir = dirs[i];
    rows[0].tuning = {{0, "128x128", 2.f, false}, {0, "64x64nhwc", 1.f, true}};  // 0.5
    rows[0].disco_plan = "64x64nhwc";
    rows[1].tuning = {{0, "128x128", 1.f, true}, {0, "64x64nhwc", 2.f, false}};  // 2
    rows[2].tuning = {{0, "128x128", 1.f, true}, {0, "64x64nhwc", 4.f, false}};  // 4
    const FamilySummary f = family_summary(rows, "bf16", nhwc_plan);
    expect(f.tuned == 3 && f.kept == 1 && f.cnt[3] == 3 && f.cnt[0] == 2 && f.cnt[1] == 1 && f.cnt[2] == 0,
           "family_summary counts");
    expect(std::abs(f.geo[0] - std::sqrt(2.0)) < 1e-12 && std::abs(f.geo[1] - 2.0) < 1e-12 && std::isnan(f.geo[2]) &&
               std::abs(f.geo[3] - std::cbrt(4.0)) < 1e-12 && f.best == 0.5 && f.worst == 4.0,
           "family_summary geomeans, best and worst");
    expect(family_summary(rows, "tf32", nhwc_plan).tuned == 0, "family_summary: other math modes skipped");
  }
  std::printf(fails ? "self-test: %d failure(s)\n" : "self-test: ok\n", fails);
  return fails ? 1 : 0;
}

// Peak dense tensor-core TFLOP/s of the card for the math mode (name table, else an
// estimate from SMs x clock x per-SM rate of sm_90).
double peak_tflops(dc::MathMode m, std::string* source) {
  const std::string name = dc::device_name();
  auto has = [&](const char* s) { return name.find(s) != std::string::npos; };
  const bool bf = m == dc::MathMode::BF16;
  if (has("H100") && (has("PCIe") || has("PCIE"))) { *source = "H100 PCIe spec"; return bf ? 756.0 : 378.0; }
  if (has("H100") || has("H200") || has("H800") || has("GH200")) { *source = "H100/H200 SXM spec"; return bf ? 989.4 : 494.7; }
  if (has("A100")) { *source = "A100 spec"; return bf ? 312.0 : 156.0; }
  int dev = 0, clk = 0;
  cudaGetDevice(&dev);
  cudaDeviceGetAttribute(&clk, cudaDevAttrClockRate, dev);
  *source = "estimate (SMs x clock x sm_90 rate)";
  return double(dc::device_sm_count()) * clk * 1e3 * (bf ? 4096 : 2048) / 1e12;
}

void cuda_ok(cudaError_t e, const char* what) {
  if (e != cudaSuccess) disco::fail(what, ": ", cudaGetErrorString(e));
}

struct Timer {
  cudaEvent_t a{}, b{};
  void* flush = nullptr;
  size_t flush_bytes = 0;
  Timer() {
    cuda_ok(cudaEventCreate(&a), "cudaEventCreate");
    cuda_ok(cudaEventCreate(&b), "cudaEventCreate");
    int dev = 0, l2 = 0;
    cudaGetDevice(&dev);
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, dev);
    flush_bytes = size_t(std::max(l2, 1 << 20)) * 2;
    flush = dc::device_malloc(flush_bytes);
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
    dc::device_free(flush);
  }
  template <class F>
  double median_ms(F&& f, int warmup, int iters) {
    for (int i = 0; i < warmup; ++i) f();
    dc::synchronize();
    std::vector<float> t;
    auto st = static_cast<cudaStream_t>(dc::get_stream());
    for (int i = 0; i < iters; ++i) {
      dc::memset(flush, i & 0xff, flush_bytes);  // evict the operands from L2
      cuda_ok(cudaEventRecord(a, st), "cudaEventRecord");
      f();
      cuda_ok(cudaEventRecord(b, st), "cudaEventRecord");
      cuda_ok(cudaEventSynchronize(b), "cudaEventSynchronize");
      float ms = 0;
      cuda_ok(cudaEventElapsedTime(&ms, a, b), "cudaEventElapsedTime");
      t.push_back(ms);
    }
    std::sort(t.begin(), t.end());
    return t[t.size() / 2];
  }
};

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (!std::isfinite(a[i]) || !std::isfinite(b[i])) return INFINITY;
    num += (double(a[i]) - b[i]) * (double(a[i]) - b[i]);
    den += double(b[i]) * b[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

std::vector<float> random_host(size_t n, unsigned seed) {
  std::vector<float> v(n);
  uint32_t s = seed * 2654435761u + 1;
  for (auto& x : v) {
    s = s * 1664525u + 1013904223u;
    x = float(s >> 8) / float(1 << 24) * 2.f - 1.f;
  }
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  int size = 128, batch = 32, iters = 20, warmup = 3;
  std::string csv, tuning_csv, only, maths = "tf32,bf16";
  std::string force_plan;
  bool list = false, tune = true;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--self-test") return self_test();
    else if (a == "--size") size = std::atoi(next().c_str());
    else if (a == "--batch") batch = std::atoi(next().c_str());
    else if (a == "--iters") iters = std::max(1, std::atoi(next().c_str()));
    else if (a == "--warmup") warmup = std::max(0, std::atoi(next().c_str()));
    else if (a == "--math") maths = next();
    else if (a == "--only") only = next();
    else if (a == "--csv") csv = next();
    else if (a == "--tuning-csv") tuning_csv = next();
    else if (a == "--list") list = true;
    else if (a == "--no-tune") tune = false;
    else if (a == "--plan") force_plan = next();
    else {
      std::fprintf(stderr,
                   "usage: conv_vs_cudnn [--size 128|256] [--batch N] [--iters N] [--warmup N] [--math tf32,bf16,fp32]"
                   " [--only SUBSTR[,SUBSTR...]] [--csv PATH] [--tuning-csv PATH] [--no-tune] [--plan SUBSTR]"
                   " [--self-test] [--list]\n"
                   "  --no-tune: disco's heuristic launch plans instead of per-layer tuning\n"
                   "  --plan SUBSTR: the first candidate plan whose name contains SUBSTR, where one exists\n");
      return 2;
    }
  }
  if (size != 128 && size != 256) {
    std::fprintf(stderr, "--size must be 128 or 256\n");
    return 2;
  }
  const auto layers = model_layers(size);
  if (list) {
    for (const auto& l : layers) {
      const auto p = l.problem(batch);
      std::printf("%-9s %s %3d -> %3d  in %3d  N=%d C=%d H=%d K=%d P=%d  %.3f GFLOP\n", l.name.c_str(),
                  l.transposed ? "convT" : "conv ", l.cin, l.cout, l.in_size, p.N, p.C, p.H, p.K, p.P, p.flops() / 1e9);
    }
    return 0;
  }
  if (!dc::device_available()) {
    std::printf("SKIP: no CUDA device (conv_vs_cudnn needs a GPU; --self-test runs without one)\n");
    return 77;
  }
  std::vector<dc::MathMode> modes;
  if (maths.find("fp32") != std::string::npos) modes.push_back(dc::MathMode::FP32);
  if (maths.find("tf32") != std::string::npos) modes.push_back(dc::MathMode::TF32);
  if (maths.find("bf16") != std::string::npos) modes.push_back(dc::MathMode::BF16);
  const bool have_cudnn = dc::cudnn_available();
  dc::set_conv_autotune(tune);
  std::printf("conv_vs_cudnn: %s, %d SMs, cuDNN %d, %d px, batch %d, median of %d runs (L2 flushed)\n",
              dc::device_name().c_str(), dc::device_sm_count(), dc::cudnn_version(), size, batch, iters);
  std::printf("disco launch plans: %s%s%s\n", tune ? "tuned per layer (first call of each problem)" : "heuristic (--no-tune)",
              force_plan.empty() ? "" : "; pinned to the first candidate named like ", force_plan.c_str());
  if (!have_cudnn) std::printf("WARNING: built without cuDNN: timing disco only\n");

  std::vector<Row> rows;
  Timer timer;
  int failures = 0;
  try {
    for (const Layer& l : layers) {
      if (!only.empty()) {  // comma-separated substrings of layer names
        bool match = false;
        size_t start = 0;
        while (start <= only.size()) {
          const size_t end = std::min(only.find(',', start), only.size());
          const std::string part = only.substr(start, end - start);
          if (!part.empty() && l.name.find(part) != std::string::npos) match = true;
          start = end + 1;
        }
        if (!match) continue;
      }
      const Conv2dProblem p = l.problem(batch);
      const auto hx = random_host(size_t(p.x_size()), 1), hw = random_host(size_t(p.w_size()), 2),
                 hdy = random_host(size_t(p.y_size()), 3);
      dc::DeviceArray<float> x(hx.size()), w(hw.size()), dy(hdy.size());
      dc::memcpy_h2d(x.data(), hx.data(), x.bytes());
      dc::memcpy_h2d(w.data(), hw.data(), w.bytes());
      dc::memcpy_h2d(dy.data(), hdy.data(), dy.bytes());
      dc::DeviceArray<uint16_t> xb(hx.size()), wb(hw.size()), dyb(hdy.size());
      dc::f32_to_bf16(x.data(), xb.data(), int64_t(hx.size()));
      dc::f32_to_bf16(w.data(), wb.data(), int64_t(hw.size()));
      dc::f32_to_bf16(dy.data(), dyb.data(), int64_t(hdy.size()));
      for (dc::ConvDir dir : {dc::ConvDir::Fprop, dc::ConvDir::Dgrad, dc::ConvDir::Wgrad}) {
        const size_t nout = size_t(dir == dc::ConvDir::Fprop ? p.y_size() : (dir == dc::ConvDir::Dgrad ? p.x_size() : p.w_size()));
        dc::DeviceArray<float> o1(nout), o2(nout);
        dc::DeviceArray<uint16_t> ob(nout);
        for (dc::MathMode mode : modes) {
          auto run_disco = [&] {
            switch (dir) {
              case dc::ConvDir::Fprop: dc::conv2d_fprop(p, x.data(), w.data(), nullptr, o1.data(), dc::ConvAlgo::Custom, mode); break;
              case dc::ConvDir::Dgrad: dc::conv2d_dgrad(p, dy.data(), w.data(), o1.data(), false, dc::ConvAlgo::Custom, mode); break;
              case dc::ConvDir::Wgrad: dc::conv2d_wgrad(p, x.data(), dy.data(), o1.data(), false, dc::ConvAlgo::Custom, mode); break;
            }
          };
          const bool bf = mode == dc::MathMode::BF16;
          const void* ra = dir == dc::ConvDir::Dgrad ? (bf ? (const void*)dyb.data() : dy.data()) : (bf ? (const void*)xb.data() : x.data());
          const void* rb = dir == dc::ConvDir::Wgrad ? (bf ? (const void*)dyb.data() : dy.data()) : (bf ? (const void*)wb.data() : w.data());
          void* ro = bf ? (void*)ob.data() : (void*)o2.data();
          auto run_cudnn = [&] { dc::cudnn_conv2d_raw(dir, p, ra, rb, ro, false, mode); };

          Row r;
          r.layer = l.name;
          r.dir = dc::to_string(dir);
          r.role = role(l, dir);
          r.math = dc::to_string(mode);
          r.gflop = p.flops() / 1e9;
          r.err = NAN;
          r.ok = true;
          r.t_cudnn = NAN;
          r.t_disco = NAN;
          // correctness first; a failing case is reported and the run goes on
          std::vector<float> got(nout), want(nout);
          try {
            if (!force_plan.empty()) {  // pin the first candidate named like --plan, if any
              const int n = dc::conv_plan_candidates(dir, p);
              bool found = false;
              for (int i = 0; i < n && !found; ++i) {
                dc::set_conv_plan(dir, p, mode, i);
                found = dc::conv_plan(dir, p, mode).find(force_plan) != std::string::npos;
              }
              if (!found) dc::set_conv_plan(dir, p, mode, 0);  // the heuristic plan
            }
            dc::memset(o1.data(), 0xFF, o1.bytes());
            run_disco();  // the first call of a problem tunes its plan
            dc::memcpy_d2h(got.data(), o1.data(), o1.bytes());
            r.disco_plan = dc::conv_plan(dir, p, mode);
            r.tuning = dc::conv_tuning_times(dir, p, mode);
            for (float v : got) r.ok = r.ok && std::isfinite(v);
          } catch (const std::exception& e) {
            r.ok = false;
            r.cudnn_algo = std::string("disco error: ") + e.what();
          }
          bool cudnn_ok = have_cudnn;
          if (have_cudnn && r.ok) {
            try {
              dc::memset(o2.data(), 0xFF, o2.bytes());
              run_cudnn();
              if (bf) dc::bf16_to_f32(ob.data(), o2.data(), int64_t(nout));
              dc::memcpy_d2h(want.data(), o2.data(), o2.bytes());
              r.err = rel_l2(got, want);
              const double tol = mode == dc::MathMode::FP32 ? 1e-5 : (bf ? 1e-2 : 5e-3);
              r.ok = r.err <= tol;
              r.cudnn_algo = dc::cudnn_algo_name(dir, p, mode);
            } catch (const std::exception& e) {
              cudnn_ok = false;
              r.cudnn_algo = std::string("cudnn error: ") + e.what();
            }
          }
          if (!r.ok) ++failures;
          if (r.ok) r.t_disco = timer.median_ms(run_disco, warmup, iters);
          if (cudnn_ok && r.ok) r.t_cudnn = timer.median_ms(run_cudnn, warmup, iters);
          rows.push_back(r);
          std::printf("  %-9s %-5s %-10s %-4s  disco %8.4f ms  cudnn %8.4f ms  err %.2e  plan %s %s\n", r.layer.c_str(),
                      r.dir.c_str(), r.role.c_str(), r.math.c_str(), r.t_disco, r.t_cudnn, r.err, r.disco_plan.c_str(),
                      r.ok ? "" : "MISMATCH");
          std::fflush(stdout);
        }
      }
    }
  } catch (const std::exception& e) {
    std::printf("ERROR: %s\n", e.what());
    return 1;
  }

  // table
  std::printf("\n%-9s %-5s %-10s %-4s %8s %9s %8s %6s %9s %8s %7s %9s  %s\n", "layer", "dir", "role", "math", "GFLOP",
              "disco ms", "TFLOP/s", "%peak", "cudnn ms", "TFLOP/s", "d/c", "rel err", "disco plan | cudnn algo");
  for (dc::MathMode mode : modes) {
    std::string src;
    const double peak = peak_tflops(mode, &src);
    double log_sum = 0;
    int cnt = 0;
    double dir_log[3] = {0, 0, 0};
    int dir_cnt[3] = {0, 0, 0};
    for (const Row& r : rows) {
      if (r.math != dc::to_string(mode)) continue;
      const double td = r.gflop / r.t_disco, tc = r.gflop / r.t_cudnn;  // GFLOP/ms = TFLOP/s
      const double ratio = r.t_disco / r.t_cudnn;
      std::printf("%-9s %-5s %-10s %-4s %8.3f %9.4f %8.1f %5.1f%% %9.4f %8.1f %7.2f %9.2e  %s | %s%s\n",
                  r.layer.c_str(), r.dir.c_str(), r.role.c_str(), r.math.c_str(), r.gflop, r.t_disco, td,
                  100 * td / peak, r.t_cudnn, tc, ratio, r.err, r.disco_plan.c_str(), r.cudnn_algo.c_str(),
                  r.ok ? "" : "  MISMATCH");
      if (std::isfinite(ratio) && ratio > 0) {
        log_sum += std::log(ratio);
        ++cnt;
        const int d = r.dir == "fprop" ? 0 : (r.dir == "dgrad" ? 1 : 2);
        dir_log[d] += std::log(ratio);
        ++dir_cnt[d];
      }
    }
    if (cnt)
      std::printf("geomean t_disco/t_cudnn (%s): %.3f  [fprop %.3f, dgrad %.3f, wgrad %.3f]  peak %.1f TFLOP/s (%s)\n\n",
                  dc::to_string(mode), std::exp(log_sum / cnt), dir_cnt[0] ? std::exp(dir_log[0] / dir_cnt[0]) : NAN,
                  dir_cnt[1] ? std::exp(dir_log[1] / dir_cnt[1]) : NAN,
                  dir_cnt[2] ? std::exp(dir_log[2] / dir_cnt[2]) : NAN, peak, src.c_str());
    // the grouped loaders and the channels-last kernels (pack included; BF16 in every
    // direction, TF32 too) against the other plans, from tuning's own timings
    const FamilySummary gs = family_summary(rows, dc::to_string(mode), grouped_plan);
    if (gs.tuned)
      std::printf("grouped loaders (%s, tuning times): best grouped / best other plan geomean %.3f over %d case(s) "
                  "[fprop %.3f, dgrad %.3f, wgrad %.3f]; kept in %d of %d tuned case(s)\n\n",
                  dc::to_string(mode), gs.geo[3], gs.cnt[3], gs.geo[0], gs.geo[1], gs.geo[2], gs.kept, gs.tuned);
    const FamilySummary ns = family_summary(rows, dc::to_string(mode), nhwc_plan);
    if (mode != dc::MathMode::FP32 && ns.tuned)
      std::printf("channels-last %s (tuning times, pack included): best nhwc / best other plan geomean %.3f over "
                  "%d case(s) [fprop %.3f, dgrad %.3f, wgrad %.3f; best %.3f, worst %.3f]; kept in %d of %d tuned "
                  "case(s)\n\n",
                  dc::to_string(mode), ns.geo[3], ns.cnt[3], ns.geo[0], ns.geo[1], ns.geo[2], ns.best, ns.worst,
                  ns.kept, ns.tuned);
    // the wgmma kernels against every other plan (BF16 / TF32 fprop and dgrad, BF16 wgrad, on
    // compute capability 9.0)
    const FamilySummary wg = family_summary(rows, dc::to_string(mode), wgmma_plan);
    if (mode != dc::MathMode::FP32 && wg.cnt[3])
      std::printf("channels-last wgmma %s (tuning times, pack included): best 128x128wgmma / 128x64wgmma over best other "
                  "plan geomean "
                  "%.3f over %d case(s) [fprop %.3f, dgrad %.3f, wgrad %.3f; best %.3f, worst %.3f]; kept in %d of %d "
                  "tuned case(s)\n\n",
                  dc::to_string(mode), wg.geo[3], wg.cnt[3], wg.geo[0], wg.geo[1], wg.geo[2], wg.best, wg.worst, wg.kept,
                  wg.tuned);
    // among the channels-last tiles: the 64 x 64-warp ones against the 128x128 / 64x64 ones
    const FamilySummary ws = family_summary(nhwc_only(rows), dc::to_string(mode), warp64_plan);
    if (mode != dc::MathMode::FP32 && ws.cnt[3])
      std::printf("channels-last 64x64 warps %s (tuning times): best 256x128nhwc / 128x128nhwc4w over best other nhwc "
                  "plan geomean %.3f over %d case(s) [fprop %.3f, dgrad %.3f, wgrad %.3f; best %.3f, worst %.3f]; "
                  "kept in %d of %d tuned case(s)\n\n",
                  dc::to_string(mode), ws.geo[3], ws.cnt[3], ws.geo[0], ws.geo[1], ws.geo[2], ws.best, ws.worst,
                  ws.kept, ws.tuned);
    // tuning's output check: every candidate against the layer's reference plan
    int checked = 0, rejected = 0;
    float worst_agreeing = 0.f;
    std::string list;
    for (const Row& r : rows) {
      if (r.math != dc::to_string(mode)) continue;
      for (const auto& t : r.tuning) {
        if (std::isnan(t.ms)) continue;  // did not run
        ++checked;
        if (t.agrees) {
          worst_agreeing = std::max(worst_agreeing, t.diff);
        } else {
          ++rejected;
          if (rejected <= 12) list += " " + r.layer + "." + r.dir + ":" + t.plan + "(" + std::to_string(t.diff) + ")";
        }
      }
    }
    if (checked) {
      std::printf("tuning output check (%s): %d of %d candidate plan(s) disagreed with their layer's reference plan; "
                  "worst agreeing max|diff|/max|ref| %.2e%s%s\n\n",
                  dc::to_string(mode), rejected, checked, worst_agreeing, rejected ? "; rejected:" : "", list.c_str());
      failures += rejected;
    }
  }
  if (!csv.empty()) {
    std::ofstream f(csv);
    f << "device,size,batch,layer,dir,role,math,gflop,disco_ms,disco_tflops,cudnn_ms,cudnn_tflops,disco_over_cudnn,"
         "rel_err,ok,cudnn_algo,disco_plan\n";
    for (const Row& r : rows)
      f << '"' << dc::device_name() << "\"," << size << ',' << batch << ',' << r.layer << ',' << r.dir << ',' << r.role
        << ',' << r.math << ',' << r.gflop << ',' << r.t_disco << ',' << r.gflop / r.t_disco << ',' << r.t_cudnn << ','
        << r.gflop / r.t_cudnn << ',' << r.t_disco / r.t_cudnn << ',' << r.err << ',' << (r.ok ? 1 : 0) << ",\""
        << r.cudnn_algo << "\",\"" << r.disco_plan << "\"\n";
    std::printf("wrote %s\n", csv.c_str());
  }
  if (!tuning_csv.empty()) {
    std::ofstream f(tuning_csv);
    f << "device,size,batch,layer,dir,math,launch,plan,ms,chosen,grouped,nhwc,diff,agrees\n";
    for (const Row& r : rows)
      for (const auto& t : r.tuning)
        f << '"' << dc::device_name() << "\"," << size << ',' << batch << ',' << r.layer << ',' << r.dir << ','
          << r.math << ',' << t.launch << ",\"" << t.plan << "\"," << t.ms << ',' << (t.chosen ? 1 : 0) << ','
          << (grouped_plan(t.plan) ? 1 : 0) << ',' << (nhwc_plan(t.plan) ? 1 : 0) << ',' << t.diff << ','
          << (t.agrees ? 1 : 0) << '\n';
    std::printf("wrote %s\n", tuning_csv.c_str());
  }
  if (failures)
    std::printf("%d case(s) where disco and cuDNN disagree, or tuning rejected a plan's output\n", failures);
  return failures ? 1 : 0;
}
