#pragma once
// Naive reference implementations of disco's non-convolution ops for tests: plain loops
// in double, written from the PyTorch definitions, sharing no code with the library
// (in particular not disco/ops/kinds.hpp). Tensors are flat row-major std::vector<double>.
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

namespace disco::ref {

using Vec = std::vector<double>;

// ---- activations -----------------------------------------------------------------------
inline double relu(double x) { return x > 0 ? x : 0.0; }
inline double leaky_relu(double x, double slope) { return x > 0 ? x : slope * x; }
inline double tanh(double x) { return std::tanh(x); }
inline double sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

template <class F>
Vec map(const Vec& x, F f) {
  Vec y(x.size());
  for (std::size_t i = 0; i < x.size(); ++i) y[i] = f(x[i]);
  return y;
}

// Which activation follows an instance norm in the reference (mirrors UnaryKind by name only).
enum class Act { None, Relu, Leaky, Tanh, Sigmoid };

inline double act(Act a, double x, double slope) {
  switch (a) {
    case Act::Relu: return relu(x);
    case Act::Leaky: return leaky_relu(x, slope);
    case Act::Tanh: return tanh(x);
    case Act::Sigmoid: return sigmoid(x);
    default: return x;
  }
}

// ---- elementwise, per-channel, reductions --------------------------------------------------
// x [N, C, HW] (op) v[c]
inline Vec add_channel(const Vec& x, const Vec& v, int64_t N, int64_t C, int64_t HW) {
  Vec y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) y[(n * C + c) * HW + i] = x[(n * C + c) * HW + i] + v[c];
  return y;
}
inline Vec mul_channel(const Vec& x, const Vec& v, int64_t N, int64_t C, int64_t HW) {
  Vec y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t i = 0; i < HW; ++i) y[(n * C + c) * HW + i] = x[(n * C + c) * HW + i] * v[c];
  return y;
}
inline double sum(const Vec& x) {
  double s = 0;
  for (double v : x) s += v;
  return s;
}
inline double mean(const Vec& x) { return sum(x) / double(x.size()); }

// ---- matmul / linear ------------------------------------------------------------------------
// a [M, K] @ b [K, N]
inline Vec matmul(const Vec& a, const Vec& b, int64_t M, int64_t K, int64_t N) {
  Vec c(std::size_t(M * N), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += a[i * K + k] * b[k * N + j];
      c[i * N + j] = s;
    }
  return c;
}
// y [M, out] = x [M, in] W^T + b, W [out, in] (PyTorch layout); b may be empty.
inline Vec linear(const Vec& x, const Vec& w, const Vec& b, int64_t M, int64_t in, int64_t out) {
  Vec y(std::size_t(M * out), 0.0);
  for (int64_t i = 0; i < M; ++i)
    for (int64_t o = 0; o < out; ++o) {
      double s = b.empty() ? 0.0 : b[o];
      for (int64_t k = 0; k < in; ++k) s += x[i * in + k] * w[o * in + k];
      y[i * out + o] = s;
    }
  return y;
}

// ---- instance norm ------------------------------------------------------------------------
// Per (n, c): biased variance over the HW elements, y = (x - mean) / sqrt(var + eps), then
// y * weight[c] + bias[c] (each optional: empty vector = absent), then the activation.
inline Vec instance_norm(const Vec& x, int64_t N, int64_t C, int64_t HW, const Vec& weight, const Vec& bias,
                         double eps, Act a = Act::None, double slope = 0.0) {
  Vec y(x.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t c = 0; c < C; ++c) {
      const double* xr = x.data() + (n * C + c) * HW;
      double m = 0;
      for (int64_t i = 0; i < HW; ++i) m += xr[i];
      m /= double(HW);
      double var = 0;
      for (int64_t i = 0; i < HW; ++i) var += (xr[i] - m) * (xr[i] - m);
      var /= double(HW);
      for (int64_t i = 0; i < HW; ++i) {
        double v = (xr[i] - m) / std::sqrt(var + eps);
        if (!weight.empty()) v *= weight[c];
        if (!bias.empty()) v += bias[c];
        y[(n * C + c) * HW + i] = act(a, v, slope);
      }
    }
  return y;
}

