#pragma once
// The CUDA backend of Tensor<CUDA>: Device<CUDA> (memory from disco::cuda's caching
// allocator) and Kernels<CUDA>, the same primitives as Kernels<CPU> (backend/cpu/kernels.hpp,
// same names and parameter lists) implemented with the float32 launchers of
// disco/backend/cuda/{ops,conv}.hpp. Plain C++ (no CUDA headers); link disco::cuda.
//
//   - float32 only: every primitive instantiated with T = double throws disco::Error
//     ("CUDA backend: float64 is not supported (op ...)"). Gradient checks in float64 stay
//     on the CPU; Tensor<CUDA> of float64 can still be created, filled from the host and
//     read back (from_vector / to_vector of contiguous tensors need no kernel).
//   - Work is enqueued on disco's current stream; only the primitives that return a host
//     value (sumsq) and the host copies of Device<CUDA> synchronize.
//   - Matrix products (convolutions and GEMMs) use the process-wide conv_settings():
//     ConvAlgo::Custom and MathMode::FP32 by default, so results match the CPU backend to
//     float rounding; training may switch to TF32 or BF16 (tensor cores) or to cuDNN.
#include <cstddef>
#include <cstdint>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "disco/backend/cuda/conv.hpp"
#include "disco/backend/cuda/ops.hpp"
#include "disco/backend/cuda/runtime.hpp"
#include "disco/backend/cuda/types.hpp"
#include "disco/core/backend.hpp"
#include "disco/core/error.hpp"
#include "disco/core/shape.hpp"
#include "disco/ops/kinds.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace disco {
namespace cuda {

// How Kernels<CUDA> runs matrix products. `algo` picks the convolution implementation
// (disco's implicit GEMM or cuDNN); `mode` is the arithmetic of convolutions and GEMMs
// (linear layers, matmul). One setting per process; change it between steps, not while
// a step runs.
struct ConvSettings {
  ConvAlgo algo = ConvAlgo::Custom;
  MathMode mode = MathMode::FP32;
};
inline ConvSettings& conv_settings() {
  static ConvSettings s;
  return s;
}

namespace backend_detail {
[[noreturn]] inline void no_f64(const char* op) {
  fail("CUDA backend: float64 is not supported (op ", op, "); use float32 tensors or the CPU backend");
}
inline Activation norm_activation(UnaryKind k) {
  switch (k) {
    case UnaryKind::None: return Activation::None;
    case UnaryKind::Relu: return Activation::ReLU;
    case UnaryKind::LeakyRelu: return Activation::LeakyReLU;
    default: fail("CUDA backend: instance norm fuses only none / relu / leaky_relu, not ", unary_name(k));
  }
}
}  // namespace backend_detail

}  // namespace cuda

template <>
struct Device<CUDA> {
  static std::shared_ptr<void> allocate(std::size_t bytes) {
    void* p = cuda::device_malloc(bytes);
    return std::shared_ptr<void>(p, [](void* q) {
      try {
        cuda::device_free(q);
      } catch (...) {  // a deleter must not throw; device_free only fails on a foreign pointer
      }
    });
  }
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) { cuda::memcpy_h2d(dst, src, bytes); }
  // Waits until the data has arrived (and so for all work queued before it).
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) { cuda::memcpy_d2h(dst, src, bytes); }
  // Device to device (the ranges must not overlap).
  static void copy(void* dst, const void* src, std::size_t bytes) { cuda::memcpy_d2d(dst, src, bytes); }
};

template <>
struct Kernels<CUDA> {
  template <class T>
  static constexpr bool is_f32 = std::is_same_v<T, float>;

  template <class T>
  static void fill(T* y, int64_t n, T v) {
    if constexpr (is_f32<T>) cuda::fill(y, n, v);
    else cuda::backend_detail::no_f64("fill");
  }

