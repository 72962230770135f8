#pragma once
// CUDA convolutions: forward (fprop), data gradient (dgrad) and weight gradient (wgrad) of
// the convolution described by a Conv2dProblem (NCHW, float32 device pointers). Plain C++;
// link disco::cuda. A transposed convolution's forward is conv2d_dgrad and its backward is
// conv2d_fprop (input gradient) plus conv2d_wgrad (weight gradient) of the same problem
// (see disco/problem/conv2d_problem.hpp).
//
// ConvAlgo::Custom runs disco's implicit-GEMM kernels (kernels/conv2d_igemm.cuh):
//   FP32 plain FMA, TF32 mma.sync m16n8k8, BF16 mma.sync m16n8k16 (FP32 accumulation);
//   dgrad uses the stride phase decomposition (no work on inserted zeros); split-K when the
//   output has too few tiles to fill the GPU (2x2 / 4x4 layers, wgrad).
// ConvAlgo::Cudnn runs cuDNN's fastest algorithm from cudnnFind*AlgorithmEx (searched once
// per problem, direction and math mode, then cached). FP32 forbids TF32 (CUDNN_FMA_MATH);
// BF16 converts the inputs to bfloat16 and the bf16 result back to float.
// ConvAlgo::Auto runs, per problem (direction, shapes, math mode, device), whichever of the two
// was faster the first time the problem was seen: both are timed whole on that call (which
// synchronizes) and the choice is cached (conv_auto_choice). Without cuDNN, with tuning off,
// or while a graph is being captured before the choice was made, disco's kernels run.
// Per-layer tuning (ConvAlgo::Custom, on by default): the first call of each problem
// (direction, shapes, math mode) times the candidate launch plans -- tile shape 128x128,
// 64x64 or 128x32, times split-K factors -- on the current stream and keeps the fastest for
// the rest of the process; that first call synchronizes. Never while the stream is being
// captured into a CUDA graph (the heuristic plan is used then), so warm up before capturing.
// Off (set_conv_autotune(false), or DISCO_CONV_AUTOTUNE=0 in the environment): the heuristic
// plan, the same in every process (bitwise reproducible results).
// All calls are asynchronous on the current stream; workspace comes from the caching
// allocator. Errors throw disco::Error.
#include <cstdint>
#include <string>
#include <vector>

#include "disco/backend/cuda/types.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace disco {
namespace cuda {

// y[N,K,P,Q] = conv(x[N,C,H,W], w[K,C,R,S]) + bias[K] (bias may be null).
void conv2d_fprop(const Conv2dProblem& p, const float* x, const float* w, const float* bias_or_null, float* y,
                  ConvAlgo algo = ConvAlgo::Custom, MathMode mode = MathMode::TF32);
// dx[N,C,H,W] (=|+=) d<y, dy>/dx.
void conv2d_dgrad(const Conv2dProblem& p, const float* dy, const float* w, float* dx, bool accumulate,
                  ConvAlgo algo = ConvAlgo::Custom, MathMode mode = MathMode::TF32);
// dw[K,C,R,S] (=|+=) d<y, dy>/dw.
void conv2d_wgrad(const Conv2dProblem& p, const float* x, const float* dy, float* dw, bool accumulate,
                  ConvAlgo algo = ConvAlgo::Custom, MathMode mode = MathMode::TF32);

// Pack sharing for the channels-last kernels: while a ConvPackShare lives, the custom
// convolutions on this thread keep each activation they pack channels-last (x, dy) and reuse
// it when a later convolution of the scope packs the same source the same way -- a layer's
// data and weight gradients both pack dy. The caller promises not to modify those sources
// while the scope lives; the packs are freed with it. Timing runs (tuning, ConvAlgo::Auto)
// pack for themselves. Scopes nest (the innermost one serves) and are bound to their thread:
// create and destroy one on the same thread. The autograd convolutions open one around each
// backward.
class ConvPackShare {
 public:
  ConvPackShare();
  ~ConvPackShare();
  ConvPackShare(const ConvPackShare&) = delete;
  ConvPackShare& operator=(const ConvPackShare&) = delete;
  int64_t reused() const;  // how many packs were served from the scope instead of packing again

