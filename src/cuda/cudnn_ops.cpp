// cuDNN as the oracle and competitor of disco's non-convolution kernels (the convolutions:
// cudnn_conv.cpp), for tests/cuda and benchmarks/ops_cuda:
//   - instance norm: PyTorch's InstanceNorm2d on a GPU views x [N, C, H, W] as [1, N*C, H, W]
//     and runs cuDNN's spatial batch norm in training mode (scale 1, bias 0, no running
//     statistics), followed by a separate ReLU. That is what this file runs. Descriptors and
//     the constant scale / bias buffers are built once per (NC, HW) and kept (plain
//     cudaMalloc, outside disco's caching allocator), so timed calls enqueue only cuDNN's
//     own kernels;
//   - activations (cudnnActivationForward / Backward: ReLU, tanh, sigmoid), add / mul
//     (cudnnOpTensor) and the full reductions sum, mean, L2 norm (cudnnReduceTensor) over n
//     elements viewed as [1, 1, 1, n].
// Compiled without cuDNN, every entry point throws disco::Error.
#include <cstdint>
#include <map>
#include <mutex>
#include <utility>

#include "cudnn_internal.hpp"
#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "internal.hpp"

// The batch-norm entry points are marked deprecated in cuDNN 9 (superseded by the graph
// API) but are still what PyTorch calls; silence the warning for this file only.
#if defined(__GNUC__)
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
#endif

namespace disco {
namespace cuda {

#if defined(DISCO_HAVE_CUDNN)

namespace {

struct NormPlan {
  cudnnTensorDescriptor_t x = nullptr;   // [1, NC, 1, HW]
  cudnnTensorDescriptor_t bn = nullptr;  // [1, NC, 1, 1]
  float* ones = nullptr;                 // scale
  float* zeros = nullptr;                // bias
  float* dscale = nullptr;               // backward's parameter gradients (discarded)
  float* dbias = nullptr;
};

std::mutex g_mu;

NormPlan& norm_plan(int64_t NC, int64_t HW) {
  static auto* plans = new std::map<std::pair<int64_t, int64_t>, NormPlan>;  // kept for the process
  const auto key = std::make_pair(NC, HW);
  auto it = plans->find(key);
  if (it != plans->end()) return it->second;
  NormPlan p;
  DISCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.x));
  DISCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&p.bn));
  DISCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(p.x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, int(NC), 1, int(HW)));
  DISCO_CUDNN_CHECK(cudnnDeriveBNTensorDescriptor(p.bn, p.x, CUDNN_BATCHNORM_SPATIAL));
  const size_t bytes = size_t(NC) * sizeof(float);
  DISCO_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p.ones), bytes));
  DISCO_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p.zeros), bytes));
  DISCO_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p.dscale), bytes));
  DISCO_CUDA_CHECK(cudaMalloc(reinterpret_cast<void**>(&p.dbias), bytes));
  fill(p.ones, NC, 1.f);
  fill(p.zeros, NC, 0.f);
  return plans->emplace(key, p).first->second;
}

// The activation descriptors (kept for the process; callers hold g_mu).
cudnnActivationDescriptor_t act_desc(ReferenceActivation a) {
  static cudnnActivationDescriptor_t d[3] = {nullptr, nullptr, nullptr};
  const int i = int(a);
  DISCO_CHECK(i >= 0 && i < 3, "cudnn activation: unknown kind ", i);
  if (!d[i]) {
    const cudnnActivationMode_t mode = a == ReferenceActivation::ReLU   ? CUDNN_ACTIVATION_RELU
                                       : a == ReferenceActivation::Tanh ? CUDNN_ACTIVATION_TANH
                                                                        : CUDNN_ACTIVATION_SIGMOID;
    DISCO_CUDNN_CHECK(cudnnCreateActivationDescriptor(&d[i]));
    DISCO_CUDNN_CHECK(cudnnSetActivationDescriptor(d[i], mode, CUDNN_NOT_PROPAGATE_NAN, 0.0));
  }
  return d[i];
}

void check_args(const char* fn, int64_t NC, int64_t HW, float eps, Activation act) {
  DISCO_CHECK(NC > 0 && HW > 0 && NC <= INT32_MAX && HW <= INT32_MAX, fn, ": NC and HW must be in [1, 2^31), got NC=",
              NC, " HW=", HW);
  DISCO_CHECK(double(eps) >= CUDNN_BN_MIN_EPSILON, fn, ": eps ", eps, " is below cuDNN's minimum ",
              CUDNN_BN_MIN_EPSILON);
  DISCO_CHECK(act == Activation::None || act == Activation::ReLU, fn,
              ": cuDNN has no fused LeakyReLU; act must be None or ReLU");
}

}  // namespace