// ---- losses (mean reduction) --------------------------------------------------------------------
inline double mse(const Vec& p, const Vec& t) {
  double s = 0;
  for (std::size_t i = 0; i < p.size(); ++i) s += (p[i] - t[i]) * (p[i] - t[i]);
  return s / double(p.size());
}
inline double l1(const Vec& p, const Vec& t) {
  double s = 0;
  for (std::size_t i = 0; i < p.size(); ++i) s += std::fabs(p[i] - t[i]);
  return s / double(p.size());
}
// torch.nn.functional.binary_cross_entropy: each log is clamped to >= -100.
inline double bce_element(double p, double t) {
  const double lp = std::max(std::log(p), -100.0);
  const double l1p = std::max(std::log(1.0 - p), -100.0);
  return -(t * lp + (1.0 - t) * l1p);
}
inline double bce(const Vec& p, const Vec& t) {
  double s = 0;
  for (std::size_t i = 0; i < p.size(); ++i) s += bce_element(p[i], t[i]);
  return s / double(p.size());
}
// binary_cross_entropy_with_logits, from the definition -[t log s(x) + (1-t) log(1 - s(x))]
// (fine for moderate |x|; tests use large |x| only against hand-computed values).
inline double bce_with_logits(const Vec& x, const Vec& t) {
  double s = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const double sg = sigmoid(x[i]);
    s += -(t[i] * std::log(sg) + (1.0 - t[i]) * std::log(1.0 - sg));
  }
  return s / double(x.size());
}

// ---- transposed convolution from its definition -----------------------------------------------
// x [N, Cin, H, W], w [Cin, Cout, R, S] (PyTorch layout), bias [Cout] or empty:
// every input pixel (i, j) scatters x * w into output (i*stride - pad + r*dil, j*stride - pad + s*dil).
// Output [N, Cout, Ho, Wo] with Ho = (H-1)*stride - 2*pad + dil*(R-1) + output_padding + 1.
inline Vec conv_transpose2d(const Vec& x, const Vec& w, const Vec& bias, int64_t N, int64_t Cin, int64_t H,
                            int64_t W, int64_t Cout, int64_t R, int64_t S, int64_t stride, int64_t pad,
                            int64_t output_padding, int64_t dil, int64_t* Ho_out = nullptr,
                            int64_t* Wo_out = nullptr) {
  const int64_t Ho = (H - 1) * stride - 2 * pad + dil * (R - 1) + output_padding + 1;
  const int64_t Wo = (W - 1) * stride - 2 * pad + dil * (S - 1) + output_padding + 1;
  if (Ho_out) *Ho_out = Ho;
  if (Wo_out) *Wo_out = Wo;
  Vec y(std::size_t(N * Cout * Ho * Wo), 0.0);
  for (int64_t n = 0; n < N; ++n)
    for (int64_t co = 0; co < Cout; ++co)
      for (int64_t i = 0; i < Ho * Wo; ++i) y[(n * Cout + co) * Ho * Wo + i] = bias.empty() ? 0.0 : bias[co];
  for (int64_t n = 0; n < N; ++n)
    for (int64_t ci = 0; ci < Cin; ++ci)
      for (int64_t i = 0; i < H; ++i)
        for (int64_t j = 0; j < W; ++j) {
          const double xv = x[((n * Cin + ci) * H + i) * W + j];
          for (int64_t co = 0; co < Cout; ++co)
            for (int64_t r = 0; r < R; ++r)
              for (int64_t s = 0; s < S; ++s) {
                const int64_t oh = i * stride - pad + r * dil, ow = j * stride - pad + s * dil;
                if (oh < 0 || oh >= Ho || ow < 0 || ow >= Wo) continue;
                y[((n * Cout + co) * Ho + oh) * Wo + ow] += xv * w[((ci * Cout + co) * R + r) * S + s];
              }
        }
  return y;
}

}  // namespace disco::ref
