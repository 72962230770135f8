#pragma once
// Reductions to a scalar: sum, mean.
#include "disco/ops/tensor_ops.hpp"

namespace disco {

namespace detail {
// Gradient of a full reduction: every element gets g * factor.
template <class B>
Tensor<B> broadcast_scalar_grad(const Tensor<B>& g, const Shape& shape, double factor) {
  Tensor<B> out = Tensor<B>::empty(shape, g.dtype());
  Tensor<B> gc = g.contiguous();
  DISCO_TYPED(g.dtype(), Kernels<B>::broadcast_scalar(gc.template data<T>(), T(factor), out.template data<T>(),
                                                      out.numel()));
  return out;
}
}  // namespace detail

template <class B>
Tensor<B> sum(const Tensor<B>& x) {
  Tensor<B> xc = x.contiguous();
  Tensor<B> out = Tensor<B>::empty({}, x.dtype());
  DISCO_TYPED(x.dtype(), Kernels<B>::sum(xc.template data<T>(), xc.numel(), out.template data<T>()));
  const Shape sh = x.shape();
  return record<B>(out, "sum", {x}, [sh](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    gi[0] = detail::broadcast_scalar_grad(g, sh, 1.0);
  });
}

template <class B>
Tensor<B> mean(const Tensor<B>& x) {
  DISCO_CHECK(x.numel() > 0, "mean: empty tensor of shape ", shape_str(x.shape()));
  Tensor<B> xc = x.contiguous();
  Tensor<B> out = Tensor<B>::empty({}, x.dtype());
  DISCO_TYPED(x.dtype(), {
    Kernels<B>::sum(xc.template data<T>(), xc.numel(), out.template data<T>());
    Kernels<B>::affine(out.template data<T>(), T(1.0 / double(x.numel())), T(0), out.template data<T>(), 1);
  });
  const Shape sh = x.shape();
  const double f = 1.0 / double(x.numel());
  return record<B>(out, "mean", {x}, [sh, f](const Tensor<B>& g, std::vector<Tensor<B>>& gi) {
    gi[0] = detail::broadcast_scalar_grad(g, sh, f);
  });
}

}  // namespace disco
