#pragma once
// CUDA launchers of disco's element-wise, reduction, normalization, linear, loss and
// optimizer kernels. Plain C++ (no CUDA headers); link disco::cuda.
//
// Contract for every function here unless it says otherwise:
//   - pointers are float32 *device* pointers; n / counts are element counts;
//   - the work is enqueued asynchronously on disco's current stream (runtime.hpp) and the
//     function returns without waiting; scalar results are written to device memory;
//   - an output may alias an input of the same shape (y == x) for element-wise ops;
//   - errors (bad sizes, CUDA errors) throw disco::Error; nothing aborts.
// `accumulate` = add into the output (gradient accumulation) instead of overwriting it;
// when false the old output is never read (so it may hold NaN).
#include <cstdint>
#include <vector>

#include "disco/backend/cuda/types.hpp"

namespace disco {
namespace cuda {

// ---- element-wise -------------------------------------------------------------------------
void fill(float* y, int64_t n, float value);
void add(const float* a, const float* b, float* y, int64_t n);  // y = a + b
void sub(const float* a, const float* b, float* y, int64_t n);  // y = a - b
void mul(const float* a, const float* b, float* y, int64_t n);  // y = a * b
void scale(const float* x, float s, float* y, int64_t n);       // y = s * x
void axpy(float alpha, const float* x, float* y, int64_t n);    // y += alpha * x
void affine(const float* x, float alpha, float beta, float* y, int64_t n);  // y = alpha * x + beta
// y[i] = v[0] * s with v a device scalar (the gradient of a full reduction).
void broadcast_scalar(const float* v, float s, float* y, int64_t n);
// y[i] = x[i] * v[0] with v a device scalar (a stored gradient times grad_out).
void scale_by_scalar(const float* x, const float* v, float* y, int64_t n);

// x, y: [N, C, HW]; b: [C]. y = x + b[c] (y may be x).
void add_channel_bias(const float* x, const float* b, float* y, int64_t N, int64_t C, int64_t HW);
// y = x - v[c], y = x * v[c] (same layout; y may be x).
void sub_channel(const float* x, const float* v, float* y, int64_t N, int64_t C, int64_t HW);
void mul_channel(const float* x, const float* v, float* y, int64_t N, int64_t C, int64_t HW);
// db[c] (=|+=) sum over n, hw of dy[n, c, hw]  (bias gradient; deterministic).
void channel_sum(const float* dy, float* db, int64_t N, int64_t C, int64_t HW, bool accumulate);
// out[c] (=|+=) sum over n, hw of a[n, c, hw] * b[n, c, hw]  (per-channel scale gradient).
void channel_dot(const float* a, const float* b, float* out, int64_t N, int64_t C, int64_t HW, bool accumulate);

// Activations. Backward: dx (=|+=) dy * f'(.). relu / leaky take the forward input or the
// forward output (same sign for slope >= 0); tanh and sigmoid take the forward output y.
// leaky_relu'(0) = slope and relu'(0) = 0, as in PyTorch.
void relu_fwd(const float* x, float* y, int64_t n);
void relu_bwd(const float* dy, const float* x_or_y, float* dx, int64_t n, bool accumulate = false);
void leaky_relu_fwd(const float* x, float* y, int64_t n, float slope);
void leaky_relu_bwd(const float* dy, const float* x_or_y, float* dx, int64_t n, float slope,
                    bool accumulate = false);
// As leaky_relu_bwd but `x` must be the forward input; any slope (also negative).
void leaky_relu_bwd_from_input(const float* dy, const float* x, float* dx, int64_t n, float slope,
                               bool accumulate = false);
void tanh_fwd(const float* x, float* y, int64_t n);
void tanh_bwd(const float* dy, const float* y, float* dx, int64_t n, bool accumulate = false);
void sigmoid_fwd(const float* x, float* y, int64_t n);
void sigmoid_bwd(const float* dy, const float* y, float* dx, int64_t n, bool accumulate = false);

// bfloat16 conversion (round to nearest even); bf16 buffers are void* of n 2-byte elements.
void f32_to_bf16(const float* x, void* y_bf16, int64_t n);
void bf16_to_f32(const void* x_bf16, float* y, int64_t n);

// ---- reductions (deterministic; result is one float in device memory) ----------------------
void sum(const float* x, int64_t n, float* out);
void mean(const float* x, int64_t n, float* out);
void sumsq(const float* x, int64_t n, float* out);
// out[0] = max_i |a[i] - b[i]| (NaN when any difference is NaN: a NaN or an infinity in a or
// b), out[1] = max_i |b[i]|; two floats in device memory, 0 and 0 for n = 0.
void max_abs_diff(const float* a, const float* b, int64_t n, float* out);

// Strided copy of an ndim-dimensional view (ndim in [1, 6]): dst[idx . dst_strides] =
// src[idx . src_strides] for every index idx < shape. Strides are in elements (host arrays).
// Views, transposes, concat and split are all this.
void copy_strided(const float* src, const int64_t* src_strides, float* dst, const int64_t* dst_strides,
                  const int64_t* shape, int ndim);

// ---- instance norm (PyTorch InstanceNorm2d, affine=False, biased variance) -----------------
// x, y: [NC, HW] (rows = sample-and-channel). y = act((x - mean) * rstd) with
// rstd = 1 / sqrt(var + eps). mean_out / rstd_out: [NC] (may be null when not needed).
// slope is used by Activation::LeakyReLU only.
void instance_norm_fwd(const float* x, float* y, float* mean_out, float* rstd_out, int64_t NC, int64_t HW,
                       float eps = 1e-5f, Activation act = Activation::None, float slope = 0.2f);
// Backward of the fused norm + activation. `xy` is the forward input x (is_output = false) or
// the forward output y (is_output = true; needs act None or LeakyReLU with slope > 0, since a
// ReLU output does not determine the normalized value). dx (=|+=) d loss / dx.
void instance_norm_bwd(const float* dy, const float* xy, bool is_output, const float* mean, const float* rstd,
                       float* dx, int64_t NC, int64_t HW, Activation act = Activation::None, float slope = 0.2f,
                       bool accumulate = false);

// cuDNN's instance norm, the oracle and competitor of the two above in tests and benchmarks
// (src/cuda/cudnn_norm.cpp): what PyTorch's InstanceNorm2d runs on a GPU, cuDNN's spatial
// batch norm in training mode over x viewed as [1, NC, 1, HW] (scale 1, bias 0), then
// cuDNN's ReLU for Activation::ReLU. cuDNN has no LeakyReLU: act must be None or ReLU.
// mean_out / rstd_out may be null; the backward needs them, and the forward output y when
// act is ReLU. Throws disco::Error when built without cuDNN (cudnn_available() in conv.hpp).
void cudnn_instance_norm_fwd(const float* x, float* y, float* mean_out, float* rstd_out, int64_t NC, int64_t HW,
                             float eps = 1e-5f, Activation act = Activation::None);
void cudnn_instance_norm_bwd(const float* dy, const float* x, const float* y, const float* mean, const float* rstd,
                             float* dx, int64_t NC, int64_t HW, float eps = 1e-5f, Activation act = Activation::None);

// cuDNN oracles of the element-wise kernels and reductions (tests, benchmarks; same file and
// the same no-cuDNN behaviour as above), n in [1, 2^31) elements viewed as [1, 1, 1, n]:
// activations (cudnnActivationForward / Backward; the backward takes the forward input x and
// output y), y = a + b and y = a * b (cudnnOpTensor), and out[0] = sum, mean or L2 norm
// (cudnnReduceTensor).
enum class ReferenceActivation { ReLU = 0, Tanh = 1, Sigmoid = 2 };
enum class ReferenceReduce { Sum = 0, Mean = 1, L2Norm = 2 };
void cudnn_activation_fwd(ReferenceActivation a, const float* x, float* y, int64_t n);
void cudnn_activation_bwd(ReferenceActivation a, const float* dy, const float* x, const float* y, float* dx,
                          int64_t n);
void cudnn_add(const float* a, const float* b, float* y, int64_t n);
void cudnn_mul(const float* a, const float* b, float* y, int64_t n);
void cudnn_reduce(ReferenceReduce r, const float* x, int64_t n, float* out);

// ---- linear (cuBLAS) ------------------------------------------------------------------------
// y[M,N] = x[M,K] w[N,K]^T (+ b[N]).
void linear_fwd(const float* x, const float* w, const float* b_or_null, float* y, int64_t M, int64_t N,
                int64_t K, MathMode mode = MathMode::FP32);
// dx[M,K] = dy w; dw[N,K] = dy^T x; db[N] = column sums of dy. Null outputs are skipped.
// `accumulate` applies to all three outputs.
void linear_bwd(const float* dy, const float* x, const float* w, float* dx_or_null, float* dw_or_null,
                float* db_or_null, int64_t M, int64_t N, int64_t K, bool accumulate,
                MathMode mode = MathMode::FP32);

// General row-major GEMM on cuBLAS: C[M,N] = alpha * op(A) op(B) + beta * C with op(A) [M,K]
// (A stored [K,M] when trans_a) and op(B) [K,N] (B stored [N,K] when trans_b). beta = 0: C is
// not read. K = 0 gives beta * C.
void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B,
          float beta, float* C, MathMode mode = MathMode::FP32);

// ---- losses: value and gradient in one pass (mean reduction, as PyTorch) -------------------
// loss_out: one float = mean loss. grad_or_null (n floats) = grad_scale * d loss / d pred.
void mse_loss_fwd_bwd(const float* pred, const float* target, int64_t n, float* loss_out, float* grad_or_null,
                      float grad_scale = 1.0f);
void l1_loss_fwd_bwd(const float* pred, const float* target, int64_t n, float* loss_out, float* grad_or_null,
                     float grad_scale = 1.0f);
// Binary cross-entropy on probabilities: loss_i = -(t log p + (1-t) log(1-p)) with each log
// clamped at -100; gradient (p - t) / max(p (1 - p), 1e-12) / n (PyTorch's formulas).
// Targets come from `target` (n floats) or, when it is null, the constant target_value.
void bce_loss_fwd_bwd(const float* prob, const float* target, float target_value, int64_t n, float* loss_out,
                      float* grad_or_null, float grad_scale = 1.0f);
// Binary cross-entropy on logits: max(x,0) - x t + log(1 + exp(-|x|)); gradient (sigmoid(x) - t) / n.
void bce_with_logits_fwd_bwd(const float* logits, const float* target, float target_value, int64_t n,
                             float* loss_out, float* grad_or_null, float grad_scale = 1.0f);
// The autoencoder's loss in ONE launch:
//   recon = mean over n of (pred - target)^2 (MSE) or |pred - target| (L1)
//   adv   = mean over m of bce(disc_prob, target_label)
//   total = recon + adv_weight * adv
// loss_out: 3 floats {total, recon, adv}. grad_pred (n) = grad_scale * d total / d pred,
// grad_disc (m) = grad_scale * d total / d disc_prob; either may be null.
void recon_adv_loss_fwd_bwd(ReconLoss kind, const float* pred, const float* target, int64_t n,
                            const float* disc_prob, int64_t m, float target_label, float adv_weight,
                            float* loss_out, float* grad_pred_or_null, float* grad_disc_or_null,
                            float grad_scale = 1.0f);

// ---- optimizer ------------------------------------------------------------------------------
struct AdamTensor {
  float* param;
  const float* grad;
  float* exp_avg;     // m
  float* exp_avg_sq;  // v
  int64_t n;
};
struct AdamHyper {
  float lr = 1e-3f;
  float beta1 = 0.9f;
  float beta2 = 0.999f;
  float eps = 1e-8f;
  float weight_decay = 0.0f;  // L2: grad += weight_decay * param (torch.optim.Adam)
  int64_t step = 1;           // t, after incrementing (first update: 1)
  // The bias corrections 1 - b^t are computed in double from these when set (> 0), as
  // torch.optim.Adam does from its Python floats; otherwise from the float fields.
  double lr_d = 0, beta1_d = 0, beta2_d = 0;
};
// One fused multi-tensor Adam update (PyTorch semantics, amsgrad off):
//   g = grad * s + wd * p; m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
//   p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps)
// with s = *grad_scale_or_null (a device scalar, e.g. the clip coefficient) or 1.
void adam_update(const std::vector<AdamTensor>& tensors, const AdamHyper& h,
                 const float* grad_scale_or_null = nullptr);
// The same with the step count on the device: *step_counter (a device int64) is incremented
// first and its new value is t; h.step is ignored. Nothing is read back to the host, so the
// update can be captured in a CUDA graph and replayed step after step.
void adam_update_counted(const std::vector<AdamTensor>& tensors, const AdamHyper& h, long long* step_counter,
                         const float* grad_scale_or_null = nullptr);

// SGD with momentum on one tensor (torch.optim.SGD, dampening 0, no nesterov):
//   g = grad * grad_scale + weight_decay * p; if momentum != 0: buf = first ? g : momentum buf + g,
//   g = buf; p -= lr * g.  buf may be null when momentum is 0.
void sgd_update(float* param, const float* grad, float* buf, int64_t n, float lr, float momentum,
                float weight_decay, bool first, float grad_scale = 1.0f);

struct GradTensor {
  float* grad;
  int64_t n;
};
// torch.nn.utils.clip_grad_norm_ (L2): norm = sqrt(sum of all grad^2); coef =
// min(1, max_norm / (norm + 1e-6)); grads *= coef when scale_grads. Writes norm (and coef)
// to device scalars; no host synchronization.
void clip_grad_norm_async(const std::vector<GradTensor>& grads, float max_norm, float* norm_out,
                          float* coef_out_or_null = nullptr, bool scale_grads = true);
// Same, synchronizing: returns the total norm (before clipping).
float clip_grad_norm(const std::vector<GradTensor>& grads, float max_norm);

}  // namespace cuda
}  // namespace disco
