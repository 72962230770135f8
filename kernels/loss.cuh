#pragma once
// Reductions and fused loss kernels: each is an element functor (value terms into the
// per-thread accumulators, gradient written in the same pass) plus a finalizer, run by
// reduce_finalize_kernel (common.cuh) in ONE launch with a deterministic final sum; each
// functor also has a float4 form (vec4) for 16-byte aligned data.
// Formulas follow PyTorch (mean reduction):
//   mse   (p-t)^2,                     grad 2 (p-t) / n
//   l1    |p-t|,                       grad sign(p-t) / n   (sign(0) = 0)
//   bce   -(t max(log p,-100) + (1-t) max(log(1-p),-100)),
//                                      grad (p-t) / max((1-p) p, 1e-12) / n
//   bce with logits  max(x,0) - x t + log1p(exp(-|x|)),  grad (sigmoid(x) - t) / n
#include <cuda_runtime.h>

#include <cstdint>

#include "common.cuh"

namespace disco {
namespace cuda {
namespace kern {

// ---- plain reductions --------------------------------------------------------------------
enum class RedKind { Sum, SumSq };
template <RedKind K>
struct RedElem {
  static constexpr bool kVec4 = true;
  const float* x;
  __device__ static float term(float v) { return (K == RedKind::SumSq) ? v * v : v; }
  __device__ void operator()(int64_t i, float (&acc)[1]) const { acc[0] += term(x[i]); }
  __device__ void vec4(int64_t j, float (&acc)[1]) const {
    const float4 v = ld4(x, j);
    acc[0] += term(v.x);
    acc[0] += term(v.y);
    acc[0] += term(v.z);
    acc[0] += term(v.w);
  }
};
struct ScalarFin {
  float* out; double scale;
  __device__ void operator()(const double (&t)[1]) const { out[0] = float(t[0] * scale); }
};

// ---- element formulas --------------------------------------------------------------------
__device__ __forceinline__ float bce_term(float p, float t) {
  const float lp = fmaxf(logf(p), -100.f);
  const float l1p = fmaxf(logf(1.f - p), -100.f);
  return -(t * lp + (1.f - t) * l1p);
}
__device__ __forceinline__ float bce_grad(float p, float t) { return (p - t) / fmaxf((1.f - p) * p, 1e-12f); }
__device__ __forceinline__ float bce_logits_term(float x, float t) {
  return fmaxf(x, 0.f) - x * t + log1pf(expf(-fabsf(x)));
}
__device__ __forceinline__ float sigmoidf_(float x) { return 1.f / (1.f + expf(-x)); }

enum class LossKind { Mse, L1, Bce, BceLogits };
// Loss term l and its derivative d (before the mean's 1/n) of one element.
template <LossKind K>
__device__ __forceinline__ void loss_term(float pv, float tv, float& l, float& d) {
  if (K == LossKind::Mse) {
    const float e = pv - tv;
    l = e * e;
    d = 2.f * e;
  } else if (K == LossKind::L1) {
    const float e = pv - tv;
    l = fabsf(e);
    d = e > 0.f ? 1.f : (e < 0.f ? -1.f : 0.f);
  } else if (K == LossKind::Bce) {
    l = bce_term(pv, tv);
    d = bce_grad(pv, tv);
  } else {
    l = bce_logits_term(pv, tv);
    d = sigmoidf_(pv) - tv;
  }
}
// Four elements: adds their loss terms to acc in lane order and writes coef * derivative to g
// (when not null) as one float4.
template <LossKind K>
__device__ __forceinline__ void loss_term4(float4 pv, float4 tv, float& acc, float* g, int64_t j, float coef) {
  float4 l, d;
  loss_term<K>(pv.x, tv.x, l.x, d.x);
  loss_term<K>(pv.y, tv.y, l.y, d.y);
  loss_term<K>(pv.z, tv.z, l.z, d.z);
  loss_term<K>(pv.w, tv.w, l.w, d.w);
  acc += l.x;
  acc += l.y;
  acc += l.z;
  acc += l.w;
  if (g) st4(g, j, make_float4(d.x * coef, d.y * coef, d.z * coef, d.w * coef));
}
// grad_coef = grad_scale / n. t may be null (constant target tval); g may be null.
template <LossKind K>
struct LossElem {
  static constexpr bool kVec4 = true;
  const float* p; const float* t; float tval; float* g; float grad_coef;
  __device__ void operator()(int64_t i, float (&acc)[1]) const {
    float l, d;
    loss_term<K>(p[i], t ? t[i] : tval, l, d);
    acc[0] += l;
    if (g) g[i] = d * grad_coef;
  }
  __device__ void vec4(int64_t j, float (&acc)[1]) const {
    const float4 tv = t ? ld4(t, j) : make_float4(tval, tval, tval, tval);
    loss_term4<K>(ld4(p, j), tv, acc[0], g, j, grad_coef);
  }
};

// Fused reconstruction + adversarial loss: indices [0, n) are reconstruction elements,
// [n, n+m) discriminator outputs. acc[0] = recon sum, acc[1] = bce sum. vec4 covers
// reconstruction groups only (the launcher passes nvec <= n / 4).
template <bool L1>
struct ReconAdvElem {
  static constexpr bool kVec4 = true;
  static constexpr LossKind kRecon = L1 ? LossKind::L1 : LossKind::Mse;
  const float* pred; const float* target; int64_t n;
  const float* prob; float label;
  float* g_pred; float* g_disc;
  float coef_pred;  // grad_scale / n
  float coef_disc;  // grad_scale * adv_weight / m
  __device__ void operator()(int64_t i, float (&acc)[2]) const {
    if (i < n) {
      float l, d;
      loss_term<kRecon>(pred[i], target[i], l, d);
      acc[0] += l;
      if (g_pred) g_pred[i] = d * coef_pred;
    } else {
      const int64_t j = i - n;
      const float pv = prob[j];
      acc[1] += bce_term(pv, label);
      if (g_disc) g_disc[j] = bce_grad(pv, label) * coef_disc;
    }
  }
  __device__ void vec4(int64_t j, float (&acc)[2]) const {
    loss_term4<kRecon>(ld4(pred, j), ld4(target, j), acc[0], g_pred, j, coef_pred);
  }
};
struct ReconAdvFin {
  float* out; double inv_n, inv_m, weight;
  __device__ void operator()(const double (&t)[2]) const {
    const double recon = t[0] * inv_n, adv = t[1] * inv_m;
    out[0] = float(recon + weight * adv);
    out[1] = float(recon);
    out[2] = float(adv);
  }
};

}  // namespace kern
}  // namespace cuda
}  // namespace disco