  // dst[idx] = src[idx] over every multi-index of `shape`, each side with its own strides.
  // Size-1 dims are dropped and dims that are contiguous on both sides merged, so any rank
  // works as long as at most 6 dims remain (the launcher's limit); a plain contiguous copy
  // becomes one cudaMemcpyAsync.
  template <class T>
  static void copy_strided(const Shape& shape, const T* src, const Shape& src_strides, T* dst,
                           const Shape& dst_strides) {
    if constexpr (is_f32<T>) {
      if (shape_numel(shape) == 0) return;
      int64_t sh[64], ss[64], ds[64];
      int nd = 0;
      for (std::size_t d = 0; d < shape.size(); ++d) {
        if (shape[d] == 1) continue;
        if (nd > 0 && ss[nd - 1] == src_strides[d] * shape[d] && ds[nd - 1] == dst_strides[d] * shape[d]) {
          sh[nd - 1] *= shape[d];  // merge with the previous (outer) dim
          ss[nd - 1] = src_strides[d];
          ds[nd - 1] = dst_strides[d];
          continue;
        }
        DISCO_CHECK(nd < 64, "copy_strided: too many dims (", shape.size(), ")");
        sh[nd] = shape[d];
        ss[nd] = src_strides[d];
        ds[nd] = dst_strides[d];
        ++nd;
      }
      if (nd == 0) {  // a single element
        cuda::memcpy_d2d(dst, src, sizeof(float));
        return;
      }
      if (nd == 1 && ss[0] == 1 && ds[0] == 1) {
        cuda::memcpy_d2d(dst, src, std::size_t(sh[0]) * sizeof(float));
        return;
      }
      DISCO_CHECK(nd <= 6, "copy_strided (CUDA): view of shape ", shape_str(shape), " has ", nd,
                  " non-mergeable dims; the CUDA strided copy supports at most 6");
      cuda::copy_strided(src, ss, dst, ds, sh, nd);
    } else {
      cuda::backend_detail::no_f64("copy_strided");
    }
  }

  template <class T>
  static void binary(BinaryKind k, const T* a, const T* b, T* y, int64_t n) {
    if constexpr (is_f32<T>) {
      switch (k) {
        case BinaryKind::Add: cuda::add(a, b, y, n); break;
        case BinaryKind::Sub: cuda::sub(a, b, y, n); break;
        case BinaryKind::Mul: cuda::mul(a, b, y, n); break;
      }
    } else {
      cuda::backend_detail::no_f64("binary");
    }
  }
  // y = alpha * x + beta (beta = 0 gives scale).
  template <class T>
  static void affine(const T* x, T alpha, T beta, T* y, int64_t n) {
    if constexpr (is_f32<T>) {
      if (beta == 0.f) cuda::scale(x, alpha, y, n);
      else cuda::affine(x, alpha, beta, y, n);
    } else {
      cuda::backend_detail::no_f64("affine");
    }
  }
  // y += alpha * x
  template <class T>
  static void axpy(T alpha, const T* x, T* y, int64_t n) {
    if constexpr (is_f32<T>) cuda::axpy(alpha, x, y, n);
    else cuda::backend_detail::no_f64("axpy");
  }
  // y[n,c,i] = x[n,c,i] (op) v[c] for x of shape [N, C, HW].
  template <class T>
  static void channel_binary(BinaryKind k, const T* x, const T* v, T* y, int64_t N, int64_t C, int64_t HW) {
    if constexpr (is_f32<T>) {
      switch (k) {
        case BinaryKind::Add: cuda::add_channel_bias(x, v, y, N, C, HW); break;
        case BinaryKind::Sub: cuda::sub_channel(x, v, y, N, C, HW); break;
        case BinaryKind::Mul: cuda::mul_channel(x, v, y, N, C, HW); break;
      }
    } else {
      cuda::backend_detail::no_f64("channel_binary");
    }
  }
  // out[c] (+)= sum over n, i of a[n,c,i] * (b ? b[n,c,i] : 1)
  template <class T>
  static void channel_reduce(const T* a, const T* b, T* out, int64_t N, int64_t C, int64_t HW, bool accumulate) {
    if constexpr (is_f32<T>) {
      if (b) cuda::channel_dot(a, b, out, N, C, HW, accumulate);
      else cuda::channel_sum(a, out, N, C, HW, accumulate);
    } else {
      cuda::backend_detail::no_f64("channel_reduce");
    }
  }

