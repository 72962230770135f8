#pragma once
// The CPU backend: Device<CPU> (64-byte aligned host memory) and Kernels<CPU>, the
// compute primitives every op calls. Loops run on all cores through OpenMP; GEMM and
// convolution go through Eigen (see conv2d.hpp). This folder is the only place that
// includes Eigen.
#include <Eigen/Core>
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>
#include <utility>
#include <vector>

#include "disco/backend/cpu/conv2d.hpp"
#include "disco/core/backend.hpp"
#include "disco/core/error.hpp"
#include "disco/core/shape.hpp"
#include "disco/ops/kinds.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace disco {

template <>
struct Device<CPU> {
  static std::shared_ptr<void> allocate(std::size_t bytes) {
    const std::size_t rounded = (bytes + 63) / 64 * 64;
    void* p = std::aligned_alloc(64, rounded ? rounded : 64);
    if (!p) fail("cpu: out of memory allocating ", bytes, " bytes");
    return std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  }
  // (an empty std::vector's data() may be null, which memcpy must not see even for 0 bytes)
  static void copy_from_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy_to_host(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memcpy(dst, src, bytes);
  }
  static void copy(void* dst, const void* src, std::size_t bytes) {
    if (bytes) std::memmove(dst, src, bytes);
  }
};

namespace cpu {
// Loops shorter than this stay on one thread: forking costs more than it saves.
constexpr int64_t kParallelGrain = 1 << 15;

template <class T> using RowMat = Eigen::Matrix<T, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
}  // namespace cpu

