#pragma once
// Conv2dProblem: the one description of a 2-D convolution shared by the CPU backend,
// the CUDA launchers and kernels, the tests and the benchmarks.
//
// Layout: input x [N, C, H, W], weight w [K, C, R, S], output y [N, K, P, Q], all NCHW
// and contiguous. P = (H + 2*pad_h - dil_h*(R-1) - 1) / stride_h + 1 (likewise Q).
//
// Transposed convolution with input [N, Cin, Hin, Win] and weight [Cin, Cout, R, S] is
// the data gradient of the convolution whose *output* is that input: in Conv2dProblem
// terms K = Cin, C = Cout, P = Hin, Q = Win and H = the transposed output height
//   H = (Hin - 1) * stride - 2*pad + dil*(R-1) + output_padding + 1.
// Pytorch's ConvTranspose2d weight [Cin, Cout, R, S] is exactly conv weight [K, C, R, S].
#include <cstdint>

#include "disco/core/host_device.hpp"

namespace disco {

struct Conv2dProblem {
  int N = 1, C = 1, H = 1, W = 1;  // input batch, channels, height, width
  int K = 1, R = 1, S = 1;         // output channels, kernel height, width
  int pad_h = 0, pad_w = 0;
  int stride_h = 1, stride_w = 1;
  int dil_h = 1, dil_w = 1;
  int P = 1, Q = 1;  // output height, width

  // Fill P and Q from the other fields (forward-convolution output size).
  DISCO_HOST_DEVICE void compute_output_size() {
    P = (H + 2 * pad_h - dil_h * (R - 1) - 1) / stride_h + 1;
    Q = (W + 2 * pad_w - dil_w * (S - 1) - 1) / stride_w + 1;
  }
  // Implicit-GEMM view of the forward pass: Y[M x Kg] = X_col[M x Kred] * W^T,
  // M = N*P*Q output pixels, Kg = K output channels, Kred = C*R*S reduction length.
  DISCO_HOST_DEVICE int64_t gemm_m() const { return int64_t(N) * P * Q; }
  DISCO_HOST_DEVICE int64_t gemm_n() const { return K; }
  DISCO_HOST_DEVICE int64_t gemm_k() const { return int64_t(C) * R * S; }
  DISCO_HOST_DEVICE int64_t x_size() const { return int64_t(N) * C * H * W; }
  DISCO_HOST_DEVICE int64_t w_size() const { return int64_t(K) * C * R * S; }
  DISCO_HOST_DEVICE int64_t y_size() const { return int64_t(N) * K * P * Q; }
  // Multiply-adds of one forward pass times two.
  DISCO_HOST_DEVICE double flops() const { return 2.0 * double(gemm_m()) * double(gemm_n()) * double(gemm_k()); }

  // Input row of output row p and kernel row r (may be out of range = padding).
  DISCO_HOST_DEVICE int in_h(int p, int r) const { return p * stride_h - pad_h + r * dil_h; }
  DISCO_HOST_DEVICE int in_w(int q, int s) const { return q * stride_w - pad_w + s * dil_w; }
};

// Build the forward problem of a convolution.
inline Conv2dProblem make_conv2d_problem(int N, int C, int H, int W, int K, int R, int S, int stride,
                                         int pad, int dil = 1) {
  Conv2dProblem p;
  p.N = N; p.C = C; p.H = H; p.W = W; p.K = K; p.R = R; p.S = S;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dil_h = p.dil_w = dil;
  p.compute_output_size();
  return p;
}

// Build the problem of a transposed convolution: input [N, Cin, Hin, Win], weight
// [Cin, Cout, R, S]. The returned problem's x is the transposed conv's *output* and its
// y the transposed conv's *input*.
inline Conv2dProblem make_conv_transpose2d_problem(int N, int Cin, int Hin, int Win, int Cout, int R,
                                                   int S, int stride, int pad, int output_padding,
                                                   int dil = 1) {
  Conv2dProblem p;
  p.N = N; p.K = Cin; p.C = Cout; p.R = R; p.S = S;
  p.stride_h = p.stride_w = stride;
  p.pad_h = p.pad_w = pad;
  p.dil_h = p.dil_w = dil;
  p.H = (Hin - 1) * stride - 2 * pad + dil * (R - 1) + output_padding + 1;
  p.W = (Win - 1) * stride - 2 * pad + dil * (S - 1) + output_padding + 1;
  p.P = Hin;
  p.Q = Win;
  return p;
}

}  // namespace disco