void cudnn_instance_norm_fwd(const float* x, float* y, float* mean_out, float* rstd_out, int64_t NC, int64_t HW,
                             float eps, Activation act) {
  check_args("cudnn_instance_norm_fwd", NC, HW, eps, act);
  std::lock_guard<std::mutex> lock(g_mu);
  const NormPlan& p = norm_plan(NC, HW);
  cudnnHandle_t h = detail::cudnn_handle();
  const float one = 1.f, zero = 0.f;
  DISCO_CUDNN_CHECK(cudnnBatchNormalizationForwardTraining(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, p.x, x, p.x, y,
                                                           p.bn, p.ones, p.zeros, 1.0, nullptr, nullptr, double(eps),
                                                           mean_out, rstd_out));
  if (act == Activation::ReLU)
    DISCO_CUDNN_CHECK(cudnnActivationForward(h, act_desc(ReferenceActivation::ReLU), &one, p.x, y, &zero, p.x,
                                             y));  // in place
}

void cudnn_instance_norm_bwd(const float* dy, const float* x, const float* y, const float* mean, const float* rstd,
                             float* dx, int64_t NC, int64_t HW, float eps, Activation act) {
  check_args("cudnn_instance_norm_bwd", NC, HW, eps, act);
  DISCO_CHECK(mean && rstd, "cudnn_instance_norm_bwd: needs the forward's saved mean and rstd");
  DISCO_CHECK(act == Activation::None || y, "cudnn_instance_norm_bwd: ReLU needs the forward output y");
  std::lock_guard<std::mutex> lock(g_mu);
  const NormPlan& p = norm_plan(NC, HW);
  cudnnHandle_t h = detail::cudnn_handle();
  const float one = 1.f, zero = 0.f;
  const float* g = dy;
  detail::Scratch gbuf(act == Activation::ReLU ? size_t(NC * HW) * sizeof(float) : 0);
  if (act == Activation::ReLU) {
    // relu'(z) = [z > 0] = [relu(z) > 0]: the forward output stands in for the norm output z
    DISCO_CUDNN_CHECK(
        cudnnActivationBackward(h, act_desc(ReferenceActivation::ReLU), &one, p.x, y, p.x, dy, p.x, y, &zero, p.x,
                                gbuf.as<float>()));
    g = gbuf.as<float>();
  }
  DISCO_CUDNN_CHECK(cudnnBatchNormalizationBackward(h, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero, p.x, x, p.x, g,
                                                    p.x, dx, p.bn, p.ones, p.dscale, p.dbias, double(eps), mean, rstd));
}

// ---- element-wise and reductions -------------------------------------------------------------

namespace {

void check_n(const char* fn, int64_t n) {
  DISCO_CHECK(n > 0 && n <= INT32_MAX, fn, ": n must be in [1, 2^31), got ", n);
}

// [1, 1, 1, n] float descriptors, one per n (kept for the process)
cudnnTensorDescriptor_t vec_desc(int64_t n) {
  static auto* descs = new std::map<int64_t, cudnnTensorDescriptor_t>;
  auto it = descs->find(n);
  if (it != descs->end()) return it->second;
  cudnnTensorDescriptor_t d = nullptr;
  DISCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&d));
  DISCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, int(n)));
  return descs->emplace(n, d).first->second;
}

void op_tensor(cudnnOpTensorOp_t op, const char* fn, const float* a, const float* b, float* y, int64_t n) {
  check_n(fn, n);
  std::lock_guard<std::mutex> lock(g_mu);
  static cudnnOpTensorDescriptor_t descs[2] = {nullptr, nullptr};
  const int i = op == CUDNN_OP_TENSOR_ADD ? 0 : 1;
  if (!descs[i]) {
    DISCO_CUDNN_CHECK(cudnnCreateOpTensorDescriptor(&descs[i]));
    DISCO_CUDNN_CHECK(cudnnSetOpTensorDescriptor(descs[i], op, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN));
  }
  const cudnnTensorDescriptor_t d = vec_desc(n);
  const float one = 1.f, zero = 0.f;
  DISCO_CUDNN_CHECK(cudnnOpTensor(detail::cudnn_handle(), descs[i], &one, d, a, &one, d, b, &zero, d, y));
}

}  // namespace

void cudnn_activation_fwd(ReferenceActivation a, const float* x, float* y, int64_t n) {
  check_n("cudnn_activation_fwd", n);
  std::lock_guard<std::mutex> lock(g_mu);
  const cudnnTensorDescriptor_t d = vec_desc(n);
  const float one = 1.f, zero = 0.f;
  DISCO_CUDNN_CHECK(cudnnActivationForward(detail::cudnn_handle(), act_desc(a), &one, d, x, &zero, d, y));
}