template <>
struct Kernels<CPU> {
  template <class T>
  static void fill(T* y, int64_t n, T v) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = v;
  }

  // dst[idx] = src[idx] over every multi-index of `shape`, each side with its own strides.
  template <class T>
  static void copy_strided(const Shape& shape, const T* src, const Shape& src_strides, T* dst,
                           const Shape& dst_strides) {
    const int nd = int(shape.size());
    if (nd == 0) {
      dst[0] = src[0];
      return;
    }
    const int64_t inner = shape[nd - 1], si = src_strides[nd - 1], di = dst_strides[nd - 1];
    const int64_t outer = shape_numel(shape) / std::max<int64_t>(inner, 1);
    if (inner == 0) return;
#pragma omp parallel for if (outer * inner > cpu::kParallelGrain) schedule(static)
    for (int64_t o = 0; o < outer; ++o) {
      int64_t rem = o, so = 0, dof = 0;
      for (int d = nd - 2; d >= 0; --d) {
        const int64_t k = rem % shape[d];
        rem /= shape[d];
        so += k * src_strides[d];
        dof += k * dst_strides[d];
      }
      const T* s = src + so;
      T* t = dst + dof;
      if (si == 1 && di == 1) {
        std::memcpy(t, s, sizeof(T) * inner);
      } else {
        for (int64_t i = 0; i < inner; ++i) t[i * di] = s[i * si];
      }
    }
  }

  template <class T>
  static void binary(BinaryKind k, const T* a, const T* b, T* y, int64_t n) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = apply_binary(k, a[i], b[i]);
  }
  // y = alpha * x + beta (beta = 0 gives scale).
  template <class T>
  static void affine(const T* x, T alpha, T beta, T* y, int64_t n) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = alpha * x[i] + beta;
  }
  // y += alpha * x
  template <class T>
  static void axpy(T alpha, const T* x, T* y, int64_t n) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] += alpha * x[i];
  }
  // y[n,c,i] = x[n,c,i] (op) v[c] for x of shape [N, C, HW].
  template <class T>
  static void channel_binary(BinaryKind k, const T* x, const T* v, T* y, int64_t N, int64_t C, int64_t HW) {
#pragma omp parallel for collapse(2) if (N * C * HW > cpu::kParallelGrain) schedule(static)
    for (int64_t n = 0; n < N; ++n)
      for (int64_t c = 0; c < C; ++c) {
        const int64_t base = (n * C + c) * HW;
        const T vc = v[c];
        for (int64_t i = 0; i < HW; ++i) y[base + i] = apply_binary(k, x[base + i], vc);
      }
  }
  // out[c] (+)= sum over n, i of a[n,c,i] * (b ? b[n,c,i] : 1)
  template <class T>
  static void channel_reduce(const T* a, const T* b, T* out, int64_t N, int64_t C, int64_t HW, bool accumulate) {
#pragma omp parallel for if (N * C * HW > cpu::kParallelGrain) schedule(static)
    for (int64_t c = 0; c < C; ++c) {
      double s = 0;
      for (int64_t n = 0; n < N; ++n) {
        const int64_t base = (n * C + c) * HW;
        if (b)
          for (int64_t i = 0; i < HW; ++i) s += double(a[base + i]) * double(b[base + i]);
        else
          for (int64_t i = 0; i < HW; ++i) s += a[base + i];
      }
      out[c] = accumulate ? T(out[c] + s) : T(s);
    }
  }

  template <class T>
  static void unary_fwd(UnaryKind k, T slope, const T* x, T* y, int64_t n) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) y[i] = apply_unary(k, slope, x[i]);
  }
  // gx = gy * f'(x), with f' taken from the input x or the output y (see kinds.hpp).
  template <class T>
  static void unary_bwd(UnaryKind k, T slope, const T* x, const T* y, const T* gy, T* gx, int64_t n) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] * unary_derivative(k, slope, x ? x[i] : T(0), y ? y[i] : T(0));
  }

  // out[0] = sum of x (accumulated in double).
  template <class T>
  static void sum(const T* x, int64_t n, T* out) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) s += x[i];
    out[0] = T(s);
  }
  // Sum of squares to the host, in double.
  template <class T>
  static double sumsq(const T* x, int64_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(x[i]);
    return s;
  }
  // y[i] = v where v is a device scalar (broadcast of a scalar gradient).
  template <class T>
  static void broadcast_scalar(const T* v, T scale, T* y, int64_t n) {
    fill(y, n, T(v[0] * scale));
  }

  // Row-major C[M,N] = alpha * op(A) * op(B) + beta * C; op(A) is [M,K], op(B) is [K,N].
  template <class T>
  static void gemm(bool trans_a, bool trans_b, int64_t M, int64_t N, int64_t K, T alpha, const T* A, const T* Bm,
                   T beta, T* C) {
    using Mat = cpu::RowMat<T>;
    Eigen::Map<Mat> c(C, M, N);
    if (beta == T(0)) c.setZero();
    else if (beta != T(1)) c *= beta;
    if (K == 0) return;
    auto run = [&](const auto& a, const auto& b) { c.noalias() += alpha * (a * b); };
    if (!trans_a && !trans_b) run(Eigen::Map<const Mat>(A, M, K), Eigen::Map<const Mat>(Bm, K, N));
    else if (!trans_a && trans_b) run(Eigen::Map<const Mat>(A, M, K), Eigen::Map<const Mat>(Bm, N, K).transpose());
    else if (trans_a && !trans_b) run(Eigen::Map<const Mat>(A, K, M).transpose(), Eigen::Map<const Mat>(Bm, K, N));
    else run(Eigen::Map<const Mat>(A, K, M).transpose(), Eigen::Map<const Mat>(Bm, N, K).transpose());
  }

  // ---- convolution (backend/cpu/conv2d.hpp) ----------------------------------------------
  template <class T>
  static void conv2d_fprop(const Conv2dProblem& p, const T* x, const T* w, const T* bias, T* y) {
    cpu::conv2d_fprop(p, x, w, bias, y);
  }
  // Held around a convolution's backward (the CUDA backend shares packs there; nothing here).
  struct ConvBackwardScope {};
  static ConvBackwardScope conv_backward_scope() { return {}; }
  template <class T>
  static void conv2d_dgrad(const Conv2dProblem& p, const T* dy, const T* w, T* dx, bool accumulate) {
    cpu::conv2d_dgrad(p, dy, w, dx, accumulate);
  }
  template <class T>
  static void conv2d_wgrad(const Conv2dProblem& p, const T* x, const T* dy, T* dw, bool accumulate) {
    cpu::conv2d_wgrad(p, x, dy, dw, accumulate);
  }

  // ---- instance norm ----------------------------------------------------------------------
  // Per row r of x [NC, HW]: mean, rstd = 1/sqrt(biased var + eps), y = (x - mean) * rstd,
  // then the activation `act` (none/relu/leaky) — fused so y is written once.
  template <class T>
  static void instance_norm_fwd(const T* x, T* y, T* mean, T* rstd, int64_t NC, int64_t HW, double eps,
                                UnaryKind act, T slope) {
#pragma omp parallel for if (NC * HW > cpu::kParallelGrain) schedule(static)
    for (int64_t r = 0; r < NC; ++r) {
      const T* xr = x + r * HW;
      T* yr = y + r * HW;
      double s = 0;
      for (int64_t i = 0; i < HW; ++i) s += xr[i];
      const double mu = s / double(HW);
      double v = 0;
      for (int64_t i = 0; i < HW; ++i) {
        const double d = double(xr[i]) - mu;
        v += d * d;
      }
      const double rs = 1.0 / std::sqrt(v / double(HW) + eps);
      mean[r] = T(mu);
      rstd[r] = T(rs);
      for (int64_t i = 0; i < HW; ++i) yr[i] = apply_unary(act, slope, T((double(xr[i]) - mu) * rs));
    }
  }
  // gx = rstd * (g - mean(g) - xhat * mean(g * xhat)), xhat = (x - mean) * rstd, where g is
  // gy already passed back through the fused activation (using the normalised output y).
  template <class T>
  static void instance_norm_bwd(const T* gy, const T* x, const T* y, const T* mean, const T* rstd, T* gx,
                                int64_t NC, int64_t HW, UnaryKind act, T slope) {
#pragma omp parallel for if (NC * HW > cpu::kParallelGrain) schedule(static)
    for (int64_t r = 0; r < NC; ++r) {
      const T* xr = x + r * HW;
      const T* gr = gy + r * HW;
      const T* yr = y ? y + r * HW : nullptr;
      T* out = gx + r * HW;
      const double mu = mean[r], rs = rstd[r];
      double sg = 0, sgx = 0;
      for (int64_t i = 0; i < HW; ++i) {
        const double xh = (double(xr[i]) - mu) * rs;
        const double g = double(gr[i]) * unary_derivative(act, slope, T(xh), yr ? yr[i] : T(0));
        sg += g;
        sgx += g * xh;
      }
      const double mg = sg / double(HW), mgx = sgx / double(HW);
      for (int64_t i = 0; i < HW; ++i) {
        const double xh = (double(xr[i]) - mu) * rs;
        const double g = double(gr[i]) * unary_derivative(act, slope, T(xh), yr ? yr[i] : T(0));
        out[i] = T(rs * (g - mg - xh * mgx));
      }
    }
  }

  // ---- losses -----------------------------------------------------------------------------
  // out[0] = mean over i of loss(pred[i], target[i]); when grad is non-null also
  // grad[i] = d out / d pred[i] * grad_scale, in the same pass.
  template <class T>
  static void loss_fwd_bwd(LossKind k, const T* pred, const T* target, int64_t n, T* out, T* grad, double grad_scale) {
    double s = 0;
    const double inv_n = 1.0 / double(std::max<int64_t>(n, 1));
#pragma omp parallel for reduction(+ : s) if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      double g;
      s += loss_element(k, double(pred[i]), double(target[i]), &g);
      if (grad) grad[i] = T(g * inv_n * grad_scale);
    }
    out[0] = T(s * inv_n);
  }
  // Fused autoencoder loss: out[0] = recon(pred, target) + weight * BCE(prob, label),
  // out[1] = the reconstruction term, out[2] = the unweighted BCE term; gpred / gprob
  // (when non-null) receive the gradients of out[0].
  template <class T>
  static void recon_adv_loss(LossKind recon, const T* pred, const T* target, int64_t n, const T* prob, T label,
                             int64_t m, double weight, T* out, T* gpred, T* gprob) {
    T r, a;
    loss_fwd_bwd(recon, pred, target, n, &r, gpred, 1.0);
    double s = 0;
    for (int64_t i = 0; i < m; ++i) {
      double g;
      s += loss_element(LossKind::BCE, double(prob[i]), double(label), &g);
      if (gprob) gprob[i] = T(g / double(m) * weight);
    }
    a = T(s / double(m));
    out[0] = T(double(r) + weight * double(a));
    out[1] = r;
    out[2] = a;
  }

  // gpred[i] = grad[i] * gout[0] (gout a device scalar)
  template <class T>
  static void scale_by_scalar(const T* grad, const T* gout, T* gpred, int64_t n) {
    const T g = gout[0];
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) gpred[i] = grad[i] * g;
  }

  // ---- optimisers ---------------------------------------------------------------------------
  // PyTorch Adam on one tensor: g' = g + wd * p; m = b1 m + (1-b1) g'; v = b2 v + (1-b2) g'^2;
  // p -= lr / (1 - b1^t) * m / (sqrt(v) / sqrt(1 - b2^t) + eps). `gscale` multiplies g first
  // (the clip factor), so clipping costs no extra pass.
  template <class T>
  static void adam_update(T* p, const T* g, T* m, T* v, int64_t n, double lr, double b1, double b2, double eps,
                          double wd, int64_t step, double gscale) {
    const double bc1 = 1.0 - std::pow(b1, double(step));
    const double bc2_sqrt = std::sqrt(1.0 - std::pow(b2, double(step)));
    const T step_size = T(lr / bc1);
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      T gi = T(g[i] * gscale);
      if (wd != 0) gi += T(wd) * p[i];
      m[i] = T(b1) * m[i] + T(1 - b1) * gi;
      v[i] = T(b2) * v[i] + T(1 - b2) * gi * gi;
      const T denom = T(std::sqrt(v[i]) / bc2_sqrt + eps);
      p[i] -= step_size * m[i] / denom;
    }
  }
  // Adam on many tensors at once: counter[0] (the step count, backend memory) is
  // incremented first and its new value is t; every gradient is multiplied by scale[0]
  // (a backend scalar, e.g. the clip coefficient) when scale is not null. The CUDA version
  // reads t and the scale on the device, so a step needs no host round trip.
  template <class T>
  static void adam_multi(const std::vector<AdamSlot<T>>& slots, const AdamHyperParams& h, int64_t* counter,
                         const T* scale) {
    const int64_t t = ++counter[0];
    const double gs = scale ? double(scale[0]) : 1.0;
    for (const auto& s : slots)
      adam_update(s.p, s.g, s.m, s.v, s.n, h.lr, h.beta1, h.beta2, h.eps, h.weight_decay, t, gs);
  }
  // norm_out[0] = sqrt(sum of squares of all arrays); with coef_out, coef_out[0] = min(1,
  // max_norm / (norm + 1e-6)) computed in T as torch.nn.utils.clip_grad_norm_ does. Both are
  // backend scalars (no host value on CUDA).
  template <class T>
  static void grad_norm_coef(const std::vector<std::pair<const T*, int64_t>>& xs, double max_norm, T* norm_out,
                             T* coef_out) {
    double ss = 0;
    for (const auto& x : xs) ss += sumsq(x.first, x.second);
    const T norm = T(std::sqrt(ss));
    norm_out[0] = norm;
    if (coef_out) {
      const T c = T(max_norm) / (norm + T(1e-6));
      coef_out[0] = c < T(1) ? c : T(1);
    }
  }
  // SGD with momentum (PyTorch semantics, dampening 0): buf = mu * buf + g'; p -= lr * buf.
  template <class T>
  static void sgd_update(T* p, const T* g, T* buf, int64_t n, double lr, double momentum, double wd, bool first,
                         double gscale) {
#pragma omp parallel for if (n > cpu::kParallelGrain) schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      T gi = T(g[i] * gscale);
      if (wd != 0) gi += T(wd) * p[i];
      if (momentum != 0) {
        buf[i] = first ? gi : T(momentum) * buf[i] + gi;
        gi = buf[i];
      }
      p[i] -= T(lr) * gi;
    }
  }
};

}  // namespace disco