  template <class T>
  static void unary_fwd(UnaryKind k, T slope, const T* x, T* y, int64_t n) {
    if constexpr (is_f32<T>) {
      switch (k) {
        case UnaryKind::Relu: cuda::relu_fwd(x, y, n); break;
        case UnaryKind::LeakyRelu: cuda::leaky_relu_fwd(x, y, n, slope); break;
        case UnaryKind::Tanh: cuda::tanh_fwd(x, y, n); break;
        case UnaryKind::Sigmoid: cuda::sigmoid_fwd(x, y, n); break;
        default:
          if (x != y) cuda::memcpy_d2d(y, x, std::size_t(n) * sizeof(float));
          break;
      }
    } else {
      cuda::backend_detail::no_f64("unary_fwd");
    }
  }
  // gx = gy * f'(x), with f' taken from the input x (relu / leaky) or the output y (tanh /
  // sigmoid), as kinds.hpp's unary_derivative.
  template <class T>
  static void unary_bwd(UnaryKind k, T slope, const T* x, const T* y, const T* gy, T* gx, int64_t n) {
    if constexpr (is_f32<T>) {
      switch (k) {
        case UnaryKind::Relu:
          DISCO_CHECK(x || y, "unary_bwd (relu): needs the forward input or output");
          cuda::relu_bwd(gy, x ? x : y, gx, n);
          break;
        case UnaryKind::LeakyRelu:
          DISCO_CHECK(x || y, "unary_bwd (leaky_relu): needs the forward input or output");
          if (x) cuda::leaky_relu_bwd_from_input(gy, x, gx, n, slope);
          else cuda::leaky_relu_bwd(gy, y, gx, n, slope);
          break;
        case UnaryKind::Tanh:
          DISCO_CHECK(y, "unary_bwd (tanh): needs the forward output");
          cuda::tanh_bwd(gy, y, gx, n);
          break;
        case UnaryKind::Sigmoid:
          DISCO_CHECK(y, "unary_bwd (sigmoid): needs the forward output");
          cuda::sigmoid_bwd(gy, y, gx, n);
          break;
        default:
          if (gy != gx) cuda::memcpy_d2d(gx, gy, std::size_t(n) * sizeof(float));
          break;
      }
    } else {
      cuda::backend_detail::no_f64("unary_bwd");
    }
  }

  // out[0] = sum of x (device scalar).
  template <class T>
  static void sum(const T* x, int64_t n, T* out) {
    if constexpr (is_f32<T>) cuda::sum(x, n, out);
    else cuda::backend_detail::no_f64("sum");
  }
  // Sum of squares to the host (synchronizes).
  template <class T>
  static double sumsq(const T* x, int64_t n) {
    if constexpr (is_f32<T>) {
      if (n <= 0) return 0.0;
      cuda::DeviceArray<float> out(1);
      cuda::sumsq(x, n, out.data());
      float h = 0.f;
      cuda::memcpy_d2h(&h, out.data(), sizeof(float));
      return double(h);
    } else {
      cuda::backend_detail::no_f64("sumsq");
    }
  }
  // y[i] = v[0] * scale where v is a device scalar (broadcast of a scalar gradient).
  template <class T>
  static void broadcast_scalar(const T* v, T scale, T* y, int64_t n) {
    if constexpr (is_f32<T>) cuda::broadcast_scalar(v, scale, y, n);
    else cuda::backend_detail::no_f64("broadcast_scalar");
  }

