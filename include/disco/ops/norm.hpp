#pragma once
// instance_norm2d (PyTorch semantics: per sample and channel, biased variance, no
// running statistics), optionally with affine weight/bias, optionally fused with the
// activation that follows (the model's norm + LeakyReLU / ReLU blocks).
#include "disco/ops/activation.hpp"
#include "disco/ops/elementwise.hpp"

namespace disco {

// x [N, C, H, W] (any rank >= 3 works: stats over everything after C). `act` is applied
// after the normalisation (and after the affine transform when weight/bias are given).
template <class B>
Tensor<B> instance_norm2d(const Tensor<B>& x, const Tensor<B>& weight = Tensor<B>(), const Tensor<B>& bias = Tensor<B>(),
                          double eps = 1e-5, UnaryKind act = UnaryKind::None, double slope = 0.0) {
  DISCO_CHECK(x.dim() >= 3, "instance_norm2d: input of shape ", shape_str(x.shape()),
              " must be [N, C, H, W] (at least 3 dims)");
  const int64_t N = x.shape()[0], C = x.shape()[1];
  const int64_t HW = N * C != 0 ? x.numel() / (N * C) : 0;
  DISCO_CHECK(HW > 1, "instance_norm2d: input of shape ", shape_str(x.shape()),
              " has one value per channel; expected more than 1 spatial element");
  for (const Tensor<B>* a : {&weight, &bias})
    DISCO_CHECK(!a->defined() || (a->dim() == 1 && a->shape()[0] == C && a->dtype() == x.dtype()), "instance_norm2d: ",
                a == &weight ? "weight" : "bias", " of shape ", shape_str(a->shape()), " (", dtype_name(a->dtype()),
                ") does not match input ", shape_str(x.shape()), " (", dtype_name(x.dtype()), "; expected [", C, "])");
  const bool affine = weight.defined() || bias.defined();
  const bool fusable = act == UnaryKind::None || act == UnaryKind::Relu || act == UnaryKind::LeakyRelu;
  if (affine || !fusable) {
    // Normalise, then the per-channel affine transform and the activation as separate ops.
    Tensor<B> y = instance_norm2d(x, Tensor<B>(), Tensor<B>(), eps);
    if (weight.defined()) y = mul_channel(y, weight);
    if (bias.defined()) y = add_channel(y, bias);
    return act == UnaryKind::None ? y : activation(y, act, slope);
  }
  Tensor<B> xc = x.contiguous();
  Tensor<B> y = Tensor<B>::empty(x.shape(), x.dtype());
  Tensor<B> mu = Tensor<B>::empty({N * C}, x.dtype()), rstd = Tensor<B>::empty({N * C}, x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::instance_norm_fwd(xc.template data<T>(), y.template data<T>(), mu.template data<T>(),
                                                       rstd.template data<T>(), N * C, HW, eps, act, T(slope)));
  Tensor<B> xd = xc.detach();
  return record<B>(y, "instance_norm2d", {x}, [xd, mu, rstd, N, C, HW, act, slope](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    Tensor<B> gx = detail::grad_buffer_like(g);  // may be g itself: the kernels allow dy == dx
    Tensor<B> gc = g.contiguous();
    DISCO_TYPED(g.dtype(), Kernels<B>::instance_norm_bwd(gc.template data<T>(), xd.template data<T>(),
                                                         static_cast<const T*>(nullptr), mu.template data<T>(),
                                                         rstd.template data<T>(), gx.template data<T>(), N * C, HW, act,
                                                         T(slope)));
    gi[0] = gx;
  });
}

}  // namespace disco