void cudnn_activation_bwd(ReferenceActivation a, const float* dy, const float* x, const float* y, float* dx,
                          int64_t n) {
  check_n("cudnn_activation_bwd", n);
  std::lock_guard<std::mutex> lock(g_mu);
  const cudnnTensorDescriptor_t d = vec_desc(n);
  const float one = 1.f, zero = 0.f;
  DISCO_CUDNN_CHECK(
      cudnnActivationBackward(detail::cudnn_handle(), act_desc(a), &one, d, y, d, dy, d, x, &zero, d, dx));
}

void cudnn_add(const float* a, const float* b, float* y, int64_t n) {
  op_tensor(CUDNN_OP_TENSOR_ADD, "cudnn_add", a, b, y, n);
}
void cudnn_mul(const float* a, const float* b, float* y, int64_t n) {
  op_tensor(CUDNN_OP_TENSOR_MUL, "cudnn_mul", a, b, y, n);
}

void cudnn_reduce(ReferenceReduce r, const float* x, int64_t n, float* out) {
  check_n("cudnn_reduce", n);
  // seen on an H200 with cuDNN 9 (2026-11-28): a [1,1,1,1] -> [1,1,1,1] reduction, where
  // nothing is reduced, fails with CUDNN_STATUS_BAD_PARAM; say so plainly instead
  DISCO_CHECK(n >= 2, "cudnn_reduce: cuDNN does not reduce a single element (n = 1): compare n >= 2");
  std::lock_guard<std::mutex> lock(g_mu);
  static cudnnReduceTensorDescriptor_t descs[3] = {nullptr, nullptr, nullptr};
  static cudnnTensorDescriptor_t one_desc = nullptr;
  const int i = int(r);
  DISCO_CHECK(i >= 0 && i < 3, "cudnn_reduce: unknown reduction ", i);
  if (!descs[i]) {
    const cudnnReduceTensorOp_t op = r == ReferenceReduce::Sum    ? CUDNN_REDUCE_TENSOR_ADD
                                     : r == ReferenceReduce::Mean ? CUDNN_REDUCE_TENSOR_AVG
                                                                  : CUDNN_REDUCE_TENSOR_NORM2;
    DISCO_CUDNN_CHECK(cudnnCreateReduceTensorDescriptor(&descs[i]));
    DISCO_CUDNN_CHECK(cudnnSetReduceTensorDescriptor(descs[i], op, CUDNN_DATA_FLOAT, CUDNN_NOT_PROPAGATE_NAN,
                                                     CUDNN_REDUCE_TENSOR_NO_INDICES, CUDNN_32BIT_INDICES));
  }
  if (!one_desc) {
    DISCO_CUDNN_CHECK(cudnnCreateTensorDescriptor(&one_desc));
    DISCO_CUDNN_CHECK(cudnnSetTensor4dDescriptor(one_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, 1, 1, 1, 1));
  }
  cudnnHandle_t h = detail::cudnn_handle();
  const cudnnTensorDescriptor_t d = vec_desc(n);
  size_t ws_bytes = 0;
  DISCO_CUDNN_CHECK(cudnnGetReductionWorkspaceSize(h, descs[i], d, one_desc, &ws_bytes));
  detail::Scratch ws(ws_bytes);
  const float one = 1.f, zero = 0.f;
  DISCO_CUDNN_CHECK(cudnnReduceTensor(h, descs[i], nullptr, 0, ws.as<void>(), ws_bytes, &one, d, x, &zero, one_desc,
                                      out));
}

#else  // !DISCO_HAVE_CUDNN

void cudnn_instance_norm_fwd(const float*, float*, float*, float*, int64_t, int64_t, float, Activation) {
  fail("cudnn_instance_norm_fwd: disco::cuda was built without cuDNN (see the CMake configure log)");
}
void cudnn_instance_norm_bwd(const float*, const float*, const float*, const float*, const float*, float*, int64_t,
                             int64_t, float, Activation) {
  fail("cudnn_instance_norm_bwd: disco::cuda was built without cuDNN (see the CMake configure log)");
}
void cudnn_activation_fwd(ReferenceActivation, const float*, float*, int64_t) {
  fail("cudnn_activation_fwd: disco::cuda was built without cuDNN (see the CMake configure log)");
}
void cudnn_activation_bwd(ReferenceActivation, const float*, const float*, const float*, float*, int64_t) {
  fail("cudnn_activation_bwd: disco::cuda was built without cuDNN (see the CMake configure log)");
}
void cudnn_add(const float*, const float*, float*, int64_t) {
  fail("cudnn_add: disco::cuda was built without cuDNN (see the CMake configure log)");
}
void cudnn_mul(const float*, const float*, float*, int64_t) {
  fail("cudnn_mul: disco::cuda was built without cuDNN (see the CMake configure log)");
}
void cudnn_reduce(ReferenceReduce, const float*, int64_t, float*) {
  fail("cudnn_reduce: disco::cuda was built without cuDNN (see the CMake configure log)");
}

#endif

}  // namespace cuda
}  // namespace disco
