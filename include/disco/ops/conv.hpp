#pragma once
// conv2d and conv_transpose2d. One set of backend kernels serves both:
//   conv2d:            forward = fprop, grad_x = dgrad, grad_w = wgrad
//   conv_transpose2d:  forward = dgrad, grad_x = fprop, grad_w = wgrad (roles of x, y swapped)
#include "disco/ops/elementwise.hpp"
#include "disco/problem/conv2d_problem.hpp"

namespace disco {

struct Conv2dOptions {
  int stride = 1, padding = 0, dilation = 1;
  int output_padding = 0;  // conv_transpose2d only
};

namespace detail {
template <class B>
void check_conv_common(const char* op, const Tensor<B>& x, const Tensor<B>& w, const Tensor<B>& b, const Conv2dOptions& o) {
  DISCO_CHECK(x.dim() == 4, op, ": input of shape ", shape_str(x.shape()), " must be 4-d [N, C, H, W]");
  DISCO_CHECK(w.dim() == 4, op, ": weight of shape ", shape_str(w.shape()), " must be 4-d");
  DISCO_CHECK(x.dtype() == w.dtype(), op, ": input is ", dtype_name(x.dtype()), " but weight is ", dtype_name(w.dtype()));
  DISCO_CHECK(o.stride >= 1 && o.dilation >= 1 && o.padding >= 0, op, ": stride ", o.stride, ", dilation ",
              o.dilation, ", padding ", o.padding, " (expected stride >= 1, dilation >= 1, padding >= 0)");
  if (b.defined())
    DISCO_CHECK(b.dim() == 1 && b.dtype() == x.dtype(), op, ": bias of shape ", shape_str(b.shape()), " must be 1-d ",
                dtype_name(x.dtype()));
}
template <class B>
void add_bias_inplace(Tensor<B>& y, const Tensor<B>& b) {
  Tensor<B> bc = b.contiguous();
  const int64_t N = y.shape()[0], C = y.shape()[1], HW = y.shape()[2] * y.shape()[3];
  DISCO_TYPED(y.dtype(), Kernels<B>::channel_binary(BinaryKind::Add, y.template data<T>(), bc.template data<T>(),
                                                    y.template data<T>(), N, C, HW));
}
template <class B>
Tensor<B> bias_grad(const Tensor<B>& g) {
  const int64_t N = g.shape()[0], C = g.shape()[1], HW = g.shape()[2] * g.shape()[3];
  return channel_reduce_raw<B>(g, nullptr, N, C, HW);
}
// The three kernels on tensors (x: problem input, y: problem output).
// y = conv(x, w) (+ bias in the kernel's epilogue when `bias` is defined).
template <class B>
Tensor<B> fprop(const Conv2dProblem& p, const Tensor<B>& x, const Tensor<B>& w, const Tensor<B>& bias = Tensor<B>()) {
  Tensor<B> xc = x.contiguous(), wc = w.contiguous();
  Tensor<B> bc = bias.defined() ? bias.contiguous() : Tensor<B>();
  Tensor<B> y = Tensor<B>::empty({p.N, p.K, p.P, p.Q}, x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::conv2d_fprop(p, xc.template data<T>(), wc.template data<T>(),
                                                  bc.defined() ? bc.template data<T>() : static_cast<const T*>(nullptr),
                                                  y.template data<T>()));
  return y;
}
template <class B>
Tensor<B> dgrad(const Conv2dProblem& p, const Tensor<B>& dy, const Tensor<B>& w) {
  Tensor<B> dyc = dy.contiguous(), wc = w.contiguous();
  Tensor<B> dx = Tensor<B>::empty({p.N, p.C, p.H, p.W}, dy.dtype());
  DISCO_TYPED(dy.dtype(), Kernels<B>::conv2d_dgrad(p, dyc.template data<T>(), wc.template data<T>(),
                                                   dx.template data<T>(), false));
  return dx;
}
template <class B>
Tensor<B> wgrad(const Conv2dProblem& p, const Tensor<B>& x, const Tensor<B>& dy) {
  Tensor<B> xc = x.contiguous(), dyc = dy.contiguous();
  Tensor<B> dw = Tensor<B>::empty({p.K, p.C, p.R, p.S}, x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::conv2d_wgrad(p, xc.template data<T>(), dyc.template data<T>(),
                                                  dw.template data<T>(), false));
  return dw;
}
}  // namespace detail

// x [N, C, H, W], weight [K, C, R, S], bias [K] or undefined -> [N, K, P, Q]
template <class B>
Tensor<B> conv2d(const Tensor<B>& x, const Tensor<B>& weight, const Tensor<B>& bias, const Conv2dOptions& o) {
  detail::check_conv_common("conv2d", x, weight, bias, o);
  const auto& xs = x.shape();
  const auto& ws = weight.shape();
  DISCO_CHECK(xs[1] == ws[1], "conv2d: input ", shape_str(xs), " has ", xs[1], " channels but weight ", shape_str(ws),
              " expects ", ws[1], " (weight layout [out, in, kh, kw])");
  if (bias.defined())
    DISCO_CHECK(bias.shape()[0] == ws[0], "conv2d: bias of shape ", shape_str(bias.shape()), " does not match ", ws[0],
                " output channels");
  Conv2dProblem p = make_conv2d_problem(int(xs[0]), int(xs[1]), int(xs[2]), int(xs[3]), int(ws[0]), int(ws[2]),
                                        int(ws[3]), o.stride, o.padding, o.dilation);
  // The dilated kernel must fit the padded input (P alone misses this: the size formula
  // truncates a negative numerator towards zero, e.g. a 2x2 input, 4x4 kernel, stride 3).
  const int64_t span_h = int64_t(o.dilation) * (ws[2] - 1) + 1, span_w = int64_t(o.dilation) * (ws[3] - 1) + 1;
  DISCO_CHECK(xs[2] + 2 * o.padding >= span_h && xs[3] + 2 * o.padding >= span_w && p.P > 0 && p.Q > 0,
              "conv2d: input ", shape_str(xs), " is too small for kernel ", ws[2], "x", ws[3], " with stride ",
              o.stride, ", padding ", o.padding, ", dilation ", o.dilation, " (padded input ", xs[2] + 2 * o.padding,
              "x", xs[3] + 2 * o.padding, ", dilated kernel ", span_h, "x", span_w, ")");
  Tensor<B> y = detail::fprop(p, x, weight, bias);
  Tensor<B> xd = x.detach(), wd = weight.detach();
  // Gradients only for what asks for one: no data gradient for the images, no bias
  // gradient for a bias an InstanceNorm cancels (the model freezes those).
  const bool has_bias = bias.defined() && bias.requires_grad();
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  return record<B>(y, "conv2d", {x, weight, bias},
                   [p, xd, wd, has_bias, need_x, need_w](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     // dgrad and wgrad both read g: one channels-last pack of it (CUDA)
                     [[maybe_unused]] const auto share = Kernels<B>::conv_backward_scope();
                     if (need_x) gi[0] = detail::dgrad(p, g, wd);
                     if (need_w) gi[1] = detail::wgrad(p, xd, g);
                     if (has_bias) gi[2] = detail::bias_grad(g);
                   });
}

// x [N, Cin, H, W], weight [Cin, Cout, R, S] (PyTorch layout), bias [Cout] -> [N, Cout, H', W'],
// H' = (H - 1) * stride - 2 * padding + dilation * (R - 1) + output_padding + 1.
template <class B>
Tensor<B> conv_transpose2d(const Tensor<B>& x, const Tensor<B>& weight, const Tensor<B>& bias, const Conv2dOptions& o) {
  detail::check_conv_common("conv_transpose2d", x, weight, bias, o);
  const auto& xs = x.shape();
  const auto& ws = weight.shape();
  DISCO_CHECK(xs[1] == ws[0], "conv_transpose2d: input ", shape_str(xs), " has ", xs[1], " channels but weight ",
              shape_str(ws), " expects ", ws[0], " (weight layout [in, out, kh, kw])");
  DISCO_CHECK(o.output_padding >= 0 && (o.output_padding < o.stride || o.output_padding < o.dilation),
              "conv_transpose2d: output_padding ", o.output_padding, " must be smaller than stride ", o.stride,
              " or dilation ", o.dilation);
  if (bias.defined())
    DISCO_CHECK(bias.shape()[0] == ws[1], "conv_transpose2d: bias of shape ", shape_str(bias.shape()),
                " does not match ", ws[1], " output channels");
  Conv2dProblem p = make_conv_transpose2d_problem(int(xs[0]), int(xs[1]), int(xs[2]), int(xs[3]), int(ws[1]),
                                                  int(ws[2]), int(ws[3]), o.stride, o.padding, o.output_padding,
                                                  o.dilation);
  DISCO_CHECK(p.H > 0 && p.W > 0, "conv_transpose2d: output size ", p.H, "x", p.W, " for input ", shape_str(xs),
              " is not positive");
  Tensor<B> y = detail::dgrad(p, x, weight);
  if (bias.defined()) detail::add_bias_inplace(y, bias);
  Tensor<B> xd = x.detach(), wd = weight.detach();
  const bool has_bias = bias.defined() && bias.requires_grad();
  const bool need_x = x.requires_grad(), need_w = weight.requires_grad();
  return record<B>(y, "conv_transpose2d", {x, weight, bias},
                   [p, xd, wd, has_bias, need_x, need_w](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
                     // fprop and wgrad both read g as their input: one channels-last pack (CUDA)
                     [[maybe_unused]] const auto share = Kernels<B>::conv_backward_scope();
                     if (need_x) gi[0] = detail::fprop(p, g, wd);
                     if (need_w) gi[1] = detail::wgrad(p, g, xd);
                     if (has_bias) gi[2] = detail::bias_grad(g);
                   });
}

}  // namespace disco