  // Row-major C[M,N] = alpha * op(A) * op(B) + beta * C; op(A) is [M,K], op(B) is [K,N] (cuBLAS).
  template <class T>
  static void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* Bm,
                   T beta, T* C) {
    if constexpr (is_f32<T>) cuda::gemm(trans_a, trans_b, M, N, K, alpha, A, Bm, beta, C, cuda::conv_settings().mode);
    else cuda::backend_detail::no_f64("gemm");
  }

  // ---- convolution (disco::cuda::conv2d_*, algorithm and math mode from conv_settings()) ------
  // Held around a convolution's backward: its data and weight gradients share the
  // channels-last pack of the output gradient (cuda::ConvPackShare).
  static cuda::ConvPackShare conv_backward_scope() { return cuda::ConvPackShare(); }
  template <class T>
  static void conv2d_fprop(const Conv2dProblem& p, const T* x, const T* w, const T* bias, T* y) {
    if constexpr (is_f32<T>) {
      const auto& s = cuda::conv_settings();
      cuda::conv2d_fprop(p, x, w, bias, y, s.algo, s.mode);
    } else {
      cuda::backend_detail::no_f64("conv2d_fprop");
    }
  }
  template <class T>
  static void conv2d_dgrad(const Conv2dProblem& p, const T* dy, const T* w, T* dx, bool accumulate) {
    if constexpr (is_f32<T>) {
      const auto& s = cuda::conv_settings();
      cuda::conv2d_dgrad(p, dy, w, dx, accumulate, s.algo, s.mode);
    } else {
      cuda::backend_detail::no_f64("conv2d_dgrad");
    }
  }
  template <class T>
  static void conv2d_wgrad(const Conv2dProblem& p, const T* x, const T* dy, T* dw, bool accumulate) {
    if constexpr (is_f32<T>) {
      const auto& s = cuda::conv_settings();
      cuda::conv2d_wgrad(p, x, dy, dw, accumulate, s.algo, s.mode);
    } else {
      cuda::backend_detail::no_f64("conv2d_wgrad");
    }
  }

  // ---- instance norm (rows of [NC, HW], fused none / relu / leaky activation) ---------------
  template <class T>
  static void instance_norm_fwd(const T* x, T* y, T* mean, T* rstd, int64_t NC, int64_t HW, double eps,
                                UnaryKind act, T slope) {
    if constexpr (is_f32<T>) {
      cuda::instance_norm_fwd(x, y, mean, rstd, NC, HW, float(eps), cuda::backend_detail::norm_activation(act), slope);
    } else {
      cuda::backend_detail::no_f64("instance_norm_fwd");
    }
  }
  // The activation's derivative comes from xhat = (x - mean) * rstd (as the CPU backend);
  // without x the normalised value is recovered from the output y (none / leaky with slope > 0).
  template <class T>
  static void instance_norm_bwd(const T* gy, const T* x, const T* y, const T* mean, const T* rstd, T* gx,
                                int64_t NC, int64_t HW, UnaryKind act, T slope) {
    if constexpr (is_f32<T>) {
      const cuda::Activation a = cuda::backend_detail::norm_activation(act);
      DISCO_CHECK(x || y, "instance_norm_bwd: needs the forward input or output");
      if (x) cuda::instance_norm_bwd(gy, x, false, mean, rstd, gx, NC, HW, a, slope, false);
      else cuda::instance_norm_bwd(gy, y, true, mean, rstd, gx, NC, HW, a, slope, false);
    } else {
      cuda::backend_detail::no_f64("instance_norm_bwd");
    }
  }

  // ---- losses (fused value + gradient launchers) -------------------------------------------
  template <class T>
  static void loss_fwd_bwd(LossKind k, const T* pred, const T* target, int64_t n, T* out, T* grad, double grad_scale) {
    if constexpr (is_f32<T>) {
      const float gs = float(grad_scale);
      switch (k) {
        case LossKind::MSE: cuda::mse_loss_fwd_bwd(pred, target, n, out, grad, gs); break;
        case LossKind::L1: cuda::l1_loss_fwd_bwd(pred, target, n, out, grad, gs); break;
        case LossKind::BCE: cuda::bce_loss_fwd_bwd(pred, target, 0.f, n, out, grad, gs); break;
        case LossKind::BCEWithLogits: cuda::bce_with_logits_fwd_bwd(pred, target, 0.f, n, out, grad, gs); break;
      }
    } else {
      cuda::backend_detail::no_f64("loss_fwd_bwd");
    }
  }
  // out[0] = recon + weight * BCE(prob, label), out[1] = recon, out[2] = BCE (one launch).
  template <class T>
  static void recon_adv_loss(LossKind recon, const T* pred, const T* target, int64_t n, const T* prob, T label,
                             int64_t m, double weight, T* out, T* gpred, T* gprob) {
    if constexpr (is_f32<T>) {
      DISCO_CHECK(recon == LossKind::MSE || recon == LossKind::L1, "recon_adv_loss: reconstruction must be MSE or L1");
      cuda::recon_adv_loss_fwd_bwd(recon == LossKind::L1 ? cuda::ReconLoss::L1 : cuda::ReconLoss::MSE, pred, target, n,
                                   prob, m, label, float(weight), out, gpred, gprob, 1.0f);
    } else {
      cuda::backend_detail::no_f64("recon_adv_loss");
    }
  }
  // gpred[i] = grad[i] * gout[0] (gout a device scalar)
  template <class T>
  static void scale_by_scalar(const T* grad, const T* gout, T* gpred, int64_t n) {
    if constexpr (is_f32<T>) cuda::scale_by_scalar(grad, gout, gpred, n);
    else cuda::backend_detail::no_f64("scale_by_scalar");
  }

  // ---- optimisers -----------------------------------------------------------------------------
  // Adam on many tensors in one launch (per 24 tensors / 320 chunks); the step count
  // lives on the device (counter) and the scale is a device scalar: no host round trip.
  template <class T>
  static void adam_multi(const std::vector<AdamSlot<T>>& slots, const AdamHyperParams& hp, int64_t* counter,
                         const T* scale) {
    if constexpr (is_f32<T>) {
      std::vector<cuda::AdamTensor> ts;
      ts.reserve(slots.size());
      for (const auto& s : slots) ts.push_back(cuda::AdamTensor{s.p, s.g, s.m, s.v, s.n});
      cuda::AdamHyper h;
      h.lr = float(hp.lr);
      h.beta1 = float(hp.beta1);
      h.beta2 = float(hp.beta2);
      h.eps = float(hp.eps);
      h.weight_decay = float(hp.weight_decay);
      h.lr_d = hp.lr;
      h.beta1_d = hp.beta1;
      h.beta2_d = hp.beta2;
      static_assert(sizeof(long long) == sizeof(int64_t), "int64_t must be 64-bit");
      cuda::adam_update_counted(ts, h, reinterpret_cast<long long*>(counter), scale);
    } else {
      cuda::backend_detail::no_f64("adam_multi");
    }
  }
  // Global L2 norm (and clip coefficient) of many arrays into device scalars; no sync.
  template <class T>
  static void grad_norm_coef(const std::vector<std::pair<const T*, int64_t>>& xs, double max_norm, T* norm_out,
                             T* coef_out) {
    if constexpr (is_f32<T>) {
      std::vector<cuda::GradTensor> gs;
      gs.reserve(xs.size());
      for (const auto& x : xs) gs.push_back(cuda::GradTensor{const_cast<float*>(x.first), x.second});
      cuda::clip_grad_norm_async(gs, coef_out ? float(max_norm) : 1.f, norm_out, coef_out, false);
    } else {
      cuda::backend_detail::no_f64("grad_norm_coef");
    }
  }
  template <class T>
  static void sgd_update(T* p, const T* g, T* buf, int64_t n, double lr, double momentum, double wd, bool first,
                         double gscale) {
    if constexpr (is_f32<T>) {
      cuda::sgd_update(p, g, buf, n, float(lr), float(momentum), float(wd), first, float(gscale));
    } else {
      cuda::backend_detail::no_f64("sgd_update");
    }
  }
};

}  // namespace disco
