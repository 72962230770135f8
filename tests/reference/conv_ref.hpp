#pragma once
// Naive reference 2-D convolutions for tests: straightforward nested loops in double,
// written directly from the definition, with no im2col / GEMM / cleverness.
//   y[n,k,p,q] = bias[k] + sum_{c,r,s} x[n,c,p*sh-ph+r*dh, q*sw-pw+s*dw] * w[k,c,r,s]
// (out-of-range input positions are zero padding). dgrad and wgrad are the exact
// adjoints of that sum with respect to x and w.
#include <cstdint>
#include <vector>

#include "disco/problem/conv2d_problem.hpp"

namespace disco::ref {

inline int64_t idx4(int64_t a, int64_t b, int64_t c, int64_t d, int64_t B, int64_t C, int64_t D) {
  return ((a * B + b) * C + c) * D + d;
}

// y [N,K,P,Q] = conv(x [N,C,H,W], w [K,C,R,S]) (+ bias [K] when not empty).
inline std::vector<double> conv2d_fprop(const Conv2dProblem& p, const std::vector<double>& x,
                                        const std::vector<double>& w, const std::vector<double>& bias = {}) {
  std::vector<double> y(size_t(p.y_size()), 0.0);
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int oh = 0; oh < p.P; ++oh)
        for (int ow = 0; ow < p.Q; ++ow) {
          double acc = bias.empty() ? 0.0 : bias[size_t(k)];
          for (int c = 0; c < p.C; ++c)
            for (int r = 0; r < p.R; ++r)
              for (int s = 0; s < p.S; ++s) {
                const int ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
                const int iw = ow * p.stride_w - p.pad_w + s * p.dil_w;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
                acc += x[size_t(idx4(n, c, ih, iw, p.C, p.H, p.W))] * w[size_t(idx4(k, c, r, s, p.C, p.R, p.S))];
              }
          y[size_t(idx4(n, k, oh, ow, p.K, p.P, p.Q))] = acc;
        }
  return y;
}

// dx [N,C,H,W] = d<y, dy>/dx.
inline std::vector<double> conv2d_dgrad(const Conv2dProblem& p, const std::vector<double>& dy,
                                        const std::vector<double>& w) {
  std::vector<double> dx(size_t(p.x_size()), 0.0);
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int oh = 0; oh < p.P; ++oh)
        for (int ow = 0; ow < p.Q; ++ow) {
          const double g = dy[size_t(idx4(n, k, oh, ow, p.K, p.P, p.Q))];
          for (int c = 0; c < p.C; ++c)
            for (int r = 0; r < p.R; ++r)
              for (int s = 0; s < p.S; ++s) {
                const int ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
                const int iw = ow * p.stride_w - p.pad_w + s * p.dil_w;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
                dx[size_t(idx4(n, c, ih, iw, p.C, p.H, p.W))] += g * w[size_t(idx4(k, c, r, s, p.C, p.R, p.S))];
              }
        }
  return dx;
}

// dw [K,C,R,S] = d<y, dy>/dw.
inline std::vector<double> conv2d_wgrad(const Conv2dProblem& p, const std::vector<double>& x,
                                        const std::vector<double>& dy) {
  std::vector<double> dw(size_t(p.w_size()), 0.0);
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int oh = 0; oh < p.P; ++oh)
        for (int ow = 0; ow < p.Q; ++ow) {
          const double g = dy[size_t(idx4(n, k, oh, ow, p.K, p.P, p.Q))];
          for (int c = 0; c < p.C; ++c)
            for (int r = 0; r < p.R; ++r)
              for (int s = 0; s < p.S; ++s) {
                const int ih = oh * p.stride_h - p.pad_h + r * p.dil_h;
                const int iw = ow * p.stride_w - p.pad_w + s * p.dil_w;
                if (ih < 0 || ih >= p.H || iw < 0 || iw >= p.W) continue;
                dw[size_t(idx4(k, c, r, s, p.C, p.R, p.S))] += g * x[size_t(idx4(n, c, ih, iw, p.C, p.H, p.W))];
              }
        }
  return dw;
}

// db [K] = sum over n, p, q of dy[n,k,p,q].
inline std::vector<double> bias_grad(const Conv2dProblem& p, const std::vector<double>& dy) {
  std::vector<double> db(size_t(p.K), 0.0);
  for (int n = 0; n < p.N; ++n)
    for (int k = 0; k < p.K; ++k)
      for (int i = 0; i < p.P * p.Q; ++i) db[size_t(k)] += dy[size_t((int64_t(n) * p.K + k) * p.P * p.Q + i)];
  return db;
}

}  // namespace disco::ref
