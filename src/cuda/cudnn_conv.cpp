// cuDNN convolutions for disco::cuda (ConvAlgo::Cudnn, tests, benchmarks): the fastest
// algorithm of cudnnFind*AlgorithmEx per (direction, problem, math mode), found once and
// cached together with its descriptors. Compiled without cuDNN (DISCO_HAVE_CUDNN undefined)
// every entry point throws disco::Error.
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "cudnn_internal.hpp"
#include "internal.hpp"

namespace disco {
namespace cuda {
namespace detail {
void bf16_to_f32_acc(const void* x, float* y, int64_t n, bool accumulate);  // disco_cuda.cu
}

#if defined(DISCO_HAVE_CUDNN)

using detail::Scratch;
using detail::stream;

namespace {

struct Key {
  int dir, mode;
  int N, C, H, W, K, R, S, ph, pw, sh, sw, dh, dw;
  bool operator<(const Key& o) const {
    return std::tie(dir, mode, N, C, H, W, K, R, S, ph, pw, sh, sw, dh, dw) <
           std::tie(o.dir, o.mode, o.N, o.C, o.H, o.W, o.K, o.R, o.S, o.ph, o.pw, o.sh, o.sw, o.dh, o.dw);
  }
};

struct Plan {
  cudnnTensorDescriptor_t x = nullptr, y = nullptr;
  cudnnFilterDescriptor_t w = nullptr;
  cudnnConvolutionDescriptor_t conv = nullptr;
  int algo = 0;
  size_t ws_bytes = 0;
  cudnnMathType_t math = CUDNN_DEFAULT_MATH;
  std::string name;
};

std::mutex g_mu;
std::map<Key, Plan>& plans() {
  static auto* m = new std::map<Key, Plan>;  // leaked on purpose (no teardown-order issues)
  return *m;
}

const char* fwd_name(int a) {
  static const char* n[] = {"IMPLICIT_GEMM", "IMPLICIT_PRECOMP_GEMM", "GEMM", "DIRECT", "FFT", "FFT_TILING",
                            "WINOGRAD", "WINOGRAD_NONFUSED"};
  return (a >= 0 && a < 8) ? n[a] : "?";
}
const char* bwd_data_name(int a) {
  static const char* n[] = {"ALGO_0", "ALGO_1", "FFT", "FFT_TILING", "WINOGRAD", "WINOGRAD_NONFUSED"};
  return (a >= 0 && a < 6) ? n[a] : "?";
}
const char* bwd_filter_name(int a) {
  static const char* n[] = {"ALGO_0", "ALGO_1", "FFT", "ALGO_3", "WINOGRAD", "WINOGRAD_NONFUSED", "FFT_TILING"};
  return (a >= 0 && a < 7) ? n[a] : "?";
}
const char* math_name(cudnnMathType_t m) {
  switch (m) {
    case CUDNN_DEFAULT_MATH: return "default math";
    case CUDNN_TENSOR_OP_MATH: return "tensor op";
    case CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION: return "tensor op, conversion";
    case CUDNN_FMA_MATH: return "fma";
    default: return "?";
  }
}

size_t elem_bytes(MathMode m) { return m == MathMode::BF16 ? 2 : 4; }

// FindEx sorts by time. FP32 must not use TF32: the descriptor's CUDNN_FMA_MATH is kept
// for it.
// The fastest algorithm that succeeded. With `exact_only`, FFT and Winograd algorithms
// (whose transforms cost float32 accuracy, ~1e-5 to 1e-4 relative) are passed over while a
// direct / GEMM algorithm exists: the FP32 path is the exact oracle of the tests.
bool transform_algo(cudnnConvolutionFwdAlgo_t a) {
  return a == CUDNN_CONVOLUTION_FWD_ALGO_FFT || a == CUDNN_CONVOLUTION_FWD_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_FWD_ALGO_WINOGRAD_NONFUSED;
}
bool transform_algo(cudnnConvolutionBwdDataAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_DATA_ALGO_WINOGRAD_NONFUSED;
}
bool transform_algo(cudnnConvolutionBwdFilterAlgo_t a) {
  return a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_FFT_TILING ||
         a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD || a == CUDNN_CONVOLUTION_BWD_FILTER_ALGO_WINOGRAD_NONFUSED;
}

template <class Perf>
const Perf* pick(const Perf* perf, int count, const char* what, bool exact_only) {
  if (exact_only)
    for (int i = 0; i < count; ++i)
      if (perf[i].status == CUDNN_STATUS_SUCCESS && !transform_algo(perf[i].algo)) return &perf[i];
  for (int i = 0; i < count; ++i)
    if (perf[i].status == CUDNN_STATUS_SUCCESS) return &perf[i];
  fail("cuDNN: no ", what, " algorithm succeeded for this problem");
}

Plan& get_plan(ConvDir dir, const Conv2dProblem& p, MathMode mode, const void* a, const void* b) {
  const Key key{int(dir), int(mode), p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.pad_h, p.pad_w, p.stride_h, p.stride_w,
                p.dil_h, p.dil_w};
  auto it = plans().find(key);
  if (it != plans().end()) return it->second;

  Plan pl;
  const cudnnDataType_t dt = mode == MathMode::BF16 ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  DISCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl.x));
  DISCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&pl.y));
  DISCO_CUDNN_CHECK(cudnnCreateFilterDescriptor(&pl.w));
  DISCO_CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&pl.conv));
  DISCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl.x, CUDNN_TENSOR_NCHW, dt, p.N, p.C, p.H, p.W));
  DISCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(pl.y, CUDNN_TENSOR_NCHW, dt, p.N, p.K, p.P, p.Q));
  DISCO_CUDNN_CHECK(cudnnSetFilter4dDescriptor(pl.w, dt, CUDNN_TENSOR_NCHW, p.K, p.C, p.R, p.S));
  DISCO_CUDNN_CHECK(cudnnSetConvolution2dDescriptor(pl.conv, p.pad_h, p.pad_w, p.stride_h, p.stride_w, p.dil_h, p.dil_w,
                                                    CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  const cudnnMathType_t req = mode == MathMode::FP32 ? CUDNN_FMA_MATH : CUDNN_TENSOR_OP_MATH;
  DISCO_CUDNN_CHECK(cudnnSetConvolutionMathType(pl.conv, req));
  int on = 0, ok = 0, oh = 0, ow = 0;
  DISCO_CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(pl.conv, pl.x, pl.w, &on, &ok, &oh, &ow));
  DISCO_CHECK(on == p.N && ok == p.K && oh == p.P && ow == p.Q, "cuDNN: output shape ", on, "x", ok, "x", oh, "x", ow,
              " disagrees with the problem's ", p.N, "x", p.K, "x", p.P, "x", p.Q);

  // FindEx writes its output: give it scratch so an accumulating call's output survives.
  const size_t out_elems = size_t(dir == ConvDir::Fprop ? p.y_size() : (dir == ConvDir::Dgrad ? p.x_size() : p.w_size()));
  Scratch out_scratch(out_elems * elem_bytes(mode));
  size_t free_b = 0, total_b = 0;
  DISCO_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  size_t ws_cap = size_t(512) << 20;
  if (ws_cap > free_b / 2) ws_cap = free_b / 2;
  Scratch ws(ws_cap);
  cudnnHandle_t h = detail::cudnn_handle();
  int n = 0;
  switch (dir) {
    case ConvDir::Fprop: {
      cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
      DISCO_CUDNN_CHECK(cudnnFindConvolutionForwardAlgorithmEx(h, pl.x, a, pl.w, b, pl.conv, pl.y,
                                                               out_scratch.as<void>(), CUDNN_CONVOLUTION_FWD_ALGO_COUNT,
                                                               &n, perf, ws.as<void>(), ws_cap));
      const auto* r = pick(perf, n, "forward", mode == MathMode::FP32);
      pl.algo = int(r->algo);
      pl.ws_bytes = r->memory;
      pl.math = r->mathType;
      pl.name = fwd_name(pl.algo);
      break;
    }
    case ConvDir::Dgrad: {
      cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
      DISCO_CUDNN_CHECK(cudnnFindConvolutionBackwardDataAlgorithmEx(
          h, pl.w, b, pl.y, a, pl.conv, pl.x, out_scratch.as<void>(), CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf,
          ws.as<void>(), ws_cap));
      const auto* r = pick(perf, n, "backward-data", mode == MathMode::FP32);
      pl.algo = int(r->algo);
      pl.ws_bytes = r->memory;
      pl.math = r->mathType;
      pl.name = bwd_data_name(pl.algo);
      break;
    }
    case ConvDir::Wgrad: {
      cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
      DISCO_CUDNN_CHECK(cudnnFindConvolutionBackwardFilterAlgorithmEx(
          h, pl.x, a, pl.y, b, pl.conv, pl.w, out_scratch.as<void>(), CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
          perf, ws.as<void>(), ws_cap));
      const auto* r = pick(perf, n, "backward-filter", mode == MathMode::FP32);
      pl.algo = int(r->algo);
      pl.ws_bytes = r->memory;
      pl.math = r->mathType;
      pl.name = bwd_filter_name(pl.algo);
      break;
    }
  }
  if (mode == MathMode::FP32) pl.math = CUDNN_FMA_MATH;  // never TF32 on the exact path
  DISCO_CUDNN_CHECK(cudnnSetConvolutionMathType(pl.conv, pl.math));
  pl.name += std::string(" (") + math_name(pl.math) + ")";
  return plans().emplace(key, pl).first->second;
}

}  // namespace