 private:
  void* state_;
  void* outer_;
};

// ---- per-layer tuning of ConvAlgo::Custom ------------------------------------------------
void set_conv_autotune(bool on);
bool conv_autotune();
// The kernel family of launches that are not tuned (tuning off, or during a graph capture):
// "" (the heuristic's plan), or one of "tile", "paired", "grouped", "thin", "smallout", "nhwc",
// "wgmma" -- then the first tuning candidate of that family where the problem has one
// (conv_plan_candidates' order), else the heuristic's. Tuned or set plans are unaffected. For
// tests and benchmarks that run every layer on one family (e.g. the whole training step on the
// channels-last kernels). Default: DISCO_CONV_PREFER in the environment (read at the first
// use), else "". Throws disco::Error for an unknown family (also for a bad DISCO_CONV_PREFER, at
// the first convolution).
void set_conv_prefer(const std::string& family);
std::string conv_prefer();
// For tests of tuning's output check: from now on tuning scales the output of every candidate
// but the reference whose plan name contains `plan_substring` by 1.5 before comparing it
// ("": no fault).
void set_conv_tuning_fault(const std::string& plan_substring);
// Forget every tuned (or set) plan, and ConvAlgo::Auto's choices.
void clear_conv_plans();
// The plan the custom kernels use for this problem, e.g. "128x128", "64x64 split 6" (dgrad
// with several phase launches: "a + b"): the tuned one if tuned, else the untuned one (the
// heuristic's, or set_conv_prefer's family).
std::string conv_plan(ConvDir dir, const Conv2dProblem& p, MathMode mode);
// How many plans tuning tries for this problem, and pinning candidate i (0 = the heuristic;
// clamped to the last) as if tuning had chosen it -- for tests and benchmarks.
int conv_plan_candidates(ConvDir dir, const Conv2dProblem& p);
// Whether the wgmma kernels ("128x128wgmma": BF16 fprop / dgrad on Hopper's warpgroup MMA) are
// tuning candidates here: a build with sm_90a code on a compute capability 9.0 GPU (and the
// CPU emulation).
bool wgmma_available();
void set_conv_plan(ConvDir dir, const Conv2dProblem& p, MathMode mode, int candidate);

// What per-layer tuning measured for this problem: every candidate plan it timed (median of 3
// runs, ms; NaN for a candidate that could not run) in candidate order, for each launch of
// the problem (dgrad with more than 16 phases has several). Empty when this problem was not
// tuned in this process (tuning off, a graph capture, set_conv_plan, or not run yet). For
// benchmarks: conv_vs_cudnn --tuning-csv compares the tile variants from these figures.
// Tuning also checks each candidate's output against the first plan that ran (the heuristic's,
// normally): max |out - ref| / max |ref| must stay within 1e-4 (FP32), 5e-3 (TF32) or 3e-2
// (BF16); a plan outside it is never chosen, whatever its time.
struct ConvPlanTiming {
  int launch;         // 0 .. launches - 1
  std::string plan;   // as conv_plan names it
  float ms;
  bool chosen;        // the plan tuning kept for this launch
  float diff = 0.f;   // max |out - ref| / max |ref| (0: the reference; NaN: NaN output, or not run)
  bool agrees = true; // diff within the tolerance (false: rejected)
};
std::vector<ConvPlanTiming> conv_tuning_times(ConvDir dir, const Conv2dProblem& p, MathMode mode);

// The launch plans this process uses on the current device: one entry per launch planned so
// far (tuned, set by set_conv_plan, or untuned with set_conv_prefer's family; the heuristic
// plans of other untuned launches are not cached and not listed), with its family -- "tile" (128x128 / 64x64 / 128x32), "paired", "grouped",
// "thin", "smallout", "nhwc" -- or plan and family "cudnn", once per problem, where
// ConvAlgo::Auto hands the problem to cuDNN. train_step prints their census.
struct ConvPlanUse {
  ConvDir dir;
  MathMode mode;
  std::string plan;    // as conv_plan names it, or "cudnn"
  std::string family;
};
std::vector<ConvPlanUse> conv_plans_in_use();

// What ConvAlgo::Auto chose for this problem: "disco", "cudnn", or "" when it has not chosen
// (not run yet, or it ran without timing: no cuDNN, tuning off, or during a graph capture).
const char* conv_auto_choice(ConvDir dir, const Conv2dProblem& p, MathMode mode);

// Was disco::cuda built with cuDNN? (ConvAlgo::Cudnn throws disco::Error otherwise.)
bool cudnn_available();
// cuDNN version (e.g. 90400), 0 without cuDNN.
int cudnn_version();

// Lower-level cuDNN entry for tests and benchmarks: runs the cached fastest algorithm on
// buffers of the math mode's storage type (float for FP32 / TF32, bfloat16 for BF16).
//   Fprop: a = x, b = w, out = y;  Dgrad: a = dy, b = w, out = dx;  Wgrad: a = x, b = dy, out = dw.
void cudnn_conv2d_raw(ConvDir dir, const Conv2dProblem& p, const void* a, const void* b, void* out,
                      bool accumulate, MathMode mode);
// Name of the algorithm cuDNN chose for this problem (runs the search if needed), e.g.
// "IMPLICIT_PRECOMP_GEMM (tensor op)".
const char* cudnn_algo_name(ConvDir dir, const Conv2dProblem& p, MathMode mode);

}  // namespace cuda
}  // namespace disco