cudnnHandle_t detail::cudnn_handle() {
  static cudnnHandle_t h = [] {
    cudnnHandle_t hh = nullptr;
    DISCO_CUDNN_CHECK(cudnnCreate(&hh));
    return hh;
  }();
  DISCO_CUDNN_CHECK(cudnnSetStream(h, stream()));
  return h;
}

bool cudnn_available() { return true; }
int cudnn_version() { return int(cudnnGetVersion()); }

void cudnn_conv2d_raw(ConvDir dir, const Conv2dProblem& p, const void* a, const void* b, void* out, bool accumulate,
                      MathMode mode) {
  std::lock_guard<std::mutex> lock(g_mu);
  Plan& pl = get_plan(dir, p, mode, a, b);
  cudnnHandle_t h = detail::cudnn_handle();
  Scratch ws(pl.ws_bytes);
  const float alpha = 1.f, beta = accumulate ? 1.f : 0.f;
  switch (dir) {
    case ConvDir::Fprop:
      DISCO_CUDNN_CHECK(cudnnConvolutionForward(h, &alpha, pl.x, a, pl.w, b, pl.conv,
                                                cudnnConvolutionFwdAlgo_t(pl.algo), ws.as<void>(), pl.ws_bytes, &beta,
                                                pl.y, out));
      break;
    case ConvDir::Dgrad:
      DISCO_CUDNN_CHECK(cudnnConvolutionBackwardData(h, &alpha, pl.w, b, pl.y, a, pl.conv,
                                                     cudnnConvolutionBwdDataAlgo_t(pl.algo), ws.as<void>(),
                                                     pl.ws_bytes, &beta, pl.x, out));
      break;
    case ConvDir::Wgrad:
      DISCO_CUDNN_CHECK(cudnnConvolutionBackwardFilter(h, &alpha, pl.x, a, pl.y, b, pl.conv,
                                                       cudnnConvolutionBwdFilterAlgo_t(pl.algo), ws.as<void>(),
                                                       pl.ws_bytes, &beta, pl.w, out));
      break;
  }
}

const char* cudnn_algo_name(ConvDir dir, const Conv2dProblem& p, MathMode mode) {
  std::lock_guard<std::mutex> lock(g_mu);
  const Key key{int(dir), int(mode), p.N, p.C, p.H, p.W, p.K, p.R, p.S, p.pad_h, p.pad_w, p.stride_h, p.stride_w,
                p.dil_h, p.dil_w};
  auto it = plans().find(key);
  DISCO_CHECK(it != plans().end(), "cudnn_algo_name: run the convolution once first");
  return it->second.name.c_str();
}

namespace detail {
void cudnn_conv_f32(ConvDir dir, const Conv2dProblem& p, const float* a, const float* b, float* out, bool accumulate,
                    MathMode mode) {
  if (mode != MathMode::BF16) {
    cudnn_conv2d_raw(dir, p, a, b, out, accumulate, mode);
    return;
  }
  int64_t na = 0, nb = 0, nout = 0;
  switch (dir) {
    case ConvDir::Fprop: na = p.x_size(); nb = p.w_size(); nout = p.y_size(); break;
    case ConvDir::Dgrad: na = p.y_size(); nb = p.w_size(); nout = p.x_size(); break;
    case ConvDir::Wgrad: na = p.x_size(); nb = p.y_size(); nout = p.w_size(); break;
  }
  Scratch abf(size_t(na) * 2), bbf(size_t(nb) * 2), obf(size_t(nout) * 2);
  f32_to_bf16(a, abf.as<void>(), na);
  f32_to_bf16(b, bbf.as<void>(), nb);
  cudnn_conv2d_raw(dir, p, abf.as<void>(), bbf.as<void>(), obf.as<void>(), false, mode);
  bf16_to_f32_acc(obf.as<void>(), out, nout, accumulate);
}
}  // namespace detail

#else  // !DISCO_HAVE_CUDNN

bool cudnn_available() { return false; }
int cudnn_version() { return 0; }
void cudnn_conv2d_raw(ConvDir, const Conv2dProblem&, const void*, const void*, void*, bool, MathMode) {
  fail("cudnn_conv2d_raw: disco::cuda was built without cuDNN (see the CMake configure log)");
}
const char* cudnn_algo_name(ConvDir, const Conv2dProblem&, MathMode) {
  fail("cudnn_algo_name: disco::cuda was built without cuDNN");
}
namespace detail {
void cudnn_conv_f32(ConvDir, const Conv2dProblem&, const float*, const float*, float*, bool, MathMode) {
  fail("ConvAlgo::Cudnn: disco::cuda was built without cuDNN (see the CMake configure log)");
}
}  // namespace detail

#endif

}  // namespace cuda
}  // namespace disco
